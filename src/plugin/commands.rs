//! The commands of `kubectl roster`, against the API server (and Postgres for `history`).
use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::format::{format_duration, relative, render_columns, status_table};
use super::{EXIT_FAILED, EXIT_TIMEOUT, PluginCli, PluginCommand};
use crate::api::{
    APPROVE_REMOVALS_ANNOTATION, JourneyPolicy, RosterConnection, RunResult, RunStatus,
    SYNC_NOW_ANNOTATION, SyncSchedule,
};
use crate::run::{ConnectionKey, RunRecord};
use crate::store::runs as store_runs;

const FIELD_MANAGER: &str = "kubectl-roster";

pub(super) async fn run(cli: PluginCli) -> anyhow::Result<u8> {
    let client = Client::try_default()
        .await
        .context("cannot reach the cluster: check KUBECONFIG / the current kubectl context")?;
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    match cli.command {
        PluginCommand::Status {
            name,
            all_namespaces,
        } => status(&client, &ns, name.as_deref(), all_namespaces).await,
        PluginCommand::SyncNow {
            name,
            wait,
            timeout,
        } => sync_now(&client, &ns, &name, wait, timeout).await,
        PluginCommand::History { name, limit } => history(&client, &ns, &name, limit).await,
        PluginCommand::Suspend { name } => set_suspend(&client, &ns, &name, true).await,
        PluginCommand::Resume { name } => set_suspend(&client, &ns, &name, false).await,
        PluginCommand::Approve { name, run_id } => approve(&client, &ns, &name, &run_id).await,
        PluginCommand::Preview { name, count } => preview(&client, &ns, &name, count).await,
    }
}

// ---------------------------------------------------------------------------------------------
// status

async fn status(client: &Client, ns: &str, name: Option<&str>, all: bool) -> anyhow::Result<u8> {
    fn api<K>(client: &Client, ns: &str, all: bool) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        if all {
            Api::all(client.clone())
        } else {
            Api::namespaced(client.clone(), ns)
        }
    }
    let lp = ListParams::default();
    let keep = |n: String| name.is_none_or(|want| want == n);
    let mut connections = api::<RosterConnection>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list RosterConnections (are the rostersync CRDs installed?)")?
        .items;
    connections.retain(|o| keep(o.name_any()));
    let mut schedules = api::<SyncSchedule>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list SyncSchedules")?
        .items;
    // With a NAME, a connection's schedules come along (they may be named differently).
    schedules.retain(|o| {
        keep(o.name_any())
            || name.is_some_and(|n| {
                o.spec.connection_ref.name == n
                    && connections
                        .iter()
                        .any(|c| c.namespace() == o.namespace() && c.name_any() == n)
            })
    });
    let mut policies = api::<JourneyPolicy>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list JourneyPolicies")?
        .items;
    policies.retain(|o| keep(o.name_any()));
    if let Some(name) = name
        && connections.is_empty()
        && schedules.is_empty()
        && policies.is_empty()
    {
        bail!(
            "no RosterConnection, SyncSchedule or JourneyPolicy named {name:?} in namespace {ns}"
        );
    }
    print!(
        "{}",
        status_table(&connections, &schedules, &policies, all, Timestamp::now())
    );
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// resolving NAME to a SyncSchedule

