#!/usr/bin/env python
"""Peer for plate writing: read an HCS plate (with labels) and write it anew with
ome-zarr-py (write_plate_metadata / write_well_metadata / write_image / write_labels),
in NGFF 0.4 or 0.5, default pyramid. This is what a Python tool does to convert or
re-export a plate; biomero-stage's equivalent is its verified plate re-encode.

Usage: plate_copy.py SRC DST --ngff 0.5
"""
import argparse, sys, time, warnings
import numpy as np
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image, write_labels, write_plate_metadata, write_well_metadata

warnings.simplefilter("ignore")
ap = argparse.ArgumentParser()
ap.add_argument("src"); ap.add_argument("dst"); ap.add_argument("--ngff", default="0.5")
a = ap.parse_args()
fmt = FormatV04() if a.ngff == "0.4" else FormatV05()
t0 = time.perf_counter()
src = zarr.open_group(a.src, mode="r")
attrs = dict(src.attrs); attrs = attrs.get("ome", attrs)
p = attrs["plate"]
rows = [r["name"] for r in p["rows"]]; cols = [c["name"] for c in p["columns"]]
wells = [w["path"] for w in p["wells"]]
dst = zarr.open_group(a.dst, mode="w", zarr_format=fmt.zarr_format)
write_plate_metadata(dst, rows, cols, wells, fmt=fmt, field_count=p.get("field_count"),
                     acquisitions=p.get("acquisitions"), name=p.get("name"))
total = 0
for w in wells:
    r, c = w.split("/")
    wsrc = src[w]
    wa = dict(wsrc.attrs); wa = wa.get("ome", wa)
    images = wa["well"]["images"]
    wg = dst.require_group(r).require_group(c)
    write_well_metadata(wg, [{"path": im["path"], **({"acquisition": im["acquisition"]} if "acquisition" in im else {})} for im in images], fmt=fmt)
    for im in images:
        fsrc = wsrc[im["path"]]
        fa = dict(fsrc.attrs); fa = fa.get("ome", fa)
        ms = fa["multiscales"][0]
        data = fsrc[ms["datasets"][0]["path"]][...]
        total += data.nbytes
        fg = wg.require_group(im["path"])
        write_image(data, fg, fmt=fmt, axes=[x["name"] for x in ms["axes"]])
        if "labels" in fsrc:
            la = dict(fsrc["labels"].attrs); la = la.get("ome", la)
            for name in la.get("labels", []):
                lg = fsrc["labels"][name]
                lat = dict(lg.attrs); lat = lat.get("ome", lat)
                lms = lat["multiscales"][0]
                lab = lg[lms["datasets"][0]["path"]][...]
                total += lab.nbytes
                write_labels(lab, fg, name=name, fmt=fmt, axes=[x["name"] for x in lms["axes"]],
                             label_metadata={"colors": [{"label-value": 1, "rgba": [255, 255, 0, 255]}]})
dt = time.perf_counter() - t0
print(f"plate copy: {total/1e6:.1f} MB pixels in {dt:.2f}s, {total/1e6/dt:.1f} MB/s", file=sys.stderr)
