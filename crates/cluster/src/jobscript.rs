//! The job script biomero-stage writes for workflows that have none
//! (`k_job` unset and no `slurm_script_repo`), equivalent to BIOMERO's
//! template: BIAFLOWS folders, one `--<flag>="$PARAM"` per descriptor
//! parameter, `--local -nmc`, the environment from sbatch or from an env file
//! given as `$1`, `set -eo pipefail`, and a failure when the workflow leaves
//! `data/out` empty.
//!
//! Flags and variable names come from the workflow's descriptor, a file on
//! GitHub: each is checked to be a plain option / identifier before it is
//! written into the script, and values only ever reach the script as quoted
//! variables.

use std::fmt::Write as _;

use stage_config::descriptor::Descriptor;

use crate::error::{ClusterError, Result};
use crate::slurm::submit::check_env_name;

/// Checks a command-line flag from a descriptor.
pub fn check_flag(flag: &str) -> Result<()> {
    let body = flag.trim_start_matches('-');
    let dashes = flag.len() - body.len();
    let ok = (1..=2).contains(&dashes)
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Invalid(format!(
            "the descriptor's flag `{}` is not a plain command-line option",
            flag.escape_debug()
        )))
    }
}

/// The job script of workflow `key`.
pub fn generate(key: &str, descriptor: Option<&Descriptor>) -> Result<String> {
    let mut params = String::new();
    for p in descriptor
        .map(|d| d.parameters.as_slice())
        .unwrap_or_default()
    {
        let env = p.env_name();
        check_env_name(&env)?;
        check_flag(&p.flag)?;
        writeln!(params, "    {}=\"${{{env}}}\" \\", p.flag).ok();
    }
    let safe_key = crate::layout::safe_name(key);
    Ok(format!(
        r#"#!/bin/bash
# Job script for the `{safe_key}` workflow, written by biomero-stage (biomero-stage init).
# The environment comes from sbatch, or from an env file given as the first argument:
# DATA_PATH, IMAGE_PATH, IMAGE_VERSION, SINGULARITY_IMAGE, SCRIPT_PATH, the parameters.
#SBATCH --job-name=omero-job-{safe_key}
#SBATCH --cpus-per-task=4
#SBATCH --time=00:45:00
#SBATCH --mem=5GB
#SBATCH --output=omero-%j.log
#SBATCH --open-mode=append
set -eo pipefail

BIOMERO_ENV_FILE="${{1:-}}"
if [ -n "$BIOMERO_ENV_FILE" ] && [ -f "$BIOMERO_ENV_FILE" ]; then
    . "$BIOMERO_ENV_FILE"
fi

echo "Running {safe_key} Job w/ $IMAGE_PATH | $SINGULARITY_IMAGE | $DATA_PATH | $SCRIPT_PATH"
module load singularity > /dev/null 2>&1 || true

singularity run ${{GPU_FLAG:-}} "$IMAGE_PATH/$SINGULARITY_IMAGE" \
    --infolder "$DATA_PATH/data/in" \
    --outfolder "$DATA_PATH/data/out" \
    --gtfolder "$DATA_PATH/data/gt" \
    --local \
{params}    -nmc

if [ -z "$(ls -A "$DATA_PATH/data/out")" ]; then
    echo "ERROR: the workflow wrote nothing into $DATA_PATH/data/out" >&2
    exit 1
fi
echo "Job completed successfully."
"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        for ok in ["--diameter", "-d", "--cp_model", "--nuc.channel"] {
            assert!(check_flag(ok).is_ok(), "{ok}");
        }
        for bad in ["--x;rm -rf ~", "diameter", "---x", "--$(id)", "--a b", "--"] {
            assert!(check_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_script_is_valid_bash() {
        let s = generate("cell expansion", None).unwrap();
        assert!(s.contains("omero-job-cell_expansion"));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("job.sh");
        std::fs::write(&f, &s).unwrap();
        let ok = std::process::Command::new("bash")
            .arg("-n")
            .arg(&f)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}
