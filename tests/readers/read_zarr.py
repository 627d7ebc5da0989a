#!/usr/bin/env python
"""Reads an OME-Zarr with zarr-python, ome-zarr-py and ome-zarr-models; prints JSON.

Usage: read_zarr.py STORE
- validates the store with ome-zarr-models (open_ome_zarr) and reports the model class;
- reads it with ome-zarr-py's Reader (nodes, their specs);
- for an image: level-0 shape, dtype, axes, SHA-256 of level 0 in TCZYX order, labels (shape, SHA-256);
- for a plate: the same for every field, keyed "<row>/<col>/<field>".
"""
import hashlib, json, sys, warnings
import numpy as np
import zarr

warnings.simplefilter("ignore")
path = sys.argv[1]


def sha_tczyx(arr, axes):
    a = np.asarray(arr)
    names = [x["name"] if isinstance(x, dict) else x for x in axes]
    for ax in "tcz":
        if ax not in names:
            a = a[np.newaxis]
            names.insert(0, ax)
    a = np.ascontiguousarray(np.transpose(a, [names.index(x) for x in "tczyx"]))
    return list(a.shape), hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()


def ome_attrs(group):
    attrs = dict(group.attrs)
    return attrs.get("ome", attrs)


def image_info(group):
    attrs = ome_attrs(group)
    ms = attrs["multiscales"][0]
    arr = group[ms["datasets"][0]["path"]]
    shape, sha = sha_tczyx(arr[...], ms["axes"])
    info = {"shape": list(arr.shape), "dtype": str(arr.dtype), "axes": [a["name"] for a in ms["axes"]],
            "levels": len(ms["datasets"]), "shape_tczyx": shape, "sha256_tczyx": sha,
            "channels": [c.get("label") for c in attrs.get("omero", {}).get("channels", [])],
            "colors": [c.get("color") for c in attrs.get("omero", {}).get("channels", [])],
            "windows": [[c["window"]["start"], c["window"]["end"]] if "window" in c else None
                        for c in attrs.get("omero", {}).get("channels", [])],
            "scale0": ms["datasets"][0]["coordinateTransformations"][0]["scale"], "labels": {}}
    if "labels" in group:
        for name in ome_attrs(group["labels"]).get("labels", []):
            lg = group["labels"][name]
            la = ome_attrs(lg)
            lms = la["multiscales"][0]
            larr = lg[lms["datasets"][0]["path"]]
            lshape, lsha = sha_tczyx(larr[...], lms["axes"])
            info["labels"][name] = {"shape_tczyx": lshape, "sha256_tczyx": lsha, "dtype": str(larr.dtype),
                                    "max": int(np.asarray(larr[...]).max()),
                                    "colors": la.get("image-label", {}).get("colors")}
    return info


import contextlib, io
out = {}
from ome_zarr_models import open_ome_zarr
model = open_ome_zarr(path)
out["model"] = type(model).__module__.split(".")[-2] + "." + type(model).__name__

from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
with contextlib.redirect_stdout(io.StringIO()):  # ome-zarr-py prints format guesses
    nodes = list(Reader(parse_url(path))())
out["ome_zarr_py_nodes"] = [type(s).__name__ for n in nodes[:1] for s in n.specs]

root = zarr.open_group(path, mode="r")
out["zarr_format"] = root.metadata.zarr_format
attrs = ome_attrs(root)
if "plate" in attrs:
    p = attrs["plate"]
    out["kind"] = "plate"
    out["plate"] = {"name": p.get("name"), "rows": [r["name"] for r in p["rows"]],
                    "columns": [c["name"] for c in p["columns"]], "wells": [w["path"] for w in p["wells"]],
                    "acquisitions": p.get("acquisitions")}
    out["fields"] = {}
    for w in p["wells"]:
        wg = root[w["path"]]
        for im in ome_attrs(wg)["well"]["images"]:
            out["fields"][w["path"] + "/" + im["path"]] = image_info(wg[im["path"]])
else:
    out["kind"] = "image"
    out["image"] = image_info(root)
print(json.dumps(out))
