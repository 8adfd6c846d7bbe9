//! Schools: community schools for tiny districts, else elementary (early grades to 5), middle and
//! high schools, named after places.
use rand::RngExt;

use super::people::{FIRST, LAST};
use super::{GRADES, Gen, entry};
use crate::clever::models::*;
use crate::devtools::emulator::record::Entry;

/// Place names for schools (suffixed with a number once they run out).
const PLACES: &[&str] = &[
    "Lincoln",
    "Washington",
    "Jefferson",
    "Roosevelt",
    "Franklin",
    "Maple",
    "Oak Grove",
    "Riverside",
    "Hillcrest",
    "Lakeview",
    "Cedar",
    "Sunnyside",
    "Parkway",
    "Meadowbrook",
    "Pinecrest",
    "Bayside",
    "Highland",
    "Willow Creek",
];

/// What grades a school serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Band {
    Elementary,
    Middle,
    High,
    Full,
}

impl Band {
    pub(super) fn grades(self) -> std::ops::RangeInclusive<usize> {
        match self {
            Band::Elementary => 0..=9,
            Band::Middle => 10..=12,
            Band::High => 13..=16,
            Band::Full => 0..=16,
        }
    }
}

/// School kinds: tiny districts have community schools (all grades); otherwise four elementary
/// schools (early grades to 5) for each middle and each high school.
fn band(i: usize, n: usize) -> Band {
    match (n, i) {
        (0..3, _) => Band::Full,
        (3..6, 1) => Band::Middle,
        (3..6, 2) => Band::High,
        (3..6, _) => Band::Elementary,
        _ => match i % 6 {
            4 => Band::Middle,
            5 => Band::High,
            _ => Band::Elementary,
        },
    }
}

/// Generates `n_schools` schools: their entries and bands, in order (their ids are added to `g`).
pub(super) fn schools(g: &mut Gen, n_schools: usize) -> (Vec<Entry>, Vec<Band>) {
    let bands: Vec<Band> = (0..n_schools).map(|i| band(i, n_schools)).collect();
    let mut schools = Vec::with_capacity(n_schools);
    for (i, band) in bands.iter().enumerate() {
        let id = g.id();
        let (kind, low, high) = match band {
            Band::Elementary => ("Elementary School", 0, 9),
            Band::Middle => ("Middle School", 10, 12),
            Band::High => ("High School", 13, 16),
            Band::Full => ("Community School", 0, 16),
        };
        let place = PLACES[i % PLACES.len()];
        let suffix = if i >= PLACES.len() {
            format!(" {}", i / PLACES.len() + 1)
        } else {
            String::new()
        };
        let school = School {
            id: id.clone(),
            district: g.district.clone(),
            name: format!("{place}{suffix} {kind}"),
            sis_id: Some(format!("{}", 100 + i)),
            school_number: Some(format!("{:04}", 100 + i)),
            state_id: g.rng.random_bool(0.7).then(|| format!("ST-{:06}", 100 + i)),
            low_grade: Some(GRADES[low].clone()),
            high_grade: Some(GRADES[high].clone()),
            principal: Some(Principal {
                name: Some(format!("{} {}", g.pick(FIRST), g.pick(LAST))),
                email: Some(format!("principal{i}@district.example.org")),
            }),
            location: Some(Location {
                address: Some(format!("{} {place} Ave", 100 + i)),
                city: Some("Springfield".into()),
                state: Some("CA".into()),
                zip: Some(format!("9{:04}", i % 10_000)),
                ..Location::default()
            }),
            created: Some(g.stamp(800)),
            last_modified: Some(g.stamp(60)),
            ..School::default()
        };
        schools.push(entry(&id, 0, &school));
        g.school_ids.push(id);
    }
    (schools, bands)
}
