//! A sync run as a typed value: the one owner of what a run is and how it reads.
//!
//! A run is one row of `sync_runs` (its problems are rows of `sync_problems`). The sync Job starts
//! and finishes it, the controller reports it (and writes a Failed record for a pod that died),
//! and `status.recentRuns`, `status.lastSync`, `rostersync history`, `kubectl roster history`,
//! `rostersync sync` and the emails all show it. Every one of them goes through [`RunRecord`]:
//! [`RunRecord::summary`] is the one line they print, [`RunRecord::exit_code`] the one exit
//! code. All SQL on these tables is in [`crate::store::runs`]. Nothing here does I/O.
mod counts;
mod key;

pub use counts::{Counts, EntityCounts, ProblemCodes};
pub use key::{ConnectionKey, InvalidConnectionKey};

pub use crate::api::{RunResult, Trigger};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use crate::api::{LastSync, RunStatus};

/// What a run cost Clever (`sync_runs.clever_requests`): HTTP requests sent (retries included),
/// retries, and 429 answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CleverRequests {
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
}

impl CleverRequests {
    /// From the stored JSON; missing or unreadable fields count 0 (rows written before the column).
    pub fn from_json(v: &serde_json::Value) -> CleverRequests {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The longest summary kept in a status field (the message part is cut, never the reason).
pub const SUMMARY_MAX: usize = 300;

/// One sync run, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub run_id: String,
    pub connection: ConnectionKey,
    pub schedule: Option<String>,
    pub trigger: Trigger,
    pub job: Option<String>,
    /// Computed and reported, nothing applied.
    pub dry_run: bool,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub result: RunResult,
    /// For a Failed run: whether running it again later can succeed.
    pub retriable: bool,
    pub counts: Counts,
    /// Total per-record problems; `problem_codes` breaks them down.
    pub problems: u64,
    pub problem_codes: ProblemCodes,
    /// A stable label (`Synced`, `RemovalGuard`, `CleverUnavailable`, `Interrupted`, ...).
    pub reason: Option<String>,
    /// What happened, for a person (ids and figures only, never personal data).
    pub message: Option<String>,
    /// Phase timings in milliseconds (`fetchMs`, `applyMs`, `totalMs`, ...).
    pub timings: serde_json::Value,
    /// What the run cost Clever.
    pub clever: CleverRequests,
    /// From start to finish, when finished.
    pub duration_ms: Option<u64>,
    /// Whether the controller has reported it (status, Event, email).
    pub notified: bool,
    /// How many times the run id was started (a retriable failure is run again by the Job).
    pub attempts: u32,
}

impl RunRecord {
    /// Whether the run has an outcome.
    pub fn is_finished(&self) -> bool {
        self.result != RunResult::Running
    }

    /// Whether a new attempt under the same run id should run it again (a Job retry): only a
    /// failure that a retry can fix. A success, a held run or a permanent failure is final.
    pub fn runs_again(&self) -> bool {
        self.result == RunResult::Failed && self.retriable
    }

    /// The exit code of `rostersync sync` (and of the sync Job's pod) for this run: 0 succeeded
    /// (also a dry run), 3 held by the removal guard, 1 a failure a retry can fix, 2 any other
    /// failure. The Job's podFailurePolicy keys on these.
    pub fn exit_code(&self) -> u8 {
        match self.result {
            RunResult::Succeeded => 0,
            RunResult::Held => 3,
            RunResult::Failed | RunResult::Running if self.retriable => 1,
            RunResult::Failed | RunResult::Running => 2,
        }
    }

    /// The one line every surface shows for this run (status, history, the plugin): the counts
    /// of a run that applied, else its reason and message. Never personal data.
    pub fn summary(&self) -> String {
        let mut problems = match self.problems {
            0 => String::new(),
            1 => " (1 problem)".into(),
            n => format!(" ({n} problems)"),
        };
        if self.attempts > 1 {
            problems.push_str(&format!(" (attempt {})", self.attempts));
        }
        let line = match (self.result, self.dry_run) {
            (RunResult::Running, _) => "running".to_string(),
            (RunResult::Succeeded, false) => format!("{}{problems}", self.counts.describe()),
            (RunResult::Succeeded, true) => format!(
                "dry run, nothing applied: {}{problems}",
                self.counts.describe()
            ),
            (RunResult::Held | RunResult::Failed, _) => {
                let reason = self.reason.as_deref().unwrap_or("Unknown");
                let attempt = match self.attempts {
                    0 | 1 => String::new(),
                    n => format!(" (attempt {n})"),
                };
                match self.message.as_deref().map(str::trim) {
                    Some(m) if !m.is_empty() => format!("{reason}{attempt}: {}", one_line(m)),
                    _ => format!("{reason}{attempt}"),
                }
            }
        };
        truncate(&line, SUMMARY_MAX)
    }

    /// The run's entry in `status.recentRuns` (`job` is the Job that ran it).
    pub fn status_entry(&self, job: &str) -> RunStatus {
        RunStatus {
            job: job.to_string(),
            run_id: self.run_id.clone(),
            trigger: Some(self.trigger),
            result: Some(self.result),
            started_at: Some(Time(self.started_at)),
            finished_at: self.finished_at.map(Time),
            summary: self.summary(),
        }
    }

    /// The run as `status.lastSync` of its connection.
    pub fn last_sync(&self) -> LastSync {
        LastSync {
            run_id: self.run_id.clone(),
            result: Some(self.result),
            finished_at: self.finished_at.map(Time),
            summary: self.summary(),
        }
    }
}

/// A per-record problem of a run (a row of `sync_problems`). Ids and codes only: never names,
/// birth dates or emails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub record_kind: String,
    pub clever_id: Option<String>,
    pub code: String,
    pub message: String,
}

/// Parses a stored result; an unknown value reads as Failed (never as a success).
pub fn parse_result(s: &str) -> RunResult {
    match s {
        "Succeeded" => RunResult::Succeeded,
        "Held" => RunResult::Held,
        "Running" => RunResult::Running,
        _ => RunResult::Failed,
    }
}

/// Parses a trigger as the API spells it (`CatchUp`) or as a command line might (`catch-up`).
pub fn parse_trigger(s: &str) -> Result<Trigger, String> {
    match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "scheduled" => Ok(Trigger::Scheduled),
        "manual" => Ok(Trigger::Manual),
        "catchup" => Ok(Trigger::CatchUp),
        _ => Err(format!(
            "unknown trigger {s:?}: use Scheduled, Manual or CatchUp"
        )),
    }
}

/// Whitespace folded to single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` cut to `max` bytes on a character boundary, with an ellipsis when cut (status fields,
/// Event notes).
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
