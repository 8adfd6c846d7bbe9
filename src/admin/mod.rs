//! After the sync: the organization admin's verbs, the same in `rostersync` and `kubectl roster`
//! (both binaries flatten [`AdminCommand`] into their subcommands):
//!
//! - `problems CONNECTION [RUN_ID]`: a run's per-record problems (default the last run), by code,
//!   with the record's Clever id and what to do. Ids only: no names or birth dates.
//! - `match list|link|unlink CONNECTION`: unmatched and ambiguous children and educators with their
//!   candidates; link a roster record (Clever id) to an existing product record, or unlink it.
//! - `journeys set|list|revert CONNECTION`: the bulk journey updater, with its change log.
//! - `rollover CONNECTION --school-year YYYY-YYYY`: archive the year's children, once.
//!
//! Each reads and writes Postgres (`--database-url` / `DATABASE_URL`, the operator's credential);
//! the data comes from `crate::store` (pure row structs), printing from [`print`].
pub mod print;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::output::OutputFormat;
use crate::run::ConnectionKey;
use crate::store::journeys::{self, Selector};
use crate::store::matching::{self, RecordKind};
use crate::store::{problems, rollover};

/// The admin verbs (flattened into both binaries' subcommands).
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The per-record problems of a run (default: the connection's last run), by code, with each
    /// record's Clever id and what to do. Ids only; `-o csv` for the SIS team.
    Problems(ProblemsArgs),
    /// Match roster records to children and educators already in the product.
    #[command(subcommand)]
    Match(MatchCommand),
    /// The bulk journey updater: set, list and revert children's journeys.
    #[command(subcommand)]
    Journeys(JourneysCommand),
    /// Archive a school year's children (and deactivate their enrollments), once per year, so that
    /// the next sync carries returning children over (settings.autoCarryover).
    Rollover(RolloverArgs),
}

/// Options every admin verb takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The RosterConnection: NAMESPACE/NAME (in `kubectl roster`, NAME with -n works too).
    pub connection: String,
    /// Output format: table, wide, json, yaml or csv (ids only, never names or birth dates).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Postgres URL of the roster database (the operator's credential). `kubectl roster problems`
    /// without one reads the status UI's API with the user's own permissions.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// Options of the verbs that change data.
#[derive(Debug, Clone, Args)]
pub struct Change {
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Who makes the change, for the record (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
}

impl Change {
    fn by(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "unknown".into())
    }
}

/// Arguments of `problems`.
#[derive(Debug, Args)]
pub struct ProblemsArgs {
    #[command(flatten)]
    pub common: Common,
    /// The run (default: the connection's most recent run).
    pub run_id: Option<String>,
}

/// `match ...`.
#[derive(Debug, Subcommand)]
pub enum MatchCommand {
    /// Unmatched and ambiguous children and educators, with their candidate matches (ids only).
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Link the roster record with a Clever id to an existing child (or educator) of the product.
    /// The link survives later syncs; a duplicate the sync created for that Clever id is merged.
    Link {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        change: Change,
        #[arg(long, value_enum, default_value_t = RecordKind::Child)]
        kind: RecordKind,
        /// The roster record's Clever id.
        #[arg(long)]
        clever_id: String,
        /// The product record's id (see `match list`).
        #[arg(long)]
        to: i64,
    },
    /// Undo a link: the record becomes a product-only record again and is not matched to that
    /// Clever id again.
    Unlink {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        change: Change,
        #[arg(long, value_enum, default_value_t = RecordKind::Child)]
        kind: RecordKind,
        /// The Clever id to unlink.
        #[arg(long)]
        clever_id: String,
    },
}

/// `journeys ...`.
#[derive(Debug, Subcommand)]
pub enum JourneysCommand {
    /// Set the journey of the children selected by school, classroom, grade or a CSV of ids (one
    /// selector). Only licensed products; every change is recorded and can be reverted.
    Set {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        change: Change,
        /// The product (journey) to set.
        #[arg(long)]
        journey: String,
        /// Children of this school (Clever id).
        #[arg(long, group = "selector")]
        school: Option<String>,
        /// Children enrolled in this classroom (Clever id).
        #[arg(long, group = "selector")]
        classroom: Option<String>,
        /// Children in this grade (Clever's spelling, e.g. Preschool).
        #[arg(long, group = "selector")]
        grade: Option<String>,
        /// A CSV file of child ids and/or Clever ids (`-` for stdin).
        #[arg(long, group = "selector")]
        ids_file: Option<std::path::PathBuf>,
    },
    /// The journey changes of a connection, newest first.
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Restore each child's journey from before a change (children changed again since are left
    /// as they are, and counted).
    Revert {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        change: Change,
        /// The change's id (see `journeys list`).
        change_id: i64,
    },
}

/// Arguments of `rollover`.
#[derive(Debug, Args)]
pub struct RolloverArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub change: Change,
    /// The school year that ends, e.g. 2025-2026.
    #[arg(long)]
    pub school_year: String,
}

/// `NAMESPACE/NAME`, or `NAME` in `namespace`.
pub fn connection_key(raw: &str, namespace: Option<&str>) -> anyhow::Result<ConnectionKey> {
    if raw.contains('/') {
        return Ok(ConnectionKey::parse(raw)?);
    }
    match namespace {
        Some(ns) => Ok(ConnectionKey::new(ns, raw)?),
        None => bail!("{raw:?} is not a connection: give NAMESPACE/NAME"),
    }
}

