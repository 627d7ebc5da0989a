//! OMERO.web's JSON API and omero-ms-pixel-buffer over HTTP.
//!
//! Login follows OMERO.web's documented flow: `GET api/v0/token/` for the CSRF
//! token (also set as the `csrftoken` cookie), then `POST api/v0/login/` with
//! `server`, `username`, `password` and the token in `X-CSRFToken`; the
//! answer's `eventContext.sessionUuid` is the OMERO session key, and Django's
//! session cookie authenticates later requests. A 403 means the session is
//! gone (expired, server restarted): the client logs in again once and
//! repeats the request; concurrent requests that see the same expiry share
//! one new login. 5xx answers, timeouts and refused connections are retried
//! with capped exponential backoff before they become a transient error.
//! Lists are paged with `limit` ≤ 500 until `meta.totalCount`. The password
//! is held as a [`Secret`] and never appears in errors or logs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use stage_config::settings::Secret;
use tokio::sync::Mutex;

use super::login::describe;
use crate::error::{Result, SourceError};

/// The largest page OMERO.web's JSON API hands out by default (`omero.web.api.max_limit`).
pub const MAX_PAGE: u64 = 500;

/// How to reach OMERO.
#[derive(Debug, Clone)]
pub struct OmeroConfig {
    /// OMERO.web base URL.
    pub url: String,
    /// Server id in OMERO.web's `servers/` list.
    pub server_id: u32,
    /// User name.
    pub user: String,
    /// Password.
    pub password: Secret,
    /// omero-ms-pixel-buffer base URL.
    pub pixel_buffer_url: Option<String>,
    /// Where this host mounts OMERO's managed repository (original files are read from it).
    pub managed_repository: Option<std::path::PathBuf>,
    /// `(here, OMERO's)`: where this host mounts the storage that OMERO's side (its server,
    /// BIOMERO.importer) sees at another path; in-place import links hold OMERO's paths.
    pub storage_map: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Tile requests in flight per plane.
    pub concurrency: usize,
    /// Tile edge in pixels.
    pub tile_size: u32,
    /// Attempts per request before a transient error is returned.
    pub attempts: u32,
}

#[derive(Debug, Default)]
struct Session {
    key: Option<String>,
    generation: u64,
}

/// A logged-in (lazily) OMERO.web client.
#[derive(Debug)]
pub struct OmeroClient {
    http: reqwest::Client,
    cfg: OmeroConfig,
    base: String,
    session: Mutex<Session>,
}

enum Attempt {
    Done(reqwest::Response),
    Relogin,
    Retry(String),
}

