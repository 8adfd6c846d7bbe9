//! `rostersync bench sync`: the emulator as a child process (so this process's peak RSS is the
//! sync's alone), a full sync into a fresh database, then a no-op resync, then the floors
//! ([`super::floors`]) on the same emulator and server; prints a table (stderr) and JSON (stdout).
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use tokio::io::AsyncBufReadExt;

use crate::api::RunResult;
use crate::store::tenancy::{self, Tenancy};
use crate::sync::clever_source::CleverSource;
use crate::sync::run_sync;

/// Arguments of `rostersync bench sync`.
#[derive(Debug, clap::Args)]
pub struct SyncBenchArgs {
    /// Students in the generated district.
    #[arg(long, default_value_t = 10_000)]
    pub students: u32,
    /// Postgres URL; a fresh database `rs_bench_<random>` is created on that server.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Keep the benchmark database afterwards (dropped by default), and its district roles.
    #[arg(long)]
    pub keep_database: bool,
    /// Measure this many times, each in its own process and a fresh database, and print the
    /// median, lowest and highest of the figures the targets are about (one JSON line per run,
    /// then `{"summary": ...}`).
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// How the syncs reach the database, as a deployment's Jobs do: `dedicated` (the default
    /// tenancy) as the district's own role, limited by row-level security; `shared` as the
    /// owner. The floors are always measured as the owner.
    #[arg(long, value_enum, default_value_t = Tenancy::Dedicated)]
    pub tenancy: Tenancy,
}

/// The printed figures.
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncBenchReport {
    pub students: u32,
    /// `dedicated` or `shared` ([`SyncBenchArgs::tenancy`]).
    pub tenancy: String,
    pub children_synced: u64,
    pub full_sync_seconds: f64,
    pub resync_seconds: f64,
    /// Peak RSS of this process after the two syncs (before the floors are measured).
    pub peak_rss_mb: f64,
    pub rows_written_per_sec: f64,
    /// The engine's phases (ms, `sync_runs.timings`) of the first sync and of the resync.
    pub full_sync_phases: serde_json::Value,
    pub resync_phases: serde_json::Value,
    pub fetch_decode_floor: super::floors::FetchDecodeFloor,
    pub copy_floor: super::floors::CopyFloor,
    /// first sync / (fetch + parse + COPY floors)
    pub full_sync_ratio: f64,
    /// resync / (fetch + parse floors)
    pub resync_ratio: f64,
    /// The same rows written one INSERT at a time ([`super::floors::per_record`]).
    pub per_record: super::floors::PerRecord,
    /// (fetch + decoding every record + per-record writes) / first sync: how many times faster the sync
    /// is than a plain per-record importer of the same district.
    pub per_record_speedup: f64,
}

