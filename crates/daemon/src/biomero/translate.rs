//! BIOMERO's script inputs, as `client.getInputs(unwrap=True)` yields them, read
//! into what biomero-stage will do: which workflows, on what, with which
//! parameters, into which container. Every key meets its fate from
//! [`super::keys`]; a key that has none is refused by name. Nothing here talks
//! to OMERO: [`super::accept`] does that with the user's own session.

use serde_json::{Map, Value};
use stage_common::NgffVersion;
use stage_config::{InputMode, Snapshot};
use stage_source::omero::ContainerKind;

use super::keys::{self, Fate};
use crate::intake::FieldError;
use crate::versions;

/// Which of BIOMERO's two run scripts the inputs were given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// `SLURM_Run_Workflow.py`.
    Run,
    /// `SLURM_Run_Workflow_Batched.py`.
    Batched,
}

impl Script {
    /// The script by its exact OMERO name.
    pub fn from_name(name: &str) -> Option<Script> {
        match name {
            "SLURM_Run_Workflow.py" => Some(Script::Run),
            "SLURM_Run_Workflow_Batched.py" => Some(Script::Batched),
            _ => None,
        }
    }
}

/// What the user selected in OMERO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `Image`, `Dataset`, `Plate` or `Screen`.
    pub kind: String,
    /// The object ids.
    pub ids: Vec<i64>,
}

/// Where results of one kind go, as the inputs say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Destination {
    /// Nowhere named: the single Dataset or Screen the inputs came from.
    #[default]
    FromInputs,
    /// Exactly this container (`Dataset_ID` / `Screen_ID`).
    Id(i64),
    /// The container of this name in the user's group, created when there is none.
    Named {
        /// The name.
        name: String,
        /// Create a new one even when one of that name exists.
        duplicate: bool,
    },
}

/// One selected workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// The workflow key.
    pub key: String,
    /// The container version `<wf>_Version` asked for, when it is not the configured one
    /// (to be found on the cluster before the run is accepted).
    pub version: Option<String>,
    /// Its parameters, by id (not yet checked against the descriptor).
    pub parameters: Map<String, Value>,
    /// FileAnnotation ids for its file inputs, by input id.
    pub files: std::collections::BTreeMap<String, Vec<i64>>,
    /// Where its results go (Dataset or Screen).
    pub destination_kind: ContainerKind,
}

/// The inputs, read.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// The script.
    pub script: Script,
    /// The selected workflows, in key order.
    pub workflows: Vec<Selected>,
    /// What they run on.
    pub selection: Selection,
    /// Images per batch (the batched script).
    pub batch_size: Option<usize>,
    /// NGFF version of Zarr inputs.
    pub ngff_version: Option<NgffVersion>,
    /// Mail the user at the end.
    pub email: bool,
    /// Keep the remote data (not `Cleanup?`).
    pub keep_remote_data: bool,
    /// Where image results go.
    pub dataset: Destination,
    /// Where plate results go.
    pub screen: Destination,
    /// The rename pattern of the result images.
    pub rename: Option<String>,
    /// The results to attach besides importing them.
    pub attach: crate::intake::AttachOptions,
    /// What is asked for and not done, each saying why.
    pub notices: Vec<String>,
    /// The options asked for that only the attended OMERO script makes (`4)`, `6a)`, …).
    pub for_script: Vec<&'static str>,
}

impl RunPlan {
    /// The run is attended: the OMERO script stays in the user's session and, when the run
    /// has ended, makes the OMERO.tables (`4)`) and ROIs (`6a)`) itself, so the daemon
    /// attaches no CSV in their place and the notices say who makes them.
    pub fn attended(&mut self) {
        self.attach.tables_as_files = false;
        self.notices = script_notices(&self.for_script, true);
    }
}

/// What the run's notices say of the options only the attended OMERO script makes.
fn script_notices(asked: &[&str], attended: bool) -> Vec<String> {
    asked
        .iter()
        .map(|&k| match (k, attended) {
            (keys::CSV_TABLES | keys::CREATE_ROIS, true) => format!(
                "`{k}`: made in your session by the OMERO script when the run has ended (attended mode)"
            ),
            (_, true) => format!(
                "`{k}`: used by the OMERO script for `6a)` when the run has ended (attended mode)"
            ),
            (keys::CSV_TABLES, false) => format!(
                "`{k}`: not done by biomero-stage: no OMERO.table is made (that needs OMERO's own API); the CSV files are attached as files instead. The OMERO scripts' attended mode makes tables"
            ),
            (keys::CREATE_ROIS, false) => format!(
                "`{k}`: not done by biomero-stage: no ROIs are made (that needs OMERO's own API). The OMERO scripts' attended mode makes them"
            ),
            (_, false) => format!("`{k}`: not done by biomero-stage: it belongs to `6a)`"),
        })
        .collect()
}

