//! `kubectl roster sync-now`: a fresh Sync Now token and, with `--wait`, the run's outcome.
use std::collections::HashSet;
use std::time::Duration;

use anyhow::bail;
use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use super::history::db_run;
use super::{Ctx, annotate, resolve_schedule};
use crate::api::{RunResult, RunStatus, SYNC_NOW_ANNOTATION, SyncSchedule};
use crate::output::progress::Progress;
use crate::output::runs::RunRow;
use crate::output::{OutputFormat, exit, format_duration};

/// The step while the pod runs (the sync reports its counts when it has finished).
const FETCHING: &str =
    "fetching: streaming the roster from Clever, then applying it in one transaction";

/// How often `--wait` looks at the schedule, its Job and pod.
const POLL: Duration = Duration::from_millis(500);

/// What became of a Sync Now request, as seen in a SyncSchedule's status.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The run the request started has finished.
    Finished(RunStatus),
    /// The controller handled the token without starting a run.
    Rejected {
        reason: String,
        available_after: Option<Timestamp>,
    },
}

/// The outcome of the request with `token`, or `None` while it is pending or its run still runs.
/// `known_runs` and `known_active` are the run ids and active Job names seen before the request: a
/// handled token with a new run means accepted; with no new run and no new active Job, rejected.
pub fn sync_now_outcome(
    schedule: &SyncSchedule,
    token: &str,
    known_runs: &HashSet<String>,
    known_active: &HashSet<String>,
) -> Option<Outcome> {
    let status = schedule.status.as_ref()?;
    let sync_now = status.sync_now.as_ref()?;
    if sync_now.last_handled_token.as_deref() != Some(token) {
        return None;
    }
    let new_run = status
        .last_run
        .iter()
        .chain(status.recent_runs.iter())
        .find(|r| !known_runs.contains(&r.run_id));
    match new_run {
        Some(run) => {
            let finished = matches!(
                run.result,
                Some(RunResult::Succeeded | RunResult::Failed | RunResult::Held)
            );
            finished.then(|| Outcome::Finished(run.clone()))
        }
        None if status.active.iter().any(|a| !known_active.contains(a)) => None,
        None => Some(Outcome::Rejected {
            reason: sync_now.reason.clone(),
            available_after: sync_now.available_after.as_ref().map(|t| t.0),
        }),
    }
}

fn new_token() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    let suffix: String = (0..4)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!(
        "{}-{suffix}",
        Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// The result document of `sync-now -o json|yaml` (kind `SyncNowResult`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncNowResult {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub schedule: String,
    pub token: String,
    /// `Requested` (without --wait), `Succeeded`, `Failed`, `Held`, `Rejected` or `TimedOut`.
    pub outcome: String,
    /// The exit code (README "Exit codes").
    pub exit_code: u8,
    /// The rejection reason.
    pub reason: Option<String>,
    pub available_after: Option<Timestamp>,
    pub run: Option<RunRow>,
    /// The step lines printed while waiting.
    pub steps: Vec<String>,
}

/// What `--wait` has seen so far, to print each step once.
#[derive(Default)]
struct Seen {
    handled: bool,
    job: Option<String>,
    pod_phase: Option<String>,
}

