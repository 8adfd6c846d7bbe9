//! The SyncSchedule decision, pure: `(Observed, now) -> Plan`.
use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::model::{Email, Plan, Report, Requeue};
use super::observe::{FinishedRun, Observed};
use super::status::{anchor, availability, conditions};
use crate::api::{
    APPROVE_REMOVALS_ANNOTATION, QueuedRun, RunStatus, SYNC_NOW_ANNOTATION, SyncNowStatus,
    SyncSchedule, SyncScheduleStatus, condition as cond, set_condition,
};
use crate::controller::emails;
use crate::controller::history::{self, upsert};
use crate::controller::job::{self, RunRequest, SCHEDULE_LABEL};
use crate::controller::names;
use crate::controller::runs::{self, JobState, job_state};
use crate::controller::status::{condition_at, is_true};
use crate::notify;
use crate::run::{ConnectionKey, RunResult};
use crate::schedule::{ScheduleRule, decide, format_offset};

use super::admission::{Admit, admit};
use super::cap::queued_retry;

/// How often a due slot that cannot start yet (connection not Ready, a run active) is looked at
/// again, besides the watches that wake the schedule when either changes.
pub const BLOCKED_RETRY: Duration = Duration::from_secs(15);

/// Whether `job` belongs to `sched` (owner reference, or its label on an orphan).
pub fn owned_by(job: &Job, sched: &SyncSchedule) -> bool {
    let uid = sched.uid();
    job.owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref())
        || (names::has_label_for(job, SCHEDULE_LABEL, &sched.name_any())
            && job.owner_references().is_empty())
}

/// The schedule's decision at `now`, with the kstatus conditions derived from its `Ready`.
pub fn plan(o: &Observed, now: Timestamp) -> Plan {
    let mut p = plan_status(o, now);
    crate::controller::kstatus::derive(&mut p.status.conditions);
    p.write_status = p.status != o.schedule.status.clone().unwrap_or_default();
    p
}

