//! Tests of the generator: deterministic per seed, realistic (grades, ages, class sizes, sharing).
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
