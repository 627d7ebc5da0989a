"""OME-Zarr images that are readable but not conformant, and ome-zarr-models' verdict on a store.

    nonconforming.py make DIR      writes four_space, finer_level, larger_level, channels, good
    nonconforming.py validate PATH prints {"ok": bool, "error": str}
"""
import json
import shutil
import sys

import zarr


def make(path, axes, shapes, scales, channels=None):
    shutil.rmtree(path, ignore_errors=True)
    g = zarr.open_group(path, mode="w", zarr_format=2)
    ds = []
    for i, (sh, sc) in enumerate(zip(shapes, scales)):
        g.create_array(str(i), shape=sh, chunks=sh, dtype="uint16", fill_value=0)[...] = 1
        ds.append({"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": sc}]})
    attrs = {"multiscales": [{"version": "0.4", "name": "x", "axes": axes, "datasets": ds}]}
    if channels is not None:
        attrs["omero"] = {
            "channels": [
                {"label": f"c{i}", "color": "FFFFFF", "active": True,
                 "window": {"min": 0, "max": 65535, "start": 0, "end": 100}}
                for i in range(channels)
            ],
            "rdefs": {"model": "color"},
        }
    g.attrs.update(attrs)


def space(n):
    return {"name": n, "type": "space", "unit": "micrometer"}


CHANNEL = {"name": "c", "type": "channel"}

if sys.argv[1] == "make":
    d = sys.argv[2]
    make(f"{d}/four_space.zarr", [CHANNEL, space("w"), space("z"), space("y"), space("x")],
         [(2, 2, 2, 8, 8)], [[1, 1, 1, 1, 1]])
    make(f"{d}/finer_level.zarr", [CHANNEL, space("y"), space("x")],
         [(2, 8, 8), (2, 16, 16)], [[1, 1, 1], [1, 0.5, 0.5]])
    make(f"{d}/larger_level.zarr", [CHANNEL, space("y"), space("x")],
         [(2, 8, 8), (2, 16, 16)], [[1, 1, 1], [1, 2, 2]])
    make(f"{d}/channels.zarr", [CHANNEL, space("y"), space("x")], [(2, 8, 8)], [[1, 1, 1]], channels=1)
    make(f"{d}/good.zarr", [CHANNEL, space("y"), space("x")],
         [(2, 8, 8), (2, 4, 4)], [[1, 1, 1], [1, 2, 2]], channels=2)
    print(json.dumps({"ok": True}))
else:
    from ome_zarr_models import open_ome_zarr
    try:
        open_ome_zarr(sys.argv[2])
        print(json.dumps({"ok": True, "error": ""}))
    except Exception as e:  # the verdict is the point, whatever the exception
        print(json.dumps({"ok": False, "error": " ".join(str(e).split())[:500]}))
