//! `RosterConnection`: one district's connection to Clever and its sync settings.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Grade, LocalObjectReference, RunResult, conditions_schema};

/// A district's roster connection: where its Clever data comes from (district id, credentials, what
/// is shared) and how a sync may change the roster (removal, emails, carry-over, classroom names).
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "rostersync.io",
    version = "v1alpha1",
    kind = "RosterConnection",
    namespaced,
    status = "RosterConnectionStatus",
    shortname = "rconn",
    category = "rostersync",
    printcolumn = r#"{"name":"District","type":"string","jsonPath":".status.district.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Last Sync","type":"date","jsonPath":".status.lastSync.finishedAt"}"#,
    printcolumn = r#"{"name":"Result","type":"string","jsonPath":".status.lastSync.result"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RosterConnectionSpec {
    /// The rostering provider. Only `Clever` is supported.
    #[serde(default)]
    pub provider: Provider,

    /// The Clever district id (24 lowercase hex characters), as shown in the district's Clever
    /// dashboard and in its instant login link.
    #[schemars(regex(pattern = r"^[0-9a-f]{24}$"))]
    pub district_id: String,

    /// Base URL of the Clever API. Must be https; plain http is accepted only for a loopback host
    /// (127.0.0.1, localhost or [::1]), for tests and local emulators. Its host (and, with app
    /// credentials, the oauth tokens host derived from it) must be one the operator allows
    /// (`--allowed-api-host`, default api.clever.com and clever.com); otherwise the connection is
    /// not Ready (`ApiHostNotAllowed`) and no request is sent.
    #[serde(default = "default_api_base_url")]
    #[schemars(length(max = 2048), extend("x-kubernetes-validations" = [{
        "rule": "self.startsWith('https://') || self.matches('^http://(127\\\\.0\\\\.0\\\\.1|localhost|\\\\[::1\\\\])(:[0-9]+)?(/.*)?$')",
        "message": "apiBaseUrl must use https; plain http is allowed only to 127.0.0.1, localhost or [::1]"
    }]))]
    pub api_base_url: String,

    /// The Secret (same namespace) holding the credentials: either key `token` (a Clever district
    /// token), or keys `client_id` and `client_secret` (app credentials; the district token is then
    /// looked up through Clever's oauth tokens endpoint).
    pub credentials_secret_ref: LocalObjectReference,

    /// What the district shares: which sections (by grade) and whether demographics are included.
    #[serde(default)]
    pub sharing: Sharing,

    /// How a sync may change the roster.
    #[serde(default)]
    pub settings: SyncSettings,

    /// The JourneyPolicy (same namespace) that assigns an educational journey and a starting level to
    /// new children. Without it, new children get no journey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey_policy_ref: Option<LocalObjectReference>,

    /// What happens to the district's roster in the database when this object is deleted:
    /// `Retain` (default) keeps every row; `Delete` removes its children, enrollments,
    /// classrooms, educators and schools (offboarding). Either way its database role is removed,
    /// and its sync history is kept until the operator's history retention prunes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to a district's roster rows when its RosterConnection is deleted.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the roster rows.
    #[default]
    Retain,
    /// Delete the roster rows (the run history is kept for the retention period).
    Delete,
}

/// The rostering provider.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Provider {
    #[default]
    Clever,
}

pub fn default_api_base_url() -> String {
    "https://api.clever.com".to_string()
}

/// What the district shares with the product.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sharing {
    /// Sections whose grade is in this list are synced (their students, teachers and schools with
    /// them). Clever grade values; at least one, no duplicates. Defaults to the recommended early
    /// grades: InfantToddler, Preschool, PreKindergarten, TransitionalKindergarten, Kindergarten.
    #[serde(default = "default_grades")]
    #[schemars(length(min = 1, max = 21), extend("x-kubernetes-list-type" = "set"))]
    pub grades: Vec<Grade>,

    /// Whether demographic fields (birth date, gender, ethnicity, language, ...) are stored. When
    /// false, none is stored and previously stored ones are cleared at the next sync.
    #[serde(default = "default_true")]
    pub include_demographics: bool,
}

impl Default for Sharing {
    fn default() -> Self {
        Sharing {
            grades: default_grades(),
            include_demographics: true,
        }
    }
}

fn default_grades() -> Vec<Grade> {
    Grade::EARLY.to_vec()
}

pub(crate) fn default_true() -> bool {
    true
}

/// How a sync may change the roster: the setup guide's settings.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!self.sendEmails || size(self.emailRecipients) > 0",
    "message": "emailRecipients must list at least one address when sendEmails is true",
    "fieldPath": ".emailRecipients"
}]))]
pub struct SyncSettings {
    /// Allow a sync to remove data to match the roster. When false, records that left the roster are
    /// kept and only counted.
    #[serde(default)]
    pub allow_removal: bool,

    /// How removals happen: `Deactivate` (keep the record, inactive) or `Delete`. Children with
    /// progress are always deactivated, never deleted.
    #[serde(default)]
    pub removal_mode: RemovalMode,

    /// The removal guard: a run that would remove more than this percentage of the active records of
    /// any entity (schools, classrooms, educators, children, enrollments) is held, not applied, until
    /// approved with the `rostersync.io/approve-removals` annotation. 0 to 100.
    #[serde(default = "default_guard_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub removal_guard_percent: i32,

