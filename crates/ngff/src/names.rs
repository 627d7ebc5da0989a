//! File names that are safe on any filesystem and unique within a folder.
//!
//! Image names come from people (`Well A1 [field 2]`, `Zellkern µ-Test`); staged
//! files land on Linux clusters, get tarred, zipped and read by Python. A safe
//! name keeps ASCII letters, digits, `.`, `-` and `_`, turns everything else
//! into `_`, never starts with `.` or `-`, and stays short; collisions get a
//! numeric suffix.

use std::collections::HashSet;

/// The longest stem produced (leaves room for suffixes and extensions).
pub const MAX_STEM: usize = 120;

/// A filesystem-safe stem for `name`.
pub fn safe_stem(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_underscore = false;
    for ch in name.chars() {
        let keep = ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_');
        let c = if keep { ch } else { '_' };
        if c == '_' && last_underscore {
            continue;
        }
        last_underscore = c == '_';
        out.push(c);
    }
    let trimmed = out.trim_matches(|c| c == '_' || c == '.' || c == '-');
    let mut s: String = trimmed.chars().take(MAX_STEM).collect();
    if s.is_empty() {
        s = "image".to_owned();
    }
    s
}

/// Hands out unique names within one folder.
#[derive(Debug, Default, Clone)]
pub struct UniqueNames {
    taken: HashSet<String>,
}

impl UniqueNames {
    /// A new, empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A unique `<safe stem><ext>`: `a.tif`, then `a_1.tif`, `a_2.tif`, …
    pub fn claim(&mut self, name: &str, ext: &str) -> String {
        let stem = safe_stem(name);
        let mut candidate = format!("{stem}{ext}");
        let mut n = 1;
        while !self.taken.insert(candidate.to_ascii_lowercase()) {
            candidate = format!("{stem}_{n}{ext}");
            n += 1;
        }
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_unique() {
        assert_eq!(safe_stem("Well A1 [field 2]"), "Well_A1_field_2");
        assert_eq!(safe_stem("Zellkern µ-Test"), "Zellkern_-Test");
        assert_eq!(safe_stem("../../etc/passwd"), "etc_passwd");
        assert_eq!(safe_stem("..."), "image");
        assert_eq!(safe_stem(&"x".repeat(500)).len(), MAX_STEM);
        let mut u = UniqueNames::new();
        assert_eq!(u.claim("a b", ".tif"), "a_b.tif");
        assert_eq!(u.claim("a_b", ".tif"), "a_b_1.tif");
        assert_eq!(u.claim("A B", ".tif"), "A_B_2.tif");
    }
}
