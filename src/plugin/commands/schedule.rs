//! Commands on one SyncSchedule: `suspend`, `resume`, `approve` and `preview`.
use anyhow::{Context as _, bail};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{FIELD_MANAGER, annotate, resolve_schedule};
use crate::api::{APPROVE_REMOVALS_ANNOTATION, RunResult, SyncSchedule};
use crate::plugin::format::{relative, render_columns};

pub async fn set_suspend(
    client: &Client,
    ns: &str,
    name: &str,
    suspend: bool,
) -> anyhow::Result<u8> {
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

pub async fn approve(client: &Client, ns: &str, name: &str, run_id: &str) -> anyhow::Result<u8> {
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

pub async fn preview(client: &Client, ns: &str, name: &str, count: u16) -> anyhow::Result<u8> {
    let schedule = resolve_schedule(client, ns, name).await?;
    let s = &schedule.spec;
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
    let rule = crate::schedule::ScheduleRule::from_spec(s).map_err(|err| {
        anyhow::anyhow!(
            "SyncSchedule {ns}/{} is invalid: {err}",
            schedule.name_any()
        )
    })?;
    let slots =
        crate::schedule::preview::preview_slots(&rule, Timestamp::now(), usize::from(count));
    let now = Timestamp::now();
    let rows: Vec<Vec<String>> = slots
        .iter()
        .map(|slot| {
            vec![
                crate::schedule::preview::local_rfc3339(slot),
                slot.timestamp().strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
                relative(slot.timestamp(), now),
            ]
        })
        .collect();
    print!("{}", render_columns(&["LOCAL", "UTC", "WHEN"], &rows));
    if s.suspend {
        println!("(suspended: these slots run only after `kubectl roster resume`)");
    }
    if let Some(t) = schedule
        .status
        .as_ref()
        .and_then(|st| st.next_sync_time.as_ref())
    {
        println!(
            "controller's next sync: {} ({})",
            t.0.strftime("%Y-%m-%d %H:%M:%SZ"),
            relative(t.0, now)
        );
    }
    Ok(0)
}