/// The SyncSchedule named `name`, or the single one whose connectionRef is `name`.
async fn resolve_schedule(client: &Client, ns: &str, name: &str) -> anyhow::Result<SyncSchedule> {
    let api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    if let Some(s) = api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read SyncSchedule {ns}/{name}"))?
    {
        return Ok(s);
    }
    let all = api
        .list(&ListParams::default())
        .await
        .context("cannot list SyncSchedules (are the rostersync CRDs installed?)")?
        .items;
    let mut matching: Vec<SyncSchedule> = all
        .into_iter()
        .filter(|s| s.spec.connection_ref.name == name)
        .collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => bail!(
            "no SyncSchedule named {name:?} (nor one for a RosterConnection {name:?}) in namespace {ns}; \
             see `kubectl roster status -n {ns}`"
        ),
        _ => {
            let names: Vec<String> = matching.iter().map(|s| s.name_any()).collect();
            bail!(
                "RosterConnection {name:?} has several SyncSchedules ({}); name one of them",
                names.join(", ")
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sync-now

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

async fn sync_now(
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
    let patch = json!({"metadata": {"annotations": {SYNC_NOW_ANNOTATION: token}}});
    api.patch(
        &sched_name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&patch),
    )
    .await
    .with_context(|| format!("cannot annotate SyncSchedule {ns}/{sched_name}"))?;
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
            if let Some(record) = db_run(&run.run_id).await {
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

// ---------------------------------------------------------------------------------------------
// history

async fn db_pool() -> Result<sqlx::PgPool, String> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set".to_string())?;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&url)
        .await
        // The error never contains the password; the URL itself is never printed.
        .map_err(|e| format!("cannot connect to DATABASE_URL: {e}"))
}

async fn db_history(connection: &ConnectionKey, limit: u16) -> Result<Vec<RunRecord>, String> {
    let pool = db_pool().await?;
    let runs = store_runs::list(&pool, Some(connection), i64::from(limit))
        .await
        .map_err(|e| format!("cannot read the sync history: {e}"));
    pool.close().await;
    runs
}

/// One run's record, when Postgres is reachable (best effort, for `sync-now --wait`).
async fn db_run(run_id: &str) -> Option<RunRecord> {
    let pool = db_pool().await.ok()?;
    let run = store_runs::by_id(&pool, run_id).await.ok()?;
    pool.close().await;
    run
}

fn ts(t: Option<Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

async fn history(client: &Client, ns: &str, name: &str, limit: u16) -> anyhow::Result<u8> {
    // NAME is a schedule (use its connection) or a connection (use its schedules' status).
    let sched_api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    let connection = match sched_api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read SyncSchedule {ns}/{name}"))?
    {
        Some(s) => s.spec.connection_ref.name,
        None => {
            let conn_api: Api<RosterConnection> = Api::namespaced(client.clone(), ns);
            conn_api
                .get_opt(name)
                .await
                .with_context(|| format!("cannot read RosterConnection {ns}/{name}"))?
                .map(|c| c.name_any())
                .with_context(|| {
                    format!("no SyncSchedule or RosterConnection named {name:?} in namespace {ns}")
                })?
        }
    };
    let key = ConnectionKey::new(ns, &connection)?;
    match db_history(&key, limit).await {
        Ok(runs) => {
            println!("History of {key} (sync_runs):");
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.run_id.clone(),
                        r.trigger.as_str().to_string(),
                        r.result.as_str().to_string(),
                        ts(Some(r.started_at)),
                        ts(r.finished_at),
                        r.summary(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render_columns(
                    &[
                        "RUN ID", "TRIGGER", "RESULT", "STARTED", "FINISHED", "DETAILS"
                    ],
                    &rows
                )
            );
        }
        Err(why) => {
            eprintln!("note: showing status.recentRuns (at most 5 per schedule); {why}");
            let schedules = sched_api
                .list(&ListParams::default())
                .await
                .context("cannot list SyncSchedules")?
                .items;
            let mut runs: Vec<RunStatus> = schedules
                .iter()
                .filter(|s| s.spec.connection_ref.name == connection)
                .filter_map(|s| s.status.as_ref())
                .flat_map(|st| st.recent_runs.iter().cloned())
                .collect();
            runs.sort_by_key(|r| std::cmp::Reverse(r.started_at.as_ref().map(|t| t.0)));
            runs.dedup_by(|a, b| a.run_id == b.run_id);
            runs.truncate(usize::from(limit));
            println!("History of {key} (status.recentRuns):");
            let stamp = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
                ts(t.map(|t| t.0))
            };
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.run_id.clone(),
                        r.trigger.map(|t| t.as_str()).unwrap_or("-").to_string(),
                        r.result.map(|t| t.as_str()).unwrap_or("-").to_string(),
                        stamp(r.started_at.as_ref()),
                        stamp(r.finished_at.as_ref()),
                        r.summary.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render_columns(
                    &[
                        "RUN ID", "TRIGGER", "RESULT", "STARTED", "FINISHED", "DETAILS"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// suspend / resume / approve / preview

async fn set_suspend(client: &Client, ns: &str, name: &str, suspend: bool) -> anyhow::Result<u8> {
    let schedule = resolve_schedule(client, ns, name).await?;
    let sched_name = schedule.name_any();
    let api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    api.patch(
        &sched_name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(json!({"spec": {"suspend": suspend}})),
    )
    .await
    .with_context(|| format!("cannot patch SyncSchedule {ns}/{sched_name}"))?;
    if suspend {
        println!(
            "syncschedule/{sched_name} suspended: no scheduled syncs until `kubectl roster resume {sched_name} -n {ns}` (Sync Now still works)"
        );
    } else {
        println!("syncschedule/{sched_name} resumed");
    }
    if schedule.metadata.managed_fields.iter().flatten().any(|f| {
        f.manager.as_deref().is_some_and(|m| m.contains("helm"))
            || f.manager.as_deref().is_some_and(|m| m.contains("argocd"))
    }) {
        eprintln!(
            "note: this SyncSchedule is managed by Helm/GitOps; change `suspend` there too, or the next sync of the manifests reverts it"
        );
    }
    Ok(0)
}

async fn approve(client: &Client, ns: &str, name: &str, run_id: &str) -> anyhow::Result<u8> {
    let schedule = resolve_schedule(client, ns, name).await?;
    let sched_name = schedule.name_any();
    let status = schedule.status.clone().unwrap_or_default();
    let known = status
        .last_run
        .iter()
        .chain(status.recent_runs.iter())
        .find(|r| r.run_id == run_id);
    match known.and_then(|r| r.result) {
        Some(RunResult::Held) => {}
        Some(other) => bail!(
            "run {run_id} is {}, not Held: there is nothing to approve",
            other.as_str()
        ),
        None => eprintln!(
            "note: run {run_id} is not among the schedule's recent runs; setting the approval anyway"
        ),
    }
    let api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {APPROVE_REMOVALS_ANNOTATION: run_id}}});
    api.patch(
        &sched_name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&patch),
    )
    .await
    .with_context(|| format!("cannot annotate SyncSchedule {ns}/{sched_name}"))?;
    println!(
        "approved the removals of run {run_id} on syncschedule/{sched_name}; the controller re-runs it with the guard lifted once"
    );
    Ok(0)
}

async fn preview(client: &Client, ns: &str, name: &str, count: u16) -> anyhow::Result<u8> {
    let schedule = resolve_schedule(client, ns, name).await?;
    let s = &schedule.spec;
    let day = match (s.day_of_week, s.day_of_month) {
        (Some(d), _) => format!(" on {d:?}"),
        (_, Some(d)) => format!(" on day {d}"),
        _ => String::new(),
    };
    println!(
        "{:?}{day} at {} {} (off-peak window {}-{}){}",
        s.frequency,
        s.at,
        s.time_zone,
        s.off_peak_window.start,
        s.off_peak_window.end,
        if s.suspend { ", SUSPENDED" } else { "" }
    );
    let rule = crate::schedule::ScheduleRule::from_spec(s).map_err(|err| {
        anyhow::anyhow!(
            "SyncSchedule {ns}/{} is invalid: {err}",
            schedule.name_any()
        )
    })?;
    let slots =
        crate::schedule::preview::preview_slots(&rule, Timestamp::now(), usize::from(count));
    let now = Timestamp::now();
    let rows: Vec<Vec<String>> = slots
        .iter()
        .map(|slot| {
            vec![
                crate::schedule::preview::local_rfc3339(slot),
                slot.timestamp().strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
                relative(slot.timestamp(), now),
            ]
        })
        .collect();
    print!("{}", render_columns(&["LOCAL", "UTC", "WHEN"], &rows));
    if s.suspend {
        println!("(suspended: these slots run only after `kubectl roster resume`)");
    }
    if let Some(t) = schedule
        .status
        .as_ref()
        .and_then(|st| st.next_sync_time.as_ref())
    {
        println!(
            "controller's next sync: {} ({})",
            t.0.strftime("%Y-%m-%d %H:%M:%SZ"),
            relative(t.0, now)
        );
    }
    Ok(0)
}
