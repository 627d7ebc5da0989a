//! Mail to the user when a run they asked to hear about (BIOMERO's `E-mail`) has
//! ended: once per run, when its last submission is imported, failed or cancelled,
//! through the site's relay (`smtp_url`), to the address OMERO has for the user.
//!
//! What happened is written into every submission's history of the run as a
//! `notify` event (`noted`): sent to whom, or why not (no relay, no address, the
//! relay's refusal). A mail that cannot be sent never fails the run. A claim in the
//! queue (`Store::claim_once("mail:<run>")`) keeps the mail to one, even when two of the
//! run's submissions end at the same moment in two daemons that share the queue.

use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;
use stage_store::Submission;

use crate::intake::{ResultsTarget, SubmissionDoc};
use crate::runtime::Runtime;

/// How long one mail may take to hand to the relay.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What became of a run's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    /// Handed to the relay for this address.
    Sent(String),
    /// Not sent, and why.
    NotSent(String),
    /// Another submission of the run has not ended yet; it sends the mail.
    Later,
    /// Already sent (or decided) for this run.
    Done,
}

/// One line per submission of the run, for the mail's body.
fn summary(all: &[Submission]) -> String {
    let mut out = String::new();
    for s in all {
        let _ = write!(out, "- {} ({}): {}", s.id, s.workflow, s.state);
        if let Some(e) = &s.error {
            let _ = write!(out, ": {e}");
        }
        out.push('\n');
        if let Some(kept) = s.data["collect"]["kept"].as_str() {
            let _ = writeln!(out, "  results kept at {kept}");
        }
        if let Ok(doc) = serde_json::from_value::<SubmissionDoc>(s.request.clone())
            && let Some(ResultsTarget::Existing { kind, id }) = &doc.results
        {
            let _ = writeln!(out, "  imported into {kind} {id}");
        }
    }
    out
}

/// The mail of a run whose submissions are `all`.
fn message(
    from: &str,
    to: &str,
    run: &str,
    all: &[Submission],
    notices: &[String],
) -> Result<Message, String> {
    let failed = all
        .iter()
        .filter(|s| s.state == stage_store::State::Failed)
        .count();
    let cancelled = all
        .iter()
        .filter(|s| s.state == stage_store::State::Cancelled)
        .count();
    let outcome = match (failed, cancelled) {
        (0, 0) => "finished".to_owned(),
        (0, c) => format!("was cancelled ({c} of {})", all.len()),
        (f, _) => format!("failed ({f} of {})", all.len()),
    };
    let mut body = format!(
        "Your biomero-stage run {run} {outcome}.\n\n{}",
        summary(all)
    );
    if !notices.is_empty() {
        body.push_str("\nAsked for and not done:\n");
        for n in notices {
            let _ = writeln!(body, "- {n}");
        }
    }
    Message::builder()
        .from(
            from.parse()
                .map_err(|e| format!("mail_from `{from}` is not an address: {e}"))?,
        )
        .to(to
            .parse()
            .map_err(|e| format!("`{to}` is not an address: {e}"))?)
        .subject(format!("biomero-stage: run {run} {outcome}"))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())
}

/// The mail of the ended run `run` (submissions `all`, every one done), sent once.
async fn send_once(rt: &Runtime, doc: &SubmissionDoc, run: &str, all: &[Submission]) -> Mail {
    let config = rt.config.current();
    let settings = &config.settings.settings;
    // a run mailed before the claim moved into the queue kept a marker file
    if settings
        .state_dir
        .join("mail")
        .join(format!("{run}.sent"))
        .exists()
    {
        return Mail::Done;
    }
    let by = format!("biomero-stage pid {}", std::process::id());
    match rt.store.claim_once(&format!("mail:{run}"), &by).await {
        Ok(true) => {}
        Ok(false) => return Mail::Done,
        Err(e) => {
            return Mail::NotSent(format!(
                "the run's mail cannot be claimed in the queue: {e}"
            ));
        }
    }
    let Some(to) = doc.options.email_to.clone() else {
        return Mail::NotSent(format!(
            "`{}` has no e-mail address in OMERO",
            doc.user.name
        ));
    };
    let Some(url) = settings.smtp_url.as_ref() else {
        return Mail::NotSent("this site configured no mail relay (smtp_url)".into());
    };
    let mail = match message(&settings.mail_from, &to, run, all, &doc.notices) {
        Ok(m) => m,
        Err(e) => return Mail::NotSent(e),
    };
    let transport = match AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose()) {
        Ok(b) => b.timeout(Some(SMTP_TIMEOUT)).build(),
        Err(e) => {
            return Mail::NotSent(format!(
                "smtp_url `{}` is not a mail relay URL: {e}",
                stage_common::redact_url(url.expose())
            ));
        }
    };
    match transport.send(mail).await {
        Ok(_) => Mail::Sent(to),
        Err(e) => Mail::NotSent(format!(
            "the mail relay refused or could not be reached: {e}"
        )),
    }
}

/// After `s` ended: sends the run's mail when it is due, and notes what happened in the
/// history of every submission of the run.
pub async fn after_end(rt: &Runtime, s: &Submission) {
    let Ok(doc) = serde_json::from_value::<SubmissionDoc>(s.request.clone()) else {
        return;
    };
    if !doc.options.email {
        return;
    }
    let run = doc.run.clone().unwrap_or_else(|| s.id.clone());
    let all = match &doc.run {
        Some(r) => crate::biomero::run_submissions(&rt.store, r).await,
        None => Ok(vec![s.clone()]),
    };
    let (mail, noted) = match all {
        Err(e) => (
            Mail::NotSent(format!("the run's submissions cannot be read: {e}")),
            vec![s.id.clone()],
        ),
        Ok(all) if all.iter().any(|o| !o.done) => (Mail::Later, Vec::new()),
        Ok(all) => (
            send_once(rt, &doc, &run, &all).await,
            all.into_iter().map(|x| x.id).collect(),
        ),
    };
    let detail = match &mail {
        Mail::Later | Mail::Done => return,
        Mail::Sent(to) => {
            tracing::info!(to, "run notification sent");
            json!({"mail": "sent", "to": to})
        }
        Mail::NotSent(why) => {
            tracing::warn!(reason = %why, "run notification not sent");
            json!({"mail": "not sent", "reason": why})
        }
    };
    for id in noted {
        if let Err(e) = rt.store.note(&id, "notify", &detail).await {
            tracing::warn!(id, error = %e, "cannot note the notification");
        }
    }
}
