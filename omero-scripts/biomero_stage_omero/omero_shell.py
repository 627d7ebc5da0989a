"""The only part that imports OMERO: declarations into ``omero.scripts``, inputs out,
the hand-off to the daemon, and the message for OMERO.web's Activities panel.

It is kept thin on purpose: ``declare`` and ``daemon`` hold the logic and are
tested without OMERO (omero-py needs zeroc-ice 3.6, which does not build on
this project's Python); this file only translates between them and omero-py.
"""

import os
import tempfile

import omero  # noqa: F401  (omero.constants below needs the package initialised)
import omero.constants.namespaces
import omero.scripts as omscripts
import omero.sys
from omero.gateway import BlitzGateway
from omero.rtypes import rbool, rlist, rlong, rstring, unwrap

from . import __version__, attended, declare
from .daemon import Daemon, DaemonError, Settings, jsonable, run_message

RUN_DESCRIPTION = """Runs workflows on the Slurm cluster through biomero-stage.

Select one or more workflows below to run them on the selected Datasets, Images
or Plates. Parameters come from each workflow's descriptor; versions are those
biomero-stage runs. The run is handed to biomero-stage: follow it in
OMERO.biomero (or here, where the site lets this script stay for the run).
Results are imported back into OMERO.
"""


def _parameter(spec):
    cls = getattr(omscripts, spec["type"])
    kwargs = {
        "grouping": spec["grouping"],
        "description": spec["description"],
        "optional": spec["optional"],
    }
    if spec["default"] is not None:
        kwargs["default"] = spec["default"]
    if spec["values"]:
        kwargs["values"] = [rstring(str(v)) for v in spec["values"]]
    p = cls(spec["name"], **kwargs)
    if spec["of_type"] == "Long":
        p = p.ofType(rlong(0))
    return p


def _client(name, description, specs):
    return omscripts.client(
        name,
        description,
        *[_parameter(s) for s in specs],
        namespaces=[omero.constants.namespaces.NSDYNAMIC],
        version=__version__,
        authors=["biomero-stage"],
    )


def _event_context(client):
    return client.getSession().getAdminService().getEventContext()


def run_workflow(batched):
    """``SLURM_Run_Workflow.py`` (or ``_Batched.py``): declare, then hand the inputs off."""
    script = "SLURM_Run_Workflow_Batched.py" if batched else "SLURM_Run_Workflow.py"
    description = RUN_DESCRIPTION
    try:
        settings = Settings.load()
        daemon = Daemon(settings)
        workflows = daemon.workflows()
    except DaemonError as e:
        settings, daemon, workflows = None, None, []
        description += f"\n\nNOT AVAILABLE: {e}"
    client = _client(script, description, declare.declarations(workflows, batched))
    try:
        if daemon is None:
            message = "biomero-stage is not available; nothing was started. " + description.rsplit("NOT AVAILABLE: ", 1)[-1]
        else:
            inputs = jsonable(client.getInputs(unwrap=True))
            ctx = _event_context(client)
            try:
                run = daemon.submit_run(script, inputs, client.getSessionId(), ctx.groupId,
                                        attended=settings.attended)
                message = run_message(run)
                client.setOutput("Run_ID", rstring(run["run"]))
            except DaemonError as e:
                run = None
                message = f"biomero-stage refused the run; nothing was started: {e}"
            if run is not None and settings.attended:
                print(message, flush=True)
                message = _attend(client, daemon, settings, run["run"], inputs)
        client.setOutput("Message", rstring(message))
    finally:
        client.closeSession()


def _attend(client, daemon, settings, run_id, inputs):
    """The attended mode: follows the run, then makes its tables and ROIs; the final message."""
    conn = BlitzGateway(client_obj=client)
    say = lambda line: print(line, flush=True)  # noqa: E731  (the script's output in Activities)
    try:
        details = attended.follow(daemon, run_id, conn.keepAlive, say, settings.poll_seconds)
    except attended.SessionLost as e:
        return f"{e}. No OMERO.table or ROI was made; follow run {run_id} in OMERO.biomero."
    except DaemonError as e:
        return (f"biomero-stage stopped answering while run {run_id} was followed ({e}); "
                "the run goes on there. No OMERO.table or ROI was made.")
    lines = [f"biomero-stage run {run_id} has ended:"]
    lines += [f"  {attended.progress_line(d)}" for d in details.values()]
    if attended.finishing_needed(inputs):
        for sid, d in details.items():
            if d["state"] != "imported":
                lines.append(f"  {sid}: {d['state']}, so no table or ROI is made for it")
                continue
            try:
                results = daemon.results(sid)
            except DaemonError as e:
                lines.append(f"  {sid}: its results cannot be described ({e}); no table or ROI is made for it")
                continue
            made, problems = [], []
            if attended.asked(inputs, attended.TABLES):
                _tables(conn, client, daemon, results, _parent(conn, inputs), made, problems)
            if attended.asked(inputs, attended.ROIS):
                _rois(conn, client, results, inputs, made, problems)
            lines += [f"  {sid}: {m}" for m in made + problems]
            try:
                daemon.report_made(sid, made, problems)
            except DaemonError as e:
                lines.append(f"  {sid}: what was made could not be written into its history ({e})")
    return "\n".join(lines)


