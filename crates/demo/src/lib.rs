//! `biomero-stage demo`: the whole chain on this machine in under a minute.
//!
//! It writes a demo site ([`site`]: sample plate and images, BIOMERO's
//! `slurm-config.ini`, `biomero-stage.toml` on the embedded default), starts
//! `biomero-stage serve` on it, submits one run of each input mode with
//! `biomero-stage submit` to the threshold workflow ([`threshold`], run by the
//! local executor), follows them to the end, stops the daemon and prints
//! where everything went. The queue keeps the history for `status`.

pub mod site;
pub mod threshold;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use stage_store::{State, Store, Submission};

/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo folder (sample data, configuration, queue, the "cluster", results)
    #[arg(long, default_value = "biomero-stage-demo", value_name = "DIR")]
    dir: PathBuf,
    /// Give up on the runs after this many seconds
    #[arg(long, default_value_t = 180, value_name = "SECS")]
    timeout_secs: u64,
    /// Only write the demo site (sample data, configuration, submission files); run nothing
    #[arg(long)]
    write_only: bool,
}

/// `demo-threshold` options (the demo workflow, run by its job script).
#[derive(Debug, Args)]
pub struct ThresholdArgs {
    /// The folder of images to segment (`$DATA_PATH/data/in`)
    #[arg(long, value_name = "DIR")]
    input: PathBuf,
    /// Where the labels go (`$DATA_PATH/data/out`)
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Objects smaller than this many pixels are dropped
    #[arg(long, default_value_t = 20, value_name = "PIXELS")]
    min_size: usize,
}

/// Runs the demo workflow.
pub fn run_threshold(a: &ThresholdArgs) -> anyhow::Result<ExitCode> {
    let report = threshold::run(&a.input, &a.output, a.min_size)?;
    let objects: u32 = report.images.iter().map(|i| i.objects).sum();
    println!(
        "threshold: {} image(s), {objects} object(s) 100%",
        report.images.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The daemon, stopped (SIGTERM, then waited for) when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("/bin/sh")
            .args(["-c", "kill -s TERM \"$0\"", &pid])
            .status();
        let until = Instant::now() + Duration::from_secs(40);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// An error with the end of its log when the daemon has stopped.
    fn check(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.0.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            anyhow::bail!(
                "the daemon stopped ({status}); the end of {}:\n{}",
                log.display(),
                lines[lines.len().saturating_sub(15)..].join("\n")
            );
        }
        Ok(())
    }
}

