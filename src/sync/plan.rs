//! Pure planning rules of a sync (no I/O): which sections are kept, how a grade is derived from a
//! birth date, name normalization, the journey of new children, and the removal guard.
use jiff::civil::Date;

use super::model::{ActiveBefore, Counts};
use crate::api::{Grade, JourneyPolicySpec};

/// Whether a section is synced.
///
/// A section with a grade is kept when that grade is shared. A section without a grade (Clever
/// allows it) is kept only when its school serves shared grades exclusively: every grade from the
/// school's `low_grade` to its `high_grade` is in the shared set (an early-learning center, say).
/// That keeps a preschool's ungraded sections without pulling in every ungraded section of a
/// K-12 school.
pub fn section_kept(
    section_grade: Option<Grade>,
    school_range: Option<(Grade, Grade)>,
    shared: &[Grade],
) -> bool {
    match section_grade {
        Some(grade) => shared.contains(&grade),
        None => match school_range {
            Some((low, high)) => school_serves_only(low, high, shared),
            None => false,
        },
    }
}

fn school_serves_only(low: Grade, high: Grade, shared: &[Grade]) -> bool {
    // Ungraded/Other/PostGraduate are not part of an ordered range.
    let ordered = |g: Grade| Grade::ALL[..18].contains(&g);
    if !ordered(low) || !ordered(high) || low > high {
        return false;
    }
    Grade::ALL
        .iter()
        .filter(|g| **g >= low && **g <= high)
        .all(|g| shared.contains(g))
}

/// A `MM-DD` school-year cutoff.
pub fn parse_cutoff(cutoff: &str) -> Option<(i8, i8)> {
    let (m, d) = cutoff.split_once('-')?;
    let (m, d) = (m.parse::<i8>().ok()?, d.parse::<i8>().ok()?);
    // 2024 is a leap year: accepts 02-29.
    Date::new(2024, m, d).ok().map(|_| (m, d))
}

/// The first year of the school year `today` falls in (school years start on August 1, the
/// product's default archive date): 2025 for 2025-08-01 up to 2026-07-31.
pub fn school_year_start(today: Date) -> i16 {
    if today.month() >= 8 {
        today.year()
    } else {
        today.year() - 1
    }
}

/// The grade a child born on `dob` is in during the school year of `today`, from the age reached
/// the day before the cutoff of that school year (a child born on or after the cutoff date starts a
/// year later): under 3 InfantToddler, 3 Preschool, 4 PreKindergarten, 5 Kindergarten, 6 grade 1,
/// up to 18 grade 13. `None` for a birth date in the future or an age over 18.
pub fn grade_from_dob(dob: Date, cutoff: (i8, i8), today: Date) -> Option<Grade> {
    let year = school_year_start(today);
    // The cutoff's day within the school year's start year; 02-29 falls back to 02-28.
    let cutoff_day = Date::new(year, cutoff.0, cutoff.1)
        .or_else(|_| Date::new(year, cutoff.0, cutoff.1 - 1))
        .ok()?;
    let reference = cutoff_day.yesterday().ok()?;
    if dob > reference {
        return None;
    }
    let mut age = i32::from(reference.year()) - i32::from(dob.year());
    if (reference.month(), reference.day()) < (dob.month(), dob.day()) {
        age -= 1;
    }
    let grade = match age {
        ..=2 => Grade::InfantToddler,
        3 => Grade::Preschool,
        4 => Grade::PreKindergarten,
        5 => Grade::Kindergarten,
        6..=18 => Grade::ALL[(age as usize) - 6 + 5],
        _ => return None,
    };
    Some(grade)
}

/// A name as stored: trimmed, inner whitespace collapsed to one space; `None` when blank.
/// (Matching additionally lower-cases, in SQL: `rs_name_key`.)
pub fn normalize_name(name: Option<&str>) -> Option<String> {
    let joined = name?.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        None
    } else {
        Some(joined)
    }
}

/// The journey new children get: the policy's `newChildJourney` when it is licensed: by the
/// operator (`operator_licensed`, the `product_licenses` table) and listed in the policy's
/// `licensedProducts`. An empty operator list means not configured: the policy's list alone
/// decides (as before the operator held the licenses). `Err` carries the unlicensed journey's name
/// (new children then get none, and the run reports it).
pub fn new_child_journey(
    policy: Option<&JourneyPolicySpec>,
    operator_licensed: &[String],
) -> Result<Option<String>, String> {
    match policy {
        None => Ok(None),
        Some(p)
            if p.licensed_products
                .iter()
                .any(|l| l == &p.new_child_journey)
                && (operator_licensed.is_empty()
                    || operator_licensed.contains(&p.new_child_journey)) =>
        {
            Ok(Some(p.new_child_journey.clone()))
        }
        Some(p) => Err(p.new_child_journey.clone()),
    }
}

