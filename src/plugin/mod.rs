//! `kubectl roster`: the kubectl plugin for platform teams (binary `kubectl-roster`).
//!
//! kubectl does not pass its global flags to plugins, so the plugin takes them itself
//! (`--kubeconfig`, `--context`, `-n`, `-A`, `--as`, `--as-group`, `--request-timeout`) and builds
//! its one client from them ([`commands::client`]). Every read verb takes
//! `-o table|wide|json|yaml|csv` and prints through [`crate::output`].
//!
//! - `status [NAME] [--watch]`: one table across RosterConnections, SyncSchedules and
//!   JourneyPolicies (health, last result, last and next sync, Sync Now availability).
//! - `sync-now NAME [--wait] [--timeout D] [--quiet]`: a fresh `rostersync.io/sync-now` token;
//!   with `--wait`, one line per step until the run finished.
//! - `history NAME [--limit N]`: the `sync_runs` table when `DATABASE_URL` is reachable, else
//!   through the status UI's API as the user, else the schedule's `status.recentRuns`.
//! - `dashboard [--ui-url URL]`: the status pages through a local proxy adding the user's token.
//! - `events NAME`: the Events of the connection, its schedules and policy, newest last.
//! - `logs NAME [RUN_ID]`: the run's pod log while the pod exists.
//! - `suspend NAME`, `resume NAME`, `approve NAME RUN_ID`, `preview NAME`, `completion SHELL`.
//!
//! NAME is a SyncSchedule, or a RosterConnection whose (single) SyncSchedule is meant.
mod commands;
mod format;

pub use commands::{Outcome, sync_now_outcome};
pub use format::{StatusRow, SyncNowRow, not_ready_notes, status_rows};

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::output::{OutputFormat, exit, parse_duration};

/// Exit code of a failed run or any error (see [`crate::output::exit`]).
pub const EXIT_FAILED: u8 = exit::FAILED;
/// Exit code when `--wait` timed out.
pub const EXIT_TIMEOUT: u8 = exit::TIMED_OUT;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-roster",
    bin_name = "kubectl roster",
    version,
    about = "Inspect and operate rostersync: status, Sync Now, history, events, logs, suspend/resume, approvals",
    after_help = exit_help()
)]
/// The `kubectl roster` command line (the `rostersync` binary's is [`crate::cli::Cli`]).
pub struct PluginCli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: PluginCommand,
}

fn exit_help() -> String {
    exit::help_text()
}

/// kubectl's global flags, which kubectl does not pass on to plugins.
#[derive(Clone, Debug, Default, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// All namespaces (status, events).
    #[arg(short = 'A', long, global = true, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Impersonate this user.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Impersonate this group (repeatable).
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
    /// Timeout of each request to the API server, e.g. 10s, 1m.
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,
    /// Absolute times in UTC instead of the viewer's zone.
    #[arg(long, global = true)]
    pub utc: bool,
}

/// `-o` of a read verb.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct OutputArgs {
    /// Output format: table, wide, json, yaml or csv (JSON/YAML: see README "Output formats").
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// The `kubectl roster` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// One table across the three kinds: health, last result, last and next sync, Sync Now.
    Status {
        /// Only objects with this name.
        name: Option<String>,
        /// Print again on every change (table: the whole table; json/yaml: one document each).
        #[arg(short = 'w', long)]
        watch: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Ask for one immediate sync (a fresh rostersync.io/sync-now token).
    SyncNow {
        /// The SyncSchedule (or its RosterConnection).
        name: String,
        /// Wait until the run finished, printing each step.
        #[arg(long)]
        wait: bool,
        /// How long to wait, e.g. 30s, 10m, 1h30m.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        timeout: Duration,
        /// Print only the outcome (no step lines, no spinner).
        #[arg(short = 'q', long)]
        quiet: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Sync runs, newest first: from Postgres (DATABASE_URL) when reachable, else through the
    /// status UI as you (ROSTERSYNC_UI_URL, or a port-forward to its Service), else from status.
    History {
        /// The SyncSchedule or RosterConnection.
        name: String,
        /// How many runs.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// The Events of a connection, its schedules and its policy (and their Jobs), newest last.
    Events {
        /// The RosterConnection or SyncSchedule (all of the namespace with -A or without NAME).
        name: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// The log of a run's pod (the newest run without RUN_ID), while the pod exists.
    Logs {
        /// The SyncSchedule (or its RosterConnection).
        name: String,
        /// The run id (see `kubectl roster history`).
        run_id: Option<String>,
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
    /// The status pages in your browser, as your kubeconfig user: a local proxy on 127.0.0.1 that
    /// adds your bearer token and forwards to the controller's status UI.
    Dashboard {
        /// The status UI's URL (e.g. its Ingress). Default: a port-forward to the Service
        /// ROSTERSYNC_UI_SERVICE (rostersync-ui) in ROSTERSYNC_UI_NAMESPACE (rostersync).
        #[arg(long, env = "ROSTERSYNC_UI_URL")]
        ui_url: Option<String>,
        /// The local port (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Open the page in a browser.
        #[arg(long)]
        open: bool,
    },
    /// The next scheduled slots of a SyncSchedule.
    Preview {
        /// The SyncSchedule (or its RosterConnection).
        name: String,
        /// How many slots.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
        count: u16,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Print a shell completion script: `source <(kubectl roster completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
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
    if let PluginCommand::Completion { shell } = cli.command {
        return crate::cli::print_completion::<PluginCli>(shell, "kubectl-roster");
    }
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
