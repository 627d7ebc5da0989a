//! Turning selected OMERO objects into images and plates.
//!
//! `Image` → itself; `Dataset` → its images; `Well` → its fields (as images);
//! `Plate` → the plate with its acquisitions, wells and fields; `Screen` → its
//! plates. Every selected object must belong to the submission's OMERO group
//! (`omero:details.group.Name`): the service account can see more than the
//! user can, and biomero-stage must not stage another group's data. Images
//! whose pixels already live in a Zarr are found through their ExternalInfo
//! or a `biomero.import` map annotation's `Filepath`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::OmeroClient;
use super::model::{self, AcquisitionInfo, ImageInfo, PlateInfo, WellInfo};
use crate::error::{Result, SourceError};
use crate::plan::Origin;

/// An image or a plate found in OMERO.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// One image.
    Image {
        /// The image (pixels loaded).
        info: ImageInfo,
        /// Where it was found.
        origin: Origin,
    },
    /// One plate.
    Plate {
        /// The plate.
        plate: PlateInfo,
        /// Its acquisitions.
        acquisitions: Vec<AcquisitionInfo>,
        /// Its wells (fields with pixels).
        wells: Vec<WellInfo>,
        /// Where it was found.
        origin: Origin,
    },
}

/// What a selected object resolved to.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Its images and plates.
    pub units: Vec<Unit>,
    /// What a person should know (rendering settings that could not be read, …).
    pub notes: Vec<String>,
}

/// Every image of `units`, plate fields included.
fn images_mut(units: &mut [Unit]) -> impl Iterator<Item = &mut ImageInfo> {
    units
        .iter_mut()
        .flat_map(|u| -> Box<dyn Iterator<Item = &mut ImageInfo>> {
            match u {
                Unit::Image { info, .. } => Box::new(std::iter::once(info)),
                Unit::Plate { wells, .. } => Box::new(
                    wells
                        .iter_mut()
                        .flat_map(|w| w.samples.iter_mut().map(|s| &mut s.image)),
                ),
            }
        })
}

/// The OMERO source.
#[derive(Debug, Clone)]
pub struct OmeroSource {
    client: Arc<OmeroClient>,
}

fn label(kind: &str, id: i64) -> String {
    format!("{kind} {id}")
}

fn not_found(kind: &str, id: i64, e: SourceError) -> SourceError {
    match e {
        SourceError::NotFound { .. } => SourceError::NotFound {
            input: label(kind, id),
            reason: "does not exist in OMERO (or the biomero-stage account cannot see it)".into(),
        },
        other => other,
    }
}

fn bad_json(kind: &str, id: i64, reason: String) -> SourceError {
    SourceError::Protocol {
        url: label(kind, id),
        reason,
    }
}

fn check_group(kind: &str, id: i64, v: &Value, group: &str) -> Result<()> {
    match model::group(v) {
        Some(g) if g == group => Ok(()),
        Some(g) => Err(SourceError::refused(
            label(kind, id),
            format!(
                "belongs to OMERO group `{g}`, not to the submission's group `{group}`; a submission may only use its own group's data"
            ),
        )),
        None => Err(SourceError::refused(
            label(kind, id),
            "OMERO did not say which group it belongs to (no omero:details.group); refusing to stage it",
        )),
    }
}

impl OmeroSource {
    /// A source over `client`.
    pub fn new(client: Arc<OmeroClient>) -> Self {
        OmeroSource { client }
    }

    /// The client.
    pub fn client(&self) -> &Arc<OmeroClient> {
        &self.client
    }

    /// Resolves one selected object of `kind` (`Image`, `Dataset`, `Well`, `Plate`, `Screen`) for `group`.
    pub async fn resolve(&self, kind: &str, id: i64, group: &str) -> Result<Resolved> {
        let c = &self.client;
        let mut units = match kind {
            "Image" => {
                let v = c
                    .object(&format!("images/{id}/"))
                    .await
                    .map_err(|e| not_found(kind, id, e))?;
                check_group(kind, id, &v, group)?;
                let info = model::image(&v).map_err(|e| bad_json(kind, id, e))?;
                vec![Unit::Image {
                    origin: Origin {
                        image_id: Some(id),
                        ..Origin::default()
                    },
                    info,
                }]
            }
            "Dataset" => {
                let v = c
                    .object(&format!("datasets/{id}/"))
                    .await
                    .map_err(|e| not_found(kind, id, e))?;
                check_group(kind, id, &v, group)?;
                let images = c.list(&format!("datasets/{id}/images/")).await?;
                images
                    .iter()
                    .map(|i| {
                        let info = model::image(i).map_err(|e| bad_json(kind, id, e))?;
                        Ok(Unit::Image {
                            origin: Origin {
                                image_id: Some(info.id),
                                dataset_id: Some(id),
                                ..Origin::default()
                            },
                            info,
                        })
                    })
                    .collect::<Result<_>>()?
            }
            "Well" => {
                let v = c
                    .object(&format!("wells/{id}/"))
                    .await
                    .map_err(|e| not_found(kind, id, e))?;
                check_group(kind, id, &v, group)?;
                let well = model::well(&v).map_err(|e| bad_json(kind, id, e))?;
                let plates = c.list(&format!("plates/?well={id}")).await?;
                let plate = plates
                    .first()
                    .map(model::plate)
                    .transpose()
                    .map_err(|e| bad_json(kind, id, e))?;
                flatten_well(plate.as_ref(), &well)
            }
            "Plate" => vec![self.plate(id, group, None).await?],
            "Screen" => {
                let v = c
                    .object(&format!("screens/{id}/"))
                    .await
                    .map_err(|e| not_found(kind, id, e))?;
                check_group(kind, id, &v, group)?;
                let mut out = Vec::new();
                for p in c.list(&format!("screens/{id}/plates/")).await? {
                    let pid = model::id(&p)
                        .ok_or_else(|| bad_json(kind, id, "a plate without @id".into()))?;
                    out.push(self.plate(pid, group, Some(id)).await?);
                }
                out
            }
            other => {
                return Err(SourceError::WrongKind {
                    input: label(other, id),
                    reason: "is not one of Image, Dataset, Well, Plate, Screen".into(),
                });
            }
        };
        self.find_zarr_annotations(&mut units).await?;
        self.find_original_files(&mut units).await?;
        let notes = self.find_rendering(&mut units).await;
        Ok(Resolved { units, notes })
    }

