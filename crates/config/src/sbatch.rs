//! SBATCH parameters: typed, checked, and merged in BIOMERO's precedence.
//!
//! Parameters arrive as `key=value` strings from the Admin tab's web form
//! (`cellpose_job_gres=gpu:1g.10gb:1`, `sbatch_mem=8GB`). They end up on an
//! `sbatch` command line on the cluster, so each one is checked here, once:
//! the key must look like a long option, the value must come from a small safe
//! character set (no spaces, quotes, `;`, `$`, backticks or newlines), `time`
//! must be a Slurm time. The cluster layer still quotes every argument; this is
//! the first of two walls, and the one that gives the admin a message with a
//! file and line.
//!
//! Precedence (docs/contracts.md#the-job): per-workflow `k_job_<flag>` → GPU defaults (when
//! the workflow uses a GPU) → `slurm_default_partition` → global
//! `sbatch_<flag>`. The first level that sets a flag wins; GPU resource flags
//! (`gres`, `gpus`, `gpus-per-*`) count as one group, so a workflow's `gpus`
//! is never joined by a default `gres`.

use std::fmt;

use serde::Serialize;

use crate::error::ConfigError;
use crate::location::Location;

/// Characters allowed in a value besides ASCII letters and digits.
///
/// Enough for partitions, GRES (`gpu:1g.10gb:1`), memory, times, mail
/// addresses and types (`END,FAIL`), constraints (`a&b|c`), accounts and QOS.
pub const VALUE_PUNCTUATION: &str = "_.,:=@%+/-[]*&|";

/// Flags that biomero-stage sets itself or that would change what the job is.
pub const RESERVED_FLAGS: [&str; 9] = [
    "wrap",
    "export",
    "export-file",
    "output",
    "uid",
    "gid",
    "test-only",
    "parsable",
    "wait",
];

/// Flags that request GPUs; one level's choice excludes the others' defaults.
pub const GPU_RESOURCE_FLAGS: [&str; 5] = [
    "gres",
    "gpus",
    "gpus-per-node",
    "gpus-per-task",
    "gpus-per-socket",
];

/// Every long option of `sbatch` (Slurm 22.05's sbatch(1)), one per line after `#` comments.
const SBATCH_OPTIONS: &str = include_str!("sbatch_options.txt");

/// Whether `flag` is a long option of sbatch; if not, the closest one.
pub fn known_flag(flag: &str) -> Result<(), Option<&'static str>> {
    let options = SBATCH_OPTIONS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let mut best: Option<(&'static str, f64)> = None;
    for o in options {
        if o == flag {
            return Ok(());
        }
        let score = strsim::jaro_winkler(flag, o);
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((o, score));
        }
    }
    Err(best.filter(|(_, s)| *s >= 0.8).map(|(o, _)| o))
}

/// The warning for a parameter whose flag sbatch does not know, configured as `key`.
pub fn unknown_flag_warning(key: &str, p: &SbatchParam) -> Option<crate::error::Warning> {
    let Err(closest) = known_flag(&p.flag) else {
        return None;
    };
    let hint = closest.map_or_else(
        || "check the spelling against `sbatch --help`".to_owned(),
        |c| format!("did you mean `--{c}` ({})?", key.replace(&p.flag, c)),
    );
    Some(crate::error::Warning::at(
        p.at.clone(),
        format!(
            "`{key}` becomes `--{}`, which is not an sbatch option, so sbatch will refuse the job: {hint}",
            p.flag
        ),
    ))
}

/// One `--flag=value` for sbatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SbatchParam {
    /// The long option name without `--`.
    pub flag: String,
    /// The value.
    pub value: String,
    /// Where it was configured.
    pub at: Location,
}

impl SbatchParam {
    /// Checks and builds a parameter.
    pub fn parse(flag: &str, value: &str, at: Location) -> Result<Self, ConfigError> {
        let refuse = |reason: String| ConfigError::InvalidSbatch {
            at: at.clone(),
            key: flag.to_owned(),
            value: value.to_owned(),
            reason,
        };
        check_flag(flag).map_err(&refuse)?;
        let value = value.trim();
        if value.is_empty() {
            return Err(refuse(
                "the value is empty; give a value or remove the line".into(),
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || VALUE_PUNCTUATION.contains(*c)))
        {
            return Err(refuse(format!(
                "{} is not allowed in a value; use letters, digits and {VALUE_PUNCTUATION}",
                describe_char(bad)
            )));
        }
        if flag == "time" {
            check_time(value).map_err(&refuse)?;
        }
        if matches!(flag, "mem" | "mem-per-cpu" | "mem-per-gpu") {
            check_memory(value).map_err(&refuse)?;
        }
        Ok(SbatchParam {
            flag: flag.to_owned(),
            value: value.to_owned(),
            at,
        })
    }

    /// The command-line argument, `--flag=value`.
    pub fn to_arg(&self) -> String {
        format!("--{}={}", self.flag, self.value)
    }

    fn group(&self) -> &str {
        if GPU_RESOURCE_FLAGS.contains(&self.flag.as_str()) {
            "gpu-resource"
        } else {
            &self.flag
        }
    }
}

impl fmt::Display for SbatchParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_arg())
    }
}

