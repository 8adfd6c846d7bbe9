//! `SyncSchedule`: when a connection syncs, and the Sync Now / approval requests.
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LocalObjectReference, RunResult, Trigger, conditions_schema};

/// When a RosterConnection syncs: a daily, weekly or monthly slot at a local time in a time zone,
/// daily runs only inside the off-peak window. Annotate with `rostersync.io/sync-now: <token>` for one
/// immediate sync, and with `rostersync.io/approve-removals: <run id>` to approve a held run.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "rostersync.io",
    version = "v1alpha1",
    kind = "SyncSchedule",
    namespaced,
    status = "SyncScheduleStatus",
    shortname = "ssched",
    category = "rostersync",
    printcolumn = r#"{"name":"Connection","type":"string","jsonPath":".spec.connectionRef.name"}"#,
    printcolumn = r#"{"name":"Frequency","type":"string","jsonPath":".spec.frequency"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last Result","type":"string","jsonPath":".status.lastRun.result"}"#,
    printcolumn = r#"{"name":"Last Sync","type":"date","jsonPath":".status.lastRun.finishedAt"}"#,
    printcolumn = r#"{"name":"Next Sync","type":"string","jsonPath":".status.nextSyncTime"}"#,
    printcolumn = r#"{"name":"Sync Now","type":"string","priority":1,"jsonPath":".status.syncNow.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.frequency != 'Weekly' || has(self.dayOfWeek)",
        "message": "dayOfWeek is required when frequency is Weekly",
        "fieldPath": ".dayOfWeek",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.frequency == 'Weekly' || !has(self.dayOfWeek)",
        "message": "dayOfWeek is only allowed when frequency is Weekly",
        "fieldPath": ".dayOfWeek",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "self.frequency != 'Monthly' || has(self.dayOfMonth)",
        "message": "dayOfMonth is required when frequency is Monthly",
        "fieldPath": ".dayOfMonth",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.frequency == 'Monthly' || !has(self.dayOfMonth)",
        "message": "dayOfMonth is only allowed when frequency is Monthly",
        "fieldPath": ".dayOfMonth",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "self.frequency != 'Daily' || !has(self.offPeakWindow) || (self.offPeakWindow.start < self.offPeakWindow.end ? (self.at >= self.offPeakWindow.start && self.at < self.offPeakWindow.end) : (self.at >= self.offPeakWindow.start || self.at < self.offPeakWindow.end))",
        "message": "daily syncs run only in off-peak hours: at must fall inside offPeakWindow (start inclusive, end exclusive; default 20:00-06:00)",
        "fieldPath": ".at"
    }
]))]
pub struct SyncScheduleSpec {
    /// The RosterConnection (same namespace) this schedule syncs.
    pub connection_ref: LocalObjectReference,

    /// Stop scheduled syncs (for example over the summer). Sync Now still works.
    #[serde(default)]
    pub suspend: bool,

    /// How often to sync: `Daily`, `Weekly` (with `dayOfWeek`) or `Monthly` (with `dayOfMonth`).
    pub frequency: Frequency,

    /// Local time of day of the slot, `HH:MM` (24-hour, 00:00 to 23:59), in `timeZone`.
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub at: String,

    /// Day of the week of a Weekly schedule (required for and only allowed with Weekly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<DayOfWeek>,

    /// Day of the month of a Monthly schedule, 1 to 31 (required for and only allowed with Monthly).
    /// In a month without that day the sync runs on the month's last day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31))]
    pub day_of_month: Option<i32>,

    /// IANA time zone of `at` and `offPeakWindow`, for example `America/Chicago`. DST is handled: a slot
    /// in a spring-forward gap runs right after the gap, a slot in a fall-back repeat runs once.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
    )]
    pub time_zone: String,

    /// Off-peak hours in `timeZone`; daily syncs must be scheduled inside them. May wrap midnight.
    #[serde(default)]
    pub off_peak_window: OffPeakWindow,

    /// A slot missed by more than this many minutes (controller down, connection not ready) is
    /// recorded as missed instead of run late. At least 1.
    #[serde(default = "default_starting_deadline")]
    #[schemars(range(min = 1))]
    pub starting_deadline_minutes: i32,

    /// Settings of the Job that runs each sync.
    #[serde(default)]
    pub job: JobSettings,

    /// How many finished Jobs to keep.
    #[serde(default)]
    pub history: HistoryLimits,
}

fn default_starting_deadline() -> i32 {
    120
}

