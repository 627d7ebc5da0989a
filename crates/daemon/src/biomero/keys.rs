//! Every input key of BIOMERO's run scripts (biomero 2.8.3 `constants`,
//! biomero-scripts 2.8.2 `SLURM_Run_Workflow.py` and `_Batched.py`) and its one
//! fate here. `config/BIOMERO_RUNS.md` shows the same table; a test keeps the two equal.

/// What happens to a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Becomes part of the submission (the text says where).
    Mapped,
    /// Acted on at intake (the text says how).
    Performed,
    /// Checked against the workflow; refused on conflict, otherwise nothing to do.
    Checked,
    /// Done by the OMERO script in the user's session in attended mode; in hand-off mode
    /// accepted and not done, the run's notices and the script's message say so.
    Attended,
}

impl Fate {
    /// The word used in the documentation table.
    pub fn word(self) -> &'static str {
        match self {
            Fate::Mapped => "mapped",
            Fate::Performed => "performed",
            Fate::Checked => "checked",
            Fate::Attended => "attended",
        }
    }
}

/// `Data_Type`.
pub const DATA_TYPE: &str = "Data_Type";
/// `IDs`.
pub const IDS: &str = "IDs";
/// `E-mail`.
pub const EMAIL: &str = "E-mail";
/// `Use_ZARR_Format`.
pub const USE_ZARR: &str = "Use_ZARR_Format";
/// `OME-Zarr_version`.
pub const OME_VERSION: &str = "OME-Zarr_version";
/// `Batch_Size` (the batched script only).
pub const BATCH_SIZE: &str = "Batch_Size";
/// The heading Bool of the result options.
pub const SELECT_IMPORT: &str = "Select how to import your results (one or more)";
/// `1)`.
pub const ZIP_TO_PARENT: &str = "1) Zip attachment to parent";
/// `2)`.
pub const ATTACH_ORIGINAL: &str = "2) Attach to original images";
/// `3a)` for images.
pub const NEW_DATASET: &str = "3a) Import into NEW Dataset";
/// `3a)` for plates.
pub const NEW_SCREEN: &str = "3a) Import into NEW Screen";
/// `3b)`.
pub const DUPLICATES: &str = "3b) Allow duplicate dataset (name)?";
/// An exact Dataset.
pub const DATASET_ID: &str = "Dataset_ID";
/// An exact Screen.
pub const SCREEN_ID: &str = "Screen_ID";
/// `3c)`.
pub const RENAME: &str = "3c) Rename the imported images";
/// `4)`.
pub const CSV_TABLES: &str = "4) Upload result CSVs as OMERO tables";
/// `5)`.
pub const FILE_OUTPUTS: &str = "5) Attach individual non-image output files";
/// `6a)`.
pub const CREATE_ROIS: &str = "6a) Create ROIs from label images";
/// `Cleanup?`.
pub const CLEANUP: &str = "Cleanup?";
/// BIOMERO's "none" for the name options.
pub const NO: &str = "--NO THANK YOU--";
/// BIOMERO's only `<wf>_Version` value when the cluster has no container of the workflow.
pub const NOT_AVAILABLE: &str = "Not Available!";
/// The separator of `<workflow>_|_<parameter>`.
pub const PARAM_SEPARATOR: &str = "_|_";
/// The prefix of file parameters after the separator.
pub const FILE_PREFIX: &str = "FILE_";

/// One fixed key: its name, fate and what happens.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The exact key.
    pub name: &'static str,
    /// Its fate.
    pub fate: Fate,
    /// What happens, in a sentence.
    pub what: &'static str,
}

const fn key(name: &'static str, fate: Fate, what: &'static str) -> Key {
    Key { name, fate, what }
}

