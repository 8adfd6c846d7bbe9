//! SyncSchedule: the reconcile pipeline.
//!
//! 1. Observe: the schedule's rule, its connection, the Jobs of the connection.
//! 2. Report finished Jobs (outcome from Postgres, status, counters, an Event).
//! 3. Handle a new Sync Now token, then a new approval (each handled exactly once).
//! 4. Run the due slot, or record missed slots (the pure engine decides).
//! 5. Write status, mark reported Jobs, prune old Jobs, requeue at the next moment that matters.
//!
//! Every run starts as a Job with a deterministic name: if it already exists (a restart, another
//! controller), the request counts as handled and nothing starts twice.
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::info;

use super::Context;
use super::connection::credential_keys;
use super::emails;
use super::error::{Error, Result};
use super::history::{self, upsert};
use super::job::{self, CONNECTION_LABEL, CredentialKeys, JobInput, MANAGED_BY, MANAGED_BY_LABEL};
use super::job::{REPORTED_ANNOTATION, RunRequest, SCHEDULE_LABEL};
use super::runs::{self, JobState, job_state};
use super::status::{apply_status, condition_at, is_true, publish};
use crate::api::{APPROVE_REMOVALS_ANNOTATION, RosterConnection, RunResult, SYNC_NOW_ANNOTATION};
use crate::api::{
    SyncNowStatus, SyncSchedule, SyncScheduleStatus, condition as cond, set_condition,
};
use crate::schedule::{
    ScheduleRule, SyncNowAvailability, SyncNowInput, decide, sync_now_availability,
};
use crate::store::StoreError;

/// How often a due slot that cannot start yet (connection not Ready, a run active) is looked at
/// again, besides the watches that wake the schedule when either changes.
const BLOCKED_RETRY: Duration = Duration::from_secs(15);
/// The longest a schedule goes without a reconcile.
const MAX_REQUEUE: Duration = Duration::from_secs(600);

/// What one reconcile works with.
struct Scope<'a> {
    ctx: &'a Arc<Context>,
    sched: &'a SyncSchedule,
    name: String,
    ns: String,
    jobs: Api<Job>,
    connection: Option<RosterConnection>,
    now: Timestamp,
}

