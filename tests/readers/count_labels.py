#!/usr/bin/env python
"""Counts the objects in label images with tifffile and zarr-python; prints JSON.

Usage: count_labels.py PATH
- a TIFF: {"PATH": {"": objects}} (distinct non-zero values of the whole file);
- an OME-Zarr image or HCS plate: for every image (a plate's fields as "<row>/<col>/<field>")
  and every label image listed in its labels/ group, the distinct non-zero values of level 0.
"""
import json, sys
import numpy as np

path = sys.argv[1]


def objects(a):
    return int(np.count_nonzero(np.unique(np.asarray(a))))


def ome(group):
    attrs = dict(group.attrs)
    return attrs.get("ome", attrs)


def image_labels(group):
    out = {}
    if "labels" in group:
        for name in ome(group["labels"]).get("labels", []):
            lg = group["labels"][name]
            path0 = ome(lg)["multiscales"][0]["datasets"][0]["path"]
            out[name] = objects(lg[path0][...])
    return out


if path.lower().endswith((".tif", ".tiff")):
    import tifffile
    print(json.dumps({path: {"": objects(tifffile.imread(path))}}))
else:
    import zarr
    root = zarr.open_group(path, mode="r")
    attrs = ome(root)
    result = {}
    if "plate" in attrs:
        for well in attrs["plate"]["wells"]:
            wg = root[well["path"]]
            for img in ome(wg)["well"]["images"]:
                result[f'{well["path"]}/{img["path"]}'] = image_labels(wg[img["path"]])
    else:
        result[""] = image_labels(root)
    print(json.dumps(result))
