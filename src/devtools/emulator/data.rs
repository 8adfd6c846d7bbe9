//! Deterministic, realistic district data for a seed: schools (elementary ones cover the early
//! grades), classes of at most ~25 children, homerooms plus other sections, teachers shared between
//! sections and schools, students with dob consistent with grade and demographics present or
//! absent/`""`/`null`. Generation writes each record's JSON once (no per-request work later).
use std::collections::HashMap;

use jiff::{Span, Timestamp};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::record::{Entry, Kind, role_bit};
use super::store::{EmulatorStoreError, Store};
use crate::clever::models::*;

mod people;
mod schools;
mod sections;
use people::{FIRST, LAST, blank_some_fields, extra_users, student};
use schools::schools;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub seed: u64,
    pub students: u32,
    /// Number of schools; by default one per ~450 students (at least 1, at most 2000).
    pub schools: Option<u32>,
    pub district_id: String,
}

/// The emulator's default district id.
pub const DEFAULT_DISTRICT_ID: &str = "5e1f0c2a9b3d4e5f60718293";

/// Student grades in school order: the five early grades then 1..12.
const GRADES: [CleverGrade; 17] = [
    CleverGrade::InfantToddler,
    CleverGrade::Preschool,
    CleverGrade::PreKindergarten,
    CleverGrade::TransitionalKindergarten,
    CleverGrade::Kindergarten,
    CleverGrade::Numbered(1),
    CleverGrade::Numbered(2),
    CleverGrade::Numbered(3),
    CleverGrade::Numbered(4),
    CleverGrade::Numbered(5),
    CleverGrade::Numbered(6),
    CleverGrade::Numbered(7),
    CleverGrade::Numbered(8),
    CleverGrade::Numbered(9),
    CleverGrade::Numbered(10),
    CleverGrade::Numbered(11),
    CleverGrade::Numbered(12),
];
/// Relative enrolment per grade (fewer infants and preschoolers than grade-school children).
const GRADE_WEIGHTS: [u32; 17] = [2, 3, 4, 2, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6];
/// Age on September 1st of the school year, per grade index (infant-toddlers are 1 or 2).
const AGES: [i16; 17] = [1, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
const SCHOOL_YEAR: i16 = 2025;
const EARLY: usize = 5;

struct TeacherGen {
    id: String,
    first: &'static str,
    last: &'static str,
    schools: Vec<usize>,
    title: &'static str,
}

struct Gen {
    rng: SmallRng,
    district: String,
    base: Timestamp,
    school_ids: Vec<String>,
    teachers: Vec<TeacherGen>,
    sections: Vec<Entry>,
    courses: HashMap<(&'static str, usize), String>,
    term_id: String,
}

impl Gen {
    fn id(&mut self) -> String {
        format!("{:024x}", self.rng.random::<u128>() >> 32)
    }
    fn stamp(&mut self, days_back: i64) -> Timestamp {
        let secs = self.rng.random_range(0..days_back.max(1) * 86_400);
        self.base
            .checked_sub(Span::new().seconds(secs))
            .unwrap_or(self.base)
    }
    fn pick<T: Copy>(&mut self, list: &[T]) -> T {
        list[self.rng.random_range(0..list.len())]
    }
    fn teacher(&mut self, schools: Vec<usize>, title: &'static str) -> usize {
        let (id, first, last) = (self.id(), self.pick(FIRST), self.pick(LAST));
        self.teachers.push(TeacherGen {
            id,
            first,
            last,
            schools,
            title,
        });
        self.teachers.len() - 1
    }
}

fn entry<T: Serialize>(id: &str, roles: u8, obj: &T) -> Entry {
    let json = serde_json::to_vec(obj).unwrap_or_else(|_| b"{}".to_vec());
    Entry {
        id: id.into(),
        roles,
        json: json.into_boxed_slice(),
    }
}

/// Generates a district (deterministic for `cfg`).
pub fn generate(cfg: &GenConfig) -> Result<Store, EmulatorStoreError> {
    let n_students = cfg.students as usize;
    let n_schools = cfg
        .schools
        .map_or((n_students / 450).clamp(1, 2000), |s| s.max(1) as usize);
    let mut g = Gen {
        rng: SmallRng::seed_from_u64(cfg.seed),
        district: cfg.district_id.clone(),
        base: Timestamp::from_second(1_756_728_000).unwrap_or(Timestamp::UNIX_EPOCH),
        school_ids: Vec::new(),
        teachers: Vec::new(),
        sections: Vec::new(),
        courses: HashMap::new(),
        term_id: String::new(),
    };
    let district = District {
        id: cfg.district_id.clone(),
        name: "Emulated Unified School District".into(),
        state: Some("success".into()),
        last_sync: Some(g.base),
        launch_date: Some("2025-07-01".into()),
        sis_type: Some("emulator".into()),
        portal_url: Some("https://clever.com/in/emulated".into()),
        login_methods: vec!["clever".into()],
        ..District::default()
    };
    let mut store = Store::new(&district)?;

    // Terms: the school year and its two semesters; sections use the year.
    let mut terms = Vec::new();
    for (name, start, end) in [
        ("2025-2026 School Year", "2025-08-18", "2026-06-12"),
        ("Fall 2025", "2025-08-18", "2025-12-19"),
        ("Spring 2026", "2026-01-05", "2026-06-12"),
    ] {
        let id = g.id();
        let term = Term {
            id: id.clone(),
            district: g.district.clone(),
            name: Some(name.into()),
            start_date: Some(start.into()),
            end_date: Some(end.into()),
        };
        terms.push(entry(&id, 0, &term));
    }
    g.term_id = String::from_utf8_lossy(&terms[0].json)
        .split('"')
        .nth(3)
        .unwrap_or_default()
        .to_owned();

    // Schools.
    let (schools, bands) = schools(&mut g, n_schools);
    let schools_for_grade: Vec<Vec<usize>> = (0..GRADES.len())
        .map(|gr| {
            (0..n_schools)
                .filter(|s| bands[*s].grades().contains(&gr))
                .collect()
        })
        .collect();

    // Students: grade, school, then bucketed by (school, grade) into classes.
    let total_weight: u32 = GRADE_WEIGHTS.iter().sum();
    let mut student_ids = Vec::with_capacity(n_students);
    let mut student_meta: Vec<(u8, u32)> = Vec::with_capacity(n_students);
    let mut buckets: HashMap<(usize, usize), Vec<u32>> = HashMap::new();
    for i in 0..n_students {
        let mut w = g.rng.random_range(0..total_weight);
        let gr = GRADE_WEIGHTS
            .iter()
            .position(|gw| {
                if w < *gw {
                    true
                } else {
                    w -= gw;
                    false
                }
            })
            .unwrap_or(0);
        let candidates = &schools_for_grade[gr];
        let school = if candidates.is_empty() {
            0
        } else {
            candidates[g.rng.random_range(0..candidates.len())]
        };
        student_ids.push(g.id());
        student_meta.push((gr as u8, school as u32));
        buckets.entry((school, gr)).or_default().push(i as u32);
    }
    let mut keys: Vec<(usize, usize)> = buckets.keys().copied().collect();
    keys.sort_unstable();
    // One art teacher per pair of schools (so some teachers work in two schools).
    let mut art_teacher: HashMap<usize, usize> = HashMap::new();
    let mut subject_teacher: HashMap<(usize, &'static str), (usize, u32)> = HashMap::new();
    for (school, gr) in keys {
        let members = buckets.remove(&(school, gr)).unwrap_or_default();
        let target = if gr < EARLY {
            g.rng.random_range(16..=24)
        } else {
            g.rng.random_range(22..=28)
        };
        let classes = members.len().div_ceil(target).max(1);
        let mut small_group = Vec::new();
        for c in 0..classes {
            let lo = members.len() * c / classes;
            let hi = members.len() * (c + 1) / classes;
            let ids: Vec<String> = members[lo..hi]
                .iter()
                .map(|i| student_ids[*i as usize].clone())
                .collect();
            let lead = g.teacher(vec![school], "Teacher");
            let mut staff = vec![lead];
            if gr < EARLY && g.rng.random_bool(0.3) {
                staff.push(g.teacher(vec![school], "Aide"));
            }
            g.section(school, gr, "homeroom/advisory", "HR", &staff, ids.clone());
            if gr < EARLY {
                small_group.extend(ids.into_iter().filter(|_| g.rng.random_bool(0.25)));
            } else if gr < 10 {
                let pair = school / 2;
                let art = match art_teacher.get(&pair) {
                    Some(t) => *t,
                    None => {
                        let schools = if school % 2 == 0 && school + 1 < n_schools {
                            vec![school, school + 1]
                        } else {
                            vec![school]
                        };
                        let t = g.teacher(schools, "Art & Music Teacher");
                        art_teacher.insert(pair, t);
                        t
                    }
                };
                if !g.teachers[art].schools.contains(&school) {
                    g.teachers[art].schools.push(school);
                }
                g.section(school, gr, "arts and music", "2", &[art], ids);
            } else {
                for (subject, period) in [("math", "3"), ("english/language arts", "4")] {
                    let slot = subject_teacher
                        .entry((school, subject))
                        .or_insert((usize::MAX, 5));
                    if slot.1 >= 5 {
                        *slot = (usize::MAX, 0);
                    }
                    let t = if slot.0 == usize::MAX {
                        let t = g.teacher(vec![school], "Teacher");
                        subject_teacher.insert((school, subject), (t, 1));
                        t
                    } else {
                        slot.1 += 1;
                        slot.0
                    };
                    g.section(school, gr, subject, period, &[t], ids.clone());
                }
            }
        }
        for chunk in small_group.chunks(12) {
            let t = g.teacher(vec![school], "Early Learning Specialist");
            g.section(
                school,
                gr,
                "interventions/online learning",
                "5",
                &[t],
                chunk.to_vec(),
            );
        }
    }

    let mut users = Vec::with_capacity(n_students + g.teachers.len() + n_schools + 32);
    let student_bit = role_bit(Role::Student);
    for (i, id) in student_ids.iter().enumerate() {
        let (gr, school) = student_meta[i];
        let user = student(&mut g, i, id, gr as usize, school as usize);
        if g.rng.random_bool(0.6) {
            users.push(entry(id, student_bit, &user));
        } else {
            users.push(entry(
                id,
                student_bit,
                &blank_some_fields(&mut g.rng, &user),
            ));
        }
    }
    let teachers = std::mem::take(&mut g.teachers);
    for (n, t) in teachers.iter().enumerate() {
        let schools: Vec<String> = t.schools.iter().map(|s| g.school_ids[*s].clone()).collect();
        let user = User {
            id: t.id.clone(),
            district: g.district.clone(),
            name: Name {
                first: Some(t.first.into()),
                middle: None,
                last: Some(t.last.into()),
            },
            email: Some(format!(
                "{}.{}{n}@district.example.org",
                t.first.to_lowercase(),
                t.last.to_lowercase()
            )),
            created: Some(g.stamp(900)),
            last_modified: Some(g.stamp(90)),
            roles: Roles {
                teacher: Some(TeacherRole {
                    school: schools.first().cloned(),
                    schools,
                    sis_id: Some(format!("T{:06}", n + 1)),
                    teacher_number: Some(format!("{:06}", n + 1)),
                    title: Some(t.title.into()),
                    credentials: Some(UserCredentials {
                        district_username: Some(format!("t{:06}", n + 1)),
                    }),
                    ..TeacherRole::default()
                }),
                ..Roles::default()
            },
        };
        users.push(entry(&t.id, role_bit(Role::Teacher), &user));
    }
    extra_users(&mut g, &student_ids, &mut users);

    let courses: Vec<Entry> = std::mem::take(&mut g.courses)
        .into_iter()
        .map(|((subject, gr), id)| {
            let course = Course {
                id: id.clone(),
                district: g.district.clone(),
                name: Some(format!("{} {subject}", GRADES[gr])),
                number: Some(format!("{subject:.3}-{gr:02}").to_uppercase()),
            };
            entry(&id, 0, &course)
        })
        .collect();
    store.set_entries(Kind::Schools, schools);
    store.set_entries(Kind::Sections, std::mem::take(&mut g.sections));
    store.set_entries(Kind::Users, users);
    store.set_entries(Kind::Terms, terms);
    store.set_entries(Kind::Courses, courses);
    Ok(store)
}

#[cfg(test)]
mod tests;
