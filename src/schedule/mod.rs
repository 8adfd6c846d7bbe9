//! The schedule engine: pure schedule math for `SyncSchedule`, no I/O.
//!
//! - [`ScheduleRule`] is a validated `SyncScheduleSpec` (every mistake is a [`ScheduleError`]).
//! - Slots ([`ScheduleRule::next_slot_after`], [`ScheduleRule::latest_slot_at_or_before`]): Daily,
//!   Weekly or Monthly at the local time `at` in `timeZone`. A slot inside a spring-forward gap runs
//!   at the first instant after the gap; a slot inside a fall-back repeat runs once, at its first
//!   occurrence; a Daily schedule never has two slots on one local date.
//! - Jitter ([`jitter_offset`], [`ScheduleRule::with_jitter`]): each schedule's slots fire a fixed
//!   offset (a stable hash of `namespace/name`, up to `--slot-jitter-seconds` or
//!   `spec.slotJitterSeconds`) after the nominal time, never past the off-peak window's end or
//!   local midnight, so that a thousand schedules at 22:00 do not all start in one minute.
//! - [`OffPeakHours`]: off-peak hours, start inclusive, end exclusive, possibly wrapping midnight.
//! - [`decide`]: what to do at a moment given the last handled slot (run on time, catch up late
//!   within `startingDeadlineMinutes`, record missed slots), never a burst after an outage.
//! - [`sync_now_availability`]: the setup guide's Sync Now rule.
//! - [`preview`]: `rostersync schedule preview`, the only part that reads files and prints.
mod catchup;
mod jitter;
pub mod preview;
mod rule;
mod slots;
mod sync_now;
mod window;

pub use catchup::{
    DueRun, MAX_LISTED_MISSED, MissedSlots, ON_TIME_GRACE, SlotDecision, catch_up_allowed, decide,
};
pub use jitter::{
    DEFAULT_SLOT_JITTER_SECONDS, MAX_SLOT_JITTER, MAX_SLOT_JITTER_SECONDS, format_offset,
    jitter_offset,
};
pub use preview::ScheduleCommand;
pub use rule::{Cadence, ScheduleError, ScheduleRule, parse_hhmm};
pub use sync_now::{
    SyncNowAvailability, SyncNowInput, SyncNowReason, sync_now_availability, sync_now_while_queued,
};
pub use window::OffPeakHours;
