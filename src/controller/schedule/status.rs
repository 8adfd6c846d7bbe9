//! The schedule's status, pure: conditions, Sync Now availability, and when slots start counting.
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::observe::Observed;
use crate::api::{
    SyncNowStatus, SyncSchedule, SyncScheduleStatus, condition as cond, set_condition,
};
use crate::controller::history;
use crate::controller::status::condition_at;
use crate::run::RunResult;
use crate::schedule::{
    ScheduleRule, SyncNowAvailability, SyncNowInput, sync_now_availability, sync_now_while_queued,
};

/// When slots start counting: creation, or when the schedule was last resumed.
pub(super) fn anchor(sched: &SyncSchedule, old: &SyncScheduleStatus, now: Timestamp) -> Timestamp {
    let created = sched.creation_timestamp().map_or(now, |t| t.0);
    match old.conditions.iter().find(|c| c.type_ == cond::SUSPENDED) {
        Some(c) if c.status == "False" => created.max(c.last_transition_time.0),
        Some(c) if c.status == "True" && !sched.spec.suspend => now,
        _ => created,
    }
}

pub(super) fn availability(
    rule: &ScheduleRule,
    st: &SyncScheduleStatus,
    name: &str,
    now: Timestamp,
    connection_ready: bool,
    run_active: bool,
    sched: &SyncSchedule,
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
        suspended: sched.spec.suspend,
    };
    if st.queued_run.is_some() {
        return sync_now_while_queued(rule, &input);
    }
    sync_now_availability(rule, &input)
}

pub(super) fn conditions(
    st: &mut SyncScheduleStatus,
    sched: &SyncSchedule,
    o: &Observed,
    conn_ready: bool,
    avail: &SyncNowAvailability,
    blocked: Option<&str>,
    now: Timestamp,
) {
    let failures_before_not_ready = o.config.failures_before_not_ready;
    let generation = sched.metadata.generation;
    let failing = failures_before_not_ready > 0
        && i64::from(st.consecutive_failures) >= i64::from(failures_before_not_ready);
    let conn = &sched.spec.connection_ref.name;
    let ready = |status: bool, reason: &str, message: String| {
        condition_at(cond::READY, status, reason, message, generation, now)
    };
    let ready = match (&o.connection, conn_ready, blocked) {
        (None, _, _) => ready(
            false,
            "ConnectionNotFound",
            format!("RosterConnection {conn} does not exist in this namespace"),
        ),
        (Some(_), false, _) => ready(
            false,
            "ConnectionNotReady",
            format!("RosterConnection {conn} is not Ready: see its conditions"),
        ),
        (Some(_), true, _) if failing => ready(
            false,
            crate::controller::kstatus::REPEATED_FAILURES,
            repeated_failures_message(st),
        ),
        (Some(_), true, None) if st.queued_run.is_some() => ready(
            true,
            "Queued",
            format!(
                "the scheduled run of slot {} waits for a free sync slot: at most {} sync Jobs run \
                 at once in the cluster (--max-concurrent-syncs); it starts in order, oldest due \
                 first, when one finishes",
                st.queued_run
                    .as_ref()
                    .map(|q| q.slot.0.to_string())
                    .unwrap_or_default(),
                o.cap.cap
            ),
        ),
        (Some(_), true, Some(why)) => ready(
            true,
            "SlotWaiting",
            format!("a slot is due but waits: {why}"),
        ),
        (Some(_), true, None) if sched.spec.suspend => ready(
            true,
            "Suspended",
            "scheduled syncs are suspended; Sync Now still works".into(),
        ),
        (Some(_), true, None) => ready(
            true,
            "Scheduled",
            format!(
                "next sync at {}{}",
                st.next_sync_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                st.next_sync_jitter
                    .as_ref()
                    .map(|j| format!(" ({j} jitter after the slot's time)"))
                    .unwrap_or_default()
            ),
        ),
    };
    set_condition(&mut st.conditions, ready);
    let (suspended, reason, message) = if sched.spec.suspend {
        (true, "Suspended", "spec.suspend is true")
    } else {
        (false, "Active", "scheduled syncs run")
    };
    set_condition(
        &mut st.conditions,
        condition_at(cond::SUSPENDED, suspended, reason, message, generation, now),
    );
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

/// The message of a schedule whose last runs failed: how many, the latest failure's summary, and
/// what makes it Ready again.
fn repeated_failures_message(st: &SyncScheduleStatus) -> String {
    let latest = st
        .recent_runs
        .iter()
        .find(|r| r.result == Some(RunResult::Failed))
        .map(|r| format!(" (latest: run {}: {})", r.run_id, r.summary))
        .unwrap_or_default();
    format!(
        "the last {} runs failed{latest}; fix the cause (`kubectl roster history` lists the runs), \
         the next successful run makes the schedule Ready again",
        st.consecutive_failures
    )
}
