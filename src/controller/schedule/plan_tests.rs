//! Table tests of the SyncSchedule plan: objects from inline YAML, an injected `now`.
//! (Over 400 lines: one test per branch of the plan, kept together so the table reads as a spec.)
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;

use super::admission::CapView;
use super::model::{Plan, PlanConfig, Requeue};
use super::observe::{FinishedRun, Observed};
use super::plan::{BLOCKED_RETRY, plan};
use crate::api::{JobPodSettings, RosterConnection, RunStatus, SyncSchedule};
use crate::controller::job::{self, RunRequest};
use crate::notify::Notice;
use crate::run::{ConnectionKey, Counts, RunRecord, RunResult, Trigger};

const SCHEDULE: &str = r#"
apiVersion: rostersync.io/v1alpha1
kind: SyncSchedule
metadata:
  name: nightly
  namespace: district-a
  uid: uid-1
  generation: 1
  creationTimestamp: "2026-01-01T00:00:00Z"
spec:
  connectionRef: {name: springfield}
  frequency: Daily
  at: "02:00"
  timeZone: UTC
  offPeakWindow: {start: "01:00", end: "05:00"}
  startingDeadlineMinutes: 60
  history: {successfulJobsHistoryLimit: 2, failedJobsHistoryLimit: 1}
"#;

fn connection(ready: bool) -> RosterConnection {
    yaml(&format!(
        r#"
apiVersion: rostersync.io/v1alpha1
kind: RosterConnection
metadata: {{name: springfield, namespace: district-a, uid: uid-c}}
spec:
  districtId: 0123456789abcdef01234567
  credentialsSecretRef: {{name: clever}}
status:
  conditions:
  - {{type: Ready, status: "{}", reason: Verified, message: ok, lastTransitionTime: "2026-01-01T00:00:00Z"}}
"#,
        if ready { "True" } else { "False" }
    ))
}

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("test YAML: {e}\n{text}"))
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A Job of the schedule: `state` is `active`, `Complete` or `Failed`.
fn job(name: &str, state: &str, finished: &str, reported: bool) -> Job {
    let conditions = match state {
        "active" => String::new(),
        s => format!(
            r#"conditions: [{{type: {s}, status: "True", lastTransitionTime: "{finished}"}}]"#
        ),
    };
    let annotations = if reported {
        r#"annotations: {rostersync.io/reported: done}"#
    } else {
        ""
    };
    yaml(&format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: district-a
  creationTimestamp: "2026-01-01T01:00:00Z"
  labels:
    app.kubernetes.io/managed-by: rostersync
    rostersync.io/connection: springfield
    rostersync.io/schedule: nightly
    rostersync.io/trigger: Scheduled
    rostersync.io/run-id: {name}-id
  {annotations}
  ownerReferences:
  - {{apiVersion: rostersync.io/v1alpha1, kind: SyncSchedule, name: nightly, uid: uid-1, controller: true}}
status: {{{conditions}}}
"#
    ))
}

fn run_status(
    id: &str,
    job: &str,
    trigger: Trigger,
    result: RunResult,
    started: &str,
) -> RunStatus {
    RunStatus {
        job: job.into(),
        run_id: id.into(),
        trigger: Some(trigger),
        result: Some(result),
        started_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
            started,
        ))),
        finished_at: None,
        summary: String::new(),
    }
}

fn record(id: &str, result: RunResult) -> RunRecord {
    RunRecord {
        run_id: id.into(),
        connection: ConnectionKey::new("district-a", "springfield").expect("key"),
        schedule: Some("nightly".into()),
        trigger: Trigger::Scheduled,
        job: Some("nightly-done".into()),
        dry_run: false,
        started_at: ts("2026-01-01T02:00:00Z"),
        finished_at: Some(ts("2026-01-01T02:01:00Z")),
        result,
        retriable: false,
        counts: Counts::default(),
        clever: Default::default(),
        problems: 0,
        problem_codes: Default::default(),
        reason: Some(
            if result == RunResult::Succeeded {
                "Synced"
            } else {
                "RemovalGuard"
            }
            .into(),
        ),
        message: Some("m".into()),
        timings: serde_json::json!({}),
        duration_ms: Some(60_000),
        notified: false,
        attempts: 1,
    }
}

/// The world one test starts from.
struct World {
    schedule: SyncSchedule,
    connection: Option<RosterConnection>,
    jobs: Vec<Job>,
    finished: Vec<FinishedRun>,
    lost_check_at: Option<Timestamp>,
    /// The operator's sync Job defaults.
    defaults: JobPodSettings,
    /// The cluster's cap as observed (default: no cap).
    cap: CapView,
    /// `--slot-jitter-seconds` (default here: 0, so the slots are the nominal ones).
    jitter: u32,
}