/// Prints the steps the schedule, its new Job and the Job's pod show now.
#[allow(clippy::too_many_arguments)]
async fn observe(
    client: &Client,
    ns: &str,
    schedule: &SyncSchedule,
    token: &str,
    known_runs: &HashSet<String>,
    known_active: &HashSet<String>,
    seen: &mut Seen,
    progress: &mut Progress,
) {
    let Some(status) = schedule.status.as_ref() else {
        return;
    };
    let handled = status
        .sync_now
        .as_ref()
        .is_some_and(|sn| sn.last_handled_token.as_deref() == Some(token));
    if !handled {
        return;
    }
    let new_run = status
        .last_run
        .iter()
        .chain(status.recent_runs.iter())
        .find(|r| !known_runs.contains(&r.run_id));
    let new_job = status
        .active
        .iter()
        .find(|a| !known_active.contains(*a))
        .cloned()
        .or_else(|| new_run.map(|r| r.job.clone()));
    if !seen.handled && new_job.is_some() {
        seen.handled = true;
        progress.step("token handled: the controller accepted the request");
    }
    let Some(job) = new_job else {
        return;
    };
    if seen.job.is_none() {
        match new_run {
            Some(r) => progress.step(format!("Job created: {job} (run {})", r.run_id)),
            None => progress.step(format!("Job created: {job}")),
        }
        seen.job = Some(job.clone());
    }
    // The pod: best effort (a district viewer may not list pods).
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let Ok(list) = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
    else {
        return;
    };
    let Some(pod) = list
        .items
        .iter()
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
    else {
        return;
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|st| st.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    if seen.pod_phase.as_deref() == Some(phase.as_str()) {
        return;
    }
    let pod_name = pod.name_any();
    match phase.as_str() {
        "Pending" => progress.step(format!("pod created: {pod_name} (Pending)")),
        "Running" => {
            progress.step(format!("pod running: {pod_name}"));
            progress.step(
                "fetching: streaming the roster from Clever, then applying it in one transaction",
            );
        }
        other => {
            if seen.pod_phase.as_deref() != Some("Running") {
                // It ran between two looks.
                progress.step(format!("pod running: {pod_name}"));
                progress.step(FETCHING);
            }
            let exit = pod
                .status
                .as_ref()
                .and_then(|st| st.container_statuses.as_ref())
                .and_then(|cs| {
                    cs.iter()
                        .find_map(|c| c.state.as_ref()?.terminated.as_ref())
                })
                .map(|t| format!(", exit code {}", t.exit_code))
                .unwrap_or_default();
            progress.step(format!(
                "pod finished: {pod_name} ({other}{exit}); recording the result"
            ));
        }
    }
    seen.pod_phase = Some(phase);
}

pub async fn sync_now(
    ctx: &Ctx,
    name: &str,
    wait: bool,
    timeout: Duration,
    quiet: bool,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let (client, ns) = (&ctx.client, ctx.ns.as_str());
    let printer = ctx.printer(format);
    let time = printer.time.clone();
    let schedule = resolve_schedule(client, ns, name).await?;
    let sched_name = schedule.name_any();
    let api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    let status = schedule.status.clone().unwrap_or_default();
    let known_runs: HashSet<String> = status
        .last_run
        .iter()
        .chain(status.recent_runs.iter())
        .map(|r| r.run_id.clone())
        .collect();
    let known_active: HashSet<String> = status.active.iter().cloned().collect();
    if let Some(sn) = status.sync_now.as_ref().filter(|sn| !sn.available) {
        eprintln!(
            "note: status says Sync Now is not available ({}); the controller will likely reject this request",
            sn.reason
        );
    }
    let token = new_token();
    let requested_at = Timestamp::now();
    annotate(client, ns, &sched_name, SYNC_NOW_ANNOTATION, &token).await?;
    let mut result = SyncNowResult {
        api_version: crate::output::API_VERSION,
        kind: "SyncNowResult",
        namespace: ns.to_string(),
        schedule: sched_name.clone(),
        token: token.clone(),
        outcome: "Requested".into(),
        exit_code: exit::OK,
        reason: None,
        available_after: None,
        run: None,
        steps: Vec::new(),
    };
    let machine = format.is_machine();
    let finish = |mut result: SyncNowResult, steps: &[String]| -> anyhow::Result<u8> {
        result.steps = steps.to_vec();
        if machine {
            print!("{}", printer.render_doc(&result)?);
        }
        Ok(result.exit_code)
    };
    if !wait {
        if !machine {
            println!("Sync Now requested for syncschedule/{sched_name} in {ns} (token {token})");
        }
        return finish(result, &[]);
    }
    let mut progress = Progress::with_stream(quiet, machine);
    progress.step(format!(
        "Sync Now requested for syncschedule/{sched_name} in {ns} (token {token})"
    ));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Seen::default();
    let mut read_failed = false;
    let schedule = loop {
        let current = match api.get_opt(&sched_name).await {
            Ok(Some(current)) => Some(current),
            Ok(None) => bail!("SyncSchedule {ns}/{sched_name} was deleted while waiting"),
            Err(kube::Error::Api(status)) if matches!(status.code, 401 | 403) => {
                bail!(
                    "cannot read SyncSchedule {ns}/{sched_name}: {}",
                    status.message
                )
            }
            // A blip of the API server is waited out (until the deadline), not a failure.
            Err(err) => {
                if !read_failed {
                    progress.clear_spinner();
                    eprintln!(
                        "note: cannot read SyncSchedule {ns}/{sched_name} ({err}); still waiting"
                    );
                    read_failed = true;
                }
                None
            }
        };
        if let Some(current) = current {
            read_failed = false;
            observe(
                client,
                ns,
                &current,
                &token,
                &known_runs,
                &known_active,
                &mut seen,
                &mut progress,
            )
            .await;
            if sync_now_outcome(&current, &token, &known_runs, &known_active).is_some() {
                break current;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            progress.clear_spinner();
            let doing = if seen.job.is_some() {
                "the run to finish"
            } else {
                "the controller to handle the request"
            };
            eprintln!(
                "timed out after {} waiting for {doing} (token {token}); \
                 check `kubectl roster status {sched_name} -n {ns}`, `kubectl roster events {sched_name} -n {ns}` and that the rostersync controller is running",
                format_duration(timeout.as_secs() as i64)
            );
            result.outcome = "TimedOut".into();
            result.exit_code = exit::TIMED_OUT;
            return finish(result, progress.lines());
        }
        progress.tick();
        tokio::time::sleep(
            POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
        )
        .await;
    };
    progress.clear_spinner();
    match sync_now_outcome(&schedule, &token, &known_runs, &known_active) {
        Some(Outcome::Rejected {
            reason,
            available_after,
        }) => {
            progress.step(format!(
                "token handled: the controller rejected the request ({reason})"
            ));
            let event = rejection_event(client, ns, &sched_name, requested_at).await;
            eprintln!("Sync Now was rejected: {reason}");
            if let Some(message) = &event {
                eprintln!("  {message}");
            }
            match available_after {
                Some(t) => eprintln!("  Sync Now is available again at {}", time.both(t)),
                None => eprintln!(
                    "  Sync Now becomes available again after the next scheduled run, or after a failed run"
                ),
            }
            result.outcome = "Rejected".into();
            result.exit_code = exit::REJECTED;
            result.reason = Some(reason);
            result.available_after = available_after;
            finish(result, progress.lines())
        }
        Some(Outcome::Finished(run)) => {
            let outcome = run.result.map(|r| r.as_str()).unwrap_or("Unknown");
            let took = match (&run.started_at, &run.finished_at) {
                (Some(s), Some(f)) => {
                    format!(" in {}", format_duration(f.0.as_second() - s.0.as_second()))
                }
                _ => String::new(),
            };
            let connection =
                crate::run::ConnectionKey::new(ns, &schedule.spec.connection_ref.name).ok();
            let record = match &connection {
                Some(key) => db_run(key, &run.run_id).await,
                None => None,
            };
            // The record's own duration (milliseconds) when Postgres is reachable.
            let took = match record.as_ref().and_then(|r| r.duration_ms) {
                Some(ms) => format!(
                    " in {}",
                    crate::output::time::format_elapsed(Duration::from_millis(ms))
                ),
                None => took,
            };
            let mut line = format!(
                "result: Sync {outcome}: run {} (job {}){took}",
                run.run_id, run.job
            );
            let counts = record.as_ref().map(|r| r.counts.describe());
            if !run.summary.is_empty() {
                line.push_str(&format!("; {}", run.summary));
            }
            if let Some(counts) = counts
                .as_ref()
                .filter(|c| !run.summary.contains(c.as_str()))
            {
                line.push_str(&format!("; counts: {counts}"));
            }
            if quiet && !machine {
                println!("{line}");
            }
            progress.step(line);
            result.run = Some(match &record {
                Some(r) => RunRow::from_record(r),
                None => RunRow::from_status(
                    &format!("{ns}/{}", schedule.spec.connection_ref.name),
                    &run,
                ),
            });
            result.outcome = outcome.to_string();
            result.exit_code = match run.result {
                Some(RunResult::Succeeded) => exit::OK,
                Some(RunResult::Held) => {
                    eprintln!(
                        "the run is held by the removal guard; review it, then: kubectl roster approve {sched_name} {} -n {ns}",
                        run.run_id
                    );
                    exit::HELD
                }
                _ => exit::FAILED,
            };
            finish(result, progress.lines())
        }
        None => bail!("the controller handled token {token} but its status shows no outcome"),
    }
}

/// The message of the newest `SyncNowRejected` Event of the schedule since `since`, if readable.
async fn rejection_event(
    client: &Client,
    ns: &str,
    name: &str,
    since: Timestamp,
) -> Option<String> {
    use k8s_openapi::api::core::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(&format!(
        "involvedObject.name={name},involvedObject.kind=SyncSchedule,reason=SyncNowRejected"
    ));
    let events = api.list(&lp).await.ok()?.items;
    let cutoff = since.as_second() - 5;
    events
        .into_iter()
        .filter_map(|e| {
            let t = e
                .event_time
                .as_ref()
                .map(|t| t.0)
                .or(e.last_timestamp.as_ref().map(|t| t.0))
                .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
            (t.as_second() >= cutoff).then_some((t, e.message.unwrap_or_default()))
        })
        .max_by_key(|(t, _)| *t)
        .map(|(_, m)| m)
}
