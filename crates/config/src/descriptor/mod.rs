//! Workflow descriptors: BIAFLOWS, biomero-schema and bilayers, as one model.
//!
//! A workflow's repository carries a descriptor (`descriptor.json`,
//! `descriptor.yaml` or bilayers' `config.yaml`) that lists its parameters and
//! container, and — for biomero-schema and bilayers — the formats its image
//! input accepts. The format is detected the way BIOMERO detects it
//! (`schema-version` prefix first, then the shape), each format is adapted into
//! [`Descriptor`], and `requires_zarr` / `requires_plate` are derived from the
//! image inputs (docs/contracts.md#workflow-descriptors). [`store`] finds descriptors: shipped files, an
//! on-disk cache, or the repository itself.

mod biaflows;
mod bilayers;
mod biomero;
pub mod store;

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// Which descriptor dialect a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DescriptorFormat {
    /// BIAFLOWS / Cytomine `cytomine-0.1` (a flat folder of TIFFs by convention).
    Biaflows,
    /// BIOMERO's own `biomero-0.1` schema.
    BiomeroSchema,
    /// A bilayers `config.yaml`.
    Bilayers,
}

impl fmt::Display for DescriptorFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DescriptorFormat::Biaflows => "BIAFLOWS",
            DescriptorFormat::BiomeroSchema => "biomero-schema",
            DescriptorFormat::Bilayers => "bilayers",
        })
    }
}

/// The value type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Free text (also BIAFLOWS Domain/ListDomain, bilayers radio/textbox).
    String,
    /// A whole number (BIAFLOWS `Number` with a non-float default).
    Integer,
    /// A real number.
    Float,
    /// true / false (bilayers `checkbox`).
    Boolean,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Float => "float",
            ParamType::Boolean => "boolean",
        })
    }
}

/// One workflow parameter a user may set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parameter {
    /// Identifier; the job sees it upper-cased as an environment variable.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Human description.
    pub description: String,
    /// Value type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Default value, if any.
    pub default: Option<Value>,
    /// Whether the user may leave it unset.
    pub optional: bool,
    /// The workflow's command-line flag (`--diameter`).
    pub flag: String,
    /// Allowed values, if restricted.
    pub choices: Option<Vec<Value>>,
}

impl Parameter {
    /// The environment variable that carries the value into the job (`DIAMETER`).
    pub fn env_name(&self) -> String {
        self.id.to_ascii_uppercase()
    }

    /// Checks a submitted value against the type and choices; returns it normalised.
    pub fn check_value(&self, value: &Value) -> Result<Value, String> {
        let normalised = match (self.kind, value) {
            (ParamType::Boolean, Value::Bool(_)) => value.clone(),
            (ParamType::Boolean, Value::String(s)) => match crate::values::parse_bool(s) {
                Some(b) => Value::Bool(b),
                None => return Err(format!("`{s}` is not a boolean; send true or false")),
            },
            (ParamType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => value.clone(),
            (ParamType::Integer, Value::Number(n)) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 =>
                {
                    #[allow(clippy::cast_possible_truncation)]
                    Value::from(f as i64)
                }
                _ => return Err(format!("{n} is not a whole number")),
            },
            (ParamType::Integer, Value::String(s)) => match s.trim().parse::<i64>() {
                Ok(i) => Value::from(i),
                Err(_) => return Err(format!("`{s}` is not a whole number")),
            },
            (ParamType::Float, Value::Number(_)) => value.clone(),
            (ParamType::Float, Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Value::from(f),
                _ => return Err(format!("`{s}` is not a number")),
            },
            (ParamType::String, Value::String(_)) => value.clone(),
            (ParamType::String, Value::Number(n)) => Value::String(n.to_string()),
            (ParamType::String, Value::Bool(b)) => Value::String(b.to_string()),
            (kind, other) => return Err(format!("{other} is not a {kind}")),
        };
        if let Some(choices) = &self.choices
            && !choices.iter().any(|c| same_choice(c, &normalised))
        {
            let list: Vec<String> = choices.iter().map(ToString::to_string).collect();
            return Err(format!(
                "{normalised} is not one of the allowed values: {}",
                list.join(", ")
            ));
        }
        Ok(normalised)
    }
}

