//! `kubectl roster events [NAME]`: the Events of a connection, its schedules, its JourneyPolicy and
//! its sync Jobs (all rostersync objects' without NAME), newest last.
use std::collections::HashSet;

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;

use super::Ctx;
use super::history::resolve_connection;
use crate::api::{RosterConnection, SyncSchedule};
use crate::controller::job::CONNECTION_LABEL;
use crate::controller::names::label_value;
use crate::output::{Cell, Column, OutputFormat, TableRow, tone_of};

/// One Event. JSON/YAML kind `EventList`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    pub namespace: String,
    /// When it was last seen.
    pub last_seen: Option<Timestamp>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    /// `Kind/name` of the object it is about.
    pub object: String,
    pub count: i32,
    pub message: String,
}

impl TableRow for EventRow {
    const KIND: &'static str = "Event";
    const COLUMNS: &'static [Column] = &[
        Column::new("NAMESPACE"),
        Column::new("LAST SEEN"),
        Column::new("TYPE"),
        Column::new("REASON"),
        Column::new("OBJECT"),
        Column::wide("COUNT"),
        Column::new("MESSAGE"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::text(&self.namespace),
            Cell::time(self.last_seen),
            Cell::status(&self.type_, tone_of(&self.type_)),
            Cell::text(&self.reason),
            Cell::text(&self.object),
            Cell::text(self.count.to_string()),
            Cell::text(&self.message),
        ]
    }
}

const KINDS: [&str; 3] = ["RosterConnection", "SyncSchedule", "JourneyPolicy"];

fn event_time(e: &Event) -> Option<Timestamp> {
    e.event_time
        .as_ref()
        .map(|t| t.0)
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.first_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

pub async fn events(
    ctx: &Ctx,
    name: Option<&str>,
    all: bool,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let (client, ns) = (&ctx.client, ctx.ns.as_str());
    // The (kind, name) pairs NAME stands for; None: every rostersync object (and sync Job).
    let wanted: Option<HashSet<(String, String)>> = match name {
        None => None,
        Some(name) => {
            let connection = resolve_connection(client, ns, name).await?;
            let mut set = HashSet::new();
            set.insert(("RosterConnection".to_string(), connection.clone()));
            let conn = Api::<RosterConnection>::namespaced(client.clone(), ns)
                .get_opt(&connection)
                .await
                .with_context(|| format!("cannot read RosterConnection {ns}/{connection}"))?;
            if let Some(policy) = conn.and_then(|c| c.spec.journey_policy_ref) {
                set.insert(("JourneyPolicy".to_string(), policy.name));
            }
            let schedules = Api::<SyncSchedule>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .context("cannot list SyncSchedules")?;
            for s in schedules.items {
                if s.spec.connection_ref.name == connection || s.name_any() == name {
                    set.insert(("SyncSchedule".to_string(), s.name_any()));
                }
            }
            let jobs = Api::<Job>::namespaced(client.clone(), ns)
                .list(
                    &ListParams::default()
                        .labels(&format!("{CONNECTION_LABEL}={}", label_value(&connection))),
                )
                .await;
            // Reading Jobs may be forbidden to a district viewer: then the three kinds only.
            for j in jobs.map(|l| l.items).unwrap_or_default() {
                set.insert(("Job".to_string(), j.name_any()));
            }
            Some(set)
        }
    };
    let api: Api<Event> = if all && name.is_none() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), ns)
    };
    let list = api
        .list(&ListParams::default())
        .await
        .context("cannot list Events")?;
    let mut rows: Vec<EventRow> = list
        .items
        .into_iter()
        .filter(|e| {
            let kind = e.involved_object.kind.clone().unwrap_or_default();
            let obj = e.involved_object.name.clone().unwrap_or_default();
            match &wanted {
                Some(set) => set.contains(&(kind, obj)),
                None => KINDS.contains(&kind.as_str()),
            }
        })
        .map(|e| EventRow {
            namespace: e.metadata.namespace.clone().unwrap_or_default(),
            last_seen: event_time(&e),
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            object: format!(
                "{}/{}",
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default()
            ),
            count: e.count.unwrap_or(1),
            message: e.message.clone().unwrap_or_default(),
        })
        .collect();
    // Newest last, like `kubectl events`.
    rows.sort_by_key(|r| r.last_seen);
    let mut printer = ctx.printer(format);
    if !(all && name.is_none()) {
        printer = printer.hide("NAMESPACE");
    }
    if rows.is_empty() && !format.is_machine() {
        match name {
            Some(name) => println!(
                "No events for {name} in namespace {ns} (Events expire after an hour by default)."
            ),
            None => println!("No rostersync events found."),
        }
        return Ok(0);
    }
    printer.print(&rows)?;
    Ok(0)
}
