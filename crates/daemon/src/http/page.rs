//! The status page: `GET /` (runs, workflows, configuration, BIOMERO's event
//! store) and `GET /runs/{id}` (one run's history, step durations, why it
//! failed, where its results went).
//!
//! Server-rendered HTML (maud: every value is escaped where it is written, so
//! nothing a user or a job controls becomes markup), no JavaScript, one small
//! stylesheet that reads on a phone. It shows user names and paths, so it asks
//! for the admin token as the API's reads do: `Authorization: Bearer`, or HTTP
//! Basic with the token as password (a browser prompts for it); without a
//! token it is served only on a loopback address.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use stage_store::{Event, ListFilter, Outcome, State as SubState, Submission};

use crate::pipeline::Step;
use crate::runtime::Runtime;

/// The most runs the overview lists (newest first).
pub(crate) const PAGE_RUNS: i64 = 100;

const CSS: &str = "
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:.8rem;color:#222}
h1{font-size:1.3rem;margin:.2rem 0 .8rem}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;white-space:nowrap}
.state{font-weight:600;white-space:nowrap}.failed,.error{color:#b00020}.imported{color:#0a7a2f}
.cancelled{color:#777}.running{color:#0057b3}code{font-size:.85rem;word-break:break-all}
.box{background:#f8f8f8;border:1px solid #ddd;padding:.5rem .7rem;margin:.4rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem}dt{color:#555}dd{margin:0}
";

/// The refusal, when the request may not see the page: it needs the admin or the viewer
/// token, as `Bearer` or as the password of HTTP Basic (a browser prompts for it); with
/// neither configured, none is needed on a loopback address.
fn refused(rt: &Runtime, headers: &HeaderMap) -> Option<Response> {
    // a Basic credential's password is the token: seen as a bearer token by the API's check
    let mut as_bearer = headers.clone();
    if let Some(password) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, rest)| basic_password(rest.trim()))
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {password}"))
    {
        as_bearer.insert(header::AUTHORIZATION, v);
    }
    let e = super::authorize_read(rt, &as_bearer).err()?;
    let mut r = e.into_response();
    if r.status() == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"biomero-stage\", charset=\"UTF-8\""),
        );
    }
    Some(r)
}

/// The password of an HTTP Basic credential (`base64(user:password)`).
fn basic_password(b64: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.split_once(':').map(|(_, p)| p.to_owned())
}

fn page(title: &str, body: &Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " — biomero-stage" }
                    style { (PreEscaped(CSS)) }
                }
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// `3 min`, `2 h 5 min`, `4 d`.
fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - since).num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d", s / 86_400),
    }
}

fn state_class(s: &Submission) -> &'static str {
    match s.state {
        SubState::Imported => "imported",
        SubState::Failed => "failed",
        SubState::Cancelled => "cancelled",
        _ if s.done => "",
        _ => "running",
    }
}

/// What the run is doing now: the step under way, with the job's state and progress from
/// that step's latest progress or retry event in `history` (a note written after it, such as
/// a notice or a mail, does not hide it).
fn current(s: &Submission, history: &[Event]) -> String {
    if s.done {
        return String::new();
    }
    if let Some(w) = &s.waiting_for {
        return format!("waiting for {w}");
    }
    let step = Step::after(s.state).map_or("", |(st, _)| st.name());
    let last = history
        .iter()
        .rev()
        .find(|e| e.step == step && matches!(e.outcome, Outcome::Progress | Outcome::Retrying));
    match last {
        Some(e) if e.outcome == Outcome::Progress => {
            let job = e.detail.get("slurm_state").and_then(Value::as_str);
            let pct = e.detail.get("progress").and_then(Value::as_u64);
            let mut now = match (job, pct) {
                (Some(j), Some(p)) => format!("{step}: job {j}, {p}%"),
                (Some(j), None) => format!("{step}: job {j}"),
                (None, Some(p)) => format!("{step}: {p}%"),
                (None, None) => step.to_owned(),
            };
            if let Some(rate) = e.detail.get("bytes_per_s").and_then(Value::as_f64) {
                now.push_str(&format!(", {:.0} MB/s", rate / 1e6));
            }
            if let Some(eta) = e.detail.get("eta_s").and_then(Value::as_f64) {
                #[allow(clippy::cast_possible_truncation)]
                let eta = chrono::Duration::seconds(eta as i64);
                let now_t = Utc::now();
                now.push_str(&format!(", {} left", age(now_t - eta, now_t)));
            }
            // the upload made while staging: what it has sent so far (its total grows)
            if let Some(sent) = e
                .detail
                .pointer("/uploaded/bytes_done")
                .and_then(Value::as_u64)
            {
                #[allow(clippy::cast_precision_loss)]
                let mb = sent as f64 / 1e6;
                now.push_str(&format!("; {mb:.0} MB uploaded"));
            }
            now
        }
        Some(e) if e.outcome == Outcome::Retrying => format!("{step}: retrying"),
        _ => step.to_owned(),
    }
}

fn user(s: &Submission) -> (String, String) {
    let u = s.request.get("user");
    let get = |k: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (get("name"), get("group"))
}

