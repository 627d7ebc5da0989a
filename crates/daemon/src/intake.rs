//! The submission document and its validation at intake.
//!
//! A submission says which workflow to run on which inputs, with which
//! parameters, for which OMERO user and group, and where results go. It is
//! checked against the live workflow registry *before* it is queued — unknown
//! workflow, unknown or ill-typed parameter, datasets for a plate-only
//! workflow, plates for an image-only one, a Zarr workflow without the
//! importer integration — and refused with every problem, each naming its
//! field. Rows that other programs insert straight into the table are checked
//! the same way by the pipeline's first step.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stage_config::{InputMode, Snapshot};

/// The submission format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// The limits every intake applies (HTTP body, CLI file, a row's request), from the settings in
/// force: `max_submission_bytes`, `max_name_chars`, `max_parameter_bytes`, `max_parameters`,
/// `max_inputs`, `max_path_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest submission document, in bytes.
    pub document_bytes: usize,
    /// The longest OMERO user, group or container name, in characters.
    pub name_chars: usize,
    /// The longest parameter value as the job receives it (an environment variable), in bytes.
    pub parameter_bytes: usize,
    /// The most parameters in one submission.
    pub parameters: usize,
    /// The most inputs (OMERO objects and paths together) in one submission.
    pub inputs: usize,
    /// The longest input path or rename pattern, in bytes.
    pub path_bytes: usize,
}

impl Default for Limits {
    /// The default settings' limits.
    fn default() -> Self {
        Self::of_settings(&stage_config::StageSettings::default())
    }
}

impl Limits {
    /// The limits of the settings in force.
    pub fn of(config: &Snapshot) -> Self {
        Self::of_settings(&config.settings.settings)
    }

    /// The limits of `s`.
    pub fn of_settings(s: &stage_config::StageSettings) -> Self {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Limits {
            document_bytes: size(s.max_submission_bytes),
            name_chars: size(s.max_name_chars.into()),
            parameter_bytes: size(s.max_parameter_bytes.into()),
            parameters: size(s.max_parameters.into()),
            inputs: size(s.max_inputs.into()),
            path_bytes: size(s.max_path_bytes.into()),
        }
    }
}

/// An OMERO object selected as input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OmeroObject {
    /// `Image`, `Dataset`, `Well`, `Plate` or `Screen`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The object id.
    pub id: i64,
}

/// What to run the workflow on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// OMERO objects.
    #[serde(default)]
    pub omero: Vec<OmeroObject>,
    /// Paths on the shared storage (OME-Zarr stores, TIFF/OME-TIFF files).
    #[serde(default)]
    pub paths: Vec<String>,
}

/// The OMERO user the run is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OmeroUser {
    /// OMERO user name.
    pub name: String,
    /// OMERO group name.
    pub group: String,
    /// OMERO user id, as the user's OMERO session says (BIOMERO run requests); never
    /// taken from a submitted document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// OMERO id of the group the session acts in, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<i64>,
}

/// A file attached in OMERO for one of the workflow's file inputs, staged at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachedFile {
    /// The FileAnnotation id.
    pub annotation: i64,
    /// Its file name, as staged in `data/in/<input>/`.
    pub name: String,
}

/// Where results go in OMERO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum ResultsTarget {
    /// An existing Dataset or Screen.
    Existing {
        /// `Dataset` or `Screen`.
        #[serde(rename = "type")]
        kind: String,
        /// Its id.
        id: i64,
    },
    /// A new Dataset or Screen to create.
    New {
        /// `Dataset` or `Screen`.
        new: String,
        /// Its name.
        name: String,
    },
}

impl ResultsTarget {
    /// `Dataset` or `Screen`.
    pub fn kind(&self) -> &str {
        match self {
            ResultsTarget::Existing { kind, .. } => kind,
            ResultsTarget::New { new, .. } => new,
        }
    }
}

