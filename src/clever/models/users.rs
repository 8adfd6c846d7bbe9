//! Users and their roles (`/v3.0/users`). Re-exported from [`super`] (`crate::clever::models`).
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::CleverGrade;
use crate::clever::wire;

/// A user (`/v3.0/users`). One user can hold several roles.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub district: String,
    #[serde(default, deserialize_with = "wire::null_default")]
    pub name: Name,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub email: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::timestamp"
    )]
    pub created: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::timestamp"
    )]
    pub last_modified: Option<Timestamp>,
    #[serde(default, deserialize_with = "wire::null_default")]
    pub roles: Roles,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub first: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub middle: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub last: Option<String>,
}

/// The roles a user holds; the key for a district administrator is `district_admin`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Roles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<StudentRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<StaffRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district_admin: Option<DistrictAdminRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactRole>,
}

/// The role names accepted by `/v3.0/users?role=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Student,
    Teacher,
    Staff,
    DistrictAdmin,
    Contact,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Student,
        Role::Teacher,
        Role::Staff,
        Role::DistrictAdmin,
        Role::Contact,
    ];

    /// The value of the `role` query parameter and the key under `roles`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Staff => "staff",
            Role::DistrictAdmin => "district_admin",
            Role::Contact => "contact",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl Roles {
    pub fn has(&self, role: Role) -> bool {
        match role {
            Role::Student => self.student.is_some(),
            Role::Teacher => self.teacher.is_some(),
            Role::Staff => self.staff.is_some(),
            Role::DistrictAdmin => self.district_admin.is_some(),
            Role::Contact => self.contact.is_some(),
        }
    }
}

/// `roles.student`. Demographic fields are often absent, `""` or `null`: all are `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StudentRole {
    /// Sent as `M/D/YYYY`, not zero-padded. An unparseable value makes the record a
    /// [`RecordProblem`](super::RecordProblem) naming the field.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "wire::dob")]
    pub dob: Option<Date>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::grade"
    )]
    pub grade: Option<CleverGrade>,
    /// `M, F, X` (or absent/empty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub gender: Option<String>,
    /// Unique only within a district.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub sis_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub state_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub student_number: Option<String>,
    /// The primary school id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub school: Option<String>,
    #[serde(default, deserialize_with = "wire::null_default")]
    pub schools: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "wire::null_default"
    )]
    pub enrollments: Vec<SchoolEnrollment>,
    /// `Y, N` (or absent/empty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub ell_status: Option<String>,
    /// `Y, N` (or absent/empty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub hispanic_ethnicity: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub race: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub home_language: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub iep_status: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub frl_status: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub graduation_year: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<UserCredentials>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolEnrollment {
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub school: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub start_date: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub end_date: Option<String>,
}

/// A user's `credentials`: their district login name (not the app's API credentials, which are
/// [`crate::clever::CleverCredentials`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCredentials {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub district_username: Option<String>,
}

/// `roles.teacher`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TeacherRole {
    /// The primary school id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub school: Option<String>,
    #[serde(default, deserialize_with = "wire::null_default")]
    pub schools: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub sis_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub state_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub teacher_number: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<UserCredentials>,
}

/// `roles.staff`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StaffRole {
    #[serde(default, deserialize_with = "wire::null_default")]
    pub schools: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub staff_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub title: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub department: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "wire::null_default"
    )]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<UserCredentials>,
}

/// `roles.district_admin`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DistrictAdminRole {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub title: Option<String>,
}

/// `roles.contact` (a parent or guardian).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactRole {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub phone: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub phone_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub sis_id: Option<String>,
    #[serde(default, deserialize_with = "wire::null_default")]
    pub student_relationships: Vec<StudentRelationship>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentRelationship {
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub student: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub relationship: Option<String>,
    #[serde(
        default,
        rename = "type",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub kind: Option<String>,
}
