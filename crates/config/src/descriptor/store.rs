//! Finding a workflow's descriptor: shipped files, the on-disk cache, the repository.
//!
//! A `k_repo` URL names a repository and a tag (`…/tree/v1.4.0`) or one exact
//! file (`…/tree/v1.4.0/config.yaml`). BIOMERO fetches
//! `<host>/<owner>/<repo>/raw/<tag>/descriptor.json`, then `descriptor.yaml`,
//! then `config.yaml`. This store looks for the same files, in the same order,
//! in three places:
//!
//! 1. **shipped directories** (read-only, e.g. `config/descriptors/`), laid out
//!    as `<host>/<owner>/<repo>/<tag>/<file>` — pinned copies that never need
//!    the network;
//! 2. **the cache** (same layout, plus a `.meta.json` with the ETag), kept
//!    current with conditional requests (`If-None-Match` → `304`) when online,
//!    and used as it is when offline or when the network fails;
//! 3. **the repository** over HTTP(S), with a timeout, written to the cache
//!    atomically.
//!
//! `k_repo` may also be a local path (a descriptor file, or a directory holding
//! one) or `file://` URL.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Descriptor, DescriptorError, parse};

/// The files BIOMERO looks for in a repository, in order.
pub const DESCRIPTOR_FILES: [&str; 3] = ["descriptor.json", "descriptor.yaml", "config.yaml"];

/// The largest descriptor accepted over the network.
pub const MAX_DESCRIPTOR_BYTES: usize = 1 << 20;

/// Whether the store may use the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchPolicy {
    /// Shipped files and the cache only.
    Offline,
    /// Also fetch missing descriptors and revalidate cached ones.
    Online,
}

/// Where a descriptor was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A shipped, read-only copy.
    Shipped {
        /// The file.
        path: PathBuf,
    },
    /// A local file named by `k_repo`.
    File {
        /// The file.
        path: PathBuf,
    },
    /// The cache; `revalidated` when the server confirmed it (HTTP 304).
    Cache {
        /// The cached file.
        path: PathBuf,
        /// The URL it was fetched from.
        url: String,
        /// Whether it was confirmed current just now.
        revalidated: bool,
    },
    /// Fetched just now (and cached).
    Network {
        /// The URL.
        url: String,
    },
}

/// A descriptor and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// The parsed descriptor.
    pub descriptor: Descriptor,
    /// Where it was found.
    pub origin: Origin,
    /// Things worth knowing (a failed revalidation, …).
    pub notes: Vec<String>,
}

/// What a `k_repo` value points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoRef {
    /// A GitHub-style tree URL: `<scheme>://<host>/<owner>/<repo>[/tree/<tag>[/<file>]]`.
    Tree {
        /// `https`.
        scheme: String,
        /// `github.com` (with `:port` when the URL has one).
        host: String,
        /// Repository owner.
        owner: String,
        /// Repository name.
        repo: String,
        /// Tag or branch (`master` when the URL has none).
        tag: String,
        /// An exact descriptor file, when the URL names one.
        file: Option<String>,
    },
    /// Any other URL: the descriptor itself.
    Url(String),
    /// A local file or directory.
    Path(PathBuf),
}

/// One place a descriptor may be.
#[derive(Debug, Clone)]
struct Candidate {
    /// Relative path in the shipped and cache directories.
    rel: PathBuf,
    /// The URL to fetch it from.
    url: Option<String>,
    /// A local file named directly.
    file: Option<PathBuf>,
}

fn safe_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\'])
}

