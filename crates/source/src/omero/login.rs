//! OMERO.web's JSON API login, for the daemon's own account and for joined user sessions:
//! `GET api/v0/token/` for the CSRF token (also set as the `csrftoken` cookie), then
//! `POST api/v0/login/` with `server`, `username`, `password` and the token in `X-CSRFToken`.

use reqwest::StatusCode;
use serde_json::Value;

/// What OMERO.web answered a login with.
#[derive(Debug)]
pub(crate) struct LoginAnswer {
    /// The HTTP status (4xx: refused).
    pub status: StatusCode,
    /// The JSON body (`Null` when it was not JSON): `success`, `eventContext`, `message`.
    pub body: Value,
    /// The CSRF token, for later writes in the same session.
    pub csrf: String,
}

/// Why no answer came.
#[derive(Debug)]
pub(crate) enum LoginFailure {
    /// OMERO.web could not be reached, or answered 5xx.
    Unavailable {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// OMERO.web answered outside its documented shape.
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// A reqwest error in a few words (never the request body, which holds the password).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    }
}

/// Logs in to OMERO.web at `base` (no trailing `/`) with `http` (which keeps the cookies).
pub(crate) async fn login(
    http: &reqwest::Client,
    base: &str,
    server_id: u32,
    username: &str,
    password: &str,
) -> Result<LoginAnswer, LoginFailure> {
    let token_url = format!("{base}/api/v0/token/");
    let token: Value = http
        .get(&token_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| LoginFailure::Unavailable {
            url: token_url.clone(),
            reason: describe(&e),
        })?
        .json()
        .await
        .map_err(|e| LoginFailure::Protocol {
            url: token_url.clone(),
            reason: e.to_string(),
        })?;
    let csrf = token["data"]
        .as_str()
        .ok_or_else(|| LoginFailure::Protocol {
            url: token_url.clone(),
            reason: "no CSRF token in `data`".into(),
        })?
        .to_owned();
    let url = format!("{base}/api/v0/login/");
    let server = server_id.to_string();
    let r = http
        .post(&url)
        .header("X-CSRFToken", &csrf)
        .header(reqwest::header::REFERER, format!("{base}/"))
        .form(&[
            ("server", server.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .map_err(|e| LoginFailure::Unavailable {
            url: url.clone(),
            reason: describe(&e),
        })?;
    let status = r.status();
    if status.is_server_error() {
        return Err(LoginFailure::Unavailable {
            url,
            reason: format!("OMERO.web answered {status}"),
        });
    }
    let body: Value = r.json().await.unwrap_or(Value::Null);
    Ok(LoginAnswer { status, body, csrf })
}