impl SyncBenchReport {
    /// The figures as a readable table (printed to stderr; stdout has the JSON).
    pub fn table(&self) -> String {
        let f = &self.fetch_decode_floor;
        let ms = |v: &serde_json::Value, k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .map_or("-".to_string(), |n| format!("{:.2}", n as f64 / 1000.0))
        };
        let mut out = format!(
            "sync bench: {} students ({} tenancy), {} children synced, {} pages, {:.1} MB fetched, {} rows COPYed\n",
            self.students,
            self.tenancy,
            self.children_synced,
            f.pages,
            f.bytes as f64 / 1e6,
            self.copy_floor.rows
        );
        out.push_str(&format!(
            "{:<34}{:>10}{:>10}\n",
            "seconds", "first", "resync"
        ));
        let floor_full = f.fetch_seconds + f.parse_seconds + self.copy_floor.seconds;
        let floor_re = f.fetch_seconds + f.parse_seconds;
        let rows: [(&str, String, String); 15] = [
            ("floor: fetch", fmt(f.fetch_seconds), fmt(f.fetch_seconds)),
            ("floor: parse", fmt(f.parse_seconds), fmt(f.parse_seconds)),
            ("floor: COPY", fmt(self.copy_floor.seconds), "-".into()),
            ("floor: total", fmt(floor_full), fmt(floor_re)),
            (
                "sync: fetch+stage (fetchMs)",
                ms(&self.full_sync_phases, "fetchMs"),
                ms(&self.resync_phases, "fetchMs"),
            ),
            (
                "  of which COPY to staging",
                ms(&self.full_sync_phases, "stageCopyMs"),
                ms(&self.resync_phases, "stageCopyMs"),
            ),
            (
                "sync: resolve",
                ms(&self.full_sync_phases, "resolveMs"),
                ms(&self.resync_phases, "resolveMs"),
            ),
            (
                "sync: apply",
                ms(&self.full_sync_phases, "applyMs"),
                ms(&self.resync_phases, "applyMs"),
            ),
            (
                "sync: record",
                ms(&self.full_sync_phases, "recordMs"),
                ms(&self.resync_phases, "recordMs"),
            ),
            (
                "sync: total in the run",
                ms(&self.full_sync_phases, "totalMs"),
                ms(&self.resync_phases, "totalMs"),
            ),
            (
                "sync: wall (with commit, ANALYZE)",
                fmt(self.full_sync_seconds),
                fmt(self.resync_seconds),
            ),
            (
                "ratio to the floor",
                format!("{:.2}x", self.full_sync_ratio),
                format!("{:.2}x", self.resync_ratio),
            ),
            (
                "(decoding every record, no floor)",
                fmt(f.decode_seconds),
                fmt(f.decode_seconds),
            ),
            (
                "per-record importer (fetch+decode",
                fmt(f.fetch_seconds + f.decode_seconds + self.per_record.seconds),
                "-".into(),
            ),
            (
                "  + one INSERT per row): speedup",
                format!("{:.1}x", self.per_record_speedup),
                "-".into(),
            ),
        ];
        for (name, a, b) in rows {
            out.push_str(&format!("{name:<34}{a:>10}{b:>10}\n"));
        }
        out.push_str(&format!(
            "peak RSS of the sync process: {:.0} MB\n",
            self.peak_rss_mb
        ));
        out
    }
}

fn fmt(x: f64) -> String {
    format!("{x:.2}")
}

pub async fn run(args: SyncBenchArgs) -> anyhow::Result<u8> {
    if args.runs > 1 {
        return repeat(&args).await;
    }
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

    let report = one_run(&args, &base_url).await;
    child.start_kill().ok();
    child.wait().await.ok();
    let report = report?;
    eprint!("{}", report.table());
    println!("{}", serde_json::to_string(&report)?);
    Ok(0)
}

/// `--runs N` (N > 1): N single runs, each its own process (so that each peak RSS is its own: a
/// process keeps the memory an earlier run's floors held), then the summary.
async fn repeat(args: &SyncBenchArgs) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("cannot find the rostersync executable")?;
    let tenancy = tenancy_name(args.tenancy);
    let mut reports = Vec::new();
    for run in 1..=args.runs {
        eprintln!("run {run} of {}:", args.runs);
        let mut command = tokio::process::Command::new(&exe);
        command
            .args([
                "bench",
                "sync",
                "--runs",
                "1",
                "--tenancy",
                &tenancy,
                "--students",
            ])
            .arg(args.students.to_string())
            // The URL (with its password) in the environment, not on a command line.
            .env("DATABASE_URL", &args.database_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if args.keep_database {
            command.arg("--keep-database");
        }
        // Not `output()`: tokio's captures stderr too, where each run prints its table.
        let out = command
            .spawn()
            .context("cannot run a measurement")?
            .wait_with_output()
            .await
            .context("cannot run a measurement")?;
        anyhow::ensure!(out.status.success(), "run {run} failed ({})", out.status);
        let line = String::from_utf8(out.stdout).context("a run printed no UTF-8")?;
        let report: SyncBenchReport = serde_json::from_str(line.trim())
            .with_context(|| format!("run {run} printed no report"))?;
        println!("{}", line.trim());
        reports.push(report);
    }
    let summary = Summary::of(&reports);
    eprint!("{}", summary.table());
    println!("{}", serde_json::json!({ "summary": summary }));
    Ok(0)
}

