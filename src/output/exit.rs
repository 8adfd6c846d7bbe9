//! The exit-code contract of both binaries (`rostersync` and `kubectl-roster`).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | ok: the command did what was asked (a sync run succeeded) |
//! | 1 | failed: an error, or a failed run a retry may fix |
//! | 2 | usage: bad arguments or configuration, or a failed run a retry cannot fix (fix it first) |
//! | 3 | held: the run is held by the removal guard, awaiting `kubectl roster approve` |
//! | 4 | timed out: `--wait` (or `--watch`) gave up before the outcome was known |
//! | 5 | rejected: Sync Now is not available (the controller refused the request) |
//!
//! Code 2 is clap's usage error on purpose: a usage error and a permanent failure (a revoked token,
//! an untrusted certificate, a bad manifest) ask the same of a person or a Job, "do not retry as is",
//! which is why a sync Job's podFailurePolicy treats 2 and 3 as final.

/// The command did what was asked.
pub const OK: u8 = 0;
/// An error, or a failed run that a retry may fix.
pub const FAILED: u8 = 1;
/// A usage error (clap's code), or a failure no retry can fix without a change first.
pub const USAGE: u8 = 2;
/// The run is held by the removal guard, awaiting approval.
pub const HELD: u8 = 3;
/// Waiting for an outcome timed out.
pub const TIMED_OUT: u8 = 4;
/// Sync Now was rejected (not available now).
pub const REJECTED: u8 = 5;

/// Every code with its one-line meaning, as shown in `--help` and the README.
pub const TABLE: [(u8, &str); 6] = [
    (OK, "ok"),
    (FAILED, "failed (a retry may succeed)"),
    (
        USAGE,
        "usage or configuration error; a failure a retry cannot fix",
    ),
    (HELD, "held by the removal guard, awaiting approval"),
    (TIMED_OUT, "timed out waiting"),
    (REJECTED, "rejected: Sync Now not available"),
];

/// The `after_help` text of both binaries: the exit codes.
pub fn help_text() -> String {
    let mut out = String::from("Exit codes:\n");
    for (code, what) in TABLE {
        out.push_str(&format!("  {code}  {what}\n"));
    }
    out
}

/// The exit code for a run's result: 0 succeeded, 3 held, 1 failed but retriable, 2 failed for good.
pub fn for_run(result: crate::api::RunResult, retriable: bool) -> u8 {
    use crate::api::RunResult;
    match result {
        RunResult::Succeeded => OK,
        RunResult::Held => HELD,
        RunResult::Failed | RunResult::Running if retriable => FAILED,
        RunResult::Failed | RunResult::Running => USAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_documented() {
        let mut codes: Vec<u8> = TABLE.iter().map(|(c, _)| *c).collect();
        codes.dedup();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5]);
        let help = help_text();
        for (code, what) in TABLE {
            assert!(help.contains(&format!("  {code}  {what}")), "{help}");
        }
        // clap's usage error is the contract's 2.
        assert_eq!(
            i32::from(USAGE),
            clap::Error::new(clap::error::ErrorKind::InvalidValue).exit_code()
        );
    }
}
