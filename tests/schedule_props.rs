//! Property tests of the schedule engine over random zones (many with DST, some odd ones), times,
//! days and instants in 2020-2035, checked against a brute-force oracle and the definitions.
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use rostersync::api::{
    DayOfWeek, Frequency, LocalObjectReference, OffPeakWindow, RunResult, SyncScheduleSpec, Trigger,
};
use rostersync::schedule::{
    Cadence, MAX_LISTED_MISSED, ON_TIME_GRACE, ScheduleRule, SyncNowInput, SyncNowReason, decide,
    jitter_offset, sync_now_availability,
};

const ZONES: &[&str] = &[
    "America/Chicago",
    "Europe/Berlin",
    "Australia/Lord_Howe", // 30-minute DST
    "Asia/Tokyo",
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "America/Santiago", // transitions at midnight
    "America/Havana",   // transitions at midnight
    "Pacific/Chatham",  // +12:45 / +13:45
    "Asia/Kolkata",
    "Africa/Casablanca", // DST suspended during Ramadan
    "Europe/Dublin",     // negative DST in the tz database
    "America/St_Johns",
    "Pacific/Apia", // DST abolished in 2021
    "America/Nuuk",
    "Asia/Tehran",
];

const DAYS: [DayOfWeek; 7] = [
    DayOfWeek::Monday,
    DayOfWeek::Tuesday,
    DayOfWeek::Wednesday,
    DayOfWeek::Thursday,
    DayOfWeek::Friday,
    DayOfWeek::Saturday,
    DayOfWeek::Sunday,
];

const NS: SignedDuration = SignedDuration::from_nanos(1);

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// What a generated rule is made of (the zone and day fields are indexes/values to pick from).
#[derive(Clone, Debug)]
struct Params {
    zone: usize,
    kind: u8,
    at: u32,
    window_back: u32,
    window_len: u32,
    dow: usize,
    dom: i32,
    deadline: i32,
}

fn params(kinds: std::ops::Range<u8>) -> impl Strategy<Value = Params> {
    (
        0..ZONES.len(),
        kinds,
        0u32..1440,
        0u32..1440,
        1u32..1440,
        0usize..7,
        1i32..=31,
        1i32..600,
    )
        .prop_map(
            |(zone, kind, at, window_back, window_len, dow, dom, deadline)| Params {
                zone,
                kind,
                at,
                window_back,
                window_len,
                dow,
                dom,
                deadline,
            },
        )
}

/// A valid rule: Daily with `at` inside a random window, or Weekly/Monthly at any time.
fn build(p: &Params) -> ScheduleRule {
    let (frequency, window) = match p.kind {
        0 => {
            let start = (p.at + 1440 - p.window_back % p.window_len) % 1440;
            let end = (start + p.window_len) % 1440;
            (
                Frequency::Daily,
                OffPeakWindow {
                    start: hhmm(start),
                    end: hhmm(end),
                },
            )
        }
        1 => (Frequency::Weekly, OffPeakWindow::default()),
        _ => (Frequency::Monthly, OffPeakWindow::default()),
    };
    let spec = SyncScheduleSpec {
        connection_ref: LocalObjectReference {
            name: "district".into(),
        },
        suspend: false,
        frequency,
        at: hhmm(p.at),
        day_of_week: (frequency == Frequency::Weekly).then_some(DAYS[p.dow]),
        day_of_month: (frequency == Frequency::Monthly).then_some(p.dom),
        time_zone: ZONES[p.zone].into(),
        off_peak_window: window,
        starting_deadline_minutes: p.deadline,
        slot_jitter_seconds: None,
        job: Default::default(),
        history: Default::default(),
    };
    ScheduleRule::from_spec(&spec).expect("generated specs are valid")
}

/// A rule and an instant. Half the cases are focused on a DST transition (random instants rarely
/// meet one): `at` within two hours of the transition's local time, on the transition's weekday or
/// day of month, and the instant up to 40 days before it.
fn cases() -> impl Strategy<Value = (ScheduleRule, Timestamp)> {
    cases_of(0..3)
}

/// Like [`cases`], Daily rules only.
fn daily_cases() -> impl Strategy<Value = (ScheduleRule, Timestamp)> {
    cases_of(0..1)
}

