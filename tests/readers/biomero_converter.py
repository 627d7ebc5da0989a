#!/usr/bin/env python
"""Runs BIOMERO's own Zarr -> TIFF converter (biomero's `resources/convert_zarr_to_tiff.py`, the
file shipped in the biomero 2.8.3 wheel, as its Slurm conversion job runs it) on a Zarr, and
prints the TIFF it names and wrote, as JSON.

Usage: biomero_converter.py CONVERTER_PY ZARR

The converter opens the store with `with zarr.open(...)`, which zarr-python 2 allowed and 3 does
not: the only shim is a group that is its own context manager. Everything else (the key it picks,
the name it gives, the axes it writes) is BIOMERO's code.
"""
import importlib.util, json, os, sys, warnings
import zarr

warnings.simplefilter("ignore")
converter, store = sys.argv[1], sys.argv[2]

_open = zarr.open


class Ctx:
    def __init__(self, g):
        self._g = g

    def __enter__(self):
        return self._g

    def __exit__(self, *a):
        return False


zarr.open = lambda *a, **k: Ctx(_open(*a, **k))
spec = importlib.util.spec_from_file_location("convert_zarr_to_tiff", converter)
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
before = set(os.listdir(os.path.dirname(store)))
m.convert_zarr_to_tiff(store)
written = sorted(set(os.listdir(os.path.dirname(store))) - before)
print(json.dumps({"written": written}))
