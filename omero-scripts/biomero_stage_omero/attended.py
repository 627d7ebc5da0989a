"""The attended mode: the run script stays for its run.

It relays the run's progress to OMERO.web's Activities panel (the script's output),
keeps the user's session alive while the daemon works, and when the run has ended
makes in the user's own session what only OMERO's own API can make, as BIOMERO's
``SLURM_Import_Results.py`` makes it:

- ``4) Upload result CSVs as OMERO tables``: each result ``.csv`` becomes an
  OMERO.table on the inputs' parent Dataset or Plate, named
  ``<stem>_<slurm job>_<workflow run><ext>`` (omero-metadata's ``ParsingContext``;
  a CSV it cannot read is attached as a file instead);
- ``6a) Create ROIs from label images``: the imported result images are found by
  their importer order's uuid, paired with the images they were made from, and
  BIOMERO's ``Labels2Rois.py`` is run with BIOMERO's inputs.

This module holds the logic and needs no OMERO; ``omero_shell`` does the OMERO calls.
"""

import fnmatch
import os
import re
import time
import uuid as uuidlib

from .daemon import DaemonError

TERMINAL = ("imported", "failed", "cancelled")
"""Submission states nothing follows."""

LABELS_TO_ROIS_SCRIPT = "Labels2Rois.py"
"""BIOMERO's ROI script, by exact name (biomero 2.8.3 ``constants.LABELS_TO_ROIS_SCRIPT``)."""

TABLES = "4) Upload result CSVs as OMERO tables"
ROIS = "6a) Create ROIs from label images"
ROI_PATTERN = "6b) Label image pattern"
ROI_SHAPE = "6c) ROI shape"
ROI_DELETE = "6d) Delete label images after ROI creation"
ROI_CLEAR = "6e) Clear existing ROIs on original images"
ROI_CLEAR_FILTER = "6f) Clear existing ROI name filter"
ROI_COLOR = "6g) ROI color override"

QUALITATIVE_COLOR_SCHEME = (
    "#147EB3", "#29A634", "#D1980B", "#D33D17", "#9D3F9D",
    "#00A396", "#DB2C6F", "#8EB125", "#946638", "#7961DB",
)
"""BIOMERO's ROI colours (biomero 2.8.3 ``constants.QUALITATIVE_COLOR_SCHEME``)."""

ROI_LABEL_NAME_HINTS = ("mask", "label", "segment", "instance", "prediction")
"""Names that mark a label image when a source has several results (BIOMERO's hints)."""

MAX_SILENT_POLLS = 40
"""Polls in a row the daemon may fail to answer before the script stops following."""


class SessionLost(Exception):
    """OMERO no longer keeps the user's session; the run goes on in the daemon."""


def _size(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def progress_line(s):
    """One line for a submission as ``GET /api/v1/biomero/runs/{run}/progress`` lists it."""
    line = f"{s['id']} {s['workflow']}: {s['state']}"
    if s.get("waiting_for") and s["state"] not in TERMINAL:
        line += f" (waiting for {s['waiting_for']})"
    p = s.get("progress")
    if p and isinstance(p.get("detail"), dict) and "progress" in p["detail"]:
        d = p["detail"]
        line += f" · {p['step']} {d['progress']}%"
        parts = []
        if d.get("bytes_total"):
            parts.append(f"{_size(d.get('bytes_done', 0))} of {_size(d['bytes_total'])}")
        if d.get("files_total"):
            parts.append(f"{d.get('files_done', 0)} of {d['files_total']} files")
        if d.get("bytes_per_s"):
            parts.append(f"{_size(d['bytes_per_s'])}/s")
        if d.get("eta_s") is not None:
            parts.append(f"about {int(d['eta_s'])} s left")
        if parts:
            line += " (" + ", ".join(parts) + ")"
    if s["state"] == "failed" and s.get("error"):
        line += f": {s['error']}"
    return line


def follow(daemon, run_id, keep_alive, say, poll_seconds=15.0, sleep=time.sleep):
    """Follows run ``run_id`` until every submission has ended: says each submission's line
    when it changes, and keeps the session alive each round (``keep_alive()`` false: the
    session is gone, :class:`SessionLost`). Returns the final entries, by submission id.
    The daemon not answering is said once and tried again, up to ``MAX_SILENT_POLLS``."""
    last = {}
    details = {}
    silent = 0
    while True:
        if not keep_alive():
            raise SessionLost(
                f"OMERO ended the session while run {run_id} was followed; the run goes on in biomero-stage")
        try:
            details = {s["id"]: s for s in daemon.run_progress(run_id)}
            if silent:
                say("biomero-stage answers again")
            silent = 0
        except DaemonError as e:
            silent += 1
            if silent == 1:
                say(f"biomero-stage did not answer ({e}); trying again every {poll_seconds:.0f} s")
            if silent >= MAX_SILENT_POLLS:
                raise
            sleep(poll_seconds)
            continue
        for sid, d in details.items():
            line = progress_line(d)
            if last.get(sid) != line:
                say(line)
                last[sid] = line
        if details and all(d["state"] in TERMINAL for d in details.values()):
            return details
        sleep(poll_seconds)


def table_name(csv_path, job_id=None, workflow_id=None):
    """BIOMERO's name for the OMERO.table of a result CSV: ``<stem>[_<job>][_<workflow>]<ext>``."""
    stem, ext = os.path.splitext(os.path.basename(csv_path))
    if job_id:
        stem += f"_{job_id}"
    if workflow_id:
        stem += f"_{workflow_id}"
    return stem + ext


def workflow_color(override, workflow_id):
    """BIOMERO's ``resolve_workflow_color``: the override (``#RRGGBB``), else the scheme's
    colour picked by the workflow run's uuid."""
    color = str(override or "").strip().upper()
    if color:
        if not re.fullmatch(r"#[0-9A-F]{6}", color):
            raise ValueError("Workflow color must be empty or use #RRGGBB format")
        return color
    return QUALITATIVE_COLOR_SCHEME[uuidlib.UUID(str(workflow_id)).int % len(QUALITATIVE_COLOR_SCHEME)]


def run_uuid(results):
    """The BIOMERO WorkflowRun of a submission's results, or one derived from its id when the
    site keeps no BIOMERO event store."""
    return results.get("workflow_id") or str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "biomero-stage:" + results["submission"]))