/// One measurement: a fresh database (and, with dedicated tenancy, its roles), the two syncs and
/// the floors; the database is dropped afterwards unless `--keep-database`.
async fn one_run(args: &SyncBenchArgs, base_url: &url::Url) -> anyhow::Result<SyncBenchReport> {
    // The URL is checked before the database exists: nothing to drop when it is invalid.
    let server = url::Url::parse(&args.database_url).context("invalid database URL")?;
    let (admin_pool, name) = fresh_database(&args.database_url).await?;
    let result = bench(args, &with_database(&server, &name), base_url.clone()).await;
    if !args.keep_database {
        drop_database(&admin_pool, &name).await;
        // Roles are the server's, not the database's: once the database (and every grant in it)
        // is gone, so are the district role and group role made for it.
        if args.tenancy == Tenancy::Dedicated {
            let roles = [
                tenancy::role_name(&name, BENCH_CONNECTION),
                tenancy::group_role_name(&name),
            ];
            for role in roles {
                if let Err(err) = sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
                    .execute(&admin_pool)
                    .await
                {
                    tracing::warn!(role, "the bench role was not dropped: {err}");
                }
            }
        }
    }
    admin_pool.close().await;
    result
}

/// The median, lowest and highest of a figure over the runs.
#[derive(Debug, Serialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values. The median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let (first, last) = (*v.first()?, *v.last()?);
        let mid = v.len() / 2;
        let median = if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        };
        Some(Spread {
            median: round(median),
            min: first,
            max: last,
        })
    }
}

/// The figures the targets are about, over several runs (`--runs`): this host's noise moves a
/// single run's ratios by a third.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub runs: usize,
    pub full_sync_seconds: Option<Spread>,
    pub resync_seconds: Option<Spread>,
    pub full_sync_ratio: Option<Spread>,
    pub resync_ratio: Option<Spread>,
    pub per_record_speedup: Option<Spread>,
    pub peak_rss_mb: Option<Spread>,
}

impl Summary {
    pub fn of(reports: &[SyncBenchReport]) -> Summary {
        let spread =
            |f: fn(&SyncBenchReport) -> f64| Spread::of(&reports.iter().map(f).collect::<Vec<_>>());
        Summary {
            runs: reports.len(),
            full_sync_seconds: spread(|r| r.full_sync_seconds),
            resync_seconds: spread(|r| r.resync_seconds),
            full_sync_ratio: spread(|r| r.full_sync_ratio),
            resync_ratio: spread(|r| r.resync_ratio),
            per_record_speedup: spread(|r| r.per_record_speedup),
            peak_rss_mb: spread(|r| r.peak_rss_mb),
        }
    }

    /// One line per figure: median (min-max).
    pub fn table(&self) -> String {
        let mut out = format!("over {} runs: median (lowest-highest)\n", self.runs);
        for (name, spread, unit) in [
            ("first sync", &self.full_sync_seconds, " s"),
            ("no-op resync", &self.resync_seconds, " s"),
            ("first sync / floor", &self.full_sync_ratio, "x"),
            ("resync / floor", &self.resync_ratio, "x"),
            ("faster than the importer", &self.per_record_speedup, "x"),
            ("peak RSS", &self.peak_rss_mb, " MB"),
        ] {
            if let Some(s) = spread {
                out.push_str(&format!(
                    "{name:<26}{:>8.2}{unit} ({:.2}-{:.2})\n",
                    s.median, s.min, s.max
                ));
            }
        }
        out
    }
}

/// Creates a fresh database `rs_bench_<random>` on the server of `url`; returns a pool on `url`
/// (to drop it afterwards) and its name.
pub async fn fresh_database(url: &str) -> anyhow::Result<(sqlx::PgPool, String)> {
    let admin: PgConnectOptions = url.parse().context("invalid database URL")?;
    let name = format!(
        "rs_bench_{}",
        crate::sync::cli::new_run_id("x")
            .rsplit('-')
            .next()
            .unwrap_or("0")
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin)
        .await
        .context("cannot connect to Postgres")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .context("cannot create the bench database")?;
    Ok((pool, name))
}

/// `url` with its database replaced by `name`.
fn with_database(url: &url::Url, name: &str) -> String {
    let mut url = url.clone();
    url.set_path(name);
    url.to_string()
}

/// `--tenancy` as clap spells it (`dedicated`, `shared`).
fn tenancy_name(tenancy: Tenancy) -> String {
    clap::ValueEnum::to_possible_value(&tenancy)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// The connection the benchmark syncs.
const BENCH_CONNECTION: &str = "bench/district";

/// Drops a database [`fresh_database`] made (best effort).
pub async fn drop_database(admin: &sqlx::PgPool, name: &str) {
    if let Err(err) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin)
        .await
    {
        tracing::warn!(database = name, "the bench database was not dropped: {err}");
    }
}