/// `GET /`.
pub(crate) async fn overview(State(rt): State<Runtime>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&rt, &headers) {
        return r;
    }
    let now = Utc::now();
    let subs = match rt
        .store
        .list(&ListFilter {
            state: None,
            limit: PAGE_RUNS,
            run: None,
            before: None,
        })
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the queue cannot be read: {e}"),
            )
                .into_response();
        }
    };
    let mut rows = Vec::with_capacity(subs.len());
    for s in subs {
        // only a run under way says what it does now: the others' histories are not read
        let history = if s.done || s.waiting_for.is_some() {
            Vec::new()
        } else {
            rt.store.events(&s.id).await.unwrap_or_default()
        };
        rows.push((current(&s, &history), s));
    }
    let config = rt.config.current();
    let reload_error = rt.config.last_error();
    let events = rt
        .biomero_events
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let body = html! {
        h1 { "biomero-stage" }
        h2 { "Runs" }
        @if rows.is_empty() { p { "No runs yet." } }
        @else {
            div.scroll { table #runs {
                tr { th { "run" } th { "state" } th { "workflow" } th { "user" } th { "group" } th { "age" } th { "now" } }
                @for (now_doing, s) in &rows {
                    @let (name, group) = user(s);
                    tr data-id=(s.id) data-state=(s.state.as_str()) {
                        td { a href={ "/runs/" (s.id) } { (s.id) } }
                        td.state.(state_class(s)) { (s.state.as_str()) }
                        td { (s.workflow) }
                        td { (name) }
                        td { (group) }
                        td.n { (age(s.created_at, now)) }
                        td { (now_doing) }
                    }
                }
            } }
            p { "The newest " (PAGE_RUNS) " runs; all of them: " code { "biomero-stage status" } "." }
        }
        h2 { "Workflows" }
        div.scroll { table #workflows {
            tr { th { "workflow" } th { "version" } th { "input mode" } th { "descriptor" } th { "warnings" } }
            @for w in config.registry.workflows.values() {
                tr data-workflow=(w.key) {
                    td { (w.key) }
                    td { (w.version) }
                    td { (w.mode.to_string()) }
                    td { @if w.descriptor.is_some() { "yes" } @else { span.error { "none: parameters unchecked" } } }
                    td {
                        @for warning in &w.warnings { div { (warning.to_string()) } }
                    }
                }
            }
        } }
        h2 { "Configuration" }
        dl {
            dt { "generation" } dd { (config.generation) }
            dt { "loaded" } dd { (DateTime::<Utc>::from(config.loaded_at).format("%Y-%m-%d %H:%M:%S UTC").to_string()) }
            dt { "last reload" }
            dd {
                @match &reload_error {
                    Some(e) => span.error #reload-error { "refused, the previous configuration stays: " (e.message) },
                    None => "ok",
                }
            }
            dt { "warnings" } dd { (config.warnings().len()) }
        }
        h2 { "BIOMERO's event store" }
        dl #biomero-events {
            @match (&events.store, &events.off) {
                (Some(store), _) => { dt { "store" } dd { code { (store) } } },
                (None, Some(off)) => { dt { "off" } dd { (off) } },
                (None, None) => { dt { "state" } dd { "starting" } },
            }
            dt { "events written" } dd { (events.written) }
            @if let Some(e) = &events.error { dt { "last error" } dd.error { (e) } }
        }
    };
    page("status", &body).into_response()
}

/// How long each step took: from the previous step's end to this one's.
fn durations(events: &[Event]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut since: Option<DateTime<Utc>> = None;
    for e in events {
        match e.outcome {
            Outcome::Accepted => since = Some(e.at),
            Outcome::Succeeded | Outcome::Failed | Outcome::Cancelled => {
                if let Some(t) = since {
                    out.push((e.step.clone(), (e.at - t).num_milliseconds()));
                }
                since = Some(e.at);
            }
            _ => {}
        }
    }
    out
}

fn seconds(ms: i64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let s = ms as f64 / 1000.0;
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.0} s")
    }
}

