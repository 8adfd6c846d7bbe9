//! `rostersync clever-emulator`: runs the emulator until SIGTERM or Ctrl-C, printing its base URL
//! as one line on stdout when ready (logs go to stderr).
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{DataSource, Emulator, EmulatorConfig, Fault, FaultKind, GenConfig};

#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The emulated district's id (24 lowercase hex characters).
    #[arg(long, default_value = super::DEFAULT_DISTRICT_ID)]
    pub district_id: String,
    /// The district token the emulator accepts.
    #[arg(long, env = "CLEVER_EMULATOR_TOKEN", default_value = super::DEFAULT_TOKEN, hide_default_value = true)]
    pub token: String,
    /// App credentials accepted by /oauth/tokens.
    #[arg(long, default_value = super::DEFAULT_CLIENT_ID)]
    pub client_id: String,
    #[arg(long, env = "CLEVER_EMULATOR_CLIENT_SECRET", default_value = super::DEFAULT_CLIENT_SECRET, hide_default_value = true)]
    pub client_secret: String,
    /// Seed for generated data (same seed, same data).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of schools (default: one per ~450 students).
    #[arg(long)]
    pub schools: Option<u32>,
    /// Number of students (10 to 1,000,000).
    #[arg(long, default_value_t = 1000)]
    pub students: u32,
    /// Serve Clever-format list files from this directory instead of generated data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Requests per minute per token before 429.
    #[arg(long, default_value_t = 1200)]
    pub rate_limit: u64,
    /// Delay every API response by this many milliseconds.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// A fault rule, e.g. `fault=status,status=503,path=/v3.0/users,nth=2,times=1`; kinds:
    /// status, rate_limit (reset_secs), delay (ms), truncated_json, html_404, html_200, ... Repeatable.
    #[arg(long = "fault", value_parser = Fault::parse_spec)]
    pub faults: Vec<Fault>,
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<u8> {
    let id = &args.district_id;
    if id.len() != 24
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        anyhow::bail!("--district-id must be 24 lowercase hex characters");
    }
    let data = match args.data {
        Some(dir) => DataSource::Dir(dir),
        None => DataSource::Generate(GenConfig {
            seed: args.seed,
            students: args.students,
            schools: args.schools,
            district_id: args.district_id.clone(),
        }),
    };
    let mut faults = args.faults;
    if let Some(ms) = args.delay_ms {
        faults.push(Fault::new(None, 1, u64::MAX, FaultKind::Delay { ms }));
    }
    let cfg = EmulatorConfig {
        listen: args.listen,
        token: args.token,
        client_id: args.client_id,
        client_secret: args.client_secret,
        rate_limit_per_minute: args.rate_limit,
        data,
        faults,
    };
    let started = std::time::Instant::now();
    let handle = Emulator::start(cfg).await?;
    let (users, sections) =
        handle.read(|s| (s.len(super::Kind::Users), s.len(super::Kind::Sections)));
    tracing::info!(
        users,
        sections,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Clever emulator ready"
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", handle.base_url().as_str().trim_end_matches('/'))?;
    out.flush()?;
    drop(out);
    wait_for_stop().await;
    tracing::info!("Clever emulator stopping");
    handle.shutdown().await;
    Ok(0)
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
