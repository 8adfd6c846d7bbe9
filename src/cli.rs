//! Command-line entry points. Each subcommand's arguments live beside the code that runs it; this
//! file only dispatches.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rostersync",
    version,
    about = "Keeps an early-learning roster in sync with Clever, the Kubernetes way",
    after_help = crate::output::exit::help_text()
)]
pub struct Cli {
    /// Export traces (a span per reconcile and per sync run: ids only) to this OpenTelemetry
    /// collector over OTLP/HTTP (`URL/v1/traces`). Off unless set; sync Jobs inherit it.
    #[arg(
        long,
        global = true,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        value_name = "URL"
    )]
    pub otlp_endpoint: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions (multi-document YAML), or write one file per CRD.
    Crds(CrdsArgs),
    /// Run the operator: reconcile RosterConnections, SyncSchedules and JourneyPolicies.
    Controller(Box<crate::controller::ControllerArgs>),
    /// Schedule tools: `schedule preview` lists the next slots of a SyncSchedule manifest.
    #[command(subcommand)]
    Schedule(crate::schedule::ScheduleCommand),
    /// Apply the database migrations (roster tables and sync history).
    Migrate(crate::store::cli::MigrateArgs),
    /// Show the sync history (newest first).
    History(crate::store::cli::HistoryArgs),
    /// Run one sync of a RosterConnection: Clever to Postgres, in one transaction.
    Sync(crate::sync::cli::SyncArgs),
    /// After the sync: problems, match, journeys, rollover (crate::admin).
    #[command(flatten)]
    Admin(crate::admin::AdminCommand),
    /// Print a shell completion script: `source <(rostersync completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    // Subcommands are added here, one variant each, pointing at the module that owns the Args type.
    // Development tools (crate::devtools) follow: callable as always, hidden from `--help`.
    /// Test and demo support: run rostersync Jobs' pods as local processes (a stand-in kubelet).
    #[command(hide = true)]
    PodRunner(crate::devtools::podrunner::PodRunnerArgs),
    /// Run a Clever API v3.0 emulator on loopback (for tests, demos and benchmarks).
    #[command(hide = true)]
    CleverEmulator(Box<crate::devtools::emulator::cli::EmulatorArgs>),
    /// Measure throughput.
    #[command(subcommand, hide = true)]
    Bench(BenchCommand),
}

/// `rostersync bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Client throughput streaming all students from an in-process emulator over loopback HTTP.
    Clever(crate::devtools::bench::clever::CleverBenchArgs),
    /// A full sync into a fresh database and a no-op resync against the emulator.
    Sync(crate::devtools::bench::sync::SyncBenchArgs),
    /// Many districts on one controller: RSS, CPU, API traffic, reconcile latency at rest, a
    /// restart, and slot accuracy (docs/performance.md).
    Scale(crate::devtools::bench::scale::ScaleBenchArgs),
    /// K districts syncing at once into one database, with lock waits sampled.
    Concurrent(crate::devtools::bench::concurrent::ConcurrentBenchArgs),
}

/// Arguments of `rostersync crds`.
#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    /// Write one `<plural>.yaml` file per CRD into this directory instead of printing them.
    #[arg(long)]
    pub out_dir: Option<std::path::PathBuf>,
}

