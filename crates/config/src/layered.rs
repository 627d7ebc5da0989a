//! Several INI files read as one, later files overriding earlier keys.
//!
//! BIOMERO passes its search list to one `ConfigParser.read([...])` call, so
//! sections from different files merge and a key in a later file replaces the
//! same key from an earlier one, while the strict duplicate checks apply only
//! within one file. Values are returned after configparser's basic
//! interpolation (`%%` → `%`, `%(key)s` → another key of the same section), so
//! a value with a stray `%` is an error here exactly where BIOMERO would fail.
//!
//! `[DEFAULT]` works as configparser's default section: it is not a section
//! of its own, and every other section holds its keys unless it sets them
//! itself — for lookups, for listing a section's keys and for interpolation.

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::ini::IniDocument;
use crate::location::{Located, Location};

/// A key with its raw (not interpolated) value and origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayeredEntry {
    /// Lower-cased key.
    pub key: String,
    /// The value as written; `None` for a key without `=`.
    pub raw: Option<String>,
    /// The file and line that won.
    pub at: Location,
}

/// A section merged over all files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayeredSection {
    /// The section name.
    pub name: String,
    /// The header that opened it first.
    pub at: Location,
    /// Entries in first-seen order; a later file's value replaces an earlier one in place.
    pub entries: Vec<LayeredEntry>,
}

/// configparser's default section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// All files of one configuration, merged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayeredIni {
    /// Sections in first-seen order, each holding the `[DEFAULT]` keys it does not set.
    pub sections: Vec<LayeredSection>,
    /// The `[DEFAULT]` keys.
    pub defaults: Vec<LayeredEntry>,
    /// The files that were read, in order.
    pub files: Vec<PathBuf>,
}

impl LayeredIni {
    /// Merges documents in order; later documents override earlier keys.
    pub fn merge(docs: Vec<IniDocument>) -> Self {
        let mut out = LayeredIni::default();
        for doc in docs {
            out.files.push(doc.path.to_path_buf());
            let path = std::sync::Arc::clone(&doc.path);
            for section in doc.sections {
                let idx = match out.sections.iter().position(|s| s.name == section.name) {
                    Some(i) => i,
                    None => {
                        out.sections.push(LayeredSection {
                            name: section.name.clone(),
                            at: Location::file(&path, section.line),
                            entries: Vec::new(),
                        });
                        out.sections.len() - 1
                    }
                };
                let target = &mut out.sections[idx];
                for entry in section.entries {
                    let new = LayeredEntry {
                        at: Location::file(&path, entry.line),
                        key: entry.key,
                        raw: entry.value,
                    };
                    match target.entries.iter_mut().find(|e| e.key == new.key) {
                        Some(existing) => *existing = new,
                        None => target.entries.push(new),
                    }
                }
            }
        }
        if let Some(i) = out.sections.iter().position(|s| s.name == DEFAULT_SECTION) {
            out.defaults = out.sections.remove(i).entries;
            for s in &mut out.sections {
                for d in &out.defaults {
                    if !s.entries.iter().any(|e| e.key == d.key) {
                        s.entries.push(d.clone());
                    }
                }
            }
        }
        out
    }

    /// A section by exact (case-sensitive) name.
    pub fn section(&self, name: &str) -> Option<&LayeredSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The interpolated value of `key` in `section`, if the key is present.
    pub fn get(
        &self,
        section: &str,
        key: &str,
    ) -> Option<Result<Located<Option<String>>, ConfigError>> {
        let s = self.section(section)?;
        let e = s.entries.iter().find(|e| e.key == key)?;
        Some(s.interpolated(e))
    }
}

impl LayeredSection {
    /// The interpolated value of one of this section's entries.
    pub fn interpolated(
        &self,
        entry: &LayeredEntry,
    ) -> Result<Located<Option<String>>, ConfigError> {
        let value = match &entry.raw {
            None => None,
            Some(raw) => {
                let mut budget = Budget {
                    bytes: MAX_INTERPOLATED_BYTES,
                    references: MAX_INTERPOLATION_REFERENCES,
                };
                Some(self.interpolate(&entry.key, raw, &entry.at, 0, &mut budget)?)
            }
        };
        Ok(Located::new(value, entry.at.clone()))
    }

