//! What a run did to each entity of the roster: the one `Counts` type, written by the sync
//! engine, stored as `sync_runs.counts`, shown by every surface and emailed.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What happened to one entity's records in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntityCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deactivated: u64,
    pub removed: u64,
    pub reactivated: u64,
    pub carried_over: u64,
    pub matched: u64,
}

impl EntityCounts {
    /// Records this run takes out of the active roster (what the removal guard weighs).
    pub fn removals(&self) -> u64 {
        self.deactivated + self.removed
    }

    /// Whether the run writes anything for this entity.
    pub fn changes(&self) -> u64 {
        self.created
            + self.updated
            + self.deactivated
            + self.removed
            + self.reactivated
            + self.carried_over
            + self.matched
    }

    /// Every action with its label, in reading order (what was added first, what left last).
    pub fn actions(&self) -> [(&'static str, u64); 8] {
        [
            ("created", self.created),
            ("updated", self.updated),
            ("unchanged", self.unchanged),
            ("reactivated", self.reactivated),
            ("carried over", self.carried_over),
            ("matched", self.matched),
            ("deactivated", self.deactivated),
            ("removed", self.removed),
        ]
    }

    /// `3 created, 1 updated` (non-zero actions only; empty when all are zero).
    pub fn describe(&self) -> String {
        self.actions()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(label, n)| format!("{n} {label}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Counts per entity, in the shape of `sync_runs.counts` and of `rostersync sync --output json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub schools: EntityCounts,
    pub classrooms: EntityCounts,
    pub educators: EntityCounts,
    pub children: EntityCounts,
    pub enrollments: EntityCounts,
}

impl Counts {
    /// From stored JSON. Lenient: a missing entity or action is zero and anything unexpected is
    /// ignored, so a row written by an older or newer version still reads.
    pub fn from_json(value: &serde_json::Value) -> Counts {
        let mut counts = Counts::default();
        let Some(entities) = value.as_object() else {
            return counts;
        };
        for (entity, c) in counts.entities_mut() {
            let Some(actions) = entities.get(entity).and_then(|a| a.as_object()) else {
                continue;
            };
            let n = |k: &str| {
                actions
                    .get(k)
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
            };
            *c = EntityCounts {
                created: n("created"),
                updated: n("updated"),
                unchanged: n("unchanged"),
                deactivated: n("deactivated"),
                removed: n("removed"),
                reactivated: n("reactivated"),
                carried_over: n("carriedOver"),
                matched: n("matched"),
            };
        }
        counts
    }

    /// As stored.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Entities by their JSON name, in display order.
    pub fn entities(&self) -> [(&'static str, &EntityCounts); 5] {
        [
            ("schools", &self.schools),
            ("classrooms", &self.classrooms),
            ("educators", &self.educators),
            ("children", &self.children),
            ("enrollments", &self.enrollments),
        ]
    }

    fn entities_mut(&mut self) -> [(&'static str, &mut EntityCounts); 5] {
        [
            ("schools", &mut self.schools),
            ("classrooms", &mut self.classrooms),
            ("educators", &mut self.educators),
            ("children", &mut self.children),
            ("enrollments", &mut self.enrollments),
        ]
    }

    /// Records a run takes (or would take) out of the active roster, per entity; entities with
    /// none are left out.
    pub fn removals(&self) -> Vec<(&'static str, u64)> {
        self.entities()
            .into_iter()
            .map(|(e, c)| (e, c.removals()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Whether every count is zero.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }

    /// One line per entity with counts: `("children", "3 created, 1 updated")`.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        self.entities()
            .into_iter()
            .map(|(e, c)| (e, c.describe()))
            .filter(|(_, d)| !d.is_empty())
            .collect()
    }

    /// `children: 3 created, 1 updated; classrooms: 2 unchanged`, or `no changes`.
    pub fn describe(&self) -> String {
        let lines = self.lines();
        if lines.is_empty() {
            return "no changes".into();
        }
        lines
            .iter()
            .map(|(e, d)| format!("{e}: {d}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Problem totals by code.
pub type ProblemCodes = BTreeMap<String, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_non_zero_actions_in_reading_order() {
        let mut c = Counts {
            children: EntityCounts {
                created: 3,
                updated: 1,
                deactivated: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        c.schools.unchanged = 2;
        assert_eq!(
            c.describe(),
            "schools: 2 unchanged; children: 3 created, 1 updated, 2 deactivated"
        );
        assert_eq!(c.removals(), vec![("children", 2)]);
        assert_eq!(Counts::default().describe(), "no changes");
    }

    #[test]
    fn reads_stored_json_leniently_and_round_trips() {
        let c = Counts::from_json(&serde_json::json!({
            "children": {"created": 3, "carriedOver": 1, "bogus": 9, "updated": "x"},
            "aliens": {"created": 1}
        }));
        assert_eq!(c.children.created, 3);
        assert_eq!(c.children.carried_over, 1);
        assert_eq!(c.children.updated, 0);
        assert_eq!(Counts::from_json(&c.to_json()), c);
        assert_eq!(
            Counts::from_json(&serde_json::json!(null)),
            Counts::default()
        );
    }
}
