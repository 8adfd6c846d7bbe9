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

/// The journey new children get: the policy's `newChildJourney` when it is licensed. `Err` carries
/// the unlicensed journey's name (new children then get none, and the run reports it).
pub fn new_child_journey(policy: Option<&JourneyPolicySpec>) -> Result<Option<String>, String> {
    match policy {
        None => Ok(None),
        Some(p)
            if p.licensed_products
                .iter()
                .any(|l| l == &p.new_child_journey) =>
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
        assert_eq!(new_child_journey(Some(&p)), Ok(Some("Readiness".into())));
        p.new_child_journey = "Math".into();
        assert_eq!(new_child_journey(Some(&p)), Err("Math".into()));
        assert_eq!(new_child_journey(None), Ok(None));
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
}
