//! Types shared by the three kinds: references, grades, conditions.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to another object in the same namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct LocalObjectReference {
    /// Name of the referenced object, in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A Clever grade value, as Clever spells it (`InfantToddler`, `Preschool`, `PreKindergarten`,
/// `TransitionalKindergarten`, `Kindergarten`, `1` to `13`, `PostGraduate`, `Ungraded`, `Other`).
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum Grade {
    InfantToddler,
    Preschool,
    PreKindergarten,
    TransitionalKindergarten,
    Kindergarten,
    #[serde(rename = "1")]
    G1,
    #[serde(rename = "2")]
    G2,
    #[serde(rename = "3")]
    G3,
    #[serde(rename = "4")]
    G4,
    #[serde(rename = "5")]
    G5,
    #[serde(rename = "6")]
    G6,
    #[serde(rename = "7")]
    G7,
    #[serde(rename = "8")]
    G8,
    #[serde(rename = "9")]
    G9,
    #[serde(rename = "10")]
    G10,
    #[serde(rename = "11")]
    G11,
    #[serde(rename = "12")]
    G12,
    #[serde(rename = "13")]
    G13,
    PostGraduate,
    Ungraded,
    Other,
}

impl Grade {
    /// Every grade, in school order.
    pub const ALL: [Grade; 21] = [
        Grade::InfantToddler,
        Grade::Preschool,
        Grade::PreKindergarten,
        Grade::TransitionalKindergarten,
        Grade::Kindergarten,
        Grade::G1,
        Grade::G2,
        Grade::G3,
        Grade::G4,
        Grade::G5,
        Grade::G6,
        Grade::G7,
        Grade::G8,
        Grade::G9,
        Grade::G10,
        Grade::G11,
        Grade::G12,
        Grade::G13,
        Grade::PostGraduate,
        Grade::Ungraded,
        Grade::Other,
    ];

    /// The recommended early-learning sharing set of the setup guide.
    pub const EARLY: [Grade; 5] = [
        Grade::InfantToddler,
        Grade::Preschool,
        Grade::PreKindergarten,
        Grade::TransitionalKindergarten,
        Grade::Kindergarten,
    ];

    /// The grade as Clever spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::InfantToddler => "InfantToddler",
            Grade::Preschool => "Preschool",
            Grade::PreKindergarten => "PreKindergarten",
            Grade::TransitionalKindergarten => "TransitionalKindergarten",
            Grade::Kindergarten => "Kindergarten",
            Grade::G1 => "1",
            Grade::G2 => "2",
            Grade::G3 => "3",
            Grade::G4 => "4",
            Grade::G5 => "5",
            Grade::G6 => "6",
            Grade::G7 => "7",
            Grade::G8 => "8",
            Grade::G9 => "9",
            Grade::G10 => "10",
            Grade::G11 => "11",
            Grade::G12 => "12",
            Grade::G13 => "13",
            Grade::PostGraduate => "PostGraduate",
            Grade::Ungraded => "Ungraded",
            Grade::Other => "Other",
        }
    }

    /// Parses a Clever grade string; `None` for `""` or an unknown value.
    pub fn parse(s: &str) -> Option<Grade> {
        Grade::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl std::fmt::Display for Grade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Condition types and reasons used across the kinds.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const CREDENTIALS_VALID: &str = "CredentialsValid";
    pub const DISTRICT_VERIFIED: &str = "DistrictVerified";
    pub const SUSPENDED: &str = "Suspended";
    pub const SYNC_NOW_AVAILABLE: &str = "SyncNowAvailable";
}

/// The outcome of a sync run.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum RunResult {
    Running,
    Succeeded,
    Failed,
    Held,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Running => "Running",
            RunResult::Succeeded => "Succeeded",
            RunResult::Failed => "Failed",
            RunResult::Held => "Held",
        }
    }
}

/// What started a sync run.
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, clap::ValueEnum,
)]
pub enum Trigger {
    /// A slot of the schedule, run on time.
    Scheduled,
    /// Sync Now (the `rostersync.io/sync-now` annotation), or a standalone run.
    Manual,
    /// A missed slot run late, within `startingDeadlineMinutes`.
    CatchUp,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "Scheduled",
            Trigger::Manual => "Manual",
            Trigger::CatchUp => "CatchUp",
        }
    }
}

/// Sets `cond` in `conditions`, keeping `lastTransitionTime` when the status did not change
/// (the metav1.Condition convention), and returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut cond: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == cond.type_) {
        Some(existing) => {
            if existing.status == cond.status {
                cond.last_transition_time = existing.last_transition_time.clone();
            }
            let changed = *existing != cond;
            *existing = cond;
            changed
        }
        None => {
            conditions.push(cond);
            true
        }
    }
}

/// Builds a condition stamped now.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        last_transition_time: Time(jiff::Timestamp::now()),
        observed_generation: generation,
    }
}

/// Schema attributes for a list of conditions keyed by type (what server-side apply needs).
pub(crate) fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = <Vec<Condition>>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grade_round_trips_through_clever_spelling() {
        for g in Grade::ALL {
            assert_eq!(Grade::parse(g.as_str()), Some(g));
            let json = serde_json::to_string(&g).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", g.as_str()));
        }
        assert_eq!(Grade::parse(""), None);
        assert_eq!(Grade::parse("14"), None);
    }

    #[test]
    fn set_condition_keeps_transition_time_when_status_is_unchanged() {
        let mut conds = Vec::new();
        let first = condition("Ready", true, "Verified", "ok", Some(1));
        let t0 = first.last_transition_time.clone();
        assert!(set_condition(&mut conds, first));
        let mut again = condition("Ready", true, "Verified", "ok", Some(1));
        again.last_transition_time = Time(jiff::Timestamp::from_second(1).unwrap_or_default());
        assert!(!set_condition(&mut conds, again));
        assert_eq!(conds[0].last_transition_time, t0);
        assert!(set_condition(
            &mut conds,
            condition("Ready", false, "DistrictNotFound", "x", Some(2))
        ));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].status, "False");
    }
}
