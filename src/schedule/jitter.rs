//! Staggering of same-minute slots: a fixed, per-schedule delay after the nominal slot.
//!
//! Every district tends to pick the same time (22:00), so a thousand schedules would fire in the
//! same minute. Each schedule gets an offset in `[0, max]` seconds chosen by a stable hash of its
//! identity (`namespace/name`): the same schedule always fires at the same offset, across restarts,
//! replicas and versions, and different schedules spread evenly over the jitter window.
//!
//! The offset is elapsed time added to the nominal slot instant (after the DST rules of
//! [`super::slots`] placed it), and it is cut short so that the effective slot
//! - stays before the end of the off-peak window that contains the nominal slot (end exclusive),
//! - stays on the nominal slot's local date (before the next local midnight),
//!
//! so jitter never moves a slot outside its window, onto another day, or past another slot. A
//! slot one minute before the window's end gets at most 59 s of jitter. Sync Now is never delayed.
//! Being elapsed time, a jittered slot that crosses a fall-back (the clock set back an hour) reads
//! an earlier wall-clock time than its nominal slot, possibly before the window's start (02:59
//! AEDT plus 66 s reads 02:00:05 AEST): it is still inside the window in elapsed time, and on
//! the same local date.
use jiff::{SignedDuration, Timestamp};

/// The largest jitter a schedule may ask for (`spec.slotJitterSeconds`) or the operator may set
/// (`--slot-jitter-seconds`): one hour. Slots of one schedule are at least 23 hours apart (Daily
/// across a DST change), so a slot is never confused with its neighbour even when the jitter
/// changes (see [`super::decide`]).
pub const MAX_SLOT_JITTER_SECONDS: u32 = 3600;

/// The operator's default jitter window (`--slot-jitter-seconds`): five minutes.
pub const DEFAULT_SLOT_JITTER_SECONDS: u32 = 300;

/// [`MAX_SLOT_JITTER_SECONDS`] as a duration.
pub const MAX_SLOT_JITTER: SignedDuration =
    SignedDuration::from_secs(MAX_SLOT_JITTER_SECONDS as i64);

/// The offset of the schedule `identity` (`namespace/name`) within a jitter window of
/// `max_seconds` (capped at [`MAX_SLOT_JITTER_SECONDS`]): a whole number of seconds in
/// `[0, max_seconds]`, fixed by a stable hash (FNV-1a) of the identity. `0` turns jitter off.
pub fn jitter_offset(identity: &str, max_seconds: u32) -> SignedDuration {
    let max = u64::from(max_seconds.min(MAX_SLOT_JITTER_SECONDS));
    if max == 0 {
        return SignedDuration::ZERO;
    }
    // Mix the high bits in: FNV-1a's low bits vary little for names that differ in the last byte.
    let h = crate::controller::names::fnv1a64(identity);
    let mixed = h ^ (h >> 29) ^ (h >> 47);
    let seconds = mixed % (max + 1);
    SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(0))
}

/// The effective jitter of one slot: `offset`, cut so that `slot + jitter < limit` (the earlier of
/// the window's end and the next local midnight), never negative.
pub(crate) fn clamp_offset(
    slot: Timestamp,
    offset: SignedDuration,
    limit: Option<Timestamp>,
) -> SignedDuration {
    let Some(limit) = limit else {
        return offset.max(SignedDuration::ZERO);
    };
    // At most one second before the limit (jitter is in whole seconds).
    let room = limit
        .duration_since(slot)
        .checked_sub(SignedDuration::from_secs(1))
        .unwrap_or(SignedDuration::ZERO)
        .max(SignedDuration::ZERO);
    offset.max(SignedDuration::ZERO).min(room)
}

/// An offset as people read it next to a time: `+2m37s`, `+45s`, `+1h`, `+0s`.
pub fn format_offset(offset: SignedDuration) -> String {
    let total = offset.as_secs().max(0);
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    let mut out = String::from("+");
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || total == 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn offsets_are_stable_and_bounded() {
        // Pinned values: a change of the hash would move every district's slot.
        assert_eq!(jitter_offset("district-a/nightly", 300).as_secs(), 183);
        assert_eq!(jitter_offset("district-a/nightly", 600).as_secs(), 552);
        assert_eq!(jitter_offset("springfield/nightly", 3600).as_secs(), 3202);
        for max in [1u32, 59, 60, 300, 3600] {
            for i in 0..500 {
                let o = jitter_offset(&format!("district-{i}/nightly"), max);
                assert!(
                    o >= SignedDuration::ZERO && o.as_secs() <= i64::from(max),
                    "{max} {o:?}"
                );
            }
        }
        assert_eq!(jitter_offset("a/b", 0), SignedDuration::ZERO);
        // Above the maximum: capped.
        assert!(jitter_offset("a/b", u32::MAX).as_secs() <= i64::from(MAX_SLOT_JITTER_SECONDS));
    }

    #[test]
    fn offsets_spread_over_the_window() {
        // 1,000 schedules over 300 s: every minute of the window gets a fair share.
        let mut per_minute = [0u32; 6];
        for i in 0..1000 {
            let o = jitter_offset(&format!("district-{i}/sync"), 300).as_secs();
            per_minute[usize::try_from(o / 60).unwrap_or(0)] += 1;
        }
        // Minutes 0-4 are whole minutes (60 s each), the 6th holds only second 300.
        for (minute, n) in per_minute.iter().take(5).enumerate() {
            assert!(
                (140..=260).contains(n),
                "minute {minute}: {n} of 1000 ({per_minute:?})"
            );
        }
        // Neighbouring names do not land on neighbouring seconds.
        let a = jitter_offset("district-1/sync", 300).as_secs();
        let b = jitter_offset("district-2/sync", 300).as_secs();
        assert_ne!(a, b);
    }

    #[test]
    fn clamp_table() {
        let slot = ts("2026-03-01T22:00:00Z");
        let s = SignedDuration::from_secs;
        for (offset, limit, want) in [
            // No limit: the offset as is.
            (s(157), None, s(157)),
            // Far limit: unchanged.
            (s(157), Some("2026-03-02T00:00:00Z"), s(157)),
            // Limit inside the offset: one second before it.
            (s(157), Some("2026-03-01T22:01:00Z"), s(59)),
            // Limit right after the slot: no jitter.
            (s(157), Some("2026-03-01T22:00:01Z"), s(0)),
            (s(157), Some("2026-03-01T22:00:00Z"), s(0)),
            // A limit before the slot (cannot happen) gives no jitter, never a negative one.
            (s(157), Some("2026-03-01T21:00:00Z"), s(0)),
            (s(0), Some("2026-03-02T00:00:00Z"), s(0)),
            (s(-5), None, s(0)),
        ] {
            assert_eq!(
                clamp_offset(slot, offset, limit.map(ts)),
                want,
                "{offset:?} {limit:?}"
            );
        }
    }

    #[test]
    fn formats_offsets() {
        let s = SignedDuration::from_secs;
        for (secs, want) in [
            (0, "+0s"),
            (45, "+45s"),
            (60, "+1m"),
            (157, "+2m37s"),
            (3600, "+1h"),
            (3661, "+1h1m1s"),
            (-3, "+0s"),
        ] {
            assert_eq!(format_offset(s(secs)), want);
        }
    }
}