fn same_choice(choice: &Value, v: &Value) -> bool {
    match (choice, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), b) | (b, Value::String(a)) if !b.is_string() => {
            b.as_bool()
                .is_some_and(|x| a == if x { "true" } else { "false" })
                || b.as_f64().is_some_and(|x| a.parse::<f64>() == Ok(x))
        }
        (a, b) => a == b,
    }
}

/// An image input and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageInput {
    /// Input identifier.
    pub id: String,
    /// Accepted formats (`tiff`, `omezarr`, …), lower case.
    pub formats: Vec<String>,
    /// Sub-types (`grayscale`, `labeled`, `plate`, …), lower case.
    pub subtypes: Vec<String>,
}

/// A file the user attaches in OMERO for the workflow (a model, a configuration): BIOMERO's
/// `file-attachment` inputs, given as FileAnnotation ids and staged in `data/in/<id>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInput {
    /// Input identifier; the job gets the folder in the variable of that name, upper-cased.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Human description.
    pub description: String,
    /// Accepted file extensions, lower case, without the dot (empty: any).
    pub formats: Vec<String>,
    /// Whether the user may leave it out.
    pub optional: bool,
}

impl FileInput {
    /// The environment variable that carries the folder into the job.
    pub fn env_name(&self) -> String {
        self.id.to_ascii_uppercase()
    }

    /// Whether `file_name` has one of the accepted extensions.
    pub fn accepts(&self, file_name: &str) -> bool {
        let lower = file_name.to_ascii_lowercase();
        self.formats.is_empty()
            || self
                .formats
                .iter()
                .any(|f| lower.ends_with(&format!(".{}", f.trim_start_matches('.'))))
    }
}

/// Formats that mean "this input is an OME-Zarr".
pub const ZARR_FORMATS: [&str; 4] = ["zarr", "omezarr", "ome.zarr", "ome-zarr"];

impl ImageInput {
    /// Whether this input wants Zarr: a Zarr format, or a plate.
    pub fn wants_zarr(&self) -> bool {
        self.formats
            .iter()
            .any(|f| ZARR_FORMATS.contains(&f.as_str()))
            || self.wants_plate()
    }

    /// Whether this input wants a whole plate.
    pub fn wants_plate(&self) -> bool {
        self.subtypes.iter().any(|s| s == "plate")
    }
}

/// A workflow descriptor in biomero-stage's model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Descriptor {
    /// The dialect it was written in.
    pub format: DescriptorFormat,
    /// `schema-version` as written, if any.
    pub schema_version: Option<String>,
    /// Workflow name.
    pub name: String,
    /// Workflow description.
    pub description: String,
    /// Container image (`org/name`, without tag).
    pub container_image: Option<String>,
    /// The workflow's command line, if given.
    pub command_line: Option<String>,
    /// Parameters a user may set (server-set ones and data inputs excluded).
    pub parameters: Vec<Parameter>,
    /// Image inputs (empty for BIAFLOWS, which has none declared).
    pub image_inputs: Vec<ImageInput>,
    /// Files the user attaches (BIOMERO's `file-attachment` inputs).
    pub file_inputs: Vec<FileInput>,
    /// An image input wants Zarr (or a plate).
    pub requires_zarr: bool,
    /// An image input wants a plate.
    pub requires_plate: bool,
    /// Things a person should know about this descriptor.
    pub notes: Vec<String>,
}

impl Descriptor {
    /// A parameter by id.
    pub fn parameter(&self, id: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.id == id)
    }

    /// A file input by id.
    pub fn file_input(&self, id: &str) -> Option<&FileInput> {
        self.file_inputs.iter().find(|f| f.id == id)
    }

    fn finish(mut self) -> Self {
        self.requires_zarr = self.image_inputs.iter().any(ImageInput::wants_zarr);
        self.requires_plate = self.image_inputs.iter().any(ImageInput::wants_plate);
        self
    }
}

