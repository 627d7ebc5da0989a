#!/usr/bin/env python
"""Stands in for `omero zarr export` (omero-cli-zarr) in the exporter tests: no OMERO server,
and so no real `omero` CLI, can run here. It takes omero-cli-zarr's own arguments and writes
what omero-cli-zarr writes, with ome-zarr-py:

  fake_omero_zarr.py --fake-config CFG.json zarr -s SERVER -k SESSION -g GROUP \
      export --output DIR --format 0.4|0.5 Image:ID

- prints "Exporting to DIR/ID.ome.zarr (0.4)" and "Finished." as omero-cli-zarr's
  image_to_zarr does, and writes DIR/ID.ome.zarr: the image (tczyx, one level per halving
  down to 96 px as add_image does) and an `omero` block with the rendering settings;
- CFG.json says per image id where its pixels are (`sources`: an OME-Zarr image of the test
  world), how it behaves (`modes`: ok | fail | sleep | half | wrong), and where each run is
  logged (`log`: a line "start|end ID TIME SESSION GROUP" per event, for the concurrency and
  identity checks).
"""
import json, sys, time, warnings

warnings.simplefilter("ignore")

argv = sys.argv[1:]
cfg = json.load(open(argv[argv.index("--fake-config") + 1]))
assert "zarr" in argv and "export" in argv, argv
session = argv[argv.index("-k") + 1]
group = argv[argv.index("-g") + 1]
server = argv[argv.index("-s") + 1]
out_dir = argv[argv.index("--output") + 1]
fmt_version = argv[argv.index("--format") + 1] if "--format" in argv else "0.5"
obj = argv[-1]
assert obj.startswith("Image:"), obj
image = obj.split(":", 1)[1]
mode = cfg["modes"].get(image, "ok")


def log(event):
    with open(cfg["log"], "a") as f:
        f.write(f"{event} {image} {time.time():.3f} {session} {group}\n")


log("start")
target = f"{out_dir}/{image}.ome.zarr"
print(f"Joined session {session} ({server})", file=sys.stderr, flush=True)
print(f"Exporting to {target} ({fmt_version})", flush=True)
if mode == "fail":
    print("Traceback (most recent call last):", file=sys.stderr)
    print(f"omero.SecurityViolation: Image:{image} is not readable in group {group}", file=sys.stderr)
    log("end")
    sys.exit(2)
if mode == "sleep":
    time.sleep(120)
    sys.exit(0)

import numpy as np
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image

fmt = FormatV04() if fmt_version == "0.4" else FormatV05()
root = zarr.open_group(target, mode="w", zarr_format=fmt.zarr_format)
if mode == "half":
    # killed halfway, as a crash leaves it: the group exists, its arrays do not
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a} for a in "tczyx"],
                                  "datasets": [{"path": "0"}]}]
    print("Finished.", flush=True)
    log("end")
    sys.exit(0)
src = zarr.open_group(cfg["sources"][image], mode="r")
attrs = dict(src.attrs)
attrs = attrs.get("ome", attrs)
data = np.asarray(src[attrs["multiscales"][0]["datasets"][0]["path"]][...])
if mode == "wrong":
    data = data[..., :10, :10]
time.sleep(cfg.get("sleep", 0))
write_image(data, root, fmt=fmt, axes="tczyx")
# add_omero_metadata: the rendering settings, as OMERO renders the image
channels = [{"label": f"ch{c}", "color": cfg["colors"][c % len(cfg["colors"])], "active": True,
             "window": {"min": 0.0, "max": 65535.0, "start": 50.0 + c, "end": 3000.0 + 10.0 * c}}
            for c in range(data.shape[1])]
omero = {"id": int(image), "name": f"image {image}", "version": fmt_version, "channels": channels,
         "rdefs": {"model": "color", "defaultT": 0, "defaultZ": 0}}
if fmt.zarr_format == 3:
    ome = dict(root.attrs["ome"])
    ome["omero"] = omero
    root.attrs["ome"] = ome
else:
    root.attrs["omero"] = omero
print("Finished.", flush=True)
log("end")
