//! `rostersync bench sync`: emulator (child process) + full sync into a fresh database + no-op
//! resync, printed as JSON.

/// Arguments of `rostersync bench sync`.
#[derive(Debug, clap::Args)]
pub struct BenchSyncArgs {
    /// Students in the generated district.
    #[arg(long, default_value_t = 10_000)]
    pub students: u64,
    /// Postgres URL (a fresh database is created next to it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

pub async fn run(_args: BenchSyncArgs) -> anyhow::Result<u8> {
    anyhow::bail!("the sync benchmark needs the Clever emulator, which has not landed yet")
}
