//! `SyncSchedule`: when a connection syncs, and the Sync Now / approval requests.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LocalObjectReference, RunResult, Trigger, conditions_schema};

/// When a RosterConnection syncs: a daily, weekly or monthly slot at a local time in a time zone,
/// daily runs only inside the off-peak window. Annotate with `rostersync.io/sync-now: <token>` for one
/// immediate sync, and with `rostersync.io/approve-removals: <run id>` to approve a held run.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "rostersync.io",
    version = "v1alpha1",
    kind = "SyncSchedule",
    namespaced,
    status = "SyncScheduleStatus",
    shortname = "ssched",
    category = "rostersync",
    printcolumn = r#"{"name":"Connection","type":"string","jsonPath":".spec.connectionRef.name"}"#,
    printcolumn = r#"{"name":"Frequency","type":"string","jsonPath":".spec.frequency"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last Result","type":"string","jsonPath":".status.lastRun.result"}"#,
    printcolumn = r#"{"name":"Last Sync","type":"date","jsonPath":".status.lastRun.finishedAt"}"#,
    printcolumn = r#"{"name":"Next Sync","type":"string","jsonPath":".status.nextSyncTime"}"#,
    printcolumn = r#"{"name":"Sync Now","type":"string","priority":1,"jsonPath":".status.syncNow.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.frequency != 'Weekly' || has(self.dayOfWeek)",
        "message": "dayOfWeek is required when frequency is Weekly",
        "fieldPath": ".dayOfWeek",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.frequency == 'Weekly' || !has(self.dayOfWeek)",
        "message": "dayOfWeek is only allowed when frequency is Weekly",
        "fieldPath": ".dayOfWeek",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "self.frequency != 'Monthly' || has(self.dayOfMonth)",
        "message": "dayOfMonth is required when frequency is Monthly",
        "fieldPath": ".dayOfMonth",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.frequency == 'Monthly' || !has(self.dayOfMonth)",
        "message": "dayOfMonth is only allowed when frequency is Monthly",
        "fieldPath": ".dayOfMonth",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "self.frequency != 'Daily' || !has(self.offPeakWindow) || (self.offPeakWindow.start < self.offPeakWindow.end ? (self.at >= self.offPeakWindow.start && self.at < self.offPeakWindow.end) : (self.at >= self.offPeakWindow.start || self.at < self.offPeakWindow.end))",
        "message": "daily syncs run only in off-peak hours: at must fall inside offPeakWindow (start inclusive, end exclusive; default 20:00-06:00)",
        "fieldPath": ".at"
    }
]))]
pub struct SyncScheduleSpec {
    /// The RosterConnection (same namespace) this schedule syncs.
    pub connection_ref: LocalObjectReference,

    /// Stop scheduled syncs (for example over the summer). Sync Now still works.
    #[serde(default)]
    pub suspend: bool,

    /// How often to sync: `Daily`, `Weekly` (with `dayOfWeek`) or `Monthly` (with `dayOfMonth`).
    pub frequency: Frequency,

    /// Local time of day of the slot, `HH:MM` (24-hour, 00:00 to 23:59), in `timeZone`.
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub at: String,

    /// Day of the week of a Weekly schedule (required for and only allowed with Weekly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<DayOfWeek>,

    /// Day of the month of a Monthly schedule, 1 to 31 (required for and only allowed with Monthly).
    /// In a month without that day the sync runs on the month's last day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31))]
    pub day_of_month: Option<i32>,

    /// IANA time zone of `at` and `offPeakWindow`, for example `America/Chicago`. DST is handled: a slot
    /// in a spring-forward gap runs right after the gap, a slot in a fall-back repeat runs once.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
    )]
    pub time_zone: String,

    /// Off-peak hours in `timeZone`; daily syncs must be scheduled inside them. May wrap midnight.
    #[serde(default)]
    pub off_peak_window: OffPeakWindow,

    /// A slot missed by more than this many minutes (controller down, connection not ready) is
    /// recorded as missed instead of run late. At least 1.
    #[serde(default = "default_starting_deadline")]
    #[schemars(range(min = 1))]
    pub starting_deadline_minutes: i32,

    /// Stagger this schedule's slots: each slot fires a fixed delay after `at`, between 0 and this
    /// many seconds (0 to 3600), chosen by a stable hash of the schedule's namespace and name, so
    /// that districts that all pick 22:00 do not all start in the same minute. The delay never
    /// moves a slot past the off-peak window's end or past local midnight. Unset: the operator's
    /// default (`--slot-jitter-seconds`, chart value `controller.slotJitterSeconds`); 0: exactly
    /// at `at`. Sync Now is never delayed. `status.nextSyncTime` is the delayed time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub slot_jitter_seconds: Option<i32>,

    /// Settings of the Job that runs each sync.
    #[serde(default)]
    pub job: JobSettings,

    /// How many finished Jobs to keep.
    #[serde(default)]
    pub history: HistoryLimits,
}

