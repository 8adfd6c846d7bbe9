//! The emulator's dataset: each collection is a Vec sorted by id, each record kept as its
//! serialized JSON so pages are served by copying bytes (fast, and ~0.7 KB per student). One
//! record is a [`super::record::Entry`].
use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::record::{Entry, Kind, entry_from_value, id_of, merge_patch};
use crate::clever::models::{District, Role};

/// A change to the emulator's dataset that cannot be made (the roster database's errors are
/// [`crate::store::StoreError`]).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorStoreError {
    #[error("no {kind:?} with id {id}")]
    NotFound { kind: Kind, id: String },
    #[error("invalid object: {0}")]
    Invalid(String),
}

impl EmulatorStoreError {
    fn not_found(kind: Kind, id: &str) -> EmulatorStoreError {
        EmulatorStoreError::NotFound {
            kind,
            id: id.to_owned(),
        }
    }
}

/// A district's whole dataset.
#[derive(Clone, Debug, Default)]
pub struct Store {
    collections: [Vec<Entry>; 6],
    district_id: String,
}

impl Store {
    /// A store holding `district` and nothing else.
    pub fn new(district: &District) -> Result<Store, EmulatorStoreError> {
        let mut store = Store {
            district_id: district.id.clone(),
            ..Store::default()
        };
        store.put(Kind::Districts, district)?;
        Ok(store)
    }

    /// Builds a store from raw JSON objects (already sorted or not).
    pub fn from_values(
        district: Value,
        rest: Vec<(Kind, Vec<Value>)>,
    ) -> Result<Store, EmulatorStoreError> {
        let district_id = id_of(&district)?.to_owned();
        let mut store = Store {
            district_id,
            ..Store::default()
        };
        store.collections[Kind::Districts.index()] =
            vec![entry_from_value(Kind::Districts, &district)?];
        for (kind, values) in rest {
            let mut entries = values
                .iter()
                .map(|v| entry_from_value(kind, v))
                .collect::<Result<Vec<_>, _>>()?;
            entries.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            entries.dedup_by(|a, b| a.id == b.id);
            store.collections[kind.index()] = entries;
        }
        Ok(store)
    }

    /// Replaces a whole collection with pre-built entries (sorted here).
    pub(super) fn set_entries(&mut self, kind: Kind, mut entries: Vec<Entry>) {
        entries.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        self.collections[kind.index()] = entries;
    }

    pub fn district_id(&self) -> &str {
        &self.district_id
    }

    /// All entries of a kind, ascending by id.
    pub fn entries(&self, kind: Kind) -> &[Entry] {
        &self.collections[kind.index()]
    }

    pub fn len(&self, kind: Kind) -> usize {
        self.entries(kind).len()
    }

    pub fn is_empty(&self, kind: Kind) -> bool {
        self.entries(kind).is_empty()
    }

    pub fn entry(&self, kind: Kind, id: &str) -> Option<&Entry> {
        let list = self.entries(kind);
        list.binary_search_by(|e| (*e.id).cmp(id))
            .ok()
            .map(|i| &list[i])
    }

    /// The object as a typed model (`None` if absent or not decodable as `T`).
    pub fn get<T: DeserializeOwned>(&self, kind: Kind, id: &str) -> Option<T> {
        self.entry(kind, id)
            .and_then(|e| serde_json::from_slice(&e.json).ok())
    }

    pub fn get_value(&self, kind: Kind, id: &str) -> Option<Value> {
        self.get(kind, id)
    }

    /// Every object of a kind, decoded (records that don't decode as `T` are skipped).
    pub fn all<T: DeserializeOwned>(&self, kind: Kind) -> Vec<T> {
        self.entries(kind)
            .iter()
            .filter_map(|e| serde_json::from_slice(&e.json).ok())
            .collect()
    }

