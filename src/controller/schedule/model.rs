//! What a SyncSchedule reconcile decides: the plan and its parts.
use jiff::Timestamp;

use crate::api::SyncScheduleStatus;
use crate::controller::job::RunRequest;
use crate::notify::{self, NotifySettings};
use crate::run::RunResult;

/// Operator settings the plan needs.
#[derive(Clone, Copy, Debug)]
pub struct PlanConfig {
    /// Repeats of the same problem are emailed at most once per this interval.
    pub email_repeat_interval: jiff::SignedDuration,
    /// `--failures-before-not-ready`: a schedule whose last this many runs failed is not Ready
    /// (0: never).
    pub failures_before_not_ready: u32,
    /// `--slot-jitter-seconds`: the jitter window of schedules without `spec.slotJitterSeconds`.
    pub slot_jitter_seconds: u32,
}

/// What one reconcile does.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Runs to start, each as a Job (one that already exists counts as started).
    pub starts: Vec<RunRequest>,
    /// Finished runs to report (mark notified, email, mark the Job reported), oldest first.
    pub reports: Vec<Report>,
    /// Emails queued on their own (a missed slot).
    pub emails: Vec<Email>,
    /// Events about the schedule, in order.
    pub events: Vec<Note>,
    /// The whole new status, and whether it differs from the stored one.
    pub status: SyncScheduleStatus,
    pub write_status: bool,
    /// Finished, reported Jobs beyond the history limits.
    pub prune: Vec<String>,
    /// Runs whose outcome is new in status (result, seconds), for the metrics.
    pub finished_metrics: Vec<(RunResult, Option<f64>, crate::run::CleverRequests)>,
    /// When the last run succeeded and when the next slot is (Unix seconds), for the metrics.
    pub last_success: Option<f64>,
    pub next_slot: Option<f64>,
    pub requeue: Requeue,
    /// The due slot of a scheduled run that starts under the cluster's cap: apply takes its place
    /// ([`super::SyncSlots::claim`]) before creating the Job, and starts nothing if it lost it.
    pub claim: Option<Timestamp>,
    /// The due slot of a run that waits for a place in the cap (`None`: nothing waits).
    pub waiting: Option<Timestamp>,
}

/// A finished run to report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub job: String,
    /// Whether the Job exists to be marked reported (not for a run found in `sync_runs` whose Job
    /// is gone).
    pub mark_job: bool,
    /// The run's connection: a run id is only used with it (see `store::runs`).
    pub connection: crate::run::ConnectionKey,
    pub run_id: String,
    pub result: RunResult,
    /// Queued in the same transaction that marks the run notified (so at most once).
    pub email: Option<Email>,
}

/// An email to decide and queue (the notifier applies the settings and repeat suppression).
#[derive(Clone, Debug, PartialEq)]
pub struct Email {
    pub settings: NotifySettings,
    pub notice: notify::Notice,
}

/// A Kubernetes Event about the schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub action: &'static str,
    pub message: String,
}

/// When to reconcile again (watches wake it earlier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    AwaitChange,
    At(Timestamp),
}

impl Plan {
    pub(super) fn new(status: SyncScheduleStatus) -> Plan {
        Plan {
            starts: Vec::new(),
            reports: Vec::new(),
            emails: Vec::new(),
            events: Vec::new(),
            status,
            write_status: false,
            prune: Vec::new(),
            finished_metrics: Vec::new(),
            last_success: None,
            next_slot: None,
            requeue: Requeue::AwaitChange,
            claim: None,
            waiting: None,
        }
    }

    pub(super) fn note(
        &mut self,
        warning: bool,
        reason: &'static str,
        action: &'static str,
        message: String,
    ) {
        self.events.push(Note {
            warning,
            reason,
            action,
            message,
        });
    }
}
