"""The attended mode's logic: progress lines, BIOMERO's table names, ROI pairs and
Labels2Rois inputs, the settings that turn it on. The follow loop against a real
daemon is in ``tests/end_to_end.rs``."""

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biomero_stage_omero import attended  # noqa: E402
from biomero_stage_omero.daemon import DaemonError, Settings  # noqa: E402

RESULTS = {
    "submission": "r1-1",
    "workflow": "cellpose",
    "workflow_id": "6f1c2b9e-4f0a-5d3c-9e71-0b2a7d4fe8c5",
    "job_id": "4711",
    "tables": ["counts.csv"],
    "images": [
        {"path": "cells_01_cp_masks.tif", "source": {"image_id": 201, "name": "cells_01.tif"}},
        {"path": "cells_01_flows.tif", "source": {"image_id": 201, "name": "cells_01.tif"}},
        {"path": "cells_02_cp_masks.tif", "source": {"image_id": 202, "name": "cells_02.tif"}},
        {"path": "plate.zarr/A/1/0/labels/cellpose/", "kind": "label", "source": None},
    ],
    "orders": [{"uuid": "u1"}],
}


class Progress(unittest.TestCase):
    def test_a_moving_step_shows_its_rate_and_time_left(self):
        line = attended.progress_line({
            "id": "r1-1", "workflow": "cellpose", "state": "staged",
            "progress": {"step": "upload", "detail": {
                "progress": 42, "bytes_done": 1_200_000_000, "bytes_total": 2_900_000_000,
                "files_done": 3, "files_total": 8, "bytes_per_s": 85_000_000, "eta_s": 20.0}}})
        self.assertEqual(
            line, "r1-1 cellpose: staged · upload 42% (1.2 GB of 2.9 GB, 3 of 8 files, 85.0 MB/s, about 20 s left)")

    def test_a_failure_says_why(self):
        line = attended.progress_line({
            "id": "r1-2", "workflow": "w", "state": "failed", "error": "the job exited 1", "progress": None})
        self.assertEqual(line, "r1-2 w: failed: the job exited 1")


class Following(unittest.TestCase):
    """The loop's ends that need no run: a daemon that is not there, a session OMERO ended."""

    def unreachable(self):
        from biomero_stage_omero.daemon import Daemon
        return Daemon(Settings("http://127.0.0.1:1", timeout=2))

    def test_a_daemon_that_does_not_answer_is_said_once_then_given_up(self):
        said, slept = [], []
        with self.assertRaises(DaemonError):
            attended.follow(self.unreachable(), "r1", lambda: True, said.append, 15, slept.append)
        self.assertEqual(len(said), 1, said)
        self.assertIn("did not answer", said[0])
        self.assertEqual(len(slept), attended.MAX_SILENT_POLLS - 1)

    def test_a_session_omero_ended_stops_the_follow_before_asking(self):
        with self.assertRaises(attended.SessionLost) as e:
            attended.follow(self.unreachable(), "r1", lambda: False, print, 15, lambda s: None)
        self.assertIn("the run goes on in biomero-stage", str(e.exception))


class Tables(unittest.TestCase):
    def test_named_as_biomero_names_them(self):
        self.assertEqual(attended.table_name("sub/counts.csv", "4711", "6f1c"), "counts_4711_6f1c.csv")
        self.assertEqual(attended.table_name("counts.csv"), "counts.csv")


