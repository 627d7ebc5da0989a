//! The read limits are the process's, so this test has a process of its own: a loaded
//! configuration applies its limits, a reload refused for any reason (here: the settings
//! load, slurm-config.ini does not) leaves the limits in force with the rest, and the reload
//! that succeeds applies the new ones.
#![allow(clippy::unwrap_used)]

use stage_common::limits;
use stage_config::env::Environment;
use stage_config::live::{ConfigSources, LiveConfig};

#[tokio::test]
async fn read_limits_change_only_with_a_configuration_that_loads_whole() {
    let d = tempfile::tempdir().unwrap();
    let settings = d.path().join("biomero-stage.toml");
    let ini = d.path().join("slurm-config.ini");
    let good_ini = "[SSH]\nhost = slurm\n";
    let with_pages = |n: u64| {
        format!(
            "queue_url = \"sqlite://{}/q.sqlite\"\nstate_dir = \"{}/state\"\nmax_tiff_pages = {n}\n",
            d.path().display(),
            d.path().display()
        )
    };
    std::fs::write(&settings, with_pages(7)).unwrap();
    std::fs::write(&ini, good_ini).unwrap();
    let sources = ConfigSources {
        settings_file: Some(settings.clone()),
        slurm_config: Some(ini.clone()),
        env: Environment::from_pairs([("HOME", d.path().display().to_string())]),
        fetch_override: None,
    };
    let live = LiveConfig::load(sources).await.unwrap();
    assert_eq!(
        limits::current().tiff_pages,
        7,
        "the loaded configuration's limit"
    );

    // new limits in valid settings, beside a slurm-config.ini that does not load
    std::fs::write(&settings, with_pages(9)).unwrap();
    std::fs::write(&ini, "[SSH\nhost = slurm\n").unwrap();
    assert!(live.reload().await.is_err(), "the broken ini is refused");
    assert_eq!(
        limits::current().tiff_pages,
        7,
        "a refused reload keeps the limits in force with the rest of the configuration"
    );

    std::fs::write(&ini, good_ini).unwrap();
    live.reload().await.unwrap();
    assert_eq!(
        limits::current().tiff_pages,
        9,
        "the reload that loads applies them"
    );
}
