//! Pure formatting for `kubectl roster status`: one row per object of the three kinds, printed by
//! the shared printer ([`crate::output`]).
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::Serialize;

use crate::api::{JourneyPolicy, RosterConnection, SyncSchedule, condition};
use crate::output::{Cell, Column, TableRow, TimePolicy, tone_of};

fn ready(conds: &[Condition]) -> Option<&Condition> {
    conds.iter().find(|c| c.type_ == condition::READY)
}

/// `Ready`, the reason of a not-ready object, or `Pending` before the controller reported.
fn health(conds: &[Condition]) -> String {
    match ready(conds) {
        Some(c) if c.status == "True" => "Ready".to_string(),
        Some(c) if !c.reason.is_empty() => c.reason.clone(),
        Some(_) => "NotReady".to_string(),
        None => "Pending".to_string(),
    }
}

/// Sync Now availability of a schedule (`kubectl roster status -o json`: `items[].syncNow`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncNowRow {
    pub available: bool,
    pub reason: String,
    pub available_after: Option<Timestamp>,
}

/// One object of `kubectl roster status`. JSON/YAML kind `StatusList`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    pub namespace: String,
    /// `RosterConnection`, `SyncSchedule` or `JourneyPolicy`.
    pub kind: &'static str,
    pub name: String,
    /// `Ready`, the Ready condition's reason, or `Pending`.
    pub health: String,
    pub ready: bool,
    /// The Ready condition's message when not ready.
    pub message: Option<String>,
    pub suspended: bool,
    /// For a schedule: the RosterConnection it syncs.
    pub connection: Option<String>,
    /// `Succeeded`, `Failed`, `Held` or `Running` of the last run.
    pub last_result: Option<String>,
    pub last_run_id: Option<String>,
    pub last_sync: Option<Timestamp>,
    pub next_sync: Option<Timestamp>,
    pub sync_now: Option<SyncNowRow>,
    #[serde(skip)]
    sync_now_text: String,
}

impl TableRow for StatusRow {
    const KIND: &'static str = "Status";
    const COLUMNS: &'static [Column] = &[
        Column::new("NAMESPACE"),
        Column::new("KIND"),
        Column::new("NAME"),
        Column::new("HEALTH"),
        Column::new("LAST RESULT"),
        Column::new("LAST SYNC"),
        Column::new("NEXT SYNC"),
        Column::new("SYNC NOW"),
        Column::wide("LAST RUN"),
        Column::wide("CONNECTION"),
    ];

    fn cells(&self) -> Vec<Cell> {
        let mut health = self.health.clone();
        if self.suspended {
            health.push_str(",Suspended");
        }
        let next = if self.suspended {
            Cell::text("suspended")
        } else {
            Cell::time(self.next_sync)
        };
        let last_result = self.last_result.clone().unwrap_or_else(|| "-".into());
        vec![
            Cell::text(&self.namespace),
            Cell::text(self.kind),
            Cell::text(&self.name),
            Cell::status(&health, tone_of(&health)),
            Cell::status(&last_result, tone_of(&last_result)),
            Cell::time(self.last_sync),
            next,
            Cell::text(&self.sync_now_text),
            Cell::text(self.last_run_id.clone().unwrap_or_default()),
            Cell::text(self.connection.clone().unwrap_or_default()),
        ]
    }
}

/// The `status` rows, grouped by connection: each RosterConnection, then its schedules, then the
/// rest (sorted by namespace, name, kind).
pub fn status_rows(
    connections: &[RosterConnection],
    schedules: &[SyncSchedule],
    policies: &[JourneyPolicy],
    time: &TimePolicy,
) -> Vec<StatusRow> {
    let mut rows = Vec::new();
    let problem = |conds: &[Condition]| {
        ready(conds)
            .filter(|r| r.status != "True")
            .map(|r| r.message.clone())
    };
    let is_ready = |conds: &[Condition]| ready(conds).is_some_and(|r| r.status == "True");
    for c in connections {
        let status = c.status.clone().unwrap_or_default();
        let last = status.last_sync.as_ref();
        rows.push(StatusRow {
            namespace: c.metadata.namespace.clone().unwrap_or_default(),
            kind: "RosterConnection",
            name: c.metadata.name.clone().unwrap_or_default(),
            health: health(&status.conditions),
            ready: is_ready(&status.conditions),
            message: problem(&status.conditions),
            suspended: false,
            connection: None,
            last_result: last.and_then(|l| l.result).map(|r| r.as_str().to_string()),
            last_run_id: last.map(|l| l.run_id.clone()).filter(|s| !s.is_empty()),
            last_sync: last.and_then(|l| l.finished_at.as_ref()).map(|t| t.0),
            next_sync: None,
            sync_now: None,
            sync_now_text: "-".into(),
        });
    }
    for s in schedules {
        let status = s.status.clone().unwrap_or_default();
        let last = status.last_run.as_ref();
        let sync_now_text = match &status.sync_now {
            None => "-".to_string(),
            Some(sn) if sn.available => "available".to_string(),
            Some(sn) => match &sn.available_after {
                Some(t) => format!("no: {} (available {})", sn.reason, time.relative(t.0)),
                None => format!("no: {}", sn.reason),
            },
        };
        rows.push(StatusRow {
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            kind: "SyncSchedule",
            name: s.metadata.name.clone().unwrap_or_default(),
            health: health(&status.conditions),
            ready: is_ready(&status.conditions),
            message: problem(&status.conditions),
            suspended: s.spec.suspend,
            connection: Some(s.spec.connection_ref.name.clone()),
            last_result: last.and_then(|l| l.result).map(|r| r.as_str().to_string()),
            last_run_id: last.map(|l| l.run_id.clone()),
            last_sync: last
                .and_then(|l| l.finished_at.as_ref().or(l.started_at.as_ref()))
                .map(|t| t.0),
            next_sync: status.next_sync_time.as_ref().map(|t| t.0),
            sync_now: status.sync_now.as_ref().map(|sn| SyncNowRow {
                available: sn.available,
                reason: sn.reason.clone(),
                available_after: sn.available_after.as_ref().map(|t| t.0),
            }),
            sync_now_text,
        });
    }
    for p in policies {
        let status = p.status.clone().unwrap_or_default();
        rows.push(StatusRow {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            kind: "JourneyPolicy",
            name: p.metadata.name.clone().unwrap_or_default(),
            health: health(&status.conditions),
            ready: is_ready(&status.conditions),
            message: problem(&status.conditions),
            suspended: false,
            connection: None,
            last_result: None,
            last_run_id: None,
            last_sync: None,
            next_sync: None,
            sync_now: None,
            sync_now_text: "-".into(),
        });
    }
    rows.sort_by(|a, b| {
        (&a.namespace, &a.name, kind_order(a.kind)).cmp(&(
            &b.namespace,
            &b.name,
            kind_order(b.kind),
        ))
    });
    rows
}

/// The explanation printed below a status table: each object that is not Ready, with its message.
pub fn not_ready_notes(rows: &[StatusRow]) -> String {
    let mut out = String::new();
    let problems: Vec<&StatusRow> = rows.iter().filter(|r| r.message.is_some()).collect();
    if !problems.is_empty() {
        out.push_str("\nNot ready:\n");
        for r in problems {
            let _ = writeln!(
                out,
                "  {}/{} {}: {}: {}",
                r.namespace,
                r.name,
                r.kind,
                r.health,
                r.message.as_deref().unwrap_or_default()
            );
        }
    }
    out
}

fn kind_order(kind: &str) -> u8 {
    match kind {
        "RosterConnection" => 0,
        "SyncSchedule" => 1,
        _ => 2,
    }
}
