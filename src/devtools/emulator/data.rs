//! Deterministic, realistic district data for a seed: schools (elementary ones cover the early
//! grades), classes of at most ~25 children, homerooms plus other sections, teachers shared between
//! sections and schools, students with dob consistent with grade and demographics present or
//! absent/`""`/`null`. Generation writes each record's JSON once (no per-request work later).
use std::collections::HashMap;

use jiff::{Span, Timestamp};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::store::{EmulatorStoreError, Entry, Kind, Store, role_bit};
use crate::clever::models::*;

mod people;
use people::{FIRST, LAST, blank_some_fields, extra_users, student};

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
#[derive(Clone, Copy, PartialEq, Eq)]
enum Band {
    Elementary,
    Middle,
    High,
    Full,
}

impl Band {
    fn grades(self) -> std::ops::RangeInclusive<usize> {
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
    fn course(&mut self, subject: &'static str, g: usize) -> String {
        if let Some(id) = self.courses.get(&(subject, g)) {
            return id.clone();
        }
        let id = self.id();
        self.courses.insert((subject, g), id.clone());
        id
    }

    /// Adds one section taught by `teachers` (primary first).
    fn section(
        &mut self,
        school: usize,
        g: usize,
        subject: &'static str,
        period: &str,
        teachers: &[usize],
        students: Vec<String>,
    ) {
        let n = self.sections.len() + 1;
        let course = self.course(subject, g);
        let id = self.id();
        let label = match subject {
            "homeroom/advisory" => "Homeroom",
            "arts and music" => "Art & Music",
            "math" => "Math",
            "english/language arts" => "ELA",
            _ => "Small Group",
        };
        let (created, last_modified) = (self.stamp(400), self.stamp(30));
        let primary = &self.teachers[teachers[0]];
        let section = Section {
            id,
            district: self.district.clone(),
            school: self.school_ids[school].clone(),
            name: format!("{} {label} - {} - {period}", GRADES[g], primary.last),
            sis_id: Some(format!("SEC-{n:06}")),
            grade: Some(GRADES[g].clone()),
            subject: Some(subject.to_owned()),
            students,
            teacher: Some(primary.id.clone()),
            teachers: teachers
                .iter()
                .map(|t| self.teachers[*t].id.clone())
                .collect(),
            term_id: Some(self.term_id.clone()),
            course: Some(course),
            period: Some(period.to_owned()),
            section_number: Some(n.to_string()),
            created: Some(created),
            last_modified: Some(last_modified),
        };
        self.sections.push(entry(&section.id.clone(), 0, &section));
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
mod tests {
    use super::*;
    use jiff::civil::date;

    fn gen_(students: u32, schools: Option<u32>) -> Store {
        generate(&GenConfig {
            seed: 7,
            students,
            schools,
            district_id: DEFAULT_DISTRICT_ID.into(),
        })
        .unwrap()
    }

    #[test]
    fn is_deterministic_and_realistic() {
        let a = gen_(2000, None);
        let b = gen_(2000, None);
        let ids = |s: &Store| {
            s.entries(Kind::Users)
                .iter()
                .map(|e| e.json.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        let students: Vec<User> = a.users_with_role(Role::Student);
        assert_eq!(students.len(), 2000);
        let mut sis: Vec<_> = students
            .iter()
            .map(|u| u.roles.student.as_ref().unwrap().sis_id.clone().unwrap())
            .collect();
        sis.sort();
        sis.dedup();
        assert_eq!(sis.len(), 2000, "sis_ids are unique");
        // dob consistent with grade.
        for u in &students {
            let s = u.roles.student.as_ref().unwrap();
            let gr = GRADES
                .iter()
                .position(|g| Some(g) == s.grade.as_ref())
                .unwrap();
            let age = date(2025, 9, 1).since(s.dob.unwrap()).unwrap().get_days() / 365;
            assert!(
                (AGES[gr] as i32 - age).abs() <= 1 || gr == 0,
                "grade {gr} age {age}"
            );
        }
        let sections: Vec<Section> = a.all(Kind::Sections);
        for early in CleverGrade::EARLY {
            let of_grade: Vec<&Section> = sections
                .iter()
                .filter(|s| s.grade.as_ref() == Some(&early))
                .collect();
            assert!(!of_grade.is_empty(), "{early}");
            assert!(of_grade.iter().all(|s| s.students.len() <= 32));
        }
        assert!(
            sections
                .iter()
                .any(|s| s.subject.as_deref() == Some("homeroom/advisory"))
        );
        let mut count: HashMap<&str, usize> = HashMap::new();
        sections
            .iter()
            .flat_map(|s| &s.students)
            .for_each(|id| *count.entry(id).or_default() += 1);
        assert!(
            count.values().any(|c| *c > 1),
            "some students are in several sections"
        );
        assert_eq!(count.len(), 2000, "every student is in a section");
        let teachers: Vec<User> = a.users_with_role(Role::Teacher);
        assert!(
            teachers
                .iter()
                .any(|t| t.roles.teacher.as_ref().unwrap().schools.len() > 1)
        );
        // Some raw student JSON has "" and null demographics.
        let raw: Vec<String> = a
            .entries(Kind::Users)
            .iter()
            .map(|e| String::from_utf8_lossy(&e.json).into_owned())
            .collect();
        assert!(raw.iter().any(|j| j.contains(r#""race":"""#)));
        assert!(raw.iter().any(|j| j.contains(r#""race":null"#)));
    }

    #[test]
    fn tiny_districts_still_cover_every_grade() {
        let s = gen_(10, Some(1));
        assert_eq!(s.users_with_role::<User>(Role::Student).len(), 10);
        assert_eq!(s.len(Kind::Schools), 1);
        assert!(s.len(Kind::Sections) >= 1);
    }
}
