//! The sync Job: its deterministic name, run id, labels and spec, and the pod settings it gets (a
//! SyncSchedule's `spec.job` over the operator's defaults, [`merge_pod_settings`], checked by
//! [`template_problems`]). Pure (no client), so every field is asserted in unit tests.
//!
//! Names are derived from what triggered the run (a slot, a Sync Now token, an approval), never
//! from the clock or a random value, so one slot or one token can never produce two runs, even
//! across controller restarts or with two controllers.
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, KeyToPath,
    LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    SeccompProfile, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::api::{
    JobPodSettings, RosterConnection, SyncSchedule, Trigger, is_reserved_env, is_reserved_label,
};

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "rostersync";
pub const CONNECTION_LABEL: &str = "rostersync.io/connection";
pub const SCHEDULE_LABEL: &str = "rostersync.io/schedule";
pub const TRIGGER_LABEL: &str = "rostersync.io/trigger";
pub const RUN_ID_LABEL: &str = "rostersync.io/run-id";
/// Set on a finished Job once its outcome is in the schedule's status and an Event.
pub const REPORTED_ANNOTATION: &str = "rostersync.io/reported";
/// The sync container's name (also named by the podFailurePolicy).
pub const CONTAINER: &str = "sync";
/// Exit codes of `rostersync sync` that a retry cannot fix: 2 (not retriable), 3 (held).
pub const NOT_RETRIABLE_EXIT_CODES: [i32; 2] = [2, 3];

/// Longest Job name: the Job controller labels pods with it (63 at most), and the run id
/// (`<job>-<8 hex>`) must fit a label value too.
const MAX_JOB_NAME: usize = 54;

/// Why a run starts; decides the Job's name and the `--trigger`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunRequest {
    /// A slot of the schedule (on time or caught up).
    Slot {
        slot: jiff::Timestamp,
        trigger: Trigger,
    },
    /// A `rostersync.io/sync-now` token.
    SyncNow { token: String },
    /// A `rostersync.io/approve-removals` approval of a held run (its run id).
    Approval { held_run_id: String },
}

impl RunRequest {
    pub fn trigger(&self) -> Trigger {
        match self {
            RunRequest::Slot { trigger, .. } => *trigger,
            RunRequest::SyncNow { .. } | RunRequest::Approval { .. } => Trigger::Manual,
        }
    }

    fn suffix(&self) -> String {
        match self {
            RunRequest::Slot { slot, .. } => format!("{}", slot.as_second().div_euclid(60)),
            RunRequest::SyncNow { token } => format!("now-{}", short_hash(token)),
            RunRequest::Approval { held_run_id } => format!("approve-{}", short_hash(held_run_id)),
        }
    }
}

/// 8 hex characters of a stable hash (FNV-1a, [`super::names::fnv1a64`]).
pub fn short_hash(data: &str) -> String {
    format!("{:08x}", super::names::fnv1a64(data) & 0xffff_ffff)
}

/// The prefix of every Job name of a schedule: its name, truncated (with a hash of the full name
/// so that two long names stay distinct) to leave room for the longest suffix.
pub fn job_prefix(schedule: &str) -> String {
    const LONGEST_SUFFIX: usize = "approve-".len() + 8;
    let room = MAX_JOB_NAME - LONGEST_SUFFIX - 1;
    if schedule.len() <= room {
        return schedule.to_string();
    }
    let keep = room - 9;
    let head: String = schedule.chars().take(keep).collect();
    format!(
        "{}-{}",
        head.trim_end_matches(['-', '.']),
        short_hash(schedule)
    )
}

/// The Job name of a run of `schedule`.
pub fn job_name(schedule: &str, request: &RunRequest) -> String {
    format!("{}-{}", job_prefix(schedule), request.suffix())
}

/// Whether `job` (a Job of `schedule`) was started by a Sync Now token.
pub fn is_sync_now_job(schedule: &str, job: &str) -> bool {
    job.starts_with(&format!("{}-now-", job_prefix(schedule)))
}