async fn crds(args: CrdsArgs) -> anyhow::Result<u8> {
    use anyhow::Context as _;
    match args.out_dir {
        None => print!("{}", crate::api::crds_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for crd in crate::api::crds() {
                let path = dir.join(crate::api::crd_file_name(&crd));
                std::fs::write(&path, serde_yaml_ng::to_string(&crd)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
    }
    Ok(0)
}

/// Parses arguments, sets up logging, runs the subcommand and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completion { shell } = cli.command {
        return print_completion::<Cli>(shell, "rostersync");
    }
    let service = match &cli.command {
        Command::Controller(_) => "rostersync-controller",
        Command::Sync(_) => "rostersync-sync",
        _ => "rostersync",
    };
    // Declared before the runtime: dropped after it, flushing the spans outside of it.
    let _telemetry = crate::telemetry::init(cli.otlp_endpoint.as_deref(), service);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(crate::output::exit::FAILED);
        }
    };
    let result: anyhow::Result<u8> = runtime.block_on(async move {
        match cli.command {
            Command::Crds(args) => crds(args).await,
            Command::Controller(args) => crate::controller::run(*args).await,
            Command::Schedule(command) => crate::schedule::preview::run(command).await,
            Command::Migrate(args) => crate::store::cli::migrate(args).await,
            Command::History(args) => crate::store::cli::history(args).await,
            Command::Sync(args) => crate::sync::cli::run(args).await,
            Command::Admin(command) => crate::admin::run(command, None, false).await,
            Command::Completion { .. } => Ok(0),
            Command::PodRunner(args) => crate::devtools::podrunner::run(args).await,
            Command::CleverEmulator(args) => crate::devtools::emulator::cli::run(*args).await,
            Command::Bench(BenchCommand::Clever(args)) => {
                crate::devtools::bench::clever::run(args).await
            }
            Command::Bench(BenchCommand::Concurrent(args)) => {
                crate::devtools::bench::concurrent::run(args).await
            }
            Command::Bench(BenchCommand::Sync(args)) => {
                crate::devtools::bench::sync::run(args).await
            }
            Command::Bench(BenchCommand::Scale(args)) => {
                crate::devtools::bench::scale::run(args).await
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(crate::output::exit::FAILED)
        }
    }
}

/// Writes the completion script of command line `C` for `shell` to stdout. Hidden (development)
/// subcommands are left out of it, as from `--help`.
pub fn print_completion<C: clap::CommandFactory>(
    shell: clap_complete::Shell,
    bin: &'static str,
) -> ExitCode {
    // The same command line without its hidden subcommands (clap_complete would list them).
    let full = C::command();
    let mut cmd = clap::Command::new(bin)
        .about(full.get_about().cloned().unwrap_or_default())
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(full.is_subcommand_required_set());
    for arg in full.get_arguments() {
        cmd = cmd.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(sub.clone());
    }
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut out);
    use std::io::Write as _;
    match std::io::stdout().write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot write the completion script: {err}");
            ExitCode::from(crate::output::exit::FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;
    use clap::error::ErrorKind;

    use clap::Parser as _;

    use super::Cli;

    /// The development tools' subcommands.
    const HIDDEN: [&str; 3] = ["pod-runner", "clever-emulator", "bench"];

    #[test]
    fn help_lists_the_operator_commands_but_not_the_development_tools() {
        let help = Cli::command().render_help().to_string();
        for shown in [
            "crds",
            "controller",
            "schedule",
            "migrate",
            "history",
            "sync",
        ] {
            assert!(
                help.contains(&format!("  {shown} ")),
                "{shown} missing from:\n{help}"
            );
        }
        for hidden in HIDDEN {
            assert!(!help.contains(hidden), "{hidden} listed in:\n{help}");
        }
    }

    #[test]
    fn development_tools_stay_callable_with_their_own_help() {
        for args in [
            &["rostersync", "clever-emulator", "--help"][..],
            &["rostersync", "pod-runner", "--help"],
            &["rostersync", "bench", "--help"],
            &["rostersync", "bench", "clever", "--help"],
            &["rostersync", "bench", "sync", "--help"],
            &["rostersync", "bench", "scale", "--help"],
        ] {
            let err = Cli::try_parse_from(args).expect_err("--help exits through an error");
            assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{args:?}");
        }
        let err = Cli::try_parse_from(["rostersync", "clever-emulator", "--help"])
            .expect_err("--help exits through an error");
        let help = err.to_string();
        assert!(help.contains("--students"), "{help}");
        assert!(help.contains("--fault"), "{help}");
    }

    #[test]
    fn development_tools_parse_their_flags() {
        let cli = Cli::try_parse_from([
            "rostersync",
            "clever-emulator",
            "--students",
            "20",
            "--seed",
            "3",
        ])
        .expect("parses");
        assert!(
            matches!(cli.command, super::Command::CleverEmulator(ref a) if a.students == 20 && a.seed == 3)
        );
        let cli = Cli::try_parse_from(["rostersync", "bench", "clever", "--students", "10"])
            .expect("parses");
        assert!(matches!(
            cli.command,
            super::Command::Bench(super::BenchCommand::Clever(ref a)) if a.students == 10
        ));
    }
}