    /// Users holding `role`, ascending by id, decoded.
    pub fn users_with_role<T: DeserializeOwned>(&self, role: Role) -> Vec<T> {
        let list = self
            .entries(Kind::Users)
            .iter()
            .filter(|e| e.has_role(role));
        list.filter_map(|e| serde_json::from_slice(&e.json).ok())
            .collect()
    }

    pub fn district(&self) -> Option<District> {
        self.get(Kind::Districts, &self.district_id.clone())
    }

    /// Inserts or replaces an object (found by its `id`).
    pub fn put<T: Serialize>(
        &mut self,
        kind: Kind,
        object: &T,
    ) -> Result<String, EmulatorStoreError> {
        let value =
            serde_json::to_value(object).map_err(|e| EmulatorStoreError::Invalid(e.to_string()))?;
        self.put_value(kind, value)
    }

    /// Inserts or replaces a raw JSON object. A missing `id` is generated; a missing `district` is
    /// set to this district.
    pub fn put_value(
        &mut self,
        kind: Kind,
        mut value: Value,
    ) -> Result<String, EmulatorStoreError> {
        let obj = value
            .as_object_mut()
            .ok_or_else(|| EmulatorStoreError::Invalid("expected a JSON object".into()))?;
        let id = match obj.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                let id = self.fresh_id(kind);
                obj.insert("id".into(), Value::String(id.clone()));
                id
            }
        };
        if kind != Kind::Districts && !obj.contains_key("district") {
            obj.insert("district".into(), Value::String(self.district_id.clone()));
        }
        let entry = entry_from_value(kind, &value)?;
        let list = &mut self.collections[kind.index()];
        match list.binary_search_by(|e| (*e.id).cmp(&id)) {
            Ok(i) => list[i] = entry,
            Err(i) => list.insert(i, entry),
        }
        Ok(id)
    }

    /// Applies a JSON merge patch (RFC 7396) to an object and bumps its `last_modified`.
    pub fn patch(
        &mut self,
        kind: Kind,
        id: &str,
        patch: &Value,
    ) -> Result<Value, EmulatorStoreError> {
        let mut value = self
            .get_value(kind, id)
            .ok_or_else(|| EmulatorStoreError::not_found(kind, id))?;
        merge_patch(&mut value, patch);
        if let Some(obj) = value.as_object_mut() {
            obj.insert("id".into(), Value::String(id.to_owned()));
            if kind != Kind::Districts && obj.contains_key("last_modified") {
                obj.insert(
                    "last_modified".into(),
                    Value::String(jiff::Timestamp::now().to_string()),
                );
            }
        }
        self.put_value(kind, value.clone())?;
        Ok(value)
    }

    /// Removes an object; removing a user also takes it out of every section.
    pub fn remove(&mut self, kind: Kind, id: &str) -> Result<(), EmulatorStoreError> {
        let list = &mut self.collections[kind.index()];
        let i = list
            .binary_search_by(|e| (*e.id).cmp(id))
            .map_err(|_| EmulatorStoreError::not_found(kind, id))?;
        list.remove(i);
        if kind == Kind::Users {
            let affected: Vec<String> = self
                .all::<Value>(Kind::Sections)
                .into_iter()
                .filter(|s| section_lists(s).any(|m| m == id))
                .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect();
            for section in affected {
                self.edit_section_members(&section, |students, teachers| {
                    students.retain(|s| s != id);
                    teachers.retain(|t| t != id);
                })?;
            }
        }
        Ok(())
    }

    /// Adds a student to a section's `students[]` (no-op when already there).
    pub fn add_to_section(
        &mut self,
        section_id: &str,
        student_id: &str,
    ) -> Result<(), EmulatorStoreError> {
        if self.entry(Kind::Users, student_id).is_none() {
            return Err(EmulatorStoreError::not_found(Kind::Users, student_id));
        }
        self.edit_section_members(section_id, |students, _| {
            if !students.iter().any(|s| s == student_id) {
                students.push(student_id.to_owned());
            }
        })
    }

    pub fn remove_from_section(
        &mut self,
        section_id: &str,
        student_id: &str,
    ) -> Result<(), EmulatorStoreError> {
        self.edit_section_members(section_id, |students, _| {
            students.retain(|s| s != student_id)
        })
    }

    /// Moves a child from one section to another.
    pub fn move_student(
        &mut self,
        student_id: &str,
        from: &str,
        to: &str,
    ) -> Result<(), EmulatorStoreError> {
        if self.entry(Kind::Sections, to).is_none() {
            return Err(EmulatorStoreError::not_found(Kind::Sections, to));
        }
        self.remove_from_section(from, student_id)?;
        self.add_to_section(to, student_id)
    }

    fn edit_section_members(
        &mut self,
        section_id: &str,
        edit: impl FnOnce(&mut Vec<String>, &mut Vec<String>),
    ) -> Result<(), EmulatorStoreError> {
        let mut value = self
            .get_value(Kind::Sections, section_id)
            .ok_or_else(|| EmulatorStoreError::not_found(Kind::Sections, section_id))?;
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut students = strings(value.get("students"));
        let mut teachers = strings(value.get("teachers"));
        edit(&mut students, &mut teachers);
        let primary_gone = value
            .get("teacher")
            .and_then(Value::as_str)
            .is_some_and(|t| !teachers.iter().any(|x| x == t));
        if let Some(obj) = value.as_object_mut() {
            if primary_gone {
                obj.insert(
                    "teacher".into(),
                    teachers
                        .first()
                        .map_or(Value::Null, |t| Value::String(t.clone())),
                );
            }
            obj.insert("students".into(), Value::from(students));
            obj.insert("teachers".into(), Value::from(teachers));
            obj.insert(
                "last_modified".into(),
                Value::String(jiff::Timestamp::now().to_string()),
            );
        }
        self.put_value(Kind::Sections, value).map(|_| ())
    }

    /// A new id, unique in this store, shaped like Clever's (24 lowercase hex).
    fn fresh_id(&self, kind: Kind) -> String {
        let used: BTreeSet<&str> = self.entries(kind).iter().map(|e| &*e.id).collect();
        let nanos = jiff::Timestamp::now().as_nanosecond() as u128;
        (0u128..)
            .map(|n| {
                format!(
                    "{:024x}",
                    (nanos.wrapping_mul(2_654_435_761).wrapping_add(n)) & ((1 << 96) - 1)
                )
            })
            .find(|id| !used.contains(id.as_str()))
            .unwrap_or_default()
    }
}

