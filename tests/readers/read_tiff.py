#!/usr/bin/env python
"""Reads a TIFF with tifffile and prints what an independent reader sees, as JSON.

Usage: read_tiff.py FILE
Output: shape, dtype, axes (tifffile's series axes), is_ome, is_bigtiff, compression,
OME-XML facts (physical sizes, channel names, dimension order), and the SHA-256 of the
pixels reordered to TCZYX (little-endian, C order) for comparison with the source.
"""
import hashlib, json, sys
import numpy as np
import tifffile

path = sys.argv[1]
with tifffile.TiffFile(path) as tf:
    s = tf.series[0]
    data = s.asarray()
    axes = s.axes
    out = {"shape": list(data.shape), "dtype": str(data.dtype), "axes": axes,
           "is_ome": tf.is_ome, "is_bigtiff": tf.is_bigtiff, "pages": len(tf.pages),
           "compression": int(tf.pages[0].compression), "series": len(tf.series)}
    if tf.is_ome:
        import xml.etree.ElementTree as ET
        root = ET.fromstring(tf.ome_metadata)
        ns = {"o": root.tag.split("}")[0].strip("{")}
        px = root.find(".//o:Image/o:Pixels", ns)
        out["ome"] = {k: px.get(k) for k in ("DimensionOrder", "Type", "SizeX", "SizeY", "SizeZ", "SizeC", "SizeT",
                                              "PhysicalSizeX", "PhysicalSizeXUnit", "PhysicalSizeZ")}
        out["ome"]["channels"] = [c.get("Name") for c in px.findall("o:Channel", ns)]
        # colours as RRGGBB from OME's signed RGBA integer; display windows from the map
        # annotation biomero-stage writes them in (OME-XML has no attribute for them)
        out["ome"]["colors"] = [None if c.get("Color") is None else "%06X" % ((int(c.get("Color")) & 0xFFFFFFFF) >> 8)
                                for c in px.findall("o:Channel", ns)]
        windows = {}
        for m in root.findall(".//o:MapAnnotation", ns):
            if m.get("Namespace") == "biomero-stage/display-window":
                for e in m.findall("o:Value/o:M", ns):
                    windows[int(e.get("K"))] = [float(v) for v in e.text.split(",")]
        out["ome"]["windows"] = [windows.get(i) for i in range(len(out["ome"]["channels"]))]
        out["ome"]["name"] = root.find(".//o:Image", ns).get("Name")
# reorder to TCZYX: map tifffile axes (T, Z, C, Y, X, S) onto TCZYX
a = data
names = list(axes.replace("S", "C"))
for ax in "TCZ":
    if ax not in names:
        a = a[np.newaxis]
        names.insert(0, ax)
order = [names.index(ax) for ax in "TCZYX"]
a = np.ascontiguousarray(np.transpose(a, order))
out["shape_tczyx"] = list(a.shape)
out["sha256_tczyx"] = hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()
print(json.dumps(out))