    fn interpolate(
        &self,
        key: &str,
        raw: &str,
        at: &Location,
        depth: u32,
        budget: &mut Budget,
    ) -> Result<String, ConfigError> {
        let err = |message: String| ConfigError::Interpolation {
            at: at.clone(),
            key: key.to_owned(),
            message,
        };
        if depth > 10 {
            return Err(err(
                "interpolation nests deeper than 10 levels (a `%(name)s` loop?); write %% for a literal %"
                    .into(),
            ));
        }
        let too_big = || {
            err(format!(
                "interpolation expands to more than {MAX_INTERPOLATED_BYTES} bytes or {MAX_INTERPOLATION_REFERENCES} references (nested %(name)s that repeat one another?); simplify the value"
            ))
        };
        let mut out = String::new();
        let mut rest = raw;
        let push = |out: &mut String, text: &str, budget: &mut Budget| {
            budget.bytes = budget.bytes.checked_sub(text.len()).ok_or_else(too_big)?;
            out.push_str(text);
            Ok::<(), ConfigError>(())
        };
        while let Some(i) = rest.find('%') {
            push(&mut out, &rest[..i], budget)?;
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("%%") {
                out.push('%');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("%(") {
                let Some(end) = r.find(")s") else {
                    return Err(err(format!(
                        "bad interpolation `{rest}`; write %(name)s to refer to another key, or %% for a literal %"
                    )));
                };
                let name = r[..end].to_lowercase();
                let Some(target) = self.entries.iter().find(|e| e.key == name) else {
                    return Err(err(format!(
                        "refers to %({name})s, which is not a key of [{}]; write %% for a literal %",
                        self.name
                    )));
                };
                budget.references = budget.references.checked_sub(1).ok_or_else(too_big)?;
                let value = target.raw.as_deref().unwrap_or("");
                // the nested call spends from the same budget for what it pushes
                let expanded = self.interpolate(&name, value, at, depth + 1, budget)?;
                out.push_str(&expanded);
                rest = &r[end + 2..];
            } else {
                return Err(err(format!(
                    "'%' must be followed by '%' or '(' (found `{}`); write %% for a literal %",
                    rest.chars().take(8).collect::<String>()
                )));
            }
        }
        push(&mut out, rest, budget)?;
        Ok(out)
    }
}

/// The most bytes one value may expand to: far more than any path or option needs.
pub const MAX_INTERPOLATED_BYTES: usize = 64 * 1024;
/// The most `%(name)s` references one value may expand, nested ones included.
pub const MAX_INTERPOLATION_REFERENCES: usize = 10_000;

/// What one value's interpolation may still spend.
struct Budget {
    /// Bytes of output left.
    bytes: usize,
    /// References left.
    references: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ini::parse;
    use std::path::Path;

    fn doc(name: &str, text: &str) -> IniDocument {
        parse(Path::new(name), text.as_bytes()).unwrap()
    }

