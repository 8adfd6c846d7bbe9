//! `kubectl roster history`: the `sync_runs` table when `DATABASE_URL` is reachable, else through
//! the status UI's API as the user (`ROSTERSYNC_UI_URL`), else the schedules' `status.recentRuns`.
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::api::{RosterConnection, RunStatus, SyncSchedule};
use crate::plugin::format::render_columns;
use crate::run::{ConnectionKey, RunRecord};
use crate::store::runs as store_runs;

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

/// The history through the status UI's API, as the kubeconfig's user: at `ROSTERSYNC_UI_URL`, else
/// through a port-forward to the UI Service (None, with a note, when it cannot answer).
async fn ui_history(client: &Client, key: &ConnectionKey, limit: u16) -> Option<Vec<Vec<String>>> {
    let url = std::env::var(crate::ui::client::UI_URL_ENV).ok();
    let runs = async {
        let url = crate::ui::client::resolve_url(client, url.as_deref()).await?;
        crate::ui::client::UiClient::from_kubeconfig(&url)
            .await?
            .history(key.namespace(), key.name(), limit)
            .await
    };
    match runs.await {
        Ok(runs) => Some(
            runs.into_iter()
                .map(|r| {
                    vec![
                        r.run_id,
                        r.trigger.as_str().to_string(),
                        r.result.as_str().to_string(),
                        ts(Some(r.started_at)),
                        ts(r.finished_at),
                        r.summary,
                    ]
                })
                .collect(),
        ),
        Err(e) => {
            eprintln!("note: cannot read the history through the status UI: {e:#}");
            None
        }
    }
}

fn ts(t: Option<Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn history(client: &Client, ns: &str, name: &str, limit: u16) -> anyhow::Result<u8> {
    // NAME is a schedule (use its connection) or a connection (use its schedules' status).
    let sched_api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    let connection = match sched_api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read SyncSchedule {ns}/{name}"))?
    {
        Some(s) => s.spec.connection_ref.name,
        None => {
            let conn_api: Api<RosterConnection> = Api::namespaced(client.clone(), ns);
            conn_api
                .get_opt(name)
                .await
                .with_context(|| format!("cannot read RosterConnection {ns}/{name}"))?
                .map(|c| c.name_any())
                .with_context(|| {
                    format!("no SyncSchedule or RosterConnection named {name:?} in namespace {ns}")
                })?
        }
    };
    let key = ConnectionKey::new(ns, &connection)?;
    let (source, rows) = match db_history(&key, limit).await {
        Ok(runs) => {
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.run_id.clone(),
                        r.trigger.as_str().to_string(),
                        r.result.as_str().to_string(),
                        ts(Some(r.started_at)),
                        ts(r.finished_at),
                        r.summary(),
                    ]
                })
                .collect();
            ("sync_runs", rows)
        }
        Err(why) => match ui_history(client, &key, limit).await {
            Some(rows) => ("status UI", rows),
            None => {
                eprintln!(
                    "note: showing status.recentRuns (at most 5 per schedule); {why}; set \
                       {} to read the whole history through the status UI",
                    crate::ui::client::UI_URL_ENV
                );
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
                let stamp = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
                    ts(t.map(|t| t.0))
                };
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.run_id.clone(),
                            r.trigger.map(|t| t.as_str()).unwrap_or("-").to_string(),
                            r.result.map(|t| t.as_str()).unwrap_or("-").to_string(),
                            stamp(r.started_at.as_ref()),
                            stamp(r.finished_at.as_ref()),
                            r.summary.clone(),
                        ]
                    })
                    .collect();
                ("status.recentRuns", rows)
            }
        },
    };
    println!("History of {key} ({source}):");
    print!(
        "{}",
        render_columns(
            &[
                "RUN ID", "TRIGGER", "RESULT", "STARTED", "FINISHED", "DETAILS"
            ],
            &rows
        )
    );
    Ok(0)
}
