//! People: students (with dob consistent with grade and demographics present or blank),
//! district admins, office staff and parent contacts.
use jiff::Span;
use jiff::civil::{Date, date};
use rand::RngExt;
use rand::rngs::SmallRng;
use serde_json::Value;

use super::{AGES, GRADES, Gen, SCHOOL_YEAR, entry};
use crate::clever::models::*;
use crate::devtools::emulator::record::{Entry, role_bit};

pub(super) const FIRST: &[&str] = &[
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Oliver",
    "Ava",
    "Elijah",
    "Sophia",
    "Mateo",
    "Isabella",
    "Lucas",
    "Mia",
    "Levi",
    "Charlotte",
    "Ezra",
    "Luna",
    "Asher",
    "Harper",
    "James",
    "Evelyn",
    "Leo",
    "Aria",
    "Ethan",
    "Camila",
    "Aiden",
    "Sofia",
    "Santiago",
    "Nora",
    "Kai",
    "Zoe",
    "Jayden",
    "Layla",
    "Mohammed",
    "Aaliyah",
    "Wei",
    "Priya",
    "Arjun",
    "Fatima",
    "Yusuf",
    "Hana",
    "Kenji",
    "Maya",
    "Diego",
    "Chloe",
    "Amara",
    "Thiago",
    "Ximena",
];
pub(super) const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Nguyen",
    "Kim",
    "Patel",
    "Chen",
    "Okafor",
    "Haddad",
    "Kowalski",
    "Silva",
    "Tanaka",
    "Cohen",
    "Ali",
    "Novak",
];
const RACES: &[&str] = &[
    "Caucasian",
    "Asian",
    "Black or African American",
    "American Indian",
    "Hawaiian or Other Pacific Islander",
    "Two or More Races",
    "Unknown",
];
const LANGUAGES: &[&str] = &[
    "English",
    "Spanish",
    "Vietnamese",
    "Arabic",
    "Chinese",
    "Tagalog",
    "Somali",
];

pub(super) fn student(g: &mut Gen, i: usize, id: &str, gr: usize, school: usize) -> User {
    let (first, last) = (g.pick(FIRST), g.pick(LAST));
    let middle = match g.rng.random_range(0..4) {
        0 => Some(g.pick(FIRST).to_owned()),
        1 => Some(g.pick(FIRST)[..1].to_owned()),
        _ => None,
    };
    let age = if gr == 0 {
        g.rng.random_range(1..=2)
    } else {
        AGES[gr]
    };
    let dob = dob_for(&mut g.rng, age);
    let school_id = g.school_ids[school].clone();
    let sis = 100_000 + i;
    let yn = |rng: &mut SmallRng| if rng.random_bool(0.2) { "Y" } else { "N" };
    User {
        id: id.to_owned(),
        district: g.district.clone(),
        name: Name {
            first: Some(first.into()),
            middle,
            last: Some(last.into()),
        },
        email: (gr >= 8).then(|| {
            format!(
                "{}.{}{sis}@students.example.org",
                first.to_lowercase(),
                last.to_lowercase()
            )
        }),
        created: Some(g.stamp(700)),
        last_modified: Some(g.stamp(60)),
        roles: Roles {
            student: Some(StudentRole {
                dob: Some(dob),
                grade: Some(GRADES[gr].clone()),
                gender: Some(
                    match g.rng.random_range(0..50) {
                        0 => "X",
                        n if n % 2 == 0 => "F",
                        _ => "M",
                    }
                    .into(),
                ),
                sis_id: Some(sis.to_string()),
                state_id: g
                    .rng
                    .random_bool(0.7)
                    .then(|| format!("{:010}", 3_000_000_000u64 + sis as u64)),
                student_number: Some(format!("SN{sis}")),
                school: Some(school_id.clone()),
                schools: vec![school_id.clone()],
                enrollments: if g.rng.random_bool(0.5) {
                    vec![SchoolEnrollment {
                        school: school_id,
                        start_date: Some("2025-08-18".into()),
                        end_date: None,
                    }]
                } else {
                    Vec::new()
                },
                ell_status: Some(yn(&mut g.rng).into()),
                hispanic_ethnicity: Some(yn(&mut g.rng).into()),
                race: Some(g.pick(RACES).into()),
                home_language: Some(g.pick(LANGUAGES).into()),
                iep_status: Some(yn(&mut g.rng).into()),
                frl_status: Some(g.pick(&["Free", "Reduced", "Paid"]).into()),
                graduation_year: Some((SCHOOL_YEAR as usize + 17 - gr).to_string()),
                credentials: Some(UserCredentials {
                    district_username: Some(format!("s{sis}")),
                }),
            }),
            ..Roles::default()
        },
    }
}

