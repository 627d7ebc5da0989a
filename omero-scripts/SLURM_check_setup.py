#!/usr/bin/env python
# biomero-stage drop-in for BIOMERO's SLURM_check_setup.py: OMERO finds it by this exact name.
# Install the biomero_stage_omero package into OMERO's Python environment first
# (see README.md next to this file); everything this script does lives there.
from biomero_stage_omero.omero_shell import check_setup

if __name__ == "__main__":
    check_setup()
