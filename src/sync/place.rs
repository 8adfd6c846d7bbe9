//! Placing each child in one classroom, while staging (pure: no I/O). The kept sections are staged
//! before the students, so each child's classroom, school and grade are known when its row is
//! written; no planning statement rewrites the staged children afterwards.
//!
//! The rule: a child listed in several kept sections goes to one classroom: a homeroom section
//! first, then a section of the child's primary school, then the lowest section id. The grade is
//! the student's, else the chosen section's, else the one derived from the birth date. A child in
//! no kept section is staged without a classroom, school or grade.

use crate::api::Grade;

/// A Clever id as a map key: 24 hex digits kept exactly as a `u128` (16 bytes an id), any other id
/// by a 128-bit hash (the high bit keeps hashed keys apart from hex ids of 96 bits).
pub fn id_key(id: &str) -> u128 {
    if id.len() == 24
        && let Ok(key) = u128::from_str_radix(id, 16)
    {
        return key;
    }
    use std::hash::{Hash, Hasher};
    let half = |salt: u64| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        id.hash(&mut h);
        h.finish()
    };
    (1u128 << 127) | (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// A kept section, as placement needs it.
#[derive(Clone, Debug)]
struct Section {
    id: Box<str>,
    school: Box<str>,
    grade: Option<Grade>,
    homeroom: bool,
}

/// A student listed by kept sections.
#[derive(Debug)]
struct Listed {
    id: Box<str>,
    /// Indexes into [`Sections::sections`], each section once.
    sections: Vec<u32>,
    /// Staged as a child.
    staged: bool,
}

/// Where a child goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement<'a> {
    pub classroom: &'a str,
    pub school: &'a str,
    /// The child's grade: its own, else the section's, else the one from its birth date.
    pub grade: Option<Grade>,
    /// How many kept sections list the child (more than one is reported).
    pub sections: u32,
}

/// The kept sections and the students they list.
#[derive(Debug, Default)]
pub struct Sections {
    sections: Vec<Section>,
    students: foldhash::HashMap<u128, Listed>,
}

impl Sections {
    /// Adds a kept section and the students it lists (a student listed twice counts once).
    pub fn add(
        &mut self,
        id: &str,
        school: &str,
        grade: Option<Grade>,
        homeroom: bool,
        students: &[String],
    ) {
        let Ok(index) = u32::try_from(self.sections.len()) else {
            return;
        };
        self.sections.push(Section {
            id: id.into(),
            school: school.into(),
            grade,
            homeroom,
        });
        for student in students {
            let listed = self
                .students
                .entry(id_key(student))
                .or_insert_with(|| Listed {
                    id: student.as_str().into(),
                    sections: Vec::new(),
                    staged: false,
                });
            // Sections are added in order, so a repeat within this section is the last entry.
            if listed.sections.last() != Some(&index) {
                listed.sections.push(index);
            }
        }
    }