pub async fn reconcile(sched: &SyncSchedule, ctx: &Arc<Context>) -> Result<Action> {
    let ns = sched.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = sched.name_any();
    let now = ctx.clock.now();
    let generation = sched.metadata.generation;
    let old = sched.status.clone().unwrap_or_default();
    let mut st = old.clone();
    st.observed_generation = generation;
    let api: Api<SyncSchedule> = Api::namespaced(ctx.client.clone(), &ns);

    let rule = match ScheduleRule::from_spec(&sched.spec) {
        Ok(rule) => rule,
        Err(err) => {
            let c = condition_at(
                cond::READY,
                false,
                "InvalidSchedule",
                err.to_string(),
                generation,
                now,
            );
            set_condition(&mut st.conditions, c);
            st.next_sync_time = None;
            if st != old {
                apply_status(&api, &name, &st).await?;
            }
            return Ok(Action::await_change());
        }
    };
    let connection = Api::<RosterConnection>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&sched.spec.connection_ref.name)
        .await
        .map_err(Error::kube("reading the RosterConnection"))?;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let scope = Scope {
        ctx,
        sched,
        name: name.clone(),
        ns,
        jobs,
        connection,
        now,
    };
    let conn_ready = scope.connection.as_ref().is_some_and(|c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, cond::READY))
    });

    let all_jobs = scope
        .jobs
        .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")))
        .await
        .map_err(Error::kube("listing sync Jobs"))?
        .items;
    let mine: Vec<&Job> = all_jobs.iter().filter(|j| owned_by(j, sched)).collect();
    let mut run_active = all_jobs.iter().any(|j| {
        j.labels().get(CONNECTION_LABEL) == Some(&sched.spec.connection_ref.name)
            && job_state(j) == JobState::Active
    });

    // 2. Finished Jobs not reported yet, oldest first.
    let mut reported = Vec::new();
    let mut finished: Vec<&Job> = mine
        .iter()
        .copied()
        .filter(|j| runs::is_finished(j) && !j.annotations().contains_key(REPORTED_ANNOTATION))
        .collect();
    finished.sort_by_key(|j| runs::finished_at(j));
    for j in finished {
        let result = report(&scope, &mut st, j).await?;
        reported.push((j.name_any(), result));
    }
    for j in mine.iter().filter(|j| job_state(j) == JobState::Active) {
        if !st
            .recent_runs
            .iter()
            .any(|r| r.run_id == runs::run_id_of(j))
        {
            let started = j.creation_timestamp().map_or(now, |t| t.0);
            upsert(&mut st.recent_runs, runs::running_status(j, started));
        }
    }

    // 3. Sync Now, then an approval.
    let annotations = sched.annotations();
    if let Some(token) = annotations
        .get(SYNC_NOW_ANNOTATION)
        .filter(|t| !t.is_empty())
        && st
            .sync_now
            .as_ref()
            .and_then(|s| s.last_handled_token.as_ref())
            != Some(token)
    {
        let request = RunRequest::SyncNow {
            token: token.clone(),
        };
        let exists = mine
            .iter()
            .any(|j| j.name_any() == job::job_name(&name, &request));
        let avail = availability(
            &rule,
            &st,
            &name,
            now,
            conn_ready,
            run_active,
            sched.spec.suspend,
        );
        if exists {
            // Accepted before a restart: the status just did not say so yet.
        } else if avail.available {
            start(&scope, &mut st, &request).await?;
            run_active = true;
            let note = format!("Sync Now request {token:?} accepted: a sync started");
            publish(
                &ctx.recorder,
                sched,
                false,
                "SyncNowAccepted",
                "SyncNow",
                note,
            )
            .await;
        } else {
            let after = avail
                .available_after
                .map(|t| format!("; available again after {t}"))
                .unwrap_or_default();
            let note = format!(
                "Sync Now request {token:?} rejected: {}{after}",
                avail.reason
            );
            publish(
                &ctx.recorder,
                sched,
                true,
                "SyncNowRejected",
                "SyncNow",
                note,
            )
            .await;
        }
        st.sync_now
            .get_or_insert_with(SyncNowStatus::default)
            .last_handled_token = Some(token.clone());
    }
    if let Some(held) = annotations
        .get(APPROVE_REMOVALS_ANNOTATION)
        .filter(|t| !t.is_empty())
        && st.last_handled_approval.as_ref() != Some(held)
    {
        let last = st.recent_runs.first();
        let is_last_held =
            last.is_some_and(|r| &r.run_id == held && r.result == Some(RunResult::Held));
        let request = RunRequest::Approval {
            held_run_id: held.clone(),
        };
        let exists = mine
            .iter()
            .any(|j| j.name_any() == job::job_name(&name, &request));
        let handled = if exists {
            true
        } else if !is_last_held {
            let note = format!(
                "approval of run {held} ignored: only the latest run can be approved, and only when \
                 it was held by the removal guard"
            );
            publish(
                &ctx.recorder,
                sched,
                true,
                "ApprovalRejected",
                "Approve",
                note,
            )
            .await;
            true
        } else if run_active || !conn_ready {
            // Handled once the connection is free and Ready (the watches wake the schedule).
            false
        } else {
            start(&scope, &mut st, &request).await?;
            run_active = true;
            let note =
                format!("removals of held run {held} approved: a sync applying them started");
            publish(
                &ctx.recorder,
                sched,
                false,
                "RemovalsApproved",
                "Approve",
                note,
            )
            .await;
            true
        };
        if handled {
            st.last_handled_approval = Some(held.clone());
        }
    }

    // 4. Slots.
    let anchor = anchor(sched, &old, now);
    let decision = decide(
        &rule,
        now,
        st.last_schedule_time.as_ref().map(|t| t.0),
        anchor,
        sched.spec.suspend,
    );
    let mut wake = decision.next_wake;
    let mut commit = true;
    let mut blocked = None;
    if let Some(due) = decision.run {
        let request = RunRequest::Slot {
            slot: due.slot,
            trigger: due.trigger,
        };
        let exists = mine
            .iter()
            .any(|j| j.name_any() == job::job_name(&name, &request));
        if exists {
        } else if !conn_ready || run_active {
            commit = false;
            wake =
                wake.min(now + jiff::SignedDuration::try_from(BLOCKED_RETRY).unwrap_or_default());
            blocked = Some(if conn_ready {
                "a run of the connection is active"
            } else {
                "the connection is not Ready"
            });
        } else {
            start(&scope, &mut st, &request).await?;
            run_active = true;
            info!(schedule = %name, slot = %due.slot, "scheduled sync started");
        }
    }
    if commit {
        st.last_schedule_time = decision.handled_through.map(Time);
        if !decision.missed.is_empty() {
            st.missed_slots += i64::try_from(decision.missed.total).unwrap_or(i64::MAX);
            let latest = decision
                .missed
                .listed
                .last()
                .map(|t| t.to_string())
                .unwrap_or_default();
            let note = format!(
                "{} scheduled sync(s) missed (latest slot {latest}): the connection was not Ready, a run \
                 was active, or the controller was down for longer than startingDeadlineMinutes",
                decision.missed.total
            );
            publish(
                &ctx.recorder,
                sched,
                true,
                "SyncMissed",
                "Schedule",
                note.clone(),
            )
            .await;
            if let (Some(conn), Some(slot)) =
                (scope.connection.as_ref(), decision.missed.listed.last())
            {
                let key = format!("{}/{}", scope.ns, conn.name_any());
                let event = crate::notify::Event::ScheduleMissed {
                    source: emails::source(conn, &key),
                    schedule: name.clone(),
                    slot: emails::chrono_now(*slot),
                    reason: emails::MISSED_REASON.to_string(),
                    message: note,
                };
                let settings = emails::settings(conn, ctx.email_repeat_interval);
                emails::enqueue_alone(&ctx.db, &settings, &event, now).await?;
            }
        }
    }

    // 5. Status, then Jobs.
    let avail = availability(
        &rule,
        &st,
        &name,
        now,
        conn_ready,
        run_active,
        sched.spec.suspend,
    );
    conditions(&mut st, sched, &scope, conn_ready, &avail, blocked, now);
    st.next_sync_time = (!sched.spec.suspend).then(|| Time(rule.next_slot_after(now)));
    st.active = mine
        .iter()
        .filter(|j| job_state(j) == JobState::Active)
        .map(|j| j.name_any())
        .chain(
            st.recent_runs
                .iter()
                .filter(|r| r.result == Some(RunResult::Running))
                .map(|r| r.job.clone()),
        )
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    st.last_run = st.recent_runs.first().cloned();
    if st != old {
        apply_status(&api, &name, &st).await?;
    }
    for (job_name, result) in &reported {
        let patch = serde_json::json!({"metadata": {"annotations": {REPORTED_ANNOTATION: result.as_str()}}});
        scope
            .jobs
            .patch(job_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("marking a Job reported"))?;
    }
    prune(&scope, &mine).await?;
    let next = (!sched.spec.suspend).then(|| rule.next_slot_after(now).as_second() as f64);
    let success = st
        .last_successful_time
        .as_ref()
        .map(|t| t.0.as_second() as f64);
    ctx.metrics.schedule_times(&scope.ns, &name, success, next);

    if let Some(t) = avail.available_after {
        wake = wake.min(t);
    }
    let delay = ctx
        .clock
        .until(wake)
        .clamp(Duration::from_secs(1), MAX_REQUEUE);
    Ok(Action::requeue(delay))
}