/// A birth date for a child who is `age` on September 1st of the school year.
pub(super) fn dob_for(rng: &mut SmallRng, age: i16) -> Date {
    let cutoff = date(SCHOOL_YEAR - age, 9, 1);
    cutoff
        .checked_sub(Span::new().days(rng.random_range(0..365)))
        .unwrap_or(cutoff)
}

/// Demographic fields as Clever sends them for some districts: absent, `""` or `null`.
pub(super) fn blank_some_fields(rng: &mut SmallRng, user: &User) -> Value {
    let mut v = serde_json::to_value(user).unwrap_or(Value::Null);
    if let Some(s) = v
        .pointer_mut("/roles/student")
        .and_then(Value::as_object_mut)
    {
        for key in [
            "ell_status",
            "hispanic_ethnicity",
            "race",
            "home_language",
            "iep_status",
            "frl_status",
            "gender",
            "state_id",
            "graduation_year",
        ] {
            match rng.random_range(0..4) {
                0 => {
                    s.remove(key);
                }
                1 => {
                    s.insert(key.into(), Value::String(String::new()));
                }
                2 => {
                    s.insert(key.into(), Value::Null);
                }
                _ => {}
            }
        }
    }
    if let Some(obj) = v.as_object_mut()
        && !obj.contains_key("email")
    {
        obj.insert(
            "email".into(),
            if rng.random_bool(0.5) {
                Value::Null
            } else {
                Value::String(String::new())
            },
        );
    }
    v
}

/// District admins, one staff member per school (max 50) and parent contacts for a few students.
pub(super) fn extra_users(g: &mut Gen, students: &[String], users: &mut Vec<Entry>) {
    for n in 0..2 {
        let id = g.id();
        let user = User {
            id: id.clone(),
            district: g.district.clone(),
            name: Name {
                first: Some(g.pick(FIRST).into()),
                middle: None,
                last: Some(g.pick(LAST).into()),
            },
            email: Some(format!("admin{n}@district.example.org")),
            roles: Roles {
                district_admin: Some(DistrictAdminRole {
                    title: Some("Director of Technology".into()),
                }),
                ..Roles::default()
            },
            ..User::default()
        };
        users.push(entry(&id, role_bit(Role::DistrictAdmin), &user));
    }
    for s in 0..g.school_ids.len().min(50) {
        let id = g.id();
        let user = User {
            id: id.clone(),
            district: g.district.clone(),
            name: Name {
                first: Some(g.pick(FIRST).into()),
                middle: None,
                last: Some(g.pick(LAST).into()),
            },
            email: Some(format!("office{s}@district.example.org")),
            roles: Roles {
                staff: Some(StaffRole {
                    schools: vec![g.school_ids[s].clone()],
                    staff_id: Some(format!("ST{s:04}")),
                    title: Some("Office Manager".into()),
                    ..StaffRole::default()
                }),
                ..Roles::default()
            },
            ..User::default()
        };
        users.push(entry(&id, role_bit(Role::Staff), &user));
    }
    for (n, child) in students.iter().take(20).enumerate() {
        let id = g.id();
        let user = User {
            id: id.clone(),
            district: g.district.clone(),
            name: Name {
                first: Some(g.pick(FIRST).into()),
                middle: None,
                last: Some(g.pick(LAST).into()),
            },
            email: Some(format!("parent{n}@family.example.org")),
            roles: Roles {
                contact: Some(ContactRole {
                    phone: Some(format!("555-01{n:02}")),
                    phone_type: Some("Cell".into()),
                    sis_id: Some(format!("C{n:05}")),
                    student_relationships: vec![StudentRelationship {
                        student: child.clone(),
                        relationship: Some("Parent".into()),
                        kind: Some("Parent/Guardian".into()),
                    }],
                }),
                ..Roles::default()
            },
            ..User::default()
        };
        users.push(entry(&id, role_bit(Role::Contact), &user));
    }
}