/// How often a schedule runs.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum DayOfWeek {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl DayOfWeek {
    pub fn to_jiff(self) -> jiff::civil::Weekday {
        use jiff::civil::Weekday as W;
        match self {
            DayOfWeek::Monday => W::Monday,
            DayOfWeek::Tuesday => W::Tuesday,
            DayOfWeek::Wednesday => W::Wednesday,
            DayOfWeek::Thursday => W::Thursday,
            DayOfWeek::Friday => W::Friday,
            DayOfWeek::Saturday => W::Saturday,
            DayOfWeek::Sunday => W::Sunday,
        }
    }
}

/// Off-peak hours, `HH:MM` to `HH:MM` (start inclusive, end exclusive); may wrap midnight.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.start != self.end",
    "message": "offPeakWindow start and end must differ (use e.g. 20:00 to 06:00; the window may wrap midnight)",
    "fieldPath": ".end"
}]))]
pub struct OffPeakWindow {
    /// Start of the window, `HH:MM` (inclusive). Default 20:00.
    #[serde(default = "default_window_start")]
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub start: String,
    /// End of the window, `HH:MM` (exclusive). Default 06:00.
    #[serde(default = "default_window_end")]
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub end: String,
}

impl Default for OffPeakWindow {
    fn default() -> Self {
        OffPeakWindow {
            start: default_window_start(),
            end: default_window_end(),
        }
    }
}

fn default_window_start() -> String {
    "20:00".to_string()
}

fn default_window_end() -> String {
    "06:00".to_string()
}

/// Settings of the Job that runs each sync.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSettings {
    /// Retries of a failed sync pod (0 to 6). Failures that a retry cannot fix (bad credentials,
    /// invalid config, a held run) fail the Job at once.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 6))]
    pub backoff_limit: i32,
    /// Longest a sync Job may run, in seconds (at least 60).
    #[serde(default = "default_active_deadline")]
    #[schemars(range(min = 60))]
    pub active_deadline_seconds: i64,
    /// Delete finished Jobs this many seconds after they finish (optional; history limits apply too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// CPU and memory of the sync container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: default_active_deadline(),
            ttl_seconds_after_finished: None,
            resources: None,
        }
    }
}

fn default_backoff_limit() -> i32 {
    1
}

fn default_active_deadline() -> i64 {
    7200
}

/// How many finished Jobs to keep.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryLimits {
    /// Successful Jobs to keep (0 to 20).
    #[serde(default = "default_successful_limit")]
    #[schemars(range(min = 0, max = 20))]
    pub successful_jobs_history_limit: i32,
    /// Failed Jobs to keep (0 to 20).
    #[serde(default = "default_failed_limit")]
    #[schemars(range(min = 0, max = 20))]
    pub failed_jobs_history_limit: i32,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            successful_jobs_history_limit: default_successful_limit(),
            failed_jobs_history_limit: default_failed_limit(),
        }
    }
}

fn default_successful_limit() -> i32 {
    3
}

fn default_failed_limit() -> i32 {
    5
}

/// Observed state of a SyncSchedule.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncScheduleStatus {
    /// `Ready`, `Suspended` and `SyncNowAvailable`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The next scheduled slot (absent while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_time: Option<Time>,
    /// The latest scheduled slot that was handled (run or recorded as missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the latest successful run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// When the latest failed or held run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// Failed runs since the last success.
    #[serde(default)]
    pub consecutive_failures: i32,
    /// Slots recorded as missed since the schedule was created.
    #[serde(default)]
    pub missed_slots: i64,
    /// Names of the sync Jobs currently running.
    #[serde(default)]
    pub active: Vec<String>,
    /// The latest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunStatus>,
    /// Whether Sync Now is available, why not, and from when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_now: Option<SyncNowStatus>,
    /// The last approval (`rostersync.io/approve-removals`) that was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_approval: Option<String>,
    /// The most recent runs, newest first (at most 5).
    #[serde(default)]
    #[schemars(length(max = 5))]
    pub recent_runs: Vec<RunStatus>,
    /// The generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One sync run as seen by the schedule.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// The Job that ran it.
    pub job: String,
    /// The run's id (also in `rostersync history`).
    pub run_id: String,
    /// `Scheduled`, `Manual` or `CatchUp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// `Running`, `Succeeded`, `Failed` or `Held`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// A one-line summary of the counts or the failure reason (no personal data).
    #[serde(default)]
    pub summary: String,
}

/// Sync Now availability (the setup guide's rule: one manual sync per scheduled run, again after a
/// failure).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncNowStatus {
    /// Whether a Sync Now request would start a run now.
    pub available: bool,
    /// `Available`, `RunActive`, `UsedSinceLastScheduledRun`, `ConnectionNotReady`, ...
    pub reason: String,
    /// When Sync Now becomes available again, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_after: Option<Time>,
    /// The last `rostersync.io/sync-now` token handled (accepted or rejected); it never fires again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_token: Option<String>,
}