    /// Places a child and notes it as staged. `None`: no kept section lists it.
    pub fn place(
        &mut self,
        student: &str,
        primary_school: Option<&str>,
        own_grade: Option<Grade>,
        dob_grade: Option<Grade>,
    ) -> Option<Placement<'_>> {
        let listed = self.students.get_mut(&id_key(student))?;
        listed.staged = true;
        let sections = &self.sections;
        let rank = |i: &u32| {
            let s = &sections[*i as usize];
            let own_school = primary_school == Some(&*s.school);
            // Homeroom first, then the primary school's sections, then the lowest id.
            (!s.homeroom, !own_school, &*s.id)
        };
        let chosen = listed
            .sections
            .iter()
            .min_by(|a, b| rank(a).cmp(&rank(b)))?;
        let section = &sections[*chosen as usize];
        Some(Placement {
            classroom: &section.id,
            school: &section.school,
            grade: own_grade.or(section.grade).or(dob_grade),
            sections: u32::try_from(listed.sections.len()).unwrap_or(u32::MAX),
        })
    }

    /// Students listed by kept sections that were never staged as children (Clever did not return
    /// them), sorted.
    pub fn not_staged(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .students
            .values()
            .filter(|l| !l.staged)
            .map(|l| &*l.id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Children a classroom may hold; more are reported (`ClassroomOverCapacity`), never refused.
pub const CLASSROOM_CAPACITY: u32 = 32;

/// The placement problems of a run, gathered as children are placed: a child listed in several
/// kept sections (`MultipleSections`) and a classroom given more than [`CLASSROOM_CAPACITY`]
/// children (`ClassroomOverCapacity`). Ids and counts only.
#[derive(Debug, Default)]
pub struct PlacementProblems {
    /// Children placed in a classroom.
    pub placed: u64,
    /// (child, sections listing it, classroom it was placed in), for children in several.
    multiple: Vec<(Box<str>, u32, Box<str>)>,
    per_classroom: foldhash::HashMap<Box<str>, u32>,
}

impl PlacementProblems {
    /// Records one placed child.
    pub fn add(&mut self, child: &str, classroom: &str, sections: u32) {
        self.placed += 1;
        if sections > 1 {
            self.multiple
                .push((child.into(), sections, classroom.into()));
        }
        match self.per_classroom.get_mut(classroom) {
            Some(n) => *n += 1,
            None => {
                self.per_classroom.insert(classroom.into(), 1);
            }
        }
    }

    /// The problems: children in several sections by child id, then full classrooms by id.
    pub fn problems(&self) -> Vec<super::model::Problem> {
        use super::model::{Problem, code};
        let mut multiple: Vec<_> = self.multiple.iter().collect();
        multiple.sort_by(|a, b| a.0.cmp(&b.0));
        let mut full: Vec<_> = self
            .per_classroom
            .iter()
            .filter(|(_, n)| **n > CLASSROOM_CAPACITY)
            .collect();
        full.sort_by(|a, b| a.0.cmp(b.0));
        let multiple = multiple.into_iter().map(|(child, n, classroom)| Problem {
            record_kind: "children".into(),
            clever_id: Some(child.to_string()),
            code: code::MULTIPLE_SECTIONS.into(),
            message: format!(
                "listed in {n} kept sections; placed in classroom {classroom} \
                 (homeroom first, then the primary school, then the lowest section id)"
            ),
        });
        let full = full.into_iter().map(|(classroom, n)| Problem {
            record_kind: "classrooms".into(),
            clever_id: Some(classroom.to_string()),
            code: code::CLASSROOM_OVER_CAPACITY.into(),
            message: format!(
                "{n} children placed in this classroom; the product allows at most {CLASSROOM_CAPACITY}"
            ),
        });
        multiple.chain(full).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// (sections as (id, school, grade, homeroom, students), child (id, primary school, own grade,
    /// dob grade), expected (classroom, school, grade, sections) or None).
    type Case<'a> = (
        &'a [(&'a str, &'a str, Option<Grade>, bool, &'a [&'a str])],
        (&'a str, Option<&'a str>, Option<Grade>, Option<Grade>),
        Option<(&'a str, &'a str, Option<Grade>, u32)>,
    );

    #[test]
    fn placement_rule_table() {
        use Grade::{Kindergarten as K, PreKindergarten as PK, Preschool as PS};
        let cases: &[(&str, Case)] = &[
            (
                "one section: its classroom, school and (no own grade) its grade",
                (
                    &[("s1", "sch1", Some(K), false, &["a"])],
                    ("a", None, None, None),
                    Some(("s1", "sch1", Some(K), 1)),
                ),
            ),
            (
                "own grade wins over the section's",
                (
                    &[("s1", "sch1", Some(K), false, &["a"])],
                    ("a", None, Some(PK), Some(PS)),
                    Some(("s1", "sch1", Some(PK), 1)),
                ),
            ),
            (
                "no own or section grade: the birth date's",
                (
                    &[("s1", "sch1", None, false, &["a"])],
                    ("a", None, None, Some(PS)),
                    Some(("s1", "sch1", Some(PS), 1)),
                ),
            ),
            (
                "homeroom first, even outside the primary school and with a higher id",
                (
                    &[
                        ("s1", "sch1", None, false, &["a"]),
                        ("s9", "sch2", None, true, &["a"]),
                    ],
                    ("a", Some("sch1"), None, None),
                    Some(("s9", "sch2", None, 2)),
                ),
            ),
            (
                "then the primary school's section",
                (
                    &[
                        ("s1", "sch1", None, false, &["a"]),
                        ("s2", "sch2", None, false, &["a"]),
                    ],
                    ("a", Some("sch2"), None, None),
                    Some(("s2", "sch2", None, 2)),
                ),
            ),
            (
                "then the lowest section id",
                (
                    &[
                        ("s3", "sch1", None, false, &["a"]),
                        ("s2", "sch1", None, false, &["a"]),
                    ],
                    ("a", None, None, None),
                    Some(("s2", "sch1", None, 2)),
                ),
            ),
            (
                "listed twice by one section counts once",
                (
                    &[("s1", "sch1", None, false, &["a", "b", "a"])],
                    ("a", None, None, None),
                    Some(("s1", "sch1", None, 1)),
                ),
            ),
            (
                "in no kept section: not placed",
                (
                    &[("s1", "sch1", None, false, &["b"])],
                    ("a", None, Some(K), None),
                    None,
                ),
            ),
        ];
        for (name, (sections, child, want)) in cases {
            let mut s = Sections::default();
            for (id, school, grade, homeroom, students) in *sections {
                s.add(id, school, *grade, *homeroom, &ids(students));
            }
            let got = s
                .place(child.0, child.1, child.2, child.3)
                .map(|p| (p.classroom, p.school, p.grade, p.sections));
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn students_never_staged_are_listed_once_sorted() {
        let mut s = Sections::default();
        s.add("s1", "x", None, false, &ids(&["c", "a", "b"]));
        s.add("s2", "x", None, false, &ids(&["a", "d"]));
        assert!(s.place("a", None, None, None).is_some());
        assert_eq!(s.not_staged(), vec!["b", "c", "d"]);
    }

    #[test]
    fn hex_ids_are_exact_keys_and_others_hashed_apart() {
        let hex = "0123456789abcdef01234567";
        assert_eq!(id_key(hex), 0x0123456789abcdef01234567);
        assert_ne!(id_key("sec-1"), id_key("sec-2"));
        assert!(id_key("sec-1") >> 127 == 1);
    }

    #[test]
    fn placement_problems_are_sorted_and_counted() {
        let mut p = PlacementProblems::default();
        p.add("c2", "room-b", 2);
        p.add("c1", "room-a", 3);
        p.add("c3", "room-a", 1);
        for i in 0..CLASSROOM_CAPACITY {
            p.add(&format!("x{i:02}"), "room-z", 1);
        }
        assert_eq!(p.placed, 3 + u64::from(CLASSROOM_CAPACITY));
        let got: Vec<_> = p
            .problems()
            .into_iter()
            .map(|p| {
                (
                    p.record_kind,
                    p.clever_id.unwrap_or_default(),
                    p.code,
                    p.message,
                )
            })
            .collect();
        let want = [
            (
                "children",
                "c1",
                "MultipleSections",
                "listed in 3 kept sections; placed in classroom room-a (homeroom first, then the primary school, then the lowest section id)",
            ),
            (
                "children",
                "c2",
                "MultipleSections",
                "listed in 2 kept sections; placed in classroom room-b (homeroom first, then the primary school, then the lowest section id)",
            ),
        ];
        assert_eq!(
            got.len(),
            2,
            "32 children fill a classroom without a problem: {got:?}"
        );
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2.as_str(), g.3.as_str()), w);
        }
        p.add("x99", "room-z", 1);
        let last = p.problems().pop().expect("over capacity");
        assert_eq!(
            (
                last.record_kind.as_str(),
                last.clever_id.as_deref(),
                last.code.as_str(),
                last.message.as_str()
            ),
            (
                "classrooms",
                Some("room-z"),
                "ClassroomOverCapacity",
                "33 children placed in this classroom; the product allows at most 32"
            )
        );
    }
}
