//! `rostersync migrate` and `rostersync history`.
use anyhow::Context as _;

use crate::output::runs::RunRow;
use crate::output::{OutputFormat, Printer};
use crate::run::ConnectionKey;

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

/// Arguments of `rostersync history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only runs of this RosterConnection (`namespace/name`).
    #[arg(long)]
    pub connection: Option<String>,
    /// How many runs to show (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    /// Output format: table, wide, json, yaml or csv (JSON/YAML: a `RunList`, README "Output formats").
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Absolute times in UTC instead of the viewer's zone.
    #[arg(long)]
    pub utc: bool,
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
    let rows: Vec<RunRow> = runs.iter().map(RunRow::from_record).collect();
    Printer::new(args.output, args.utc).print(&rows)?;
    Ok(0)
}