/// Waits until the daemon answers `/readyz` with 200 (its queue open, its workers running).
async fn wait_ready(daemon: &mut Daemon, port: u16, log: &Path) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let until = Instant::now() + Duration::from_mins(1);
    loop {
        daemon.check(log)?;
        if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let mut answer = Vec::new();
            if c.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await
                .is_ok()
                && c.read_to_end(&mut answer).await.is_ok()
                && (answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"))
            {
                return Ok(());
            }
        }
        if Instant::now() > until {
            anyhow::bail!(
                "the daemon did not become ready in 60 s; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn biomero_stage(exe: &Path, site: &site::Site) -> Command {
    let mut c = Command::new(exe);
    c.arg("--config")
        .arg(&site.settings)
        .env("BIOMERO_SLURM_CONFIG_FILE", &site.slurm_config)
        .env("BIOMERO_STAGE_CONFIG", &site.settings);
    c
}

/// Runs the demo.
pub async fn run(a: &DemoArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the biomero-stage binary")?;
    let started = Instant::now();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("cannot find a free port for the admin endpoint")?
        .port();
    let site = {
        let (dir, exe) = (a.dir.clone(), exe.clone());
        tokio::task::spawn_blocking(move || site::write_site(&dir, &exe, port)).await??
    };
    println!(
        "biomero-stage demo in {}\n  sample data: {} (a {}-field plate with `cells` labels and {} images)",
        site.dir.display(),
        rel(&site.dir, &site.sample),
        site.manifest
            .images
            .iter()
            .filter(|i| i.path.starts_with(&site.manifest.plate))
            .count(),
        site.manifest
            .images
            .iter()
            .filter(|i| !i.path.starts_with(&site.manifest.plate))
            .count(),
    );
    if a.write_only {
        write_submissions(&site, "example")?;
        print!(
            "{}",
            stage_common::text::wrap(
                &format!(
                    "wrote {} and {}; run `biomero-stage --config {} serve`, then submit {}/submissions/*.json",
                    site.settings.display(),
                    site.slurm_config.display(),
                    site.settings.display(),
                    site.dir.display()
                ),
                usize::from(stage_common::text::output_width()),
                "  ",
            )
        );
        return Ok(ExitCode::SUCCESS);
    }
    let log = site.dir.join("daemon.log");
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut daemon = Daemon(
        biomero_stage(&exe, &site)
            .args(["serve", "--poll-ms", "200", "--retry-ms", "500"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("cannot start `biomero-stage serve`")?,
    );
    wait_ready(&mut daemon, site.port, &log).await?;
    println!(
        "  daemon: biomero-stage serve, admin endpoint http://127.0.0.1:{}/ (log: {})",
        site.port,
        rel(&site.dir, &log)
    );
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let mut ids = Vec::new();
    for (mode, file, id) in write_submissions(&site, &stamp)? {
        let o = biomero_stage(&exe, &site)
            .arg("submit")
            .arg(&file)
            .output()
            .context("cannot run `biomero-stage submit`")?;
        if !o.status.success() {
            anyhow::bail!(
                "the {mode} submission was refused: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        println!("  submitted {} → {id}", rel(&site.dir, &file));
        ids.push((mode, id));
    }
    let store = Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        site.dir.join("state/queue.sqlite").display()
    ))
    .await?;
    let ended = follow(
        &store,
        &mut daemon,
        &ids,
        Duration::from_secs(a.timeout_secs),
        &log,
    )
    .await?;
    drop(daemon);
    let ok = summary(&site, &ended);
    println!(
        "\nthe demo took {:.1} s. The history:\n  biomero-stage --config {} status [ID]",
        started.elapsed().as_secs_f64(),
        site.settings.display()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes `submissions/<mode>.json` for each mode, ids ending in `stamp`: (mode, file, id).
fn write_submissions(
    site: &site::Site,
    stamp: &str,
) -> anyhow::Result<Vec<(&'static str, PathBuf, String)>> {
    let folder = site.dir.join("submissions");
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let mut out = Vec::new();
    for (mode, workflow, _) in site::WORKFLOWS {
        let id = format!("demo-{mode}-{stamp}");
        let file = folder.join(format!("{mode}.json"));
        std::fs::write(
            &file,
            serde_json::to_vec_pretty(&site::submission(site, &id, mode, workflow))?,
        )
        .with_context(|| format!("cannot write {}", file.display()))?;
        out.push((mode, file, id));
    }
    Ok(out)
}

/// Prints each submission's steps as they happen, until all have ended.
async fn follow(
    store: &Store,
    daemon: &mut Daemon,
    ids: &[(&str, String)],
    timeout: Duration,
    log: &Path,
) -> anyhow::Result<Vec<(String, Submission)>> {
    let until = Instant::now() + timeout;
    let mut seen = vec![0usize; ids.len()];
    loop {
        let mut all = Vec::new();
        for (i, (mode, id)) in ids.iter().enumerate() {
            let events = store.events(id).await?;
            for e in events.iter().skip(seen[i]) {
                println!(
                    "  {:<11} {:<9} {:<9} → {}",
                    mode,
                    e.step,
                    e.outcome.as_str(),
                    e.state
                );
            }
            seen[i] = events.len();
            if let Some(s) = store.get(id).await? {
                all.push(((*mode).to_owned(), s));
            }
        }
        if all.iter().all(|(_, s)| s.done) {
            return Ok(all);
        }
        daemon.check(log)?;
        if Instant::now() > until {
            println!(
                "  gave up after {} s; the daemon log says why",
                timeout.as_secs()
            );
            return Ok(all);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the demo reads of the collect step's record (the daemon's `CollectRecord`).
#[derive(serde::Deserialize)]
struct Kept {
    kept: PathBuf,
}

/// What the demo reads of the stage step's record (the daemon's `StageRecord`).
#[derive(serde::Deserialize)]
struct Staged {
    outputs: usize,
}

/// A step's record as the admin API shows it, read through the demo's view of it.
fn record<T: serde::de::DeserializeOwned>(s: &Submission, step: &str) -> Option<T> {
    serde_json::from_value(s.data.get(step)?.clone()).ok()
}

/// The cells the sample's labels hold in its plate, or in its single images.
fn sample_cells(site: &site::Site, plate: bool) -> u32 {
    site.manifest
        .images
        .iter()
        .filter(|i| i.path.starts_with(&site.manifest.plate) == plate)
        .filter_map(|i| i.labels.as_ref().map(|l| l.objects))
        .sum()
}

/// Prints where everything went; true when every run succeeded.
fn summary(site: &site::Site, ended: &[(String, Submission)]) -> bool {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "mode",
            "submission",
            "state",
            "staged",
            "objects found / in the sample",
        ]);
    t.set_width(stage_common::text::output_width());
    let mut kept_at = Vec::new();
    let mut ok = true;
    for (mode, s) in ended {
        let succeeded = s.done && s.state == State::Collected;
        ok &= succeeded;
        let kept = record::<Kept>(s, "collect").map(|r| r.kept);
        let cells = sample_cells(site, mode == "zarr-plate");
        let objects = kept
            .as_ref()
            .and_then(|k| std::fs::read(k.join(threshold::REPORT)).ok())
            .and_then(|b| serde_json::from_slice::<threshold::ThresholdReport>(&b).ok())
            .map(|r| {
                format!(
                    "{} / {cells} in {} image(s)",
                    r.images.iter().map(|i| i.objects).sum::<u32>(),
                    r.images.len()
                )
            })
            .unwrap_or_default();
        t.add_row(vec![
            mode.clone(),
            s.id.clone(),
            if succeeded {
                format!("{} ✓", s.state)
            } else {
                format!("{} ✗ {}", s.state, s.error.clone().unwrap_or_default())
            },
            format!(
                "{} input(s)",
                record::<Staged>(s, "stage").map_or(0, |r| r.outputs)
            ),
            objects,
        ]);
        if let Some(k) = kept {
            kept_at.push((mode.clone(), k));
        }
    }
    println!("\n{t}");
    let width = usize::from(stage_common::text::output_width());
    if let Some(root) = kept_at
        .first()
        .and_then(|(_, k)| k.parent()?.parent().map(Path::to_path_buf))
    {
        println!("results kept in {}:", root.display());
        for (mode, k) in &kept_at {
            let rel = k.strip_prefix(&root).unwrap_or(k);
            println!("  {mode:<11} {}", rel.display());
        }
    }
    print!(
        "{}",
        stage_common::text::wrap(
            "the sample's own `cells` labels are the ground truth; each kept folder holds the returned \
             labels, threshold-report.json and biomero-stage-results.json (every file with its SHA-256)",
            width,
            "",
        )
    );
    ok
}

/// `path` relative to the demo folder `dir` when it is inside it.
fn rel(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}