/// BIOMERO's result options that are attachments (`1)`, `2)`, `4)` in hand-off, `5)`), made
/// after the import with biomero-stage's OMERO account ([`crate::pipeline::steps::attach`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AttachOptions {
    /// `1) Zip attachment to parent`: the results, zipped, on the inputs' Datasets and Plates.
    pub zip_to_parent: bool,
    /// `2) Attach to original images`: each result image file on the image it came from.
    pub to_original_images: bool,
    /// `5) Attach individual non-image output files`: on the inputs' Datasets and Plates.
    pub other_files: bool,
    /// `4) Upload result CSVs as OMERO tables` in hand-off mode: the CSV files, attached as
    /// files on the inputs' Datasets and Plates (no OMERO.table can be made without OMERO's
    /// own API; the attended OMERO script makes the tables instead).
    pub tables_as_files: bool,
}

impl AttachOptions {
    /// Whether anything is to be attached.
    pub fn any(&self) -> bool {
        self.zip_to_parent || self.to_original_images || self.other_files || self.tables_as_files
    }
}

/// Per-submission options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Stop at `uploaded` and publish the remote path (default: the daemon's `prep_only`).
    #[serde(default)]
    pub prep_only: Option<bool>,
    /// Keep the remote data folder and job log after a successful import.
    #[serde(default)]
    pub keep_remote_data: bool,
    /// The NGFF version Zarr inputs are staged as (default: the daemon's `ngff_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ngff_version: Option<stage_common::NgffVersion>,
    /// The user asked to be mailed when the run ends (BIOMERO's `E-mail`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub email: bool,
    /// Where that mail goes: the user's address in OMERO, read at intake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_to: Option<String>,
    /// Rename the result images before import (BIOMERO's `3c)`: `{original_file}`,
    /// `{original_ext}`, `{file}`, `{ext}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    /// Attach results in OMERO besides importing them (BIOMERO's `1)`, `2)`, `5)`, hand-off `4)`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub attach: AttachOptions,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A submission as sent to biomero-stage (format version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionDoc {
    /// Format version (1).
    pub version: u32,
    /// Idempotency key; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Workflow key.
    pub workflow: String,
    /// Expected workflow version (checked against the configuration).
    #[serde(default)]
    pub workflow_version: Option<String>,
    /// Inputs.
    pub inputs: Inputs,
    /// Workflow parameters by id.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// OMERO user and group.
    pub user: OmeroUser,
    /// Where results go.
    #[serde(default)]
    pub results: Option<ResultsTarget>,
    /// Options.
    #[serde(default)]
    pub options: Options,
    /// The BIOMERO run this submission is part of (one per workflow and batch of a run request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Files for the workflow's file inputs, by input id, already staged in
    /// `data/in/<input>/` (BIOMERO run requests download them at intake).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub files: std::collections::BTreeMap<String, Vec<AttachedFile>>,
    /// What the run request asked for that this submission does not do, each saying why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// The BIOMERO 2.9 detached run this submission runs: set only when biomero-stage
    /// claimed its launcher in BIOMERO's event store, never from a submitted document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detached: Option<DetachedLink>,
}

/// A detached BIOMERO run: its `WorkflowRun` and the launcher task BIOMERO's script queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetachedLink {
    /// The run (BIOMERO made it; biomero-stage appends its tasks to it).
    pub workflow_id: uuid::Uuid,
    /// The launcher task.
    pub launcher: uuid::Uuid,
}

/// One problem with a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field (`parameters.diameter`, `inputs.omero[0].type`, …).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why a submission was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Not JSON, or not the submission format.
    #[error("the submission is not a valid document: {0}")]
    Malformed(String),
    /// Well-formed, but wrong for this configuration.
    #[error("the submission was refused: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The id is taken by a submission with other content.
    #[error(
        "submission `{id}` was already submitted with other content ({}); nothing was queued: give the new submission its own id, or send exactly the same document again",
        .differs.join(", ")
    )]
    Conflict {
        /// The id.
        id: String,
        /// The fields whose values differ (`workflow`, `parameters.diameter`, …).
        differs: Vec<String>,
    },
}