/// Why the removal guard holds a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardTrip {
    pub entity: &'static str,
    pub removals: u64,
    pub active: u64,
    pub percent: u8,
}

impl std::fmt::Display for GuardTrip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the run would remove {} of {} active {} (more than the removal guard's {}%); nothing was applied: \
             review the roster in Clever, then approve the removals once (--approve-removals, or the \
             rostersync.io/approve-removals annotation)",
            self.removals, self.active, self.entity, self.percent
        )
    }
}

/// The removal guard: the first entity whose removals exceed `percent` of its records that were
/// active before the run. Nothing is removed without `allow_removal`, so nothing trips then.
pub fn removal_guard(
    counts: &Counts,
    before: &ActiveBefore,
    percent: u8,
    allow_removal: bool,
) -> Option<GuardTrip> {
    if !allow_removal {
        return None;
    }
    let actives = [
        before.schools,
        before.classrooms,
        before.educators,
        before.children,
        before.enrollments,
    ];
    counts
        .entities()
        .into_iter()
        .zip(actives)
        .find_map(|((entity, c), active)| {
            let removals = c.removals();
            (removals > 0 && u128::from(removals) * 100 > u128::from(percent) * u128::from(active))
                .then_some(GuardTrip {
                    entity,
                    removals,
                    active,
                    percent,
                })
        })
}

/// Records an approval tolerates above what the held run reported, per entity: roster churn between
/// the hold and the approval (a child leaving in the meantime) is fine, a different roster is not.
/// `max(2, 1 % of the held run's removals, rounded up)`.
pub fn approval_tolerance(held_removals: u64) -> u64 {
    held_removals.div_ceil(100).max(2)
}

/// An approval (`--approve-removals`) that does not lift the guard, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalRefused {
    /// No held run on record to compare with (none, or the last one was followed by a successful
    /// run): the guard applies as without an approval.
    NoHeldRun(GuardTrip),
    /// The plan removes more of `entity` than the held run did, beyond the tolerance.
    Exceeds {
        held_run_id: String,
        entity: &'static str,
        held: u64,
        now: u64,
        tolerance: u64,
    },
}

impl std::fmt::Display for ApprovalRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApprovalRefused::NoHeldRun(trip) => write!(
                f,
                "the approval was not applied: there is no held run on record to compare it with. {trip}"
            ),
            ApprovalRefused::Exceeds {
                held_run_id,
                entity,
                held,
                now,
                tolerance,
            } => write!(
                f,
                "the approval was not applied: the held run {held_run_id} would have removed {held} {entity}, \
                 this run would remove {now} (more than {tolerance} above what was approved); nothing was \
                 applied: review the roster in Clever, then approve this run's removals if they are intended"
            ),
        }
    }
}

/// The removals a held run reported, as an approval is weighed against them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldRemovals {
    pub run_id: String,
    pub counts: Counts,
}