impl OmeroClient {
    /// A client for `cfg` (nothing is sent until the first request).
    pub fn new(cfg: OmeroConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("biomero-stage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                SourceError::NotConfigured(format!("cannot create the HTTP client: {e}"))
            })?;
        Ok(OmeroClient {
            http,
            base: cfg.url.trim_end_matches('/').to_owned(),
            cfg,
            session: Mutex::new(Session::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OmeroConfig {
        &self.cfg
    }

    /// The session key, logging in when there is none.
    async fn session(&self) -> Result<(String, u64)> {
        let mut s = self.session.lock().await;
        if let Some(k) = &s.key {
            return Ok((k.clone(), s.generation));
        }
        let key = self.login().await?;
        s.key = Some(key.clone());
        s.generation += 1;
        Ok((key, s.generation))
    }

    /// A session key of the daemon's account (logging in when there is none), for a tool
    /// that joins the session (OMERO's exporter). A secret: never logged or stored.
    pub async fn session_key(&self) -> Result<String> {
        self.session().await.map(|(k, _)| k)
    }

    /// Forgets session `generation` (it was refused) so the next request logs in again.
    async fn expire(&self, generation: u64) {
        let mut s = self.session.lock().await;
        if s.generation == generation {
            s.key = None;
        }
    }

    async fn login(&self) -> Result<String> {
        let login_err = |reason: String| SourceError::Login {
            user: self.cfg.user.clone(),
            reason,
        };
        let answer = super::login::login(
            &self.http,
            &self.base,
            self.cfg.server_id,
            &self.cfg.user,
            self.cfg.password.expose(),
        )
        .await
        .map_err(|f| match f {
            super::login::LoginFailure::Unavailable { url, reason } => {
                SourceError::Unavailable { url, reason }
            }
            super::login::LoginFailure::Protocol { url, reason } => protocol(&url, reason),
        })?;
        let (status, body) = (answer.status, answer.body);
        let key = body["eventContext"]["sessionUuid"].as_str();
        match key {
            Some(k) if status.is_success() && body["success"] != false => {
                tracing::info!(user = %self.cfg.user, "logged in to OMERO");
                Ok(k.to_owned())
            }
            _ => Err(login_err(body["message"].as_str().map_or_else(
                || format!("OMERO.web answered {status}"),
                ToOwned::to_owned,
            ))),
        }
    }

    /// Sends a GET with the session (header for the pixel service, cookie for OMERO.web), retrying as described above.
    async fn get_raw(&self, url: &str, session_header: bool) -> Result<reqwest::Response> {
        let mut relogged = false;
        let mut last = String::new();
        let mut attempt = 0;
        while attempt < self.cfg.attempts.max(1) {
            let (key, generation) = self.session().await?;
            let mut req = self.http.get(url);
            if session_header {
                req = req.header("X-OMERO-Session-Key", &key);
            }
            let outcome = match req.send().await {
                Ok(r)
                    if r.status() == StatusCode::FORBIDDEN
                        || r.status() == StatusCode::UNAUTHORIZED =>
                {
                    Attempt::Relogin
                }
                Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                    return Err(SourceError::NotFound {
                        input: url.to_owned(),
                        reason: "OMERO answered 404".into(),
                    });
                }
                Ok(r)
                    if r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    Attempt::Retry(format!("answered {}", r.status()))
                }
                Ok(r) if !r.status().is_success() => {
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    return Err(protocol(
                        url,
                        format!(
                            "answered {status}{}",
                            body["message"]
                                .as_str()
                                .map_or_else(String::new, |m| format!(": {m}"))
                        ),
                    ));
                }
                Ok(r) => Attempt::Done(r),
                Err(e) => Attempt::Retry(describe(&e)),
            };
            match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Relogin if !relogged => {
                    tracing::info!(url, "OMERO session refused; logging in again");
                    self.expire(generation).await;
                    relogged = true;
                }
                Attempt::Relogin => {
                    return Err(SourceError::Login {
                        user: self.cfg.user.clone(),
                        reason: format!(
                            "{url} is refused (403) even right after logging in; the account may lack read access"
                        ),
                    });
                }
                Attempt::Retry(reason) => {
                    attempt += 1;
                    last = reason;
                    let wait = Duration::from_millis(100 * (1 << attempt.min(5)))
                        .min(Duration::from_secs(2));
                    tracing::debug!(url, attempt, reason = %last, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Err(SourceError::Unavailable {
            url: url.to_owned(),
            reason: format!("{last} (after {} attempts)", self.cfg.attempts.max(1)),
        })
    }

    /// `GET <url>/api/v0/<path>` as JSON.
    pub async fn api(&self, path: &str) -> Result<Value> {
        let url = format!("{}/api/v0/{}", self.base, path.trim_start_matches('/'));
        let r = self.get_raw(&url, false).await?;
        r.json().await.map_err(|e| protocol(&url, e))
    }

    /// `GET <url>/<path>` (outside the JSON API, e.g. `webclient/api/annotations/`) as JSON.
    pub async fn web(&self, path: &str) -> Result<Value> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let r = self.get_raw(&url, false).await?;
        r.json().await.map_err(|e| protocol(&url, e))
    }

    /// One object: the `data` of `GET api/v0/m/<path>`.
    pub async fn object(&self, path: &str) -> Result<Value> {
        let v = self.api(&format!("m/{path}")).await?;
        match v.get("data") {
            Some(d) if d.is_object() => Ok(d.clone()),
            // single images come as a one-element list in some OMERO.web versions
            Some(Value::Array(a)) if a.len() == 1 => Ok(a[0].clone()),
            _ => Err(protocol(&format!("m/{path}"), "no object in `data`")),
        }
    }

    /// Every item of a list, page by page.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut offset = 0u64;
        loop {
            let v = self
                .api(&format!("m/{path}{sep}limit={MAX_PAGE}&offset={offset}"))
                .await?;
            let Some(Value::Array(items)) = v.get("data") else {
                return Err(protocol(&format!("m/{path}"), "no list in `data`"));
            };
            let n = items.len() as u64;
            out.extend(items.iter().cloned());
            let total = v["meta"]["totalCount"].as_u64().unwrap_or(offset + n);
            offset += n;
            if n == 0 || offset >= total {
                return Ok(out);
            }
        }
    }

    /// Raw big-endian samples of one tile of plane (z, c, t).
    #[allow(clippy::too_many_arguments)]
    pub async fn tile(
        &self,
        image: i64,
        (z, c, t): (u64, u64, u64),
        (x, y, w, h): (u64, u64, u64, u64),
    ) -> Result<Vec<u8>> {
        let base = self.cfg.pixel_buffer_url.as_deref().ok_or_else(|| {
            SourceError::NotConfigured(format!(
                "Image {image} has no Zarr on the shared storage and pixel_buffer_url is not set; set it to the omero-ms-pixel-buffer URL"
            ))
        })?;
        let url = format!(
            "{}/tile/{image}/{z}/{c}/{t}?x={x}&y={y}&w={w}&h={h}&resolution=0",
            base.trim_end_matches('/')
        );
        let r = self.get_raw(&url, true).await?;
        let bytes = r.bytes().await.map_err(|e| SourceError::Unavailable {
            url: url.clone(),
            reason: describe(&e),
        })?;
        Ok(bytes.to_vec())
    }
}

fn protocol(url: &str, reason: impl std::fmt::Display) -> SourceError {
    SourceError::Protocol {
        url: url.to_owned(),
        reason: reason.to_string(),
    }
}
