//! Typed reading of INI and environment values, with BIOMERO's rules.
//!
//! Booleans accept what configparser's `getboolean` and BIOMERO's environment
//! parsing accept (`true/false`, `yes/no`, `on/off`, `1/0`, `y/n`, any case).
//! Optional strings treat an empty value as unset, as BIOMERO does for paths,
//! partitions and GPU defaults.

use crate::error::ConfigError;
use crate::location::{Located, Location};

/// Parses a boolean the way BIOMERO does.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" => Some(true),
        "false" | "0" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// A boolean value, or an error naming the key and its origin.
pub fn bool_value(key: &str, value: &str, at: &Location) -> Result<bool, ConfigError> {
    parse_bool(value).ok_or_else(|| ConfigError::InvalidBool {
        at: at.clone(),
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// A non-negative integer value, or an error naming the key and its origin.
pub fn u32_value(key: &str, value: &str, at: &Location) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| ConfigError::InvalidInteger {
            at: at.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
        })
}

/// An optional string: `None` when absent, without a value, or empty.
pub fn non_empty(v: Located<Option<String>>) -> Option<Located<String>> {
    match v.value {
        Some(s) if !s.trim().is_empty() => Some(Located::new(s.trim().to_owned(), v.at)),
        _ => None,
    }
}

/// Checks that `value` names a place *under* a configured folder: relative, without `..`,
/// `.` or empty components, and without control characters. Used for each workflow's
/// container folder (`k=`, under `slurm_images_path`) and job script (`k_job=`, under
/// `slurm_script_path`), which must never reach outside their folder.
pub fn confined_relative(key: &str, value: &str, at: &Location) -> Result<(), ConfigError> {
    let reason = if value.starts_with('/') || value.starts_with('~') {
        Some("is absolute; give a path relative to its folder")
    } else if value.chars().any(char::is_control) {
        Some("has control characters")
    } else if value
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("has an empty, `.` or `..` component; it must stay inside its folder")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::InvalidValue {
            at: at.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_paths_stay_inside_their_folder() {
        let at = Location::Default;
        for ok in ["cellpose", "jobs/cellpose.sh", "a.b/c-d_e.sh"] {
            assert!(confined_relative("k_job", ok, &at).is_ok(), "{ok}");
        }
        for bad in [
            "../../../elsewhere/evil.sh",
            "jobs/../../x.sh",
            "/abs/evil.sh",
            "~/evil.sh",
            "..",
            ".",
            "a//b",
            "a/",
            "a\nb",
        ] {
            let bad = bad.replace("\\n", "\n");
            let e = confined_relative("k_job", &bad, &at)
                .unwrap_err()
                .to_string();
            assert!(e.contains("k_job"), "{e}");
        }
    }

    #[test]
    fn booleans_follow_biomero() {
        for t in ["true", "True", "1", "yes", "Y", "on"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "FALSE", "0", "no", "n", "Off"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
        let e = bool_value("track_workflows", "maybe", &Location::env("X")).unwrap_err();
        assert!(e.to_string().contains("use true or false"));
    }
}
