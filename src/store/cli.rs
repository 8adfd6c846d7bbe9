//! `rostersync migrate` and `rostersync history`.
use anyhow::Context as _;

use crate::run::{ConnectionKey, RunRecord};

/// Arguments of `rostersync migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Postgres URL of the roster database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

/// Applies the embedded migrations.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<u8> {
    let pool = super::connect(&args.database_url, 2).await?;
    super::migrate(&pool).await?;
    let applied = super::MIGRATOR.iter().count();
    eprintln!("database is up to date ({applied} migrations)");
    Ok(0)
}

/// Output formats of `rostersync history`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryOutput {
    #[default]
    Table,
    Json,
}

/// Arguments of `rostersync history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only runs of this RosterConnection (`namespace/name`).
    #[arg(long)]
    pub connection: Option<String>,
    /// How many runs to show (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    #[arg(long, value_enum, default_value_t = HistoryOutput::Table)]
    pub output: HistoryOutput,
    /// Postgres URL of the roster database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

/// Prints the most recent sync runs.
pub async fn history(args: HistoryArgs) -> anyhow::Result<u8> {
    let pool = super::connect(&args.database_url, 2).await?;
    let connection = args
        .connection
        .as_deref()
        .map(ConnectionKey::parse)
        .transpose()
        .context("--connection")?;
    let runs = super::runs::list(&pool, connection.as_ref(), args.limit.max(0))
        .await
        .context("cannot read the sync history (has `rostersync migrate` run?)")?;
    match args.output {
        HistoryOutput::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
        HistoryOutput::Table => print!("{}", history_table(&runs)),
    }
    Ok(0)
}

/// Renders runs as a fixed-width table.
pub fn history_table(runs: &[RunRecord]) -> String {
    let mut out = format!(
        "{:<36} {:<28} {:<9} {:<10} {:<20} {:>8} {:>8}  {}\n",
        "RUN ID", "CONNECTION", "TRIGGER", "RESULT", "STARTED", "SECONDS", "PROBLEMS", "SUMMARY"
    );
    for r in runs {
        let secs = r
            .duration_ms
            .map(|ms| format!("{:.1}", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let result = if r.dry_run {
            format!("{}*", r.result.as_str())
        } else {
            r.result.as_str().to_string()
        };
        out.push_str(&format!(
            "{:<36} {:<28} {:<9} {:<10} {:<20} {:>8} {:>8}  {}\n",
            r.run_id,
            r.connection.as_str(),
            r.trigger.as_str(),
            result,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            secs,
            r.problems,
            r.summary()
        ));
    }
    if runs.iter().any(|r| r.dry_run) {
        out.push_str("(* dry run: nothing was applied)\n");
    }
    out
}
