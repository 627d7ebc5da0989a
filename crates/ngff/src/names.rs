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

/// The longest name kept verbatim, in bytes (file systems allow 255 with the extension).
pub const MAX_VERBATIM: usize = 200;

/// An OMERO name as BIOMERO names the file it exports (`os.path.basename` of the name,
/// everything else kept: spaces, brackets, non-ASCII), made safe only where it must be:
/// control characters become `_`, a leading `.` becomes `_` (no hidden files, no `..`), an
/// empty name becomes `fallback`, and a name over [`MAX_VERBATIM`] bytes is cut. The
/// second value says what was changed, when anything was.
pub fn verbatim_stem(name: &str, fallback: &str) -> (String, Option<String>) {
    let base = name.rsplit('/').next().unwrap_or(name);
    let mut changes = Vec::new();
    if base.len() != name.len() {
        changes.push("the part before its last `/` dropped (as BIOMERO does)".to_owned());
    }
    let mut out: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if out != base {
        changes.push("control characters replaced by `_`".to_owned());
    }
    if out.is_empty() {
        changes.push(format!("an empty name replaced by `{fallback}`"));
        out = fallback.to_owned();
    } else if out.starts_with('.') {
        changes.push("a leading `.` replaced by `_` (no hidden files)".to_owned());
        out.replace_range(0..1, "_");
    }
    if out.len() > MAX_VERBATIM {
        let mut cut = MAX_VERBATIM;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        changes.push(format!("cut to {MAX_VERBATIM} bytes"));
    }
    let why = (!changes.is_empty()).then(|| changes.join("; "));
    (out, why)
}

impl UniqueNames {
    /// A unique `<stem><ext>` for an OMERO name, as BIOMERO's export names it: the name
    /// kept ([`verbatim_stem`]), then `<stem>_(1)<ext>`, `<stem>_(2)<ext>`, … when taken
    /// (compared without case, so the folder holds on any file system). The second value
    /// says why the name is not the plain `<name><ext>`, when it is not.
    pub fn claim_verbatim(
        &mut self,
        name: &str,
        fallback: &str,
        ext: &str,
    ) -> (String, Option<String>) {
        let (stem, mut why) = verbatim_stem(name, fallback);
        let mut candidate = format!("{stem}{ext}");
        let mut n = 1;
        while !self.taken.insert(candidate.to_ascii_lowercase()) {
            candidate = format!("{stem}_({n}){ext}");
            n += 1;
        }
        if n > 1 {
            let taken = format!("`{stem}{ext}` was taken by an earlier input");
            why = Some(match why {
                Some(w) => format!("{w}; {taken}"),
                None => taken,
            });
        }
        (candidate, why)
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

    /// Names as BIOMERO's `save_as_zarr` gives them (`os.path.basename(name)`, then
    /// `name_(1)`, `name_(2)` while taken), kept verbatim where that is safe.
    #[test]
    fn omero_names_are_kept_as_biomero_exports_them() {
        let mut u = UniqueNames::new();
        let claim = |u: &mut UniqueNames, n: &str, ext: &str| u.claim_verbatim(n, "image_1", ext);
        assert_eq!(
            claim(&mut u, "Cells Apoptotic.png", ".0.tif"),
            ("Cells Apoptotic.png.0.tif".into(), None)
        );
        assert_eq!(
            claim(&mut u, "cells.tif", ".zarr"),
            ("cells.tif.zarr".into(), None)
        );
        let (n, why) = claim(&mut u, "cells.tif", ".zarr");
        assert_eq!(n, "cells.tif_(1).zarr");
        assert!(why.unwrap().contains("taken"));
        assert_eq!(claim(&mut u, "cells.tif", ".zarr").0, "cells.tif_(2).zarr");
        assert_eq!(
            claim(&mut u, "cells.tif_(1)", ".zarr").0,
            "cells.tif_(1)_(1).zarr"
        );
        let (n, why) = claim(&mut u, "/data/run 1/Well A1, Field 2", ".0.tif");
        assert_eq!(n, "Well A1, Field 2.0.tif");
        assert!(why.unwrap().contains("last `/`"));
        assert_eq!(claim(&mut u, "..", ".zarr").0, "_..zarr");
        assert_eq!(claim(&mut u, "", ".zarr").0, "image_1.zarr");
        assert_eq!(claim(&mut u, "a\tb\n", ".zarr").0, "a_b_.zarr");
        let long = "é".repeat(150);
        let (n, _) = claim(&mut u, &long, ".zarr");
        assert_eq!(n.len(), MAX_VERBATIM + ".zarr".len(), "{n}");
    }
}
