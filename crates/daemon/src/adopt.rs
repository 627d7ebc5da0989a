//! Adopting an NL-BIOMERO deployment: its compose file, `.env`, slurm-config.ini,
//! biomero-config.json and the importer's settings, read into the
//! `biomero-stage.toml` and systemd drop-in that match it.
//!
//! The compose file says where things are *inside* the containers; a daemon
//! beside them on the host needs the host's side of each mount and a database
//! address reachable from the host. Each setting records what it came from; what
//! cannot be decided from the files is said, never guessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where NL-BIOMERO mounts BIOMERO's slurm-config.ini in its worker.
pub const WORKER_SLURM_CONFIG: &str = "/opt/omero/server/slurm-config.ini";
/// Where the worker gets the host's `~/.ssh`.
pub const WORKER_SSH: &str = "/tmp/.ssh";
/// Where the containers see the shared storage (the import mount).
pub const DATA_MOUNT: &str = "/data";

/// Why a deployment cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// A file is missing or unreadable.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The compose file is not what NL-BIOMERO ships.
    #[error("{path}: {reason}")]
    Compose {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One decided setting: its value and where it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decided {
    /// The value (a TOML string, bool or list of strings).
    pub value: Value,
    /// Where it came from.
    pub from: String,
}

/// What the deployment says.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Adoption {
    /// `biomero-stage.toml` keys.
    pub settings: BTreeMap<String, Decided>,
    /// The systemd drop-in's `[Service]` lines, each with why.
    pub service: Vec<(String, String)>,
    /// What could not be decided, each saying what to do.
    pub undecided: Vec<String>,
}

/// `.env`: `KEY=VALUE` lines (comments, blank lines and `export` ignored; quotes removed).
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            m.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    m
}

/// `${VAR}`, `${VAR:-default}` and `$VAR` replaced from `env`, as compose does.
pub fn interpolate(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(body) = after.strip_prefix('{')
            && let Some(end) = body.find('}')
        {
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            match env.get(name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(v),
                None => out.push_str(default.unwrap_or("")),
            }
            rest = &body[end + 1..];
        } else if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if n == 0 {
                out.push('$');
            } else if let Some(v) = env.get(&after[..n]) {
                out.push_str(v);
            }
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    out
}

