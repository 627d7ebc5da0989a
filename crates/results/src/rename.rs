//! BIOMERO's `3c) Rename the imported images`: result images renamed by a pattern
//! before they are imported, with the variables `{original_file}`,
//! `{original_ext}`, `{file}` and `{ext}` (biomero-scripts' `rename_import_file`).
//!
//! `{file}` / `{ext}` are the result's name split at its first dot (so
//! `nuclei.ome.tiff` is `nuclei` + `ome.tiff`); `{original_file}` /
//! `{original_ext}` are the same of the input the result was made from, when the
//! result is matched to one, else of the result itself (what BIOMERO's
//! `getOriginalFilename` falls back to). `{{` and `}}` are literal braces. A
//! rendered name that would leave its folder, is hidden or empty is refused; two
//! results that render to the same name get `_2`, `_3`, … before the first dot,
//! as BIOMERO does. Image files and OME-Zarr images are renamed; plates are not
//! (BIOMERO renames only what goes into a Dataset), nor are attachments.

use std::path::Path;

use crate::classify::{Item, ItemKind};
use crate::error::{Result, ResultsError};

/// The variables a pattern may use.
pub const VARIABLES: [&str; 4] = ["original_file", "original_ext", "file", "ext"];

/// `name` split at its first dot (not a leading one): `(base, ext without the dot)`.
fn split(name: &str) -> (&str, &str) {
    let search_from = usize::from(name.starts_with('.'));
    match name[search_from..].find('.') {
        Some(i) => (&name[..search_from + i], &name[search_from + i + 1..]),
        None => (name, ""),
    }
}

/// Checks a pattern: known variables only, balanced braces, no path separators.
pub fn check(pattern: &str) -> std::result::Result<(), String> {
    render_with(pattern, |v| VARIABLES.contains(&v).then(String::new)).map(|_| ())?;
    if pattern.contains('/') || pattern.contains('\0') {
        return Err("a rename pattern is a file name: it may not hold `/`".into());
    }
    if pattern.trim().is_empty() {
        return Err("the rename pattern is empty".into());
    }
    Ok(())
}