/// The run id: the Job name (its first 46 characters) plus 16 hex characters (64 bits) of a hash
/// of the namespace, the schedule's uid and the whole Job name, so unique across namespaces,
/// connections and a schedule deleted and created again with the same name, and at most 63
/// characters (it is also a label value). The store checks it with its connection anyway.
pub fn run_id(job_name: &str, schedule_uid: &str, namespace: &str) -> String {
    use super::names::{MAX_LABEL_VALUE, hash16};
    const ROOM: usize = MAX_LABEL_VALUE - 16 - 1;
    let hash = hash16(&format!("{namespace}/{schedule_uid}/{job_name}"));
    let head: String = job_name.chars().take(ROOM).collect();
    let head = head.trim_end_matches(['-', '.']);
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// Operator settings that go into every Job.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// The rostersync image.
    pub image: String,
    /// The executable in the image.
    pub command: String,
    /// The sync Jobs' ServiceAccount (in the Job's namespace).
    pub service_account: String,
    /// Shared tenancy: the Secret (in the Job's namespace) and key holding the database URL.
    pub database_secret: String,
    pub database_secret_key: String,
    /// Dedicated tenancy: each connection's own Secret instead (see [`super::tenancy`]).
    pub tenancy: crate::store::tenancy::Tenancy,
    /// The operator's defaults of the pod settings (`--sync-job-defaults`); a SyncSchedule's
    /// `spec.job` overrides them (see [`merge_pod_settings`]).
    pub defaults: JobPodSettings,
    /// The hosts Clever credentials may go to (`--allowed-api-host`): the controller checks a
    /// connection against them, and every sync Job gets them as `--allowed-api-host` arguments.
    pub allowed_api_hosts: crate::clever::AllowedApiHosts,
    /// `--sync-ca-bundle-configmap`: extra CA certificates every sync Job mounts and trusts.
    pub ca_bundle: Option<CaBundle>,
    /// The controller's own logging variables (`RUST_LOG`, `ROSTERSYNC_LOG_FORMAT`), passed on to
    /// every sync Job so that its logs read like the controller's ([`crate::telemetry::inherited_env`]).
    pub log_env: Vec<(String, String)>,
}

/// A ConfigMap key holding PEM CA certificates, in each sync Job's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle {
    pub config_map: String,
    pub key: String,
}

/// The volume (and its mount directory) of [`CaBundle`] in a sync Job's pod.
pub const CA_BUNDLE_VOLUME: &str = "rostersync-extra-ca";
pub const CA_BUNDLE_DIR: &str = "/etc/rostersync/extra-ca";
/// The file name of the bundle in [`CA_BUNDLE_DIR`], whatever its key.
pub const CA_BUNDLE_FILE: &str = "ca.crt";

/// Parses `--sync-ca-bundle-configmap NAME[:KEY]` (key `ca.crt` by default).
pub fn parse_ca_bundle(value: &str) -> Result<CaBundle, String> {
    let (name, key) = value.split_once(':').unwrap_or((value, CA_BUNDLE_FILE));
    let valid_name = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid_name {
        return Err(format!(
            "{name:?} is not a ConfigMap name (lowercase letters, digits, '-' and '.', starting \
             and ending with a letter or digit)"
        ));
    }
    let valid_key = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid_key {
        return Err(format!(
            "{key:?} is not a ConfigMap key (letters, digits, '-', '_' and '.')"
        ));
    }
    Ok(CaBundle {
        config_map: name.to_string(),
        key: key.to_string(),
    })
}

/// The sync container's resources when neither the SyncSchedule nor the operator's defaults set
/// any: requests and limits, so that the pod runs in a namespace with a ResourceQuota and is not
/// BestEffort.
pub fn default_resources() -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ]))
    };
    ResourceRequirements {
        requests: quantities("100m", "256Mi"),
        limits: quantities("1", "1Gi"),
        claims: None,
    }
}

fn is_empty_resources(r: &ResourceRequirements) -> bool {
    r.requests.as_ref().is_none_or(BTreeMap::is_empty)
        && r.limits.as_ref().is_none_or(BTreeMap::is_empty)
        && r.claims.as_ref().is_none_or(Vec::is_empty)
}

fn is_empty_affinity(a: &Affinity) -> bool {
    a.node_affinity.is_none() && a.pod_affinity.is_none() && a.pod_anti_affinity.is_none()
}