/// Whether an approval lifts the guard that `trip` (the plain guard's verdict) would apply.
///
/// - no trip: nothing to lift, the run applies (`Ok`), approved or not;
/// - a trip without approval: held as usual (`Err(None)` — the caller reports `trip`);
/// - a trip with approval and no held run on record: held, the approval not applied;
/// - a trip with approval: lifted only if, for every entity, the removals now do not exceed the
///   held run's by more than [`approval_tolerance`]; otherwise held again, with both figures.
pub fn approval_lifts_guard(
    trip: Option<&GuardTrip>,
    approve: bool,
    held: Option<&HeldRemovals>,
    now: &Counts,
) -> Result<(), Option<ApprovalRefused>> {
    let Some(trip) = trip else {
        return Ok(());
    };
    if !approve {
        return Err(None);
    }
    let Some(held) = held else {
        return Err(Some(ApprovalRefused::NoHeldRun(trip.clone())));
    };
    let exceeded = now
        .entities()
        .into_iter()
        .zip(held.counts.entities())
        .find_map(|((entity, c), (_, h))| {
            let (now, held) = (c.removals(), h.removals());
            let tolerance = approval_tolerance(held);
            (now > held.saturating_add(tolerance)).then_some((entity, held, now, tolerance))
        });
    match exceeded {
        None => Ok(()),
        Some((entity, held_n, now_n, tolerance)) => Err(Some(ApprovalRefused::Exceeds {
            held_run_id: held.run_id.clone(),
            entity,
            held: held_n,
            now: now_n,
            tolerance,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn sections_with_a_shared_grade_are_kept() {
        let shared = Grade::EARLY.to_vec();
        assert!(section_kept(Some(Grade::PreKindergarten), None, &shared));
        assert!(!section_kept(Some(Grade::G1), None, &shared));
        assert!(!section_kept(Some(Grade::Other), None, &shared));
    }

    #[test]
    fn ungraded_sections_are_kept_only_in_schools_serving_shared_grades_only() {
        let shared = Grade::EARLY.to_vec();
        assert!(section_kept(
            None,
            Some((Grade::InfantToddler, Grade::PreKindergarten)),
            &shared
        ));
        assert!(section_kept(
            None,
            Some((Grade::Kindergarten, Grade::Kindergarten)),
            &shared
        ));
        assert!(!section_kept(
            None,
            Some((Grade::Kindergarten, Grade::G5)),
            &shared
        ));
        assert!(!section_kept(
            None,
            Some((Grade::Ungraded, Grade::Ungraded)),
            &shared
        ));
        assert!(!section_kept(
            None,
            Some((Grade::PreKindergarten, Grade::Preschool)),
            &shared
        ));
        assert!(!section_kept(None, None, &shared));
    }

    #[test]
    fn cutoffs_parse_and_reject_impossible_dates() {
        assert_eq!(parse_cutoff("09-01"), Some((9, 1)));
        assert_eq!(parse_cutoff("02-29"), Some((2, 29)));
        assert_eq!(parse_cutoff("13-01"), None);
        assert_eq!(parse_cutoff("04-31"), None);
        assert_eq!(parse_cutoff("x"), None);
    }

    #[test]
    fn school_years_start_in_august() {
        assert_eq!(school_year_start(date(2025, 8, 1)), 2025);
        assert_eq!(school_year_start(date(2025, 7, 31)), 2024);
    }

    #[test]
    fn grade_from_dob_uses_the_age_reached_before_the_cutoff() {
        let today = date(2025, 10, 15);
        let sep1 = (9, 1);
        // Turned 5 on Aug 31, before the cutoff: Kindergarten.
        assert_eq!(
            grade_from_dob(date(2020, 8, 31), sep1, today),
            Some(Grade::Kindergarten)
        );
        // Born on the cutoff: a year later.
        assert_eq!(
            grade_from_dob(date(2020, 9, 1), sep1, today),
            Some(Grade::PreKindergarten)
        );
        assert_eq!(
            grade_from_dob(date(2022, 1, 1), sep1, today),
            Some(Grade::Preschool)
        );
        assert_eq!(
            grade_from_dob(date(2024, 1, 1), sep1, today),
            Some(Grade::InfantToddler)
        );
        assert_eq!(
            grade_from_dob(date(2019, 3, 1), sep1, today),
            Some(Grade::G1)
        );
        assert_eq!(
            grade_from_dob(date(2007, 3, 1), sep1, today),
            Some(Grade::G13)
        );
        assert_eq!(grade_from_dob(date(2000, 3, 1), sep1, today), None);
        assert_eq!(grade_from_dob(date(2026, 1, 1), sep1, today), None);
        // Same school year in spring: still measured at the 2025 cutoff.
        assert_eq!(
            grade_from_dob(date(2020, 8, 31), sep1, date(2026, 3, 1)),
            Some(Grade::Kindergarten)
        );
        // A Feb 29 cutoff in a common year falls back to Feb 28.
        assert_eq!(
            grade_from_dob(date(2020, 2, 27), (2, 29), today),
            Some(Grade::Kindergarten)
        );
    }

    #[test]
    fn names_are_trimmed_and_whitespace_collapsed() {
        assert_eq!(
            normalize_name(Some("  Ana   María \t")),
            Some("Ana María".into())
        );
        assert_eq!(normalize_name(Some("   ")), None);
        assert_eq!(normalize_name(None), None);
    }

    #[test]
    fn new_children_get_the_journey_only_when_licensed() {
        let mut p = JourneyPolicySpec {
            licensed_products: vec!["Readiness".into()],
            new_child_journey: "Readiness".into(),
            grade_placement: Default::default(),
        };
        assert_eq!(
            new_child_journey(Some(&p), &[]),
            Ok(Some("Readiness".into()))
        );
        let operator = ["Readiness".to_string()];
        assert_eq!(
            new_child_journey(Some(&p), &operator),
            Ok(Some("Readiness".into()))
        );
        assert_eq!(
            new_child_journey(Some(&p), &["Math".to_string()]),
            Err("Readiness".into()),
            "the operator's licenses decide, not the district's list alone"
        );
        p.new_child_journey = "Math".into();
        assert_eq!(new_child_journey(Some(&p), &[]), Err("Math".into()));
        assert_eq!(new_child_journey(None, &[]), Ok(None));
    }

    #[test]
    fn the_guard_trips_above_the_percentage_of_active_records() {
        let mut counts = Counts::default();
        counts.children.deactivated = 10;
        let before = ActiveBefore {
            children: 100,
            ..Default::default()
        };
        assert_eq!(removal_guard(&counts, &before, 10, true), None);
        counts.children.removed = 1;
        let trip = removal_guard(&counts, &before, 10, true);
        assert_eq!(
            trip.map(|t| (t.entity, t.removals, t.active)),
            Some(("children", 11, 100))
        );
        assert_eq!(removal_guard(&counts, &before, 10, false), None);
        assert!(removal_guard(&counts, &before, 0, true).is_some());
        assert!(removal_guard(&counts, &before, 100, true).is_none());
    }

    #[test]
    fn an_approval_lifts_the_guard_only_within_what_the_held_run_reported() {
        fn counts(children: u64, classrooms: u64) -> Counts {
            let mut c = Counts::default();
            c.children.deactivated = children;
            c.classrooms.removed = classrooms;
            c
        }
        let trip = GuardTrip {
            entity: "children",
            removals: 50,
            active: 100,
            percent: 10,
        };
        let held = |children, classrooms| HeldRemovals {
            run_id: "held-1".into(),
            counts: counts(children, classrooms),
        };
        struct Case {
            name: &'static str,
            trip: bool,
            approve: bool,
            held: Option<HeldRemovals>,
            now: Counts,
            want: Result<(), Option<&'static str>>,
        }
        let cases = [
            Case {
                name: "no trip, no approval",
                trip: false,
                approve: false,
                held: None,
                now: counts(1, 0),
                want: Ok(()),
            },
            Case {
                name: "no trip, approval unused",
                trip: false,
                approve: true,
                held: None,
                now: counts(1, 0),
                want: Ok(()),
            },
            Case {
                name: "trip without approval",
                trip: true,
                approve: false,
                held: Some(held(50, 0)),
                now: counts(50, 0),
                want: Err(None),
            },
            Case {
                name: "approval without a held run",
                trip: true,
                approve: true,
                held: None,
                now: counts(50, 0),
                want: Err(Some("no-held-run")),
            },
            Case {
                name: "same removals",
                trip: true,
                approve: true,
                held: Some(held(50, 1)),
                now: counts(50, 1),
                want: Ok(()),
            },
            Case {
                name: "fewer removals",
                trip: true,
                approve: true,
                held: Some(held(50, 1)),
                now: counts(10, 0),
                want: Ok(()),
            },
            Case {
                name: "within the tolerance of 2",
                trip: true,
                approve: true,
                held: Some(held(50, 0)),
                now: counts(52, 2),
                want: Ok(()),
            },
            Case {
                name: "3 more children",
                trip: true,
                approve: true,
                held: Some(held(50, 0)),
                now: counts(53, 0),
                want: Err(Some("children")),
            },
            Case {
                name: "classrooms the held run kept",
                trip: true,
                approve: true,
                held: Some(held(50, 0)),
                now: counts(50, 3),
                want: Err(Some("classrooms")),
            },
            Case {
                name: "1 % of a large hold",
                trip: true,
                approve: true,
                held: Some(held(1000, 0)),
                now: counts(1010, 0),
                want: Ok(()),
            },
            Case {
                name: "over 1 % of a large hold",
                trip: true,
                approve: true,
                held: Some(held(1000, 0)),
                now: counts(1011, 0),
                want: Err(Some("children")),
            },
            Case {
                name: "everything after a broken response",
                trip: true,
                approve: true,
                held: Some(held(2, 0)),
                now: counts(126, 9),
                want: Err(Some("classrooms")),
            },
        ];
        for case in cases {
            let trip = case.trip.then_some(&trip);
            let got = approval_lifts_guard(trip, case.approve, case.held.as_ref(), &case.now);
            let got = got.map_err(|refused| {
                refused.map(|r| match r {
                    ApprovalRefused::NoHeldRun(_) => "no-held-run",
                    ApprovalRefused::Exceeds { entity, .. } => entity,
                })
            });
            assert_eq!(got, case.want, "{}", case.name);
        }
        assert_eq!(approval_tolerance(0), 2);
        assert_eq!(approval_tolerance(250), 3);
        let refused = approval_lifts_guard(Some(&trip), true, Some(&held(2, 0)), &counts(126, 0));
        let message = refused
            .err()
            .flatten()
            .map(|r| r.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("held run held-1 would have removed 2 children"),
            "{message}"
        );
        assert!(message.contains("this run would remove 126"), "{message}");
    }
}
