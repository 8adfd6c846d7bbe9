//! `rostersync bench concurrent`: K districts syncing at once into one database, as the
//! controller's shared-database tenancy has them (one connection key, one district role limited to
//! its rows by row-level security, one Clever district and token each), with lock waits sampled
//! from `pg_stat_activity` every ~50 ms. Prints a table (stderr) and JSON (stdout).
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::PgPool;

use crate::api::RunResult;
use crate::devtools::emulator::{DataSource, Emulator, EmulatorConfig, EmulatorHandle, GenConfig};
use crate::run::ConnectionKey;
use crate::store::tenancy;
use crate::sync::clever_source::CleverSource;
use crate::sync::run_sync;

/// Arguments of `rostersync bench concurrent`.
#[derive(Debug, clap::Args)]
pub struct ConcurrentBenchArgs {
    /// The numbers of districts syncing at once, one round each (a comma-separated list).
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    pub districts: Vec<u32>,
    /// Students in each generated district.
    #[arg(long, default_value_t = 20_000)]
    pub students: u32,
    /// Postgres URL of an owner (CREATEROLE); a fresh database `rs_bench_<random>` is created.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Keep the benchmark database (and its district roles) afterwards.
    #[arg(long)]
    pub keep_database: bool,
    /// At most this many runs at once in each round, the others waiting their turn, as the
    /// controller's `--max-concurrent-syncs` has them (0: all K at once).
    #[arg(long, default_value_t = 0)]
    pub max_in_flight: u32,
}

/// One round: K districts at once.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Round {
    pub districts: u32,
    /// Runs at once (`--max-in-flight`; K when not capped).
    pub in_flight: u32,
    pub total_seconds: f64,
    /// Each run's wall time from its start (after its wait for a place), in the order of the
    /// districts.
    pub run_seconds: Vec<f64>,
    /// Each run's wait for a place before it started (0 when not capped).
    pub queued_seconds: Vec<f64>,
    /// Each run's time over the solo time (the first round's, K = 1): median and maximum.
    pub p50_ratio: f64,
    pub max_ratio: f64,
    /// The longest lock wait seen, per run (seconds, at the ~50 ms sampling resolution).
    pub max_lock_wait_seconds: Vec<f64>,
    /// The longest wait of a run on a lock held by another district's session.
    pub max_cross_district_wait_seconds: f64,
    /// Whether any run waited more than 1 s on another district's lock.
    pub cross_district_wait_over_1s: bool,
    /// What was waited on: `wait_event: first words of the statement` and the samples seen.
    pub waits: Vec<(String, u64)>,
    pub failed: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrentBenchReport {
    pub students_per_district: u32,
    pub solo_seconds: f64,
    pub rounds: Vec<Round>,
}

pub async fn run(args: ConcurrentBenchArgs) -> anyhow::Result<u8> {
    let (admin_pool, name) = super::sync::fresh_database(&args.database_url).await?;
    let url = super::database_url(&args.database_url, &name)?;
    let result = bench(&args, &url).await;
    if !args.keep_database {
        super::sync::drop_database(&admin_pool, &name).await;
    }
    admin_pool.close().await;
    let report = result?;
    eprint!("{}", table(&report));
    println!("{}", serde_json::to_string(&report)?);
    Ok(if report.rounds.iter().any(|r| r.failed > 0) {
        1
    } else {
        0
    })
}

fn table(r: &ConcurrentBenchReport) -> String {
    let mut out = format!(
        "concurrent syncs: {} students per district, solo {:.2} s\n{:>4}{:>8}{:>10}{:>10}{:>10}{:>14}{:>16}{:>8}\n",
        r.students_per_district,
        r.solo_seconds,
        "K",
        "at once",
        "total s",
        "p50 x",
        "max x",
        "max wait s",
        "cross-dist s",
        "failed"
    );
    for round in &r.rounds {
        let max_wait = round
            .max_lock_wait_seconds
            .iter()
            .copied()
            .fold(0.0, f64::max);
        out.push_str(&format!(
            "{:>4}{:>8}{:>10.2}{:>10.2}{:>10.2}{:>14.2}{:>16.2}{:>8}\n",
            round.districts,
            round.in_flight,
            round.total_seconds,
            round.p50_ratio,
            round.max_ratio,
            max_wait,
            round.max_cross_district_wait_seconds,
            round.failed
        ));
        for (what, n) in round.waits.iter().take(5) {
            out.push_str(&format!("       waited on {what} ({n} samples)\n"));
        }
    }
    out
}