/// The pod settings a sync Job gets: the SyncSchedule's (`schedule`) over the operator's
/// (`defaults`).
///
/// - A field the SyncSchedule sets wins as a whole: its lists replace the default lists (an empty
///   list too, which drops the default), `affinity`, `resources` and `priorityClassName` replace
///   the default ones.
/// - `podLabels`, `podAnnotations` and `nodeSelector` merge key by key; on the same key the
///   SyncSchedule wins.
/// - Empty `resources` or `affinity` and an empty `priorityClassName` count as unset.
/// - Without resources from either, the sync container gets [`default_resources`].
pub fn merge_pod_settings(schedule: &JobPodSettings, defaults: &JobPodSettings) -> JobPodSettings {
    fn pick<T: Clone>(own: &Option<T>, default: &Option<T>, set: impl Fn(&T) -> bool) -> Option<T> {
        own.as_ref()
            .filter(|v| set(v))
            .or(default.as_ref().filter(|v| set(v)))
            .cloned()
    }
    fn merged(
        own: &BTreeMap<String, String>,
        default: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out = default.clone();
        out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
    fn any<T>(_: &T) -> bool {
        true
    }
    JobPodSettings {
        resources: pick(&schedule.resources, &defaults.resources, |r| {
            !is_empty_resources(r)
        })
        .or_else(|| Some(default_resources())),
        image_pull_secrets: pick(
            &schedule.image_pull_secrets,
            &defaults.image_pull_secrets,
            any,
        ),
        node_selector: merged(&schedule.node_selector, &defaults.node_selector),
        tolerations: pick(&schedule.tolerations, &defaults.tolerations, any),
        affinity: pick(&schedule.affinity, &defaults.affinity, |a| {
            !is_empty_affinity(a)
        }),
        priority_class_name: pick(
            &schedule.priority_class_name,
            &defaults.priority_class_name,
            |p: &String| !p.is_empty(),
        ),
        pod_labels: merged(&schedule.pod_labels, &defaults.pod_labels),
        pod_annotations: merged(&schedule.pod_annotations, &defaults.pod_annotations),
        extra_env: pick(&schedule.extra_env, &defaults.extra_env, any),
        extra_volumes: pick(&schedule.extra_volumes, &defaults.extra_volumes, any),
        extra_volume_mounts: pick(
            &schedule.extra_volume_mounts,
            &defaults.extra_volume_mounts,
            any,
        ),
    }
}

/// Where a merged field came from, for messages.
fn origin(from_schedule: bool) -> &'static str {
    if from_schedule {
        "spec.job"
    } else {
        "the operator's sync Job defaults"
    }
}

/// What is wrong with the pod settings a sync Job would get from `schedule` over `defaults`, one
/// message per problem naming the field and where it was set; empty when the Job can be built.
/// The CRD's rules reject most of these on the SyncSchedule already; this also covers the
/// operator's defaults and the two combined (a mount of the SyncSchedule naming a default volume
/// the SyncSchedule's `extraVolumes` replaced).
pub fn template_problems(schedule: &JobPodSettings, defaults: &JobPodSettings) -> Vec<String> {
    let pod = merge_pod_settings(schedule, defaults);
    let mut problems = Vec::new();
    let env_origin = origin(schedule.extra_env.is_some());
    for var in pod.extra_env.iter().flatten() {
        if is_reserved_env(&var.name) {
            problems.push(format!(
                "extraEnv ({env_origin}) sets {}, which the controller sets from the RosterConnection's \
                 credentials Secret or the database Secret; remove it",
                var.name
            ));
        }
    }
    for key in pod.pod_labels.keys().filter(|k| is_reserved_label(k)) {
        let from = origin(schedule.pod_labels.contains_key(key));
        let owner = if key == MANAGED_BY_LABEL || key.starts_with("rostersync.io/") {
            "the rostersync controller"
        } else {
            "the Job controller"
        };
        problems.push(format!(
            "podLabels ({from}) sets {key}, a label of {owner}; remove it"
        ));
    }
    let volumes_origin = origin(schedule.extra_volumes.is_some());
    let mounts_origin = origin(schedule.extra_volume_mounts.is_some());
    let volumes: Vec<&str> = pod
        .extra_volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    for (i, name) in volumes.iter().enumerate() {
        if *name == CA_BUNDLE_VOLUME {
            problems.push(format!(
                "extraVolumes ({volumes_origin}) has a volume named {name:?}, a name the \
                 controller uses for --sync-ca-bundle-configmap; rename it"
            ));
        }
        if volumes[..i].contains(name) {
            problems.push(format!(
                "extraVolumes ({volumes_origin}) has two volumes named {name:?}"
            ));
        }
    }
    let mounts = pod.extra_volume_mounts.as_deref().unwrap_or_default();
    for (i, mount) in mounts.iter().enumerate() {
        if !volumes.contains(&mount.name.as_str()) {
            let have = if volumes.is_empty() {
                "there are none".to_string()
            } else {
                format!("extraVolumes ({volumes_origin}) has {}", volumes.join(", "))
            };
            problems.push(format!(
                "extraVolumeMounts ({mounts_origin}) mounts volume {:?} at {}, but no volume has \
                 that name ({have}); when a SyncSchedule sets extraVolumes, they replace the \
                 default volumes",
                mount.name, mount.mount_path
            ));
        }
        if mounts[..i].iter().any(|m| m.mount_path == mount.mount_path) {
            problems.push(format!(
                "extraVolumeMounts ({mounts_origin}) mounts two volumes at {}",
                mount.mount_path
            ));
        }
    }
    problems
}