impl RepoRef {
    /// Parses a `k_repo` value.
    pub fn parse(repo: &str) -> Result<Self, String> {
        let repo = repo.trim();
        if let Some(p) = repo.strip_prefix("file://") {
            return Ok(RepoRef::Path(PathBuf::from(p)));
        }
        if repo.starts_with('/') {
            return Ok(RepoRef::Path(PathBuf::from(repo)));
        }
        let url = reqwest::Url::parse(repo)
            .map_err(|e| format!("`{repo}` is neither a URL nor an absolute path ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "`{repo}`: only http(s) URLs and local paths are supported"
            ));
        }
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let segs: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if !segs.iter().all(|s| safe_segment(s)) {
            return Err(format!("`{repo}` has an unsafe path segment"));
        }
        let tree = |owner: &str, name: &str, tag: &str, file: Option<String>| RepoRef::Tree {
            scheme: url.scheme().to_owned(),
            host: host.clone(),
            owner: owner.to_owned(),
            repo: name.to_owned(),
            tag: tag.to_owned(),
            file,
        };
        match segs.as_slice() {
            [owner, name] if host == "github.com" => Ok(tree(owner, name, "master", None)),
            [owner, name, "tree" | "blob" | "raw", tag, rest @ ..] => Ok(tree(
                owner,
                name,
                tag,
                (!rest.is_empty()).then(|| rest.join("/")),
            )),
            _ if host == "github.com" => Err(format!(
                "`{repo}` is not a GitHub repository URL; write https://github.com/<org>/<repo>/tree/<version>"
            )),
            _ => Ok(RepoRef::Url(repo.to_owned())),
        }
    }

    fn candidates(&self) -> Vec<Candidate> {
        match self {
            RepoRef::Tree {
                scheme,
                host,
                owner,
                repo,
                tag,
                file,
            } => {
                let files: Vec<&str> = match file {
                    Some(f) => vec![f.as_str()],
                    None => DESCRIPTOR_FILES.to_vec(),
                };
                files
                    .into_iter()
                    .map(|f| Candidate {
                        rel: [host.as_str(), owner, repo, tag]
                            .iter()
                            .collect::<PathBuf>()
                            .join(f),
                        url: Some(format!("{scheme}://{host}/{owner}/{repo}/raw/{tag}/{f}")),
                        file: None,
                    })
                    .collect()
            }
            RepoRef::Url(u) => {
                let rel = reqwest::Url::parse(u).ok().map_or_else(
                    || PathBuf::from("url"),
                    |p| {
                        let mut rel = PathBuf::from(p.host_str().unwrap_or("url"));
                        for s in p
                            .path_segments()
                            .into_iter()
                            .flatten()
                            .filter(|s| safe_segment(s))
                        {
                            rel.push(s);
                        }
                        rel
                    },
                );
                vec![Candidate {
                    rel,
                    url: Some(u.clone()),
                    file: None,
                }]
            }
            RepoRef::Path(p) => {
                if p.is_dir() {
                    DESCRIPTOR_FILES
                        .iter()
                        .map(|f| Candidate {
                            rel: PathBuf::new(),
                            url: None,
                            file: Some(p.join(f)),
                        })
                        .collect()
                } else {
                    vec![Candidate {
                        rel: PathBuf::new(),
                        url: None,
                        file: Some(p.clone()),
                    }]
                }
            }
        }
    }
}

/// What the cache remembers about a fetched file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CacheMeta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    fetched_at_unix: u64,
}

enum FetchOutcome {
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    NotFound,
}

/// Finds descriptors in shipped directories, the cache and the network.
#[derive(Debug, Clone)]
pub struct DescriptorStore {
    shipped: Vec<PathBuf>,
    cache: Option<PathBuf>,
    policy: FetchPolicy,
    client: Option<reqwest::Client>,
}