/// Why a descriptor could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// Neither JSON nor YAML.
    #[error(
        "{source_name} is neither JSON nor YAML (JSON: {json}; YAML: {yaml}); fix the file in the workflow's repository"
    )]
    NotJsonOrYaml {
        /// The file or URL.
        source_name: String,
        /// The JSON parser's complaint.
        json: String,
        /// The YAML parser's complaint.
        yaml: String,
    },
    /// Parsed, but not a mapping.
    #[error("{source_name} is not a descriptor: the top level must be a mapping of keys")]
    NotAMapping {
        /// The file or URL.
        source_name: String,
    },
    /// No known dialect matched.
    #[error(
        "{source_name} has an unknown schema-version `{version}`; biomero-stage reads cytomine-0.1 (BIAFLOWS), biomero-0.1 and bilayers config.yaml"
    )]
    UnknownSchema {
        /// The file or URL.
        source_name: String,
        /// What `schema-version` said (or a summary of the keys when absent).
        version: String,
    },
    /// A dialect was detected but a field is wrong.
    #[error("{source_name}: {message}")]
    Invalid {
        /// The file or URL.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// The descriptor could not be obtained at all.
    #[error("{message}")]
    Unavailable {
        /// Where it was looked for and why it failed.
        message: String,
    },
}

/// Parses descriptor bytes (JSON or YAML), detecting the dialect.
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Descriptor, DescriptorError> {
    let value = parse_document(bytes, source_name)?;
    let Value::Object(map) = &value else {
        return Err(DescriptorError::NotAMapping {
            source_name: source_name.to_owned(),
        });
    };
    let invalid = |message: String| DescriptorError::Invalid {
        source_name: source_name.to_owned(),
        message,
    };
    let schema_version = map.get("schema-version").and_then(Value::as_str);
    let d = match detect(map) {
        Some(DescriptorFormat::Biaflows) => biaflows::adapt(map).map_err(invalid)?,
        Some(DescriptorFormat::BiomeroSchema) => biomero::adapt(map).map_err(invalid)?,
        Some(DescriptorFormat::Bilayers) => bilayers::adapt(map).map_err(invalid)?,
        None => {
            return Err(DescriptorError::UnknownSchema {
                source_name: source_name.to_owned(),
                version: schema_version.map_or_else(
                    || {
                        let keys: Vec<&str> = map.keys().map(String::as_str).take(6).collect();
                        format!("(none; keys: {})", keys.join(", "))
                    },
                    str::to_owned,
                ),
            });
        }
    };
    let mut d = d.finish();
    d.schema_version = schema_version.map(str::to_owned);
    if let Some(v) = schema_version
        && d.format == DescriptorFormat::Biaflows
        && !v.starts_with("cytomine")
    {
        d.notes.push(format!(
            "schema-version `{v}` is not cytomine-0.1; read as BIAFLOWS because it has container-image and inputs"
        ));
    }
    for p in &d.parameters {
        check_parameter(p).map_err(invalid)?;
    }
    Ok(d)
}

fn parse_document(bytes: &[u8], source_name: &str) -> Result<Value, DescriptorError> {
    let json_err = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e.to_string(),
    };
    match serde_saphyr::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(e) => Err(DescriptorError::NotJsonOrYaml {
            source_name: source_name.to_owned(),
            json: json_err,
            yaml: e.to_string(),
        }),
    }
}

/// BIOMERO's detection order: `schema-version` prefix, then the shape.
fn detect(map: &serde_json::Map<String, Value>) -> Option<DescriptorFormat> {
    let version = map
        .get("schema-version")
        .and_then(Value::as_str)
        .unwrap_or("");
    if version.starts_with("cytomine") {
        return Some(DescriptorFormat::Biaflows);
    }
    if version.starts_with("biomero") || version.starts_with("1.") {
        return Some(DescriptorFormat::BiomeroSchema);
    }
    if map.contains_key("container-image") && map.contains_key("inputs") {
        return Some(DescriptorFormat::Biaflows);
    }
    if map.contains_key("docker_image") {
        return Some(DescriptorFormat::Bilayers);
    }
    None
}

