//! The sources a submission reads from, built from the settings in force and
//! kept between steps: the group folder mappings (so a broken edit keeps the
//! last good ones) and the OMERO client (so its session is reused). Both are
//! rebuilt when a configuration reload changes what they depend on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stage_config::StageSettings;
use stage_config::mode::ModeDecision;
use stage_config::settings::Secret;
use stage_source::export::{ExportConfig, Exporter};
use stage_source::omero::{OmeroClient, OmeroConfig, OmeroSource};
use stage_source::{FsSource, GroupFolders, InputRef, Request, SourceError, Sources};

use crate::intake::SubmissionDoc;

#[derive(Default)]
struct Cached {
    groups: Option<(Option<std::path::PathBuf>, Arc<GroupFolders>)>,
    omero: Option<((String, Secret), Arc<OmeroClient>)>,
    /// Kept while its settings stay the same: its concurrency is the daemon's.
    exporter: Option<(ExportConfig, Arc<Exporter>)>,
}

/// The sources of the settings in force.
#[derive(Debug, Clone)]
pub struct Built {
    /// What plans read.
    pub sources: Sources,
    /// The OMERO client, when OMERO is configured.
    pub omero: Option<Arc<OmeroClient>>,
    /// OMERO's exporter, when `omero_export_command` is set.
    pub exporter: Option<Arc<Exporter>>,
}

/// Sources built from settings, cached while the settings they depend on stay the same.
#[derive(Default)]
pub struct SourceCache {
    inner: Mutex<Cached>,
}

impl std::fmt::Debug for SourceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceCache").finish_non_exhaustive()
    }
}

/// Everything the OMERO client depends on but the password, as a cache key.
fn omero_key(s: &StageSettings) -> String {
    format!(
        "{:?}|{}|{:?}|{:?}|{:?}|{:?}|{}|{}|{}",
        s.omero_url,
        s.omero_server_id,
        s.omero_user,
        s.pixel_buffer_url,
        s.managed_repository,
        s.importer_path_map,
        s.omero_concurrency,
        s.omero_timeout_secs,
        s.omero_tile_size,
    )
}

impl SourceCache {
    /// The group folder mappings of `settings` (re-read when the file changes).
    pub fn groups(&self, settings: &StageSettings) -> Arc<GroupFolders> {
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &c.groups {
            Some((file, g)) if *file == settings.group_mappings_file => g.clone(),
            _ => {
                let g = Arc::new(GroupFolders::new(settings.group_mappings_file.clone()));
                c.groups = Some((settings.group_mappings_file.clone(), g.clone()));
                g
            }
        }
    }

    /// The sources for `settings`, with the OMERO client and exporter when configured.
    pub fn sources(&self, settings: &StageSettings) -> Result<Built, SourceError> {
        let groups = self.groups(settings);
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fs = FsSource::new(&settings.data_roots, groups);
        let omero = match (&settings.omero_url, &settings.omero_user) {
            (Some(url), Some(user)) => {
                let password = settings
                    .omero_password()
                    .map_err(|e| SourceError::NotConfigured(e.to_string()))?
                    .ok_or_else(|| {
                        SourceError::NotConfigured(
                            "omero_user is set but no password: set omero_password_file (or BIOMERO_STAGE_OMERO_PASSWORD)".into(),
                        )
                    })?;
                let key = (omero_key(settings), password.clone());
                match &c.omero {
                    Some((k, client)) if *k == key => Some(client.clone()),
                    _ => {
                        let client = Arc::new(OmeroClient::new(OmeroConfig {
                            url: url.clone(),
                            server_id: settings.omero_server_id,
                            user: user.clone(),
                            password,
                            pixel_buffer_url: settings.pixel_buffer_url.clone(),
                            managed_repository: settings.managed_repository.clone(),
                            // the importer's view of the storage is OMERO's side's
                            storage_map: settings
                                .importer_path_map
                                .as_deref()
                                .and_then(|m| m.split_once('='))
                                .map(|(here, there)| {
                                    (
                                        std::path::PathBuf::from(here.trim()),
                                        std::path::PathBuf::from(there.trim()),
                                    )
                                }),
                            timeout: Duration::from_secs(settings.omero_timeout_secs),
                            concurrency: usize::try_from(settings.omero_concurrency).unwrap_or(8),
                            tile_size: settings.omero_tile_size,
                            attempts: 5,
                        })?);
                        c.omero = Some((key, client.clone()));
                        Some(client)
                    }
                }
            }
            _ => None,
        };
        let exporter = match &settings.omero_export_command {
            Some(command) => {
                let cfg = ExportConfig {
                    command: command.clone(),
                    server: settings.omero_server.clone().unwrap_or_default(),
                    timeout: Duration::from_secs(settings.omero_export_timeout_secs),
                    concurrency: usize::try_from(settings.omero_export_concurrency).unwrap_or(2),
                };
                match &c.exporter {
                    Some((k, e)) if *k == cfg => Some(e.clone()),
                    _ => {
                        let e = Arc::new(Exporter::new(cfg.clone()));
                        c.exporter = Some((cfg, e.clone()));
                        Some(e)
                    }
                }
            }
            None => None,
        };
        Ok(Built {
            sources: Sources {
                fs,
                omero: omero.clone().map(OmeroSource::new),
                exporter: exporter.is_some(),
            },
            omero,
            exporter,
        })
    }
}

/// The planning request of a submission for a workflow with `modes`.
pub fn request(doc: &SubmissionDoc, modes: ModeDecision, settings: &StageSettings) -> Request {
    let inputs = doc
        .inputs
        .omero
        .iter()
        .map(|o| InputRef::Omero {
            kind: o.kind.clone(),
            id: o.id,
        })
        .chain(doc.inputs.paths.iter().map(|p| InputRef::Path(p.clone())))
        .collect();
    Request {
        inputs,
        group: doc.user.group.clone(),
        modes,
        ngff_version: doc
            .options
            .ngff_version
            .unwrap_or(settings.ngff_version)
            .to_string(),
    }
}