impl DescriptorStore {
    /// A store over these directories; `timeout` bounds each HTTP request.
    pub fn new(
        shipped: Vec<PathBuf>,
        cache: Option<PathBuf>,
        policy: FetchPolicy,
        timeout: Duration,
    ) -> Self {
        let client = (policy == FetchPolicy::Online).then(|| {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .user_agent(concat!("biomero-stage/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default()
        });
        DescriptorStore {
            shipped,
            cache,
            policy,
            client,
        }
    }

    /// The same store without network access.
    #[must_use]
    pub fn offline(&self) -> Self {
        DescriptorStore {
            policy: FetchPolicy::Offline,
            client: None,
            ..self.clone()
        }
    }

    /// The fetch policy.
    pub fn policy(&self) -> FetchPolicy {
        self.policy
    }

    /// Finds and parses the descriptor of a `k_repo` value.
    pub async fn find(&self, repo: &str) -> Result<Found, DescriptorError> {
        let r = RepoRef::parse(repo).map_err(|message| DescriptorError::Unavailable { message })?;
        let candidates = r.candidates();
        // 1. local files: named directly, or shipped copies
        for c in &candidates {
            if let Some(file) = &c.file {
                if let Ok(bytes) = std::fs::read(file) {
                    let descriptor = parse(&bytes, &file.display().to_string())?;
                    return Ok(Found {
                        descriptor,
                        origin: Origin::File { path: file.clone() },
                        notes: Vec::new(),
                    });
                }
                continue;
            }
            for dir in &self.shipped {
                let path = dir.join(&c.rel);
                if let Ok(bytes) = std::fs::read(&path) {
                    let descriptor = parse(&bytes, &path.display().to_string())?;
                    return Ok(Found {
                        descriptor,
                        origin: Origin::Shipped { path },
                        notes: Vec::new(),
                    });
                }
            }
        }
        // 2. the cache, kept current from the network when online
        let mut network_error: Option<String> = None;
        for c in &candidates {
            let Some(url) = &c.url else { continue };
            let cached = self.read_cache(&c.rel);
            if let (Some(client), None) = (&self.client, &network_error) {
                match fetch(client, url, cached.as_ref().map(|(_, m)| m)).await {
                    Ok(FetchOutcome::NotModified) => {
                        if let Some((bytes, _)) = cached {
                            return self.found_in_cache(&c.rel, url, &bytes, true, Vec::new());
                        }
                    }
                    Ok(FetchOutcome::Body {
                        bytes,
                        etag,
                        last_modified,
                    }) => {
                        let descriptor = parse(&bytes, url)?;
                        let mut notes = Vec::new();
                        if let Err(e) = self.write_cache(&c.rel, url, &bytes, etag, last_modified) {
                            notes.push(format!("could not cache the descriptor: {e}"));
                        }
                        return Ok(Found {
                            descriptor,
                            origin: Origin::Network { url: url.clone() },
                            notes,
                        });
                    }
                    Ok(FetchOutcome::NotFound) => {
                        if let Some((bytes, _)) = cached {
                            let note = format!("{url} is gone (404); using the cached copy");
                            return self.found_in_cache(&c.rel, url, &bytes, false, vec![note]);
                        }
                        continue;
                    }
                    Err(e) => {
                        network_error = Some(e);
                    }
                }
            }
            if let Some((bytes, _)) = cached {
                let notes = network_error
                    .iter()
                    .map(|e| format!("could not revalidate ({e}); using the cached copy"))
                    .collect();
                return self.found_in_cache(&c.rel, url, &bytes, false, notes);
            }
        }
        let looked: Vec<String> = candidates
            .iter()
            .map(|c| {
                c.url.clone().unwrap_or_else(|| {
                    c.file
                        .as_deref()
                        .unwrap_or(Path::new("?"))
                        .display()
                        .to_string()
                })
            })
            .collect();
        let mut message = format!(
            "no descriptor found for `{repo}` (looked for {})",
            looked.join(", ")
        );
        if !self.shipped.is_empty() {
            let dirs: Vec<String> = self
                .shipped
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            let _ = write!(message, " in {}", dirs.join(", "));
        }
        if let Some(cache) = &self.cache {
            let _ = write!(message, ", the cache {}", cache.display());
        }
        match (&network_error, self.policy) {
            (Some(e), _) => {
                let _ = write!(message, " and the network ({e})");
            }
            (None, FetchPolicy::Offline) => {
                message.push_str("; the network was not tried (offline): run `biomero-stage workflows` online once, or ship the file");
            }
            (None, FetchPolicy::Online) => message.push_str(" and the network (not found)"),
        }
        Err(DescriptorError::Unavailable { message })
    }

    fn found_in_cache(
        &self,
        rel: &Path,
        url: &str,
        bytes: &[u8],
        revalidated: bool,
        notes: Vec<String>,
    ) -> Result<Found, DescriptorError> {
        let path = self.cache.as_ref().map(|c| c.join(rel)).unwrap_or_default();
        let descriptor = parse(bytes, &path.display().to_string())?;
        Ok(Found {
            descriptor,
            origin: Origin::Cache {
                path,
                url: url.to_owned(),
                revalidated,
            },
            notes,
        })
    }

    fn read_cache(&self, rel: &Path) -> Option<(Vec<u8>, CacheMeta)> {
        let path = self.cache.as_ref()?.join(rel);
        let bytes = std::fs::read(&path).ok()?;
        let meta = std::fs::read(meta_path(&path))
            .ok()
            .and_then(|m| serde_json::from_slice(&m).ok())
            .unwrap_or_default();
        Some((bytes, meta))
    }

    fn write_cache(
        &self,
        rel: &Path,
        url: &str,
        bytes: &[u8],
        etag: Option<String>,
        last_modified: Option<String>,
    ) -> std::io::Result<()> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        let path = cache.join(rel);
        let meta = CacheMeta {
            url: url.to_owned(),
            etag,
            last_modified,
            fetched_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let meta_bytes = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
        stage_common::atomic::write(&meta_path(&path), &meta_bytes)?;
        stage_common::atomic::write(&path, bytes)
    }
}

fn meta_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    cached: Option<&CacheMeta>,
) -> Result<FetchOutcome, String> {
    let mut req = client.get(url);
    if let Some(meta) = cached {
        if let Some(etag) = &meta.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &meta.last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
        }
    }
    let resp = req.send().await.map_err(|e| describe_reqwest(url, &e))?;
    match resp.status() {
        reqwest::StatusCode::NOT_MODIFIED => Ok(FetchOutcome::NotModified),
        reqwest::StatusCode::NOT_FOUND => Ok(FetchOutcome::NotFound),
        s if s.is_success() => {
            let header = |h: reqwest::header::HeaderName| {
                resp.headers()
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let etag = header(reqwest::header::ETAG);
            let last_modified = header(reqwest::header::LAST_MODIFIED);
            if resp
                .content_length()
                .is_some_and(|l| l > MAX_DESCRIPTOR_BYTES as u64)
            {
                return Err(format!("{url} is larger than {MAX_DESCRIPTOR_BYTES} bytes"));
            }
            let bytes = resp.bytes().await.map_err(|e| describe_reqwest(url, &e))?;
            if bytes.len() > MAX_DESCRIPTOR_BYTES {
                return Err(format!("{url} is larger than {MAX_DESCRIPTOR_BYTES} bytes"));
            }
            Ok(FetchOutcome::Body {
                bytes: bytes.to_vec(),
                etag,
                last_modified,
            })
        }
        s => Err(format!("{url} answered HTTP {s}")),
    }
}

fn describe_reqwest(url: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("{url} timed out")
    } else if e.is_connect() {
        format!("cannot connect to {url}")
    } else {
        format!("{url}: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_urls_map_to_biomero_raw_locations() {
        let r = RepoRef::parse(
            "https://github.com/TorecLuik/W_NucleiSegmentation-Cellpose/tree/v1.4.0",
        )
        .unwrap();
        let c = r.candidates();
        assert_eq!(
            c[0].url.as_deref(),
            Some(
                "https://github.com/TorecLuik/W_NucleiSegmentation-Cellpose/raw/v1.4.0/descriptor.json"
            )
        );
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[2].rel,
            PathBuf::from("github.com/TorecLuik/W_NucleiSegmentation-Cellpose/v1.4.0/config.yaml")
        );
        let exact = RepoRef::parse("https://github.com/o/r/tree/v0.2.5/config.yaml").unwrap();
        assert_eq!(exact.candidates().len(), 1);
        assert!(RepoRef::parse("https://github.com/onlyowner").is_err());
        assert!(RepoRef::parse("not a url").is_err());
        assert!(matches!(
            RepoRef::parse("https://example.org/d/descriptor.json").unwrap(),
            RepoRef::Url(_)
        ));
    }

    #[tokio::test]
    async fn a_local_path_is_read_directly_and_missing_offline_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("descriptor.yaml"),
            "docker_image: {org: o, name: n}\nparameters: []\n",
        )
        .unwrap();
        let store =
            DescriptorStore::new(vec![], None, FetchPolicy::Offline, Duration::from_secs(1));
        let f = store.find(&dir.path().display().to_string()).await.unwrap();
        assert!(matches!(f.origin, Origin::File { .. }));
        let e = store
            .find("https://github.com/o/r/tree/v1")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("offline"), "{e}");
    }
}