fn cases_of(kinds: std::ops::Range<u8>) -> impl Strategy<Value = (ScheduleRule, Timestamp)> {
    (
        params(kinds),
        instants(),
        any::<bool>(),
        -120i32..=120,
        0i64..(40 * 24 * 60),
    )
        .prop_map(|(mut p, t, focus, shift_mins, back_mins)| {
            let tz = TimeZone::get(ZONES[p.zone]).expect("known zone");
            let Some(transition) = tz.following(t).next().filter(|_| focus) else {
                return (build(&p), t);
            };
            let transition = transition.timestamp();
            // The local time just before the transition: the start of a gap, the end of a fold.
            let edge = tz.to_datetime(transition - NS);
            let edge_mins = i32::from(edge.hour()) * 60 + i32::from(edge.minute()) + 1;
            p.at = u32::try_from((edge_mins + shift_mins).rem_euclid(1440)).expect("in a day");
            p.dow = DAYS
                .iter()
                .position(|d| d.to_jiff() == edge.weekday())
                .expect("a weekday");
            p.dom = i32::from(edge.day());
            (build(&p), transition - SignedDuration::from_mins(back_mins))
        })
}

fn instants() -> impl Strategy<Value = Timestamp> {
    (1_577_836_800i64..2_082_758_400, 0i32..1_000_000_000).prop_map(|(secs, nanos)| {
        Timestamp::new(secs, if nanos % 3 == 0 { 0 } else { nanos }).expect("in range")
    })
}

fn local(rule: &ScheduleRule, t: Timestamp) -> jiff::civil::DateTime {
    rule.time_zone().to_datetime(t)
}

fn is_candidate(rule: &ScheduleRule, d: Date) -> bool {
    match rule.cadence() {
        Cadence::Daily => true,
        Cadence::Weekly(day) => d.weekday() == day,
        Cadence::Monthly(day) => {
            i16::from(d.day()) == i16::from(day).min(i16::from(d.days_in_month()))
        }
    }
}

/// The slot of a date, straight from the definition: the earliest instant reading `at` on that
/// date, or, when `at` falls in a gap, the transition that ends the gap.
fn oracle_slot(rule: &ScheduleRule, d: Date) -> Option<Timestamp> {
    if !is_candidate(rule, d) {
        return None;
    }
    let tz: &TimeZone = rule.time_zone();
    let dt = d.to_datetime(rule.at());
    let amb = tz.to_ambiguous_timestamp(dt);
    let slot = match amb.offset() {
        AmbiguousOffset::Gap { .. } => {
            let compatible = amb.compatible().ok()?; // after the transition
            tz.preceding(compatible + NS).next()?.timestamp()
        }
        _ => amb.earlier().ok()?,
    };
    if rule.cadence() == Cadence::Daily && local(rule, slot).date() != d {
        return None;
    }
    Some(slot)
}

fn oracle_slots_around(rule: &ScheduleRule, t: Timestamp) -> Vec<Timestamp> {
    let center = local(rule, t).date();
    (-70i64..=70)
        .filter_map(|k| center.checked_add(jiff::Span::new().days(k)).ok())
        .filter_map(|d| oracle_slot(rule, d))
        .collect()
}