    /// What Python's configparser (BIOMERO's reader) makes of `text`: every
    /// section's keys with `get`'s value (after interpolation; `None` without one), or the error's class name.
    fn configparser(text: &str) -> String {
        let script = r#"
import configparser, sys
c = configparser.ConfigParser(allow_no_value=True)
try:
    c.read_string(sys.stdin.read())
    for s in c.sections():
        for k in c.options(s):
            print(f"{s}.{k}={c.get(s, k)}")
except Exception as e:
    print(type(e).__name__)
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed: configparser is the oracle");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    }

    /// The same listing from our reader.
    fn ours(text: &str) -> String {
        let l = LayeredIni::merge(vec![doc("/x.ini", text)]);
        let mut out = String::new();
        for s in &l.sections {
            for e in &s.entries {
                match s.interpolated(e) {
                    Ok(v) => {
                        let v = v.value.unwrap_or_else(|| "None".to_owned());
                        out.push_str(&format!("{}.{}={v}\n", s.name, e.key));
                    }
                    Err(_) => return "InterpolationError\n".into(),
                }
            }
        }
        out
    }

    #[test]
    fn default_section_and_interpolation_behave_as_configparser() {
        for text in [
            "[DEFAULT]\nroot=/data\n[SLURM]\nslurm_data_path=%(root)s/in\n[SSH]\nhost=h\n",
            "[DEFAULT]\nhost=d\n[SSH]\nhost=own\n",
            "[DEFAULT]\nbase=/b\nderived=%(base)s/x\n[S]\nbase=/override\n",
            "[S]\npct=50%%\nname=%(other)s-1\nother=o\n",
            "[DEFAULT]\nflag\n[S]\nk=v\n",
        ] {
            let sorted = |t: String| {
                let mut v: Vec<String> = t.lines().map(str::to_owned).collect();
                v.sort();
                v
            };
            assert_eq!(sorted(ours(text)), sorted(configparser(text)), "{text}");
        }
        let l = LayeredIni::merge(vec![doc("/x.ini", "[DEFAULT]\nk=v\n[A]\n")]);
        assert!(l.section("DEFAULT").is_none(), "DEFAULT is not a section");
        assert_eq!(
            l.get("A", "k").unwrap().unwrap().value.as_deref(),
            Some("v")
        );
        assert!(l.get("B", "k").is_none(), "no section, no defaults");
    }

    #[test]
    fn later_files_override_earlier_keys_and_sections_merge() {
        let l = LayeredIni::merge(vec![
            doc(
                "/etc/slurm-config.ini",
                "[SSH]\nhost=a\n[SLURM]\nslurm_data_path=x\n",
            ),
            doc("/home/o/slurm-config.ini", "[SSH]\nhost=b\n"),
        ]);
        let host = l.get("SSH", "host").unwrap().unwrap();
        assert_eq!(host.value.as_deref(), Some("b"));
        assert_eq!(host.at.to_string(), "/home/o/slurm-config.ini:2");
        let data = l.get("SLURM", "slurm_data_path").unwrap().unwrap();
        assert_eq!(data.at.to_string(), "/etc/slurm-config.ini:4");
    }

    #[test]
    fn interpolation_follows_configparser() {
        let l = LayeredIni::merge(vec![doc(
            "/x.ini",
            "[S]\nbase=/data\npath=%(base)s/in\npct=50%%\nbad=50%\n",
        )]);
        assert_eq!(
            l.get("S", "path").unwrap().unwrap().value.as_deref(),
            Some("/data/in")
        );
        assert_eq!(
            l.get("S", "pct").unwrap().unwrap().value.as_deref(),
            Some("50%")
        );
        let e = l.get("S", "bad").unwrap().unwrap_err();
        assert!(e.to_string().contains("/x.ini:5"), "{e}");
    }

    #[test]
    fn interpolation_loops_are_reported() {
        let l = LayeredIni::merge(vec![doc("/x.ini", "[S]\na=%(b)s\nb=%(a)s\n")]);
        assert!(l.get("S", "a").unwrap().is_err());
    }

    /// Values that reference one another several times each grow exponentially within
    /// configparser's ten levels; the expansion stops at its byte and reference budgets.
    #[test]
    fn interpolation_bombs_stop_at_their_budget() {
        for (fan_out, leaf) in [(8, "xxxxxxxxxxxxxxxx"), (4, "x"), (10, "")] {
            let mut text = String::from("[S]\n");
            for level in 0..10 {
                let refs = format!("%(k{})s", level + 1).repeat(fan_out);
                text.push_str(&format!("k{level} = {refs}\n"));
            }
            text.push_str(&format!("k10 = {leaf}\n"));
            assert!(text.len() < 1600, "{}", text.len());
            let l = LayeredIni::merge(vec![doc("/bomb.ini", &text)]);
            // the error points at the line of the value asked for
            let e = l.get("S", "k0").unwrap().unwrap_err().to_string();
            assert!(
                e.contains("/bomb.ini:2") && e.contains("expands to more than"),
                "{e}"
            );
        }
        // an ordinary chain stays within it
        let l = LayeredIni::merge(vec![doc(
            "/ok.ini",
            "[S]\nroot=/data\nin=%(root)s/in\nout=%(in)s/../out\n",
        )]);
        assert_eq!(
            l.get("S", "out").unwrap().unwrap().value.as_deref(),
            Some("/data/in/../out")
        );
    }
}
