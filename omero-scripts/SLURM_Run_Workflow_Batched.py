#!/usr/bin/env python
# biomero-stage drop-in for BIOMERO's SLURM_Run_Workflow_Batched.py: OMERO finds it by this exact name.
# Install the biomero_stage_omero package into OMERO's Python environment first
# (see README.md next to this file); everything this script does lives there.
from biomero_stage_omero.omero_shell import run_workflow

if __name__ == "__main__":
    run_workflow(batched=True)
