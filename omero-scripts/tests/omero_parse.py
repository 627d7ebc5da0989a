"""Loads the drop-in scripts with omero-py's own ``omero.scripts.parse_file``, as the
OMERO server does when it lists them, and compares what they declare with
biomero-scripts 2.8.2's declarations.

Run by ``tests/omero_scripts.rs`` with omero-py's virtualenv (``scripts/setup-omero-py``)
and ``BIOMERO_STAGE_URL`` pointing at a running daemon: the run scripts read its
workflows while they are parsed. Prints a JSON summary; exits 1 on any difference.
"""

import json
import sys
from pathlib import Path

import omero.scripts
from omero.rtypes import unwrap

HERE = Path(__file__).resolve().parent
UPSTREAM = json.loads((HERE / "biomero_scripts_2_8_2.json").read_text())
TYPES = {"RStringI": "String", "RBoolI": "Bool", "RLongI": "Long", "RIntI": "Int",
         "RFloatI": "Float", "RListI": "List", "RDoubleI": "Float"}


def described(param):
    kind = TYPES[type(param.prototype).__name__]
    of_type = None
    if kind == "List":
        elements = param.prototype.val
        of_type = TYPES[type(elements[0]).__name__] if elements else None
    default = unwrap(param.prototype) if param.useDefault else None
    values = unwrap(param.values) if param.values is not None else None
    return {"type": kind, "of_type": of_type, "grouping": param.grouping,
            "optional": bool(param.optional), "default": default, "values": values or None}


def main():
    problems = []
    summary = {}
    for script, oracle in (("SLURM_Run_Workflow.py", UPSTREAM["SLURM_Run_Workflow.py"]),
                           ("SLURM_Run_Workflow_Batched.py", UPSTREAM["SLURM_Run_Workflow_Batched.py"]),
                           ("SLURM_Init_environment.py", None), ("SLURM_check_setup.py", None)):
        params = omero.scripts.parse_file(str(HERE.parent / script))
        inputs = {name: described(p) for name, p in params.inputs.items()}
        summary[script] = {"name": params.name, "inputs": sorted(inputs)}
        for expected in oracle or []:
            got = inputs.get(expected["name"])
            want = {k: expected[k] for k in ("type", "of_type", "grouping", "optional", "default", "values")}
            if got != want:
                problems.append(f"{script}: {expected['name']}: declared {got}, biomero-scripts 2.8.2 declares {want}")
        if oracle:
            summary[script]["workflow_inputs"] = {
                n: d for n, d in inputs.items() if n not in {e["name"] for e in oracle}}
    print(json.dumps({"scripts": summary, "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