impl World {
    fn new() -> World {
        World {
            schedule: yaml(SCHEDULE),
            connection: Some(connection(true)),
            jobs: Vec::new(),
            finished: Vec::new(),
            lost_check_at: None,
            defaults: JobPodSettings::default(),
            cap: CapView::default(),
            jitter: 0,
        }
    }

    fn annotate(mut self, key: &str, value: &str) -> World {
        self.schedule
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    fn runs(mut self, runs: Vec<RunStatus>) -> World {
        self.schedule
            .status
            .get_or_insert_with(Default::default)
            .recent_runs = runs;
        self
    }

    fn handled_through(mut self, slot: &str) -> World {
        self.schedule
            .status
            .get_or_insert_with(Default::default)
            .last_schedule_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(
            slot,
        )));
        self
    }

    fn plan(&self, now: &str) -> Plan {
        let observed = Observed {
            schedule: self.schedule.clone(),
            connection: self.connection.clone(),
            jobs: self.jobs.clone(),
            finished: self.finished.clone(),
            lost_check_at: self.lost_check_at,
            config: PlanConfig {
                email_repeat_interval: jiff::SignedDuration::from_hours(24),
                failures_before_not_ready: 3,
                slot_jitter_seconds: self.jitter,
            },
            job_problems: job::template_problems(&self.schedule.spec.job.pod, &self.defaults),
            cap: self.cap.clone(),
        };
        plan(&observed, ts(now))
    }
}

fn condition<'a>(p: &'a Plan, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", p.status.conditions));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

fn reasons(p: &Plan) -> Vec<&'static str> {
    p.events.iter().map(|e| e.reason).collect()
}

const SLOT: &str = "2026-01-01T02:00:00Z";

#[test]
fn scheduled_slot_due_starts_one_run() {
    let p = World::new().plan("2026-01-01T02:00:30Z");
    let request = RunRequest::Slot {
        slot: ts(SLOT),
        trigger: Trigger::Scheduled,
    };
    assert_eq!(p.starts, vec![request.clone()]);
    let running = &p.status.recent_runs[0];
    assert_eq!(running.job, job::job_name("nightly", &request));
    assert_eq!(running.result, Some(RunResult::Running));
    assert_eq!(p.status.active, vec![running.job.clone()]);
    assert_eq!(
        p.status.last_schedule_time.as_ref().map(|t| t.0),
        Some(ts(SLOT))
    );
    assert_eq!(condition(&p, "Ready").1, "Scheduled");
    assert_eq!(condition(&p, "SyncNowAvailable").1, "RunActive");
    assert!(p.write_status);
    assert!(p.events.is_empty() && p.reports.is_empty() && p.emails.is_empty());
}

#[test]
fn slot_not_due_starts_nothing_and_wakes_at_the_slot() {
    let p = World::new().plan("2026-01-01T01:00:00Z");
    assert!(p.starts.is_empty());
    assert_eq!(p.requeue, Requeue::At(ts(SLOT)));
    assert_eq!(p.next_slot, Some(ts(SLOT).as_second() as f64));
    assert_eq!(p.status.last_schedule_time, None);
    assert_eq!(
        condition(&p, "Ready"),
        ("True", "Scheduled", "next sync at 2026-01-01T02:00:00Z")
    );
}

#[test]
fn slot_already_started_is_not_started_again() {
    let mut w = World::new();
    let request = RunRequest::Slot {
        slot: ts(SLOT),
        trigger: Trigger::Scheduled,
    };
    w.jobs.push(job(
        &job::job_name("nightly", &request),
        "active",
        "",
        false,
    ));
    let p = w.plan("2026-01-01T02:00:30Z");
    assert!(p.starts.is_empty(), "{:?}", p.starts);
    assert_eq!(
        p.status.last_schedule_time.as_ref().map(|t| t.0),
        Some(ts(SLOT))
    );
}

#[test]
fn due_slot_waits_for_an_active_run_or_a_ready_connection() {
    let now = "2026-01-01T02:00:30Z";
    let mut active = World::new();
    // A run of the same connection by another schedule blocks too.
    let mut other = job("weekly-123", "active", "", false);
    other.metadata.owner_references = None;
    other
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("rostersync.io/schedule".into(), "weekly".into());
    active.jobs.push(other);
    let mut not_ready = World::new();
    not_ready.connection = Some(connection(false));
    let mut missing = World::new();
    missing.connection = None;
    let cases = [
        (
            active,
            ("True", "SlotWaiting"),
            "a run of the connection is active",
        ),
        (not_ready, ("False", "ConnectionNotReady"), "not Ready"),
        (missing, ("False", "ConnectionNotFound"), "does not exist"),
    ];
    for (world, (status, reason), message) in cases {
        let p = world.plan(now);
        assert!(p.starts.is_empty(), "{reason}");
        let (s, r, m) = condition(&p, "Ready");
        assert_eq!((s, r), (status, reason));
        assert!(m.contains(message) || reason != "SlotWaiting", "{m}");
        // The slot is not handled: it runs once the block clears, within the deadline.
        assert_eq!(p.status.last_schedule_time, None, "{reason}");
        let retry = ts(now) + jiff::SignedDuration::try_from(BLOCKED_RETRY).expect("dur");
        assert_eq!(p.requeue, Requeue::At(retry), "{reason}");
    }
}

