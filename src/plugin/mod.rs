//! `kubectl roster`: the kubectl plugin for platform teams (binary `kubectl-roster`).
//!
//! - `status [NAME] [-n NS | -A]`: one table across RosterConnections, SyncSchedules and
//!   JourneyPolicies (health, last result, last and next sync, Sync Now availability).
//! - `sync-now NAME [--wait] [--timeout D]`: a fresh `rostersync.io/sync-now` token; with `--wait`,
//!   waits until the controller handled it and the run finished (exit 1 on failure or rejection).
//! - `history NAME [--limit N]`: the `sync_runs` table when `DATABASE_URL` is reachable, else the
//!   schedule's `status.recentRuns`.
//! - `suspend NAME`, `resume NAME`, `approve NAME RUN_ID`, `preview NAME`.
//!
//! NAME is a SyncSchedule, or a RosterConnection whose (single) SyncSchedule is meant. Formatting is
//! pure (unit-tested here); the commands talk to the API server and print.
mod commands;
mod format;

pub use commands::{Outcome, sync_now_outcome};
pub use format::{format_duration, parse_duration, relative, status_table};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code of a failed or held run, a rejected Sync Now, or any error.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when `--wait` timed out.
pub const EXIT_TIMEOUT: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-roster",
    bin_name = "kubectl roster",
    version,
    about = "Inspect and operate rostersync: status, Sync Now, history, suspend/resume, approvals"
)]
/// The `kubectl roster` command line (the `rostersync` binary's is [`crate::cli::Cli`]).
pub struct PluginCli {
    /// Namespace (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// The `kubectl roster` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// One table across the three kinds: health, last result, last and next sync, Sync Now.
    Status {
        /// Only objects with this name.
        name: Option<String>,
        /// All namespaces.
        #[arg(short = 'A', long, conflicts_with = "namespace")]
        all_namespaces: bool,
    },
    /// Ask for one immediate sync (a fresh rostersync.io/sync-now token).
    SyncNow {
        /// The SyncSchedule (or its RosterConnection).
        name: String,
        /// Wait until the controller handled the request and the run finished.
        #[arg(long)]
        wait: bool,
        /// How long to wait, e.g. 30s, 10m, 1h30m.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// Sync runs, newest first: from Postgres (DATABASE_URL) when reachable, else from status.
    History {
        /// The SyncSchedule or RosterConnection.
        name: String,
        /// How many runs.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
    },
    /// Stop scheduled syncs (spec.suspend=true); Sync Now still works.
    Suspend {
        /// The SyncSchedule (or its RosterConnection).
        name: String,
    },
    /// Resume scheduled syncs (spec.suspend=false).
    Resume {
        /// The SyncSchedule (or its RosterConnection).
        name: String,
    },
    /// Approve one run held by the removal guard (rostersync.io/approve-removals).
    Approve {
        /// The SyncSchedule (or its RosterConnection).
        name: String,
        /// The held run's id (see `kubectl roster history`).
        run_id: String,
    },
    /// The next scheduled slots of a SyncSchedule.
    Preview {
        /// The SyncSchedule (or its RosterConnection).
        name: String,
        /// How many slots.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
        count: u16,
    },
    /// Print the Clever district id of an instant login link (or check an id), for districtId.
    DistrictId {
        /// The district's instant login link as copied from Clever (quote it), or the id.
        link: String,
    },
    /// After the sync: problems, match, journeys, rollover (crate::admin; Postgres).
    #[command(flatten)]
    Admin(crate::admin::AdminCommand),
}

/// Entry point of the `kubectl-roster` binary.
pub fn main() -> ExitCode {
    let cli = PluginCli::parse();
    crate::telemetry::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