fn owned_by(job: &Job, sched: &SyncSchedule) -> bool {
    let uid = sched.uid();
    job.owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref())
        || (job.labels().get(SCHEDULE_LABEL) == Some(&sched.name_any())
            && job.owner_references().is_empty())
}

/// When slots start counting: creation, or when the schedule was last resumed.
fn anchor(sched: &SyncSchedule, old: &SyncScheduleStatus, now: Timestamp) -> Timestamp {
    let created = sched.creation_timestamp().map_or(now, |t| t.0);
    match old.conditions.iter().find(|c| c.type_ == cond::SUSPENDED) {
        Some(c) if c.status == "False" => created.max(c.last_transition_time.0),
        Some(c) if c.status == "True" && !sched.spec.suspend => now,
        _ => created,
    }
}

#[allow(clippy::too_many_arguments)]
fn availability(
    rule: &ScheduleRule,
    st: &SyncScheduleStatus,
    name: &str,
    now: Timestamp,
    connection_ready: bool,
    run_active: bool,
    suspended: bool,
) -> SyncNowAvailability {
    let input = SyncNowInput {
        now,
        connection_ready,
        run_active,
        last_scheduled_start: history::last_scheduled_start(&st.recent_runs),
        last_manual_start: history::last_sync_now_start(name, &st.recent_runs),
        last_run_result: st
            .recent_runs
            .iter()
            .find(|r| r.result != Some(RunResult::Running))
            .and_then(|r| r.result),
        suspended,
    };
    sync_now_availability(rule, &input)
}