/// A district's emulator (its own id and token).
struct District {
    id: String,
    token: String,
    emulator: EmulatorHandle,
}

async fn start_district(i: u32, students: u32) -> anyhow::Result<District> {
    let id = format!("{:024x}", 0xbe00_0000_u64 + u64::from(i));
    let token = format!("bench-district-token-{i:04}");
    let mut cfg = EmulatorConfig::generated(u64::from(i) + 1, students);
    cfg.token = token.clone();
    cfg.rate_limit_per_minute = 1_000_000;
    cfg.data = DataSource::Generate(GenConfig {
        seed: u64::from(i) + 1,
        students,
        schools: None,
        district_id: id.clone(),
    });
    let emulator = Emulator::start(cfg).await?;
    Ok(District {
        id,
        token,
        emulator,
    })
}

async fn bench(args: &ConcurrentBenchArgs, url: &str) -> anyhow::Result<ConcurrentBenchReport> {
    let owner = crate::store::connect(url, 4).await?;
    crate::store::migrate(&owner).await?;
    let prepared = tenancy::prepare(&owner).await?;
    let most = args.districts.iter().copied().max().unwrap_or(1);
    let mut districts = Vec::new();
    for i in 0..most {
        districts.push(start_district(i, args.students).await?);
    }
    let mut rounds = Vec::new();
    let mut solo = None;
    let mut roles: Vec<String> = Vec::new();
    for (round_no, &k) in args.districts.iter().enumerate() {
        // Fresh connections each round: every run is a first sync, into a database that holds
        // the earlier rounds' districts.
        let mut runs = Vec::new();
        let mut role_of = HashMap::new();
        for (i, district) in districts.iter().take(k as usize).enumerate() {
            let connection = ConnectionKey::new(&format!("bench-r{round_no}"), &format!("d{i}"))?;
            let credential =
                tenancy::provision(&owner, &prepared, connection.as_str(), url).await?;
            roles.push(connection.to_string());
            role_of.insert(credential.role.clone(), i);
            let pool = crate::store::connect(&credential.url, 3).await?;
            let source = CleverSource::new(
                district.emulator.base_url().clone(),
                crate::clever::CleverCredentials::Token(crate::clever::Token::new(
                    district.token.clone(),
                )),
            );
            let request = super::sync_request(
                &connection,
                &district.id,
                district.emulator.base_url(),
                crate::sync::cli::new_run_id("bench"),
            )?;
            runs.push((pool, request, source));
        }
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = tokio::spawn(sample_locks(
            owner.clone(),
            sampling.clone(),
            role_of.clone(),
        ));
        let in_flight = match args.max_in_flight {
            0 => k,
            m => m.min(k),
        };
        let places = tokio::sync::Semaphore::new(in_flight as usize);
        let places = &places;
        let started = Instant::now();
        // Polled together in this task (the sync future is not `Send` for every lifetime, so it
        // cannot be spawned); each run's fetching and decoding run in tasks of their own. The
        // semaphore is fair: runs start in the order of the districts, as queued runs do.
        let outcomes =
            futures::future::join_all(runs.iter().map(|(pool, req, source)| async move {
                let queued = Instant::now();
                let place = places.acquire().await;
                let waited = queued.elapsed().as_secs_f64();
                let t = Instant::now();
                let outcome = run_sync(pool, req, source).await;
                drop(place);
                (waited, t.elapsed().as_secs_f64(), outcome)
            }))
            .await;
        for (pool, _, _) in &runs {
            pool.close().await;
        }
        let mut run_seconds = Vec::new();
        let mut queued_seconds = Vec::new();
        let mut failed = 0;
        for (waited, secs, outcome) in outcomes {
            queued_seconds.push(round2(waited));
            match outcome {
                Ok(run) if run.result == RunResult::Succeeded => {}
                Ok(run) => {
                    failed += 1;
                    eprintln!("a run ended {:?}: {:?}", run.result, run.message);
                }
                Err(err) => {
                    failed += 1;
                    eprintln!("a run failed: {err:#}");
                }
            }
            run_seconds.push(secs);
        }
        let total = started.elapsed().as_secs_f64();
        sampling.store(false, std::sync::atomic::Ordering::Relaxed);
        let waits = sampler.await.context("the lock sampler panicked")??;
        let solo_secs = *solo.get_or_insert_with(|| {
            let mut s = run_seconds.clone();
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        });
        let mut ratios: Vec<f64> = run_seconds.iter().map(|s| s / solo_secs).collect();
        ratios.sort_by(f64::total_cmp);
        rounds.push(Round {
            districts: k,
            in_flight,
            total_seconds: round2(total),
            queued_seconds,
            run_seconds: run_seconds.iter().map(|s| round2(*s)).collect(),
            p50_ratio: round2(ratios.get(ratios.len() / 2).copied().unwrap_or(0.0)),
            max_ratio: round2(ratios.last().copied().unwrap_or(0.0)),
            max_lock_wait_seconds: (0..k as usize)
                .map(|i| round2(waits.max_wait.get(&i).copied().unwrap_or(0.0)))
                .collect(),
            max_cross_district_wait_seconds: round2(waits.max_cross),
            cross_district_wait_over_1s: waits.max_cross > 1.0,
            waits: waits.what,
            failed,
        });
        eprintln!(
            "round K={k}: {total:.2} s, {failed} failed, runs {:?}",
            rounds.last().map(|r| &r.run_seconds)
        );
    }
    for d in districts {
        d.emulator.shutdown().await;
    }
    for connection in roles {
        tenancy::deprovision(&owner, &prepared, &connection)
            .await
            .ok();
    }
    owner.close().await;
    Ok(ConcurrentBenchReport {
        students_per_district: args.students,
        solo_seconds: round2(solo.unwrap_or(0.0)),
        rounds,
    })
}

