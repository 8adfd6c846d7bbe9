//! Commands on one SyncSchedule: `suspend`, `resume`, `approve` and `preview`.
use anyhow::{Context as _, bail};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use serde::Serialize;

use super::{Ctx, FIELD_MANAGER, annotate, resolve_schedule};
use crate::api::{APPROVE_REMOVALS_ANNOTATION, RunResult, SyncSchedule};
use crate::output::{Cell, Column, OutputFormat, TableRow};

/// One slot of `kubectl roster preview`. JSON/YAML kind `SlotList`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotRow {
    /// The slot in the schedule's zone, RFC 3339 with offset and zone name.
    pub local: String,
    /// The same instant (RFC 3339 UTC).
    pub at: Timestamp,
    pub schedule: String,
    /// The nominal time and the schedule's jitter, e.g. `22:00 +2m37s` (empty without jitter).
    pub jitter: String,
}

impl TableRow for SlotRow {
    const KIND: &'static str = "Slot";
    const COLUMNS: &'static [Column] = &[
        Column::new("LOCAL"),
        Column::new("WHEN"),
        Column::new("JITTER"),
        Column::wide("AT"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::text(&self.local),
            Cell::text(crate::output::relative(self.at, Timestamp::now())),
            Cell::text(&self.jitter),
            Cell::time(self.at),
        ]
    }
}

pub async fn set_suspend(ctx: &Ctx, name: &str, suspend: bool) -> anyhow::Result<u8> {
    let (client, ns) = (&ctx.client, ctx.ns.as_str());
    let schedule = resolve_schedule(client, ns, name).await?;
    let sched_name = schedule.name_any();
    let api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    api.patch(
        &sched_name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(json!({"spec": {"suspend": suspend}})),
    )
    .await
    .with_context(|| format!("cannot patch SyncSchedule {ns}/{sched_name}"))?;
    if suspend {
        println!(
            "syncschedule/{sched_name} suspended: no scheduled syncs until `kubectl roster resume {sched_name} -n {ns}` (Sync Now still works)"
        );
    } else {
        println!("syncschedule/{sched_name} resumed");
    }
    if schedule.metadata.managed_fields.iter().flatten().any(|f| {
        f.manager.as_deref().is_some_and(|m| m.contains("helm"))
            || f.manager.as_deref().is_some_and(|m| m.contains("argocd"))
    }) {
        eprintln!(
            "note: this SyncSchedule is managed by Helm/GitOps; change `suspend` there too, or the next sync of the manifests reverts it"
        );
    }
    Ok(0)
}

pub async fn approve(ctx: &Ctx, name: &str, run_id: &str) -> anyhow::Result<u8> {
    let (client, ns) = (&ctx.client, ctx.ns.as_str());
    let schedule = resolve_schedule(client, ns, name).await?;
    let sched_name = schedule.name_any();
    let status = schedule.status.clone().unwrap_or_default();
    let known = status
        .last_run
        .iter()
        .chain(status.recent_runs.iter())
        .find(|r| r.run_id == run_id);
    match known.and_then(|r| r.result) {
        Some(RunResult::Held) => {}
        Some(other) => bail!(
            "run {run_id} is {}, not Held: there is nothing to approve",
            other.as_str()
        ),
        None => eprintln!(
            "note: run {run_id} is not among the schedule's recent runs; setting the approval anyway"
        ),
    }
    annotate(client, ns, &sched_name, APPROVE_REMOVALS_ANNOTATION, run_id).await?;
    println!(
        "approved the removals of run {run_id} on syncschedule/{sched_name}; the controller re-runs it with the guard lifted once"
    );
    Ok(0)
}

pub async fn preview(
    ctx: &Ctx,
    name: &str,
    count: u16,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let (client, ns) = (&ctx.client, ctx.ns.as_str());
    let schedule = resolve_schedule(client, ns, name).await?;
    let sched_name = schedule.name_any();
    let s = &schedule.spec;
    let rule = crate::schedule::ScheduleRule::from_spec(s)
        .map_err(|err| anyhow::anyhow!("SyncSchedule {ns}/{sched_name} is invalid: {err}"))?;
    // The jitter the controller applies: the schedule's own, else what the controller reported
    // (its --slot-jitter-seconds is not known here).
    let offset = match s.slot_jitter_seconds {
        Some(max) => crate::schedule::jitter_offset(
            &format!("{ns}/{sched_name}"),
            u32::try_from(max).unwrap_or(0),
        ),
        None => schedule
            .status
            .as_ref()
            .and_then(|st| st.slot_jitter_seconds)
            .map_or(jiff::SignedDuration::ZERO, jiff::SignedDuration::from_secs),
    };
    let rule = rule.with_jitter(offset);
    let printer = ctx.printer(format);
    let slots =
        crate::schedule::preview::preview_slots(&rule, printer.time.now, usize::from(count));
    let rows: Vec<SlotRow> = slots
        .iter()
        .map(|slot| SlotRow {
            local: crate::schedule::preview::local_rfc3339(slot),
            at: slot.timestamp(),
            schedule: sched_name.clone(),
            jitter: crate::schedule::preview::jitter_note(&rule, slot).unwrap_or_default(),
        })
        .collect();
    if format.is_machine() {
        printer.print(&rows)?;
        return Ok(0);
    }
    let day = match (s.day_of_week, s.day_of_month) {
        (Some(d), _) => format!(" on {d:?}"),
        (_, Some(d)) => format!(" on day {d}"),
        _ => String::new(),
    };
    println!(
        "{:?}{day} at {} {} (off-peak window {}-{}){}",
        s.frequency,
        s.at,
        s.time_zone,
        s.off_peak_window.start,
        s.off_peak_window.end,
        if s.suspend { ", SUSPENDED" } else { "" }
    );
    printer.print(&rows)?;
    if s.suspend {
        println!("(suspended: these slots run only after `kubectl roster resume`)");
    }
    if let Some(t) = schedule
        .status
        .as_ref()
        .and_then(|st| st.next_sync_time.as_ref())
    {
        println!("controller's next sync: {}", printer.time.both(t.0));
    }
    Ok(0)
}