fn check_flag(flag: &str) -> Result<(), String> {
    let mut chars = flag.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || flag.len() < 2
    {
        return Err(format!(
            "`{flag}` is not an sbatch long option name; names are lower case letters, digits and '-', starting with a letter, like mem or cpus-per-task"
        ));
    }
    if RESERVED_FLAGS.contains(&flag) {
        return Err(format!(
            "--{flag} is set by biomero-stage itself (job log omero-%j.log, job environment) and cannot be configured"
        ));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\n' | '\r' => "a line break".into(),
        '\t' => "a tab".into(),
        '`' => "a backtick".into(),
        c => format!("`{}`", c.escape_default()),
    }
}

/// Checks a Slurm memory size (`--mem`, `--mem-per-cpu`, `--mem-per-gpu`): a whole
/// number, optionally with K, M, G or T (and a B, as BIOMERO's examples write `15GB`).
pub fn check_memory(value: &str) -> Result<(), String> {
    let digits = value.chars().take_while(char::is_ascii_digit).count();
    let unit = value[digits..].to_ascii_uppercase();
    if digits > 0
        && matches!(
            unit.as_str(),
            "" | "K" | "M" | "G" | "T" | "KB" | "MB" | "GB" | "TB"
        )
    {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a Slurm memory size; write a whole number with K, M, G or T (e.g. 15G or 15GB; megabytes without a unit)"
        ))
    }
}

/// Checks a Slurm time limit: minutes, `mm:ss`, `hh:mm:ss`, `d-hh`, `d-hh:mm`,
/// `d-hh:mm:ss`, or `UNLIMITED`/`INFINITE`.
pub fn check_time(value: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "`{value}` is not a Slurm time; write [d-]hh:mm:ss (e.g. 08:00:00 or 1-12:00:00) or minutes (e.g. 90)"
        )
    };
    if value.eq_ignore_ascii_case("unlimited") || value.eq_ignore_ascii_case("infinite") {
        return Ok(());
    }
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_digit());
    let below = |s: &str, limit: u32| s.len() <= 2 && s.parse::<u32>().is_ok_and(|v| v < limit);
    let (days, clock) = match value.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, value),
    };
    if let Some(d) = days
        && !digits(d)
    {
        return Err(bad());
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let ok = match (days, parts.as_slice()) {
        // minutes | minutes:seconds | hours:minutes:seconds
        (None, [m]) => digits(m),
        (None, [m, s]) => digits(m) && below(s, 60),
        (None, [h, m, s]) => digits(h) && below(m, 60) && below(s, 60),
        // days-hours | days-hours:minutes | days-hours:minutes:seconds
        (Some(_), [h]) => below(h, 24),
        (Some(_), [h, m]) => below(h, 24) && below(m, 60),
        (Some(_), [h, m, s]) => below(h, 24) && below(m, 60) && below(s, 60),
        _ => false,
    };
    if ok { Ok(()) } else { Err(bad()) }
}

/// Which precedence level a parameter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SbatchLevel {
    /// `k_job_<flag>` in `[WORKFLOWS]`/`[MODELS]`.
    Workflow,
    /// `gpu_partition`, `gpu_gres`/`gpu_gpus` for GPU workflows.
    GpuDefault,
    /// `slurm_default_partition`.
    DefaultPartition,
    /// `sbatch_<flag>` in `[SLURM]`.
    Global,
}

impl fmt::Display for SbatchLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SbatchLevel::Workflow => "workflow",
            SbatchLevel::GpuDefault => "gpu default",
            SbatchLevel::DefaultPartition => "default partition",
            SbatchLevel::Global => "global",
        })
    }
}

/// A parameter that survived precedence, with its level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedSbatch {
    /// The parameter.
    #[serde(flatten)]
    pub param: SbatchParam,
    /// The level it came from.
    pub level: SbatchLevel,
}

