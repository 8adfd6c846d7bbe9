//! The `rostersync` binary: one executable, several subcommands (see `rostersync --help`).
use std::process::ExitCode;

fn main() -> ExitCode {
    rostersync::cli::main()
}
