//! Command-line entry points. Each subcommand's arguments live beside the code that runs it; this
//! file only dispatches.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rostersync",
    version,
    about = "Keeps an early-learning roster in sync with Clever, the Kubernetes way"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Subcommands are added here, one variant each, pointing at the module that owns the Args type.
    /// Run a Clever API v3.0 emulator on loopback (for tests, demos and benchmarks).
    CleverEmulator(Box<crate::emulator::cli::EmulatorArgs>),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `rostersync bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Client throughput streaming all students from an in-process emulator over loopback HTTP.
    Clever(crate::clever::bench::BenchArgs),
}

/// Parses arguments, sets up logging, runs the subcommand and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result: anyhow::Result<u8> = runtime.block_on(async move {
        match cli.command {
            Command::CleverEmulator(args) => crate::emulator::cli::run(*args).await,
            Command::Bench(BenchCommand::Clever(args)) => crate::clever::bench::run(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