#[test]
fn a_slot_blocked_past_its_deadline_is_missed_with_an_event_and_an_email() {
    let mut w = World::new();
    w.connection = Some(connection(false));
    // 02:00 + 60 min deadline: at 03:30 the slot can no longer start.
    let p = w.plan("2026-01-01T03:30:00Z");
    assert!(p.starts.is_empty());
    assert_eq!(p.status.missed_slots, 1);
    assert_eq!(reasons(&p), ["SyncMissed"]);
    assert_eq!(
        p.status.last_schedule_time.as_ref().map(|t| t.0),
        Some(ts(SLOT))
    );
    match p.emails.as_slice() {
        [email] => match &email.notice {
            Notice::ScheduleMissed { schedule, slot, .. } => {
                assert_eq!(schedule, "nightly");
                assert_eq!(slot.as_second(), ts(SLOT).as_second());
            }
            other => panic!("not a missed slot: {other:?}"),
        },
        other => panic!("one email expected: {other:?}"),
    }
    // A late but not missed slot is caught up.
    let p = World::new().plan("2026-01-01T02:30:00Z");
    assert_eq!(
        p.starts,
        vec![RunRequest::Slot {
            slot: ts(SLOT),
            trigger: Trigger::CatchUp
        }]
    );
}

#[test]
fn suspended_schedule_starts_no_slot_but_still_handles_it() {
    let mut w = World::new();
    w.schedule.spec.suspend = true;
    let p = w.plan("2026-01-01T02:00:30Z");
    assert!(p.starts.is_empty());
    assert_eq!(condition(&p, "Suspended").0, "True");
    assert_eq!(condition(&p, "Ready").1, "Suspended");
    assert_eq!(p.status.next_sync_time, None);
    assert_eq!(p.next_slot, None);
    assert_eq!(p.status.missed_slots, 0);
}

#[test]
fn sync_now_accepted_then_never_again_for_the_same_token() {
    let w = World::new().annotate("rostersync.io/sync-now", "t1");
    let p = w.plan("2026-01-01T01:00:00Z");
    let request = RunRequest::SyncNow { token: "t1".into() };
    assert_eq!(p.starts, vec![request.clone()]);
    assert_eq!(reasons(&p), ["SyncNowAccepted"]);
    assert_eq!(
        p.status
            .sync_now
            .as_ref()
            .and_then(|s| s.last_handled_token.as_deref()),
        Some("t1")
    );
    assert_eq!(p.status.recent_runs[0].trigger, Some(Trigger::Manual));

    // The next reconcile sees its own status: the token is handled.
    let mut again = World::new().annotate("rostersync.io/sync-now", "t1");
    again.schedule.status = Some(p.status.clone());
    again.jobs.push(job(
        &job::job_name("nightly", &request),
        "active",
        "",
        false,
    ));
    let p = again.plan("2026-01-01T01:00:10Z");
    assert!(p.starts.is_empty() && p.events.is_empty(), "{p:?}");
}

#[test]
fn sync_now_rejected_for_each_reason() {
    let scheduled = run_status(
        "s-1",
        "nightly-1",
        Trigger::Scheduled,
        RunResult::Succeeded,
        "2026-01-01T02:00:00Z",
    );
    let manual = run_status(
        "m-1",
        &format!("{}-now-aaaa", job::job_prefix("nightly")),
        Trigger::Manual,
        RunResult::Succeeded,
        "2026-01-01T03:00:00Z",
    );
    let mut not_ready = World::new();
    not_ready.connection = Some(connection(false));
    let mut active = World::new();
    active.jobs.push(job("nightly-busy", "active", "", false));
    let used = World::new()
        .runs(vec![manual, scheduled])
        .handled_through(SLOT);
    let cases = [
        (not_ready, "ConnectionNotReady"),
        (active, "RunActive"),
        (used, "UsedSinceLastScheduledRun"),
    ];
    for (world, reason) in cases {
        let p = world
            .handled_through(SLOT)
            .annotate("rostersync.io/sync-now", "t2")
            .plan("2026-01-01T04:00:00Z");
        assert!(p.starts.is_empty(), "{reason}");
        assert_eq!(reasons(&p), ["SyncNowRejected"], "{reason}");
        assert!(p.events[0].message.contains(reason), "{:?}", p.events[0]);
        assert!(p.events[0].warning);
        let sn = p.status.sync_now.as_ref().expect("syncNow");
        assert_eq!(sn.last_handled_token.as_deref(), Some("t2"), "{reason}");
        assert_eq!(sn.reason, reason);
        assert_eq!(condition(&p, "SyncNowAvailable").0, "False");
    }
}