    /// `GET <path(id)>` of OMERO.web for each of `ids`, at most `concurrency` at a time (a
    /// Dataset or a plate may hold thousands); an image OMERO.web does not find answers `Null`.
    async fn per_image(&self, ids: Vec<i64>, path: fn(i64) -> String) -> Vec<(i64, Result<Value>)> {
        let sem = Arc::new(Semaphore::new(self.client.config().concurrency.max(1)));
        let mut set = JoinSet::new();
        for id in ids {
            let (c, sem) = (self.client.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                match c.web(&path(id)).await {
                    Ok(v) => (id, Ok(v)),
                    Err(SourceError::NotFound { .. }) => (id, Ok(Value::Null)),
                    Err(e) => (id, Err(e)),
                }
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(x) => out.push(x),
                Err(e) => out.push((
                    0,
                    Err(SourceError::NotConfigured(format!(
                        "an OMERO.web request failed: {e}"
                    ))),
                )),
            }
        }
        out
    }

    /// Puts OMERO's rendering settings (channel colours and display windows,
    /// `webgateway/imgData/<id>/`) on every image whose pixels are not read from a Zarr
    /// (a Zarr keeps its own `omero` block). An image whose settings cannot be read keeps
    /// its acquisition colours and no window; the returned notes say which.
    async fn find_rendering(&self, units: &mut [Unit]) -> Vec<String> {
        let wanted: Vec<i64> = images_mut(units)
            .filter(|i| i.zarr_path.is_none() && i.pixels.is_some())
            .map(|i| i.id)
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut found: HashMap<i64, model::Rendering> = HashMap::new();
        let mut failed = Vec::new();
        for (id, r) in self
            .per_image(wanted, |id| format!("webgateway/imgData/{id}/"))
            .await
        {
            match r.map(|v| model::rendering(&v)) {
                Ok(Some(rendering)) => {
                    found.insert(id, rendering);
                }
                Ok(None) => {
                    failed.push(format!("Image {id}: OMERO.web gave no rendering settings"));
                }
                Err(e) => failed.push(format!("Image {id}: {e}")),
            }
        }
        for info in images_mut(units) {
            if let (Some(r), Some(px)) = (found.get(&info.id), info.pixels.as_mut()) {
                r.apply(px);
            }
        }
        failed.sort();
        failed
            .into_iter()
            .map(|f| {
                format!("{f}; its channels keep their acquisition colours, without display windows")
            })
            .collect()
    }

