//! `rostersync bench clever`: streams every student of an in-process emulator through the client
//! over loopback HTTP and prints throughput as JSON.
use std::time::Instant;

use futures::StreamExt;

use crate::clever::{CleverClient, ClientConfig, Role, Token};
use crate::devtools::emulator::{Emulator, EmulatorConfig};

#[derive(Debug, clap::Args)]
pub struct CleverBenchArgs {
    /// Students in the generated district.
    #[arg(long, default_value_t = 100_000)]
    pub students: u32,
    /// Page size (`limit`).
    #[arg(long, default_value_t = 10_000)]
    pub limit: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The measured figures (also printed as JSON).
#[derive(Debug, serde::Serialize)]
pub struct CleverBenchReport {
    pub students: u32,
    pub records: u64,
    pub problems: u64,
    pub requests: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub generate_seconds: f64,
}

pub async fn run(args: CleverBenchArgs) -> anyhow::Result<u8> {
    let report = measure(&args).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(if report.records == u64::from(args.students) {
        0
    } else {
        1
    })
}

pub async fn measure(args: &CleverBenchArgs) -> anyhow::Result<CleverBenchReport> {
    let started = Instant::now();
    let emulator = Emulator::start(EmulatorConfig::generated(args.seed, args.students)).await?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let mut cfg = ClientConfig::new(emulator.base_url().clone(), Token::new(emulator.token()));
    cfg.page_limit = args.limit;
    let client = CleverClient::new(cfg)?;
    let started = Instant::now();
    let (mut records, mut problems) = (0u64, 0u64);
    let mut stream = std::pin::pin!(client.users(Role::Student));
    while let Some(item) = stream.next().await {
        match item? {
            Ok(_) => records += 1,
            Err(_) => problems += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = client.stats();
    emulator.shutdown().await;
    Ok(CleverBenchReport {
        students: args.students,
        records,
        problems,
        requests: stats.requests,
        seconds,
        records_per_sec: (records + problems) as f64 / seconds,
        mb_per_sec: stats.bytes as f64 / 1_000_000.0 / seconds,
        generate_seconds,
    })
}