fn default_starting_deadline() -> i32 {
    120
}

/// How often a schedule runs.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum DayOfWeek {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl DayOfWeek {
    pub fn to_jiff(self) -> jiff::civil::Weekday {
        use jiff::civil::Weekday as W;
        match self {
            DayOfWeek::Monday => W::Monday,
            DayOfWeek::Tuesday => W::Tuesday,
            DayOfWeek::Wednesday => W::Wednesday,
            DayOfWeek::Thursday => W::Thursday,
            DayOfWeek::Friday => W::Friday,
            DayOfWeek::Saturday => W::Saturday,
            DayOfWeek::Sunday => W::Sunday,
        }
    }
}

/// Off-peak hours, `HH:MM` to `HH:MM` (start inclusive, end exclusive); may wrap midnight.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.start != self.end",
    "message": "offPeakWindow start and end must differ (use e.g. 20:00 to 06:00; the window may wrap midnight)",
    "fieldPath": ".end"
}]))]
pub struct OffPeakWindow {
    /// Start of the window, `HH:MM` (inclusive). Default 20:00.
    #[serde(default = "default_window_start")]
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub start: String,
    /// End of the window, `HH:MM` (exclusive). Default 06:00.
    #[serde(default = "default_window_end")]
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub end: String,
}

impl Default for OffPeakWindow {
    fn default() -> Self {
        OffPeakWindow {
            start: default_window_start(),
            end: default_window_end(),
        }
    }
}

fn default_window_start() -> String {
    "20:00".to_string()
}

fn default_window_end() -> String {
    "06:00".to_string()
}

/// Settings of the Job that runs each sync.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.extraVolumeMounts) || !has(self.extraVolumes) || self.extraVolumeMounts.all(m, self.extraVolumes.exists(v, v.name == m.name))",
    "message": "every extraVolumeMounts[].name must be the name of a volume in extraVolumes",
    "fieldPath": ".extraVolumeMounts",
    "reason": "FieldValueInvalid"
}]))]
pub struct JobSettings {
    /// Retries of a failed sync pod (0 to 6). Failures that a retry cannot fix (bad credentials,
    /// invalid config, a held run) fail the Job at once.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 6))]
    pub backoff_limit: i32,
    /// Longest a sync Job may run, in seconds (at least 60).
    #[serde(default = "default_active_deadline")]
    #[schemars(range(min = 60))]
    pub active_deadline_seconds: i64,
    /// Delete finished Jobs this many seconds after they finish (optional; history limits apply too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// The sync pod's scheduling, labels, env, volumes and resources.
    #[serde(flatten)]
    pub pod: JobPodSettings,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: default_active_deadline(),
            ttl_seconds_after_finished: None,
            pod: JobPodSettings::default(),
        }
    }
}

/// Environment variables the controller sets in every sync container (from the connection's
/// credentials Secret and the database Secret); `extraEnv` cannot set them.
pub const RESERVED_ENV: [&str; 4] = [
    "CLEVER_TOKEN",
    "CLEVER_CLIENT_ID",
    "CLEVER_CLIENT_SECRET",
    "DATABASE_URL",
];
/// Pod label keys `podLabels` cannot set: the controller's (`app.kubernetes.io/managed-by`) and the
/// Job controller's (`job-name`, `controller-uid`), which select the Job's pods.
pub const RESERVED_LABELS: [&str; 3] =
    ["app.kubernetes.io/managed-by", "job-name", "controller-uid"];
/// Pod label key prefixes `podLabels` cannot use: the controller's and the Job controller's.
pub const RESERVED_LABEL_PREFIXES: [&str; 2] = ["rostersync.io/", "batch.kubernetes.io/"];