/// The fixed keys, in the scripts' order.
pub const FIXED: &[Key] = &[
    key(
        DATA_TYPE,
        Fate::Mapped,
        "the type of every `inputs.omero` entry: Image, Dataset, Plate or Screen; Project is refused (select its Datasets)",
    ),
    key(IDS, Fate::Mapped, "the ids of `inputs.omero`; at least one"),
    key(
        EMAIL,
        Fate::Performed,
        "true: the user's address is read from OMERO at intake (`options.email_to`); one mail when the whole run has ended (imported, failed or cancelled), through `smtp_url`; without a relay or an address, the run's notices and history say so",
    ),
    key(
        USE_ZARR,
        Fate::Checked,
        "against the workflow's input mode: true for a TIFF workflow, or false for a Zarr or plate workflow, is refused naming both",
    ),
    key(
        OME_VERSION,
        Fate::Mapped,
        "`options.ngff_version` (0.4 or 0.5) of Zarr inputs; not used by TIFF workflows",
    ),
    key(
        BATCH_SIZE,
        Fate::Performed,
        "the inputs are split into batches of this many images (Datasets expanded to their images, Plates to their fields unless they go to a Screen), one submission each; refused in `SLURM_Run_Workflow.py`",
    ),
    key(
        SELECT_IMPORT,
        Fate::Checked,
        "must be true: biomero-stage always keeps and imports the results",
    ),
    key(
        ZIP_TO_PARENT,
        Fate::Performed,
        "`options.attach.zip_to_parent`: after the import, the kept results, zipped as `<submission>_out.zip`, are attached to the inputs' Datasets and Plates (else to the Dataset or Screen they were imported into) through OMERO.web's webclient (`annotate_file`) with biomero-stage's OMERO account; each attachment once, even when the step is retried",
    ),
    key(
        ATTACH_ORIGINAL,
        Fate::Performed,
        "`options.attach.to_original_images`: each result image file is attached to the OMERO image it was made from, named `<stem>.<submission>.<ext>` as BIOMERO names it; a Zarr result (a folder) is imported, not attached, and the history says so",
    ),
    key(
        NEW_DATASET,
        Fate::Performed,
        "a name: the Dataset of that name in the user's group, created through OMERO.web's JSON API (`m/save/`) as the user when there is none; becomes `results`",
    ),
    key(
        NEW_SCREEN,
        Fate::Performed,
        "the same, for a Screen (plate workflows)",
    ),
    key(
        DUPLICATES,
        Fate::Performed,
        "true creates a new Dataset or Screen even when one of that name exists, one per run: a retried run (the same run id) reuses the one it made, found by its description; forced false for batches, which share one",
    ),
    key(
        DATASET_ID,
        Fate::Mapped,
        "`results` = that Dataset, checked to be visible to the user and in the session's group; wins over `3a)`",
    ),
    key(
        SCREEN_ID,
        Fate::Mapped,
        "`results` = that Screen, checked the same way",
    ),
    key(
        RENAME,
        Fate::Mapped,
        "a pattern other than `--NO THANK YOU--`: `options.rename`; the result images (not plates) are renamed with it before import, `{original_file}` and `{original_ext}` being the input's name; an unknown variable or a `/` is refused",
    ),
    key(
        CSV_TABLES,
        Fate::Attended,
        "hand-off: the CSV files are attached as files (`options.attach.tables_as_files`) and the run's notices say no OMERO.table was made (OMERO.tables need OMERO's own API); attended: the OMERO script makes them in the user's session when the run has ended, as BIOMERO does (omero-metadata's `ParsingContext`, a CSV it cannot read attached instead)",
    ),
    key(
        FILE_OUTPUTS,
        Fate::Performed,
        "`options.attach.other_files`: every non-image output file (tables, logs) is attached to the inputs' Datasets and Plates, as `1)` is",
    ),
    key(
        CREATE_ROIS,
        Fate::Attended,
        "hand-off: the run's notices say no ROIs were made (ROIs need OMERO's own API); attended: the OMERO script runs BIOMERO's `Labels2Rois.py` in the user's session on the imported label images, with BIOMERO's inputs",
    ),
    key(
        "6b) Label image pattern",
        Fate::Attended,
        "belongs to `6a)`",
    ),
    key("6c) ROI shape", Fate::Attended, "belongs to `6a)`"),
    key(
        "6d) Delete label images after ROI creation",
        Fate::Attended,
        "belongs to `6a)`",
    ),
    key(
        "6e) Clear existing ROIs on original images",
        Fate::Attended,
        "belongs to `6a)`",
    ),
    key(
        "6f) Clear existing ROI name filter",
        Fate::Attended,
        "belongs to `6a)`",
    ),
    key("6g) ROI color override", Fate::Attended, "belongs to `6a)`"),
    key(
        CLEANUP,
        Fate::Mapped,
        "`options.keep_remote_data` = not Cleanup?",
    ),
];

/// The per-workflow keys, as `(pattern, fate, what)`.
pub const PER_WORKFLOW: &[(&str, Fate, &str)] = &[
    (
        "<wf>",
        Fate::Mapped,
        "true selects the workflow: one submission per selected workflow (and batch), grouped as one run; a key naming no configured workflow is refused",
    ),
    (
        "<wf>_Version",
        Fate::Mapped,
        "`workflow_version`: the container the job runs (`IMAGE_VERSION`, `SINGULARITY_IMAGE` = `<image>_<version>.sif`): the configured version, or another one found in the workflow's image folder on the cluster at intake, as BIOMERO lists them (a leading `v` is ignored; parameters follow the configured version's descriptor); `Not Available!` is refused; when the cluster cannot be asked, nothing is queued and the answer says so (a detached run is tried again); ignored for workflows not selected",
    ),
    (
        "<wf>_|_<param>",
        Fate::Mapped,
        "`parameters.<param>`, checked against the workflow's descriptor; ignored for workflows not selected",
    ),
    (
        "<wf>_|_FILE_<param>",
        Fate::Performed,
        "FileAnnotation ids for a file input of the descriptor: downloaded through OMERO.web as the user at intake, checked against the input's formats, staged in `data/in/<param>/`; the job gets that folder in `<PARAM>`. A required input without ids, or ids for an input the descriptor lacks, is refused",
    ),
];

/// The fixed key called `name`.
pub fn fixed(name: &str) -> Option<&'static Key> {
    FIXED.iter().find(|k| k.name == name)
}

/// The documentation table (Markdown), as `config/BIOMERO_RUNS.md` carries it.
pub fn table() -> String {
    // a `|` inside a cell is written `\|` (GitHub-flavoured Markdown tables)
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from("| key | fate | what happens |\n|---|---|---|\n");
    for k in FIXED {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            cell(k.name),
            k.fate.word(),
            cell(k.what)
        ));
    }
    for (p, f, w) in PER_WORKFLOW {
        out.push_str(&format!("| `{}` | {} | {} |\n", cell(p), f.word(), cell(w)));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_documented_table_is_the_catalogue() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/BIOMERO_RUNS.md"
        ))
        .unwrap();
        assert!(
            doc.contains(&table()),
            "config/BIOMERO_RUNS.md must hold exactly this table:\n{}",
            table()
        );
    }

    #[test]
    fn every_key_has_one_fate() {
        let mut names: Vec<&str> = FIXED.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "a key is listed twice");
    }
}
