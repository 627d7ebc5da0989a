//! A BIOMERO run request, accepted: the user's session checked against OMERO,
//! the inputs read, batches expanded, the destination found or created as the
//! user, every submission validated, and only then all of them queued.
//!
//! Order matters: nothing is created in OMERO and nothing is queued until
//! every key, workflow, parameter and input kind has passed, so a refused
//! request leaves no trace anywhere.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use stage_config::Snapshot;
use stage_config::settings::Secret;
use stage_source::omero::{ContainerKind, EventContext, SessionError, UserSession};

use super::translate::{self, Destination, RunPlan, Script};
use std::collections::BTreeMap;

use crate::versions::OnCluster;

use crate::intake::{
    self, AttachedFile, EnqueueError, FieldError, Inputs, IntakeError, OmeroObject, OmeroUser,
    Options, ResultsTarget, SubmissionDoc,
};

/// A run request as the drop-in OMERO scripts send it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Format version (1).
    pub version: u32,
    /// The run's id (idempotency key); generated when absent.
    #[serde(default)]
    pub run: Option<String>,
    /// The OMERO script the inputs were given to, by its exact name.
    pub script: String,
    /// `client.getInputs(unwrap=True)`.
    pub inputs: Map<String, Value>,
    /// The group the user asked to run in (OMERO.biomero's `active_group_id`), checked.
    #[serde(default)]
    pub group_id: Option<i64>,
    /// The user the caller believes it acts for, checked.
    #[serde(default)]
    pub user: Option<String>,
    /// The script stays for the run and, when it has ended, makes the OMERO.tables and ROIs in
    /// the user's session (the drop-in scripts' attended mode).
    #[serde(default)]
    pub attended: bool,
}

/// Where OMERO.web is, to join sessions.
#[derive(Debug, Clone)]
pub struct OmeroWeb {
    /// Base URL.
    pub url: String,
    /// Server id.
    pub server_id: u32,
    /// Request timeout.
    pub timeout: Duration,
}

/// A run, queued.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AcceptedRun {
    /// The run id.
    pub run: String,
    /// The user and group, as OMERO says.
    pub user: String,
    /// The group.
    pub group: String,
    /// Its submissions: `(id, workflow, created)`.
    pub submissions: Vec<(String, String, bool)>,
    /// Containers created in OMERO for the results: `(kind, id, name)`.
    pub created: Vec<(String, i64, String)>,
    /// What is asked for and not done, each saying why.
    pub notices: Vec<String>,
    /// One line for the OMERO script's message.
    pub message: String,
}

/// Why a run request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Not a run request.
    #[error("the run request is not valid: {0}")]
    Malformed(String),
    /// No session key came with the request.
    #[error(
        "the run request carries no OMERO session (header X-OMERO-Session-Key): runs are made from OMERO, as the logged-in user"
    )]
    NoSession,
    /// OMERO refused the session, or the request claims another identity.
    #[error("{0}")]
    Identity(String),
    /// OMERO could not be asked.
    #[error("OMERO could not check the session: {0}")]
    Unavailable(String),
    /// The inputs are wrong for this configuration; each problem names its key.
    #[error("the run was refused, nothing was queued: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Refused(Vec<FieldError>),
    /// An input could not be checked now (the cluster did not answer which container
    /// versions it has); each names its key. Asking again later may succeed.
    #[error("the run could not be checked, nothing was queued: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unchecked(Vec<FieldError>),
    /// A submission of this run id exists with other content.
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
    /// The daemon has no OMERO.web to check sessions with.
    #[error(
        "omero_url is not set: biomero-stage cannot check OMERO sessions, so it takes no BIOMERO run requests"
    )]
    NotConfigured,
}

fn session_error(e: SessionError) -> RunError {
    match e {
        SessionError::Refused { .. } => RunError::Identity(e.to_string()),
        other => RunError::Unavailable(other.to_string()),
    }
}

fn refused(field: &str, message: impl Into<String>) -> RunError {
    RunError::Refused(vec![FieldError {
        field: field.to_owned(),
        message: message.into(),
    }])
}