/// Why a submission could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// Refused: the id is taken by other content.
    #[error(transparent)]
    Refused(#[from] IntakeError),
    /// The queue could not be reached.
    #[error(transparent)]
    Store(#[from] stage_store::StoreError),
}

/// Queues an accepted submission: `(submission, true)` when it is new. The same id with
/// the same content is the same submission, queued once (`false`); the same id with other
/// content is refused as [`IntakeError::Conflict`], naming what differs.
pub async fn enqueue(
    store: &stage_store::Store,
    accepted: Accepted,
) -> Result<(stage_store::Submission, bool), EnqueueError> {
    let request =
        serde_json::to_value(&accepted.doc).map_err(|e| IntakeError::Malformed(e.to_string()))?;
    let new = stage_store::NewSubmission {
        id: accepted.id,
        workflow: accepted.doc.workflow.clone(),
        request,
        notices: accepted.doc.notices.clone(),
    };
    let (s, created) = store.insert(&new).await?;
    if !created {
        let mut differs = Vec::new();
        differences(&s.request, &new.request, "", &mut differs);
        if !differs.is_empty() {
            return Err(IntakeError::Conflict { id: s.id, differs }.into());
        }
    }
    Ok((s, created))
}

/// The fields (dotted paths, two levels deep) whose values differ between `old` and `new`.
fn differences(old: &Value, new: &Value, prefix: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) if prefix.matches('.').count() < 2 => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let null = Value::Null;
                differences(
                    a.get(k).unwrap_or(&null),
                    b.get(k).unwrap_or(&null),
                    &path,
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(if prefix.is_empty() {
            "the document".to_owned()
        } else {
            prefix.to_owned()
        }),
        _ => {}
    }
}

/// A submission that passed every check, ready to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The id (given or generated).
    pub id: String,
    /// The normalised document (id filled in, parameters typed, prep-only resolved).
    pub doc: SubmissionDoc,
}

const IMAGE_KINDS: [&str; 3] = ["Image", "Dataset", "Well"];
const PLATE_KINDS: [&str; 2] = ["Plate", "Screen"];

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn plain(s: &str) -> bool {
    !s.trim().is_empty() && !s.chars().any(char::is_control)
}

/// Checks a name (user, group, container) for emptiness, control characters and length.
fn check_name(field: &str, what: &str, value: &str, limits: &Limits, errors: &mut Vec<FieldError>) {
    if !plain(value) {
        errors.push(err(
            field,
            format!("the {what} is empty or has control characters"),
        ));
    } else if value.chars().count() > limits.name_chars {
        errors.push(err(
            field,
            format!(
                "the {what} has {} characters; names have at most {} (max_name_chars)",
                value.chars().count(),
                limits.name_chars
            ),
        ));
    }
}

/// Refuses a document larger than `max_submission_bytes`.
fn check_document_size(bytes: usize, limits: &Limits) -> Result<(), IntakeError> {
    if bytes > limits.document_bytes {
        return Err(IntakeError::Malformed(format!(
            "the document is {bytes} bytes; a submission is at most {} bytes (max_submission_bytes)",
            limits.document_bytes
        )));
    }
    Ok(())
}

/// Parses bytes as a submission document, refusing one larger than `max_submission_bytes`.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<SubmissionDoc, IntakeError> {
    check_document_size(bytes.len(), limits)?;
    let doc: SubmissionDoc =
        serde_json::from_slice(bytes).map_err(|e| IntakeError::Malformed(e.to_string()))?;
    if doc.user.id.is_some() || doc.user.group_id.is_some() {
        return Err(IntakeError::Invalid(vec![err(
            "user.id",
            "OMERO ids are taken from the user's OMERO session (BIOMERO run requests, POST /api/v1/biomero/runs), never from a submitted document: remove user.id and user.group_id",
        )]));
    }
    if doc.detached.is_some() {
        return Err(IntakeError::Invalid(vec![err(
            "detached",
            "a detached BIOMERO run is queued by biomero-stage when it claims the run's launcher in BIOMERO's event store, never by a submitted document: remove `detached`",
        )]));
    }
    Ok(doc)
}