/// Whether `podLabels` may not set the label `key` (it belongs to the controller or the Job
/// controller).
pub fn is_reserved_label(key: &str) -> bool {
    RESERVED_LABELS.contains(&key) || RESERVED_LABEL_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Whether `extraEnv` may not set the variable `name` (the controller sets it).
pub fn is_reserved_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name)
}

/// What the sync Job's pod gets besides what the controller sets: resources, image pull secrets,
/// scheduling (node selector, tolerations, affinity, priority class), labels and annotations, extra
/// env and extra volumes. A SyncSchedule sets it in `spec.job`; the operator's defaults
/// (`--sync-job-defaults`, chart value `syncJob.defaults`) have the same shape. A field set on the
/// SyncSchedule replaces the default as a whole (an empty list too: `tolerations: []` drops the
/// default tolerations); `podLabels`, `podAnnotations` and `nodeSelector` merge key by key with the
/// SyncSchedule's value winning; empty `resources` or `affinity` count as unset.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobPodSettings {
    /// CPU and memory of the sync container. Unset: the operator default, else requests
    /// `cpu: 100m, memory: 256Mi` and limits `cpu: 1, memory: 1Gi` (so sync pods run in namespaces
    /// with a ResourceQuota and are never BestEffort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Secrets (in the Job's namespace) for pulling the sync image from a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "image_pull_secrets_schema")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Node labels the sync pod must run on (merged key by key with the operator default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "node_selector_schema")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the sync pod (core/v1 Toleration, as in a Pod spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "tolerations_schema")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity of the sync pod: `nodeAffinity`, `podAffinity` and `podAntiAffinity` as in a Pod spec
    /// (`kubectl explain pod.spec.affinity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "affinity_schema")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the sync pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "priority_class_schema")]
    pub priority_class_name: Option<String>,
    /// Extra labels on the sync pod (merged key by key with the operator default). Cannot set
    /// `app.kubernetes.io/managed-by`, `rostersync.io/*`, `job-name`, `controller-uid` or
    /// `batch.kubernetes.io/*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "pod_labels_schema")]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations on the sync pod (merged key by key with the operator default), e.g.
    /// `sidecar.istio.io/inject: "false"` so that a service mesh sidecar does not keep the pod from
    /// completing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "pod_annotations_schema")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Extra environment variables of the sync container (core/v1 EnvVar: `value` or `valueFrom`),
    /// e.g. `HTTPS_PROXY` for egress to Clever. Cannot set CLEVER_TOKEN, CLEVER_CLIENT_ID,
    /// CLEVER_CLIENT_SECRET or DATABASE_URL (the controller sets them from Secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "extra_env_schema")]
    pub extra_env: Option<Vec<EnvVar>>,
    /// Extra volumes of the sync pod (core/v1 Volume, as in a Pod spec: `secret`, `configMap`,
    /// `projected`, `emptyDir`, `csi`, ...), e.g. a CA bundle for `sslmode=verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "extra_volumes_schema")]
    pub extra_volumes: Option<Vec<Volume>>,
    /// Where the sync container mounts volumes of `extraVolumes` (core/v1 VolumeMount; `name` must
    /// be the name of one of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "extra_volume_mounts_schema")]
    pub extra_volume_mounts: Option<Vec<VolumeMount>>,
}

impl JobPodSettings {
    /// The JSON names of the fields, for checking a defaults document for unknown keys.
    pub const FIELDS: [&'static str; 11] = [
        "resources",
        "imagePullSecrets",
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
        "podLabels",
        "podAnnotations",
        "extraEnv",
        "extraVolumes",
        "extraVolumeMounts",
    ];
}

// Schemas of the pod settings. The k8s-openapi schemas are used as they are for the small types
// (EnvVar, VolumeMount, Toleration); Volume and Affinity keep their first level (so a misspelled
// volume source or affinity kind is an unknown field) and leave what is below to the Pod API, so
// that the CRD stays small. Lists and maps have bounds, which the API server needs to estimate the
// cost of the CEL rules.

/// A DNS-1123 label (names of volumes).
const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain (names of Secrets and PriorityClasses).
const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A label value.
const LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

