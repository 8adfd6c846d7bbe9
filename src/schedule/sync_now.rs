//! Sync Now availability, the setup guide's rule.
//!
//! Sync Now is available when no run is active and either no manual run has started since the
//! last scheduled run started, or the last run failed (or was held). After a manual run it is
//! available again when the next scheduled run starts. While the schedule is suspended no
//! scheduled run starts, so there each slot time counts as a (virtual) scheduled start: Sync Now
//! unlocks once the next slot time passes and can never stay locked forever.
//!
//! Order of the checks: connection not ready, then a run active (or a scheduled run queued for a
//! free sync slot, [`sync_now_while_queued`]), then the one-per-scheduled-run rule. A manual run that starts at the same instant as a scheduled one counts as after it.
use jiff::Timestamp;

use super::rule::ScheduleRule;
use crate::api::RunResult;

/// What the controller knows, filled from the SyncSchedule's status and its RosterConnection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncNowInput {
    pub now: Timestamp,
    /// Whether the RosterConnection is Ready (a run could not succeed otherwise).
    pub connection_ready: bool,
    /// Whether a sync Job of this schedule is running (`status.active` is not empty).
    pub run_active: bool,
    /// When the latest `Scheduled` or `CatchUp` run started.
    pub last_scheduled_start: Option<Timestamp>,
    /// When the latest `Manual` run started.
    pub last_manual_start: Option<Timestamp>,
    /// The result of the latest run, whatever its trigger.
    pub last_run_result: Option<RunResult>,
    /// `spec.suspend`.
    pub suspended: bool,
}

/// Why Sync Now is (not) available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncNowReason {
    /// A request would start a run now.
    Available,
    /// The RosterConnection is not Ready; fix it first.
    ConnectionNotReady,
    /// A run is in progress; Sync Now is reconsidered when it finishes.
    RunActive,
    /// A scheduled run is due and waits for a free sync slot (the operator's
    /// `--max-concurrent-syncs`); it is the scheduled run, so Sync Now is reconsidered once it
    /// has run.
    RunQueued,
    /// A manual run already started since the last scheduled run (and did not fail).
    UsedSinceLastScheduledRun,
}

impl SyncNowReason {
    /// The reason as written in `status.syncNow.reason` and the `SyncNowAvailable` condition.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncNowReason::Available => "Available",
            SyncNowReason::ConnectionNotReady => "ConnectionNotReady",
            SyncNowReason::RunActive => "RunActive",
            SyncNowReason::RunQueued => "RunQueued",
            SyncNowReason::UsedSinceLastScheduledRun => "UsedSinceLastScheduledRun",
        }
    }
}

impl std::fmt::Display for SyncNowReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether Sync Now would start a run, why, and from when it will (when known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncNowAvailability {
    pub available: bool,
    pub reason: SyncNowReason,
    /// When Sync Now becomes available again: the next slot when it was used since the last
    /// scheduled run (the next scheduled start, or while suspended the next slot time); `None`
    /// when available or when it depends on something else (a run finishing, the connection).
    pub available_after: Option<Timestamp>,
}

impl SyncNowAvailability {
    fn available() -> SyncNowAvailability {
        SyncNowAvailability {
            available: true,
            reason: SyncNowReason::Available,
            available_after: None,
        }
    }

    fn blocked(reason: SyncNowReason, available_after: Option<Timestamp>) -> SyncNowAvailability {
        SyncNowAvailability {
            available: false,
            reason,
            available_after,
        }
    }
}

/// Sync Now while a scheduled run of the schedule waits for a free sync slot: not available (the
/// queued run is the scheduled run; it starts as soon as the cluster's cap allows), unless the
/// connection is not Ready, which is said first as always.
pub fn sync_now_while_queued(rule: &ScheduleRule, input: &SyncNowInput) -> SyncNowAvailability {
    let plain = sync_now_availability(rule, input);
    if plain.reason == SyncNowReason::ConnectionNotReady {
        return plain;
    }
    SyncNowAvailability::blocked(SyncNowReason::RunQueued, None)
}

/// Applies the rule (see the module docs) to `input`; `rule` gives the slots.
pub fn sync_now_availability(rule: &ScheduleRule, input: &SyncNowInput) -> SyncNowAvailability {
    if !input.connection_ready {
        return SyncNowAvailability::blocked(SyncNowReason::ConnectionNotReady, None);
    }
    if input.run_active {
        return SyncNowAvailability::blocked(SyncNowReason::RunActive, None);
    }
    let Some(manual) = input.last_manual_start else {
        return SyncNowAvailability::available();
    };
    if matches!(
        input.last_run_result,
        Some(RunResult::Failed | RunResult::Held)
    ) {
        return SyncNowAvailability::available();
    }
    // While suspended, a slot time that passed stands in for the scheduled start that did not happen.
    let virtual_start = if input.suspended {
        rule.latest_slot_at_or_before(input.now)
    } else {
        None
    };
    let last_scheduled = input.last_scheduled_start.max(virtual_start);
    if last_scheduled.is_some_and(|scheduled| manual < scheduled) {
        return SyncNowAvailability::available();
    }
    let next_slot = rule.next_slot_after(input.now.max(manual));
    SyncNowAvailability::blocked(SyncNowReason::UsedSinceLastScheduledRun, Some(next_slot))
}