/// Checks the request's claims against what OMERO says of the session.
pub fn check_identity(req: &RunRequest, ctx: &EventContext) -> Result<(), RunError> {
    if let Some(user) = &req.user
        && *user != ctx.user_name
    {
        return Err(RunError::Identity(format!(
            "the request claims user `{user}`, but the session belongs to `{}`; a run is made as the session's own user",
            ctx.user_name
        )));
    }
    if let Some(g) = req.group_id {
        if !ctx.member_of_groups.contains(&g) {
            return Err(RunError::Identity(format!(
                "`{}` is not a member of group {g}; choose one of the user's groups in OMERO",
                ctx.user_name
            )));
        }
        if g != ctx.group_id {
            return Err(RunError::Identity(format!(
                "the session acts in group {} (`{}`), not in group {g}: switch group in OMERO.web and run again",
                ctx.group_id, ctx.group_name
            )));
        }
    }
    Ok(())
}

fn check_run_id(run: &str) -> Result<(), RunError> {
    // `<run>-<n>` must stay a submission id (at most 64 characters)
    if run.is_empty()
        || run.len() > 56
        || run.starts_with('.')
        || !run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(refused(
            "run",
            "a run id has 1 to 56 letters, digits, '-' or '_'",
        ));
    }
    Ok(())
}

/// The intake's field names, as the script's keys.
fn as_key(workflow: &str, e: FieldError) -> FieldError {
    let field = if let Some(p) = e.field.strip_prefix("parameters.") {
        format!("{workflow}_|_{p}")
    } else if let Some(p) = e.field.strip_prefix("files.") {
        format!("{workflow}_|_FILE_{p}")
    } else if e.field == "parameters" {
        format!("{workflow}_|_*")
    } else if e.field.starts_with("inputs") {
        format!("{} / {}", super::keys::DATA_TYPE, super::keys::IDS)
    } else if e.field == "workflow_version" {
        format!("{workflow}_Version")
    } else if e.field == "workflow" {
        workflow.to_owned()
    } else if e.field.starts_with("results") {
        "Dataset_ID / Screen_ID / 3a)".to_owned()
    } else {
        e.field
    };
    FieldError {
        field,
        message: e.message,
    }
}

/// The batches of the selection: the ids as given, or, for the batched script,
/// BIOMERO's split (Datasets into their images; Plates into their fields unless
/// the results go to a Screen).
async fn batches(
    plan: &RunPlan,
    session: &UserSession,
) -> Result<Vec<(String, Vec<i64>)>, RunError> {
    let Some(size) = plan.batch_size else {
        return Ok(vec![(
            plan.selection.kind.clone(),
            plan.selection.ids.clone(),
        )]);
    };
    let to_screen = !matches!(plan.screen, Destination::FromInputs);
    let (kind, ids) = match plan.selection.kind.as_str() {
        "Image" => ("Image", plan.selection.ids.clone()),
        "Plate" if to_screen => ("Plate", plan.selection.ids.clone()),
        "Dataset" | "Plate" => {
            let mut images = Vec::new();
            for id in &plan.selection.ids {
                let found = if plan.selection.kind == "Dataset" {
                    session.dataset_images(*id).await
                } else {
                    session.plate_images(*id).await
                };
                match found {
                    Ok(v) => images.extend(v),
                    Err(SessionError::NotFound { kind, id }) => {
                        return Err(refused(
                            super::keys::IDS,
                            format!("{kind} {id} does not exist or is not visible to you"),
                        ));
                    }
                    Err(e) => return Err(session_error(e)),
                }
            }
            if images.is_empty() {
                return Err(refused(
                    super::keys::IDS,
                    format!(
                        "no image found in {} {:?}",
                        plan.selection.kind, plan.selection.ids
                    ),
                ));
            }
            ("Image", images)
        }
        other => {
            return Err(refused(
                super::keys::DATA_TYPE,
                format!("SLURM_Run_Workflow_Batched.py cannot batch a {other}; select its Plates"),
            ));
        }
    };
    Ok(ids
        .chunks(size)
        .map(|c| (kind.to_owned(), c.to_vec()))
        .collect())
}

