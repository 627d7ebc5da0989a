//! Helpers shared by the integration tests: where the repository and the
//! `biomero-stage` binary are, and how to run the binary in a clean environment.

pub mod biomero_store;
pub mod cluster;
pub mod drills;
pub mod omero;
pub mod site;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The `biomero-stage` binary built for this test run (`target/<profile>/biomero-stage`).
pub fn bin_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| repo_root().join("target/debug"), Path::to_path_buf);
    let bin = profile_dir.join("biomero-stage");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds it) or `cargo build -p biomero-stage` first",
        bin.display()
    );
    bin
}

/// A `biomero-stage` command with an empty environment apart from `PATH` and the given `HOME`.
pub fn command(home: &Path) -> Command {
    let mut c = Command::new(bin_path());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("RUST_BACKTRACE", "0");
    c
}

/// Output of a finished command as text: (exit code, stdout, stderr).
pub fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes a settings file for tests: offline, pinned descriptors, state in `dir`.
pub fn write_settings(dir: &Path, importer_enabled: bool) -> PathBuf {
    let path = dir.join("biomero-stage.toml");
    let body = format!(
        "state_dir = \"{state}\"\nimporter_enabled = {importer_enabled}\ndescriptor_dirs = [\"{descriptors}\"]\ndescriptor_fetch = false\n",
        state = dir.join("state").display(),
        descriptors = repo_root().join("config/descriptors").display(),
    );
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// The Python interpreter of the independent readers' virtualenv.
///
/// `BIOMERO_STAGE_PYTHON` if set, else `target/pyenv/bin/python` (what `scripts/test` creates).
pub fn python() -> PathBuf {
    let p = std::env::var_os("BIOMERO_STAGE_PYTHON").map_or_else(
        || repo_root().join("target/pyenv/bin/python"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "{} is missing: the interop tests read our output with tifffile, zarr-python, ome-zarr-py and ome-zarr-models; run `scripts/test` (it creates the virtualenv from tests/readers/requirements.txt) or set BIOMERO_STAGE_PYTHON",
        p.display()
    );
    p
}

/// Runs `tests/readers/<script>` with `args` and parses the JSON it prints (last line).
pub fn run_reader(script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/readers").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{script} {args:?} failed:\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}\n{stderr}"))
}

/// Runs BIOMERO's own code (`tests/biomero/oracle.py`, in the biomero 2.8.3 virtualenv
/// of `scripts/setup-biomero-py`; `BIOMERO_STAGE_BIOMERO_PYTHON` overrides) on BIOMERO's
/// store at the SQLAlchemy URL `sa`, and parses the JSON it prints.
pub fn biomero_oracle(sa: &str, args: &[&str]) -> serde_json::Value {
    run_oracle(
        "BIOMERO_STAGE_BIOMERO_PYTHON",
        "target/biomero-pyenv",
        sa,
        args,
    )
}

/// `tests/biomero/oracle.py` run by BIOMERO 2.9's own code (biomero 2.9.0b15, its detached
/// runs): the same commands, and `launch`, `history`, `claim`.
pub fn biomero29_oracle(sa: &str, args: &[&str]) -> serde_json::Value {
    run_oracle(
        "BIOMERO_STAGE_BIOMERO29_PYTHON",
        "target/biomero29-pyenv",
        sa,
        args,
    )
}

fn run_oracle(var: &str, default: &str, sa: &str, args: &[&str]) -> serde_json::Value {
    let py = std::env::var_os(var).map_or_else(
        || repo_root().join(default).join("bin/python"),
        PathBuf::from,
    );
    assert!(
        py.exists(),
        "{} is missing: BIOMERO's own code is the oracle of its event store; run `scripts/test` (or scripts/setup-biomero-py [2.9]) or set {var}",
        py.display()
    );
    let out = Command::new(py)
        .arg(repo_root().join("tests/biomero/oracle.py"))
        .arg(sa)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running oracle.py: {e}"));
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "oracle.py {args:?} failed:\n{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("oracle.py printed no JSON ({e}): {stdout}\n{stderr}"))
}

/// Files under `dir` whose names mark them as half-written.
pub fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().contains(".partial") {
                out.push(p.clone());
            }
            if p.is_dir() {
                out.extend(partial_files(&p));
            }
        }
    }
    out
}

