#!/usr/bin/env python
"""Writes inputs with the peers' own writers, for the leniency tests. Prints JSON with SHA-256s.

  write_peer.py tiff-cyx OUT.tif          tifffile, plain 'shaped' description, axes CYX (uint16)
  write_peer.py tiff-imagej OUT.tif       tifffile ImageJ hyperstack TZCYX (uint8)
  write_peer.py tiff-tiled OUT.tif        tifffile, CYX (uint16) in 32x48 tiles, deflate, edges not on a tile
  write_peer.py tiff-strips OUT.tif       tifffile, CYX (uint16) in strips of 7 rows, deflate
  write_peer.py imagej-of ZARR OUT.tif    tifffile ImageJ hyperstack of an OME-Zarr image's level 0
  write_peer.py ome-zarr-image OUT 0.4|0.5   ome-zarr-py write_image, default pyramid (s0/0 naming)
  write_peer.py ome-zarr-plate OUT 0.4|0.5   ome-zarr-py plate with labels (inner version keys in 0.5)
  write_peer.py rgb-zarr OUT              ome-zarr-py CYX uint8 with 3 channels (an RGB image)
"""
import hashlib, json, sys, warnings
import numpy as np

warnings.simplefilter("ignore")


def sha(a):
    a = np.ascontiguousarray(a)
    return hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()


def tczyx(a, axes):
    names = list(axes)
    for ax in "tcz":
        if ax not in names:
            a = a[np.newaxis]
            names.insert(0, ax)
    return np.transpose(a, [names.index(x) for x in "tczyx"])


rng = np.random.default_rng(7)
kind, out = sys.argv[1], sys.argv[2]
if kind == "tiff-cyx":
    import tifffile
    a = rng.integers(0, 60000, size=(3, 130, 170), dtype=np.uint16)
    tifffile.imwrite(out, a, photometric="minisblack", metadata={"axes": "CYX"})
    print(json.dumps({"sha256_tczyx": sha(tczyx(a, "cyx")), "shape": list(a.shape)}))
elif kind in ("tiff-tiled", "tiff-strips"):
    import tifffile
    a = rng.integers(0, 60000, size=(3, 101, 157), dtype=np.uint16)
    layout = {"tile": (32, 48)} if kind == "tiff-tiled" else {"rowsperstrip": 7}
    tifffile.imwrite(out, a, photometric="minisblack", metadata={"axes": "CYX"},
                     compression="zlib", **layout)
    print(json.dumps({"sha256_tczyx": sha(tczyx(a, "cyx")), "shape": list(a.shape)}))
elif kind == "imagej-of":
    import tifffile, zarr
    g = zarr.open_group(sys.argv[2], mode="r")
    attrs = dict(g.attrs)
    attrs = attrs.get("ome", attrs)
    a = np.asarray(g[attrs["multiscales"][0]["datasets"][0]["path"]][...])  # TCZYX
    tifffile.imwrite(sys.argv[3], np.transpose(a, (0, 2, 1, 3, 4)), imagej=True,
                     metadata={"axes": "TZCYX", "mode": "composite"})
    print(json.dumps({"sha256_tczyx": sha(a)}))
elif kind == "tiff-imagej":
    import tifffile
    a = rng.integers(0, 255, size=(2, 3, 2, 40, 50), dtype=np.uint8)  # TZCYX
    tifffile.imwrite(out, a, imagej=True, metadata={"axes": "TZCYX"})
    print(json.dumps({"sha256_tczyx": sha(tczyx(a, "tzcyx")), "shape": list(a.shape)}))
else:
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image, write_labels, write_plate_metadata, write_well_metadata
    fmt = FormatV04() if (len(sys.argv) < 4 or sys.argv[3] == "0.4") else FormatV05()
    root = zarr.open_group(out, mode="w", zarr_format=fmt.zarr_format)
    if kind == "ome-zarr-image":
        a = rng.integers(0, 60000, size=(1, 2, 3, 300, 260), dtype=np.uint16)
        write_image(a, root, fmt=fmt, axes="tczyx")
        print(json.dumps({"sha256_tczyx": sha(a)}))
    elif kind == "rgb-zarr":
        a = rng.integers(0, 255, size=(3, 64, 80), dtype=np.uint8)
        write_image(a, root, fmt=fmt, axes="cyx", scale_factors=())
        print(json.dumps({"sha256_tczyx": sha(tczyx(a, "cyx")), "yxc_sha256": sha(np.moveaxis(a, 0, -1))}))
    elif kind == "ome-zarr-plate":
        write_plate_metadata(root, ["A"], ["1", "2"], ["A/1", "A/2"], fmt=fmt, name="peerplate")
        shas = {}
        for w in ["A/1", "A/2"]:
            r, c = w.split("/")
            wg = root.require_group(r).require_group(c)
            write_well_metadata(wg, [{"path": "0"}], fmt=fmt)
            ig = wg.require_group("0")
            a = rng.integers(0, 60000, size=(2, 100, 120), dtype=np.uint16)
            write_image(a, ig, fmt=fmt, axes="cyx", scale_factors=())
            lab = (a[0] > 40000).astype(np.uint32)
            write_labels(lab, ig, name="cells", fmt=fmt, axes="yx", scale_factors=(),
                         label_metadata={"colors": [{"label-value": 1}]})
            shas[w + "/0"] = sha(tczyx(a, "cyx"))
        print(json.dumps({"fields": shas}))
    else:
        sys.exit(f"unknown kind {kind}")