fn refuse(key: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: key.to_owned(),
        message: message.into(),
    }
}

fn as_bool(inputs: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
    match inputs.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            errors.push(refuse(
                key,
                format!("is a Bool in BIOMERO's script, not {other}"),
            ));
            None
        }
    }
}

fn as_str<'a>(
    inputs: &'a Map<String, Value>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match inputs.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            errors.push(refuse(
                key,
                format!("is a String in BIOMERO's script, not {other}"),
            ));
            None
        }
    }
}

fn as_id(inputs: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    match inputs.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(id) if id > 0 => Some(id),
            _ => {
                errors.push(refuse(
                    key,
                    format!("`{v}` is not an OMERO id (a positive Long)"),
                ));
                None
            }
        },
    }
}

/// A name option: `None` for BIOMERO's `--NO THANK YOU--`, empty or absent.
fn name_option<'a>(
    inputs: &'a Map<String, Value>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    as_str(inputs, key, errors)
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != keys::NO)
}

/// How a key names a workflow: `<wf>` selects it; `<wf>_Version`, `<wf>_|_<param>` and
/// `<wf>_|_FILE_<param>` belong to it.
enum WorkflowKey<'a> {
    Select(&'a str),
    Of(&'a str),
}

fn workflow_key<'a>(key: &'a str, config: &Snapshot) -> Option<WorkflowKey<'a>> {
    if let Some((wf, _)) = key.split_once(keys::PARAM_SEPARATOR) {
        return Some(WorkflowKey::Of(wf));
    }
    if config.registry.get(key).is_some() {
        return Some(WorkflowKey::Select(key));
    }
    key.strip_suffix("_Version").map(WorkflowKey::Of)
}