/// The machine's PostgreSQL (trust auth) for tests; `BIOMERO_STAGE_TEST_PG` overrides.
pub fn pg_admin_url() -> String {
    std::env::var("BIOMERO_STAGE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs one SQL statement with `psql` on `url`; its unaligned, tuples-only output.
pub fn psql(url: &str, sql: &str) -> String {
    let o = Command::new("psql")
        .args([url, "-tAc", sql])
        .output()
        .unwrap_or_else(|e| panic!("psql is needed for the PostgreSQL tests: {e}"));
    assert!(
        o.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Creates a fresh, uniquely named database on the test PostgreSQL and returns its URL.
pub fn fresh_pg_database(prefix: &str) -> String {
    let admin = pg_admin_url();
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000)
    );
    let out = Command::new("psql")
        .args([
            admin.as_str(),
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("psql is needed for the PostgreSQL tests: {e}"));
    assert!(
        out.status.success(),
        "cannot create a test database on {admin}: {}; PostgreSQL must listen on 127.0.0.1:5432 with trust auth (or set BIOMERO_STAGE_TEST_PG)",
        String::from_utf8_lossy(&out.stderr)
    );
    match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => format!("{admin}/{name}"),
    }
}

/// A `biomero-stage serve` child process, killed when dropped.
pub struct Daemon {
    /// The child.
    pub child: std::process::Child,
    /// Admin endpoint base URL.
    pub base: String,
    /// Its stderr log.
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `serve` with `settings` (and extra args, env) and waits until `/healthz` answers.
    pub fn start(
        home: &Path,
        settings: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let log = home.join(format!(
            "serve-{port}-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ));
        let err = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = command(home)
            .args(["--config", &settings.display().to_string(), "serve"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start biomero-stage serve: {e}"));
        let d = Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = std::time::Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return d;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the daemon did not come up; its log:\n{}",
                d.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} failed");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1, never handed out before in this test process: a test that
/// restarts its daemon on its port (the kill drills) must not find another test's daemon there,
/// and the kernel may give a port that was free for a moment to the next caller.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port());
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if port != 0 && !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Writes daemon settings for tests: the example slurm-config, pinned descriptors, a token.
pub fn write_daemon_settings(dir: &Path, queue_url: &str, port: u16, extra: &str) -> PathBuf {
    let token = dir.join("admin-token");
    std::fs::write(&token, "test-token\n").unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("biomero-stage.toml");
    let body = format!(
        "state_dir = \"{state}\"\nqueue_url = \"{queue_url}\"\nadmin_listen = \"127.0.0.1:{port}\"\nadmin_token_file = \"{token}\"\nimporter_enabled = true\nslurm_config = \"{ini}\"\ndescriptor_dirs = [\"{descriptors}\"]\ndescriptor_fetch = false\nworkers = 2\n{extra}\n",
        state = dir.join("state").display(),
        token = token.display(),
        ini = repo_root().join("config/slurm-config.ini").display(),
        descriptors = repo_root().join("config/descriptors").display(),
    );
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// `GET <base><path>` as JSON (`Null` when it fails).
pub fn http_get(base: &str, path: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Authorization: Bearer test-token",
            &format!("{base}{path}"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// `POST <base><path>` with a JSON body and the test admin token; the answer as JSON.
pub fn http_post(base: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Authorization: Bearer test-token",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body.to_string(),
            &format!("{base}{path}"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Polls submission `id` until `ok` holds; panics with the daemon's log after `secs`.
pub fn wait_submission(
    d: &Daemon,
    id: &str,
    secs: u64,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let v = http_get(&d.base, &format!("/api/v1/submissions/{id}"));
        if ok(&v) {
            return v;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(secs),
            "timed out waiting for {id}: {v}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A fresh database holding BIOMERO.importer's tables, created by its own SQLAlchemy
/// model (`tests/readers/importer.py tables`): (sqlx URL, SQLAlchemy URL).
pub fn importer_db() -> (String, String) {
    let url = fresh_pg_database("bst_imports");
    let sa = url.replacen("postgres://", "postgresql+psycopg2://", 1);
    run_reader("importer.py", &["tables".as_ref(), sa.as_ref()]);
    (url, sa)
}

/// The test importer loop (`tests/readers/importer.py serve`: BIOMERO.importer's poller
/// played by its own order model and validator, without OMERO), killed when dropped.
pub struct TestImporter(std::process::Child);

impl TestImporter {
    /// Starts the loop on the SQLAlchemy URL `sa` with extra arguments
    /// (`--fail-destination N --reason TEXT`).
    pub fn start(sa: &str, extra: &[&str]) -> Self {
        let child = Command::new(python())
            .arg(repo_root().join("tests/readers/importer.py"))
            .args(["serve", sa, "300"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the test importer: {e}"));
        TestImporter(child)
    }
}

impl Drop for TestImporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The families of a `/metrics` exposition, parsed by `prometheus_client`'s strict
/// OpenMetrics parser (`tests/readers/metrics.py`), after checking that every family is
/// documented in `docs/metrics.md` with its type.
pub fn parse_metrics(exposition: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, exposition).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let families = run_reader("metrics.py", &[file.as_os_str()]);
    let doc = std::fs::read_to_string(repo_root().join("docs/metrics.md"))
        .unwrap_or_else(|e| panic!("docs/metrics.md: {e}"));
    let documented: std::collections::BTreeMap<String, String> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_owned(), (*cells.get(2)?).to_owned()))
        })
        .collect();
    for (name, f) in families.as_object().unwrap_or_else(|| panic!("{families}")) {
        let kind = f["type"].as_str().unwrap_or_default();
        assert_eq!(
            documented.get(name).map(String::as_str),
            Some(kind),
            "metric family `{name}` ({kind}) is not documented as such in docs/metrics.md"
        );
    }
    families
}

/// The value of sample `sample` with `labels` (a subset) in parsed `families`.
pub fn metric_value(
    families: &serde_json::Value,
    sample: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    families.as_object()?.values().find_map(|f| {
        f["samples"].as_array()?.iter().find_map(|s| {
            let ok = s[0] == sample && labels.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v));
            if ok { s[2].as_f64() } else { None }
        })
    })
}
