//! Typed Clever v3.0 objects, shared by the client (decoding), the emulator (serving) and the sync
//! engine (consuming).
//!
//! Decoding is tolerant the way Clever data needs: unknown fields are ignored, and where Clever
//! produces a field as absent, `""` or `null`, all three decode to `None` (or an empty list).
//! Serialising writes `None` as an absent field, which Clever also does.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use super::grade::CleverGrade;
use super::wire;

mod users;
pub use users::*;

/// A district, as `GET /v3.0/districts/{id}` returns it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct District {
    pub id: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub name: String,
    /// Sync state: `running, pending, error, paused, success` (or absent/empty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub state: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::timestamp"
    )]
    pub last_sync: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub error: Option<String>,
    /// `YYYY-MM-DD`; kept as text because Clever is not consistent about it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub launch_date: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub pause_start: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub pause_end: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub sis_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub portal_url: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "wire::null_default"
    )]
    pub login_methods: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub nces_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub mdr_number: Option<String>,
}

/// A school (`/v3.0/schools`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct School {
    pub id: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub district: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub name: String,
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
    pub school_number: Option<String>,
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
    pub nces_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::grade"
    )]
    pub low_grade: Option<CleverGrade>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::grade"
    )]
    pub high_grade: Option<CleverGrade>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub phone: Option<String>,
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
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub email: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub address: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub city: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub state: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub zip: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub lat: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub lon: Option<String>,
}

/// A section, i.e. a class (`/v3.0/sections`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub id: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub district: String,
    /// The school id.
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub school: String,
    /// Often generated as "course - teacher - period"; not unique.
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub sis_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::grade"
    )]
    pub grade: Option<CleverGrade>,
    /// Clever's subject enum, e.g. `homeroom/advisory`, `math`, `english/language arts`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub subject: Option<String>,
    /// Student user ids.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub students: Vec<String>,
    /// The primary teacher's user id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub teacher: Option<String>,
    /// All teachers' user ids, primary first.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub teachers: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub term_id: Option<String>,
    /// The course id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub course: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub period: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub section_number: Option<String>,
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
}

/// A term (`/v3.0/terms`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Term {
    pub id: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub district: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub name: Option<String>,
    /// Clever documents a datetime but sends `YYYY-MM-DD` in practice: kept as text.
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

/// A course (`/v3.0/courses`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Course {
    pub id: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub district: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub number: Option<String>,
}

/// A district token entry from `GET /oauth/tokens` (app credentials).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenEntry {
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub id: String,
    #[serde(default, deserialize_with = "wire::null_default")]
    pub owner: TokenOwner,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub access_token: String,
    #[serde(default, deserialize_with = "wire::null_default")]
    pub scopes: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::blank_none"
    )]
    pub created: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenOwner {
    #[serde(default, rename = "type", deserialize_with = "wire::blank_string")]
    pub kind: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub id: String,
}

/// A `links[]` entry of a list response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub rel: String,
    #[serde(default, deserialize_with = "wire::blank_string")]
    pub uri: String,
}

/// The `next` link of a page, if any: a path and query relative to the API base, to follow verbatim.
pub fn next_link(links: &[Link]) -> Option<&str> {
    links
        .iter()
        .find(|l| l.rel == "next" && !l.uri.is_empty())
        .map(|l| l.uri.as_str())
}