#[test]
fn sync_now_is_available_again_after_a_failed_manual_run() {
    let scheduled = run_status(
        "s-1",
        "nightly-1",
        Trigger::Scheduled,
        RunResult::Succeeded,
        "2026-01-01T02:00:00Z",
    );
    let failed = run_status(
        "m-1",
        &format!("{}-now-aaaa", job::job_prefix("nightly")),
        Trigger::Manual,
        RunResult::Failed,
        "2026-01-01T03:00:00Z",
    );
    let p = World::new()
        .runs(vec![failed, scheduled])
        .handled_through(SLOT)
        .annotate("rostersync.io/sync-now", "t3")
        .plan("2026-01-01T04:00:00Z");
    assert_eq!(p.starts, vec![RunRequest::SyncNow { token: "t3".into() }]);
    assert_eq!(reasons(&p), ["SyncNowAccepted"]);
}

#[test]
fn approval_of_the_held_run_starts_it_once() {
    let held = run_status(
        "r-held",
        "nightly-1",
        Trigger::Scheduled,
        RunResult::Held,
        SLOT,
    );
    let p = World::new()
        .runs(vec![held.clone()])
        .handled_through(SLOT)
        .annotate("rostersync.io/approve-removals", "r-held")
        .plan("2026-01-01T04:00:00Z");
    assert_eq!(
        p.starts,
        vec![RunRequest::Approval {
            held_run_id: "r-held".into()
        }]
    );
    assert_eq!(reasons(&p), ["RemovalsApproved"]);
    assert_eq!(p.status.last_handled_approval.as_deref(), Some("r-held"));

    // While a run is active the approval waits (not handled, no Event).
    let mut busy = World::new()
        .runs(vec![held])
        .handled_through(SLOT)
        .annotate("rostersync.io/approve-removals", "r-held");
    busy.jobs.push(job("nightly-busy", "active", "", false));
    let p = busy.plan("2026-01-01T04:00:00Z");
    assert!(p.starts.is_empty() && p.events.is_empty());
    assert_eq!(p.status.last_handled_approval, None);
}

#[test]
fn approval_of_a_run_that_is_not_held_is_rejected_and_handled() {
    let ok = run_status(
        "r-ok",
        "nightly-1",
        Trigger::Scheduled,
        RunResult::Succeeded,
        SLOT,
    );
    for approved in ["r-ok", "r-unknown"] {
        let p = World::new()
            .runs(vec![ok.clone()])
            .handled_through(SLOT)
            .annotate("rostersync.io/approve-removals", approved)
            .plan("2026-01-01T04:00:00Z");
        assert!(p.starts.is_empty());
        assert_eq!(reasons(&p), ["ApprovalRejected"]);
        assert_eq!(p.status.last_handled_approval.as_deref(), Some(approved));
    }
}

#[test]
fn a_finished_job_is_reported_once() {
    let mut w = World::new().handled_through(SLOT);
    w.jobs.push(job(
        "nightly-done",
        "Complete",
        "2026-01-01T02:01:00Z",
        false,
    ));
    w.finished.push(FinishedRun {
        job: "nightly-done".into(),
        run: record("r-done", RunResult::Succeeded),
        connection: w.connection.clone(),
        job_gone: false,
    });
    let p = w.plan("2026-01-01T02:05:00Z");
    assert_eq!(p.reports.len(), 1);
    let report = &p.reports[0];
    assert_eq!(
        (report.job.as_str(), report.run_id.as_str()),
        ("nightly-done", "r-done")
    );
    assert!(matches!(
        report.email.as_ref().map(|e| &e.notice),
        Some(Notice::RunSucceeded { .. })
    ));
    assert_eq!(reasons(&p), ["SyncSucceeded"]);
    assert_eq!(
        p.finished_metrics,
        vec![(RunResult::Succeeded, Some(60.0), Default::default())]
    );
    assert_eq!(
        p.status.last_successful_time.as_ref().map(|t| t.0),
        Some(ts("2026-01-01T02:01:00Z"))
    );
    let entry = &p.status.recent_runs[0];
    assert_eq!(
        entry.summary,
        record("r-done", RunResult::Succeeded).summary()
    );
    assert_eq!(p.status.last_run.as_ref(), Some(entry));

    // Reported again (the Job's mark did not stick): no second Event, counter or metric.
    w.schedule.status = Some(p.status.clone());
    let p2 = w.plan("2026-01-01T02:06:00Z");
    assert_eq!(p2.reports.len(), 1, "the Job still gets its mark");
    assert!(p2.events.is_empty() && p2.finished_metrics.is_empty());
    assert_eq!(
        p2.status.consecutive_failures,
        p.status.consecutive_failures
    );
}

