//! `JourneyPolicy`: what new children get (educational journey and starting level).
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Grade, conditions_schema};
use super::connection::default_true;

/// The educational journey and grade placement given to every new child of the connections that
/// reference this policy. Existing children keep theirs.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "rostersync.io",
    version = "v1alpha1",
    kind = "JourneyPolicy",
    namespaced,
    status = "JourneyPolicyStatus",
    shortname = "jpolicy",
    category = "rostersync",
    printcolumn = r#"{"name":"Journey","type":"string","jsonPath":".spec.newChildJourney"}"#,
    printcolumn = r#"{"name":"Products","type":"string","jsonPath":".spec.licensedProducts"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.newChildJourney in self.licensedProducts",
    "message": "newChildJourney must be one of licensedProducts: you can only assign products you hold licenses for",
    "fieldPath": ".newChildJourney"
}]))]
pub struct JourneyPolicySpec {
    /// The products the organization holds licenses for (at least one, unique).
    #[schemars(length(min = 1, max = 50), inner(length(min = 1, max = 100)), extend("x-kubernetes-list-type" = "set"))]
    pub licensed_products: Vec<String>,

    /// The journey every new child gets; must be one of `licensedProducts`. Change a child's journey
    /// later in the product (per child or in bulk); a sync never changes an existing child's journey.
    #[schemars(length(min = 1, max = 100))]
    pub new_child_journey: String,

    /// How a new child's grade and starting level are chosen.
    #[serde(default)]
    pub grade_placement: GradePlacement,
}

/// How a new child's grade and starting level are chosen: grade from the roster (student, then
/// section), else from the birth date when demographics are shared; the level from `levels`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GradePlacement {
    /// Derive the grade from the birth date (with `birthdateCutoff`) when the roster gives none.
    #[serde(default = "default_true")]
    pub use_demographics: bool,
    /// School-year cutoff `MM-DD`: a child born on or after it in a year starts school a year later.
    #[serde(default = "default_cutoff")]
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
    )]
    pub birthdate_cutoff: String,
    /// Starting level per grade; a grade appears at most once. Grades not listed start at no level.
    #[serde(default = "default_levels")]
    #[schemars(length(max = 21), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["grade"]))]
    pub levels: Vec<GradeLevel>,
}

impl Default for GradePlacement {
    fn default() -> Self {
        GradePlacement {
            use_demographics: true,
            birthdate_cutoff: default_cutoff(),
            levels: default_levels(),
        }
    }
}

fn default_cutoff() -> String {
    "09-01".to_string()
}

fn default_levels() -> Vec<GradeLevel> {
    [
        (Grade::InfantToddler, 1),
        (Grade::Preschool, 1),
        (Grade::PreKindergarten, 3),
        (Grade::TransitionalKindergarten, 3),
        (Grade::Other, 3),
        (Grade::Kindergarten, 4),
        (Grade::G1, 6),
    ]
    .into_iter()
    .map(|(grade, starting_level)| GradeLevel {
        grade,
        starting_level,
    })
    .collect()
}

/// The starting level of new children in one grade.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GradeLevel {
    /// A Clever grade value.
    pub grade: Grade,
    /// The skill level a new child of this grade starts at (1 or more).
    #[schemars(range(min = 1))]
    pub starting_level: i32,
}

impl GradePlacement {
    /// The starting level configured for `grade`.
    pub fn level_for(&self, grade: Grade) -> Option<i32> {
        self.levels
            .iter()
            .find(|l| l.grade == grade)
            .map(|l| l.starting_level)
    }
}

/// Observed state of a JourneyPolicy.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JourneyPolicyStatus {
    /// `Ready`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
