"""The parameters of BIOMERO's run scripts, declared for biomero-stage's workflows.

OMERO.biomero reads these declarations (``getParams``) and sends exactly these
inputs, so they follow biomero-scripts 2.8.2's ``SLURM_Run_Workflow.py`` and
``SLURM_Run_Workflow_Batched.py``: the same names, types, groupings, defaults,
optional flags and value lists (``tests/biomero_scripts_2_8_2.json`` holds
what those scripts declare, and the tests compare). The per-workflow block is
built the way those scripts build it, from the workflows biomero-stage serves
at ``GET /api/v1/workflows`` in slurm-config.ini's order.

Nothing here imports OMERO: a declaration is a plain dict that
``omero_shell`` turns into an ``omero.scripts`` parameter.
"""

NO = "--NO THANK YOU--"
"""BIOMERO's "none" for the name options."""

NOT_AVAILABLE = "Not Available!"
"""BIOMERO's version list of a workflow whose container is not on the cluster."""


def param(name, kind, grouping, description, *, optional=True, default=None,
          values=None, of_type=None):
    """One declaration: ``kind`` is the ``omero.scripts`` class (String, Bool, Int,
    Long, Float, List), ``of_type`` the element type of a List."""
    return {
        "name": name,
        "type": kind,
        "of_type": of_type,
        "grouping": grouping,
        "optional": optional,
        "default": default,
        "values": values,
        "description": description,
    }


def _result_options(batched):
    """The result options (grouping 02), shared by both scripts."""
    out = [
        param("Select how to import your results (one or more)", "Bool", "02",
              "Select one or more options below:", optional=False, default=True),
        param("3c) Rename the imported images", "String", "02.7",
              "A new name for the imported images, with {original_file}, "
              "{original_ext}, {file} and {ext}", default=NO),
        param("1) Zip attachment to parent", "Bool", "02.2",
              "Attach the results as a zip to the parent Dataset or Plate",
              default=not batched),
        param("2) Attach to original images", "Bool", "02.4",
              "Attach the resulting images to the original images", default=False),
        param("3a) Import into NEW Dataset", "String", "02.5",
              "Name of the Dataset the result images go to", default=NO),
        param("3a) Import into NEW Screen", "String", "02.5.1",
              "Name of the Screen the result plates go to", default=NO),
        param("3b) Allow duplicate dataset (name)?", "Bool", "02.6",
              "Make a new Dataset even when one of that name exists", default=False),
        param("Dataset_ID", "Long", "02.61",
              "An exact Dataset by OMERO id; wins over the name"),
        param("Screen_ID", "Long", "02.62",
              "An exact Screen by OMERO id; wins over the name"),
        param("4) Upload result CSVs as OMERO tables", "Bool", "02.8",
              "Add result CSV files as OMERO.tables to the parent Dataset or Plate",
              optional=False, default=True),
        param("5) Attach individual non-image output files", "Bool", "02.85",
              "Attach non-image outputs as OMERO file annotations", default=False),
        param("6a) Create ROIs from label images", "Bool", "02.86",
              "Create ROIs on the source images from the label images", default=False),
        param("6b) Label image pattern", "String", "02.87",
              "Glob of the label result names; empty: automatic", default=""),
        param("6c) ROI shape", "String", "02.88", "OMERO ROI representation",
              default="Polygon", values=["Polygon", "Mask"]),
        param("6g) ROI color override", "String", "02.885",
              "#RRGGBB; empty: a stable color per run", default=""),
        param("6d) Delete label images after ROI creation", "Bool", "02.89",
              "Delete the label images from OMERO after the ROIs are made", default=False),
        param("6e) Clear existing ROIs on original images", "Bool", "02.90",
              "Delete existing ROIs of the original images first", default=False),
        param("6f) Clear existing ROI name filter", "String", "02.91",
              "Only delete ROIs whose name contains this text", default=""),
    ]
    if not batched:
        out.append(param("Cleanup?", "Bool", "02.9",
                         "Remove the temporary files on the cluster afterwards",
                         default=True))
    return out