/// A service's volumes as (host source, container target).
fn volumes(service: &Value, env: &BTreeMap<String, String>) -> Vec<(String, String)> {
    service
        .get("volumes")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| match v {
                    Value::String(s) => {
                        let s = interpolate(s, env);
                        let mut parts = s.splitn(3, ':');
                        let src = parts.next()?.to_owned();
                        let dst = parts.next()?.to_owned();
                        Some((src, dst))
                    }
                    Value::Object(o) => Some((
                        interpolate(o.get("source")?.as_str()?, env),
                        interpolate(o.get("target")?.as_str()?, env),
                    )),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A service's environment as a map (list or mapping form), interpolated.
fn environment(service: &Value, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    match service.get("environment") {
        Some(Value::Object(o)) => {
            for (k, v) in o {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                m.insert(k.clone(), interpolate(&v, env));
            }
        }
        Some(Value::Array(a)) => {
            for v in a.iter().filter_map(Value::as_str) {
                if let Some((k, v)) = v.split_once('=') {
                    m.insert(k.to_owned(), interpolate(v, env));
                }
            }
        }
        _ => {}
    }
    m
}

/// The host port a service publishes for `container_port`, if any.
fn published(service: &Value, container_port: u16) -> Option<(String, u16)> {
    for p in service.get("ports")?.as_array()? {
        let s = match p {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let fields: Vec<&str> = s.split(':').collect();
        let (ip, host, container) = match fields.as_slice() {
            [h, c] => ("127.0.0.1", *h, *c),
            [ip, h, c] => (*ip, *h, *c),
            _ => continue,
        };
        let container = container.split('/').next().unwrap_or(container);
        if container.parse::<u16>().ok() == Some(container_port)
            && let Ok(h) = host.parse::<u16>()
        {
            let ip = if ip == "0.0.0.0" { "127.0.0.1" } else { ip };
            return Some((ip.to_owned(), h));
        }
    }
    None
}

/// A compose source path on the host: relative to the compose file's folder, `~` from `home`.
fn host_path(src: &str, dir: &Path, home: &Path) -> PathBuf {
    if let Some(rest) = src.strip_prefix("~/") {
        home.join(rest)
    } else if src == "~" {
        home.to_path_buf()
    } else if Path::new(src).is_absolute() {
        PathBuf::from(src)
    } else {
        dir.join(src.trim_start_matches("./"))
    }
}

/// A SQLAlchemy URL inside the compose network, made reachable from the host through the
/// database service's published port: `Ok(url)` or why not.
fn reachable_db_url(url: &str, compose: &Value) -> Result<String, String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (auth, after) = rest.rsplit_once('@').unwrap_or(("", rest));
    let (hostport, db) = after.split_once('/').unwrap_or((after, ""));
    let (host, port) = hostport
        .rsplit_once(':')
        .map_or((hostport, 5432), |(h, p)| (h, p.parse().unwrap_or(5432)));
    let service = compose.pointer(&format!("/services/{host}"));
    let Some(service) = service else {
        // not a compose service: an address outside the deployment, usable as it is
        return Ok(format!("postgres://{rest}"));
    };
    match published(service, port) {
        Some((ip, p)) => {
            let auth = if auth.is_empty() {
                String::new()
            } else {
                format!("{auth}@")
            };
            Ok(format!("postgres://{auth}{ip}:{p}/{db}"))
        }
        None => Err(format!(
            "the database service `{host}` publishes no port, so it cannot be reached from the host: add `ports: [\"127.0.0.1:5433:{port}\"]` to it in docker-compose.yml"
        )),
    }
}

/// Reads the deployment in `dir` (the NL-BIOMERO checkout) for a daemon on this host,
/// whose home is `home`.
pub fn adopt(dir: &Path, home: &Path) -> Result<Adoption, AdoptError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| AdoptError::Unreadable {
            path,
            reason: e.to_string(),
        })
    };
    let compose_path = dir.join("docker-compose.yml");
    let compose: Value =
        serde_saphyr::from_str(&read("docker-compose.yml")?).map_err(|e| AdoptError::Compose {
            path: compose_path.clone(),
            reason: format!("not YAML: {e}"),
        })?;
    let env = read(".env").map(|t| parse_env(&t)).unwrap_or_default();
    let service = |name: &str| compose.pointer(&format!("/services/{name}"));
    let Some(worker) = service("biomeroworker") else {
        return Err(AdoptError::Compose {
            path: compose_path,
            reason: "no `biomeroworker` service: this is not NL-BIOMERO's compose file".into(),
        });
    };
    let mut settings = BTreeMap::new();
    let mut set = |key: &str, value: Value, from: String| {
        settings.insert(key.to_owned(), Decided { value, from });
    };
    let mut service_lines: Vec<(String, String)> = Vec::new();
    let path_value = |p: &Path| Value::from(p.display().to_string());
    let worker_volumes = volumes(worker, &env);
    let mut undecided = Vec::new();
    // BIOMERO's slurm-config.ini, as the worker mounts it
    match worker_volumes.iter().find(|(_, t)| t == WORKER_SLURM_CONFIG) {
        Some((src, _)) => {
            let p = host_path(src, dir, home);
            if !p.exists() {
                undecided.push(format!(
                    "{} is mounted as BIOMERO's slurm-config.ini but does not exist yet: copy biomeroworker/slurm-config.ini there, as NL-BIOMERO's deployment does",
                    p.display()
                ));
            }
            set("slurm_config", path_value(&p), format!("biomeroworker mounts {src} at {WORKER_SLURM_CONFIG}"));
        }
        None => undecided.push(format!(
            "the biomeroworker mounts no slurm-config.ini at {WORKER_SLURM_CONFIG}: set slurm_config to BIOMERO's file"
        )),
    }
    // the SSH setup the worker uses: the host's ~/.ssh
    if let Some((src, _)) = worker_volumes.iter().find(|(_, t)| t == WORKER_SSH) {
        let p = host_path(src, dir, home).join("config");
        set(
            "ssh_config_file",
            path_value(&p),
            format!("biomeroworker mounts {src} at {WORKER_SSH} (BIOMERO's ~/.ssh)"),
        );
    }
    // the shared storage: /data in every container
    match worker_volumes.iter().find(|(_, t)| t == DATA_MOUNT) {
        Some((src, _)) => {
            let p = host_path(src, dir, home);
            set(
                "data_roots",
                Value::from(vec![p.display().to_string()]),
                format!("biomeroworker mounts {src} at {DATA_MOUNT}"),
            );
            set(
                "importer_path_map",
                Value::from(format!("{}={DATA_MOUNT}", p.display())),
                format!("BIOMERO.importer sees the same storage at {DATA_MOUNT}"),
            );
        }
        None => undecided.push(format!(
            "the biomeroworker mounts nothing at {DATA_MOUNT}: set data_roots to the shared storage"
        )),
    }
    // OMERO's managed repository (in-place imports link from it to /data): OMERO.server's /OMERO
    if let Some(server) = service("omeroserver")
        && let Some((src, _)) = volumes(server, &env).iter().find(|(_, t)| t == "/OMERO")
    {
        if src.starts_with('.') || src.starts_with('/') || src.starts_with('~') {
            set(
                "managed_repository",
                path_value(&host_path(src, dir, home).join("ManagedRepository")),
                format!("omeroserver mounts {src} at /OMERO"),
            );
        } else {
            // a named volume: Docker keeps it under its data root, named `<project>_<volume>`
            let project = env.get("COMPOSE_PROJECT_NAME").cloned().unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().to_lowercase())
                    .unwrap_or_default()
            });
            let p = PathBuf::from(format!(
                "/var/lib/docker/volumes/{project}_{src}/_data/ManagedRepository"
            ));
            set(
                "managed_repository",
                path_value(&p),
                format!(
                    "omeroserver's /OMERO is the Docker volume `{src}` of project `{project}` (Docker's default data root)"
                ),
            );
            undecided.push(format!(
                "managed_repository {}: check with `docker volume inspect {project}_{src}` and give the daemon read access (it is root's by default)",
                p.display()
            ));
        }
    }
    // OMERO.web: biomero-config.json (group folders) and its published port
    if let Some(web) = service("omeroweb") {
        let web_env = environment(web, &env);
        if let Some(target) = web_env.get("OMERO_BIOMERO_CONFIG_FILE")
            && let Some((src, _)) = volumes(web, &env).iter().find(|(_, t)| t == target)
        {
            set(
                "group_mappings_file",
                path_value(&host_path(src, dir, home)),
                format!("omeroweb mounts {src} as OMERO_BIOMERO_CONFIG_FILE"),
            );
        }
        match published(web, 4080) {
            Some((ip, p)) => set(
                "omero_url",
                Value::from(format!("http://{ip}:{p}/")),
                format!("omeroweb publishes port {p}"),
            ),
            None => undecided
                .push("omeroweb publishes no port: set omero_url to OMERO.web's address".into()),
        }
        match web_env
            .get("IMPORTER_ENABLED")
            .map(|v| v.eq_ignore_ascii_case("true"))
        {
            Some(on) => set(
                "importer_enabled",
                Value::from(on),
                "omeroweb's IMPORTER_ENABLED".into(),
            ),
            None => undecided
                .push("IMPORTER_ENABLED is not set for omeroweb: set importer_enabled".into()),
        }
        if let Some(url) = web_env.get("INGEST_TRACKING_DB_URL") {
            match reachable_db_url(url, &compose) {
                Ok(u) => set(
                    "importer_database_url",
                    Value::from(u),
                    "INGEST_TRACKING_DB_URL, through the database's published port".into(),
                ),
                Err(why) => undecided.push(format!("BIOMERO.importer's database: {why}")),
            }
        }
    }
    // BIOMERO's event store: the worker's SQLALCHEMY_URL overrides slurm-config.ini
    if let Some(url) = environment(worker, &env).get("SQLALCHEMY_URL")
        && let Err(why) = reachable_db_url(url, &compose)
    {
        undecided.push(format!(
            "BIOMERO's event store (the worker's SQLALCHEMY_URL): {why}; then give the daemon SQLALCHEMY_URL with that address (deploy/biomero-events.md)"
        ));
    }
    // BIOMERO 2.9: the worker's scripts only queue detached runs; the daemon must run them
    if let Some(v) = environment(worker, &env).get("BIOMERO_DETACHED_WORKFLOWS")
        && ["1", "true", "yes", "on"].contains(&v.to_lowercase().as_str())
    {
        set(
            "biomero_detached",
            Value::from(true),
            "the worker's BIOMERO_DETACHED_WORKFLOWS: its scripts queue detached runs for a supervisor".into(),
        );
    }
    // the importer runs as `user: "uid:gid"`: our results must be readable by it
    if let Some(importer) = service("biomero-importer") {
        match importer.get("user").and_then(Value::as_str) {
            Some(user) => {
                let gid = user.split(':').nth(1).unwrap_or(user);
                service_lines.push((
                    format!("SupplementaryGroups={gid}"),
                    format!("BIOMERO.importer runs as {user}: the daemon joins group {gid}"),
                ));
                service_lines.push((
                    "UMask=0002".into(),
                    format!("results are written group-readable (and writable) for group {gid}, not 0640 as the unit's UMask=0027 would"),
                ));
                undecided.push(format!(
                    "give the results folders to group {gid} once, so new files inherit it: `chgrp -R {gid} <data root> && find <data root> -type d -exec chmod g+s {{}} +`"
                ));
            }
            None => undecided.push(
                "biomero-importer sets no `user:`: check that it can read files the daemon writes"
                    .into(),
            ),
        }
    }
    if settings.contains_key("omero_url") {
        undecided.push(
            "omero_user and omero_password_file: the daemon's own OMERO account for reading pixels (not in these files; see README, Configuration)".into(),
        );
    }
    undecided.push(
        "the queue: a database of its own (deploy/postgresql.md), or the SQLite default in state_dir; not decided from these files".into(),
    );
    Ok(Adoption {
        settings,
        service: service_lines,
        undecided,
    })
}

