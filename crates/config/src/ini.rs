//! One INI file, read the way Python's `configparser` reads it.
//!
//! BIOMERO reads `slurm-config.ini` with `ConfigParser(allow_no_value=True)`,
//! so this module follows that dialect rather than "INI" in general: keys are
//! case-insensitive (lower-cased), section names are case-sensitive, `=` and
//! `:` both separate a key from its value (whichever comes first), full-line
//! comments start with `#` or `;` (also when indented), there are no inline
//! comments, an indented line continues the previous value, a key without a
//! delimiter has no value, and a section or key repeated within one file is an
//! error (`strict=True`). Line splitting and classification come from the
//! `ini-roundtrip` crate, which keeps raw lines and line numbers; this module
//! adds the dialect on top and keeps the line of every key for messages.

use std::path::Path;
use std::sync::Arc;

use crate::error::ConfigError;
use crate::location::{Location, shared_path};

/// One `key = value` line (with its continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// The key, lower-cased as configparser does.
    pub key: String,
    /// The value; `None` for a key written without `=` (allow_no_value).
    pub value: Option<String>,
    /// The line the key is on (1-based).
    pub line: u32,
}

/// One `[section]` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSection {
    /// The section name, case preserved.
    pub name: String,
    /// The header's line.
    pub line: u32,
    /// The entries in file order.
    pub entries: Vec<IniEntry>,
}

/// A parsed INI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniDocument {
    /// The file the document was read from.
    pub path: Arc<Path>,
    /// The sections in file order.
    pub sections: Vec<IniSection>,
}

impl IniDocument {
    /// The location of a line of this document.
    pub fn at(&self, line: u32) -> Location {
        Location::file(&self.path, line)
    }
}