#[test]
fn held_and_failed_runs_count_as_failures_with_their_events() {
    for (result, reason) in [
        (RunResult::Held, "SyncHeld"),
        (RunResult::Failed, "SyncFailed"),
    ] {
        let mut w = World::new().handled_through(SLOT);
        w.finished.push(FinishedRun {
            job: "nightly-done".into(),
            run: record("r-bad", result),
            connection: None,
            job_gone: false,
        });
        let p = w.plan("2026-01-01T02:05:00Z");
        assert_eq!(reasons(&p), [reason]);
        assert!(p.events[0].warning);
        assert_eq!(p.status.consecutive_failures, 1);
        assert_eq!(p.reports[0].email, None, "no connection, no email");
        if result == RunResult::Held {
            assert!(
                p.events[0]
                    .message
                    .contains("rostersync.io/approve-removals=r-bad")
            );
        }
    }
}

#[test]
fn reported_jobs_beyond_the_history_limits_are_pruned_oldest_first() {
    let mut w = World::new().handled_through(SLOT);
    for (name, state, at) in [
        ("ok-1", "Complete", "2026-01-01T01:01:00Z"),
        ("ok-2", "Complete", "2026-01-01T01:02:00Z"),
        ("ok-3", "Complete", "2026-01-01T01:03:00Z"),
        ("bad-1", "Failed", "2026-01-01T01:04:00Z"),
        ("bad-2", "Failed", "2026-01-01T01:05:00Z"),
    ] {
        w.jobs.push(job(name, state, at, true));
    }
    // Not reported yet: never pruned.
    w.jobs
        .push(job("ok-0", "Complete", "2026-01-01T00:59:00Z", false));
    let p = w.plan("2026-01-01T02:05:00Z");
    let mut pruned = p.prune.clone();
    pruned.sort();
    assert_eq!(pruned, ["bad-1", "ok-1"]);
}

#[test]
fn an_invalid_schedule_is_reported_and_waits_for_a_change() {
    let mut w = World::new().annotate("rostersync.io/sync-now", "t9");
    w.schedule.spec.time_zone = "Mars/Olympus_Mons".into();
    let p = w.plan("2026-01-01T02:00:30Z");
    assert_eq!(condition(&p, "Ready").1, "InvalidSchedule");
    assert!(p.starts.is_empty() && p.events.is_empty());
    assert_eq!(p.requeue, Requeue::AwaitChange);
    assert!(p.write_status);
}

#[test]
fn an_invalid_job_template_starts_nothing_and_says_why_once() {
    // The operator's defaults mount a CA bundle; the schedule replaces the volumes (its own cache)
    // but not the mounts, so the default mount names a volume that is gone.
    let mut w = World::new().annotate("rostersync.io/sync-now", "t1");
    w.defaults = yaml(
        "extraVolumes: [{name: ca, secret: {secretName: corp-ca}}]\n\
         extraVolumeMounts: [{name: ca, mountPath: /etc/ca}]",
    );
    w.schedule.spec.job.pod = yaml("extraVolumes: [{name: cache, emptyDir: {}}]");
    let p = w.plan("2026-01-01T02:00:30Z");
    assert!(p.starts.is_empty(), "{:?}", p.starts);
    let (status, reason, message) = condition(&p, "Ready");
    assert_eq!((status, reason), ("False", "InvalidJobTemplate"));
    assert!(
        message.contains("mounts volume \"ca\" at /etc/ca")
            && message.contains("the operator's sync Job defaults")
            && message.contains("extraVolumes (spec.job) has cache"),
        "{message}"
    );
    assert_eq!(reasons(&p), ["InvalidJobTemplate"]);
    assert!(p.write_status && p.status.next_sync_time.is_none());
    assert_eq!(p.requeue, Requeue::AwaitChange);
    // The slot and the Sync Now token stay pending: nothing is recorded as handled.
    assert_eq!(p.status.last_schedule_time, None);
    assert!(p.status.sync_now.is_none());

    // Looked at again: the same problem is not announced again.
    w.schedule.status = Some(p.status.clone());
    let again = w.plan("2026-01-01T02:01:00Z");
    assert!(again.events.is_empty() && !again.write_status);

    // Fixed (the schedule mounts its own volume): the due slot runs.
    w.schedule.spec.job.pod = yaml(
        "extraVolumes: [{name: cache, emptyDir: {}}]\n\
         extraVolumeMounts: [{name: cache, mountPath: /var/cache/rostersync}]",
    );
    let fixed = w.plan("2026-01-01T02:02:00Z");
    assert_eq!(fixed.starts, [RunRequest::SyncNow { token: "t1".into() }]);
    // The slot missed meanwhile is not lost: it waits for that run.
    assert_eq!(condition(&fixed, "Ready").0, "True");
    assert_eq!(condition(&fixed, "Ready").1, "SlotWaiting");
}