/// `GET /runs/{id}`.
pub(crate) async fn run(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refused(&rt, &headers) {
        return r;
    }
    let s = match rt.store.get(&id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page(
                    "not found",
                    &html! {
                        h1 { "No run " code { (id) } } p { a href="/" { "all runs" } }
                    },
                ),
            )
                .into_response();
        }
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the queue cannot be read: {e}"),
            )
                .into_response();
        }
    };
    let events = rt.store.events(&id).await.unwrap_or_default();
    let (name, group) = user(&s);
    let kept = s
        .data
        .pointer("/collect/kept")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let remote = s
        .data
        .pointer("/upload/job_dir")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let job = s.data.pointer("/submit/job_id").and_then(Value::as_u64);
    let workflow_run = match crate::biomero::mirror::configured(&rt.config.current().slurm) {
        Ok(_) => rt
            .store
            .identity()
            .await
            .ok()
            .map(|q| crate::biomero::tracking::workflow_run(&q, &s).to_string()),
        Err(_) => None,
    };
    let body = html! {
        p { a href="/" { "← all runs" } }
        h1 { "Run " code #run-id { (s.id) } }
        dl {
            dt { "state" } dd.state.(state_class(&s)) #state { (s.state.as_str()) @if s.done { " (done)" } }
            dt { "now" } dd { (current(&s, &events)) }
            dt { "workflow" } dd { (s.workflow) }
            dt { "user" } dd { (name) " in " (group) }
            dt { "received" } dd { (s.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()) }
            @if let Some(j) = job { dt { "Slurm job" } dd { (j) } }
            @if let Some(r) = &remote { dt { "on the cluster" } dd { code { (r) } } }
            @if let Some(k) = &kept { dt { "results kept at" } dd { code #kept { (k) } } }
            @if let Some(w) = &workflow_run { dt { "BIOMERO WorkflowRun" } dd { code { (w) } } }
        }
        @if let Some(e) = &s.error {
            h2 { @if s.state == SubState::Failed { "Why it failed" } @else { "Last error" } }
            div.box.error #error { (e) }
        }
        h2 { "Step durations" }
        div.scroll { table #durations {
            tr { th { "step" } th { "took" } }
            @for (step, ms) in durations(&events) {
                tr { td { (step) } td.n { (seconds(ms)) } }
            }
        } }
        h2 { "History" }
        @if let Some(first) = events.first().filter(|e| e.seq > 1) {
            p #history-cut { "Events 1–" (first.seq - 1) " were removed once the run had been finished for "
                "keep_history_days; the event that ended it stays." }
        }
        div.scroll { table #history {
            tr { th { "#" } th { "time (UTC)" } th { "step" } th { "outcome" } th { "state" } th { "detail" } }
            @for e in &events {
                tr data-outcome=(e.outcome.as_str()) {
                    td.n { (e.seq) }
                    td { (e.at.format("%H:%M:%S%.3f").to_string()) }
                    td { (e.step) }
                    td { (e.outcome.as_str()) }
                    td { (e.state.as_str()) }
                    td { code { (crate::report::detail_summary(&e.detail)) } }
                }
            }
        } }
    };
    page(&format!("run {}", s.id), &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_give_their_password() {
        // "viewer:s3cr:et" — a password may hold colons
        assert_eq!(
            basic_password("dmlld2VyOnMzY3I6ZXQ=").as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(basic_password("!!!"), None);
        assert_eq!(
            basic_password("bm9jb2xvbg=="),
            None,
            "no colon, no password"
        );
    }

    #[test]
    fn ages_read_as_people_say_them() {
        let now = Utc::now();
        assert_eq!(age(now - chrono::Duration::seconds(5), now), "5 s");
        assert_eq!(age(now - chrono::Duration::minutes(3), now), "3 min");
        assert_eq!(age(now - chrono::Duration::minutes(125), now), "2 h 5 min");
        assert_eq!(age(now - chrono::Duration::days(4), now), "4 d");
    }

    #[test]
    fn a_transfer_under_way_shows_its_share_rate_and_time_left() {
        let s: Submission = serde_json::from_value(serde_json::json!({
            "id": "x", "workflow": "cellpose", "request": {}, "state": "staged", "done": false,
            "waiting_for": null, "error": null, "attempts": 0,
            "next_attempt_at": Utc::now(), "cancel_requested": false, "data": {},
            "created_at": Utc::now(), "updated_at": Utc::now()
        }))
        .unwrap();
        let e = Event {
            seq: 5,
            step: "upload".into(),
            outcome: Outcome::Progress,
            state: SubState::Staged,
            detail: serde_json::json!({"progress": 45, "bytes_per_s": 1.2e8, "eta_s": 130.0}),
            at: Utc::now(),
        };
        assert_eq!(
            current(&s, std::slice::from_ref(&e)),
            "upload: 45%, 120 MB/s, 2 min left"
        );
        // a note after it (a notice, a mail) and an older step's progress do not hide it
        let note = Event {
            seq: 6,
            step: "notify".into(),
            outcome: Outcome::Noted,
            detail: serde_json::json!({"mail": "not sent"}),
            ..e.clone()
        };
        let older = Event {
            seq: 4,
            step: "stage".into(),
            detail: serde_json::json!({"progress": 99}),
            ..e.clone()
        };
        assert_eq!(
            current(&s, &[older.clone(), e, note.clone()]),
            "upload: 45%, 120 MB/s, 2 min left"
        );
        // no event of the step under way yet: the step alone
        assert_eq!(current(&s, &[older.clone(), note]), "upload");
        // staging with its outputs uploaded as they come: what has been sent with it
        let staging = Submission {
            state: SubState::Planned,
            ..s
        };
        let both = Event {
            step: "stage".into(),
            state: SubState::Planned,
            detail: serde_json::json!({"progress": 60, "bytes_per_s": 3.0e8, "eta_s": 20.0,
                "uploaded": {"bytes_done": 912_000_000u64, "files_done": 310, "bytes_per_s": 2.9e8}}),
            ..older
        };
        assert_eq!(
            current(&staging, &[both]),
            "stage: 60%, 300 MB/s, 20 s left; 912 MB uploaded"
        );
    }
}