fn render_with(
    pattern: &str,
    value: impl Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push('{');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push('}');
            rest = t;
        } else if let Some(t) = tail.strip_prefix('{') {
            let end = t
                .find('}')
                .ok_or_else(|| format!("`{pattern}` has a `{{` without its `}}`"))?;
            let name = &t[..end];
            let v = value(name).ok_or_else(|| {
                format!(
                    "`{{{name}}}` is not a rename variable; use {}",
                    VARIABLES.map(|v| format!("{{{v}}}")).join(", ")
                )
            })?;
            out.push_str(&v);
            rest = &t[end + 1..];
        } else {
            return Err(format!("`{pattern}` has a `}}` without its `{{`"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The new name of `result` (a file or folder name) made from `original`.
pub fn render(pattern: &str, result: &str, original: Option<&str>) -> Result<String> {
    let original = original.unwrap_or(result);
    let original = original.strip_suffix(".zarr").unwrap_or(original);
    let (file, ext) = split(result);
    let (original_file, original_ext) = split(original.trim_end_matches('.'));
    let name = render_with(pattern, |v| {
        Some(
            match v {
                "original_file" => original_file,
                "original_ext" => original_ext,
                "file" => file,
                "ext" => ext,
                _ => return None,
            }
            .to_owned(),
        )
    })
    .map_err(ResultsError::Invalid)?;
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
        return Err(ResultsError::Invalid(format!(
            "the rename pattern `{pattern}` makes `{name}` of {result}: not a visible file name"
        )));
    }
    Ok(name)
}

/// `name` with `_<n>` before its first dot.
fn numbered(name: &str, n: usize) -> String {
    let (base, ext) = split(name);
    if ext.is_empty() {
        format!("{base}_{n}")
    } else {
        format!("{base}_{n}.{ext}")
    }
}

/// Renames the image items under `root` by `pattern`, updating their paths (and their
/// label paths); an item's original is the input it was matched to, by the name in
/// `originals` when there is one (an OMERO image's own name). Returns one line per renamed
/// item, `old -> new`.
pub fn apply(
    root: &Path,
    items: &mut [Item],
    pattern: &str,
    originals: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for item in items
        .iter_mut()
        .filter(|i| matches!(i.kind, ItemKind::ImageFile | ItemKind::ZarrImage))
    {
        let (dir, name) = match item.path.rsplit_once('/') {
            Some((d, n)) => (Some(d.to_owned()), n.to_owned()),
            None => (None, item.path.clone()),
        };
        let original = item
            .input
            .as_deref()
            .map(|i| originals.get(i).map_or(i, String::as_str));
        let wanted = render(pattern, &name, original)?;
        if wanted == name {
            continue;
        }
        let join = |n: &str| {
            dir.as_ref()
                .map_or_else(|| n.to_owned(), |d| format!("{d}/{n}"))
        };
        let mut new_name = wanted.clone();
        let mut n = 2;
        while root.join(join(&new_name)).exists() {
            new_name = numbered(&wanted, n);
            n += 1;
        }
        let (from, to) = (root.join(&item.path), root.join(join(&new_name)));
        std::fs::rename(&from, &to).map_err(|e| ResultsError::io(&from, e))?;
        let old = std::mem::replace(&mut item.path, join(&new_name));
        for label in &mut item.labels {
            if let Some(rest) = label.strip_prefix(&old) {
                *label = format!("{}{rest}", item.path);
            }
        }
        done.push(format!("{old} -> {}", item.path));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_variables_are_biomeros() {
        assert_eq!(
            render(
                "{original_file}_nuclei_mask.{ext}",
                "img_01_cp_masks.tif",
                Some("img_01.ome.tiff")
            )
            .unwrap(),
            "img_01_nuclei_mask.tif"
        );
        assert_eq!(
            render(
                "{file}_processed.{original_ext}",
                "cells.ome.tiff",
                Some("cells.png")
            )
            .unwrap(),
            "cells_processed.png"
        );
        // without a matched input, the original is the result (BIOMERO's fallback); .zarr dropped
        assert_eq!(
            render("{original_file}-x.{ext}", "a.ome.zarr", None).unwrap(),
            "a-x.ome.zarr"
        );
        assert_eq!(
            render("{{literal}}{file}", "a.tif", None).unwrap(),
            "{literal}a"
        );
    }

    #[test]
    fn a_bad_pattern_or_name_is_refused() {
        assert!(check("{original_file}.{ext}").is_ok());
        for bad in ["{nope}.tif", "{file", "x}", "../{file}", "a/b", " "] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(
            render("{original_ext}", "a", None).is_err(),
            "an empty name"
        );
        assert!(render(".{file}", "a.tif", None).is_err(), "a hidden name");
    }

    #[test]
    fn images_are_renamed_on_disk_and_collisions_numbered() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a_mask.tif"), b"1").unwrap();
        std::fs::write(d.path().join("b_mask.tif"), b"2").unwrap();
        std::fs::write(d.path().join("table.csv"), b"3").unwrap();
        let mk = |p: &str, kind, input: Option<&str>| Item {
            path: p.into(),
            kind,
            input: input.map(Into::into),
            labels: vec![],
            ngff: None,
        };
        let mut items = vec![
            mk("a_mask.tif", ItemKind::ImageFile, Some("a.tif")),
            mk("b_mask.tif", ItemKind::ImageFile, Some("b.tif")),
            mk("table.csv", ItemKind::Attachment, None),
        ];
        let done = apply(
            d.path(),
            &mut items,
            "result.{ext}",
            &std::collections::BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            done,
            ["a_mask.tif -> result.tif", "b_mask.tif -> result_2.tif"]
        );
        assert_eq!(std::fs::read(d.path().join("result_2.tif")).unwrap(), b"2");
        assert!(
            d.path().join("table.csv").exists(),
            "attachments keep their names"
        );
    }
}