fn plan_status(o: &Observed, now: Timestamp) -> Plan {
    let sched = &o.schedule;
    let name = sched.name_any();
    let generation = sched.metadata.generation;
    let old = sched.status.clone().unwrap_or_default();
    let mut st = old.clone();
    st.observed_generation = generation;

    let key = format!("{}/{name}", sched.namespace().unwrap_or_default());
    let rule = match ScheduleRule::for_schedule(&sched.spec, &key, o.config.slot_jitter_seconds) {
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
            let mut p = Plan::new(st);
            p.write_status = p.status != old;
            return p;
        }
    };
    if !o.job_problems.is_empty() {
        return invalid_job_template(o, old, st, now);
    }
    let mut p = Plan::new(SyncScheduleStatus::default());
    let conn_ready = o.connection.as_ref().is_some_and(|c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, cond::READY))
    });
    let mine: Vec<&Job> = o.jobs.iter().filter(|j| owned_by(j, sched)).collect();
    let mut run_active = o.jobs.iter().any(|j| {
        names::connection_of(j).as_deref() == Some(sched.spec.connection_ref.name.as_str())
            && job_state(j) == JobState::Active
    });
    let exists = |request: &RunRequest| {
        let job_name = job::job_name(&name, request);
        mine.iter().any(|j| j.name_any() == job_name)
    };

    // Finished Jobs, then the active ones status does not know yet.
    for f in &o.finished {
        report(&mut p, &mut st, o, f, now);
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

    // Sync Now, then an approval.
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
        let avail = availability(&rule, &st, &name, now, conn_ready, run_active, sched);
        if exists(&request) {
            // Accepted before a restart: the status just did not say so yet.
        } else if avail.available {
            start(&mut p, &mut st, sched, request, now);
            run_active = true;
            let note = format!("Sync Now request {token:?} accepted: a sync started");
            p.note(false, "SyncNowAccepted", "SyncNow", note);
        } else {
            let after = avail
                .available_after
                .map(|t| format!("; available again after {t}"))
                .unwrap_or_default();
            let note = format!(
                "Sync Now request {token:?} rejected: {}{after}",
                avail.reason
            );
            p.note(true, "SyncNowRejected", "SyncNow", note);
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
        let handled = if exists(&request) {
            true
        } else if !is_last_held {
            let note = format!(
                "approval of run {held} ignored: only the latest run can be approved, and only when \
                 it was held by the removal guard"
            );
            p.note(true, "ApprovalRejected", "Approve", note);
            true
        } else if run_active || !conn_ready {
            // Handled once the connection is free and Ready (the watches wake the schedule).
            false
        } else {
            start(&mut p, &mut st, sched, request, now);
            run_active = true;
            let note =
                format!("removals of held run {held} approved: a sync applying them started");
            p.note(false, "RemovalsApproved", "Approve", note);
            true
        };
        if handled {
            st.last_handled_approval = Some(held.clone());
        }
    }

    // Slots.
    let decision = decide(
        &rule,
        now,
        st.last_schedule_time.as_ref().map(|t| t.0),
        anchor(sched, &old, now),
        sched.spec.suspend,
    );
    let mut wake = decision.next_wake;
    let mut commit = true;
    let mut blocked = None;
    let retry = |wake: Timestamp, after: Duration| {
        wake.min(now + jiff::SignedDuration::try_from(after).unwrap_or_default())
    };
    // A run queued under the cluster's cap is the schedule's due run until it starts.
    if st.queued_run.is_some() && sched.spec.suspend {
        st.queued_run = None;
        let note = "the queued scheduled run was dropped: the schedule is suspended".to_string();
        p.note(false, "QueuedRunDropped", "Schedule", note);
    }
    let queued = st.queued_run.clone();
    if queued.is_some() && decision.run.is_some() {
        // A newer slot came due while the older run still waits: it waits behind it, like
        // behind an active run.
        commit = false;
        wake = retry(wake, BLOCKED_RETRY);
        blocked = Some("a run of this schedule is still queued for a free sync slot");
    }
    let due = match (&queued, decision.run) {
        (Some(q), _) => Some((q.slot.0, q.trigger, false)),
        (None, Some(d)) => Some((d.slot, d.trigger, true)),
        (None, None) => None,
    };
    if let Some((slot, trigger, fresh)) = due {
        let request = RunRequest::Slot { slot, trigger };
        if exists(&request) {
            st.queued_run = None;
        } else if !conn_ready || run_active {
            commit = commit && !fresh;
            wake = retry(wake, BLOCKED_RETRY);
            blocked = blocked.or(Some(if conn_ready {
                "a run of the connection is active"
            } else {
                "the connection is not Ready"
            }));
        } else {
            match admit(&o.cap, &key, slot) {
                Admit::Start => {
                    if let Some(q) = &queued {
                        let waited = now.duration_since(q.since.0).as_secs();
                        let note = format!(
                            "the queued scheduled run of slot {slot} started after waiting {waited} s \
                             for a free sync slot"
                        );
                        p.note(false, "QueuedRunStarted", "Schedule", note);
                    }
                    start(&mut p, &mut st, sched, request, now);
                    run_active = true;
                    st.queued_run = None;
                    p.claim = (o.cap.cap > 0).then_some(slot);
                }
                Admit::Wait { ahead } => {
                    if fresh {
                        st.queued_run = Some(QueuedRun {
                            slot: Time(slot),
                            trigger,
                            since: Time(now),
                        });
                        let note = format!(
                            "the scheduled run of slot {slot} waits for a free sync slot: at most {} \
                             sync Jobs run at once in the cluster (--max-concurrent-syncs) and all \
                             are taken; {ahead} run(s) due earlier wait before it; it starts in \
                             order when one finishes",
                            o.cap.cap
                        );
                        p.note(false, "SyncQueued", "Schedule", note);
                    }
                    p.waiting = Some(slot);
                    wake = retry(wake, queued_retry(ahead, o.cap.cap));
                }
            }
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
            let note = if decision.skipped_at_peak.is_some() {
                format!(
                    "{} scheduled sync(s) missed (latest slot {latest}): its catch-up would start at \
                     {now}, outside the off-peak window {}, so it does not run at peak time; the next \
                     slot runs as usual",
                    decision.missed.total,
                    rule.off_peak_window()
                )
            } else {
                format!(
                    "{} scheduled sync(s) missed (latest slot {latest}): the connection was not Ready, \
                     a run was active, or the controller was down for longer than \
                     startingDeadlineMinutes",
                    decision.missed.total
                )
            };
            p.note(true, "SyncMissed", "Schedule", note.clone());
            if let (Some(conn), Some(slot)) = (o.connection.as_ref(), decision.missed.listed.last())
                && let Ok(key) =
                    ConnectionKey::new(&sched.namespace().unwrap_or_default(), &conn.name_any())
            {
                p.emails.push(Email {
                    settings: emails::settings(conn, o.config.email_repeat_interval),
                    notice: notify::Notice::ScheduleMissed {
                        source: emails::source(conn, &key),
                        schedule: name.clone(),
                        slot: *slot,
                        reason: emails::MISSED_REASON.to_string(),
                        message: note,
                    },
                });
            }
        }
    }

    // Status.
    let avail = availability(&rule, &st, &name, now, conn_ready, run_active, sched);
    let next = rule.next_slot_after(now);
    st.next_sync_time = (!sched.spec.suspend).then_some(Time(next));
    let jittered = !sched.spec.suspend && !rule.jitter().is_zero();
    st.next_sync_jitter = jittered.then(|| format_offset(rule.slot_offset(next)));
    st.slot_jitter_seconds = (!rule.jitter().is_zero()).then(|| rule.jitter().as_secs());
    conditions(&mut st, sched, o, conn_ready, &avail, blocked, now);
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
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    st.last_run = st.recent_runs.first().cloned();

    // Jobs beyond the history limits, metrics, the next wake-up.
    let limits = &sched.spec.history;
    let keep_ok = usize::try_from(limits.successful_jobs_history_limit).unwrap_or(0);
    let keep_failed = usize::try_from(limits.failed_jobs_history_limit).unwrap_or(0);
    p.prune = history::to_prune(&mine, keep_ok, keep_failed)
        .into_iter()
        .map(|j| j.name_any())
        .collect();
    p.next_slot = (!sched.spec.suspend).then(|| rule.next_slot_after(now).as_second() as f64);
    p.last_success = st
        .last_successful_time
        .as_ref()
        .map(|t| t.0.as_second() as f64);
    if let Some(t) = avail.available_after {
        wake = wake.min(t);
    }
    if let Some(t) = o.lost_check_at {
        wake = wake.min(t);
    }
    p.requeue = Requeue::At(wake);
    p.write_status = st != old;
    p.status = st;
    p
}