/// Reads the inputs of `script` against the configuration in force.
pub fn translate(
    script: Script,
    inputs: &Map<String, Value>,
    config: &Snapshot,
) -> Result<RunPlan, Vec<FieldError>> {
    let mut errors = Vec::new();
    let registry = &config.registry;
    // every key: fixed, per workflow, or refused by name
    let mut selected_keys = Vec::new();
    for (k, v) in inputs {
        if keys::fixed(k).is_some() {
            continue;
        }
        match workflow_key(k, config) {
            Some(WorkflowKey::Select(wf)) => match v {
                Value::Bool(true) => selected_keys.push(wf.to_owned()),
                Value::Bool(false) | Value::Null => {}
                other => errors.push(refuse(k, format!("selects a workflow: true or false, not {other}"))),
            },
            Some(WorkflowKey::Of(wf)) if registry.get(wf).is_none() => {
                let known: Vec<&str> = registry.workflows.keys().map(String::as_str).collect();
                errors.push(refuse(
                    k,
                    format!("names workflow `{wf}`, which is not configured; configured: {}", known.join(", ")),
                ));
            }
            Some(_) => {}
            None => errors.push(refuse(
                k,
                "is not an input of BIOMERO's run scripts (see config/BIOMERO_RUNS.md); nothing was queued",
            )),
        }
    }
    if selected_keys.is_empty() && errors.is_empty() {
        errors.push(refuse(
            "<wf>",
            "no workflow is selected: set one workflow's key to true",
        ));
    }
    // the selection
    let kind = as_str(inputs, keys::DATA_TYPE, &mut errors)
        .unwrap_or("Dataset")
        .to_owned();
    if !["Image", "Dataset", "Plate", "Screen"].contains(&kind.as_str()) {
        errors.push(refuse(
            keys::DATA_TYPE,
            if kind == "Project" {
                "Project cannot be run on: select its Datasets".to_owned()
            } else {
                format!("`{kind}` is not one of Image, Dataset, Plate, Screen")
            },
        ));
    }
    let ids: Vec<i64> = match inputs.get(keys::IDS) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v.as_i64() {
                Some(id) if id > 0 => Some(id),
                _ => {
                    errors.push(refuse(keys::IDS, format!("`{v}` is not an OMERO id")));
                    None
                }
            })
            .collect(),
        Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
        _ => Vec::new(),
    };
    if ids.is_empty() {
        errors.push(refuse(keys::IDS, "nothing selected: give at least one id"));
    }
    // run options
    let use_zarr = as_bool(inputs, keys::USE_ZARR, &mut errors);
    let ngff_version = match as_str(inputs, keys::OME_VERSION, &mut errors) {
        None => None,
        Some(v) => match NgffVersion::parse(v) {
            Some(n) => Some(n),
            None => {
                errors.push(refuse(
                    keys::OME_VERSION,
                    format!("`{v}` is not an OME-Zarr version biomero-stage writes (0.4, 0.5)"),
                ));
                None
            }
        },
    };
    let batch_size = match (script, inputs.get(keys::BATCH_SIZE)) {
        (_, None | Some(Value::Null)) => None,
        (Script::Run, Some(_)) => {
            errors.push(refuse(
                keys::BATCH_SIZE,
                "belongs to SLURM_Run_Workflow_Batched.py, not SLURM_Run_Workflow.py",
            ));
            None
        }
        (Script::Batched, Some(v)) => match v.as_u64() {
            Some(n) if n >= 1 => usize::try_from(n).ok(),
            _ => {
                errors.push(refuse(
                    keys::BATCH_SIZE,
                    format!("`{v}` is not a batch size (an Int of at least 1)"),
                ));
                None
            }
        },
    };
    if script == Script::Batched
        && batch_size.is_none()
        && !errors.iter().any(|e| e.field == keys::BATCH_SIZE)
    {
        errors.push(refuse(
            keys::BATCH_SIZE,
            "SLURM_Run_Workflow_Batched.py needs a batch size",
        ));
    }
    if as_bool(inputs, keys::SELECT_IMPORT, &mut errors) == Some(false) {
        errors.push(refuse(
            keys::SELECT_IMPORT,
            "is false, but biomero-stage always keeps and imports the results: set it to true",
        ));
    }
    let email = as_bool(inputs, keys::EMAIL, &mut errors).unwrap_or(false);
    let cleanup = as_bool(inputs, keys::CLEANUP, &mut errors).unwrap_or(true);
    // destinations
    let duplicate =
        script == Script::Run && as_bool(inputs, keys::DUPLICATES, &mut errors).unwrap_or(false);
    let destination = |id_key: &str, name_key: &str, errors: &mut Vec<FieldError>| match (
        as_id(inputs, id_key, errors),
        name_option(inputs, name_key, errors),
    ) {
        (Some(id), _) => Destination::Id(id),
        (None, Some(name)) => Destination::Named {
            name: name.to_owned(),
            duplicate,
        },
        (None, None) => Destination::FromInputs,
    };
    let rename = name_option(inputs, keys::RENAME, &mut errors).map(ToOwned::to_owned);
    let attach = crate::intake::AttachOptions {
        zip_to_parent: as_bool(inputs, keys::ZIP_TO_PARENT, &mut errors).unwrap_or(false),
        to_original_images: as_bool(inputs, keys::ATTACH_ORIGINAL, &mut errors).unwrap_or(false),
        other_files: as_bool(inputs, keys::FILE_OUTPUTS, &mut errors).unwrap_or(false),
        tables_as_files: as_bool(inputs, keys::CSV_TABLES, &mut errors).unwrap_or(false),
    };
    if let Some(p) = &rename
        && let Err(m) = stage_results::rename::check(p)
    {
        errors.push(refuse(keys::RENAME, m));
    }
    let dataset = destination(keys::DATASET_ID, keys::NEW_DATASET, &mut errors);
    let screen = destination(keys::SCREEN_ID, keys::NEW_SCREEN, &mut errors);
    // what only the attended script makes: said not done, unless the run is attended
    let for_script: Vec<&'static str> = keys::FIXED
        .iter()
        .filter(|k| k.fate == Fate::Attended && inputs.get(k.name) == Some(&Value::Bool(true)))
        .map(|k| k.name)
        .collect();
    let notices = script_notices(&for_script, false);
    // the selected workflows
    selected_keys.sort();
    let mut workflows = Vec::new();
    for wf_key in &selected_keys {
        let Some(wf) = registry.get(wf_key) else {
            continue;
        };
        let version_key = format!("{wf_key}_Version");
        let mut version = None;
        match as_str(inputs, &version_key, &mut errors) {
            Some(v) if v == keys::NOT_AVAILABLE => errors.push(refuse(
                &version_key,
                format!("is `{v}`: the cluster has no container of `{wf_key}`; an admin pulls it with Slurm Init (`biomero-stage init --pull`)"),
            )),
            Some(v) if !versions::well_formed(v) => errors.push(refuse(
                &version_key,
                format!(
                    "`{}` is not a container version (1 to {} letters, digits, `.`, `_`, `+` or `-`)",
                    stage_common::text::shorten(v, 80),
                    versions::MAX_CHARS
                ),
            )),
            Some(v) if !versions::same_version(v, &wf.version) => version = Some(v.to_owned()),
            _ => {}
        }
        let plates = ["Plate", "Screen"].contains(&kind.as_str());
        let mode = if plates {
            wf.modes.plate_mode()
        } else {
            wf.modes.image_mode()
        };
        match (use_zarr, mode) {
            (Some(true), Some(InputMode::Tiff)) => errors.push(refuse(
                keys::USE_ZARR,
                format!("is true, but `{wf_key}` takes TIFF input for {kind}s (its configuration and descriptor say so); set it to false or pick a Zarr workflow"),
            )),
            (Some(false), Some(m @ (InputMode::Zarr | InputMode::ZarrPlate))) => errors.push(refuse(
                keys::USE_ZARR,
                format!("is false, but `{wf_key}` takes {m} input (its configuration and descriptor say so); set it to true"),
            )),
            _ => {}
        }
        let prefix = format!("{wf_key}{}", keys::PARAM_SEPARATOR);
        let mut parameters = Map::new();
        let mut files = std::collections::BTreeMap::new();
        for (k, v) in inputs {
            let Some(param) = k.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(file) = param.strip_prefix(keys::FILE_PREFIX) {
                let ids: Vec<i64> = match v {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|x| match x.as_i64() {
                            Some(id) if id > 0 => Some(id),
                            _ => {
                                errors.push(refuse(k, format!("`{x}` is not a FileAnnotation id")));
                                None
                            }
                        })
                        .collect(),
                    other => match other.as_i64() {
                        Some(id) if id > 0 => vec![id],
                        _ => {
                            errors.push(refuse(
                                k,
                                format!("`{other}` is not a list of FileAnnotation ids"),
                            ));
                            Vec::new()
                        }
                    },
                };
                let input = wf.descriptor.as_ref().and_then(|d| d.file_input(file));
                match input {
                    None if !ids.is_empty() => errors.push(refuse(
                        k,
                        format!("`{wf_key}` has no file input `{file}` (its descriptor declares none of that id)"),
                    )),
                    Some(_) if !ids.is_empty() => {
                        files.insert(file.to_owned(), ids);
                    }
                    _ => {}
                }
                continue;
            }
            if !v.is_null() {
                parameters.insert(param.to_owned(), v.clone());
            }
        }
        for f in wf.descriptor.iter().flat_map(|d| &d.file_inputs) {
            if !f.optional && !files.contains_key(&f.id) {
                errors.push(refuse(
                    &format!(
                        "{wf_key}{}{}{}",
                        keys::PARAM_SEPARATOR,
                        keys::FILE_PREFIX,
                        f.id
                    ),
                    format!(
                        "`{wf_key}` needs a file for `{}` ({}): attach it in OMERO and select it",
                        f.id, f.name
                    ),
                ));
            }
        }
        workflows.push(Selected {
            key: wf_key.clone(),
            version,
            parameters,
            files,
            destination_kind: if wf.mode == InputMode::ZarrPlate {
                ContainerKind::Screen
            } else {
                ContainerKind::Dataset
            },
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(RunPlan {
        script,
        workflows,
        selection: Selection { kind, ids },
        batch_size,
        ngff_version,
        email,
        keep_remote_data: !cleanup,
        dataset,
        screen,
        rename,
        attach,
        notices,
        for_script,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn inputs(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn fields(r: Result<RunPlan, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[tokio::test]
    async fn omero_biomeros_inputs_become_a_plan() {
        let d = tempfile::tempdir().unwrap();
        let config = crate::test_site::demo_snapshot(d.path()).await;
        let version = config.registry.get("threshold").unwrap().version.clone();
        let plan = translate(
            Script::Run,
            &inputs(json!({
                "Data_Type": "Image", "IDs": [3, 4], "threshold": true,
                "threshold_Version": version, "threshold_|_min_size": 5,
                "threshold_zarr": false, "threshold_zarr_|_min_size": 9,
                "E-mail": false, "Use_ZARR_Format": false, "OME-Zarr_version": "0.4",
                "Select how to import your results (one or more)": true,
                "1) Zip attachment to parent": true, "3a) Import into NEW Dataset": "results",
                "3a) Import into NEW Screen": "--NO THANK YOU--", "Cleanup?": false,
                "6b) Label image pattern": "", "3c) Rename the imported images": "--NO THANK YOU--",
            })),
            &config,
        )
        .unwrap();
        assert_eq!(
            plan.workflows.len(),
            1,
            "an unselected workflow's keys are ignored"
        );
        assert_eq!(plan.workflows[0].parameters, inputs(json!({"min_size": 5})));
        assert_eq!(
            plan.selection,
            Selection {
                kind: "Image".into(),
                ids: vec![3, 4]
            }
        );
        assert_eq!(
            plan.dataset,
            Destination::Named {
                name: "results".into(),
                duplicate: false
            }
        );
        assert_eq!(plan.screen, Destination::FromInputs);
        assert!(plan.keep_remote_data);
        // the zip to the parent is made after the import now, not a notice
        assert!(plan.notices.is_empty(), "{:?}", plan.notices);
        assert!(plan.attach.zip_to_parent && !plan.attach.to_original_images);
    }

    #[tokio::test]
    async fn tables_and_rois_are_said_not_done_in_hand_off_and_left_to_the_attended_script() {
        let d = tempfile::tempdir().unwrap();
        let config = crate::test_site::demo_snapshot(d.path()).await;
        let run = inputs(json!({
            "Data_Type": "Image", "IDs": [3], "threshold": true,
            "4) Upload result CSVs as OMERO tables": true,
            "6a) Create ROIs from label images": true, "6c) ROI shape": "Polygon",
        }));
        let mut plan = translate(Script::Run, &run, &config).unwrap();
        assert!(plan.attach.tables_as_files, "hand-off attaches the CSVs");
        assert_eq!(plan.notices.len(), 2, "{:?}", plan.notices);
        assert!(plan.notices[0].starts_with("`4) Upload result CSVs as OMERO tables`: not done"));
        assert!(plan.notices[1].starts_with("`6a) Create ROIs from label images`: not done"));
        plan.attended();
        assert!(
            !plan.attach.tables_as_files,
            "the script makes tables instead"
        );
        for n in &plan.notices {
            assert!(
                n.ends_with("by the OMERO script when the run has ended (attended mode)"),
                "{n}"
            );
        }
    }

    #[tokio::test]
    async fn a_key_without_a_fate_or_a_wrong_value_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let config = crate::test_site::demo_snapshot(d.path()).await;
        let base = json!({"Data_Type": "Image", "IDs": [3], "threshold": true});
        let with = |k: &str, v: Value| {
            let mut i = inputs(base.clone());
            i.insert(k.to_owned(), v);
            i
        };
        for (k, v) in [
            ("Favourite colour", json!("blue")),
            ("cellpose_|_diameter", json!(3)),
            ("threshold_Version", json!("Not Available!")),
            ("threshold_Version", json!("../v1")),
            ("Use_ZARR_Format", json!(true)),
            ("Batch_Size", json!(2)),
            (
                "Select how to import your results (one or more)",
                json!(false),
            ),
            ("threshold_|_FILE_model", json!([17])), // the demo's descriptor has no file input
            ("Dataset_ID", json!(-4)),
        ] {
            assert_eq!(
                fields(translate(Script::Run, &with(k, v), &config)),
                vec![k.to_owned()],
                "{k}"
            );
        }
        // another version than the configured one is carried, to be found on the cluster
        let plan = translate(
            Script::Run,
            &with("threshold_Version", json!("v999")),
            &config,
        );
        assert_eq!(plan.unwrap().workflows[0].version.as_deref(), Some("v999"));
        let plan = translate(
            Script::Run,
            &with("threshold_Version", json!("1.0.0")),
            &config,
        );
        assert_eq!(plan.unwrap().workflows[0].version, None);
        assert_eq!(
            fields(translate(
                Script::Run,
                &with("Data_Type", json!("Project")),
                &config
            )),
            vec!["Data_Type"]
        );
        assert_eq!(
            fields(translate(Script::Batched, &inputs(base.clone()), &config)),
            vec!["Batch_Size"]
        );
        assert_eq!(
            fields(translate(
                Script::Run,
                &inputs(json!({"Data_Type": "Image", "IDs": [3]})),
                &config
            )),
            vec!["<wf>"]
        );
        // a Zarr plate workflow told not to use Zarr names both sides
        let e = translate(
            Script::Run,
            &inputs(json!({"Data_Type": "Plate", "IDs": [2], "threshold_plate": true, "Use_ZARR_Format": false})),
            &config,
        )
        .unwrap_err();
        assert!(
            e[0].message.contains("threshold_plate") && e[0].message.contains("false"),
            "{e:?}"
        );
    }
}