    /// Send emails about sync events (failures, held runs, recovery, credential problems, missed
    /// schedules) to `emailRecipients`.
    #[serde(default)]
    pub send_emails: bool,

    /// Also email on every successful sync (only with `sendEmails`).
    #[serde(default)]
    pub send_success_emails: bool,

    /// Who gets the emails. Required (non-empty) when `sendEmails` is true.
    #[serde(default)]
    #[schemars(length(max = 50), inner(regex(pattern = r"^[^@\s]+@[^@\s]+\.[^@\s]+$")), extend("x-kubernetes-list-type" = "set"))]
    pub email_recipients: Vec<String>,

    /// Match new children to last year's archived children (by Clever id, then SIS id, then exact name
    /// and birth date) and restore them with their journey and progress.
    #[serde(default)]
    pub auto_carryover: bool,

    /// Let classroom names edited in the product override the roster's names (the roster name is
    /// still recorded). When false, the display name follows the roster.
    #[serde(default)]
    pub allow_classroom_name_overrides: bool,

    /// Roll the school year over automatically, once a year: the first sync on or after this date
    /// (`MM-DD`, e.g. `07-01`) first archives the ending school year's children (as `rostersync
    /// rollover` does), so that `autoCarryover` matches returning children. Unset: only by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
    )]
    pub rollover_date: Option<String>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            allow_removal: false,
            removal_mode: RemovalMode::Deactivate,
            removal_guard_percent: default_guard_percent(),
            send_emails: false,
            send_success_emails: false,
            email_recipients: Vec::new(),
            auto_carryover: false,
            allow_classroom_name_overrides: false,
            rollover_date: None,
        }
    }
}

fn default_guard_percent() -> i32 {
    10
}

/// How records that left the roster are removed.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum RemovalMode {
    /// Keep the record, marked inactive (reversible).
    #[default]
    Deactivate,
    /// Delete the record (children with progress are deactivated instead).
    Delete,
}

/// Observed state of a RosterConnection.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RosterConnectionStatus {
    /// `Ready`, `CredentialsValid` and `DistrictVerified`, with reasons such as `SecretNotFound`,
    /// `SecretKeyMissing`, `CredentialsInvalid`, `DistrictNotFound`, `CleverUnavailable`,
    /// `CleverError`, `Verified`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,

    /// The district as Clever reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<DistrictStatus>,

    /// When the connection was last verified against Clever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,

    /// The latest finished sync run of this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<LastSync>,

    /// The generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The district as Clever reports it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DistrictStatus {
    /// The district's name.
    #[serde(default)]
    pub name: String,
    /// Clever's sync state for the district (`running`, `pending`, `error`, `paused`, `success`).
    #[serde(default)]
    pub state: String,
    /// When Clever last synced the district from its SIS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,
}

/// The latest finished sync run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastSync {
    /// The run's id (also in `rostersync history`).
    pub run_id: String,
    /// `Succeeded`, `Failed` or `Held`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// A one-line summary of the counts (no personal data).
    #[serde(default)]
    pub summary: String,
}

/// The Clever district id in `input`: the id itself (24 lowercase hex characters), or a whole
/// instant login link as the district admin copies it from Clever, whose `district_id=` parameter
/// holds the id (e.g. `https://clever.com/oauth/authorize?...&district_id=<id>`). Surrounding
/// whitespace is ignored; upper-case hex is lowered.
pub fn district_id_from(input: &str) -> Result<String, String> {
    let is_id = |s: &str| s.len() == 24 && s.chars().all(|c| c.is_ascii_hexdigit());
    let input = input.trim();
    if is_id(input) {
        return Ok(input.to_ascii_lowercase());
    }
    let query = input
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(q));
    let found = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == "district_id" || k == "district").then_some(v)
        });
    match found {
        Some(id) if is_id(id) => Ok(id.to_ascii_lowercase()),
        Some(id) => Err(format!(
            "the link's district_id {id:?} is not a Clever district id (24 hex characters)"
        )),
        None => Err(format!(
            "{input:?} is neither a Clever district id (24 hex characters) nor an instant login link \
             with a district_id= parameter"
        )),
    }
}

#[cfg(test)]
mod district_id_tests {
    use super::district_id_from;

    #[test]
    fn ids_and_whole_instant_login_links_give_the_id() {
        let id = "5f0c1a2b3c4d5e6f70819a2b";
        assert_eq!(district_id_from(id).as_deref(), Ok(id));
        assert_eq!(
            district_id_from(&format!("  {}  ", id.to_uppercase())).as_deref(),
            Ok(id)
        );
        let link = format!(
            "https://clever.com/oauth/authorize?channel=clever&client_id=abc&confirmed=true&district_id={id}&redirect_uri=https%3A%2F%2Fapp.example%2Fclever&response_type=code"
        );
        assert_eq!(district_id_from(&link).as_deref(), Ok(id));
        assert_eq!(
            district_id_from(&format!("https://clever.com/in/app?district_id={id}#x")).as_deref(),
            Ok(id)
        );
        let err = district_id_from("https://clever.com/oauth/authorize?client_id=abc").unwrap_err();
        assert!(err.contains("district_id="), "{err}");
        assert!(district_id_from("https://clever.com/x?district_id=123").is_err());
        assert!(district_id_from("").is_err());
    }
}
