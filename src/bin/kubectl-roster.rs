//! `kubectl-roster`: the kubectl plugin (`kubectl roster ...`). The logic lives in `rostersync::plugin`.
use std::process::ExitCode;

fn main() -> ExitCode {
    rostersync::plugin::main()
}