fn conditions(
    st: &mut SyncScheduleStatus,
    sched: &SyncSchedule,
    scope: &Scope<'_>,
    conn_ready: bool,
    avail: &SyncNowAvailability,
    blocked: Option<&str>,
    now: Timestamp,
) {
    let generation = sched.metadata.generation;
    let conn = &sched.spec.connection_ref.name;
    let ready = match (&scope.connection, conn_ready, blocked) {
        (None, _, _) => condition_at(
            cond::READY,
            false,
            "ConnectionNotFound",
            format!("RosterConnection {conn} does not exist in this namespace"),
            generation,
            now,
        ),
        (Some(_), false, _) => condition_at(
            cond::READY,
            false,
            "ConnectionNotReady",
            format!("RosterConnection {conn} is not Ready: see its conditions"),
            generation,
            now,
        ),
        (Some(_), true, Some(why)) => condition_at(
            cond::READY,
            true,
            "SlotWaiting",
            format!("a slot is due but waits: {why}"),
            generation,
            now,
        ),
        (Some(_), true, None) if sched.spec.suspend => condition_at(
            cond::READY,
            true,
            "Suspended",
            "scheduled syncs are suspended; Sync Now still works",
            generation,
            now,
        ),
        (Some(_), true, None) => condition_at(
            cond::READY,
            true,
            "Scheduled",
            format!(
                "next sync at {}",
                st.next_sync_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default()
            ),
            generation,
            now,
        ),
    };
    set_condition(&mut st.conditions, ready);
    let suspended = if sched.spec.suspend {
        condition_at(
            cond::SUSPENDED,
            true,
            "Suspended",
            "spec.suspend is true",
            generation,
            now,
        )
    } else {
        condition_at(
            cond::SUSPENDED,
            false,
            "Active",
            "scheduled syncs run",
            generation,
            now,
        )
    };
    set_condition(&mut st.conditions, suspended);
    let msg = match (avail.available, avail.available_after) {
        (true, _) => "annotate rostersync.io/sync-now=<token> to start a sync".to_string(),
        (false, Some(t)) => format!("{} (available again after {t})", avail.reason),
        (false, None) => avail.reason.to_string(),
    };
    set_condition(
        &mut st.conditions,
        condition_at(
            cond::SYNC_NOW_AVAILABLE,
            avail.available,
            avail.reason.as_str(),
            msg,
            generation,
            now,
        ),
    );
    let handled = st
        .sync_now
        .as_ref()
        .and_then(|s| s.last_handled_token.clone());
    st.sync_now = Some(SyncNowStatus {
        available: avail.available,
        reason: avail.reason.as_str().to_string(),
        available_after: avail.available_after.map(Time),
        last_handled_token: handled,
    });
}

/// Creates the run's Job (or finds it, created by an earlier attempt) and records it as running.
async fn start(scope: &Scope<'_>, st: &mut SyncScheduleStatus, request: &RunRequest) -> Result<()> {
    let connection = scope
        .connection
        .as_ref()
        .ok_or(Error::MissingField("connection"))?;
    let secret = Api::<Secret>::namespaced(scope.ctx.client.clone(), &scope.ns)
        .get_opt(&connection.spec.credentials_secret_ref.name)
        .await
        .map_err(Error::kube("reading the credentials Secret"))?;
    let credentials = secret
        .as_ref()
        .and_then(credential_keys)
        .unwrap_or(CredentialKeys::Token);
    let job = job::build_job(&JobInput {
        schedule: scope.sched,
        connection,
        request,
        credentials,
        config: &scope.ctx.job_config,
    })
    .ok_or(Error::MissingField("metadata.uid"))?;
    let name = job.name_any();
    let created = match scope.jobs.create(&PostParams::default(), &job).await {
        Ok(j) => j,
        Err(kube::Error::Api(s)) if s.code == 409 => scope
            .jobs
            .get(&name)
            .await
            .map_err(Error::kube("reading an existing Job"))?,
        Err(e) => return Err(Error::kube("creating a sync Job")(e)),
    };
    upsert(
        &mut st.recent_runs,
        runs::running_status(&created, scope.now),
    );
    Ok(())
}