/// A parameter must be usable as an environment variable and a command-line flag.
fn check_parameter(p: &Parameter) -> Result<(), String> {
    let id_ok =
        p.id.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !id_ok {
        return Err(format!(
            "parameter id `{}` cannot be an environment variable; ids are letters, digits and '_'",
            p.id
        ));
    }
    if let Some(why) = reserved_variable(&p.env_name()) {
        return Err(format!(
            "parameter `{}` would set the job's `{}`, which {why}; rename the parameter in the descriptor",
            p.id,
            p.env_name()
        ));
    }
    let flag_ok = p.flag.starts_with('-')
        && p.flag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !flag_ok {
        return Err(format!(
            "parameter `{}` has command-line flag `{}`; flags are -/-- followed by letters, digits, '-' and '_'",
            p.id, p.flag
        ));
    }
    Ok(())
}

/// The variables biomero-stage sets for every job (docs/contracts.md#the-job).
pub const JOB_VARIABLES: [&str; 7] = [
    "DATA_PATH",
    "IMAGE_PATH",
    "IMAGE_VERSION",
    "SINGULARITY_IMAGE",
    "SCRIPT_PATH",
    "APPTAINER_BINDPATH",
    "GPU_FLAG",
];

/// System variables a job's shell, loader or scheduler reads, which no parameter may set.
const SYSTEM_VARIABLES: [&str; 14] = [
    "PATH",
    "HOME",
    "USER",
    "SHELL",
    "IFS",
    "ENV",
    "BASH_ENV",
    "PWD",
    "TMPDIR",
    "LANG",
    "PYTHONPATH",
    "PYTHONHOME",
    "CDPATH",
    "PS4",
];

/// Prefixes of variables the loader, Slurm and the container runtime read.
const SYSTEM_PREFIXES: [&str; 6] = [
    "LD_",
    "SLURM_",
    "SBATCH_",
    "APPTAINER",
    "SINGULARITY",
    "BASH_FUNC_",
];

/// Why a parameter may not set the environment variable `name` (upper case), if it may not.
pub fn reserved_variable(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if JOB_VARIABLES.contains(&upper.as_str()) {
        Some("biomero-stage sets for every job")
    } else if SYSTEM_VARIABLES.contains(&upper.as_str()) {
        Some("the job's shell and programs rely on")
    } else if SYSTEM_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        Some("belongs to the loader, Slurm or the container runtime")
    } else {
        None
    }
}

/// Reads a string field, or a default.
fn str_field(v: &serde_json::Map<String, Value>, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Reads a boolean field that may be written as a string.
fn bool_field(v: &serde_json::Map<String, Value>, key: &str) -> bool {
    match v.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => crate::values::parse_bool(s).unwrap_or(false),
        _ => false,
    }
}