#[test]
fn a_run_whose_job_is_gone_is_reported_once_without_marking_a_job() {
    let mut w = World::new().handled_through(SLOT);
    let mut lost = record("r-lost", RunResult::Failed);
    lost.reason = Some("JobLost".into());
    w.finished.push(FinishedRun {
        job: "nightly-gone".into(),
        run: lost,
        connection: w.connection.clone(),
        job_gone: true,
    });
    let p = w.plan("2026-01-01T02:05:00Z");
    assert_eq!(p.reports.len(), 1);
    assert!(!p.reports[0].mark_job, "there is no Job to mark");
    assert!(matches!(
        p.reports[0].email.as_ref().map(|e| &e.notice),
        Some(Notice::RunFailed { .. })
    ));
    assert_eq!(reasons(&p), ["SyncFailed"]);
    let entry = &p.status.recent_runs[0];
    assert_eq!(
        (entry.run_id.as_str(), entry.result),
        ("r-lost", Some(RunResult::Failed))
    );
    assert!(p.status.active.is_empty(), "{:?}", p.status.active);
    // Status already has it (a crash before the database mark): no second Event.
    w.schedule.status = Some(p.status.clone());
    let again = w.plan("2026-01-01T02:06:00Z");
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn a_running_run_without_its_job_is_looked_at_again_when_its_grace_ends() {
    let mut w = World::new().handled_through(SLOT);
    w.lost_check_at = Some(ts("2026-01-01T02:07:00Z"));
    let p = w.plan("2026-01-01T02:05:00Z");
    assert_eq!(p.requeue, Requeue::At(ts("2026-01-01T02:07:00Z")));
}

#[test]
fn a_catch_up_at_peak_time_is_recorded_missed_and_says_why() {
    // Back at 05:30 (the window ends at 05:00), within a 4-hour deadline of the 02:00 slot.
    let mut w = World::new().handled_through("2025-12-31T02:00:00Z");
    w.schedule.spec.starting_deadline_minutes = 240;
    let p = w.plan("2026-01-01T05:30:00Z");
    assert!(p.starts.is_empty(), "{:?}", p.starts);
    assert_eq!(reasons(&p), ["SyncMissed"]);
    assert!(
        p.events[0]
            .message
            .contains("outside the off-peak window 01:00-05:00"),
        "{:?}",
        p.events[0]
    );
    assert_eq!(p.status.missed_slots, 1);
    assert_eq!(
        p.status.last_schedule_time.as_ref().map(|t| t.0),
        Some(ts("2026-01-01T02:00:00Z"))
    );
    assert_eq!(
        p.emails.len(),
        1,
        "the missed slot is emailed like any other"
    );
    // At 04:30 (inside the window) the same slot is caught up.
    let p = w.plan("2026-01-01T04:30:00Z");
    assert_eq!(p.starts.len(), 1, "{:?}", p.events);
}

#[test]
fn repeated_failures_make_the_schedule_stalled_until_a_run_succeeds() {
    let mut w = World::new().handled_through(SLOT);
    let mut now = ts("2026-01-01T02:05:00Z");
    let finish = |w: &mut World, id: &str, result: RunResult, now: Timestamp| {
        w.finished = vec![FinishedRun {
            job: format!("nightly-{id}"),
            run: record(id, result),
            connection: None,
            job_gone: false,
        }];
        let p = w.plan(&now.to_string());
        w.schedule.status = Some(p.status.clone());
        p
    };
    for (i, id) in ["r1", "r2"].into_iter().enumerate() {
        let p = finish(&mut w, id, RunResult::Failed, now);
        assert_eq!(p.status.consecutive_failures, i as i32 + 1);
        assert_eq!(
            condition(&p, "Ready").0,
            "True",
            "after {} failure(s)",
            i + 1
        );
        assert!(p.status.conditions.iter().all(|c| c.type_ != "Stalled"));
        now += jiff::SignedDuration::from_mins(1);
    }
    let p = finish(&mut w, "r3", RunResult::Failed, now);
    assert!(p.write_status);
    let (status, reason, message) = condition(&p, "Ready");
    assert_eq!((status, reason), ("False", "RepeatedFailures"));
    assert!(
        message.contains("the last 3 runs failed") && message.contains("r3"),
        "{message}"
    );
    assert_eq!(condition(&p, "Stalled").1, "RepeatedFailures");
    assert!(p.status.conditions.iter().all(|c| c.type_ != "Reconciling"));

    now += jiff::SignedDuration::from_mins(1);
    let p = finish(&mut w, "r4", RunResult::Succeeded, now);
    assert_eq!(condition(&p, "Ready").0, "True");
    assert!(p.status.conditions.iter().all(|c| c.type_ != "Stalled"));
}

#[test]
fn a_schedule_waiting_for_its_connection_is_reconciling() {
    let mut w = World::new();
    w.connection = Some(connection(false));
    let p = w.plan("2026-01-01T01:00:00Z");
    assert_eq!(condition(&p, "Ready").1, "ConnectionNotReady");
    assert_eq!(condition(&p, "Reconciling").0, "True");
    assert_eq!(p.status.observed_generation, w.schedule.metadata.generation);
}

/// A cap of `cap` with `active` Jobs running and these `(due, namespace/name)` runs waiting.
fn cap(cap: u32, active: usize, waiting: &[(&str, &str)]) -> CapView {
    CapView {
        cap,
        primed: true,
        active,
        waiting: waiting
            .iter()
            .map(|(t, k)| (ts(t), k.to_string()))
            .collect(),
    }
}

fn queued(w: World, slot: &str, trigger: Trigger, since: &str) -> World {
    let mut w = w;
    let st = w.schedule.status.get_or_insert_with(Default::default);
    st.queued_run = Some(crate::api::QueuedRun {
        slot: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(slot)),
        trigger,
        since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(since)),
    });
    w.handled_through(slot)
}