/// The Ready condition's reason while the sync Job's pod settings are invalid.
pub const INVALID_JOB_TEMPLATE: &str = "InvalidJobTemplate";

/// The plan while the sync Job's pod settings are invalid: Ready False with what is wrong (and a
/// Warning Event when that is new), no run starts and nothing else changes until they are fixed
/// (a spec change or a controller restart with other defaults wakes the schedule). Slots due
/// meanwhile are handled after the fix, like after a controller outage.
fn invalid_job_template(
    o: &Observed,
    old: SyncScheduleStatus,
    mut st: SyncScheduleStatus,
    now: Timestamp,
) -> Plan {
    let message = format!(
        "no sync can start until the sync Job's pod settings are fixed: {}",
        o.job_problems.join("; ")
    );
    let known = old.conditions.iter().any(|c| {
        c.type_ == cond::READY && c.reason == INVALID_JOB_TEMPLATE && c.message == message
    });
    set_condition(
        &mut st.conditions,
        condition_at(
            cond::READY,
            false,
            INVALID_JOB_TEMPLATE,
            message.clone(),
            o.schedule.metadata.generation,
            now,
        ),
    );
    st.next_sync_time = None;
    let mut p = Plan::new(st);
    if !known {
        p.note(true, INVALID_JOB_TEMPLATE, "Validate", message);
    }
    p.write_status = p.status != old;
    p
}

/// Records a run as started: its Job to create and its Running entry in status.
fn start(
    p: &mut Plan,
    st: &mut SyncScheduleStatus,
    sched: &SyncSchedule,
    request: RunRequest,
    now: Timestamp,
) {
    let name = sched.name_any();
    let job_name = job::job_name(&name, &request);
    let run_id = job::run_id(
        &job_name,
        &sched.uid().unwrap_or_default(),
        &sched.namespace().unwrap_or_default(),
    );
    upsert(
        &mut st.recent_runs,
        RunStatus {
            job: job_name,
            run_id,
            trigger: Some(request.trigger()),
            result: Some(RunResult::Running),
            started_at: Some(Time(now)),
            finished_at: None,
            summary: String::new(),
        },
    );
    p.starts.push(request);
}

/// Turns a finished run into history: status entry, counters, metrics, an Event, its email.
fn report(
    p: &mut Plan,
    st: &mut SyncScheduleStatus,
    o: &Observed,
    f: &FinishedRun,
    now: Timestamp,
) {
    let name = o.schedule.name_any();
    let run = &f.run;
    let entry = run.status_entry(&f.job);
    let email = f.connection.as_ref().and_then(|c| {
        let notice = emails::run_notice(run, emails::source(c, &run.connection), Some(&name))?;
        Some(Email {
            settings: emails::settings(c, o.config.email_repeat_interval),
            notice,
        })
    });
    p.reports.push(Report {
        job: f.job.clone(),
        mark_job: !f.job_gone,
        connection: run.connection.clone(),
        run_id: run.run_id.clone(),
        result: run.result,
        email,
    });
    if !history::is_final(&st.recent_runs, &entry.run_id) {
        let finished = entry.finished_at.clone().or(Some(Time(now)));
        match run.result {
            RunResult::Succeeded => {
                st.last_successful_time = finished;
                st.consecutive_failures = 0;
            }
            _ => {
                st.last_failure_time = finished;
                st.consecutive_failures += 1;
            }
        }
        let seconds = run.duration_ms.map(|ms| ms as f64 / 1000.0);
        p.finished_metrics.push((run.result, seconds, run.clever));
        let id = &run.run_id;
        let summary = &entry.summary;
        match run.result {
            RunResult::Succeeded => p.note(
                false,
                "SyncSucceeded",
                "Sync",
                format!("run {id} succeeded: {summary}"),
            ),
            RunResult::Held => p.note(
                true,
                "SyncHeld",
                "Sync",
                format!(
                    "run {id} was held by the removal guard and applied nothing ({summary}); review \
                     it, then approve with: kubectl annotate syncschedule {name} \
                     {APPROVE_REMOVALS_ANNOTATION}={id} --overwrite"
                ),
            ),
            _ => p.note(
                true,
                "SyncFailed",
                "Sync",
                format!("run {id} failed: {summary}"),
            ),
        }
    }
    upsert(&mut st.recent_runs, entry);
}