/// Parses and checks the operator's defaults (`--sync-job-defaults`): a JSON object with the
/// fields of a SyncSchedule's `spec.job` pod settings. Unknown fields and problems that would
/// make every sync Job invalid are errors.
pub fn parse_defaults(json: &str) -> Result<JobPodSettings, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(fields) = value.as_object() else {
        return Err("expected a JSON object such as {\"podAnnotations\": {...}}".into());
    };
    let unknown: Vec<&str> = fields
        .keys()
        .map(String::as_str)
        .filter(|k| !JobPodSettings::FIELDS.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown field(s) {}; the fields are {}",
            unknown.join(", "),
            JobPodSettings::FIELDS.join(", ")
        ));
    }
    let defaults: JobPodSettings = serde_path_to_error::deserialize(&value)
        .map_err(|e| format!("at {}: {}", e.path(), e.inner()))?;
    let problems = template_problems(&JobPodSettings::default(), &defaults);
    if problems.is_empty() {
        Ok(defaults)
    } else {
        Err(problems.join("; "))
    }
}

pub use crate::clever::CredentialKeys;

/// Everything a Job is built from.
pub struct JobInput<'a> {
    pub schedule: &'a SyncSchedule,
    pub connection: &'a RosterConnection,
    pub request: &'a RunRequest,
    pub credentials: CredentialKeys,
    pub config: &'a JobConfig,
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn owner_reference(schedule: &SyncSchedule) -> Option<OwnerReference> {
    schedule.controller_owner_ref(&())
}