#[test]
fn a_due_slot_over_the_cap_is_queued_with_an_event_and_counts_as_handled() {
    let mut w = World::new();
    w.cap = cap(1, 1, &[]);
    let p = w.plan("2026-01-01T02:00:30Z");
    assert!(p.starts.is_empty());
    let q = p.status.queued_run.clone().expect("queued");
    assert_eq!(
        (q.slot.0, q.trigger, q.since.0),
        (ts(SLOT), Trigger::Scheduled, ts("2026-01-01T02:00:30Z"))
    );
    // Handled: it is not a missed slot, and it is not decided again.
    assert_eq!(
        p.status.last_schedule_time.as_ref().map(|t| t.0),
        Some(ts(SLOT))
    );
    assert_eq!(p.status.missed_slots, 0);
    assert_eq!(reasons(&p), ["SyncQueued"]);
    let (status, reason, message) = condition(&p, "Ready");
    assert_eq!((status, reason), ("True", "Queued"));
    assert!(
        message.contains("at most 1 sync Jobs") && message.contains("oldest due first"),
        "{message}"
    );
    assert_eq!(condition(&p, "SyncNowAvailable").1, "RunQueued");
    assert_eq!((p.waiting, p.claim), (Some(ts(SLOT)), None));
    assert_eq!(p.requeue, Requeue::At(ts("2026-01-01T02:00:32Z")));
}

#[test]
fn a_queued_run_starts_as_the_scheduled_run_when_a_place_frees_even_hours_late() {
    // Queued at 02:00:30, a place frees at 04:30: past the 60 min starting deadline and the
    // off-peak window's end (05:00 is still inside, so take 06:00): it is not lost.
    for now in [
        "2026-01-01T02:05:00Z",
        "2026-01-01T04:30:00Z",
        "2026-01-01T06:00:00Z",
    ] {
        let mut w = queued(
            World::new(),
            SLOT,
            Trigger::Scheduled,
            "2026-01-01T02:00:30Z",
        );
        w.cap = cap(1, 0, &[]);
        let p = w.plan(now);
        let request = RunRequest::Slot {
            slot: ts(SLOT),
            trigger: Trigger::Scheduled,
        };
        assert_eq!(p.starts, vec![request], "{now}");
        assert_eq!(p.claim, Some(ts(SLOT)), "{now}");
        assert_eq!(p.waiting, None);
        assert_eq!(p.status.queued_run, None);
        assert_eq!(p.status.missed_slots, 0, "{now}");
        assert_eq!(reasons(&p), ["QueuedRunStarted"], "{now}");
        assert_eq!(p.status.recent_runs[0].trigger, Some(Trigger::Scheduled));
        assert_eq!(condition(&p, "SyncNowAvailable").1, "RunActive");
    }
}

#[test]
fn a_queued_run_keeps_waiting_behind_older_ones_without_a_new_event() {
    let mut w = queued(
        World::new(),
        SLOT,
        Trigger::Scheduled,
        "2026-01-01T02:00:30Z",
    );
    // One place free, but a run due a minute earlier in another namespace takes it.
    w.cap = cap(2, 1, &[("2026-01-01T01:59:00Z", "district-0/nightly")]);
    let p = w.plan("2026-01-01T02:03:00Z");
    assert!(p.starts.is_empty());
    assert!(p.events.is_empty(), "{:?}", p.events);
    assert_eq!(p.waiting, Some(ts(SLOT)));
    assert!(p.status.queued_run.is_some());
    // Behind one run with cap 2: looked at again in 2 s.
    assert_eq!(p.requeue, Requeue::At(ts("2026-01-01T02:03:02Z")));
}