def _parent(conn, inputs):
    """The inputs' parent as BIOMERO's run script finds it: ``(type, id)``; for Images, the Plate
    or Dataset of the first one."""
    kind, ids = inputs.get("Data_Type"), inputs.get("IDs") or []
    if not ids:
        return None
    if kind != "Image":
        return (kind, int(ids[0]))
    params = omero.sys.ParametersI()
    params.addLong("image_id", int(ids[0]))
    q = conn.getQueryService()
    plates = q.projection("SELECT DISTINCT p.id FROM Plate p JOIN p.wells w JOIN w.wellSamples ws "
                          "JOIN ws.image i WHERE i.id = :image_id", params, conn.SERVICE_OPTS)
    datasets = q.projection("SELECT DISTINCT d.id FROM Dataset d JOIN d.imageLinks dil "
                            "JOIN dil.child i WHERE i.id = :image_id", params, conn.SERVICE_OPTS)
    if len(plates) > len(datasets):
        return ("Plate", int(unwrap(plates[0][0])))
    if datasets:
        return ("Dataset", int(unwrap(datasets[0][0])))
    return None


def _tables(conn, client, daemon, results, parent, made, problems):
    """``4)``: each result CSV as an OMERO.table on the Dataset or Plate, as BIOMERO makes it."""
    if not results["tables"]:
        problems.append("4) no CSV among the results")
        return
    if parent is None or parent[0] not in ("Dataset", "Plate"):
        problems.append("4) the inputs have no Dataset or Plate to put tables on; the CSVs stay in the kept results")
        return
    try:
        from omero_metadata.populate import ParsingContext
    except ImportError:
        ParsingContext = None
    kind, oid = parent
    for rel in results["tables"]:
        name = attended.table_name(rel, results.get("job_id"), attended.run_uuid(results))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, os.path.basename(rel))
            try:
                with open(path, "wb") as f:
                    f.write(daemon.result_file(results["submission"], rel))
            except DaemonError as e:
                problems.append(f"4) {rel} cannot be fetched from biomero-stage ({e})")
                continue
            try:
                if ParsingContext is None:
                    raise RuntimeError("omero-metadata is not installed in OMERO's Python")
                obj = getattr(omero.model, kind + "I")(oid, False)
                ctx = ParsingContext(client, obj, "", table_name=name)
                with open(path, "rt", encoding="utf-8-sig") as f1:
                    ctx.preprocess_from_handle(f1)
                    with open(path, "rt", encoding="utf-8-sig") as f2:
                        ctx.parse_from_handle_stream(f2)
                made.append(f"4) {rel}: table {name} on {kind} {oid}")
            except Exception as e:  # noqa: BLE001  (as BIOMERO: a CSV that is no table is attached)
                ann = conn.createFileAnnfromLocalFile(
                    path, mimetype="text/csv", ns=omero.constants.namespaces.NSCREATED + "/SLURM/SLURM_GET_RESULTS",
                    desc=f"File output from SLURM job {results.get('job_id')} (Workflow {attended.run_uuid(results)})")
                conn.getObject(kind, oid).linkAnnotation(ann)
                problems.append(f"4) {rel} is not a table OMERO can make ({e}); attached to {kind} {oid} as a file")


