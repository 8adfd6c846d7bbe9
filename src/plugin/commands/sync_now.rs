//! `kubectl roster sync-now`: a fresh Sync Now token and, with `--wait`, the run's outcome.
use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::history::db_run;
use super::{annotate, resolve_schedule};
use crate::api::{RunResult, RunStatus, SYNC_NOW_ANNOTATION, SyncSchedule};
use crate::plugin::format::{format_duration, relative};
use crate::plugin::{EXIT_FAILED, EXIT_TIMEOUT};

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
    use rand::Rng;
    let mut rng = rand::rng();
    let suffix: String = (0..4)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!(
        "{}-{suffix}",
        Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ")
    )
}

pub async fn sync_now(
    client: &Client,
    ns: &str,
    name: &str,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<u8> {
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
    println!("Sync Now requested for syncschedule/{sched_name} in {ns} (token {token})");
    if !wait {
        return Ok(0);
    }

    let cond = {
        let token = token.clone();
        let known_runs = known_runs.clone();
        let known_active = known_active.clone();
        move |obj: Option<&SyncSchedule>| {
            obj.and_then(|s| sync_now_outcome(s, &token, &known_runs, &known_active))
                .is_some()
        }
    };
    let waited = tokio::time::timeout(
        timeout,
        kube::runtime::wait::await_condition(api.clone(), &sched_name, cond),
    )
    .await;
    let schedule = match waited {
        Err(_) => {
            eprintln!(
                "timed out after {} waiting for the controller to handle token {token} and finish the run; \
                 check `kubectl roster status {sched_name} -n {ns}` and that the rostersync controller is running",
                format_duration(timeout.as_secs() as i64)
            );
            return Ok(EXIT_TIMEOUT);
        }
        Ok(Err(err)) => return Err(err).context("lost the watch on the SyncSchedule"),
        Ok(Ok(None)) => bail!("SyncSchedule {ns}/{sched_name} was deleted while waiting"),
        Ok(Ok(Some(s))) => s,
    };
    match sync_now_outcome(&schedule, &token, &known_runs, &known_active) {
        Some(Outcome::Rejected {
            reason,
            available_after,
        }) => {
            let event = rejection_event(client, ns, &sched_name, requested_at).await;
            eprintln!("Sync Now was rejected: {reason}");
            if let Some(message) = event {
                eprintln!("  {message}");
            }
            match available_after {
                Some(t) => eprintln!(
                    "  Sync Now is available again at {} ({})",
                    t.strftime("%Y-%m-%d %H:%M:%SZ"),
                    relative(t, Timestamp::now())
                ),
                None => eprintln!(
                    "  Sync Now becomes available again after the next scheduled run, or after a failed run"
                ),
            }
            Ok(EXIT_FAILED)
        }
        Some(Outcome::Finished(run)) => {
            let result = run.result.map(|r| r.as_str()).unwrap_or("Unknown");
            let took = match (&run.started_at, &run.finished_at) {
                (Some(s), Some(f)) => {
                    format!(" in {}", format_duration(f.0.as_second() - s.0.as_second()))
                }
                _ => String::new(),
            };
            println!("Sync {result}: run {} (job {}){took}", run.run_id, run.job);
            if !run.summary.is_empty() {
                println!("  {}", run.summary);
            }
            let connection =
                crate::run::ConnectionKey::new(ns, &schedule.spec.connection_ref.name).ok();
            let record = match &connection {
                Some(key) => db_run(key, &run.run_id).await,
                None => None,
            };
            if let Some(record) = record {
                let counts = record.counts.describe();
                if counts != run.summary {
                    println!("  counts: {counts}");
                }
            }
            match run.result {
                Some(RunResult::Succeeded) => Ok(0),
                Some(RunResult::Held) => {
                    eprintln!(
                        "the run is held by the removal guard; review it, then: kubectl roster approve {sched_name} {} -n {ns}",
                        run.run_id
                    );
                    Ok(EXIT_FAILED)
                }
                _ => Ok(EXIT_FAILED),
            }
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