/// Builds the sync Job; `None` if the schedule has no uid or namespace yet (not from the API server).
pub fn build_job(input: &JobInput<'_>) -> Option<Job> {
    let schedule = input.schedule;
    let ns = schedule.namespace()?;
    let uid = schedule.uid()?;
    let owner = owner_reference(schedule)?;
    let name = job_name(&schedule.name_any(), input.request);
    let run_id = run_id(&name, &uid, &ns);
    let trigger = input.request.trigger();
    let connection = input.connection.name_any();
    // Names of up to 253 characters: a label holds at most 63 (a hashed form beyond that), the
    // annotations hold the full names the controller reads back.
    use super::names::{CONNECTION_ANNOTATION, SCHEDULE_ANNOTATION, label_value};
    let labels: BTreeMap<String, String> = [
        (MANAGED_BY_LABEL, MANAGED_BY.to_string()),
        (CONNECTION_LABEL, label_value(&connection)),
        (SCHEDULE_LABEL, label_value(&schedule.name_any())),
        (TRIGGER_LABEL, trigger.as_str().to_string()),
        (RUN_ID_LABEL, label_value(&run_id)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let mut args = vec![
        "sync".to_string(),
        "--connection".to_string(),
        crate::run::ConnectionKey::new(&ns, &connection)
            .ok()?
            .to_string(),
        "--trigger".to_string(),
        trigger_arg(trigger),
        "--run-id".to_string(),
        run_id,
        "--schedule".to_string(),
        schedule.name_any(),
        "--job".to_string(),
        name.clone(),
    ];
    // Always passed (the controller's list is never empty): the Job refuses other hosts too.
    args.extend(
        input
            .config
            .allowed_api_hosts
            .to_args()
            .into_iter()
            .map(|host| format!("--allowed-api-host={host}")),
    );
    if matches!(input.request, RunRequest::Approval { .. }) {
        args.push("--approve-removals".to_string());
    }
    if input.config.ca_bundle.is_some() {
        args.push(format!("--extra-ca-file={CA_BUNDLE_DIR}/{CA_BUNDLE_FILE}"));
    }
    let secret = &input.connection.spec.credentials_secret_ref.name;
    let mut env = match input.credentials {
        CredentialKeys::Token => vec![secret_env("CLEVER_TOKEN", secret, "token")],
        CredentialKeys::AppCredentials => vec![
            secret_env("CLEVER_CLIENT_ID", secret, "client_id"),
            secret_env("CLEVER_CLIENT_SECRET", secret, "client_secret"),
        ],
    };
    env.push(match input.config.tenancy {
        crate::store::tenancy::Tenancy::Dedicated => secret_env(
            "DATABASE_URL",
            &super::tenancy::secret_name(&connection),
            super::tenancy::SECRET_KEY,
        ),
        crate::store::tenancy::Tenancy::Shared => secret_env(
            "DATABASE_URL",
            &input.config.database_secret,
            &input.config.database_secret_key,
        ),
    });
    let job_settings = &schedule.spec.job;
    let pod = merge_pod_settings(&job_settings.pod, &input.config.defaults);
    // The controller's log level and format, unless the schedule's extraEnv sets its own.
    env.extend(
        input
            .config
            .log_env
            .iter()
            .filter(|(name, _)| !pod.extra_env.iter().flatten().any(|var| &var.name == name))
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                ..EnvVar::default()
            }),
    );
    // The CRD's rules and the schedule's check keep these out; dropped here too, so that the
    // controller's variables and labels always win.
    env.extend(
        pod.extra_env
            .into_iter()
            .flatten()
            .filter(|var| !is_reserved_env(&var.name)),
    );
    let mut pod_labels: BTreeMap<String, String> = pod
        .pod_labels
        .into_iter()
        .filter(|(key, _)| !is_reserved_label(key))
        .collect();
    pod_labels.extend(labels.clone());
    let (mut volumes, mut volume_mounts) = (pod.extra_volumes, pod.extra_volume_mounts);
    if let Some(bundle) = &input.config.ca_bundle {
        volumes.get_or_insert_with(Vec::new).push(Volume {
            name: CA_BUNDLE_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: bundle.config_map.clone(),
                items: Some(vec![KeyToPath {
                    key: bundle.key.clone(),
                    path: CA_BUNDLE_FILE.into(),
                    ..Default::default()
                }]),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        });
        volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: CA_BUNDLE_VOLUME.into(),
                mount_path: CA_BUNDLE_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            });
    }
    let container = Container {
        name: CONTAINER.into(),
        image: Some(input.config.image.clone()),
        command: Some(vec![input.config.command.clone()]),
        args: Some(args),
        env: Some(env),
        resources: pod.resources,
        volume_mounts,
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let non_empty = |map: BTreeMap<String, String>| (!map.is_empty()).then_some(map);
    Some(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ns),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (CONNECTION_ANNOTATION.to_string(), connection.clone()),
                (SCHEDULE_ANNOTATION.to_string(), schedule.name_any()),
            ])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(job_settings.backoff_limit),
            active_deadline_seconds: Some(job_settings.active_deadline_seconds),
            ttl_seconds_after_finished: job_settings.ttl_seconds_after_finished,
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some(CONTAINER.into()),
                        operator: "In".into(),
                        values: NOT_RETRIABLE_EXIT_CODES.to_vec(),
                    }),
                    on_pod_conditions: None,
                }],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: non_empty(pod.pod_annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(input.config.service_account.clone()),
                    automount_service_account_token: Some(true),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(runtime_default()),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    image_pull_secrets: pod.image_pull_secrets.map(|secrets| {
                        secrets
                            .into_iter()
                            .map(|s| LocalObjectReference { name: s.name })
                            .collect()
                    }),
                    node_selector: non_empty(pod.node_selector),
                    tolerations: pod.tolerations,
                    affinity: pod.affinity,
                    priority_class_name: pod.priority_class_name,
                    volumes,
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    })
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

/// `--trigger` as `rostersync sync` parses it (clap's value name of [`Trigger`]).
fn trigger_arg(trigger: Trigger) -> String {
    use clap::ValueEnum as _;
    trigger
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| trigger.as_str().to_lowercase())
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
