"""The declarations are biomero-scripts 2.8.2's, key for key."""

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biomero_stage_omero import declare  # noqa: E402

UPSTREAM = json.loads((Path(__file__).parent / "biomero_scripts_2_8_2.json").read_text())
COMPARED = ("name", "type", "of_type", "grouping", "optional", "default", "values")


def shape(params):
    return [{k: p[k] for k in COMPARED} for p in params]


# the shape of GET /api/v1/workflows (crates/daemon/src/report.rs workflow_json), two workflows
WORKFLOWS = [
    {"key": "cellpose", "version": "v1.4.0", "descriptor": {"name": "Cellpose", "parameters": [
        {"id": "diameter", "name": "Diameter", "description": "cell size", "type": "integer",
         "default": 30, "optional": True, "flag": "--diameter", "choices": None},
        {"id": "model", "name": "Model", "description": "which model", "type": "string",
         "default": "nuclei", "optional": True, "flag": "--model", "choices": ["nuclei", "cyto"]},
        {"id": "use_gpu", "name": "GPU", "description": "", "type": "boolean",
         "default": False, "optional": True, "flag": "--use_gpu", "choices": None},
    ], "file_inputs": [{"id": "weights", "name": "Weights", "description": "a model",
                        "formats": ["pt"], "optional": False}]}},
] + [{"key": f"wf{i}", "version": "v1", "descriptor": None} for i in range(8)]


class Declarations(unittest.TestCase):
    def test_the_fixed_parameters_are_biomero_scripts_2_8_2s(self):
        for script, batched in (("SLURM_Run_Workflow.py", False), ("SLURM_Run_Workflow_Batched.py", True)):
            with self.subTest(script=script):
                self.assertEqual(shape(declare.fixed(batched)), UPSTREAM[script])

    def test_each_workflow_gets_biomeros_block(self):
        block = declare.per_workflow(WORKFLOWS)
        by_name = {p["name"]: p for p in block}
        self.assertEqual(by_name["cellpose"]["grouping"], "03")
        self.assertEqual((by_name["cellpose"]["type"], by_name["cellpose"]["default"]), ("Bool", False))
        self.assertEqual(by_name["cellpose_Version"]["values"], ["v1.4.0"])
        self.assertEqual(by_name["cellpose_Version"]["grouping"], "03.0")
        d = by_name["cellpose_|_diameter"]
        self.assertEqual((d["type"], d["grouping"], d["default"], d["optional"]), ("Int", "03.1", 30, True))
        m = by_name["cellpose_|_model"]
        self.assertEqual((m["type"], m["values"]), ("String", ["nuclei", "cyto"]))
        self.assertEqual(by_name["cellpose_|_use_gpu"]["type"], "Bool")
        w = by_name["cellpose_|_FILE_weights"]
        self.assertEqual((w["type"], w["of_type"], w["grouping"], w["optional"]), ("List", "Long", "03.4", True))
        # groupings past 9 lose the leading zero, as in biomero-scripts
        self.assertEqual(by_name["wf6"]["grouping"], "10")
        self.assertEqual(by_name["wf0"]["grouping"], "04")
        # a workflow without a descriptor still gets its Bool and version list
        self.assertEqual([p["name"] for p in block if p["name"].startswith("wf7")], ["wf7", "wf7_Version"])

    def test_the_version_list_is_what_the_daemon_found_on_the_cluster(self):
        listed = dict(WORKFLOWS[0], versions=["v1.4.0", "v2.0.0", "v1.3.2"])
        none = dict(WORKFLOWS[0], versions=[])
        unasked = dict(WORKFLOWS[0])
        for w, want in ((listed, ["v1.4.0", "v2.0.0", "v1.3.2"]), (none, [declare.NOT_AVAILABLE]),
                        (unasked, ["v1.4.0"])):
            with self.subTest(workflow=w):
                block = {p["name"]: p for p in declare.per_workflow([w])}
                self.assertEqual(block["cellpose_Version"]["values"], want)

    def test_names_are_unique(self):
        names = [p["name"] for p in declare.declarations(WORKFLOWS, False)]
        self.assertEqual(len(names), len(set(names)))


if __name__ == "__main__":
    unittest.main()
