"""Where the scripts find the daemon, and what they tell the user."""

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biomero_stage_omero.daemon import DaemonError, Settings, jsonable, run_message  # noqa: E402
from biomero_stage_omero.report import setup_text  # noqa: E402


class SettingsTest(unittest.TestCase):
    def test_the_file_then_the_environment(self):
        with tempfile.TemporaryDirectory() as d:
            token = Path(d) / "token"
            token.write_text("s3cret-token-value\n")
            ini = Path(d) / "omero-scripts.ini"
            ini.write_text(f"[biomero-stage]\nurl = http://stage:8950/\ntoken_file = {token}\ntimeout = 5\n")
            s = Settings.load(str(ini), env={})
            self.assertEqual((s.url, s.token, s.timeout), ("http://stage:8950", "s3cret-token-value", 5.0))
            s = Settings.load(str(ini), env={"BIOMERO_STAGE_URL": "http://other:1"})
            self.assertEqual(s.url, "http://other:1")

    def test_an_unreadable_token_file_says_what_to_do(self):
        with self.assertRaises(DaemonError) as e:
            Settings.load("/nonexistent.ini", env={"BIOMERO_STAGE_TOKEN_FILE": "/nonexistent/token"})
        self.assertIn("readable by the OMERO server user", str(e.exception))

    def test_an_unreachable_daemon_is_named(self):
        from biomero_stage_omero.daemon import Daemon
        with self.assertRaises(DaemonError) as e:
            Daemon(Settings("http://127.0.0.1:1", timeout=2)).workflows()
        self.assertIn("cannot be reached at http://127.0.0.1:1", str(e.exception))


class Messages(unittest.TestCase):
    def test_inputs_become_json(self):
        self.assertEqual(jsonable({"IDs": (1, 2), "x": None, "b": True}), {"IDs": [1, 2], "x": None, "b": True})

    def test_a_refusal_lists_its_keys(self):
        e = DaemonError("the run was refused", [{"field": "cellpose_Version", "message": "not v9"}], 422)
        self.assertIn("- cellpose_Version: not v9", str(e))

    def test_the_run_message(self):
        text = run_message({"run": "r1", "message": "biomero-stage run r1: 1 submission(s)",
                            "submissions": [["r1-1", "cellpose", True]],
                            "created": [["Dataset", 7, "results"]], "notices": ["`E-mail`: no mail"]})
        for part in ("r1-1: cellpose", "created Dataset 7 `results`", "note: `E-mail`"):
            self.assertIn(part, text)

    def test_the_setup_report(self):
        text = setup_text({"host": "slurm", "folders": [{"role": "data", "path": "/d", "exists": True, "writable": True}],
                           "workflows": [{"key": "cellpose", "version": "v1.4.0", "sif": "c.sif", "available": [],
                                          "image_ready": False, "job_script": "j.sh", "script_ready": True}],
                           "converters": [], "pending": [], "pull_log": []})
        self.assertIn("cellpose v1.4.0: missing container c.sif", text)
        self.assertIn("Pull missing containers", text)


if __name__ == "__main__":
    unittest.main()