class Rois(unittest.TestCase):
    def test_imported_images_pair_with_their_recorded_sources(self):
        found = [(901, "cells_01_cp_masks.tif"), (902, "cells_01_flows.tif"), (903, "cells_02_cp_masks.tif"), (904, "other.tif")]
        candidates, unmatched = attended.roi_candidates(found, RESULTS)
        self.assertEqual(unmatched, ["other.tif"])
        self.assertEqual(candidates[0], (901, 201, "cells_01_cp_masks.tif", "cells_01.tif"))
        # b has one result; a has two, and only the one whose name hints at labels is taken
        pairs, ambiguous = attended.select_roi_image_pairs(candidates)
        self.assertEqual(sorted(pairs), [(901, 201), (903, 202)])
        self.assertEqual(ambiguous, 0)
        # a pattern decides alone
        pairs, _ = attended.select_roi_image_pairs(candidates, "*_flows*")
        self.assertEqual(pairs, [(902, 201)])

    def test_sources_without_a_hint_stay_ambiguous(self):
        pairs, ambiguous = attended.select_roi_image_pairs(
            [(1, 10, "x_a.tif", "x.tif"), (2, 10, "x_b.tif", "x.tif")])
        self.assertEqual((pairs, ambiguous), ([], 1))

    def test_labels2rois_gets_biomeros_inputs(self):
        inputs = {"6c) ROI shape": "Mask", "6e) Clear existing ROIs on original images": True,
                  "6f) Clear existing ROI name filter": " cellpose* ", "6d) Delete label images after ROI creation": False,
                  "6g) ROI color override": ""}
        wf = RESULTS["workflow_id"]
        got = attended.labels2rois_inputs([(901, 201), (903, 202)], inputs, "cellpose", wf)
        self.assertEqual(got, {
            "Mapping_Mode": "Explicit Image IDs", "Label_Image_IDs": [901, 903], "Target_Image_IDs": [201, 202],
            "ROI_type": "Mask", "ROI_Name_Prefix": f"cellpose__{wf}",
            # biomero 2.8.3 resolve_workflow_color: the scheme's colour by the uuid
            "ROI_Color": attended.QUALITATIVE_COLOR_SCHEME[int(wf.replace("-", ""), 16) % 10],
            "Clear_Existing_ROIs": True, "Clear_ROI_Filter": "cellpose*", "Delete_Label_Image": False})
        self.assertEqual(attended.labels2rois_inputs([], {"6g) ROI color override": "#ab12cd"}, "w", wf)["ROI_Color"],
                         "#AB12CD")
        with self.assertRaises(ValueError):
            attended.labels2rois_inputs([], {"6c) ROI shape": "Ellipse"}, "w", wf)
        with self.assertRaises(ValueError):
            attended.labels2rois_inputs([], {"6g) ROI color override": "red"}, "w", wf)

    def test_a_site_without_biomeros_event_store_still_gets_a_stable_run_uuid(self):
        r = dict(RESULTS, workflow_id=None)
        self.assertEqual(attended.run_uuid(r), attended.run_uuid(dict(r)))
        self.assertNotEqual(attended.run_uuid(r), attended.run_uuid(dict(r, submission="r1-2")))


class Mode(unittest.TestCase):
    def test_the_mode_and_the_poll_come_from_the_file_or_the_environment(self):
        with tempfile.TemporaryDirectory() as d:
            ini = Path(d) / "omero-scripts.ini"
            ini.write_text("[biomero-stage]\nmode = attended\npoll_seconds = 5\n")
            s = Settings.load(str(ini), env={})
            self.assertTrue(s.attended)
            self.assertEqual(s.poll_seconds, 5.0)
            self.assertFalse(Settings.load(str(ini), env={"BIOMERO_STAGE_MODE": "hand-off"}).attended)
            self.assertFalse(Settings.load("/nonexistent.ini", env={}).attended)

    def test_a_wrong_mode_or_poll_is_named(self):
        with self.assertRaises(DaemonError) as e:
            Settings.load("/nonexistent.ini", env={"BIOMERO_STAGE_MODE": "stay"})
        self.assertIn("mode `stay`", str(e.exception))
        for bad in ("0", "often", "3600"):
            with self.assertRaises(DaemonError) as e:
                Settings.load("/nonexistent.ini", env={"BIOMERO_STAGE_POLL_SECONDS": bad})
            self.assertIn("poll_seconds", str(e.exception))

    def test_only_tables_and_rois_keep_the_script_after_the_run(self):
        self.assertFalse(attended.finishing_needed({"1) Zip attachment to parent": True}))
        self.assertTrue(attended.finishing_needed({"6a) Create ROIs from label images": True}))


if __name__ == "__main__":
    unittest.main()
