//! One record of the emulator's dataset: its kind, its id, role bits and serialized JSON, built from
//! JSON objects and changed with JSON merge patches.
use serde_json::Value;

use super::store::EmulatorStoreError;
use crate::clever::models::Role;

/// The kinds of object the emulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Districts,
    Schools,
    Sections,
    Users,
    Terms,
    Courses,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Districts,
        Kind::Schools,
        Kind::Sections,
        Kind::Users,
        Kind::Terms,
        Kind::Courses,
    ];

    /// The path segment after `/v3.0/`.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Districts => "districts",
            Kind::Schools => "schools",
            Kind::Sections => "sections",
            Kind::Users => "users",
            Kind::Terms => "terms",
            Kind::Courses => "courses",
        }
    }

    pub fn from_segment(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.segment() == s)
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// One stored object.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: Box<str>,
    /// Bit set of [`Role`]s (users only): bit `i` is `Role::ALL[i]`.
    pub roles: u8,
    /// The object serialized as JSON (what goes in `{"data": ...}`).
    pub json: Box<[u8]>,
}

impl Entry {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles & role_bit(role) != 0
    }
}

pub fn role_bit(role: Role) -> u8 {
    1 << Role::ALL.iter().position(|r| *r == role).unwrap_or(0)
}

/// The object's non-empty string `id`.
pub(super) fn id_of(value: &Value) -> Result<&str, EmulatorStoreError> {
    value
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EmulatorStoreError::Invalid("an object has no string `id`".into()))
}

/// Builds an entry from a JSON object (computing the role bits of users).
pub fn entry_from_value(kind: Kind, value: &Value) -> Result<Entry, EmulatorStoreError> {
    let id = id_of(value)?.into();
    let mut roles = 0;
    if kind == Kind::Users {
        for role in Role::ALL {
            let held = value
                .get("roles")
                .and_then(|r| r.get(role.as_str()))
                .is_some_and(|v| !v.is_null());
            if held {
                roles |= role_bit(role);
            }
        }
    }
    let json = serde_json::to_vec(value).map_err(|e| EmulatorStoreError::Invalid(e.to_string()))?;
    Ok(Entry {
        id,
        roles,
        json: json.into_boxed_slice(),
    })
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(obj) = target {
        for (k, v) in patch {
            if v.is_null() {
                obj.remove(k);
            } else {
                merge_patch(obj.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 5}, "e": "x"}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}, "e": "x"}));
    }
}
