//! The run row both binaries print (`rostersync history`, `kubectl roster history`): from a
//! `sync_runs` record, or from a schedule's `status.recentRuns` when Postgres is not reachable.
use jiff::Timestamp;
use serde::Serialize;

use super::{Cell, Column, TableRow, tone_of};
use crate::api::RunStatus;
use crate::run::{Counts, RunRecord};

/// One sync run. JSON/YAML kind `RunList`; fields absent from the source are `null`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub run_id: String,
    /// `namespace/name` of the RosterConnection.
    pub connection: String,
    /// `Scheduled`, `Manual` or `CatchUp`.
    pub trigger: Option<String>,
    /// `Running`, `Succeeded`, `Failed` or `Held`.
    pub result: Option<String>,
    pub dry_run: bool,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_seconds: Option<i64>,
    /// Per-record problems (`null` when read from status).
    pub problems: Option<u64>,
    /// The problems by code, e.g. `{"MultipleSections": 3}` (`null` when read from status);
    /// `rostersync problems` lists them.
    pub problem_codes: Option<crate::run::ProblemCodes>,
    /// Created / updated / ... per entity (`null` when read from status).
    pub counts: Option<Counts>,
    pub reason: Option<String>,
    /// The one line every surface shows (counts, or reason and message; never personal data).
    pub summary: String,
    /// `sync_runs` or `status.recentRuns`.
    pub source: &'static str,
}

impl RunRow {
    /// From the run's history record.
    pub fn from_record(r: &RunRecord) -> RunRow {
        RunRow {
            run_id: r.run_id.clone(),
            connection: r.connection.as_str().to_string(),
            trigger: Some(r.trigger.as_str().to_string()),
            result: Some(r.result.as_str().to_string()),
            dry_run: r.dry_run,
            started_at: Some(r.started_at),
            finished_at: r.finished_at,
            duration_seconds: r
                .finished_at
                .map(|f| f.as_second() - r.started_at.as_second()),
            problems: Some(r.problems),
            problem_codes: Some(r.problem_codes.clone()),
            counts: Some(r.counts),
            reason: r.reason.clone(),
            summary: r.summary(),
            source: "sync_runs",
        }
    }

    /// From a schedule's `status.recentRuns` entry.
    pub fn from_status(connection: &str, r: &RunStatus) -> RunRow {
        let started = r.started_at.as_ref().map(|t| t.0);
        let finished = r.finished_at.as_ref().map(|t| t.0);
        RunRow {
            run_id: r.run_id.clone(),
            connection: connection.to_string(),
            trigger: r.trigger.map(|t| t.as_str().to_string()),
            result: r.result.map(|t| t.as_str().to_string()),
            dry_run: false,
            started_at: started,
            finished_at: finished,
            duration_seconds: started
                .zip(finished)
                .map(|(s, f)| f.as_second() - s.as_second()),
            problems: None,
            problem_codes: None,
            counts: None,
            reason: None,
            summary: r.summary.clone(),
            source: "status.recentRuns",
        }
    }
}

impl TableRow for RunRow {
    const KIND: &'static str = "Run";
    const COLUMNS: &'static [Column] = &[
        Column::new("RUN ID"),
        Column::wide("CONNECTION"),
        Column::new("TRIGGER"),
        Column::new("RESULT"),
        Column::new("STARTED"),
        Column::wide("FINISHED"),
        Column::new("DURATION"),
        Column::wide("PROBLEMS"),
        Column::new("SUMMARY"),
    ];

    fn cells(&self) -> Vec<Cell> {
        let result = self.result.clone().unwrap_or_else(|| "-".into());
        let shown = if self.dry_run {
            format!("{result} (dry run)")
        } else {
            result.clone()
        };
        vec![
            Cell::text(&self.run_id),
            Cell::text(&self.connection),
            Cell::text(self.trigger.clone().unwrap_or_default()),
            Cell::status(shown, tone_of(&result)),
            Cell::time(self.started_at),
            Cell::time(self.finished_at),
            Cell::seconds(self.duration_seconds),
            Cell::text(self.problems.map(|p| p.to_string()).unwrap_or_default()),
            Cell::text(&self.summary),
        ]
    }
}