    /// Fills `original_files` of images and plate fields without a Zarr, when the managed
    /// repository is mounted here: `webgateway/original_file_paths/<id>/` lists a fileset's
    /// files as paths in the managed repository (`repo`; `{}` for an image without a
    /// fileset), as `original_file_paths` in `omeroweb/webgateway/views.py` answers.
    async fn find_original_files(&self, units: &mut [Unit]) -> Result<()> {
        let Some(managed) = self.client.config().managed_repository.clone() else {
            return Ok(());
        };
        let wanted: Vec<i64> = images_mut(units)
            .filter(|i| i.zarr_path.is_none())
            .map(|i| i.id)
            .collect();
        let mut found: HashMap<i64, Vec<std::path::PathBuf>> = HashMap::new();
        for (id, v) in self
            .per_image(wanted, |id| format!("webgateway/original_file_paths/{id}/"))
            .await
        {
            let files = v?["repo"]
                .as_array()
                .map(|repo| {
                    repo.iter()
                        .filter_map(Value::as_str)
                        // repository paths are relative; a leading `/` must not escape the mount
                        .map(|p| {
                            on_this_host(
                                managed.join(p.trim_start_matches('/')),
                                self.client.config().storage_map.as_ref(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            found.insert(id, files);
        }
        for info in images_mut(units) {
            if let Some(files) = found.get(&info.id) {
                info.original_files.clone_from(files);
            }
        }
        Ok(())
    }

    async fn plate(&self, id: i64, group: &str, screen: Option<i64>) -> Result<Unit> {
        let c = &self.client;
        let v = c
            .object(&format!("plates/{id}/"))
            .await
            .map_err(|e| not_found("Plate", id, e))?;
        check_group("Plate", id, &v, group)?;
        let plate = model::plate(&v).map_err(|e| bad_json("Plate", id, e))?;
        let acquisitions = c
            .list(&format!("plates/{id}/plateacquisitions/"))
            .await?
            .iter()
            .map(model::acquisition)
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| bad_json("Plate", id, e))?;
        let listed = c.list(&format!("plates/{id}/wells/")).await?;
        // the list loads WellSamples and Images but not Pixels; one request per well loads them
        let ids: Vec<i64> = listed.iter().filter_map(model::id).collect();
        let sem = Arc::new(Semaphore::new(self.client.config().concurrency.max(1)));
        let mut set = JoinSet::new();
        for wid in ids {
            let (c, sem) = (self.client.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let v = c.object(&format!("wells/{wid}/")).await?;
                model::well(&v).map_err(|e| bad_json("Well", wid, e))
            });
        }
        let mut wells = Vec::new();
        while let Some(r) = set.join_next().await {
            let w =
                r.map_err(|e| SourceError::NotConfigured(format!("a well request failed: {e}")))??;
            if !w.samples.is_empty() {
                wells.push(w);
            }
        }
        wells.sort_by_key(|w| (w.row, w.column));
        Ok(Unit::Plate {
            origin: Origin {
                plate_id: Some(id),
                screen_id: screen,
                plate: Some(plate.name.clone()),
                ..Origin::default()
            },
            plate,
            acquisitions,
            wells,
        })
    }

    /// Fills `zarr_path` from `biomero.import` map annotations for images without an ExternalInfo path.
    async fn find_zarr_annotations(&self, units: &mut [Unit]) -> Result<()> {
        let mut missing: Vec<i64> = Vec::new();
        for u in units.iter() {
            match u {
                Unit::Image { info, .. } if info.zarr_path.is_none() => missing.push(info.id),
                Unit::Plate { wells, .. } => missing.extend(
                    wells
                        .iter()
                        .flat_map(|w| &w.samples)
                        .filter(|s| s.image.zarr_path.is_none())
                        .map(|s| s.image.id),
                ),
                Unit::Image { .. } => {}
            }
        }
        let mut found: HashMap<i64, String> = HashMap::new();
        for batch in missing.chunks(100) {
            let q: Vec<String> = batch.iter().map(|i| format!("image={i}")).collect();
            match self
                .client
                .web(&format!(
                    "webclient/api/annotations/?type=map&{}",
                    q.join("&")
                ))
                .await
            {
                Ok(v) => found.extend(model::import_filepaths(&v)),
                // an OMERO.web without the webclient app: no annotations to find
                Err(SourceError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        for u in units.iter_mut() {
            match u {
                Unit::Image { info, .. } => {
                    if info.zarr_path.is_none() {
                        info.zarr_path = found.get(&info.id).cloned();
                    }
                }
                Unit::Plate { wells, .. } => {
                    for s in wells.iter_mut().flat_map(|w| w.samples.iter_mut()) {
                        if s.image.zarr_path.is_none() {
                            s.image.zarr_path = found.get(&s.image.id).cloned();
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// An in-place import's link as this host can follow it: the link itself when its target is
/// here, else its target with OMERO's mount of the storage replaced by ours (`map`: here,
/// OMERO's). Confinement is the planner's, on what this returns.
fn on_this_host(
    link: std::path::PathBuf,
    map: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> std::path::PathBuf {
    let Ok(target) = std::fs::read_link(&link) else {
        return link;
    };
    let target = match link.parent() {
        Some(dir) if target.is_relative() => dir.join(&target),
        _ => target,
    };
    if target.exists() {
        return link;
    }
    match map.and_then(|(here, there)| target.strip_prefix(there).ok().map(|r| here.join(r))) {
        Some(mapped) => mapped,
        None => link,
    }
}

fn flatten_well(plate: Option<&PlateInfo>, well: &WellInfo) -> Vec<Unit> {
    let (rn, cn) = plate.map_or(("letter", "number"), |p| {
        (p.row_naming.as_str(), p.column_naming.as_str())
    });
    let well_name = format!(
        "{}{}",
        model::index_name(well.row, rn),
        model::index_name(well.column, cn)
    );
    well.samples
        .iter()
        .enumerate()
        .map(|(i, s)| Unit::Image {
            info: s.image.clone(),
            origin: Origin {
                image_id: Some(s.image.id),
                plate_id: plate.map(|p| p.id),
                plate: plate.map(|p| p.name.clone()),
                well: Some(well_name.clone()),
                field: Some(i.to_string()),
                acquisition: s.acquisition,
                ..Origin::default()
            },
        })
        .collect()
}
