//! A user's own OMERO session, joined through OMERO.web: who the user is, and
//! the containers they act on.
//!
//! An OMERO session key is a capability: OMERO joins the session of whoever
//! presents its uuid as both user name and password (`omero.client.joinSession`
//! is `createSession(key, key)`). OMERO.web's JSON API login (`POST
//! api/v0/login/`, form `server`, `username`, `password`, CSRF token from
//! `api/v0/token/`) passes both to OMERO and answers the joined session's
//! `eventContext` (`userId`, `userName`, `groupId`, `groupName`,
//! `memberOfGroups`, `isAdmin`, …; `omeroweb/webgateway/views.py`,
//! `LoginView.handle_logged_in`). That answer is the only identity biomero-stage
//! trusts: it comes from OMERO, never from a request body.
//!
//! The joined Django session then acts as the user: Datasets and Screens are
//! listed with `GET api/v0/m/datasets/?group=` and created with `POST
//! api/v0/m/save/?group=` (`omeroweb/api/views.py`, `SaveView`: Project,
//! Dataset and Screen; 201 with the saved object in `data`). The key is held as
//! a [`Secret`] and never appears in an error or a log; the session is never
//! closed here (closing it would end the user's own session).

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stage_config::settings::Secret;

use super::client::MAX_PAGE;
use super::login::describe;

const SCHEMA: &str = "http://www.openmicroscopy.org/Schemas/OME/2016-06";

/// Who a session belongs to and which group it acts in, as OMERO says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventContext {
    /// OMERO user id.
    pub user_id: i64,
    /// OMERO user name.
    pub user_name: String,
    /// The group the session acts in.
    pub group_id: i64,
    /// Its name.
    pub group_name: String,
    /// Every group the user is a member of.
    pub member_of_groups: Vec<i64>,
    /// Whether the user is an OMERO administrator.
    pub is_admin: bool,
}

/// A container results can be imported into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerKind {
    /// An OMERO Dataset (images).
    Dataset,
    /// An OMERO Screen (plates).
    Screen,
}

impl ContainerKind {
    /// `Dataset` or `Screen`.
    pub fn name(self) -> &'static str {
        match self {
            ContainerKind::Dataset => "Dataset",
            ContainerKind::Screen => "Screen",
        }
    }

    fn list_path(self) -> &'static str {
        match self {
            ContainerKind::Dataset => "datasets",
            ContainerKind::Screen => "screens",
        }
    }
}

/// A Dataset or Screen as OMERO.web shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Dataset or Screen.
    pub kind: ContainerKind,
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The group it belongs to.
    pub group_id: i64,
    /// Its description, when it has one.
    pub description: Option<String>,
}

/// Why a session could not be joined or used.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// OMERO does not know the key (never issued, expired or closed).
    #[error(
        "OMERO refused the session ({reason}); the session is missing, expired or closed: start the run again from OMERO"
    )]
    Refused {
        /// OMERO.web's message.
        reason: String,
    },
    /// OMERO.web could not be reached or failed.
    #[error("{url}: {reason}")]
    Unavailable {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// OMERO.web answered something other than its documented shape.
    #[error("{url}: unexpected answer: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The container does not exist, or the user cannot see it.
    #[error("{kind} {id} does not exist or is not visible to this user")]
    NotFound {
        /// Dataset or Screen.
        kind: &'static str,
        /// Its id.
        id: i64,
    },
}

/// A joined OMERO session acting as its user.
#[derive(Debug)]
pub struct UserSession {
    http: reqwest::Client,
    base: String,
    csrf: String,
    context: EventContext,
}

fn unavailable(url: &str, e: &reqwest::Error) -> SessionError {
    SessionError::Unavailable {
        url: url.to_owned(),
        reason: describe(e),
    }
}