/// Turns a finished Job into history: status entry, counters, metrics, an Event.
async fn report(scope: &Scope<'_>, st: &mut SyncScheduleStatus, j: &Job) -> Result<RunResult> {
    let conn = j
        .labels()
        .get(CONNECTION_LABEL)
        .cloned()
        .unwrap_or_default();
    let key = format!("{}/{conn}", scope.ns);
    // The connection whose settings decide the email (the Job's, should the spec have changed).
    let connection = match scope.connection.as_ref() {
        Some(c) if c.name_any() == conn => Some(c.clone()),
        _ if conn.is_empty() => None,
        _ => Api::<RosterConnection>::namespaced(scope.ctx.client.clone(), &scope.ns)
            .get_opt(&conn)
            .await
            .map_err(Error::kube("reading the run's RosterConnection"))?,
    };
    // One transaction: the Failed row of a pod that died, the run marked reported, its email.
    let mut tx = scope
        .ctx
        .db
        .begin()
        .await
        .map_err(StoreError::query("starting a transaction"))?;
    let row = runs::outcome(&mut tx, j, &key, &scope.name).await?;
    if runs::mark_notified(&mut tx, &row.run_id).await? {
        let event = connection.as_ref().and_then(|c| {
            emails::run_event(&row, emails::source(c, &key), Some(scope.name.as_str()))
                .map(|e| (emails::settings(c, scope.ctx.email_repeat_interval), e))
        });
        if let Some((settings, event)) = event {
            emails::enqueue_in(&mut tx, &settings, &event, scope.now).await?;
        }
    }
    tx.commit()
        .await
        .map_err(StoreError::query("committing a run's report"))?;
    let entry = runs::status_from_row(&j.name_any(), &row);
    let result = entry.result.unwrap_or(RunResult::Failed);
    if !history::is_final(&st.recent_runs, &entry.run_id) {
        let finished = entry.finished_at.clone().or(Some(Time(scope.now)));
        match result {
            RunResult::Succeeded => {
                st.last_successful_time = finished;
                st.consecutive_failures = 0;
            }
            _ => {
                st.last_failure_time = finished;
                st.consecutive_failures += 1;
            }
        }
        let seconds = row
            .finished_at
            .map(|f| (f - row.started_at).num_milliseconds() as f64 / 1000.0);
        scope.ctx.metrics.sync_finished(result.as_str(), seconds);
        let (id, sched) = (&entry.run_id, scope.sched);
        let (warning, reason, note) = match result {
            RunResult::Succeeded => (
                false,
                "SyncSucceeded",
                format!("run {id} succeeded: {}", entry.summary),
            ),
            RunResult::Held => (
                true,
                "SyncHeld",
                format!(
                    "run {id} was held by the removal guard and applied nothing ({}); review it, then approve \
                 with: kubectl annotate syncschedule {} {APPROVE_REMOVALS_ANNOTATION}={id} --overwrite",
                    entry.summary, scope.name
                ),
            ),
            _ => (
                true,
                "SyncFailed",
                format!("run {id} failed: {}", entry.summary),
            ),
        };
        publish(&scope.ctx.recorder, sched, warning, reason, "Sync", note).await;
    }
    upsert(&mut st.recent_runs, entry);
    Ok(result)
}

async fn prune(scope: &Scope<'_>, mine: &[&Job]) -> Result<()> {
    let limits = &scope.sched.spec.history;
    let keep_ok = usize::try_from(limits.successful_jobs_history_limit).unwrap_or(0);
    let keep_failed = usize::try_from(limits.failed_jobs_history_limit).unwrap_or(0);
    for j in history::to_prune(mine, keep_ok, keep_failed) {
        match scope
            .jobs
            .delete(&j.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("deleting an old Job")(e)),
        }
    }
    Ok(())
}