async fn bench(
    args: &SyncBenchArgs,
    url: &str,
    base_url: url::Url,
) -> anyhow::Result<SyncBenchReport> {
    let owner = crate::store::connect(url, 3).await?;
    crate::store::migrate(&owner).await?;
    let pool = match args.tenancy {
        Tenancy::Shared => owner.clone(),
        Tenancy::Dedicated => {
            let prepared = tenancy::prepare(&owner).await?;
            let credential = tenancy::provision(&owner, &prepared, BENCH_CONNECTION, url).await?;
            crate::store::connect(&credential.url, 3).await?
        }
    };
    let source = CleverSource::new(
        base_url.clone(),
        crate::clever::CleverCredentials::Token(crate::clever::Token::new(
            crate::devtools::emulator::DEFAULT_TOKEN,
        )),
    );
    let connection = crate::run::ConnectionKey::parse(BENCH_CONNECTION)?;
    let request = |n: u32| {
        super::sync_request(
            &connection,
            crate::devtools::emulator::DEFAULT_DISTRICT_ID,
            &base_url,
            format!("bench-{n}-{}", crate::sync::cli::new_run_id("r")),
        )
    };
    let t = Instant::now();
    let full = run_sync(&pool, &request(1)?, &source).await?;
    let full_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        full.result == RunResult::Succeeded,
        "the full sync did not succeed: {:?}",
        full.message
    );
    let t = Instant::now();
    let again = run_sync(&pool, &request(2)?, &source).await?;
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
    // The sync's own peak, before the floors below (which hold whole pages) can raise it.
    let peak_rss = super::status_mb(None, "VmHWM:").unwrap_or(0.0);
    let fetch_decode = super::floors::fetch_decode(
        &base_url,
        crate::devtools::emulator::DEFAULT_TOKEN,
        crate::devtools::emulator::DEFAULT_DISTRICT_ID,
    )
    .await?;
    // The district role's sessions end before the database is dropped (the shared pool is the
    // owner's own, still needed for the floors).
    if args.tenancy == Tenancy::Dedicated {
        pool.close().await;
    }
    drop(pool);
    let mut conn = owner.acquire().await?;
    let copy = super::floors::copy(&mut conn, connection.as_str(), &full.run_id).await?;
    let per_record =
        super::floors::per_record(&mut conn, connection.as_str(), &full.run_id).await?;
    drop(conn);
    owner.close().await;
    let floor_re = fetch_decode.fetch_seconds + fetch_decode.parse_seconds;
    let floor_full = floor_re + copy.seconds;
    // The importer reads (decodes) every record it might write.
    let importer = fetch_decode.fetch_seconds + fetch_decode.decode_seconds + per_record.seconds;
    Ok(SyncBenchReport {
        students: args.students,
        tenancy: tenancy_name(args.tenancy),
        children_synced: full.counts.children.created,
        full_sync_seconds: round(full_secs),
        resync_seconds: round(resync_secs),
        peak_rss_mb: round(peak_rss),
        rows_written_per_sec: (written as f64 / full_secs).round(),
        full_sync_phases: full.timings.clone(),
        resync_phases: again.timings.clone(),
        fetch_decode_floor: fetch_decode,
        copy_floor: copy,
        full_sync_ratio: round(full_secs / floor_full),
        resync_ratio: round(resync_secs / floor_re),
        per_record,
        per_record_speedup: round(importer / full_secs),
    })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn a_spread_is_the_median_and_the_extremes_of_the_finite_values() {
        let spread = |v: &[f64]| Spread::of(v).map(|s| (s.median, s.min, s.max));
        for (values, want) in [
            (&[][..], None),
            (&[f64::NAN][..], None),
            (&[2.0][..], Some((2.0, 2.0, 2.0))),
            (&[3.0, 1.0, 2.0][..], Some((2.0, 1.0, 3.0))),
            (&[4.0, 1.0, 3.0, 2.0][..], Some((2.5, 1.0, 4.0))),
            (
                &[1.0, f64::INFINITY, 9.0, f64::NAN][..],
                Some((5.0, 1.0, 9.0)),
            ),
            (&[2.345, 1.0, 9.0][..], Some((2.35, 1.0, 9.0))),
        ] {
            assert_eq!(spread(values), want, "{values:?}");
        }
    }
}
