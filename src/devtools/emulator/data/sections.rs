//! Sections: one Clever section record per class, with its course (one per subject and grade).
use super::{GRADES, Gen, entry};
use crate::clever::models::Section;

impl Gen {
    fn course(&mut self, subject: &'static str, g: usize) -> String {
        if let Some(id) = self.courses.get(&(subject, g)) {
            return id.clone();
        }
        let id = self.id();
        self.courses.insert((subject, g), id.clone());
        id
    }

    /// Adds one section taught by `teachers` (primary first).
    pub(super) fn section(
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
