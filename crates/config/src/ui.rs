//! The `[UI]` section: the Admin tab's Zarr toggles.
//!
//! OMERO.biomero stores the "Zarr Workflow", "Zarr Plate Workflow" and dual
//! mode toggles as JSON lists of workflow keys (`zarr_workflows =
//! ["cellpose"]`). Other `[UI]` keys (`max_batch_jobs`, …) belong to the web
//! plugin and are kept as they are.

use serde::Serialize;

use crate::error::ConfigError;
use crate::layered::LayeredIni;
use crate::location::{Located, Location};

/// The toggle lists of `[UI]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct UiToggles {
    /// Workflows that take one OME-Zarr per image ("Zarr Workflow").
    pub zarr_workflows: Vec<Located<String>>,
    /// Workflows that take a whole plate as one HCS Zarr ("Zarr Plate Workflow").
    pub plate_workflows: Vec<Located<String>>,
    /// Plate workflows that also accept images.
    pub dual_mode_workflows: Vec<Located<String>>,
    /// Every other `[UI]` key, untouched.
    pub other: Vec<(String, Located<Option<String>>)>,
}

/// The names of the three toggle lists.
pub const TOGGLE_KEYS: [&str; 3] = ["zarr_workflows", "plate_workflows", "dual_mode_workflows"];

impl UiToggles {
    /// Whether `key` is in `zarr_workflows`.
    pub fn is_zarr(&self, key: &str) -> bool {
        self.zarr_workflows.iter().any(|k| k.value == key)
    }

    /// Whether `key` is in `plate_workflows`.
    pub fn is_plate(&self, key: &str) -> bool {
        self.plate_workflows.iter().any(|k| k.value == key)
    }

    /// Whether `key` is in `dual_mode_workflows`.
    pub fn is_dual(&self, key: &str) -> bool {
        self.dual_mode_workflows.iter().any(|k| k.value == key)
    }

    /// Each list with its name, for checks that treat them alike.
    pub fn lists(&self) -> [(&'static str, &[Located<String>]); 3] {
        [
            ("zarr_workflows", &self.zarr_workflows),
            ("plate_workflows", &self.plate_workflows),
            ("dual_mode_workflows", &self.dual_mode_workflows),
        ]
    }
}

/// Reads `[UI]`; a toggle that is not a JSON list of strings is an error.
pub fn read(ini: &LayeredIni, errors: &mut Vec<ConfigError>) -> UiToggles {
    let mut ui = UiToggles::default();
    let Some(section) = ini.section("UI") else {
        return ui;
    };
    for entry in &section.entries {
        let value = match section.interpolated(entry) {
            Ok(v) => v,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let target = match entry.key.as_str() {
            "zarr_workflows" => &mut ui.zarr_workflows,
            "plate_workflows" => &mut ui.plate_workflows,
            "dual_mode_workflows" => &mut ui.dual_mode_workflows,
            _ => {
                ui.other.push((entry.key.clone(), value));
                continue;
            }
        };
        let text = value.value.unwrap_or_default();
        match parse_list(&text) {
            Ok(keys) => {
                *target = keys
                    .into_iter()
                    .map(|k| Located::new(k, value.at.clone()))
                    .collect();
            }
            Err(reason) => errors.push(ConfigError::InvalidUiList {
                at: value.at.clone(),
                key: entry.key.clone(),
                value: text,
                reason,
            }),
        }
    }
    ui
}

fn parse_list(text: &str) -> Result<Vec<String>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let serde_json::Value::Array(items) = v else {
        return Err("not a list".into());
    };
    items
        .into_iter()
        .map(|i| match i {
            serde_json::Value::String(s) => Ok(s),
            other => Err(format!("`{other}` is not a string")),
        })
        .collect()
}

/// The location of a toggle list entry, for messages.
pub fn entry_location(ui: &UiToggles, list: &str, key: &str) -> Option<Location> {
    ui.lists()
        .into_iter()
        .find(|(name, _)| *name == list)
        .and_then(|(_, l)| l.iter().find(|k| k.value == key))
        .map(|k| k.at.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ini::parse;
    use std::path::Path;

    fn read_str(text: &str) -> (UiToggles, Vec<ConfigError>) {
        let ini = LayeredIni::merge(vec![parse(Path::new("/c.ini"), text.as_bytes()).unwrap()]);
        let mut e = Vec::new();
        (read(&ini, &mut e), e)
    }

    #[test]
    fn toggles_are_json_lists() {
        let (ui, e) = read_str(
            "[UI]\nmax_batch_jobs = 100\nplate_workflows = [\"a\",\"b\"]\nzarr_workflows = [\"b\"]\ndual_mode_workflows =\n",
        );
        assert!(e.is_empty());
        assert!(ui.is_plate("a") && ui.is_plate("b") && ui.is_zarr("b") && !ui.is_zarr("a"));
        assert!(ui.dual_mode_workflows.is_empty());
        assert_eq!(ui.other[0].0, "max_batch_jobs");
    }

    #[test]
    fn a_toggle_that_is_not_a_json_list_is_an_error() {
        for bad in ["cellpose", "[cellpose]", "{\"a\":1}", "[1]"] {
            let (_, e) = read_str(&format!("[UI]\nzarr_workflows = {bad}\n"));
            assert_eq!(e.len(), 1, "{bad}");
            let msg = e[0].to_string();
            assert!(
                msg.contains("/c.ini:2") && msg.contains("JSON list"),
                "{msg}"
            );
        }
    }
}