/// The container results of `kind` go to, found or created as the user.
async fn destination(
    session: &UserSession,
    kind: ContainerKind,
    d: &Destination,
    run: &str,
    created: &mut Vec<(String, i64, String)>,
) -> Result<Option<i64>, RunError> {
    let key = match kind {
        ContainerKind::Dataset => super::keys::DATASET_ID,
        ContainerKind::Screen => super::keys::SCREEN_ID,
    };
    match d {
        Destination::FromInputs => Ok(None),
        Destination::Id(id) => {
            let c = session.container(kind, *id).await.map_err(|e| match e {
                SessionError::NotFound { .. } => refused(key, e.to_string()),
                other => session_error(other),
            })?;
            if c.group_id != session.context().group_id {
                return Err(refused(
                    key,
                    format!(
                        "{} {id} belongs to group {}, not to the group the run is in ({})",
                        kind.name(),
                        c.group_id,
                        session.context().group_id
                    ),
                ));
            }
            Ok(Some(c.id))
        }
        Destination::Named { name, duplicate } => {
            let (c, new) = session
                .find_or_create(
                    kind,
                    name,
                    *duplicate,
                    &format!("Results of biomero-stage run {run}"),
                )
                .await
                .map_err(session_error)?;
            if new {
                created.push((kind.name().to_owned(), c.id, c.name.clone()));
            }
            Ok(Some(c.id))
        }
    }
}

/// Downloads every selected workflow's attached files into `<dir>/<workflow>/<input>/`, as
/// the user: `workflow → input → files`.
async fn download_files(
    plan: &RunPlan,
    session: &UserSession,
    dir: &std::path::Path,
    config: &Snapshot,
) -> Result<BTreeMap<String, BTreeMap<String, Vec<AttachedFile>>>, RunError> {
    let max = config.settings.settings.max_stage_bytes;
    let mut out = BTreeMap::new();
    for wf in &plan.workflows {
        let mut by_input = BTreeMap::new();
        for (input, ids) in &wf.files {
            let key = format!(
                "{}{}{}{input}",
                wf.key,
                super::keys::PARAM_SEPARATOR,
                super::keys::FILE_PREFIX
            );
            let mut files: Vec<AttachedFile> = Vec::new();
            for id in ids {
                let name = session
                    .download_annotation(*id, &dir.join(&wf.key).join(input), max)
                    .await
                    .map_err(|e| match e {
                        SessionError::NotFound { .. } => refused(&key, e.to_string()),
                        SessionError::Protocol { ref reason, .. }
                            if reason.contains("larger than") =>
                        {
                            refused(&key, e.to_string())
                        }
                        other => session_error(other),
                    })?;
                if files.iter().any(|f| f.name == name) {
                    return Err(refused(
                        &key,
                        format!(
                            "two of the files are named `{name}`; they would overwrite each other"
                        ),
                    ));
                }
                files.push(AttachedFile {
                    annotation: *id,
                    name,
                });
            }
            by_input.insert(input.clone(), files);
        }
        out.insert(wf.key.clone(), by_input);
    }
    Ok(out)
}

/// Links (or copies) the downloaded files into each accepted submission's `data/in/<input>/`.
fn place_files(
    accepted: &[intake::Accepted],
    intake_dir: &std::path::Path,
    staging: &std::path::Path,
) -> Result<(), RunError> {
    let io = |p: &std::path::Path, e: std::io::Error| {
        RunError::Malformed(format!("staging the attached files: {}: {e}", p.display()))
    };
    for a in accepted {
        for (input, files) in &a.doc.files {
            let to_dir = staging
                .join(&a.id)
                .join(stage_source::stage::INPUTS_DIR)
                .join(input);
            std::fs::create_dir_all(&to_dir).map_err(|e| io(&to_dir, e))?;
            for f in files {
                let from = intake_dir.join(&a.doc.workflow).join(input).join(&f.name);
                let to = to_dir.join(&f.name);
                let _ = std::fs::remove_file(&to);
                if std::fs::hard_link(&from, &to).is_err() {
                    std::fs::copy(&from, &to).map_err(|e| io(&to, e))?;
                }
            }
        }
    }
    Ok(())
}