async fn pool(common: &Common) -> anyhow::Result<sqlx::PgPool> {
    let url = common.database_url.as_deref().context(
        "no roster database: give --database-url or set DATABASE_URL (`kubectl roster problems` \
         reads the status UI's API without one)",
    )?;
    crate::store::connect(url, 2)
        .await
        .context("cannot connect to the roster database (--database-url / DATABASE_URL)")
}

/// Runs an admin verb; `namespace` completes a bare NAME (kubectl roster's -n); `utc`: absolute
/// times in UTC (kubectl roster's --utc).
pub async fn run(command: AdminCommand, namespace: Option<&str>, utc: bool) -> anyhow::Result<u8> {
    match command {
        AdminCommand::Problems(args) => {
            let key = connection_key(&args.common.connection, namespace)?;
            let pool = pool(&args.common).await?;
            let run = problems::for_run(&pool, &key, args.run_id.as_deref()).await?;
            if !args.common.output.is_machine() {
                eprintln!("run {} of {}", run.run_id, run.connection);
            }
            print::rows(&run.problems, args.common.output, utc, "no problems")?;
            Ok(0)
        }
        AdminCommand::Match(MatchCommand::List { common }) => {
            let key = connection_key(&common.connection, namespace)?;
            let pool = pool(&common).await?;
            let rows = matching::list(&pool, &key).await?;
            print::rows(&rows, common.output, utc, "nothing to match")?;
            Ok(0)
        }
        AdminCommand::Match(MatchCommand::Link {
            common,
            change,
            kind,
            clever_id,
            to,
        }) => {
            let key = connection_key(&common.connection, namespace)?;
            let pool = pool(&common).await?;
            let out = matching::link(
                &pool,
                &key,
                kind,
                &clever_id,
                to,
                &change.by(),
                change.dry_run,
            )
            .await?;
            print::one(&out, common.output, utc)?;
            Ok(0)
        }
        AdminCommand::Match(MatchCommand::Unlink {
            common,
            change,
            kind,
            clever_id,
        }) => {
            let key = connection_key(&common.connection, namespace)?;
            let pool = pool(&common).await?;
            let out = matching::unlink(&pool, &key, kind, &clever_id, &change.by(), change.dry_run)
                .await?;
            print::one(&out, common.output, utc)?;
            Ok(0)
        }
        AdminCommand::Journeys(JourneysCommand::Set {
            common,
            change,
            journey,
            school,
            classroom,
            grade,
            ids_file,
        }) => {
            let key = connection_key(&common.connection, namespace)?;
            let selector = match (school, classroom, grade, ids_file) {
                (Some(s), _, _, _) => Selector::School(s),
                (_, Some(c), _, _) => Selector::Classroom(c),
                (_, _, Some(g), _) => {
                    let grade: crate::api::Grade = serde_json::from_value(serde_json::Value::String(g.clone()))
                        .map_err(|_| anyhow::anyhow!("{g:?} is not a Clever grade (e.g. InfantToddler, Preschool, PreKindergarten, TransitionalKindergarten, Kindergarten, 1)"))?;
                    Selector::Grade(grade.as_str().to_string())
                }
                (_, _, _, Some(path)) => {
                    let text = if path.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
                    } else {
                        std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?
                    };
                    let (ids, clever_ids) = journeys::parse_ids_csv(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    Selector::Ids { ids, clever_ids }
                }
                _ => bail!("select the children: --school, --classroom, --grade or --ids-file"),
            };
            let pool = pool(&common).await?;
            let out = journeys::set(
                &pool,
                &key,
                &selector,
                &journey,
                &change.by(),
                change.dry_run,
            )
            .await?;
            print::one(&out, common.output, utc)?;
            Ok(0)
        }
        AdminCommand::Journeys(JourneysCommand::List { common, limit }) => {
            let key = connection_key(&common.connection, namespace)?;
            let pool = pool(&common).await?;
            let rows = journeys::list(&pool, &key, limit).await?;
            print::rows(&rows, common.output, utc, "no journey changes")?;
            Ok(0)
        }
        AdminCommand::Journeys(JourneysCommand::Revert {
            common,
            change,
            change_id,
        }) => {
            let key = connection_key(&common.connection, namespace)?;
            let pool = pool(&common).await?;
            let out =
                journeys::revert(&pool, &key, change_id, &change.by(), change.dry_run).await?;
            print::one(&out, common.output, utc)?;
            Ok(0)
        }
        AdminCommand::Rollover(args) => {
            let key = connection_key(&args.common.connection, namespace)?;
            rollover::parse_school_year(&args.school_year).map_err(anyhow::Error::msg)?;
            let pool = pool(&args.common).await?;
            let out = rollover::rollover(
                &pool,
                &key,
                &args.school_year,
                &args.change.by(),
                args.change.dry_run,
            )
            .await?;
            print::one(&out, args.common.output, utc)?;
            if out.already_done && !args.common.output.is_machine() {
                eprintln!(
                    "{} was already rolled over for {}: nothing was changed",
                    out.school_year, out.connection
                );
            }
            Ok(0)
        }
    }
}
