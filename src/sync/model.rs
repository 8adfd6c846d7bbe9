//! The sync's own data types: normalized roster rows ready for staging (what fetch produces from
//! Clever and apply consumes), per-entity counts, and problems.
use crate::api::Grade;

/// A school referenced by a kept section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StagedSchool {
    pub clever_id: String,
    pub name: String,
    pub sis_id: Option<String>,
    pub low_grade: Option<Grade>,
    pub high_grade: Option<Grade>,
}

/// A kept section, which becomes a classroom.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StagedClassroom {
    pub clever_id: String,
    pub school_clever_id: String,
    pub name: String,
    pub grade: Option<Grade>,
    pub subject: Option<String>,
    /// The primary teacher's Clever id.
    pub teacher_clever_id: Option<String>,
    /// Student Clever ids.
    pub students: Vec<String>,
}

/// Demographic fields; present only when the connection shares demographics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Demographics {
    pub dob: Option<jiff::civil::Date>,
    pub gender: Option<String>,
    pub ell_status: Option<String>,
    pub hispanic_ethnicity: Option<String>,
    pub race: Option<String>,
    pub home_language: Option<String>,
    pub iep_status: Option<String>,
    pub frl_status: Option<String>,
}

/// A student of a kept section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StagedChild {
    pub clever_id: String,
    pub sis_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The student's own grade.
    pub grade: Option<Grade>,
    /// The grade derived from the birth date (only when demographics are shared and the journey
    /// policy allows it); used when neither the student nor the section has one.
    pub dob_grade: Option<Grade>,
    /// The primary school (tie-breaker when choosing the classroom).
    pub primary_school: Option<String>,
    /// `None` when demographics are not shared: nothing is stored and stored values are cleared.
    pub demographics: Option<Demographics>,
}

/// A teacher of a kept section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StagedEducator {
    pub clever_id: String,
    pub school_clever_id: Option<String>,
    pub sis_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
}

pub use crate::run::{Counts, EntityCounts, Problem, ProblemCodes};

/// Active records per entity before the run (the removal guard's denominators).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveBefore {
    pub schools: u64,
    pub classrooms: u64,
    pub educators: u64,
    pub children: u64,
    pub enrollments: u64,
}

/// Problem codes (stable; documented in `rostersync sync --help`).
pub mod code {
    /// A Clever record could not be decoded (it is skipped).
    pub const INVALID_RECORD: &str = "InvalidRecord";
    /// A child is listed in several kept sections; one classroom was chosen.
    pub const MULTIPLE_SECTIONS: &str = "MultipleSections";
    /// A kept section lists a student Clever did not return (the enrollment is skipped).
    pub const STUDENT_NOT_FOUND: &str = "StudentNotFound";
    /// A kept section's teacher was not returned by Clever.
    pub const TEACHER_NOT_FOUND: &str = "TeacherNotFound";
    /// A kept section's school was not returned by Clever (the section is skipped).
    pub const SCHOOL_NOT_FOUND: &str = "SchoolNotFound";
    /// Several archived children could be this new child; a new child was created.
    pub const CARRYOVER_AMBIGUOUS: &str = "CarryoverAmbiguous";
    /// Several manual children could be this child (or the reverse); left for manual matching.
    pub const MANUAL_MATCH_AMBIGUOUS: &str = "ManualMatchAmbiguous";
    /// Several educators already in the product could be this roster teacher (by email or SIS id);
    /// a new educator was created, left for manual matching.
    pub const EDUCATOR_MATCH_AMBIGUOUS: &str = "EducatorMatchAmbiguous";
    /// The JourneyPolicy's newChildJourney is not licensed: new children got no journey.
    pub const JOURNEY_NOT_LICENSED: &str = "JourneyNotLicensed";
    /// Records left the roster but were kept because allowRemoval is false.
    pub const STALE_NOT_REMOVED: &str = "StaleNotRemoved";
    /// Clever returned the same id twice in one list; the first record was kept.
    pub const DUPLICATE_RECORD: &str = "DuplicateRecord";
    /// A classroom holds more children than the product allows (32).
    pub const CLASSROOM_OVER_CAPACITY: &str = "ClassroomOverCapacity";
}
