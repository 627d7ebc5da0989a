//! Human and JSON renderings of a configuration, shared by `config check`,
//! `config watch` and `workflows`.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};
use stage_config::{LoadError, ResolvedWorkflow, Snapshot, Warning};

/// One workflow as a JSON object.
pub fn workflow_json(w: &ResolvedWorkflow) -> Value {
    json!({
        "key": w.key,
        "version": w.version,
        "folder": w.folder,
        "repo": w.repo,
        "job_script": w.job_script,
        "job_script_generated": w.job_script_generated,
        "use_gpu": w.use_gpu,
        "mode": w.mode,
        "image_mode": w.modes.image_mode(),
        "plate_mode": w.modes.plate_mode(),
        "accepts": w.modes.accepts(),
        "sbatch": w.sbatch_args(),
        "descriptor": w.descriptor.as_ref().map(|d| json!({
            "format": d.format,
            "name": d.name,
            "container_image": d.container_image,
            "requires_zarr": d.requires_zarr,
            "requires_plate": d.requires_plate,
            "parameters": d.parameters,
            "file_inputs": d.file_inputs,
        })),
        "descriptor_origin": w.descriptor_origin,
        "descriptor_error": w.descriptor_error,
        "warnings": w.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn warning_json(w: &Warning) -> Value {
    json!({
        "at": w.at.as_ref().map(ToString::to_string),
        "workflow": w.workflow,
        "message": w.message,
        "text": w.to_string(),
    })
}

/// The whole configuration as a JSON object (`ok: true`).
pub fn snapshot_json(s: &Snapshot) -> Value {
    let c = &s.slurm;
    json!({
        "ok": true,
        "generation": s.generation,
        "files": c.files,
        "settings_file": s.settings.file,
        "importer_enabled": s.settings.settings.importer_enabled,
        "ngff_version": s.settings.settings.ngff_version,
        "ssh_host": c.ssh.host.value,
        "slurm": {
            "data_path": c.slurm.data_path.value,
            "images_path": c.slurm.images_path.value,
            "converters_path": c.slurm.converters_path.value,
            "script_path": c.slurm.script_path.value,
            "data_bind_path": c.slurm.data_bind_path.as_ref().map(|v| &v.value),
            "script_repo": c.slurm.script_repo.as_ref().map(|v| &v.value),
            "default_partition": c.slurm.default_partition.as_ref().map(|p| &p.value),
            "gpu_defaults": c.slurm.gpu_defaults.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "sbatch": c.slurm.sbatch.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "env_file_submission": c.slurm.env_file_submission.value,
            "inject_gpu_flag": c.slurm.inject_gpu_flag.value,
        },
        "converters": c.converters,
        "workflows": s.registry.workflows.values().map(workflow_json).collect::<Vec<_>>(),
        "warnings": s.warnings().into_iter().map(warning_json).collect::<Vec<_>>(),
        "errors": [],
    })
}

/// A load failure as a JSON object (`ok: false`).
pub fn error_json(e: &LoadError) -> Value {
    json!({ "ok": false, "errors": error_lines(e) })
}

/// One line per error.
pub fn error_lines(e: &LoadError) -> Vec<String> {
    match e {
        LoadError::Slurm(errs) => errs.0.iter().map(ToString::to_string).collect(),
        LoadError::Settings(s) => vec![s.to_string()],
    }
}

/// A load failure for people.
pub fn error_text(e: &LoadError) -> String {
    let lines = error_lines(e);
    let mut out = format!(
        "The configuration has {} error{} and cannot be used:\n",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" }
    );
    for l in lines {
        out.push_str("  - ");
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

/// The resolved configuration as a table with context and warnings.
pub fn snapshot_text(s: &Snapshot) -> String {
    let c = &s.slurm;
    let mut out = String::from("Configuration read from:\n");
    for f in &c.files {
        out.push_str(&format!("  {}\n", f.display()));
    }
    if let Some(f) = &s.settings.file {
        out.push_str(&format!("  {} (biomero-stage settings)\n", f.display()));
    }
    out.push_str(&format!(
        "Cluster: ssh alias `{}`; data {}; images {}; scripts {}{}\n",
        c.ssh.host.value,
        c.slurm.data_path.value,
        c.slurm.images_path.value,
        c.slurm.script_path.value,
        if c.slurm.script_repo.is_some() {
            " (from a script repository)"
        } else {
            " (generated)"
        },
    ));
    out.push_str(&format!(
        "Importer integration: {}; staged OME-Zarr: NGFF {}\n\n",
        if s.settings.settings.importer_enabled {
            "on (Zarr toggles in effect)"
        } else {
            "off (every workflow gets TIFFs)"
        },
        s.settings.settings.ngff_version,
    ));
    let mut t = new_table(&[
        "workflow",
        "version",
        "input mode",
        "accepts",
        "job script",
        "sbatch parameters",
        "descriptor",
        "warnings",
    ]);
    for w in s.registry.workflows.values() {
        t.add_row(vec![
            w.key.clone(),
            w.version.clone(),
            w.mode.to_string(),
            w.modes.accepts(),
            format!(
                "{}{}",
                w.job_script,
                if w.job_script_generated {
                    " (generated)"
                } else {
                    ""
                }
            ),
            w.sbatch
                .iter()
                .map(|r| format!("{} [{}]", r.param, r.level))
                .collect::<Vec<_>>()
                .join("\n"),
            w.descriptor.as_ref().map_or_else(
                || "unavailable".to_owned(),
                |d| format!("{} ({} parameters)", d.format, d.parameters.len()),
            ),
            w.warnings.len().to_string(),
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    let unchecked: Vec<&str> = s
        .registry
        .workflows
        .values()
        .filter(|w| w.descriptor.is_none())
        .map(|w| w.key.as_str())
        .collect();
    if !unchecked.is_empty() {
        out.push('\n');
        out.push_str(&stage_common::text::wrap(
            &format!(
                "NO DESCRIPTOR, PARAMETERS NOT CHECKED: {} ({} of {} workflows). Submissions to them are \
                 passed on unchecked; pin their descriptors with `biomero-stage descriptors pin` \
                 (offline sites) or let the daemon fetch them (descriptor_fetch = true).",
                unchecked.join(", "),
                unchecked.len(),
                s.registry.workflows.len()
            ),
            usize::from(stage_common::text::OUTPUT_WIDTH),
            "",
        ));
    }
    let warnings = s.warnings();
    if warnings.is_empty() {
        out.push_str("\nNo warnings.\n");
    } else {
        out.push_str(&format!("\nWarnings ({}):\n", warnings.len()));
        for w in warnings {
            match &w.workflow {
                Some(k) => out.push_str(&format!("  - [{k}] {w}\n")),
                None => out.push_str(&format!("  - {w}\n")),
            }
        }
    }
    out
}

/// Workflows with their descriptor parameters.
pub fn workflows_text(s: &Snapshot) -> String {
    let mut out = String::new();
    for w in s.registry.workflows.values() {
        out.push_str(&format!(
            "{} {} — {} ({})\n",
            w.key,
            w.version,
            w.mode,
            w.modes.accepts()
        ));
        match &w.descriptor {
            None => out.push_str(&format!(
                "  descriptor unavailable: {}\n\n",
                w.descriptor_error.as_deref().unwrap_or("unknown reason")
            )),
            Some(d) => {
                out.push_str(&format!(
                    "  {} descriptor `{}`{}\n",
                    d.format,
                    d.name,
                    d.container_image
                        .as_ref()
                        .map(|i| format!(", container {i}"))
                        .unwrap_or_default()
                ));
                if d.parameters.is_empty() {
                    out.push_str("  no parameters\n\n");
                    continue;
                }
                let mut t = new_table(&[
                    "parameter",
                    "type",
                    "default",
                    "optional",
                    "flag",
                    "choices",
                    "description",
                ]);
                for p in &d.parameters {
                    t.add_row(vec![
                        p.id.clone(),
                        p.kind.to_string(),
                        p.default
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        if p.optional { "yes" } else { "no" }.to_owned(),
                        p.flag.clone(),
                        p.choices
                            .as_ref()
                            .map(|c| {
                                c.iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default(),
                        p.description.clone(),
                    ]);
                }
                for line in t.to_string().lines() {
                    out.push_str("  ");
                    out.push_str(line);
                    out.push('\n');
                }
                out.push('\n');
            }
        }
    }
    out
}

/// An event's detail on one short line: its scalar fields as `key=value`, what is
/// nested as `key={n}` or `key=[n]`, at most 120 characters (`status ID --json` has it all).
pub fn detail_summary(detail: &Value) -> String {
    let Value::Object(m) = detail else {
        return stage_common::text::shorten(&detail.to_string(), 120);
    };
    let parts: Vec<String> = m
        .iter()
        .filter(|(k, _)| k.as_str() != "version")
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={}", stage_common::text::shorten(s, 60)),
            Value::Array(a) => format!("{k}=[{}]", a.len()),
            Value::Object(o) => format!("{k}={{{}}}", o.len()),
            other => format!("{k}={other}"),
        })
        .collect();
    stage_common::text::shorten(&parts.join(" "), 120)
}