fn object_of(schema: schemars::Schema) -> serde_json::Map<String, serde_json::Value> {
    match schema.to_value() {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn schema_of(value: serde_json::Value) -> schemars::Schema {
    schemars::Schema::try_from(value).unwrap_or_default()
}

/// A bounded list of `item`, with map semantics on `keys` (a duplicate key is rejected) when given.
fn list(item: serde_json::Value, max_items: u32, keys: &[&str]) -> schemars::Schema {
    let mut schema = serde_json::json!({"type": "array", "maxItems": max_items, "items": item});
    if !keys.is_empty() {
        schema["x-kubernetes-list-type"] = "map".into();
        schema["x-kubernetes-list-map-keys"] = keys.into();
    }
    schema_of(schema)
}

/// A bounded map of strings.
fn string_map(
    max_properties: u32,
    value: serde_json::Value,
    rules: serde_json::Value,
) -> schemars::Schema {
    let mut schema = serde_json::json!({
        "type": "object", "maxProperties": max_properties, "additionalProperties": value
    });
    if rules.as_array().is_some_and(|r| !r.is_empty()) {
        schema["x-kubernetes-validations"] = rules;
    }
    schema_of(schema)
}

/// `T`'s schema with every property below the first level left to the Pod API: objects become
/// objects that keep unknown fields, lists of objects lists of such objects.
fn first_level<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) -> serde_json::Value {
    let mut schema = object_of(T::json_schema(generator));
    if let Some(serde_json::Value::Object(props)) = schema.get_mut("properties") {
        for prop in props.values_mut() {
            let open =
                serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
            let description = prop.get("description").cloned();
            let replacement = match prop.get("type").and_then(|t| t.as_str()) {
                Some("object") => Some(open),
                Some("array") if prop["items"]["type"] == "object" => {
                    Some(serde_json::json!({"type": "array", "items": open}))
                }
                _ => None,
            };
            if let Some(mut replacement) = replacement {
                if let Some(d) = description {
                    replacement["description"] = d;
                }
                *prop = replacement;
            }
        }
    }
    serde_json::Value::Object(schema)
}

fn image_pull_secrets_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = object_of(LocalObjectReference::json_schema(generator));
    list(serde_json::Value::Object(item), 16, &["name"])
}

fn node_selector_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_map(
        32,
        serde_json::json!({"type": "string", "maxLength": 63}),
        serde_json::json!([]),
    )
}

fn tolerations_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    list(Toleration::json_schema(generator).to_value(), 32, &[])
}

fn affinity_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schema_of(first_level::<Affinity>(generator))
}

fn priority_class_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schema_of(serde_json::json!({
        "type": "string", "minLength": 1, "maxLength": 253, "pattern": DNS_SUBDOMAIN
    }))
}

fn pod_labels_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut keys: Vec<String> = RESERVED_LABELS
        .iter()
        .map(|k| format!("k != '{k}'"))
        .collect();
    keys.extend(
        RESERVED_LABEL_PREFIXES
            .iter()
            .map(|p| format!("!k.startsWith('{p}')")),
    );
    let allowed = keys.join(" && ");
    string_map(
        64,
        serde_json::json!({"type": "string", "maxLength": 63, "pattern": LABEL_VALUE}),
        serde_json::json!([{
            "rule": format!("self.all(k, {allowed})"),
            "message": "podLabels cannot set app.kubernetes.io/managed-by or rostersync.io/* (the \
                        controller's labels), nor job-name, controller-uid or batch.kubernetes.io/* (the Job \
                        controller's)",
            "reason": "FieldValueForbidden"
        }]),
    )
}

fn pod_annotations_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_map(
        64,
        serde_json::json!({"type": "string"}),
        serde_json::json!([]),
    )
}

fn extra_env_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut item = EnvVar::json_schema(generator).to_value();
    item["properties"]["name"]["maxLength"] = 256.into();
    item["properties"]["name"]["minLength"] = 1.into();
    let reserved: Vec<String> = RESERVED_ENV.iter().map(|n| format!("'{n}'")).collect();
    item["x-kubernetes-validations"] = serde_json::json!([{
        "rule": format!("!(self.name in [{}])", reserved.join(", ")),
        "messageExpression": format!(
            "self.name + ' is set by the controller (from the RosterConnection\\'s credentials Secret \
             or the database Secret) and cannot be set in extraEnv; the reserved names are {}'",
            RESERVED_ENV.join(", ")
        ),
        "fieldPath": ".name",
        "reason": "FieldValueForbidden"
    }]);
    list(item, 64, &["name"])
}

