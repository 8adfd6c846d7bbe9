//! `kubectl roster history`: the `sync_runs` table when `DATABASE_URL` is reachable, else through
//! the status UI's API as the user (`ROSTERSYNC_UI_URL`, else a port-forward to the UI Service),
//! else the schedules' `status.recentRuns`.
use std::time::Duration;

use anyhow::Context as _;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::Ctx;
use crate::api::{RosterConnection, RunStatus, SyncSchedule};
use crate::output::OutputFormat;
use crate::output::runs::RunRow;
use crate::run::{ConnectionKey, RunRecord};
use crate::store::runs as store_runs;
use crate::ui::client::{ApiRun, UiClient};

async fn db_pool() -> Result<sqlx::PgPool, String> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set".to_string())?;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&url)
        .await
        // The error never contains the password; the URL itself is never printed.
        .map_err(|e| format!("cannot connect to DATABASE_URL: {e}"))
}

async fn db_history(connection: &ConnectionKey, limit: u16) -> Result<Vec<RunRecord>, String> {
    let pool = db_pool().await?;
    let runs = store_runs::list(&pool, Some(connection), i64::from(limit))
        .await
        .map_err(|e| format!("cannot read the sync history: {e}"));
    pool.close().await;
    runs
}

/// One run's record (of `connection`), when Postgres is reachable (best effort, for
/// `sync-now --wait`).
pub async fn db_run(connection: &ConnectionKey, run_id: &str) -> Option<RunRecord> {
    let pool = db_pool().await.ok()?;
    let run = store_runs::by_id(&pool, connection, run_id).await.ok()?;
    pool.close().await;
    run
}

/// A run as the status UI's API returned it.
fn ui_row(r: ApiRun) -> RunRow {
    RunRow {
        run_id: r.run_id,
        connection: r.connection,
        trigger: Some(r.trigger.as_str().to_string()),
        result: Some(r.result.as_str().to_string()),
        dry_run: r.dry_run,
        started_at: Some(r.started_at),
        finished_at: r.finished_at,
        duration_seconds: r.duration_ms.and_then(|ms| i64::try_from(ms / 1000).ok()),
        problems: Some(r.problems),
        problem_codes: Some(r.problem_codes),
        counts: Some(r.counts),
        reason: r.reason,
        summary: r.summary,
        source: "status UI",
    }
}

/// The history through the status UI's API, as the user of the global flags' kubeconfig: at
/// `ROSTERSYNC_UI_URL`, else through a port-forward to the UI Service (None, with a note, when
/// it cannot answer).
async fn ui_history(ctx: &Ctx, key: &ConnectionKey, limit: u16) -> Option<Vec<RunRow>> {
    let url = std::env::var(crate::ui::client::UI_URL_ENV).ok();
    let runs = async {
        let url = crate::ui::client::resolve_url(&ctx.client, url.as_deref()).await?;
        let config = super::client_config(&ctx.global).await?;
        UiClient::with_config(config, &url)?
            .history(key.namespace(), key.name(), limit)
            .await
    };
    match runs.await {
        Ok(runs) => Some(runs.into_iter().map(ui_row).collect()),
        Err(e) => {
            eprintln!(
                "note: cannot read the history through the status UI: {e:#} (set {} to its URL)",
                crate::ui::client::UI_URL_ENV
            );
            None
        }
    }
}

/// The RosterConnection NAME means: a schedule's connection, or the connection itself.
pub async fn resolve_connection(client: &Client, ns: &str, name: &str) -> anyhow::Result<String> {
    let sched_api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    match sched_api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read SyncSchedule {ns}/{name}"))?
    {
        Some(s) => Ok(s.spec.connection_ref.name),
        None => {
            let conn_api: Api<RosterConnection> = Api::namespaced(client.clone(), ns);
            conn_api
                .get_opt(name)
                .await
                .with_context(|| format!("cannot read RosterConnection {ns}/{name}"))?
                .map(|c| c.name_any())
                .with_context(|| {
                    format!("no SyncSchedule or RosterConnection named {name:?} in namespace {ns}")
                })
        }
    }
}

pub async fn history(
    ctx: &Ctx,
    name: &str,
    limit: u16,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let (client, ns) = (&ctx.client, ctx.ns.as_str());
    let connection = resolve_connection(client, ns, name).await?;
    let key = ConnectionKey::new(ns, &connection)?;
    let rows: Vec<RunRow> = match db_history(&key, limit).await {
        Ok(runs) => runs.iter().map(RunRow::from_record).collect(),
        Err(why) => match ui_history(ctx, &key, limit).await {
            Some(rows) => rows,
            None => {
                eprintln!("note: showing status.recentRuns (at most 5 per schedule); {why}");
                let sched_api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
                let schedules = sched_api
                    .list(&ListParams::default())
                    .await
                    .context("cannot list SyncSchedules")?
                    .items;
                let mut runs: Vec<RunStatus> = schedules
                    .iter()
                    .filter(|s| s.spec.connection_ref.name == connection)
                    .filter_map(|s| s.status.as_ref())
                    .flat_map(|st| st.recent_runs.iter().cloned())
                    .collect();
                runs.sort_by_key(|r| std::cmp::Reverse(r.started_at.as_ref().map(|t| t.0)));
                runs.dedup_by(|a, b| a.run_id == b.run_id);
                runs.truncate(usize::from(limit));
                runs.iter()
                    .map(|r| RunRow::from_status(key.as_str(), r))
                    .collect()
            }
        },
    };
    if !format.is_machine() {
        let source = rows.first().map(|r| r.source).unwrap_or("no runs yet");
        println!("History of {key} ({source}):");
    }
    ctx.printer(format).hide("CONNECTION").print(&rows)?;
    Ok(0)
}
