//! The demo site as the daemon's unit tests use it: written into a temporary
//! folder, with the configuration sources a daemon on it reads (no file
//! outside the folder, descriptors pinned, nothing fetched).

#![allow(clippy::unwrap_used)]

use std::path::Path;

use stage_config::env::Environment;
use stage_config::live::ConfigSources;
use stage_demo::site::Site;

/// Writes the demo site into `dir`: `threshold` (TIFF), `threshold_zarr` (Zarr),
/// `threshold_plate` (Zarr plate) on a SQLite queue with the local executor.
pub(crate) fn demo_site(dir: &Path) -> (Site, ConfigSources) {
    let site = stage_demo::site::write_site(dir, Path::new("/bin/true"), 9).unwrap();
    let sources = ConfigSources {
        settings_file: Some(site.settings.clone()),
        slurm_config: Some(site.slurm_config.clone()),
        env: Environment::from_pairs([
            ("HOME", dir.display().to_string()),
            (
                "BIOMERO_SLURM_CONFIG_FILE",
                site.slurm_config.display().to_string(),
            ),
        ]),
        fetch_override: None,
    };
    (site, sources)
}

/// Puts (empty) containers of `versions` of `workflow` into its image folder on the demo
/// site's cluster, which is this host; returns the folder.
pub(crate) fn put_containers(
    config: &stage_config::Snapshot,
    workflow: &str,
    versions: &[&str],
) -> std::path::PathBuf {
    let wf = config.registry.get(workflow).unwrap();
    let layout = stage_cluster::Layout::from_slurm(&config.slurm.slurm).unwrap();
    let images = std::path::PathBuf::from(layout.image_dir(&wf.folder));
    std::fs::create_dir_all(&images).unwrap();
    let image = crate::cluster::workflow_setup(wf).unwrap().image_name();
    for v in versions {
        std::fs::write(images.join(format!("{image}_{v}.sif")), b"sif").unwrap();
    }
    images
}

/// The demo site's configuration, loaded: `threshold` (TIFF), `threshold_zarr` (Zarr),
/// `threshold_plate` (Zarr plate), descriptors pinned, nothing fetched.
pub(crate) async fn demo_snapshot(dir: &Path) -> stage_config::Snapshot {
    let (_, sources) = demo_site(dir);
    stage_config::live::load_snapshot(
        &sources,
        stage_config::registry::DescriptorRefresh::CacheFirst,
        1,
    )
    .await
    .unwrap()
}