def roi_candidates(found, results):
    """Pairs each imported image ``(id, name)`` found by order uuid with the input it was
    made from, as the daemon recorded it: ``(result id, source id, result name, source
    name)``. An image whose name is no result file, or whose source is not an OMERO image,
    is left out and named in the second list."""
    by_name = {}
    for item in results.get("images", []):
        by_name.setdefault(os.path.basename(item["path"].rstrip("/")), item)
    out, unmatched = [], []
    for image_id, name in found:
        item = by_name.get(name) or by_name.get(re.sub(r" \[\d+\]$", "", name))
        src = (item or {}).get("source") or {}
        if src.get("image_id") is None:
            unmatched.append(name)
            continue
        out.append((int(image_id), int(src["image_id"]), name, src.get("name") or ""))
    return out, unmatched


def matches_roi_label_output(path, pattern):
    """BIOMERO's pattern match of a result name (``fnmatch`` on the name or the path)."""
    if not pattern or not pattern.strip():
        return False
    normalized = str(path).replace(chr(92), "/")
    pattern = pattern.strip()
    return (fnmatch.fnmatchcase(os.path.basename(normalized), pattern)
            or fnmatch.fnmatchcase(normalized, pattern))


def select_roi_image_pairs(image_candidates, pattern=""):
    """BIOMERO's selection of label/source pairs (biomero-scripts 2.8.2
    ``SLURM_Import_Results.select_roi_image_pairs``): by the pattern when one is given, else
    the single result of each source, or those of its results whose names hint at labels.
    Returns the pairs and how many sources stayed ambiguous."""
    candidates = []
    seen = set()
    for candidate in image_candidates or []:
        result_id, source_id = int(candidate[0]), int(candidate[1])
        result_name = str(candidate[2]) if len(candidate) > 2 else ""
        source_name = str(candidate[3]) if len(candidate) > 3 else ""
        key = (result_id, source_id)
        if key not in seen:
            candidates.append((result_id, source_id, result_name, source_name))
            seen.add(key)

    if pattern and pattern.strip():
        return ([(result_id, source_id)
                 for result_id, source_id, result_name, _ in candidates
                 if matches_roi_label_output(result_name, pattern)], 0)

    grouped = {}
    for candidate in candidates:
        grouped.setdefault(candidate[1], []).append(candidate)

    selected = []
    ambiguous_sources = 0
    for source_candidates in grouped.values():
        if len(source_candidates) == 1:
            selected.append(source_candidates[0][:2])
            continue
        hinted = []
        for candidate in source_candidates:
            result_name = os.path.basename(candidate[2]).lower()
            source_stem = os.path.basename(candidate[3]).lower()
            while os.path.splitext(source_stem)[1] in (".tif", ".tiff", ".ome", ".png", ".zarr"):
                source_stem = os.path.splitext(source_stem)[0]
            distinguishing_name = result_name.replace(source_stem, "")
            if any(hint in distinguishing_name for hint in ROI_LABEL_NAME_HINTS):
                hinted.append(candidate[:2])
        if hinted:
            selected.extend(hinted)
        else:
            ambiguous_sources += 1
    return selected, ambiguous_sources


def labels2rois_inputs(pairs, inputs, workflow, workflow_id):
    """The inputs BIOMERO gives ``Labels2Rois.py`` for ``pairs`` (``execute_roi_postprocessing``),
    from the run's ``6b)``–``6g)``; plain values, wrapped into OMERO's types by the caller.
    A shape other than Polygon or Mask, or a colour that is not ``#RRGGBB``, is a ValueError."""
    shape = inputs.get(ROI_SHAPE) or "Polygon"
    if shape not in ("Polygon", "Mask"):
        raise ValueError("ROI shape must be Polygon or Mask")
    clear = bool(inputs.get(ROI_CLEAR))
    return {
        "Mapping_Mode": "Explicit Image IDs",
        "Label_Image_IDs": [label for label, _ in pairs],
        "Target_Image_IDs": [target for _, target in pairs],
        "ROI_type": shape,
        "ROI_Name_Prefix": f"{workflow}__{workflow_id}",
        "ROI_Color": workflow_color(inputs.get(ROI_COLOR), workflow_id),
        "Clear_Existing_ROIs": clear,
        "Clear_ROI_Filter": (inputs.get(ROI_CLEAR_FILTER) or "").strip() if clear else "",
        "Delete_Label_Image": bool(inputs.get(ROI_DELETE)),
    }


def asked(inputs, key):
    """Whether a Bool result option was set."""
    return inputs.get(key) is True


def finishing_needed(inputs):
    """Whether the run asked for anything the attended script makes after it."""
    return asked(inputs, TABLES) or asked(inputs, ROIS)