def fixed(batched):
    """The fixed parameters of ``SLURM_Run_Workflow.py`` (or ``_Batched.py``)."""
    versions = ["0.4", "0.5"]
    if batched:
        head = [
            param("Data_Type", "String", "01.1", "The data you want to work with.",
                  optional=False, default="Image", values=["Dataset", "Image", "Plate"]),
            param("IDs", "List", "01.2", "List of Dataset IDs or Image IDs",
                  optional=False, of_type="Long"),
            param("E-mail", "Bool", "01.3",
                  "Do you want an email if your job is done or cancelled?", default=True),
            param("Batch_Size", "Int", "01.4", "Number of images to send to 1 slurm job",
                  optional=False, default=32),
            param("Use_ZARR_Format", "Bool", "01.5",
                  "Run the workflows on OME-Zarr instead of TIFF", default=False),
            param("OME-Zarr_version", "String", "01.5.1", "Ome-zarr version",
                  default="0.4", values=versions),
        ]
    else:
        head = [
            param("Data_Type", "String", "01.1", "The data you want to work with.",
                  optional=False, default="Dataset",
                  values=["Dataset", "Image", "Plate", "Screen"]),
            param("IDs", "List", "01.2", "List of Dataset IDs or Image IDs",
                  optional=False, of_type="Long"),
            param("E-mail", "Bool", "01.3",
                  "Do you want an email if your job is done or cancelled?", default=True),
            param("Use_ZARR_Format", "Bool", "01.4",
                  "Run the workflows on OME-Zarr instead of TIFF", default=False),
            param("OME-Zarr_version", "String", "01.4.1", "Ome-zarr version",
                  default="0.4", values=versions),
        ]
    return head + _result_options(batched)


_OMERO_TYPES = {"integer": "Int", "float": "Float", "boolean": "Bool"}
"""biomero's ``convert_param_type_to_omtype``: everything else is a String."""


def versions_of(workflow):
    """The ``<wf>_Version`` choices: the versions the daemon found on the cluster
    (``versions``: the configured one first, then newest first), ``Not Available!``
    when it found none; the configured version alone when the cluster could not be
    asked (the daemon then checks any other version at intake)."""
    if "versions" in workflow:
        return list(workflow["versions"]) or [NOT_AVAILABLE]
    version = workflow.get("version")
    return [version] if version else [NOT_AVAILABLE]


def per_workflow(workflows):
    """The block of every workflow, in the order given: the Bool that selects it
    (grouping ``03``, ``04``, … ``10``, ``11``), its version list (``NN.0``) and
    each descriptor parameter as ``<wf>_|_<id>`` (``NN.1``, ``NN.2``, …)."""
    out = []
    for i, w in enumerate(workflows):
        position = i + 3
        group = f"{position}" if position > 9 else f"0{position}"
        descriptor = w.get("descriptor") or {}
        out.append(param(w["key"], "Bool", group,
                         descriptor.get("name") or w["key"], default=False))
        out.append(param(f"{w['key']}_Version", "String", f"{group}.0",
                         f"Version of the container of {w['key']}",
                         values=versions_of(w)))
        params = descriptor.get("parameters") or []
        for j, p in enumerate(params):
            choices = p.get("choices")
            out.append(param(
                f"{w['key']}_|_{p['id']}",
                _OMERO_TYPES.get(p.get("type"), "String"),
                f"{group}.{j + 1}",
                p.get("description") or p.get("name") or p["id"],
                # always optional: another workflow's parameters must not block this one
                optional=True,
                default=p.get("default"),
                values=[str(c) for c in choices] if choices else None,
            ))
        # file inputs: lists of FileAnnotation ids after the parameters, as biomero-scripts
        # declares them (always optional: required-ness is checked for the selected workflow)
        for j, f in enumerate(descriptor.get("file_inputs") or []):
            formats = ", ".join(f.get("formats") or []) or "any"
            out.append(param(
                f"{w['key']}_|_FILE_{f['id']}",
                "List",
                f"{group}.{len(params) + j + 1}",
                f"[File attachment] {f.get('description') or f.get('name') or f['id']} "
                f"Accepted formats: {formats}. Provide one or more OMERO FileAnnotation IDs.",
                of_type="Long",
            ))
    return out


def declarations(workflows, batched):
    """Every parameter of the run script, fixed ones first."""
    return fixed(batched) + per_workflow(workflows)