#[test]
fn sync_now_while_a_run_is_queued_is_rejected_as_run_queued() {
    let mut w = queued(
        World::new(),
        SLOT,
        Trigger::Scheduled,
        "2026-01-01T02:00:30Z",
    )
    .annotate("rostersync.io/sync-now", "t1");
    w.cap = cap(1, 1, &[]);
    let p = w.plan("2026-01-01T02:01:00Z");
    assert!(p.starts.is_empty());
    assert_eq!(reasons(&p), ["SyncNowRejected"]);
    assert!(
        p.events[0].message.contains("RunQueued"),
        "{}",
        p.events[0].message
    );
    assert_eq!(
        p.status.sync_now.as_ref().map(|s| s.reason.as_str()),
        Some("RunQueued")
    );
}

#[test]
fn sync_now_is_never_queued_by_the_cap() {
    let mut w = World::new().annotate("rostersync.io/sync-now", "t1");
    w.cap = cap(1, 5, &[]);
    let p = w.plan("2026-01-01T12:00:00Z");
    assert_eq!(p.starts, vec![RunRequest::SyncNow { token: "t1".into() }]);
    assert_eq!(p.claim, None);
}

#[test]
fn suspending_drops_a_queued_run() {
    let mut w = queued(
        World::new(),
        SLOT,
        Trigger::Scheduled,
        "2026-01-01T02:00:30Z",
    );
    w.schedule.spec.suspend = true;
    w.cap = cap(1, 0, &[]);
    let p = w.plan("2026-01-01T02:03:00Z");
    assert!(p.starts.is_empty());
    assert_eq!(p.status.queued_run, None);
    assert_eq!(p.waiting, None);
    assert_eq!(reasons(&p), ["QueuedRunDropped"]);
}

#[test]
fn a_queued_run_whose_job_exists_is_not_started_again() {
    let mut w = queued(
        World::new(),
        SLOT,
        Trigger::Scheduled,
        "2026-01-01T02:00:30Z",
    );
    let request = RunRequest::Slot {
        slot: ts(SLOT),
        trigger: Trigger::Scheduled,
    };
    w.jobs.push(job(
        &job::job_name("nightly", &request),
        "active",
        "",
        false,
    ));
    w.cap = cap(1, 1, &[]);
    let p = w.plan("2026-01-01T02:03:00Z");
    assert!(p.starts.is_empty());
    assert_eq!(p.status.queued_run, None);
    assert_eq!(p.waiting, None);
}

#[test]
fn jitter_delays_the_slot_and_status_shows_it() {
    let mut w = World::new();
    w.jitter = 600;
    let offset = crate::schedule::jitter_offset("district-a/nightly", 600);
    assert!(
        offset.as_secs() > 60,
        "pick a name whose offset is over a minute: {offset:?}"
    );
    let slot = ts(SLOT) + offset;
    // Before the effective slot: nothing starts, the wake-up and status are the effective time.
    let p = w.plan("2026-01-01T02:00:30Z");
    assert!(p.starts.is_empty());
    assert_eq!(p.requeue, Requeue::At(slot));
    assert_eq!(p.status.next_sync_time.as_ref().map(|t| t.0), Some(slot));
    let shown = crate::schedule::format_offset(offset);
    assert_eq!(p.status.next_sync_jitter.as_deref(), Some(shown.as_str()));
    assert_eq!(p.status.slot_jitter_seconds, Some(offset.as_secs()));
    assert!(condition(&p, "Ready").2.contains(&shown));
    // At the effective slot: one Scheduled run of that slot.
    let mut w = World::new();
    w.jitter = 600;
    let p = w.plan(&(slot + jiff::SignedDuration::from_secs(5)).to_string());
    assert_eq!(
        p.starts,
        vec![RunRequest::Slot {
            slot,
            trigger: Trigger::Scheduled
        }]
    );
    // spec.slotJitterSeconds: 0 overrides the operator default.
    let mut w = World::new();
    w.jitter = 600;
    w.schedule.spec.slot_jitter_seconds = Some(0);
    let p = w.plan("2026-01-01T02:00:30Z");
    assert_eq!(p.starts.len(), 1);
    assert_eq!(p.status.next_sync_jitter, None);
}

#[test]
fn a_jitter_change_never_runs_a_handled_slot_twice() {
    // The 02:00 slot ran on time without jitter; the operator then turns jitter on, so the same
    // slot's effective time (02:00 + offset) is after the handled one: it must not run again.
    let mut w = World::new().handled_through(SLOT);
    w.jitter = 600;
    let p = w.plan("2026-01-01T02:30:00Z");
    assert!(p.starts.is_empty(), "{:?}", p.starts);
    assert_eq!(p.status.missed_slots, 0);
}
