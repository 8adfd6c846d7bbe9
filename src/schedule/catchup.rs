//! What to do at a given moment: run the latest due slot, record missed ones, or wait.
//!
//! Due slots are those after the last handled slot, not before the anchor (when the schedule was
//! created or resumed) and not after `now`. Of them only the latest may run, and only if it is at
//! most `startingDeadlineMinutes` late; every other due slot is missed. So after an outage of any
//! length there is at most one late run, never a burst, and the missed slots are all accounted for.
//!
//! Choices made where Kubernetes CronJob semantics do not carry over:
//! - "On time" means at most [`ON_TIME_GRACE`] (one minute) late: reconcile loops and timers are
//!   never exact, and a slot started 30 s late is still the scheduled run (`Trigger::Scheduled`).
//!   Later but within the deadline (inclusive) it is `Trigger::CatchUp`.
//! - Missed slots: `total` counts all of them exactly; `listed` holds the most recent
//!   [`MAX_LISTED_MISSED`] (oldest first), enough for Events and history without unbounded memory.
//! - Off-peak: a Daily schedule runs only in its off-peak window (admission rejects an `at`
//!   outside it). A catch-up of a Daily slot that would start outside the window (the controller
//!   came back at peak time, still within `startingDeadlineMinutes`) is recorded as missed, not
//!   run at peak time ([`catch_up_allowed`]). Weekly and Monthly schedules have no window to keep.
//! - Suspended: nothing runs and nothing is missed (suspending is a decision, not a failure), but
//!   `handled_through` still advances past the slots that pass, so resuming never catches up on a
//!   slot from the suspension; `next_wake` is still the next slot, because Sync Now availability
//!   changes when a slot time passes during suspension.
use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};

use super::jitter::MAX_SLOT_JITTER;
use super::rule::{Cadence, ScheduleRule};
use crate::api::Trigger;

/// How late a slot may start and still count as on time (`Trigger::Scheduled`).
pub const ON_TIME_GRACE: SignedDuration = SignedDuration::from_mins(1);

/// At most this many missed slots are listed in a [`SlotDecision`] (all are counted).
pub const MAX_LISTED_MISSED: usize = 100;

/// A slot to run now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueRun {
    /// The slot (use it to name the Job, so that one slot can never run twice).
    pub slot: Timestamp,
    /// `Scheduled` if at most [`ON_TIME_GRACE`] late, else `CatchUp`.
    pub trigger: Trigger,
    /// How late the run starts (`now - slot`, never negative).
    pub late_by: SignedDuration,
}

/// Slots that passed without a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MissedSlots {
    /// The most recent missed slots, oldest first, at most [`MAX_LISTED_MISSED`].
    pub listed: Vec<Timestamp>,
    /// How many slots were missed in all (at least `listed.len()`).
    pub total: u64,
}

impl MissedSlots {
    /// Whether no slot was missed.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// What the controller should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotDecision {
    /// The slot to run now, if any (at most one, ever).
    pub run: Option<DueRun>,
    /// Slots to record as missed.
    pub missed: MissedSlots,
    /// The latest handled slot once this decision is carried out (store it as
    /// `status.lastScheduleTime` and pass it back next time); unchanged when nothing was due.
    pub handled_through: Option<Timestamp>,
    /// When to look again: the next slot after `now` (not before the anchor).
    pub next_wake: Timestamp,
    /// A slot that was due for a catch-up, recorded as missed instead because `now` is outside
    /// the schedule's off-peak window (it is also in `missed`).
    pub skipped_at_peak: Option<Timestamp>,
}

/// Whether a late (catch-up) run of `rule` may start at `now`: a Daily schedule's only inside its
/// off-peak window, others always.
pub fn catch_up_allowed(rule: &ScheduleRule, now: Timestamp) -> bool {
    rule.cadence() != Cadence::Daily || rule.is_off_peak_at(now)
}

/// Decides what to do at `now`.
///
/// - `last_handled_slot`: the latest slot already run or recorded as missed (`None` at first).
/// - `anchor`: when the schedule was created or resumed; slots before it never count.
/// - `suspended`: `spec.suspend`.
pub fn decide(
    rule: &ScheduleRule,
    now: Timestamp,
    last_handled_slot: Option<Timestamp>,
    anchor: Timestamp,
    suspended: bool,
) -> SlotDecision {
    // Slots strictly after `floor` are due; `anchor - 1ns` makes a slot exactly at the anchor count.
    let before_anchor = anchor
        .checked_sub(SignedDuration::from_nanos(1))
        .unwrap_or(anchor);
    // A slot less than MAX_SLOT_JITTER after the last handled one is that same slot seen with
    // another jitter (the operator's --slot-jitter-seconds or spec.slotJitterSeconds changed):
    // never run it twice. Two slots of a schedule are always at least 23 hours apart.
    let floor = last_handled_slot.map_or(before_anchor, |handled| {
        handled
            .checked_add(MAX_SLOT_JITTER)
            .unwrap_or(handled)
            .max(before_anchor)
    });
    let next_wake = rule.next_slot_after(floor.max(now));
    let latest_due = rule
        .latest_slot_at_or_before(now)
        .filter(|&slot| slot > floor);

    let Some(latest) = latest_due else {
        return SlotDecision {
            run: None,
            missed: MissedSlots::default(),
            handled_through: last_handled_slot,
            next_wake,
            skipped_at_peak: None,
        };
    };
    if suspended {
        return SlotDecision {
            run: None,
            missed: MissedSlots::default(),
            handled_through: Some(latest),
            next_wake,
            skipped_at_peak: None,
        };
    }

    let late_by = now.duration_since(latest);
    let mut skipped_at_peak = None;
    let trigger = if late_by <= ON_TIME_GRACE {
        Some(Trigger::Scheduled)
    } else if late_by <= rule.starting_deadline() {
        if catch_up_allowed(rule, now) {
            Some(Trigger::CatchUp)
        } else {
            skipped_at_peak = Some(latest);
            None
        }
    } else {
        None
    };
    let run = trigger.map(|trigger| DueRun {
        slot: latest,
        trigger,
        late_by,
    });
    // Every due slot is missed except the one that runs.
    let missed = missed_slots(
        rule.slots_after(floor)
            .take_while(|&slot| slot < latest || (slot == latest && run.is_none())),
    );
    SlotDecision {
        run,
        missed,
        handled_through: Some(latest),
        next_wake,
        skipped_at_peak,
    }
}

/// Counts all the slots, and keeps the most recent [`MAX_LISTED_MISSED`].
fn missed_slots(slots: impl Iterator<Item = Timestamp>) -> MissedSlots {
    let mut listed = VecDeque::with_capacity(MAX_LISTED_MISSED);
    let mut total = 0u64;
    for slot in slots {
        total += 1;
        if listed.len() == MAX_LISTED_MISSED {
            listed.pop_front();
        }
        listed.push_back(slot);
    }
    MissedSlots {
        listed: listed.into(),
        total,
    }
}