#[derive(Default)]
struct Waits {
    /// Longest continuous wait per run (index of the district).
    max_wait: HashMap<usize, f64>,
    /// Longest continuous wait on another district's session.
    max_cross: f64,
    what: Vec<(String, u64)>,
}

/// Samples the sessions waiting on a lock every ~50 ms until `running` turns false. A wait is
/// measured from the first sample that saw the backend waiting (on the same statement start) to
/// the last one; it is cross-district when a blocking session belongs to another district's role.
async fn sample_locks(
    owner: PgPool,
    running: Arc<std::sync::atomic::AtomicBool>,
    role_of: HashMap<String, usize>,
) -> anyhow::Result<Waits> {
    let mut conn = owner.acquire().await?;
    let mut waits = Waits::default();
    // (pid, query start) -> (first seen, district, cross-district)
    let mut open: HashMap<(i32, String), (Instant, Option<usize>, bool)> = HashMap::new();
    let mut what: HashMap<String, u64> = HashMap::new();
    while running.load(std::sync::atomic::Ordering::Relaxed) {
        let now = Instant::now();
        let rows: Vec<(i32, String, String, String, Vec<String>, String)> = sqlx::query_as(
            "SELECT a.pid, coalesce(a.usename, ''), coalesce(a.query_start::text, ''),
                    coalesce(a.wait_event, ''),
                    ARRAY(SELECT coalesce(b.usename, '') FROM pg_stat_activity b
                          WHERE b.pid = ANY (pg_blocking_pids(a.pid))),
                    left(regexp_replace(a.query, '\\s+', ' ', 'g'), 60)
             FROM pg_stat_activity a
             WHERE a.wait_event_type = 'Lock' AND a.datname = current_database()",
        )
        .fetch_all(&mut *conn)
        .await
        .context("sampling lock waits")?;
        let mut seen = Vec::new();
        for (pid, user, query_start, event, blockers, query) in rows {
            let district = role_of.get(&user).copied();
            let cross = blockers
                .iter()
                .any(|b| role_of.get(b).is_some_and(|d| Some(*d) != district));
            *what.entry(format!("{event}: {query}")).or_default() += 1;
            let key = (pid, query_start);
            let entry = open.entry(key.clone()).or_insert((now, district, false));
            entry.2 |= cross;
            seen.push(key);
        }
        open.retain(|key, (first, district, cross)| {
            let waited = now.duration_since(*first).as_secs_f64();
            if let Some(d) = district {
                let m = waits.max_wait.entry(*d).or_default();
                *m = m.max(waited);
            }
            if *cross {
                waits.max_cross = waits.max_cross.max(waited);
            }
            seen.contains(key)
        });
        tokio::time::sleep(Duration::from_millis(50).saturating_sub(now.elapsed())).await;
    }
    let mut what: Vec<(String, u64)> = what.into_iter().collect();
    what.sort_by_key(|w| std::cmp::Reverse(w.1));
    waits.what = what;
    Ok(waits)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