fn protocol(url: &str, reason: impl std::fmt::Display) -> SessionError {
    SessionError::Protocol {
        url: url.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads OMERO.web's `eventContext` object.
pub fn parse_event_context(v: &Value) -> Option<EventContext> {
    Some(EventContext {
        user_id: v["userId"].as_i64()?,
        user_name: v["userName"].as_str()?.to_owned(),
        group_id: v["groupId"].as_i64()?,
        group_name: v["groupName"].as_str()?.to_owned(),
        member_of_groups: v["memberOfGroups"]
            .as_array()?
            .iter()
            .filter_map(Value::as_i64)
            .collect(),
        is_admin: v["isAdmin"].as_bool().unwrap_or(false),
    })
}

fn container_of(kind: ContainerKind, v: &Value) -> Option<Container> {
    Some(Container {
        kind,
        id: v["@id"].as_i64()?,
        name: v["Name"].as_str().unwrap_or_default().to_owned(),
        group_id: v["omero:details"]["group"]["@id"].as_i64()?,
        description: v["Description"].as_str().map(str::to_owned),
    })
}

/// A cookie-keeping HTTP client for OMERO.web at `url`, OMERO.web's base URL, and its
/// answer to logging in as `user` with `password` (a session key is both, to join it).
async fn log_in(
    url: &str,
    server_id: u32,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<(reqwest::Client, String, super::login::LoginAnswer), SessionError> {
    let base = url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("biomero-stage/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| protocol(&base, format!("cannot create the HTTP client: {e}")))?;
    let answer = super::login::login(&http, &base, server_id, user, password)
        .await
        .map_err(|f| match f {
            super::login::LoginFailure::Unavailable { url, reason } => {
                SessionError::Unavailable { url, reason }
            }
            super::login::LoginFailure::Protocol { url, reason } => {
                SessionError::Protocol { url, reason }
            }
        })?;
    Ok((http, base, answer))
}

impl UserSession {
    /// Joins the session `key` through OMERO.web at `url` (server `server_id`).
    pub async fn join(
        url: &str,
        server_id: u32,
        key: &Secret,
        timeout: Duration,
    ) -> Result<Self, SessionError> {
        let (http, base, answer) =
            log_in(url, server_id, key.expose(), key.expose(), timeout).await?;
        let (status, body, csrf) = (answer.status, answer.body, answer.csrf);
        let login = format!("{base}/api/v0/login/");
        if !status.is_success() || body["success"] != true {
            return Err(SessionError::Refused {
                reason: body["message"]
                    .as_str()
                    .map_or_else(|| format!("OMERO.web answered {status}"), ToOwned::to_owned),
            });
        }
        let context = parse_event_context(&body["eventContext"])
            .ok_or_else(|| protocol(&login, "no complete `eventContext` in the login answer"))?;
        // the joined session is the presented one, or OMERO logged in someone else
        if body["eventContext"]["sessionUuid"].as_str() != Some(key.expose()) {
            return Err(SessionError::Refused {
                reason: "OMERO answered with another session than the one presented".into(),
            });
        }
        Ok(UserSession {
            http,
            base,
            csrf,
            context,
        })
    }

    /// Logs in through OMERO.web as biomero-stage's own OMERO account (`omero_user`), to
    /// act for a user whose run BIOMERO recorded (a detached run: there is no session of the
    /// user's to join). See [`UserSession::acting_for`].
    pub async fn service(
        url: &str,
        server_id: u32,
        user: &str,
        password: &Secret,
        timeout: Duration,
    ) -> Result<Self, SessionError> {
        let (http, base, answer) = log_in(url, server_id, user, password.expose(), timeout).await?;
        let (status, body, csrf) = (answer.status, answer.body, answer.csrf);
        if !status.is_success() || body["success"] != true {
            // the account's own login failing is the site's configuration, not a user's
            return Err(SessionError::Unavailable {
                url: format!("{base}/api/v0/login/"),
                reason: format!(
                    "OMERO refused biomero-stage's account `{user}`: {}",
                    body["message"].as_str().unwrap_or("no message")
                ),
            });
        }
        let context = parse_event_context(&body["eventContext"]).ok_or_else(|| {
            protocol(
                &format!("{base}/api/v0/login/"),
                "no complete `eventContext` in the login answer",
            )
        })?;
        Ok(UserSession {
            http,
            base,
            csrf,
            context,
        })
    }

    /// This (service) session, acting for OMERO user `user_id` in group `group_id`: their
    /// names and memberships are read from OMERO (`m/experimenters/<id>/`,
    /// `m/experimentergroups/<id>/`, `m/experimenters/<id>/experimentergroups/`), and a user
    /// who is not a member of the group is refused. What is then looked up (containers,
    /// images, files) is looked up with this account's rights, in that group.
    pub async fn acting_for(mut self, user_id: i64, group_id: i64) -> Result<Self, SessionError> {
        let refused = |reason: String| SessionError::Refused { reason };
        let user = self
            .get(&format!("m/experimenters/{user_id}/"))
            .await?
            .ok_or_else(|| refused(format!("OMERO has no user {user_id}")))?;
        let user_name = user["data"]["UserName"]
            .as_str()
            .or_else(|| user["data"]["omeName"].as_str())
            .ok_or_else(|| protocol("m/experimenters/", "no `UserName` in the experimenter"))?
            .to_owned();
        let group = self
            .get(&format!("m/experimentergroups/{group_id}/"))
            .await?
            .ok_or_else(|| refused(format!("OMERO has no group {group_id}")))?;
        let group_name = group["data"]["Name"]
            .as_str()
            .ok_or_else(|| protocol("m/experimentergroups/", "no `Name` in the group"))?
            .to_owned();
        let member_of: Vec<i64> = self
            .list(&format!("m/experimenters/{user_id}/experimentergroups/"))
            .await?
            .iter()
            .filter_map(|g| g["@id"].as_i64())
            .collect();
        if !member_of.contains(&group_id) {
            return Err(refused(format!(
                "`{user_name}` is not a member of group {group_id} (`{group_name}`)"
            )));
        }
        self.context = EventContext {
            user_id,
            user_name,
            group_id,
            group_name,
            member_of_groups: member_of,
            is_admin: false,
        };
        Ok(self)
    }

    /// Who the session belongs to.
    pub fn context(&self) -> &EventContext {
        &self.context
    }

    /// `GET api/v0/<path>`: `None` when OMERO.web answers 404.
    async fn get(&self, path: &str) -> Result<Option<Value>, SessionError> {
        self.get_json(format!("{}/api/v0/{path}", self.base)).await
    }

    /// `GET <url>` as JSON: `None` when OMERO.web answers 404.
    async fn get_json(&self, url: String) -> Result<Option<Value>, SessionError> {
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unavailable(&url, &e))?;
        match r.status() {
            s if s.is_success() => r.json().await.map(Some).map_err(|e| protocol(&url, e)),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Err(SessionError::Refused {
                reason: "the session ended while in use".into(),
            }),
            s => Err(SessionError::Unavailable {
                url,
                reason: format!("OMERO.web answered {s}"),
            }),
        }
    }

    /// The Dataset or Screen `id`, as this user sees it.
    pub async fn container(&self, kind: ContainerKind, id: i64) -> Result<Container, SessionError> {
        let path = format!("m/{}/{id}/", kind.list_path());
        match self.get(&path).await? {
            Some(v) => {
                container_of(kind, &v["data"]).ok_or_else(|| protocol(&path, "no object in `data`"))
            }
            None => Err(SessionError::NotFound {
                kind: kind.name(),
                id,
            }),
        }
    }

    /// The user's e-mail address in OMERO (`Email` of `m/experimenters/<id>/`), if any.
    pub async fn email(&self) -> Result<Option<String>, SessionError> {
        let path = format!("m/experimenters/{}/", self.context.user_id);
        Ok(self
            .get(&path)
            .await?
            .and_then(|v| {
                v["data"]["Email"]
                    .as_str()
                    .map(str::trim)
                    .map(ToOwned::to_owned)
            })
            .filter(|e| e.contains('@')))
    }

    /// Downloads FileAnnotation `id` into `dir` through OMERO.web's
    /// `webclient/annotation/<id>/` (`download_annotation`: the file with
    /// `Content-Disposition: attachment; filename=<name>`), at most `max_bytes`; returns
    /// the file name. A half-written download never keeps the final name.
    pub async fn download_annotation(
        &self,
        id: i64,
        dir: &std::path::Path,
        max_bytes: u64,
    ) -> Result<String, SessionError> {
        use tokio::io::AsyncWriteExt as _;
        let url = format!("{}/webclient/annotation/{id}/", self.base);
        let mut r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unavailable(&url, &e))?;
        let status = r.status();
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            return Err(SessionError::Refused {
                reason: "the session ended while in use".into(),
            });
        }
        // OMERO.web answers an unknown (or invisible) FileAnnotation with a server error page
        if !status.is_success() {
            return Err(SessionError::NotFound {
                kind: "FileAnnotation",
                id,
            });
        }
        let name = r
            .headers()
            .get(reqwest::header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(';')
                    .find_map(|p| p.trim().strip_prefix("filename="))
            })
            .map(|n| {
                n.trim_matches('"')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .filter(|n| !n.is_empty() && !n.starts_with('.') && !n.chars().any(char::is_control))
            .ok_or_else(|| protocol(&url, "no usable file name in Content-Disposition"))?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| protocol(&url, format!("{}: {e}", dir.display())))?;
        let partial = dir.join(format!(".{name}.partial"));
        let mut f = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| protocol(&url, format!("{}: {e}", partial.display())))?;
        let mut written = 0u64;
        while let Some(chunk) = r.chunk().await.map_err(|e| unavailable(&url, &e))? {
            written += chunk.len() as u64;
            if written > max_bytes {
                drop(f);
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(protocol(
                    &url,
                    format!(
                        "FileAnnotation {id} is larger than {max_bytes} bytes (max_stage_bytes)"
                    ),
                ));
            }
            f.write_all(&chunk)
                .await
                .map_err(|e| protocol(&url, format!("{}: {e}", partial.display())))?;
        }
        f.sync_all()
            .await
            .map_err(|e| protocol(&url, format!("{}: {e}", partial.display())))?;
        tokio::fs::rename(&partial, dir.join(&name))
            .await
            .map_err(|e| protocol(&url, format!("{}: {e}", dir.display())))?;
        Ok(name)
    }

    /// Every item of a JSON API list, page by page (`path` carries its own query).
    async fn list(&self, path: &str) -> Result<Vec<Value>, SessionError> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let page = format!("{path}{sep}limit={MAX_PAGE}&offset={offset}");
            let Some(v) = self.get(&page).await? else {
                return Err(protocol(&page, "not found"));
            };
            let Some(Value::Array(items)) = v.get("data") else {
                return Err(protocol(&page, "no list in `data`"));
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

    /// Every Dataset or Screen of the session's group.
    pub async fn containers(&self, kind: ContainerKind) -> Result<Vec<Container>, SessionError> {
        let items = self
            .list(&format!(
                "m/{}/?group={}",
                kind.list_path(),
                self.context.group_id
            ))
            .await?;
        Ok(items.iter().filter_map(|i| container_of(kind, i)).collect())
    }

    /// The ids of a Dataset's images, as this user sees them.
    pub async fn dataset_images(&self, id: i64) -> Result<Vec<i64>, SessionError> {
        self.container(ContainerKind::Dataset, id).await?;
        let items = self.list(&format!("m/datasets/{id}/images/")).await?;
        Ok(items.iter().filter_map(|i| i["@id"].as_i64()).collect())
    }

    /// The ids of a Plate's fields (every well sample's image), well by well.
    pub async fn plate_images(&self, id: i64) -> Result<Vec<i64>, SessionError> {
        let path = format!("m/plates/{id}/");
        if self.get(&path).await?.is_none() {
            return Err(SessionError::NotFound { kind: "Plate", id });
        }
        let wells = self.list(&format!("m/plates/{id}/wells/")).await?;
        Ok(wells
            .iter()
            .flat_map(|w| w["WellSamples"].as_array().cloned().unwrap_or_default())
            .filter_map(|ws| ws["Image"]["@id"].as_i64())
            .collect())
    }

    /// The names of the files attached to OMERO object `kind` `id` (`image`, `dataset`,
    /// `plate`, …), as OMERO.web's webclient lists them (`webclient/api/annotations/?type=file&<kind>=<id>`:
    /// `annotations[].file.name`, `marshal_annotations` in `omeroweb/webclient/tree.py`).
    pub async fn attached_file_names(
        &self,
        kind: &str,
        id: i64,
    ) -> Result<Vec<String>, SessionError> {
        let url = format!(
            "{}/webclient/api/annotations/?type=file&{kind}={id}",
            self.base
        );
        let v = self
            .get_json(url.clone())
            .await?
            .ok_or_else(|| protocol(&url, "the webclient is not installed (404)"))?;
        let anns = v["annotations"]
            .as_array()
            .ok_or_else(|| protocol(&url, "no `annotations` list"))?;
        Ok(anns
            .iter()
            .filter(|a| a["link"]["parent"]["id"].as_i64() == Some(id))
            .filter_map(|a| a["file"]["name"].as_str().map(ToOwned::to_owned))
            .collect())
    }

    /// Attaches the file at `path`, named `name`, to the OMERO objects `targets` (`(kind,
    /// id)`, kinds as the webclient names them: `image`, `dataset`, `plate`, `screen`, …)
    /// through OMERO.web's webclient, as its "Attach a file" dialog does: `POST
    /// webclient/annotate_file/?<kind>=<id>…` with the file as the multipart field
    /// `annotation_file` (`annotate_file` in `omeroweb/webclient/views.py`; the objects'
    /// group is the annotation's). The file is streamed, never read whole. Returns the new
    /// FileAnnotation's id (`fileIds`).
    pub async fn attach_file(
        &self,
        targets: &[(&str, i64)],
        path: &std::path::Path,
        name: &str,
        mime: &str,
    ) -> Result<i64, SessionError> {
        let query: Vec<String> = targets.iter().map(|(k, id)| format!("{k}={id}")).collect();
        let url = format!("{}/webclient/annotate_file/?{}", self.base, query.join("&"));
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| protocol(&url, format!("{}: {e}", path.display())))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| protocol(&url, format!("{}: {e}", path.display())))?
            .len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let part = reqwest::multipart::Part::stream_with_length(body, len)
            .file_name(name.to_owned())
            .mime_str(mime)
            .map_err(|e| protocol(&url, e))?;
        let form = reqwest::multipart::Form::new().part("annotation_file", part);
        let r = self
            .http
            .post(&url)
            .header("X-CSRFToken", &self.csrf)
            .header(reqwest::header::REFERER, format!("{}/", self.base))
            .multipart(form)
            .send()
            .await
            .map_err(|e| unavailable(&url, &e))?;
        let status = r.status();
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            return Err(SessionError::Refused {
                reason: format!("OMERO.web refused the attachment ({status})"),
            });
        }
        if !status.is_success() {
            return Err(SessionError::Unavailable {
                url,
                reason: format!("OMERO.web answered {status}"),
            });
        }
        let text = r.text().await.map_err(|e| unavailable(&url, &e))?;
        // a form error comes back as 200 with the form's errors as HTML
        let v: Value = serde_json::from_str(&text).map_err(|_| {
            protocol(
                &url,
                format!(
                    "not attached: {}",
                    text.chars().take(200).collect::<String>()
                ),
            )
        })?;
        v["fileIds"]
            .as_array()
            .and_then(|ids| ids.first())
            .and_then(Value::as_i64)
            .ok_or_else(|| protocol(&url, "no `fileIds` in the answer"))
    }

    /// The container named `name` in the session's group, as BIOMERO finds it
    /// (`conn.getObjects(type, attributes={"name": name})`, first match), or a new
    /// one when there is none or `duplicate` asks for a new one. `(container, created)`.
    ///
    /// `description` names the run the container is made for. With `duplicate`, a container
    /// of that name and that description is the one this run made before (a retried run, or
    /// a daemon that stopped between creating it and queuing the run) and is reused: a
    /// retry never makes a second one.
    pub async fn find_or_create(
        &self,
        kind: ContainerKind,
        name: &str,
        duplicate: bool,
        description: &str,
    ) -> Result<(Container, bool), SessionError> {
        let mut found: Vec<Container> = self
            .containers(kind)
            .await?
            .into_iter()
            .filter(|c| c.name == name && c.group_id == self.context.group_id)
            .filter(|c| !duplicate || c.description.as_deref() == Some(description))
            .collect();
        found.sort_by_key(|c| c.id);
        if let Some(c) = found.into_iter().next() {
            return Ok((c, false));
        }
        let url = format!(
            "{}/api/v0/m/save/?group={}",
            self.base, self.context.group_id
        );
        let body = json!({
            "@type": format!("{SCHEMA}#{}", kind.name()),
            "Name": name,
            "Description": description,
        });
        let r = self
            .http
            .post(&url)
            .header("X-CSRFToken", &self.csrf)
            .header(reqwest::header::REFERER, format!("{}/", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable(&url, &e))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status != StatusCode::CREATED && !status.is_success() {
            return Err(protocol(
                &url,
                format!(
                    "creating {} `{name}` answered {status}{}",
                    kind.name(),
                    v["message"]
                        .as_str()
                        .map_or_else(String::new, |m| format!(": {m}"))
                ),
            ));
        }
        let c = container_of(kind, &v["data"])
            .ok_or_else(|| protocol(&url, "no saved object in `data`"))?;
        tracing::info!(kind = kind.name(), id = c.id, name, "created in OMERO");
        Ok((c, true))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_event_context_is_read_from_omero_webs_login_answer() {
        // the shape of LoginView.handle_logged_in (omeroweb/webgateway/views.py)
        let v = json!({"sessionId": 7, "sessionUuid": "k", "userId": 3, "userName": "alice",
            "groupId": 5, "groupName": "Lab A", "isAdmin": false, "eventId": -1,
            "eventType": "User", "memberOfGroups": [5, 1], "leaderOfGroups": []});
        let c = parse_event_context(&v).unwrap();
        assert_eq!(
            (c.user_name.as_str(), c.group_id, c.member_of_groups),
            ("alice", 5, vec![5, 1])
        );
        assert!(parse_event_context(&json!({"userName": "alice"})).is_none());
    }

    #[tokio::test]
    async fn an_unreachable_omero_is_unavailable_and_the_key_is_not_in_the_error() {
        let key = Secret::new("0f0f0f0f-dead-beef-0000-123456789abc");
        let e = UserSession::join("http://127.0.0.1:1", 1, &key, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, SessionError::Unavailable { .. }), "{e}");
        assert!(!e.to_string().contains(key.expose()));
        assert!(!format!("{e:?}").contains(key.expose()));
    }
}
