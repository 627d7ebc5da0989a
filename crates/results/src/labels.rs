//! Label images of returned Zarrs, made importable the way BIOMERO 2.4 does.
//!
//! BIOMERO.importer registers a Zarr by the path of a directory ending in
//! `.zarr`. A label image lives at `<image>/labels/<name>`; each one found in
//! a returned image or in any field of a returned plate is renamed to
//! `<name>.zarr`, and the `labels` list of its `labels` group is patched to
//! match, so NGFF readers still find it. The attributes are rewritten through
//! a temporary file and a rename (a new inode: a hard-linked original is
//! never changed), and a second run finds nothing left to do.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use stage_ngff::copy::is_zarr_dir;
use stage_ngff::{Node, NodeKind, ZarrFormat};

use crate::error::{Result, ResultsError};

fn zarr_err(path: &Path, source: stage_ngff::NgffError) -> ResultsError {
    ResultsError::Zarr {
        path: path.to_path_buf(),
        source,
    }
}

/// Renames every label image under `store` to `<name>.zarr` and patches its
/// labels list; returns the label images' paths (absolute), sorted.
pub fn make_importable(store: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    visit(store, &mut found)?;
    found.sort();
    Ok(found)
}

fn visit(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    if !is_zarr_dir(dir) {
        return Ok(());
    }
    let node = Node::open(dir).map_err(|e| zarr_err(dir, e))?;
    check_member_paths(dir, &node)?;
    match node.kind() {
        NodeKind::Array => return Ok(()),
        NodeKind::Labels => {
            found.extend(rename_labels(dir, &node)?);
            return Ok(());
        }
        _ => {}
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ResultsError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    children.sort();
    for c in children {
        visit(&c, found)?;
    }
    Ok(())
}

/// Whether `entry` names a member of its group the way NGFF means it: `parts` plain names
/// (no `.`, `..`, empty, absolute or backslashed part), so a reader that follows it stays
/// inside the store.
fn plain_member(entry: &str, parts: usize) -> bool {
    let split: Vec<&str> = entry.split('/').collect();
    split.len() == parts
        && split.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
        })
}

/// Refuses a returned group whose metadata points readers outside it: a `labels` list entry,
/// a plate's well path (`row/column`), a well's field path or a multiscale's dataset path
/// that is not a plain member name. OMERO, BIOMERO.importer and ome-zarr readers follow
/// these paths as written.
fn check_member_paths(dir: &Path, node: &Node) -> Result<()> {
    let ome = &node.ome;
    let strings = |v: Option<&Value>, key: Option<&str>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| match key {
                        Some(k) => e.get(k),
                        None => Some(e),
                    })
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut checks: Vec<(&str, Vec<String>, usize)> = vec![
        ("labels", strings(ome.get("labels"), None), 1),
        (
            "plate.wells[].path",
            strings(ome.get("plate").and_then(|p| p.get("wells")), Some("path")),
            2,
        ),
        (
            "well.images[].path",
            strings(ome.get("well").and_then(|w| w.get("images")), Some("path")),
            1,
        ),
    ];
    for m in ome
        .get("multiscales")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        checks.push((
            "multiscales[].datasets[].path",
            strings(m.get("datasets"), Some("path")),
            1,
        ));
    }
    for (what, entries, parts) in checks {
        if let Some(bad) = entries.iter().find(|e| !plain_member(e, parts)) {
            return Err(ResultsError::Unsafe {
                path: dir.display().to_string(),
                reason: format!(
                    "its {what} holds `{bad}`, which does not name a member of the group (plain names only, no `..` or absolute paths); the workflow must write NGFF metadata that stays inside the store"
                ),
            });
        }
    }
    Ok(())
}

fn rename_labels(labels_dir: &Path, node: &Node) -> Result<Vec<PathBuf>> {
    let listed: Vec<String> = node
        .ome
        .get("labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut names = listed.clone();
    let mut out = Vec::new();
    let mut changed = false;
    let mut children: Vec<PathBuf> = std::fs::read_dir(labels_dir)
        .map_err(|e| ResultsError::io(labels_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && is_zarr_dir(p))
        .collect();
    children.sort();
    for child in children {
        let Some(name) = child
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        if Path::new(&name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zarr"))
        {
            if !names.contains(&name) {
                names.push(name);
                changed = true;
            }
            out.push(child);
            continue;
        }
        let new_name = format!("{name}.zarr");
        let target = labels_dir.join(&new_name);
        if target.exists() {
            return Err(ResultsError::Unsafe {
                path: target.display().to_string(),
                reason: format!(
                    "both `{name}` and `{new_name}` exist under labels/; the label image cannot be renamed for import"
                ),
            });
        }
        std::fs::rename(&child, &target).map_err(|e| ResultsError::io(&target, e))?;
        match names.iter().position(|n| *n == name) {
            Some(i) => names[i].clone_from(&new_name),
            None => names.push(new_name),
        }
        changed = true;
        out.push(target);
    }
    if changed {
        write_labels_list(labels_dir, node, &names)?;
    }
    Ok(out)
}

fn write_labels_list(dir: &Path, node: &Node, names: &[String]) -> Result<()> {
    let list = Value::Array(names.iter().cloned().map(Value::String).collect());
    let (file, doc) = match node.format {
        ZarrFormat::V3 => {
            let file = dir.join("zarr.json");
            let text = std::fs::read(&file).map_err(|e| ResultsError::io(&file, e))?;
            let mut doc: Value = serde_json::from_slice(&text)
                .map_err(|e| ResultsError::Invalid(format!("{}: {e}", file.display())))?;
            let attrs = doc.as_object_mut().map(|o| {
                o.entry("attributes")
                    .or_insert_with(|| Value::Object(Map::new()))
            });
            match attrs.and_then(Value::as_object_mut) {
                Some(a) => match a.get_mut("ome").and_then(Value::as_object_mut) {
                    Some(ome) => {
                        ome.insert("labels".into(), list);
                    }
                    None => {
                        a.insert("labels".into(), list);
                    }
                },
                None => {
                    return Err(ResultsError::Invalid(format!(
                        "{}: attributes must be a JSON object",
                        file.display()
                    )));
                }
            }
            (file, doc)
        }
        ZarrFormat::V2 => {
            let mut attrs = node.attributes.clone();
            attrs.insert("labels".into(), list);
            (dir.join(".zattrs"), Value::Object(attrs))
        }
    };
    write_json_replacing(&file, &doc)
}

/// Writes `doc` to `file` through a temporary file and a rename.
pub(crate) fn write_json_replacing(file: &Path, doc: &Value) -> Result<()> {
    stage_common::atomic::write_json(file, doc).map_err(|e| ResultsError::io(file, e))
}