/// The `biomero-stage.toml` text, each key with where it came from.
pub fn settings_toml(a: &Adoption) -> String {
    let mut out = String::from(
        "# biomero-stage.toml written by `biomero-stage adopt nl-biomero`: each setting says what it came from.\n",
    );
    for (key, d) in &a.settings {
        out.push_str(&format!("# {}\n", d.from));
        let value = match &d.value {
            Value::Bool(b) => b.to_string(),
            Value::Array(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|i| toml_string(i.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::String(s) => toml_string(s),
            other => toml_string(&other.to_string()),
        };
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The systemd drop-in text.
pub fn dropin(a: &Adoption) -> String {
    let mut out = String::from(
        "# /etc/systemd/system/biomero-stage.service.d/nl-biomero.conf, written by `biomero-stage adopt nl-biomero`\n[Service]\n",
    );
    for (line, why) in &a.service {
        out.push_str(&format!("# {why}\n{line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_and_interpolation_read_as_compose_reads_them() {
        let env = parse_env("# c\nA=1\nexport B=\"two words\"\nC='x'\n\nEMPTY=\n");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x");
        assert_eq!(
            interpolate("${A}-$A-${D:-dflt}-${EMPTY:-e}-$$", &env),
            "1-1-dflt-e-$"
        );
    }

    #[test]
    fn database_urls_are_reached_through_the_published_port_or_refused_with_what_to_do() {
        let compose: Value = serde_json::json!({"services": {
            "db": {"ports": ["5433:5432"]},
            "closed": {}
        }});
        assert_eq!(
            reachable_db_url("postgresql+psycopg2://u:p@db:5432/biomero", &compose).unwrap(),
            "postgres://u:p@127.0.0.1:5433/biomero"
        );
        let e = reachable_db_url("postgresql+psycopg2://u:p@closed:5432/b", &compose).unwrap_err();
        assert!(
            e.contains("publishes no port") && e.contains("127.0.0.1:5433:5432"),
            "{e}"
        );
        assert_eq!(
            reachable_db_url("postgresql://u@elsewhere.example:5432/b", &compose).unwrap(),
            "postgres://u@elsewhere.example:5432/b"
        );
    }
}
