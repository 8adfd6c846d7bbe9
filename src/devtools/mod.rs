//! Development and test tools, not part of the operator's job: the Clever emulator, the pod runner
//! (a stand-in kubelet) and the benchmarks. Their subcommands (`rostersync clever-emulator`,
//! `rostersync pod-runner`, `rostersync bench ...`) are hidden from `rostersync --help`.
pub mod bench;
pub mod emulator;
pub mod podrunner;
