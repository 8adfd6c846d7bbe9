//! `rostersync bench sync`: the emulator as a child process (so this process's peak RSS is the
//! sync's alone), a full sync into a fresh database, then a no-op resync; prints JSON figures.
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::io::AsyncBufReadExt;

use crate::api::{JourneyPolicySpec, RosterConnectionSpec, RunResult, Trigger};
use crate::sync::clever_source::CleverSource;
use crate::sync::{SyncRequest, run_sync};

/// Arguments of `rostersync bench sync`.
#[derive(Debug, clap::Args)]
pub struct SyncBenchArgs {
    /// Students in the generated district.
    #[arg(long, default_value_t = 10_000)]
    pub students: u32,
    /// Postgres URL; a fresh database `rs_bench_<random>` is created on that server.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Keep the benchmark database afterwards (dropped by default).
    #[arg(long)]
    pub keep_database: bool,
}

/// The printed figures.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncBenchReport {
    pub students: u32,
    pub children_synced: u64,
    pub full_sync_seconds: f64,
    pub resync_seconds: f64,
    pub peak_rss_mb: f64,
    pub rows_written_per_sec: f64,
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub async fn run(args: SyncBenchArgs) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("cannot find the rostersync executable")?;
    let mut child = tokio::process::Command::new(exe)
        .args(["clever-emulator", "--rate-limit", "1000000", "--students"])
        .arg(args.students.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the emulator")?;
    let stdout = child.stdout.take().context("no emulator stdout")?;
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .context("the emulator did not report its URL")?;
    let base_url = url::Url::parse(line.trim()).context("the emulator printed no URL")?;

    let admin: PgConnectOptions = args.database_url.parse().context("invalid database URL")?;
    let name = format!(
        "rs_bench_{}",
        crate::sync::cli::new_run_id("x")
            .rsplit('-')
            .next()
            .unwrap_or("0")
    );
    let mut conn = admin
        .connect()
        .await
        .context("cannot connect to Postgres")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .context("cannot create the bench database")?;
    let result = bench(&args, &admin.clone().database(&name), base_url).await;
    if !args.keep_database {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .ok();
    }
    conn.close().await.ok();
    child.start_kill().ok();
    child.wait().await.ok();
    let report = result?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(0)
}

async fn bench(
    args: &SyncBenchArgs,
    db: &PgConnectOptions,
    base_url: url::Url,
) -> anyhow::Result<SyncBenchReport> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect_with(db.clone())
        .await?;
    crate::store::migrate(&pool).await?;
    let spec: RosterConnectionSpec = serde_json::from_value(serde_json::json!({
        "districtId": crate::devtools::emulator::DEFAULT_DISTRICT_ID,
        "apiBaseUrl": base_url.as_str().trim_end_matches('/'),
        "credentialsSecretRef": {"name": "clever"},
    }))?;
    let policy: JourneyPolicySpec = serde_json::from_value(
        serde_json::json!({"licensedProducts": ["Readiness"], "newChildJourney": "Readiness"}),
    )?;
    let source = CleverSource::new(
        base_url,
        crate::clever::CleverCredentials::Token(crate::clever::Token::new(
            crate::devtools::emulator::DEFAULT_TOKEN,
        )),
    );
    let connection = crate::run::ConnectionKey::new("bench", "district")?;
    let request = |n: u32| SyncRequest {
        connection: connection.clone(),
        spec: spec.clone(),
        policy: Some(policy.clone()),
        run_id: format!("bench-{n}-{}", crate::sync::cli::new_run_id("r")),
        trigger: Trigger::Manual,
        schedule: None,
        job: None,
        dry_run: false,
        approve_removals: false,
        today: jiff::Zoned::now().date(),
    };
    let t = Instant::now();
    let full = run_sync(&pool, &request(1), &source).await?;
    let full_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        full.result == RunResult::Succeeded,
        "the full sync did not succeed: {:?}",
        full.message
    );
    let t = Instant::now();
    let again = run_sync(&pool, &request(2), &source).await?;
    let resync_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        again.result == RunResult::Succeeded,
        "the resync did not succeed: {:?}",
        again.message
    );
    let written: u64 = full
        .counts
        .entities()
        .iter()
        .map(|(_, c)| c.changes())
        .sum();
    pool.close().await;
    Ok(SyncBenchReport {
        students: args.students,
        children_synced: full.counts.children.created,
        full_sync_seconds: round(full_secs),
        resync_seconds: round(resync_secs),
        peak_rss_mb: round(peak_rss_mb().unwrap_or(0.0)),
        rows_written_per_sec: (written as f64 / full_secs).round(),
    })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