/// Merges the levels, highest precedence first; the first level that sets a flag wins.
pub fn resolve<'a>(
    levels: impl IntoIterator<Item = (SbatchLevel, &'a [SbatchParam])>,
) -> Vec<ResolvedSbatch> {
    let mut out: Vec<ResolvedSbatch> = Vec::new();
    for (level, params) in levels {
        let taken: Vec<String> = out.iter().map(|r| r.param.group().to_owned()).collect();
        for p in params {
            if !taken.iter().any(|g| g == p.group()) {
                out.push(ResolvedSbatch {
                    param: p.clone(),
                    level,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(flag: &str, value: &str) -> SbatchParam {
        SbatchParam::parse(flag, value, Location::Default).unwrap()
    }

    #[test]
    fn good_parameters_pass() {
        for (k, v) in [
            ("gres", "gpu:1g.10gb:1"),
            ("partition", "luna-gpu-short"),
            ("mem", "15GB"),
            ("time", "08:00:00"),
            ("time", "1-12:00:00"),
            ("time", "90"),
            ("mail-type", "END,FAIL"),
            ("constraint", "a100&ib"),
            ("cpus-per-task", "4"),
        ] {
            assert_eq!(p(k, v).to_arg(), format!("--{k}={v}"));
        }
    }

    #[test]
    fn shell_metacharacters_and_spaces_are_refused_with_the_reason() {
        for (v, what) in [
            ("gpu;rm -rf ~", "`;`"),
            ("$(touch /tmp/x)", "`$`"),
            ("`id`", "a backtick"),
            ("a\nb", "a line break"),
            ("a b", "a space"),
            ("'q'", "`\\'`"),
        ] {
            let e = SbatchParam::parse("gres", v, Location::env("X")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(what), "{v:?}: {msg}");
        }
    }

    #[test]
    fn bad_keys_reserved_flags_and_times_are_refused() {
        for (k, v) in [
            ("Mem", "1G"),
            ("-mem", "1G"),
            ("m", "1G"),
            ("mem_per_cpu", "1G"),
            ("wrap", "true"),
            ("output", "x.log"),
            ("time", "8h"),
            ("time", "00:61:00"),
            ("time", "1-25:00:00"),
            ("mem", ""),
            ("mem", "lots"),
            ("mem", "1.5G"),
            ("mem-per-cpu", "G"),
        ] {
            assert!(
                SbatchParam::parse(k, v, Location::Default).is_err(),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn sbatch_options_are_known_and_typos_named_with_the_closest() {
        for ok in [
            "partition",
            "gres",
            "mem-per-cpu",
            "time",
            "cpus-per-task",
            "mail-type",
        ] {
            assert_eq!(known_flag(ok), Ok(()), "{ok}");
        }
        assert_eq!(known_flag("partiton"), Err(Some("partition")));
        assert_eq!(known_flag("cpus-per-tsk"), Err(Some("cpus-per-task")));
        assert_eq!(known_flag("zzzz"), Err(None));
        let w =
            unknown_flag_warning("stardist_job_partiton", &p("partiton", "gpu")).expect("warned");
        assert!(
            w.message.contains("`--partiton`") && w.message.contains("stardist_job_partition"),
            "{}",
            w.message
        );
        assert!(unknown_flag_warning("sbatch_mem", &p("mem", "4GB")).is_none());
    }

    #[test]
    fn precedence_is_workflow_then_gpu_then_default_partition_then_global() {
        let wf = [p("mem", "15GB"), p("gpus", "1")];
        let gpu = [p("partition", "gpu"), p("gres", "gpu:1")];
        let dp = [p("partition", "cpu")];
        let global = [p("mem", "4GB"), p("time", "01:00:00"), p("partition", "x")];
        let r = resolve([
            (SbatchLevel::Workflow, &wf[..]),
            (SbatchLevel::GpuDefault, &gpu[..]),
            (SbatchLevel::DefaultPartition, &dp[..]),
            (SbatchLevel::Global, &global[..]),
        ]);
        let args: Vec<(String, SbatchLevel)> =
            r.iter().map(|r| (r.param.to_arg(), r.level)).collect();
        assert_eq!(
            args,
            vec![
                ("--mem=15GB".into(), SbatchLevel::Workflow),
                ("--gpus=1".into(), SbatchLevel::Workflow),
                ("--partition=gpu".into(), SbatchLevel::GpuDefault),
                ("--time=01:00:00".into(), SbatchLevel::Global),
            ]
        );
    }
}