/// Whether `at` on the slot's date (or the day before, for a gap across midnight) does not exist
/// and the slot is the first instant after that gap.
fn moved_by_gap(rule: &ScheduleRule, slot: Timestamp) -> bool {
    let here = local(rule, slot);
    let before = local(rule, slot - NS);
    [Some(here.date()), here.date().yesterday().ok()]
        .into_iter()
        .flatten()
        .any(|d| {
            let dt = d.to_datetime(rule.at());
            is_candidate(rule, d) && before < dt && dt < here
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn slots_match_a_brute_force_oracle((rule, t) in cases()) {
        let oracle = oracle_slots_around(&rule, t);
        let next = oracle.iter().copied().filter(|&s| s > t).min();
        let latest = oracle.iter().copied().filter(|&s| s <= t).max();
        prop_assert_eq!(Some(rule.next_slot_after(t)), next);
        prop_assert_eq!(rule.latest_slot_at_or_before(t), latest);
    }

    #[test]
    fn slots_strictly_increase_with_none_in_between((rule, t) in cases()) {
        let slots: Vec<Timestamp> = rule.slots_after(t).take(8).collect();
        prop_assert_eq!(slots.len(), 8);
        prop_assert!(slots[0] > t);
        for pair in slots.windows(2) {
            prop_assert!(pair[0] < pair[1]);
            prop_assert_eq!(rule.latest_slot_at_or_before(pair[1] - NS), Some(pair[0]));
        }
    }

    #[test]
    fn latest_and_next_agree((rule, t) in cases()) {
        let next = rule.next_slot_after(t);
        let latest = rule.latest_slot_at_or_before(t).expect("slots exist before 2035");
        prop_assert!(latest <= t && t < next);
        prop_assert_eq!(rule.latest_slot_at_or_before(next), Some(next));
        prop_assert!(rule.next_slot_after(latest) > t);
        // No slot strictly between them.
        prop_assert_eq!(rule.next_slot_after(latest), next);
        prop_assert_eq!(rule.latest_slot_at_or_before(next - NS), Some(latest));
    }

    #[test]
    fn local_time_is_at_except_right_after_a_gap((rule, t) in cases()) {
        for slot in rule.slots_after(t).take(4) {
            let here = local(&rule, slot);
            if here.time() == rule.at() {
                // In a fold, the first occurrence.
                let first = rule.time_zone().to_ambiguous_timestamp(here).earlier().expect("resolvable");
                prop_assert_eq!(slot, first);
                prop_assert!(is_candidate(&rule, here.date()));
            } else {
                prop_assert!(moved_by_gap(&rule, slot), "slot {} reads {} but at is {}", slot, here, rule.at());
            }
        }
    }

    #[test]
    fn daily_slots_are_off_peak_and_one_per_local_date((rule, t) in daily_cases()) {
        prop_assert_eq!(rule.cadence(), Cadence::Daily);
        let window = rule.off_peak_window();
        prop_assert!(window.contains(rule.at()));
        let slots: Vec<Timestamp> = rule.slots_after(t).take(10).collect();
        for &slot in &slots {
            let time: Time = local(&rule, slot).time();
            // Off-peak by the wall clock, or the (off-peak) `at` slot moved just past a DST gap.
            prop_assert!(window.contains(time) || moved_by_gap(&rule, slot), "slot {} at {}", slot, time);
        }
        for pair in slots.windows(2) {
            prop_assert!(local(&rule, pair[0]).date() < local(&rule, pair[1]).date());
        }
    }

    #[test]
    fn jitter_delays_each_slot_within_its_window_and_day(
        (rule, t) in cases(),
        max in 0u32..=3600,
        name in "[a-z]{1,8}/[a-z]{1,8}",
    ) {
        let offset = jitter_offset(&name, max);
        prop_assert!(offset.as_secs() >= 0 && offset.as_secs() <= i64::from(max));
        let jittered = rule.clone().with_jitter(offset);
        let nominal: Vec<Timestamp> = rule.slots_after(t).take(6).collect();
        // Each nominal slot's jittered one is the first jittered slot at or after it.
        let effective: Vec<Timestamp> =
            nominal.iter().map(|&n| jittered.next_slot_after(n - NS)).collect();
        for (&n, &e) in nominal.iter().zip(&effective) {
            // Later by at most the offset, never earlier.
            prop_assert!(n <= e && e.duration_since(n) <= offset, "{} -> {}", n, e);
            prop_assert_eq!(jittered.slot_offset(e), e.duration_since(n));
            // Same local date; inside the window when the nominal slot is.
            prop_assert_eq!(local(&rule, n).date(), local(&rule, e).date());
            let window = rule.off_peak_window();
            if window.contains(local(&rule, n).time()) && !moved_by_gap(&rule, n) {
                // Jitter is elapsed time: across a fold (the clock set back between the nominal
                // slot and the effective one: 02:59 AEDT + 66 s reads 02:00:05 AEST) the wall
                // clock can read a time before the window's start; read on the nominal slot's
                // clock, the effective slot is still inside the window.
                let tz = rule.time_zone();
                let folded = tz.to_offset(e) < tz.to_offset(n);
                let on_nominal_clock = e.to_zoned(TimeZone::fixed(tz.to_offset(n))).time();
                prop_assert!(
                    window.contains(local(&rule, e).time())
                        || (folded && window.contains(on_nominal_clock)),
                    "{} -> {} leaves {}", n, e, window
                );
            }
        }
        for pair in effective.windows(2) {
            prop_assert!(pair[0] < pair[1]);
        }
        // The same name always gets the same offset.
        prop_assert_eq!(jitter_offset(&name, max), offset);
    }

    #[test]
    fn decide_runs_at_most_one_slot_and_accounts_for_all(
        (rule, t0) in cases(),
        outage_mins in 0i64..(400 * 24 * 60),
        anchor_back_mins in 0i64..(60 * 24 * 60),
    ) {
        let last = rule.latest_slot_at_or_before(t0);
        let anchor = t0 - SignedDuration::from_mins(anchor_back_mins);
        let now = t0 + SignedDuration::from_mins(outage_mins);
        let d = decide(&rule, now, last, anchor, false);
        let floor = last.map_or(anchor - NS, |l| l.max(anchor - NS));
        let due: Vec<Timestamp> = rule.slots_after(floor).take_while(|&s| s <= now).collect();

        let ran = usize::from(d.run.is_some());
        prop_assert_eq!(d.missed.total, (due.len() - ran) as u64);
        prop_assert_eq!(d.missed.listed.len(), (due.len() - ran).min(MAX_LISTED_MISSED));
        prop_assert!(d.missed.listed.windows(2).all(|w| w[0] < w[1]));
        prop_assert_eq!(d.handled_through, due.last().copied().or(last));
        prop_assert!(d.next_wake > now);
        if let Some(run) = d.run {
            prop_assert_eq!(Some(run.slot), due.last().copied());
            prop_assert_eq!(run.late_by, now.duration_since(run.slot));
            prop_assert!(run.late_by <= rule.starting_deadline());
            prop_assert_eq!(run.trigger == Trigger::Scheduled, run.late_by <= ON_TIME_GRACE);
            prop_assert!(!d.missed.listed.contains(&run.slot));
            // A catch-up of a Daily schedule only runs inside its off-peak window.
            prop_assert!(
                run.trigger == Trigger::Scheduled || rostersync::schedule::catch_up_allowed(&rule, now)
            );
            prop_assert_eq!(d.skipped_at_peak, None);
        } else if let Some(&latest) = due.last() {
            // Late past the deadline, or a catch-up that would start at peak time.
            let late = now.duration_since(latest);
            prop_assert!(
                late > rule.starting_deadline()
                    || (late > ON_TIME_GRACE && !rostersync::schedule::catch_up_allowed(&rule, now))
            );
            prop_assert_eq!(
                d.skipped_at_peak.is_some(),
                late > ON_TIME_GRACE && late <= rule.starting_deadline()
            );
            prop_assert_eq!(d.missed.listed.last(), Some(&latest));
        }
        // Carrying the decision out and deciding again never starts a second run.
        let again = decide(&rule, now, d.handled_through, anchor, false);
        prop_assert!(again.run.is_none() && again.missed.is_empty());
        // Suspended: nothing runs, nothing is missed.
        let suspended = decide(&rule, now, last, anchor, true);
        prop_assert!(suspended.run.is_none() && suspended.missed.is_empty());
        prop_assert_eq!(suspended.handled_through, d.handled_through);
    }

    #[test]
    fn sync_now_never_locks_forever(
        (rule, now) in cases(),
        scheduled_back_mins in proptest::option::of(0i64..(90 * 24 * 60)),
        manual_back_mins in proptest::option::of(0i64..(90 * 24 * 60)),
        result in proptest::option::of(0usize..4),
        suspended in any::<bool>(),
    ) {
        let input = SyncNowInput {
            now,
            connection_ready: true,
            run_active: false,
            last_scheduled_start: scheduled_back_mins.map(|m| now - SignedDuration::from_mins(m)),
            last_manual_start: manual_back_mins.map(|m| now - SignedDuration::from_mins(m)),
            last_run_result: result.map(|i| [RunResult::Running, RunResult::Succeeded, RunResult::Failed, RunResult::Held][i]),
            suspended,
        };
        let a = sync_now_availability(&rule, &input);
        prop_assert_eq!(a.available, a.reason == SyncNowReason::Available);
        if a.available {
            prop_assert_eq!(a.available_after, None);
            return Ok(());
        }
        prop_assert_eq!(a.reason, SyncNowReason::UsedSinceLastScheduledRun);
        let after = a.available_after.expect("known when used");
        prop_assert!(after > now);
        prop_assert_eq!(after, rule.next_slot_after(now));
        let later = if suspended {
            SyncNowInput { now: after, ..input }
        } else {
            let started = after + SignedDuration::from_secs(3);
            SyncNowInput { now: started + SignedDuration::from_mins(30), last_scheduled_start: Some(started), ..input }
        };
        prop_assert_eq!(sync_now_availability(&rule, &later).reason, SyncNowReason::Available);
    }
}

#[test]
fn zone_list_is_known_to_the_bundled_database() {
    for zone in ZONES {
        assert!(TimeZone::get(zone).is_ok(), "{zone}");
    }
    // The oracle's weekday mapping agrees with the API's.
    assert_eq!(DayOfWeek::Sunday.to_jiff(), Weekday::Sunday);
}