/// Reads a field that may be one string or a list of strings, lower-cased.
fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.to_ascii_lowercase()),
                Value::Null => None,
                other => Some(other.to_string().to_ascii_lowercase()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What a descriptor says about itself, whatever its format.
struct Header {
    /// The workflow's name.
    name: String,
    /// Its description.
    description: String,
    /// Its container image (`org/name`), when declared.
    container_image: Option<String>,
    /// Its command line, when declared.
    command_line: Option<String>,
}

impl Descriptor {
    /// An adapted descriptor; its requirements (Zarr, plate) are derived by `parse`.
    fn adapted(
        format: DescriptorFormat,
        header: Header,
        parameters: Vec<Parameter>,
        image_inputs: Vec<ImageInput>,
    ) -> Self {
        Descriptor {
            format,
            schema_version: None,
            name: header.name,
            description: header.description,
            container_image: header.container_image,
            command_line: header.command_line,
            parameters,
            image_inputs,
            file_inputs: Vec::new(),
            requires_zarr: false,
            requires_plate: false,
            notes: Vec::new(),
        }
    }
}

/// A BIAFLOWS-shaped descriptor (BIAFLOWS, biomero-schema): `name`, `description`,
/// `container-image.image`, `command-line`.
fn biaflows_descriptor(
    map: &serde_json::Map<String, Value>,
    format: DescriptorFormat,
    parameters: Vec<Parameter>,
    image_inputs: Vec<ImageInput>,
) -> Descriptor {
    let image = map.get("container-image").and_then(Value::as_object);
    Descriptor::adapted(
        format,
        Header {
            name: str_field(map, "name"),
            description: str_field(map, "description"),
            container_image: image
                .map(|i| str_field(i, "image"))
                .filter(|s| !s.is_empty()),
            command_line: map
                .get("command-line")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        parameters,
        image_inputs,
    )
}

/// How one descriptor format names the fields of a parameter.
struct Dialect {
    /// The list the entries are in (`inputs`, `parameters`).
    list: &'static str,
    /// The identifier (`id`, `name`).
    id: &'static str,
    /// The label shown to people (`name`, `label`); the id when absent.
    label: &'static str,
    /// The default value (`default-value`, `default`).
    default: &'static str,
    /// The command-line flag (`command-line-flag` with `@id`, `cli_tag`); `--<id>` when absent.
    flag: &'static str,
    /// The parameter's type from its `type` field (lower-cased) and default.
    kind: fn(&str, Option<&Value>) -> ParamType,
    /// The allowed values.
    choices: fn(&serde_json::Map<String, Value>) -> Option<Vec<Value>>,
}

/// BIAFLOWS' names for a parameter's fields, which biomero-schema keeps (types are matched
/// case-insensitively: BIAFLOWS writes `Number`, biomero-schema `number`).
const BIAFLOWS_FIELDS: Dialect = Dialect {
    list: "inputs",
    id: "id",
    label: "name",
    default: "default-value",
    flag: "command-line-flag",
    kind: number_kind,
    choices: value_choices,
};

/// A parameter's type from its (lower-cased) `type`: `integer`, `float`, `boolean` or
/// bilayers' `checkbox`; BIAFLOWS' `Number` is an integer unless its default is fractional;
/// the rest (`String`, bilayers' `radio`, `textbox`, …) are text.
fn number_kind(ty: &str, default: Option<&Value>) -> ParamType {
    match ty {
        "integer" => ParamType::Integer,
        "float" => ParamType::Float,
        "boolean" | "checkbox" => ParamType::Boolean,
        "number" => match default {
            Some(Value::Number(n)) if n.is_f64() => ParamType::Float,
            _ => ParamType::Integer,
        },
        _ => ParamType::String,
    }
}

/// BIAFLOWS and biomero-schema: `value-choices`.
fn value_choices(entry: &serde_json::Map<String, Value>) -> Option<Vec<Value>> {
    entry
        .get("value-choices")
        .and_then(Value::as_array)
        .cloned()
}

/// The entries of the dialect's list, each a mapping with a non-empty id.
fn entries<'a>(
    map: &'a serde_json::Map<String, Value>,
    d: &Dialect,
) -> Result<Vec<(String, &'a serde_json::Map<String, Value>)>, String> {
    let mut out = Vec::new();
    for (i, entry) in list_field(map, d.list)?.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(format!("{}[{i}] is not a mapping", d.list));
        };
        let id = str_field(entry, d.id);
        if id.is_empty() {
            return Err(format!("{}[{i}] has no {}", d.list, d.id));
        }
        out.push((id, entry));
    }
    Ok(out)
}

/// One parameter, read with the dialect's field names.
fn parameter(id: String, entry: &serde_json::Map<String, Value>, d: &Dialect) -> Parameter {
    let default = entry.get(d.default).filter(|v| !v.is_null()).cloned();
    let ty = str_field(entry, "type").to_ascii_lowercase();
    let flag = str_field(entry, d.flag);
    let label = str_field(entry, d.label);
    Parameter {
        name: if label.is_empty() { id.clone() } else { label },
        description: str_field(entry, "description"),
        kind: (d.kind)(&ty, default.as_ref()),
        default,
        optional: bool_field(entry, "optional"),
        flag: if flag.is_empty() {
            format!("--{id}")
        } else {
            flag.replace("@id", &id)
        },
        choices: (d.choices)(entry),
        id,
    }
}