fn extra_volumes_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut item = first_level::<Volume>(generator);
    item["properties"]["name"]["maxLength"] = 63.into();
    item["properties"]["name"]["pattern"] = DNS_LABEL.into();
    list(item, 32, &["name"])
}

fn extra_volume_mounts_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut item = VolumeMount::json_schema(generator).to_value();
    item["properties"]["name"]["maxLength"] = 63.into();
    item["properties"]["mountPath"]["minLength"] = 1.into();
    item["properties"]["mountPath"]["maxLength"] = 4096.into();
    list(item, 32, &["mountPath"])
}

fn default_backoff_limit() -> i32 {
    1
}

fn default_active_deadline() -> i64 {
    7200
}

/// How many finished Jobs to keep.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryLimits {
    /// Successful Jobs to keep (0 to 20).
    #[serde(default = "default_successful_limit")]
    #[schemars(range(min = 0, max = 20))]
    pub successful_jobs_history_limit: i32,
    /// Failed Jobs to keep (0 to 20).
    #[serde(default = "default_failed_limit")]
    #[schemars(range(min = 0, max = 20))]
    pub failed_jobs_history_limit: i32,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            successful_jobs_history_limit: default_successful_limit(),
            failed_jobs_history_limit: default_failed_limit(),
        }
    }
}

fn default_successful_limit() -> i32 {
    3
}

fn default_failed_limit() -> i32 {
    5
}

/// Observed state of a SyncSchedule.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncScheduleStatus {
    /// `Ready`, `Suspended` and `SyncNowAvailable`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The next scheduled slot (absent while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_time: Option<Time>,
    /// How far the next slot lies after its nominal time (the schedule's jitter), e.g. `+2m37s`
    /// (absent without jitter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_jitter: Option<String>,
    /// This schedule's jitter in seconds: each slot fires this long after its nominal time (cut
    /// short at the off-peak window's end or local midnight). Absent without jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_jitter_seconds: Option<i64>,
    /// A scheduled run that is due but waits for a free sync slot: the operator runs at most
    /// `--max-concurrent-syncs` sync Jobs at once in the cluster. It starts in order (oldest due
    /// first) when one finishes, and it is the scheduled run for Sync Now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_run: Option<QueuedRun>,
    /// The latest scheduled slot that was handled (run or recorded as missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the latest successful run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// When the latest failed or held run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// Failed runs since the last success.
    #[serde(default)]
    pub consecutive_failures: i32,
    /// Slots recorded as missed since the schedule was created.
    #[serde(default)]
    pub missed_slots: i64,
    /// Names of the sync Jobs currently running.
    #[serde(default)]
    pub active: Vec<String>,
    /// The latest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunStatus>,
    /// Whether Sync Now is available, why not, and from when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_now: Option<SyncNowStatus>,
    /// The last approval (`rostersync.io/approve-removals`) that was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_approval: Option<String>,
    /// The most recent runs, newest first (at most 5).
    #[serde(default)]
    #[schemars(length(max = 5))]
    pub recent_runs: Vec<RunStatus>,
    /// The generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A scheduled run waiting for a free sync slot (`--max-concurrent-syncs`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueuedRun {
    /// The slot it runs (with jitter).
    pub slot: Time,
    /// `Scheduled` or `CatchUp`, as when it became due.
    pub trigger: Trigger,
    /// When it started waiting.
    pub since: Time,
}

/// One sync run as seen by the schedule.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// The Job that ran it.
    pub job: String,
    /// The run's id (also in `rostersync history`).
    pub run_id: String,
    /// `Scheduled`, `Manual` or `CatchUp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// `Running`, `Succeeded`, `Failed` or `Held`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// A one-line summary of the counts or the failure reason (no personal data).
    #[serde(default)]
    pub summary: String,
}

/// Sync Now availability (the setup guide's rule: one manual sync per scheduled run, again after a
/// failure).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncNowStatus {
    /// Whether a Sync Now request would start a run now.
    pub available: bool,
    /// `Available`, `RunActive`, `UsedSinceLastScheduledRun`, `ConnectionNotReady`, ...
    pub reason: String,
    /// When Sync Now becomes available again, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_after: Option<Time>,
    /// The last `rostersync.io/sync-now` token handled (accepted or rejected); it never fires again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_token: Option<String>,
}
