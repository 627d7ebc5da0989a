"""Extracts the fixed parameter declarations of biomero-scripts' run scripts.

Run against a checkout of NL-BioImaging/biomero-scripts at a tag, with biomero's own
package installed or unpacked (``pip download --no-deps biomero==2.8.3``; only its
``constants`` module is loaded, not its SSH client):

    python extract_upstream.py <checkout> > biomero_scripts_2_8_2.json

It reads the scripts as Python syntax trees (nothing of them is run or copied) and
records, for every ``omscripts.<Type>(name, ...)`` in the fixed ``input_list``, the
name, type, grouping, default, optional flag and value list. The per-workflow
parameters are generated at run time and are not in this file.
"""

import ast
import importlib.util
import json
import sys
from pathlib import Path


def load_constants():
    """biomero's ``constants`` module, without running ``biomero/__init__.py``."""
    spec = importlib.util.find_spec("biomero")
    path = Path(list(spec.submodule_search_locations)[0]) / "constants.py"
    module_spec = importlib.util.spec_from_file_location("biomero_constants", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


constants = load_constants()


def resolve(node, names):
    """The value of a constant expression of the scripts."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "constants":
            value = constants
            for p in reversed(parts):
                value = getattr(value, p)
            return value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.List):
        return [resolve(e, names) for e in node.elts]
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "rstring":
        return resolve(node.args[0], names)
    raise ValueError(ast.dump(node))


def declarations(path):
    tree = ast.parse(Path(path).read_text())
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = resolve(node.value, names)
            except (ValueError, AttributeError):
                pass
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "input_list"):
            continue
        for call in node.value.elts:
            of_type = None
            if isinstance(call.func, ast.Attribute) and call.func.attr == "ofType":
                of_type = "Long"
                call = call.func.value
            kind = call.func.attr
            kw = {k.arg: k.value for k in call.keywords}
            out.append({
                "name": resolve(call.args[0], names),
                "type": kind,
                "of_type": of_type,
                "grouping": resolve(kw["grouping"], names),
                "optional": resolve(kw["optional"], names) if "optional" in kw else True,
                "default": resolve(kw["default"], names) if "default" in kw else None,
                "values": resolve(kw["values"], names) if "values" in kw else None,
            })
    return out


if __name__ == "__main__":
    root = Path(sys.argv[1])
    print(json.dumps({
        "source": "NL-BioImaging/biomero-scripts v2.8.2 with biomero 2.8.3 constants",
        "SLURM_Run_Workflow.py": declarations(root / "__workflows/SLURM_Run_Workflow.py"),
        "SLURM_Run_Workflow_Batched.py": declarations(root / "__workflows/SLURM_Run_Workflow_Batched.py"),
    }, indent=1))