/// The list under `key`, or an error naming it when it is not a list.
fn list_field<'a>(v: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("`{key}` must be a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detection_follows_biomero() {
        let biaflows = br#"{"schema-version":"cytomine-0.1","name":"x","container-image":{"image":"a/b","type":"singularity"},"inputs":[]}"#;
        assert_eq!(
            parse(biaflows, "d").unwrap().format,
            DescriptorFormat::Biaflows
        );
        let boutiques = br#"{"schema-version":"boutiques-0.5","name":"x","container-image":{"image":"a/b"},"inputs":[]}"#;
        let d = parse(boutiques, "d").unwrap();
        assert_eq!(d.format, DescriptorFormat::Biaflows);
        assert_eq!(d.notes.len(), 1);
        let bilayers = b"docker_image:\n  org: o\n  name: n\ninputs: []\n";
        assert_eq!(
            parse(bilayers, "c").unwrap().format,
            DescriptorFormat::Bilayers
        );
    }

    /// No parameter may set a variable the job, its shell, the loader, Slurm or the
    /// container runtime relies on, whatever the case of its id and whatever the dialect.
    #[test]
    fn parameters_named_like_job_or_system_variables_are_refused() {
        let biaflows = |id: &str| {
            format!(
                r#"{{"schema-version":"cytomine-0.1","name":"x","container-image":{{"image":"a/b","type":"singularity"}},"inputs":[{{"id":"{id}","type":"String","command-line-flag":"--{id}","value-key":"@ID","default-value":"v"}}]}}"#
            )
        };
        let reserved = JOB_VARIABLES.iter().map(|v| v.to_ascii_lowercase()).chain(
            [
                "path",
                "Path",
                "home",
                "ld_preload",
                "LD_LIBRARY_PATH",
                "slurm_job_id",
                "apptainer_bind",
                "singularityenv_x",
                "bash_env",
                "ifs",
                "pythonpath",
            ]
            .map(String::from),
        );
        for id in reserved {
            let e = parse(biaflows(&id).as_bytes(), "d.json")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("parameter `{id}`")) && e.contains("rename"),
                "{e}"
            );
        }
        for id in ["diameter", "data_dir", "path_prefix", "model_path"] {
            assert!(parse(biaflows(id).as_bytes(), "d.json").is_ok(), "{id}");
        }
        let bilayers = b"docker_image:\n  org: o\n  name: n\ninputs: []\nparameters:\n  - name: data_path\n    type: textbox\n    cli_tag: --data_path\n    default: x\n";
        let e = parse(bilayers, "config.yaml").unwrap_err().to_string();
        assert!(e.contains("DATA_PATH"), "{e}");
    }

    #[test]
    fn an_unknown_schema_version_is_refused() {
        let e = parse(br#"{"schema-version":"cwl-1.2","name":"x"}"#, "d.json").unwrap_err();
        assert!(matches!(e, DescriptorError::UnknownSchema { .. }));
        assert!(e.to_string().contains("cwl-1.2"), "{e}");
    }

    #[test]
    fn text_that_is_not_json_or_yaml_is_refused() {
        let e = parse(b"{ \"name\": [unclosed\n  - : :\n\t", "d.json").unwrap_err();
        assert!(matches!(e, DescriptorError::NotJsonOrYaml { .. }), "{e}");
        let e = parse(b"- just\n- a list\n", "d.yaml").unwrap_err();
        assert!(matches!(e, DescriptorError::NotAMapping { .. }), "{e}");
    }

    #[test]
    fn values_are_checked_against_type_and_choices() {
        let p = Parameter {
            id: "mode".into(),
            name: "m".into(),
            description: String::new(),
            kind: ParamType::Integer,
            default: None,
            optional: true,
            flag: "--mode".into(),
            choices: Some(vec![json!(0), json!(1)]),
        };
        assert_eq!(p.check_value(&json!("1")).unwrap(), json!(1));
        assert_eq!(p.check_value(&json!(1.0)).unwrap(), json!(1));
        assert!(
            p.check_value(&json!(2))
                .unwrap_err()
                .contains("allowed values")
        );
        assert!(p.check_value(&json!("x")).is_err());
        assert!(p.check_value(&json!([1])).is_err());
        let b = Parameter {
            kind: ParamType::Boolean,
            choices: None,
            ..p
        };
        assert_eq!(b.check_value(&json!("True")).unwrap(), json!(true));
        assert!(b.check_value(&json!(3)).is_err());
    }
}