def _rois(conn, client, results, inputs, made, problems):
    """``6a)``: BIOMERO's Labels2Rois.py on the imported label images and their sources."""
    found = []
    q = conn.getQueryService()
    for order in results["orders"]:
        params = omero.sys.ParametersI()
        params.addString("uuid", order["uuid"])
        rows = q.projection(
            "SELECT DISTINCT img.id, img.name FROM Image img JOIN img.annotationLinks ial "
            "JOIN ial.child ann JOIN ann.mapValue mv WHERE TYPE(ann) = MapAnnotation AND mv.value = :uuid",
            params, conn.SERVICE_OPTS)
        found += [(int(unwrap(r[0])), str(unwrap(r[1]))) for r in rows]
    candidates, unmatched = attended.roi_candidates(found, results)
    pairs, ambiguous = attended.select_roi_image_pairs(candidates, inputs.get(attended.ROI_PATTERN) or "")
    problems += [f"6a) {n} was imported but is not a result made from an OMERO image; no ROI from it"
                 for n in unmatched]
    if not pairs:
        problems.append("6a) no unambiguous label images; the imported results were preserved")
        return
    svc = conn.getScriptService()
    ids = [unwrap(s.id) for s in svc.getScripts() if unwrap(s.getName()) == attended.LABELS_TO_ROIS_SCRIPT]
    if not ids:
        problems.append(f"6a) {attended.LABELS_TO_ROIS_SCRIPT} is not installed in OMERO; no ROIs were made")
        return
    try:
        plain = attended.labels2rois_inputs(pairs, inputs, results["workflow"], attended.run_uuid(results))
    except ValueError as e:
        problems.append(f"6a) {e}; no ROIs were made")
        return
    wrapped = {k: (rlist([rlong(i) for i in v]) if isinstance(v, list)
                   else rbool(v) if isinstance(v, bool) else rstring(v)) for k, v in plain.items()}
    proc = svc.runScript(int(ids[0]), wrapped, None)
    try:
        cb = omscripts.ProcessCallbackI(client, proc)
        try:
            while not cb.block(1000):
                conn.keepAlive()
        finally:
            cb.close()
        rv = proc.getResults(0) or {}
        job = proc.getJob()
        status = int(unwrap(job.getStatus().getId())) if job is not None else None
        msg = str(unwrap(rv.get("Message")) or "ROI postprocessing completed")
    finally:
        proc.close(False)
    if status in (6, 9) or msg.startswith("FAILED:"):
        problems.append(f"6a) {attended.LABELS_TO_ROIS_SCRIPT} failed: {msg}")
        return
    if ambiguous:
        msg += f"; skipped {ambiguous} source image(s) with ambiguous result images"
    made.append(f"6a) {len(pairs)} label image(s): {msg}")


def slurm_init():
    """``Slurm Init (Admin Only)``: the daemon's ``init``, printed as BIOMERO prints it."""
    client = _client(
        "Slurm Init (Admin Only)",
        "Prepares the Slurm cluster for biomero-stage: folders, job scripts and, "
        "optionally, container pulls. **ADMIN ONLY**.",
        [
            declare.param("Init Slurm", "Bool", "01", "Create the folders and job scripts", default=True),
            declare.param("Pull missing containers", "Bool", "01.1",
                          "Also start a pull for every workflow whose container version is missing",
                          default=False),
        ],
    )
    try:
        if not _event_context(client).isAdmin:
            message = "Slurm Init is for OMERO administrators only."
        elif not client.getInput("Init Slurm", unwrap=True):
            message = "Nothing to do: 'Init Slurm' is off."
        else:
            try:
                report = Daemon(Settings.load()).init(client.getInput("Pull missing containers", unwrap=True))
                lines = ["Slurm is set up for biomero-stage."]
                lines += [f"  folder: {f}" for f in report.get("folders", [])]
                lines += [f"  job script: {s}" for s in report.get("scripts", [])]
                lines += [f"  pull: {k}: {how}" for k, how in report.get("pulls", [])]
                message = "\n".join(lines)
            except DaemonError as e:
                message = f"Slurm Init failed: {e}"
        client.setOutput("Message", rstring(message))
    finally:
        client.closeSession()


def check_setup():
    """``Slurm Check Setup (Admin Only)``: the daemon's ``check-setup``."""
    from .report import setup_text

    client = _client(
        "Slurm Check Setup (Admin Only)",
        "Checks the Slurm setup of biomero-stage: folders, workflow containers, "
        "job scripts, converters. **ADMIN ONLY**.",
        [],
    )
    try:
        if not _event_context(client).isAdmin:
            message = "Slurm Check Setup is for OMERO administrators only."
        else:
            try:
                message = setup_text(Daemon(Settings.load()).check_setup())
            except DaemonError as e:
                message = f"Slurm Check Setup failed: {e}"
        client.setOutput("Message", rstring(message))
    finally:
        client.closeSession()