/// The length of a parameter value as the job's environment holds it.
fn env_value_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}

/// Checks a document against the configuration in force.
pub fn validate(mut doc: SubmissionDoc, config: &Snapshot) -> Result<Accepted, IntakeError> {
    let limits = Limits::of(config);
    // a row another program inserted was never parsed from bytes: its size is the document's
    check_document_size(serde_json::to_vec(&doc).map_or(0, |v| v.len()), &limits)?;
    let mut errors = Vec::new();
    if doc.version != FORMAT_VERSION {
        errors.push(err(
            "version",
            format!(
                "version {} is not understood; this biomero-stage reads version {FORMAT_VERSION}",
                doc.version
            ),
        ));
    }
    let id = match &doc.id {
        Some(id) => {
            // the id names folders (staging, `biomero_<id>` on the cluster): no `.`, `..` or hidden names
            if id.is_empty()
                || id.len() > 64
                || id.starts_with('.')
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                errors.push(err(
                    "id",
                    "an id has 1 to 64 letters, digits, '-', '_' or '.', and does not start with '.'",
                ));
            }
            id.clone()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    check_name(
        "user.name",
        "OMERO user name",
        &doc.user.name,
        &limits,
        &mut errors,
    );
    check_name(
        "user.group",
        "OMERO group name",
        &doc.user.group,
        &limits,
        &mut errors,
    );
    if let Some(p) = &doc.options.rename {
        if let Err(m) = stage_results::rename::check(p) {
            errors.push(err("options.rename", m));
        } else if p.len() > limits.path_bytes {
            errors.push(err(
                "options.rename",
                format!(
                    "the pattern has {} bytes; at most {} (max_path_bytes)",
                    p.len(),
                    limits.path_bytes
                ),
            ));
        }
    }
    if let Some(ResultsTarget::New { name, .. }) = &doc.results {
        check_name("results.name", "container name", name, &limits, &mut errors);
    }
    let inputs = doc.inputs.omero.len() + doc.inputs.paths.len();
    if inputs > limits.inputs {
        errors.push(err(
            "inputs",
            format!(
                "{inputs} inputs; a submission has at most {} (max_inputs): split it, or select their Dataset or Plate",
                limits.inputs
            ),
        ));
    }
    if doc.parameters.len() > limits.parameters {
        errors.push(err(
            "parameters",
            format!(
                "{} parameters; a submission has at most {} (max_parameters)",
                doc.parameters.len(),
                limits.parameters
            ),
        ));
    }
    if doc.inputs.omero.is_empty() && doc.inputs.paths.is_empty() {
        errors.push(err(
            "inputs",
            "nothing selected: give OMERO objects (inputs.omero) or paths (inputs.paths)",
        ));
    }
    for (i, o) in doc.inputs.omero.iter().enumerate() {
        if !IMAGE_KINDS.contains(&o.kind.as_str()) && !PLATE_KINDS.contains(&o.kind.as_str()) {
            errors.push(err(
                format!("inputs.omero[{i}].type"),
                format!(
                    "`{}` is not one of Image, Dataset, Well, Plate, Screen",
                    o.kind
                ),
            ));
        }
        if o.id <= 0 {
            errors.push(err(
                format!("inputs.omero[{i}].id"),
                "OMERO ids are positive",
            ));
        }
    }
    for (i, p) in doc.inputs.paths.iter().enumerate() {
        if !p.starts_with('/') || p.contains('\0') {
            errors.push(err(
                format!("inputs.paths[{i}]"),
                "paths are absolute paths on the shared storage",
            ));
        } else if p.len() > limits.path_bytes {
            errors.push(err(
                format!("inputs.paths[{i}]"),
                format!(
                    "the path is {} bytes; paths have at most {} (max_path_bytes)",
                    p.len(),
                    limits.path_bytes
                ),
            ));
        }
    }
    let registry = &config.registry;
    let Some(wf) = registry.get(&doc.workflow) else {
        let known: Vec<&str> = registry.workflows.keys().map(String::as_str).collect();
        errors.push(err(
            "workflow",
            format!(
                "unknown workflow `{}`; configured: {}",
                doc.workflow,
                known.join(", ")
            ),
        ));
        return Err(IntakeError::Invalid(errors));
    };
    // another version than the configured one is looked up on the cluster at intake
    // (`versions::confirm`); here only its form, as it becomes a file name there
    if let Some(v) = &doc.workflow_version
        && !crate::versions::well_formed(v)
    {
        errors.push(err(
            "workflow_version",
            format!(
                "`{}` is not a container version: a version is 1 to {} letters, digits, `.`, `_`, `+` or `-`, not starting with `.` (`{}` is configured at {})",
                stage_common::text::shorten(v, 80),
                crate::versions::MAX_CHARS,
                wf.key,
                wf.version
            ),
        ));
    }
    // inputs against the input mode
    let has_images = doc
        .inputs
        .omero
        .iter()
        .any(|o| IMAGE_KINDS.contains(&o.kind.as_str()));
    let has_plates = doc
        .inputs
        .omero
        .iter()
        .any(|o| PLATE_KINDS.contains(&o.kind.as_str()));
    if has_images && wf.modes.image_mode().is_none() {
        errors.push(err(
            "inputs.omero",
            format!("`{}` is a Zarr Plate workflow: only plates (or screens) can be submitted, not images or datasets", wf.key),
        ));
    }
    if has_plates && wf.modes.plate_mode().is_none() {
        errors.push(err(
            "inputs.omero",
            format!("`{}` takes images (one OME-Zarr each); plates can only go to plate workflows or TIFF workflows", wf.key),
        ));
    }
    if let Some(d) = &wf.descriptor
        && d.requires_zarr
        && !config.settings.settings.importer_enabled
    {
        errors.push(err(
            "workflow",
            format!("`{}` needs Zarr input (its descriptor says so), which needs the BIOMERO.importer integration; importer_enabled is false", wf.key),
        ));
    }
    if let Some(r) = &doc.results {
        let want = if wf.mode == InputMode::ZarrPlate {
            "Screen"
        } else {
            "Dataset"
        };
        if r.kind() != want {
            errors.push(err(
                "results",
                format!("results of `{}` go to a {want}, not a {}", wf.key, r.kind()),
            ));
        }
        match r {
            ResultsTarget::Existing { id, .. } if *id <= 0 => {
                errors.push(err("results.id", "OMERO ids are positive"));
            }
            ResultsTarget::New { new, name } => errors.push(err(
                "results.new",
                format!(
                    "a new {new} `{name}` cannot be created: BIOMERO.importer imports into an existing Dataset or Screen; create it in OMERO and give {{\"type\": \"{new}\", \"id\": N}}"
                ),
            )),
            ResultsTarget::Existing { .. } => {}
        }
    }
    // attached files against the descriptor's file inputs
    for (input, files) in &doc.files {
        match wf.descriptor.as_ref().and_then(|d| d.file_input(input)) {
            None => errors.push(err(
                format!("files.{input}"),
                format!("`{}` has no file input `{input}`", wf.key),
            )),
            Some(f) => {
                for a in files {
                    if !plain(&a.name) || a.name.starts_with('.') || a.name.contains('/') {
                        errors.push(err(
                            format!("files.{input}"),
                            format!("`{}` is not a plain file name", a.name),
                        ));
                    } else if !f.accepts(&a.name) {
                        errors.push(err(
                            format!("files.{input}"),
                            format!(
                                "`{}` is not one of the formats `{input}` takes: {}",
                                a.name,
                                f.formats.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    if let Some(d) = &wf.descriptor {
        for f in d.file_inputs.iter().filter(|f| !f.optional) {
            if doc.files.get(&f.id).is_none_or(Vec::is_empty) {
                errors.push(err(
                    format!("files.{}", f.id),
                    format!("`{}` needs a file for `{}` ({})", wf.key, f.id, f.name),
                ));
            }
        }
    }
    // parameters against the descriptor
    match &wf.descriptor {
        None if !doc.parameters.is_empty() => errors.push(err(
            "parameters",
            format!(
                "the descriptor of `{}` is unavailable ({}), so its parameters cannot be checked",
                wf.key,
                wf.descriptor_error.as_deref().unwrap_or("unknown reason")
            ),
        )),
        None => {}
        Some(d) => {
            let mut typed = Map::new();
            for (k, v) in &doc.parameters {
                match d.parameter(k) {
                    None => {
                        let known: Vec<&str> = d.parameters.iter().map(|p| p.id.as_str()).collect();
                        errors.push(err(
                            format!("parameters.{k}"),
                            format!(
                                "`{}` has no parameter `{k}`; it has: {}",
                                wf.key,
                                known.join(", ")
                            ),
                        ));
                    }
                    // as sent and as the job would see it: both within the limit
                    Some(_) if env_value_len(v) > limits.parameter_bytes => errors.push(err(
                        format!("parameters.{k}"),
                        format!(
                            "the value is {} bytes; the job receives parameters as environment variables of at most {} bytes (max_parameter_bytes)",
                            env_value_len(v),
                            limits.parameter_bytes
                        ),
                    )),
                    Some(p) => match p.check_value(v) {
                        Ok(v) => {
                            typed.insert(k.clone(), v);
                        }
                        Err(m) => errors.push(err(format!("parameters.{k}"), m)),
                    },
                }
            }
            for p in &d.parameters {
                if !p.optional && p.default.is_none() && !doc.parameters.contains_key(&p.id) {
                    errors.push(err(
                        format!("parameters.{}", p.id),
                        "required and has no default",
                    ));
                }
            }
            doc.parameters = typed;
        }
    }
    if !errors.is_empty() {
        return Err(IntakeError::Invalid(errors));
    }
    doc.id = Some(id.clone());
    doc.options.prep_only = Some(
        doc.options
            .prep_only
            .unwrap_or(config.settings.settings.prep_only),
    );
    Ok(Accepted { id, doc })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn doc(v: serde_json::Value) -> SubmissionDoc {
        serde_json::from_value(v).unwrap()
    }

    fn base(workflow: &str, input: &serde_json::Value) -> serde_json::Value {
        json!({
            "version": 1,
            "workflow": workflow,
            "inputs": input,
            "user": { "name": "alice", "group": "demo" },
        })
    }

    fn refusal(r: Result<Accepted, IntakeError>) -> String {
        match r {
            Err(IntakeError::Invalid(errors)) => errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_submission_is_accepted_or_refused_by_the_configuration_in_force() {
        let d = tempfile::tempdir().unwrap();
        let config = crate::test_site::demo_snapshot(d.path()).await;
        let image = json!({ "omero": [{ "type": "Image", "id": 1 }] });
        let plate = json!({ "omero": [{ "type": "Plate", "id": 2 }] });

        let ok = validate(doc(base("threshold", &image)), &config).unwrap();
        assert!(!ok.id.is_empty(), "an id is generated");
        assert_eq!(ok.doc.id.as_deref(), Some(ok.id.as_str()));

        let unknown = refusal(validate(doc(base("cellpose", &image)), &config));
        assert!(unknown.starts_with("workflow:"), "{unknown}");

        let wrong_kind = refusal(validate(doc(base("threshold_plate", &image)), &config));
        assert!(wrong_kind.contains("inputs"), "{wrong_kind}");
        let plate_for_images = refusal(validate(doc(base("threshold_zarr", &plate)), &config));
        assert!(plate_for_images.contains("inputs"), "{plate_for_images}");

        let mut bad = base("threshold", &image);
        bad["id"] = json!("../etc");
        bad["user"]["name"] = json!("");
        bad["parameters"] = json!({ "no_such_parameter": 1 });
        let all = refusal(validate(doc(bad), &config));
        for field in ["id:", "user.name:", "parameters.no_such_parameter"] {
            assert!(
                all.contains(field),
                "every problem is named: {field} in {all}"
            );
        }

        let mut typed = base("threshold", &image);
        typed["parameters"] = json!({ "min_size": "many" });
        assert!(refusal(validate(doc(typed), &config)).contains("parameters.min_size"));
    }

    #[tokio::test]
    async fn a_document_that_is_not_a_submission_is_malformed() {
        let d = tempfile::tempdir().unwrap();
        let config = crate::test_site::demo_snapshot(d.path()).await;
        assert!(matches!(
            parse(b"{", &Limits::of(&config)),
            Err(IntakeError::Malformed(_))
        ));
        let e = parse(
            br#"{"version":1,"workflow":"w","inputs":{},"user":{"name":"a","group":"g"},"extra":1}"#,
            &Limits::of(&config),
        );
        assert!(matches!(e, Err(IntakeError::Malformed(m)) if m.contains("extra")));
    }

    #[tokio::test]
    async fn every_limit_is_the_setting_in_force_and_named_when_it_refuses() {
        let d = tempfile::tempdir().unwrap();
        let mut config = crate::test_site::demo_snapshot(d.path()).await;
        let image =
            json!({ "omero": [{ "type": "Image", "id": 1 }, { "type": "Image", "id": 2 }] });
        let mut big = base("threshold", &image);
        big["user"]["name"] = json!("alice-the-admin");
        big["parameters"] = json!({ "min_size": "x".repeat(40), "nope": 1 });
        big["inputs"]["paths"] = json!([format!("/data/{}", "p".repeat(40))]);
        // the defaults refuse only the value's type and the unknown parameter, not their sizes
        let defaults = refusal(validate(doc(big.clone()), &config));
        assert!(!defaults.contains("max_"), "{defaults}");

        let s = &mut config.settings.settings;
        s.max_name_chars = 5;
        s.max_parameters = 1;
        s.max_parameter_bytes = 16;
        s.max_inputs = 2;
        s.max_path_bytes = 20;
        let refused = refusal(validate(doc(big.clone()), &config));
        for named in [
            "user.name: the OMERO user name has 15 characters; names have at most 5 (max_name_chars)",
            "parameters: 2 parameters; a submission has at most 1 (max_parameters)",
            "parameters.min_size: the value is 40 bytes",
            "(max_parameter_bytes)",
            "inputs: 3 inputs; a submission has at most 2 (max_inputs)",
            "inputs.paths[0]: the path is 46 bytes; paths have at most 20 (max_path_bytes)",
        ] {
            assert!(refused.contains(named), "{named} in {refused}");
        }

        config.settings.settings.max_submission_bytes = 1024;
        let text = serde_json::to_vec(&big).unwrap();
        assert!(parse(&text, &Limits::of(&config)).is_ok());
        big["user"]["group"] = json!("g".repeat(2000));
        let text = serde_json::to_vec(&big).unwrap();
        let e = parse(&text, &Limits::of(&config)).unwrap_err().to_string();
        assert!(
            e.contains("at most 1024 bytes (max_submission_bytes)"),
            "{e}"
        );
        // a row another program inserted is held to the same size
        let e = validate(doc(big), &config).unwrap_err().to_string();
        assert!(e.contains("(max_submission_bytes)"), "{e}");
    }
}
