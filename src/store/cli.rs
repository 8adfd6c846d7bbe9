//! `rostersync migrate` and `rostersync history`.
use anyhow::Context as _;

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
    let runs = super::list_runs(&pool, args.connection.as_deref(), args.limit.max(0))
        .await
        .context("cannot read the sync history (has `rostersync migrate` run?)")?;
    match args.output {
        HistoryOutput::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
        HistoryOutput::Table => print!("{}", history_table(&runs)),
    }
    Ok(0)
}

/// Renders runs as a fixed-width table.
pub fn history_table(runs: &[super::RunRow]) -> String {
    let mut out = format!(
        "{:<36} {:<28} {:<9} {:<10} {:<20} {:>8} {:>8}  {}\n",
        "RUN ID", "CONNECTION", "TRIGGER", "RESULT", "STARTED", "SECONDS", "PROBLEMS", "SUMMARY"
    );
    for r in runs {
        let secs = r
            .finished_at
            .map(|f| {
                format!(
                    "{:.1}",
                    (f - r.started_at).num_milliseconds() as f64 / 1000.0
                )
            })
            .unwrap_or_else(|| "-".into());
        let result = if r.dry_run {
            format!("{}*", r.result)
        } else {
            r.result.clone()
        };
        let summary = summary(r);
        out.push_str(&format!(
            "{:<36} {:<28} {:<9} {:<10} {:<20} {:>8} {:>8}  {}\n",
            r.run_id,
            r.connection,
            r.trigger,
            result,
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            secs,
            r.problems,
            summary
        ));
    }
    if runs.iter().any(|r| r.dry_run) {
        out.push_str("(* dry run: nothing was applied)\n");
    }
    out
}

fn summary(r: &super::RunRow) -> String {
    if let Some(reason) = r.reason.as_deref().filter(|_| r.result != "Succeeded") {
        return format!("{reason}: {}", r.message.as_deref().unwrap_or(""));
    }
    let mut parts = Vec::new();
    if let Some(obj) = r.counts.as_object() {
        for (entity, c) in obj {
            let n = |k: &str| c.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
            let changed =
                n("created") + n("updated") + n("reactivated") + n("carriedOver") + n("matched");
            let removed = n("deactivated") + n("removed");
            if changed + removed > 0 {
                parts.push(format!("{entity} +{changed}/-{removed}"));
            }
        }
    }
    if parts.is_empty() {
        "no changes".into()
    } else {
        parts.join(", ")
    }
}
