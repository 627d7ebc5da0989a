#!/bin/sh
# The demo workflow of `biomero-stage demo`: a BIOMERO job script that segments the
# images in $DATA_PATH/data/in by Otsu's threshold and writes label images (TIFF
# workflows) or label images inside the returned OME-Zarr images and plates (Zarr
# workflows) to $DATA_PATH/data/out. Run by the local executor (or sbatch) with
# BIOMERO's job environment: DATA_PATH, and each descriptor parameter in upper case
# (MIN_SIZE). `biomero-stage demo` fills in the path of the biomero-stage binary.
#SBATCH --time=00:10:00
set -e
BIOMERO_STAGE_BIN=@BIOMERO_STAGE_BIN@
echo "threshold workflow starting on $(hostname) 0%"
exec "$BIOMERO_STAGE_BIN" demo-threshold \
    --input "$DATA_PATH/data/in" \
    --output "$DATA_PATH/data/out" \
    --min-size "${MIN_SIZE:-20}"