/// Parses the bytes of one INI file. All syntax errors are returned, not only the first.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<IniDocument, Vec<ConfigError>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            return Err(vec![ConfigError::NotUtf8 {
                path: path.to_path_buf(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(e.valid_up_to() - line_start + 1).unwrap_or(u32::MAX),
            }]);
        }
    };
    // A byte-order mark at the start is what Windows editors write; configparser
    // would choke on it as part of the first section name, we skip it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let shared = shared_path(path);
    let mut doc = IniDocument {
        path: Arc::clone(&shared),
        sections: Vec::new(),
    };
    let mut errors = Vec::new();
    // Whether the last line was a key (so an indented line continues its value).
    let mut continuable = false;
    let mut parser = ini_roundtrip::Parser::new(text);
    loop {
        let line = parser.line() + 1;
        let Some(item) = parser.next() else { break };
        let at = || Location::file(&shared, line);
        match item {
            ini_roundtrip::Item::SectionEnd => {}
            ini_roundtrip::Item::Blank { .. } | ini_roundtrip::Item::Comment { .. } => {
                continuable = false;
            }
            ini_roundtrip::Item::Section { name, .. } => {
                continuable = false;
                open_section(&mut doc, &mut errors, name, line);
            }
            ini_roundtrip::Item::Error(raw) => {
                continuable = false;
                let trimmed = raw.trim();
                if let Some(name) = trimmed
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .filter(|s| !s.is_empty())
                {
                    open_section(&mut doc, &mut errors, name.trim(), line);
                } else {
                    errors.push(ConfigError::Syntax {
                        at: at(),
                        message: format!(
                            "malformed section header `{trimmed}`; write it as [NAME] on a line of its own"
                        ),
                    });
                }
            }
            ini_roundtrip::Item::Property { raw, .. } => {
                let indented = raw.starts_with([' ', '\t']);
                let trimmed = raw.trim();
                if trimmed.starts_with(['#', ';']) {
                    continuable = false;
                    continue;
                }
                if indented && continuable {
                    if let Some(entry) = doc.sections.last_mut().and_then(|s| s.entries.last_mut())
                    {
                        let v = entry.value.get_or_insert_with(String::new);
                        v.push('\n');
                        v.push_str(trimmed);
                    }
                    continue;
                }
                let Some(section) = doc.sections.last_mut() else {
                    errors.push(ConfigError::Syntax {
                        at: at(),
                        message: format!(
                            "`{trimmed}` comes before any [SECTION] header; put it under the section it belongs to"
                        ),
                    });
                    continue;
                };
                let (key, value) = split_key_value(trimmed);
                if key.is_empty() {
                    errors.push(ConfigError::Syntax {
                        at: at(),
                        message: format!(
                            "`{trimmed}` has no key before the `=`; write key = value"
                        ),
                    });
                    continuable = false;
                    continue;
                }
                let key = key.to_lowercase();
                if let Some(first) = section.entries.iter().find(|e| e.key == key) {
                    errors.push(ConfigError::DuplicateKey {
                        at: at(),
                        section: section.name.clone(),
                        key: key.clone(),
                        first_line: first.line,
                    });
                    continuable = false;
                    continue;
                }
                continuable = value.is_some();
                section.entries.push(IniEntry {
                    key,
                    value: value.map(str::to_owned),
                    line,
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(errors)
    }
}

fn open_section(doc: &mut IniDocument, errors: &mut Vec<ConfigError>, name: &str, line: u32) {
    if let Some(first) = doc.sections.iter().find(|s| s.name == name) {
        errors.push(ConfigError::DuplicateSection {
            at: doc.at(line),
            section: name.to_owned(),
            first_line: first.line,
        });
        // Keep reading into the first occurrence so that later lines are still checked.
        let idx = doc
            .sections
            .iter()
            .position(|s| s.name == name)
            .unwrap_or(0);
        let s = doc.sections.remove(idx);
        doc.sections.push(s);
        return;
    }
    doc.sections.push(IniSection {
        name: name.to_owned(),
        line,
        entries: Vec::new(),
    });
}

/// Splits at the first `=` or `:` (configparser's default delimiters).
fn split_key_value(line: &str) -> (&str, Option<&str>) {
    match line.find(['=', ':']) {
        Some(i) => (line[..i].trim(), Some(line[i + 1..].trim())),
        None => (line, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<IniDocument, Vec<ConfigError>> {
        parse(Path::new("/t/slurm-config.ini"), s.as_bytes())
    }

    #[test]
    fn keys_are_lowercased_and_sections_keep_case() {
        let d = parse_str("[SSH]\nHost = slurm\n").unwrap();
        assert_eq!(d.sections[0].name, "SSH");
        assert_eq!(d.sections[0].entries[0].key, "host");
        assert_eq!(d.sections[0].entries[0].value.as_deref(), Some("slurm"));
        assert_eq!(d.sections[0].entries[0].line, 2);
    }

    #[test]
    fn colon_is_a_delimiter_when_it_comes_first() {
        let d = parse_str("[A]\nk: v=w\nurl=https://x/y\n").unwrap();
        let e = &d.sections[0].entries;
        assert_eq!(
            (e[0].key.as_str(), e[0].value.as_deref()),
            ("k", Some("v=w"))
        );
        assert_eq!(
            (e[1].key.as_str(), e[1].value.as_deref()),
            ("url", Some("https://x/y"))
        );
    }

    #[test]
    fn indented_lines_continue_values_and_indented_comments_are_comments() {
        let d = parse_str("[A]\nk = one\n  two\n   # note\nj\n").unwrap();
        let e = &d.sections[0].entries;
        assert_eq!(e[0].value.as_deref(), Some("one\ntwo"));
        assert_eq!((e[1].key.as_str(), e[1].value.as_deref()), ("j", None));
        assert_eq!(e[1].line, 5);
    }

    #[test]
    fn no_inline_comments() {
        let d = parse_str("[A]\nk = a # b\n").unwrap();
        assert_eq!(d.sections[0].entries[0].value.as_deref(), Some("a # b"));
    }

    #[test]
    fn duplicate_key_in_one_section_is_an_error_with_both_lines() {
        let errs = parse_str("[A]\nk=1\n\nK=2\n").unwrap_err();
        assert_eq!(
            errs,
            vec![ConfigError::DuplicateKey {
                at: Location::file(&shared_path(Path::new("/t/slurm-config.ini")), 4),
                section: "A".into(),
                key: "k".into(),
                first_line: 2,
            }]
        );
        assert!(errs[0].to_string().contains("/t/slurm-config.ini:4"));
    }

    #[test]
    fn duplicate_section_is_an_error() {
        let errs = parse_str("[A]\n[B]\n[A]\n").unwrap_err();
        assert!(matches!(
            &errs[0],
            ConfigError::DuplicateSection { first_line: 1, .. }
        ));
    }

    #[test]
    fn key_before_any_section_is_an_error() {
        let errs = parse_str("host=slurm\n[SSH]\n").unwrap_err();
        assert!(errs[0].to_string().contains(":1:"), "{}", errs[0]);
    }

    #[test]
    fn malformed_header_and_empty_key_are_errors() {
        let errs = parse_str("[SSH\n[A]\n= v\n").unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].to_string().contains("malformed section header"));
        assert!(errs[1].to_string().contains("no key"));
    }

    #[test]
    fn trailing_space_after_header_is_accepted() {
        let d = parse_str("[SSH]  \nhost=x\n").unwrap();
        assert_eq!(d.sections[0].name, "SSH");
    }

    #[test]
    fn non_utf8_bytes_name_line_and_column() {
        let errs = parse(Path::new("/t/x.ini"), b"[A]\nk=ab\xff\n").unwrap_err();
        assert_eq!(
            errs,
            vec![ConfigError::NotUtf8 {
                path: "/t/x.ini".into(),
                line: 2,
                column: 5
            }]
        );
    }

    #[test]
    fn crlf_line_endings_and_bom_are_read() {
        let d = parse_str("\u{feff}[A]\r\nk=v\r\n").unwrap();
        assert_eq!(d.sections[0].entries[0].value.as_deref(), Some("v"));
    }
}