fn section_lists(section: &Value) -> impl Iterator<Item = &str> {
    ["students", "teachers"]
        .into_iter()
        .filter_map(|k| section.get(k).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn store_keeps_ids_sorted_and_removing_a_user_updates_sections() {
        let d = District {
            id: "d".into(),
            name: "D".into(),
            ..Default::default()
        };
        let mut s = Store::new(&d).unwrap();
        for id in ["c", "a", "b"] {
            s.put_value(Kind::Users, json!({"id": id, "roles": {"student": {}}}))
                .unwrap();
        }
        s.put_value(
            Kind::Sections,
            json!({"id": "s1", "students": ["a", "b"], "teachers": []}),
        )
        .unwrap();
        let ids: Vec<&str> = s.entries(Kind::Users).iter().map(|e| &*e.id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(s.entry(Kind::Users, "b").unwrap().has_role(Role::Student));
        assert!(!s.entry(Kind::Users, "b").unwrap().has_role(Role::Teacher));
        s.remove(Kind::Users, "a").unwrap();
        let sec: Value = s.get(Kind::Sections, "s1").unwrap();
        assert_eq!(sec["students"], json!(["b"]));
        s.move_student("b", "s1", "s1").unwrap();
        assert!(s.remove(Kind::Users, "zz").is_err());
    }
}
