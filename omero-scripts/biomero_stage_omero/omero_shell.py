"""The only part that imports OMERO: declarations into ``omero.scripts``, inputs out,
the hand-off to the daemon, and the message for OMERO.web's Activities panel.

It is kept thin on purpose: ``declare`` and ``daemon`` hold the logic and are
tested without OMERO (omero-py needs zeroc-ice 3.6, which does not build on
this project's Python); this file only translates between them and omero-py.
"""

import omero  # noqa: F401  (omero.constants below needs the package initialised)
import omero.constants.namespaces
import omero.scripts as omscripts
from omero.rtypes import rlong, rstring

from . import __version__, declare
from .daemon import Daemon, DaemonError, Settings, jsonable, run_message

RUN_DESCRIPTION = """Runs workflows on the Slurm cluster through biomero-stage.

Select one or more workflows below to run them on the selected Datasets, Images
or Plates. Parameters come from each workflow's descriptor; versions are those
biomero-stage runs. The run is handed to biomero-stage and this script returns
at once: follow it in OMERO.biomero. Results are imported back into OMERO.
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
                run = daemon.submit_run(script, inputs, client.getSessionId(), ctx.groupId)
                message = run_message(run)
                client.setOutput("Run_ID", rstring(run["run"]))
            except DaemonError as e:
                message = f"biomero-stage refused the run; nothing was started: {e}"
        client.setOutput("Message", rstring(message))
    finally:
        client.closeSession()


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