/// Accepts `req` made with the OMERO session `key`: checks, then queues every submission.
pub async fn accept(
    req: RunRequest,
    key: Option<Secret>,
    omero: Option<&OmeroWeb>,
    on: OnCluster<'_>,
    config: &Snapshot,
    store: &stage_store::Store,
) -> Result<AcceptedRun, RunError> {
    if req.version != 1 {
        return Err(refused(
            "version",
            format!(
                "version {} is not understood; this biomero-stage reads version 1",
                req.version
            ),
        ));
    }
    let script = Script::from_name(&req.script).ok_or_else(|| {
        refused(
            "script",
            format!(
                "`{}` is not SLURM_Run_Workflow.py or SLURM_Run_Workflow_Batched.py",
                req.script
            ),
        )
    })?;
    let run = match &req.run {
        Some(r) => {
            check_run_id(r)?;
            r.clone()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let key = key
        .filter(|k| !k.expose().trim().is_empty())
        .ok_or(RunError::NoSession)?;
    let omero = omero.ok_or(RunError::NotConfigured)?;
    // identity first: nothing about the request is looked at for an unknown session
    let session = UserSession::join(&omero.url, omero.server_id, &key, omero.timeout)
        .await
        .map_err(session_error)?;
    check_identity(&req, session.context())?;
    queue_run(
        &session,
        &Run {
            script,
            inputs: &req.inputs,
            id: &run,
            detached: None,
            notices: Vec::new(),
            attended: req.attended,
        },
        on,
        config,
        store,
    )
    .await
}

/// A run to queue, whoever asked for it.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The script the inputs were given to.
    pub script: Script,
    /// The script's inputs.
    pub inputs: &'a Map<String, Value>,
    /// The run id (its submissions are `<id>-<n>`).
    pub id: &'a str,
    /// The detached BIOMERO run it is, when it is one.
    pub detached: Option<intake::DetachedLink>,
    /// Notices of the caller's own, for the run's history.
    pub notices: Vec<String>,
    /// The OMERO script stays and makes the tables and ROIs ([`RunRequest::attended`]).
    pub attended: bool,
}

/// The container version each selected workflow that asked for another than the configured
/// one runs, as the cluster spells it; one listing of the cluster for all of them, and only
/// when one asks. A version the cluster does not have is refused by its key; when the cluster
/// cannot be asked, the run is [`RunError::Unchecked`] (a detached run is tried again).
async fn chosen_versions(
    plan: &translate::RunPlan,
    on: OnCluster<'_>,
    config: &Snapshot,
) -> Result<std::collections::BTreeMap<String, String>, RunError> {
    let mut chosen = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    let mut found = None;
    for wf in &plan.workflows {
        let (Some(asked), Some(resolved)) = (&wf.version, config.registry.get(&wf.key)) else {
            continue;
        };
        if found.is_none() {
            found = Some(on.versions(config).await);
        }
        match crate::versions::resolve(resolved, asked, found.as_ref().map(|r| r.as_deref())) {
            Ok(v) => {
                chosen.insert(wf.key.clone(), v);
            }
            Err(message) => errors.push(FieldError {
                field: format!("{}_Version", wf.key),
                message,
            }),
        }
    }
    match found {
        _ if errors.is_empty() => Ok(chosen),
        Some(Err(_)) => Err(RunError::Unchecked(errors)),
        _ => Err(RunError::Refused(errors)),
    }
}

/// Reads `r`'s inputs, expands the batches, finds or creates the destination and queues
/// every submission, with `session` acting as the run's user; nothing is created or queued
/// unless every submission passes.
pub async fn queue_run(
    session: &UserSession,
    r: &Run<'_>,
    on: OnCluster<'_>,
    config: &Snapshot,
    store: &stage_store::Store,
) -> Result<AcceptedRun, RunError> {
    let (script, run) = (r.script, r.id.to_owned());
    let ctx = session.context().clone();
    let mut plan = translate::translate(script, r.inputs, config).map_err(RunError::Refused)?;
    if r.attended {
        plan.attended();
    }
    let chosen = chosen_versions(&plan, on, config).await?;
    let batches = batches(&plan, session).await?;
    let count = plan.workflows.len() * batches.len();
    let most = usize::try_from(config.settings.settings.max_run_submissions).unwrap_or(usize::MAX);
    if count > most {
        return Err(refused(
            super::keys::BATCH_SIZE,
            format!(
                "{count} submissions (workflows × batches); a run makes at most {most} (max_run_submissions): raise the batch size"
            ),
        ));
    }
    let mut notices = r.notices.clone();
    notices.extend(plan.notices.iter().cloned());
    let email_to = if plan.email {
        let address = session.email().await.map_err(session_error)?;
        if address.is_none() {
            notices.push(format!(
                "`{}`: no mail can be sent: `{}` has no e-mail address in OMERO",
                super::keys::EMAIL,
                ctx.user_name
            ));
        } else if config.settings.settings.smtp_url.is_none() {
            notices.push(format!(
                "`{}`: no mail will be sent: this site configured no mail relay (smtp_url)",
                super::keys::EMAIL
            ));
        }
        address
    } else {
        None
    };
    let user = OmeroUser {
        name: ctx.user_name.clone(),
        group: ctx.group_name.clone(),
        id: Some(ctx.user_id),
        group_id: Some(ctx.group_id),
    };
    let staging = config.settings.settings.staging_dir();
    let intake_dir = staging.join(format!(".intake-{run}"));
    let downloaded = match download_files(&plan, session, &intake_dir, config).await {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&intake_dir);
            return Err(e);
        }
    };
    let doc =
        |n: usize, wf: &translate::Selected, kind: &str, ids: &[i64], results| SubmissionDoc {
            version: intake::FORMAT_VERSION,
            id: Some(format!("{run}-{n}")),
            workflow: wf.key.clone(),
            workflow_version: chosen.get(&wf.key).cloned(),
            inputs: Inputs {
                omero: ids
                    .iter()
                    .map(|id| OmeroObject {
                        kind: kind.to_owned(),
                        id: *id,
                    })
                    .collect(),
                paths: Vec::new(),
            },
            parameters: wf.parameters.clone(),
            user: user.clone(),
            results,
            options: Options {
                prep_only: None,
                keep_remote_data: plan.keep_remote_data,
                ngff_version: plan.ngff_version,
                email: plan.email,
                email_to: email_to.clone(),
                rename: plan.rename.clone(),
                attach: plan.attach,
            },
            run: Some(run.clone()),
            files: downloaded.get(&wf.key).cloned().unwrap_or_default(),
            notices: notices.clone(),
            detached: r.detached,
        };
    // every submission must pass before anything is created or queued
    let mut errors = Vec::new();
    let mut n = 0;
    for wf in &plan.workflows {
        for (kind, ids) in &batches {
            n += 1;
            if let Err(e) = intake::validate(doc(n, wf, kind, ids, None), config) {
                match e {
                    IntakeError::Invalid(fs) => {
                        errors.extend(fs.into_iter().map(|f| as_key(&wf.key, f)));
                    }
                    other => return Err(RunError::Malformed(other.to_string())),
                }
            }
        }
    }
    if !errors.is_empty() {
        errors.dedup();
        let _ = std::fs::remove_dir_all(&intake_dir);
        return Err(RunError::Refused(errors));
    }
    let mut created = Vec::new();
    let mut targets = std::collections::BTreeMap::new();
    for wf in &plan.workflows {
        let d = match wf.destination_kind {
            ContainerKind::Dataset => &plan.dataset,
            ContainerKind::Screen => &plan.screen,
        };
        if !targets.contains_key(wf.destination_kind.name()) {
            let id = destination(session, wf.destination_kind, d, &run, &mut created).await?;
            targets.insert(wf.destination_kind.name(), id);
        }
    }
    let mut accepted = Vec::new();
    let mut n = 0;
    for wf in &plan.workflows {
        let results = targets
            .get(wf.destination_kind.name())
            .copied()
            .flatten()
            .map(|id| ResultsTarget::Existing {
                kind: wf.destination_kind.name().to_owned(),
                id,
            });
        for (kind, ids) in &batches {
            n += 1;
            let a =
                intake::validate(doc(n, wf, kind, ids, results.clone()), config).map_err(|e| {
                    match e {
                        IntakeError::Invalid(fs) => {
                            RunError::Refused(fs.into_iter().map(|f| as_key(&wf.key, f)).collect())
                        }
                        other => RunError::Malformed(other.to_string()),
                    }
                })?;
            accepted.push(a);
        }
    }
    // the attached files into each submission's staging folder, `data/in/<input>/`
    let placed = place_files(&accepted, &intake_dir, &staging);
    let _ = std::fs::remove_dir_all(&intake_dir);
    placed?;
    let mut submissions = Vec::new();
    for a in accepted {
        let workflow = a.doc.workflow.clone();
        // what is asked for and not done is in the intake event, queued with the submission
        let (s, new) = intake::enqueue(store, a).await?;
        submissions.push((s.id, workflow, new));
    }
    let message = format!(
        "biomero-stage run {run}: {} submission(s) queued for {} in group {}{}",
        submissions.len(),
        ctx.user_name,
        ctx.group_name,
        if notices.is_empty() {
            String::new()
        } else {
            format!("; {} notice(s) (see the run's history)", notices.len())
        }
    );
    tracing::info!(run, user = %ctx.user_name, group = %ctx.group_name, submissions = submissions.len(), "BIOMERO run accepted");
    Ok(AcceptedRun {
        run,
        user: ctx.user_name,
        group: ctx.group_name,
        submissions,
        created,
        notices,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> EventContext {
        EventContext {
            user_id: 60,
            user_name: "alice".into(),
            group_id: 5,
            group_name: "Lab A".into(),
            member_of_groups: vec![5, 7],
            is_admin: false,
        }
    }

    fn req(user: Option<&str>, group_id: Option<i64>) -> RunRequest {
        RunRequest {
            version: 1,
            run: None,
            script: "SLURM_Run_Workflow.py".into(),
            inputs: Map::new(),
            group_id,
            user: user.map(ToOwned::to_owned),
            attended: false,
        }
    }

    #[test]
    fn claims_are_checked_against_the_session() {
        assert!(check_identity(&req(None, None), &ctx()).is_ok());
        assert!(check_identity(&req(Some("alice"), Some(5)), &ctx()).is_ok());
        let forged = check_identity(&req(Some("root"), None), &ctx())
            .unwrap_err()
            .to_string();
        assert!(
            forged.contains("root") && forged.contains("alice"),
            "{forged}"
        );
        let foreign = check_identity(&req(None, Some(9)), &ctx())
            .unwrap_err()
            .to_string();
        assert!(foreign.contains("not a member of group 9"), "{foreign}");
        let other = check_identity(&req(None, Some(7)), &ctx())
            .unwrap_err()
            .to_string();
        assert!(other.contains("acts in group 5"), "{other}");
    }

    /// The demo site's cluster is this host: its image folder is real.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn a_chosen_version_is_looked_up_on_the_cluster_once_and_refused_by_its_key() {
        let d = tempfile::tempdir().unwrap();
        let config = crate::test_site::demo_snapshot(d.path()).await;
        crate::test_site::put_containers(&config, "threshold", &["v0.9.0"]);
        let (clusters, cache) = Default::default();
        let on = OnCluster {
            clusters: &clusters,
            cache: &cache,
        };
        let plan = |version: &str| {
            let inputs = serde_json::json!({
                "Data_Type": "Image", "IDs": [3], "threshold": true, "threshold_Version": version,
                "threshold_zarr": true,
            });
            translate::translate(Script::Run, inputs.as_object().unwrap(), &config).unwrap()
        };
        let chosen = chosen_versions(&plan("0.9.0"), on, &config).await.unwrap();
        // the other workflow asked for nothing: it runs its configured version
        assert_eq!(
            chosen,
            BTreeMap::from([("threshold".to_owned(), "v0.9.0".to_owned())])
        );
        let Err(RunError::Refused(refused)) = chosen_versions(&plan("v0.8.0"), on, &config).await
        else {
            panic!("v0.8.0 is not refused");
        };
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].field, "threshold_Version");
        assert!(
            refused[0].message.contains("v0.8.0") && refused[0].message.contains("v0.9.0"),
            "{refused:?}"
        );
    }
}
