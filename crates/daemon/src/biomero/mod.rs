//! BIOMERO's own run requests: what OMERO.biomero's Run button starts.
//!
//! OMERO.biomero runs the OMERO script named exactly `SLURM_Run_Workflow.py`
//! (or `SLURM_Run_Workflow_Batched.py`) with BIOMERO's script inputs. The
//! drop-in scripts in `omero-scripts/` forward those inputs, the user's OMERO
//! session key and active group to `POST /api/v1/biomero/runs`; the CLI's
//! `biomero-stage biomero run` does the same from a file. Each request is read
//! key by key ([`keys`], [`translate`]), the session checked against OMERO
//! and everything validated before anything is queued ([`accept`]).

pub mod accept;
pub mod keys;
pub mod translate;
