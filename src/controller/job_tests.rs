use super::*;
use crate::api::{JobPodSettings, RosterConnection, SyncSchedule};
use serde_json::json;

fn schedule(name: &str) -> SyncSchedule {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "SyncSchedule",
        "metadata": {"name": name, "namespace": "district-a", "uid": "11111111-2222"},
        "spec": {"connectionRef": {"name": "springfield"}, "frequency": "Weekly",
                 "dayOfWeek": "Monday", "at": "02:00", "timeZone": "America/Chicago",
                 "job": {"backoffLimit": 2, "activeDeadlineSeconds": 900, "ttlSecondsAfterFinished": 3600,
                         "resources": {"limits": {"memory": "256Mi"}}}}
    }))
    .expect("schedule")
}

fn connection() -> RosterConnection {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": "springfield", "namespace": "district-a"},
        "spec": {"districtId": "0123456789abcdef01234567",
                 "credentialsSecretRef": {"name": "springfield-clever"}}
    }))
    .expect("connection")
}

fn config() -> JobConfig {
    JobConfig {
        image: "ghcr.io/rostersync/rostersync:0.1.0".into(),
        command: "rostersync".into(),
        service_account: "rostersync-sync".into(),
        database_secret: "rostersync-db".into(),
        database_secret_key: "url".into(),
        tenancy: crate::store::tenancy::Tenancy::Shared,
        defaults: JobPodSettings::default(),
        allowed_api_hosts: crate::clever::AllowedApiHosts::clever(),
        ca_bundle: None,
        log_env: Vec::new(),
    }
}

#[test]
fn jobs_inherit_the_controllers_log_level_and_format_unless_the_schedule_sets_them() {
    let cfg = JobConfig {
        log_env: vec![
            ("RUST_LOG".into(), "debug,kube=info".into()),
            ("ROSTERSYNC_LOG_FORMAT".into(), "json".into()),
        ],
        ..config()
    };
    let env_of = |s: &SyncSchedule| {
        let c = connection();
        let job = build_job(&JobInput {
            schedule: s,
            connection: &c,
            request: &RunRequest::SyncNow { token: "t1".into() },
            credentials: CredentialKeys::Token,
            config: &cfg,
        })
        .expect("job");
        job.spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .containers[0]
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.value.unwrap_or_default()))
            .filter(|(n, _)| n != "CLEVER_TOKEN" && n != "DATABASE_URL")
            .collect::<Vec<_>>()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        env_of(&schedule("nightly")),
        pairs(&[
            ("RUST_LOG", "debug,kube=info"),
            ("ROSTERSYNC_LOG_FORMAT", "json")
        ])
    );
    // A district debugging its own runs: its RUST_LOG wins, the format is still inherited.
    let own = schedule_with_job(json!({"extraEnv": [{"name": "RUST_LOG", "value": "trace"}]}));
    assert_eq!(
        env_of(&own),
        pairs(&[("ROSTERSYNC_LOG_FORMAT", "json"), ("RUST_LOG", "trace")])
    );
}

#[test]
fn dedicated_tenancy_reads_the_connections_own_database_secret() {
    let (s, c) = (schedule("nightly"), connection());
    let cfg = JobConfig {
        tenancy: crate::store::tenancy::Tenancy::Dedicated,
        ..config()
    };
    let job = build_job(&JobInput {
        schedule: &s,
        connection: &c,
        request: &RunRequest::SyncNow { token: "t1".into() },
        credentials: CredentialKeys::Token,
        config: &cfg,
    })
    .expect("job");
    let env = job
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let db = env
        .iter()
        .find(|v| v.name == "DATABASE_URL")
        .and_then(|v| v.value_from.clone())
        .and_then(|f| f.secret_key_ref)
        .expect("DATABASE_URL from a Secret");
    assert_eq!(
        (db.name, db.key),
        (
            crate::controller::tenancy::secret_name(&c.name_any()),
            "url".to_string()
        )
    );
}

fn build(request: &RunRequest, credentials: CredentialKeys) -> Job {
    let (s, c, cfg) = (schedule("nightly"), connection(), config());
    build_job(&JobInput {
        schedule: &s,
        connection: &c,
        request,
        credentials,
        config: &cfg,
    })
    .expect("a job")
}

fn slot_request() -> RunRequest {
    RunRequest::Slot {
        slot: "2026-03-02T08:00:00Z".parse().expect("ts"),
        trigger: Trigger::Scheduled,
    }
}

#[test]
fn names_are_deterministic_per_slot_token_and_approval() {
    let slot = slot_request();
    assert_eq!(job_name("nightly", &slot), "nightly-29540640");
    let now = RunRequest::SyncNow {
        token: "2026-03-02T10:00".into(),
    };
    let n1 = job_name("nightly", &now);
    assert_eq!(n1, job_name("nightly", &now.clone()));
    assert!(n1.starts_with("nightly-now-") && n1.len() == "nightly-now-".len() + 8);
    let other = RunRequest::SyncNow {
        token: "another".into(),
    };
    assert_ne!(n1, job_name("nightly", &other));
    let approve = RunRequest::Approval {
        held_run_id: "nightly-now-1-abc".into(),
    };
    assert!(job_name("nightly", &approve).starts_with("nightly-approve-"));
    assert!(is_sync_now_job("nightly", &n1));
    assert!(!is_sync_now_job("nightly", &job_name("nightly", &approve)));
    assert!(!is_sync_now_job("nightly", "nightly-29540640"));
}

#[test]
fn long_schedule_names_are_truncated_and_stay_distinct() {
    let a = "a".repeat(250);
    let b = format!("{}b", "a".repeat(249));
    let request = RunRequest::Approval {
        held_run_id: "x".into(),
    };
    let (na, nb) = (job_name(&a, &request), job_name(&b, &request));
    assert!(na.len() <= MAX_JOB_NAME, "{na}");
    assert_ne!(na, nb);
    let run = run_id(&na, "uid", "ns");
    assert!(run.len() <= 63, "{run}");
    assert!(!na.contains("--"));
}

/// Names of 200 characters (a connection and a schedule): every label value is valid (hashed
/// beyond 63), the annotations keep the full names, the run id is at most 63 characters with 64
/// bits of hash, and it differs across namespaces and schedule uids.
#[test]
fn long_names_give_valid_labels_and_full_names_in_annotations() {
    use crate::controller::names::{is_label_value, label_value};
    let long_conn = format!("{}.{}", "c".repeat(100), "d".repeat(99));
    let long_sched = format!("{}.{}", "s".repeat(100), "t".repeat(99));
    let mut s = schedule(&long_sched);
    s.spec.connection_ref.name = long_conn.clone();
    let mut c = connection();
    c.metadata.name = Some(long_conn.clone());
    let cfg = config();
    let job = build_job(&JobInput {
        schedule: &s,
        connection: &c,
        request: &slot_request(),
        credentials: CredentialKeys::Token,
        config: &cfg,
    })
    .expect("a job");
    let labels = job.metadata.labels.clone().unwrap_or_default();
    for (key, value) in &labels {
        assert!(is_label_value(value), "{key}={value}");
    }
    assert_eq!(labels[CONNECTION_LABEL], label_value(&long_conn));
    assert_eq!(labels[SCHEDULE_LABEL], label_value(&long_sched));
    assert!(labels[CONNECTION_LABEL].starts_with("cccc"));
    let annotations = job.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["rostersync.io/connection"], long_conn);
    assert_eq!(annotations["rostersync.io/schedule"], long_sched);
    assert_eq!(
        crate::controller::names::connection_of(&job).as_deref(),
        Some(long_conn.as_str())
    );
    let run = labels[RUN_ID_LABEL].clone();
    assert!(run.len() <= 63, "{run}");
    let hash = run.rsplit('-').next().unwrap_or_default();
    assert_eq!(hash.len(), 16, "{run}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{run}");
    // The same Job name in another namespace or under a recreated schedule: another run id.
    let name = job.metadata.name.clone().unwrap_or_default();
    assert_ne!(run_id(&name, "uid-1", "a"), run_id(&name, "uid-1", "b"));
    assert_ne!(run_id(&name, "uid-1", "a"), run_id(&name, "uid-2", "a"));
    // The pod's container args carry the full names (no label limit there).
    let args = job
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod")
        .containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(
        args.contains(&format!("district-a/{long_conn}")),
        "{args:?}"
    );
}

#[test]
fn job_has_labels_owner_command_and_limits() {
    let job = build(&slot_request(), CredentialKeys::Token);
    assert_eq!(job.metadata.name.as_deref(), Some("nightly-29540640"));
    assert_eq!(job.metadata.namespace.as_deref(), Some("district-a"));
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels[MANAGED_BY_LABEL], "rostersync");
    assert_eq!(labels[CONNECTION_LABEL], "springfield");
    assert_eq!(labels[SCHEDULE_LABEL], "nightly");
    assert_eq!(labels[TRIGGER_LABEL], "Scheduled");
    let run = labels[RUN_ID_LABEL].clone();
    assert!(run.starts_with("nightly-29540640-"));
    let owner = &job.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("SyncSchedule", "nightly", Some(true))
    );
    let spec = job.spec.clone().expect("spec");
    assert_eq!(spec.backoff_limit, Some(2));
    assert_eq!(spec.active_deadline_seconds, Some(900));
    assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
    let rule = &spec.pod_failure_policy.expect("pfp").rules[0];
    assert_eq!(rule.action, "FailJob");
    let codes = rule.on_exit_codes.clone().expect("exit codes");
    assert_eq!((codes.operator.as_str(), codes.values), ("In", vec![2, 3]));
    assert_eq!(codes.container_name.as_deref(), Some(CONTAINER));
    let pod = spec.template.spec.expect("pod");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("rostersync-sync"));
    let c = &pod.containers[0];
    assert_eq!(c.name, CONTAINER);
    assert_eq!(c.command, Some(vec!["rostersync".to_string()]));
    assert_eq!(
        c.args.clone().unwrap_or_default(),
        [
            "sync",
            "--connection",
            "district-a/springfield",
            "--trigger",
            "scheduled",
            "--run-id",
            &run,
            "--schedule",
            "nightly",
            "--job",
            "nightly-29540640",
            "--allowed-api-host=api.clever.com",
            "--allowed-api-host=clever.com",
        ]
    );
    assert!(
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .is_some()
    );
    let template_labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    assert_eq!(template_labels[MANAGED_BY_LABEL], "rostersync");
}

#[test]
fn security_context_is_restricted() {
    let job = build(&slot_request(), CredentialKeys::Token);
    let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
    let sc = pod.containers[0].security_context.clone().expect("sc");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        sc.seccomp_profile.map(|p| p.type_).as_deref(),
        Some("RuntimeDefault")
    );
}

#[test]
fn secrets_come_from_secret_key_refs_never_values() {
    for (creds, names) in [
        (CredentialKeys::Token, vec!["CLEVER_TOKEN", "DATABASE_URL"]),
        (
            CredentialKeys::AppCredentials,
            vec!["CLEVER_CLIENT_ID", "CLEVER_CLIENT_SECRET", "DATABASE_URL"],
        ),
    ] {
        let job = build(&slot_request(), creds);
        let c = job
            .spec
            .and_then(|s| s.template.spec)
            .expect("pod")
            .containers[0]
            .clone();
        let env = c.env.unwrap_or_default();
        assert_eq!(
            env.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            names
        );
        for var in &env {
            assert!(var.value.is_none(), "{} has a literal value", var.name);
            let sel = var
                .value_from
                .clone()
                .and_then(|f| f.secret_key_ref)
                .expect("secretKeyRef");
            if var.name == "DATABASE_URL" {
                assert_eq!(
                    (sel.name.as_str(), sel.key.as_str()),
                    ("rostersync-db", "url")
                );
            } else {
                assert_eq!(sel.name, "springfield-clever");
            }
        }
    }
}

#[test]
fn sync_now_is_manual_and_approval_adds_the_flag() {
    let job = build(
        &RunRequest::SyncNow { token: "t1".into() },
        CredentialKeys::Token,
    );
    let args = job
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod")
        .containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(args.windows(2).any(|w| w == ["--trigger", "manual"]));
    assert!(!args.contains(&"--approve-removals".to_string()));
    let job = build(
        &RunRequest::Approval {
            held_run_id: "r1".into(),
        },
        CredentialKeys::Token,
    );
    let args = job
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod")
        .containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert_eq!(args.last().map(String::as_str), Some("--approve-removals"));
}

// ------------------------------------------------------------------------------------------------
// Pod settings: SyncSchedule `spec.job` over the operator's defaults.

/// A schedule whose `spec.job` is `job` (as the API server would store it).
fn schedule_with_job(job: serde_json::Value) -> SyncSchedule {
    let mut s = schedule("nightly");
    s.spec.job = serde_json::from_value(job).expect("spec.job");
    s
}

fn pod_settings(value: serde_json::Value) -> JobPodSettings {
    serde_json::from_value(value).expect("pod settings")
}

/// Builds a Job of `s` with the operator `defaults`.
fn build_with(s: &SyncSchedule, defaults: JobPodSettings) -> Job {
    let (c, mut cfg) = (connection(), config());
    cfg.defaults = defaults;
    build_job(&JobInput {
        schedule: s,
        connection: &c,
        request: &slot_request(),
        credentials: CredentialKeys::Token,
        config: &cfg,
    })
    .expect("a job")
}

fn template(job: &Job) -> (ObjectMeta, PodSpec) {
    let t = job.spec.clone().expect("job spec").template;
    (t.metadata.unwrap_or_default(), t.spec.expect("pod spec"))
}

fn every_knob() -> serde_json::Value {
    json!({
        "backoffLimit": 1, "activeDeadlineSeconds": 600,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"kubernetes.io/os": "linux", "pool": "batch"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        "priorityClassName": "batch-low",
        "podLabels": {"team": "data"},
        "podAnnotations": {"sidecar.istio.io/inject": "false"},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp:3128"},
                     {"name": "PGSSLROOTCERT", "value": "/etc/rostersync/ca/ca.crt"}],
        "extraVolumes": [{"name": "ca", "secret": {"secretName": "corp-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/rostersync/ca", "readOnly": true}]
    })
}

#[test]
fn every_knob_of_spec_job_lands_in_the_pod_spec() {
    let job = build_with(&schedule_with_job(every_knob()), JobPodSettings::default());
    let (meta, pod) = template(&job);
    let annotations = meta.annotations.unwrap_or_default();
    // The Istio case: without this the sidecar keeps the pod from ever completing.
    assert_eq!(annotations["sidecar.istio.io/inject"], "false");
    let labels = meta.labels.unwrap_or_default();
    assert_eq!(labels["team"], "data");
    assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
    assert_eq!(labels[SCHEDULE_LABEL], "nightly");
    // Pod labels are on the pod only; the Job keeps the controller's.
    assert!(!job.metadata.labels.unwrap_or_default().contains_key("team"));
    assert_eq!(
        pod.image_pull_secrets,
        Some(vec![LocalObjectReference {
            name: "regcred".into()
        }])
    );
    let selector = pod.node_selector.unwrap_or_default();
    assert_eq!(
        (
            selector["kubernetes.io/os"].as_str(),
            selector["pool"].as_str()
        ),
        ("linux", "batch")
    );
    let tolerations = pod.tolerations.unwrap_or_default();
    assert_eq!(tolerations.len(), 1);
    assert_eq!(
        (
            tolerations[0].key.as_deref(),
            tolerations[0].effect.as_deref()
        ),
        (Some("dedicated"), Some("NoSchedule"))
    );
    let terms = pod
        .affinity
        .and_then(|a| a.node_affinity)
        .and_then(|n| n.required_during_scheduling_ignored_during_execution)
        .expect("required node affinity")
        .node_selector_terms;
    assert_eq!(
        terms[0].match_expressions.as_ref().expect("expr")[0].key,
        "zone"
    );
    assert_eq!(pod.priority_class_name.as_deref(), Some("batch-low"));
    let volumes = pod.volumes.unwrap_or_default();
    assert_eq!(volumes.len(), 1);
    assert_eq!(
        volumes[0]
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        Some("corp-ca")
    );
    let c = &pod.containers[0];
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    assert_eq!(
        (
            mounts[0].name.as_str(),
            mounts[0].mount_path.as_str(),
            mounts[0].read_only
        ),
        ("ca", "/etc/rostersync/ca", Some(true))
    );
    let env: Vec<(&str, Option<&str>)> = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(
        env,
        [
            ("CLEVER_TOKEN", None),
            ("DATABASE_URL", None),
            ("HTTPS_PROXY", Some("http://proxy.corp:3128")),
            ("PGSSLROOTCERT", Some("/etc/rostersync/ca/ca.crt")),
        ]
    );
    let resources = c.resources.clone().expect("resources");
    assert_eq!(resources.requests.expect("requests")["cpu"].0, "50m");
    assert_eq!(resources.limits.expect("limits")["memory"].0, "512Mi");
    // What the controller owns is untouched by the knobs.
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("rostersync-sync"));
    assert_eq!(
        c.security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem),
        Some(true)
    );
}

#[test]
fn without_resources_the_sync_container_is_burstable_with_requests_and_limits() {
    for job in [json!({}), json!({"resources": {}})] {
        let built = build_with(&schedule_with_job(job.clone()), JobPodSettings::default());
        let (meta, pod) = template(&built);
        let r = pod.containers[0].resources.clone().expect("resources");
        for (what, map) in [("requests", r.requests), ("limits", r.limits)] {
            let map = map.unwrap_or_default();
            assert!(
                map.contains_key("cpu") && map.contains_key("memory"),
                "{job}: {what} {map:?}"
            );
        }
        assert_eq!(pod.containers[0].resources, Some(default_resources()));
        // Nothing else appears when nothing is set.
        assert!(meta.annotations.is_none());
        assert!(pod.volumes.is_none() && pod.containers[0].volume_mounts.is_none());
        assert!(pod.node_selector.is_none() && pod.tolerations.is_none());
        assert!(pod.affinity.is_none() && pod.priority_class_name.is_none());
        assert!(pod.image_pull_secrets.is_none());
        assert_eq!(pod.containers[0].env.as_ref().map(Vec::len), Some(2));
    }
}

#[test]
fn controller_env_and_labels_cannot_be_overridden() {
    // As if the CRD's rules had been bypassed (an old CRD, or the operator's defaults).
    let job = json!({
        "extraEnv": [{"name": "CLEVER_TOKEN", "value": "stolen"},
                     {"name": "DATABASE_URL", "value": "postgres://elsewhere"},
                     {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "podLabels": {"app.kubernetes.io/managed-by": "someone-else", "rostersync.io/run-id": "forged",
                      "rostersync.io/schedule": "other", "job-name": "x", "team": "data"}
    });
    let defaults = pod_settings(json!({
        "extraEnv": [{"name": "CLEVER_CLIENT_SECRET", "value": "x"}],
        "podLabels": {"batch.kubernetes.io/job-name": "x"}
    }));
    let s = schedule_with_job(job);
    let built = build_with(&s, defaults.clone());
    let (meta, pod) = template(&built);
    let env = pod.containers[0].env.clone().unwrap_or_default();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["CLEVER_TOKEN", "DATABASE_URL", "HTTPS_PROXY"]);
    for var in env.iter().filter(|e| e.name != "HTTPS_PROXY") {
        assert!(var.value.is_none(), "{} has a literal value", var.name);
        assert!(
            var.value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
                .is_some()
        );
    }
    let labels = meta.labels.unwrap_or_default();
    assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
    assert_eq!(labels[SCHEDULE_LABEL], "nightly");
    assert!(labels[RUN_ID_LABEL].starts_with("nightly-29540640-"));
    assert!(
        !labels.contains_key("job-name") && !labels.contains_key("batch.kubernetes.io/job-name")
    );
    assert_eq!(labels["team"], "data");
    assert_eq!(labels, {
        let mut own = built.metadata.labels.clone().unwrap_or_default();
        own.insert("team".into(), "data".into());
        own
    });
    // And the schedule's check says so, naming where each came from.
    let problems = template_problems(&s.spec.job.pod, &defaults);
    let text = problems.join("\n");
    for expected in [
        "extraEnv (spec.job) sets CLEVER_TOKEN",
        "extraEnv (spec.job) sets DATABASE_URL",
        "podLabels (spec.job) sets app.kubernetes.io/managed-by",
        "podLabels (spec.job) sets rostersync.io/run-id",
        "podLabels (spec.job) sets job-name",
        "podLabels (the operator's sync Job defaults) sets batch.kubernetes.io/job-name",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The schedule's extraEnv replaced the defaults' (with CLEVER_CLIENT_SECRET) as a whole.
    assert!(!text.contains("CLEVER_CLIENT_SECRET"), "{text}");
    assert_eq!(problems.len(), 7, "{text}");
    assert!(
        text.contains(
            "podLabels (spec.job) sets rostersync.io/schedule, a label of the rostersync controller; \
             remove it"
        ) && text.contains("sets job-name, a label of the Job controller; remove it"),
        "{text}"
    );
}

#[test]
fn merge_rule_fields_win_as_a_whole_and_maps_merge_key_by_key() {
    let defaults = pod_settings(json!({
        "resources": {"requests": {"cpu": "10m"}},
        "imagePullSecrets": [{"name": "platform-registry"}],
        "nodeSelector": {"pool": "batch", "kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "platform-low",
        "podLabels": {"team": "platform", "cost-center": "42"},
        "podAnnotations": {"sidecar.istio.io/inject": "false"},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ca"}]
    }));

    // Nothing set on the schedule: the defaults as they are.
    assert_eq!(
        merge_pod_settings(&JobPodSettings::default(), &defaults),
        defaults
    );

    // Set on the schedule: lists (an empty one too), objects and scalars replace the default;
    // maps merge key by key with the schedule winning.
    let own = pod_settings(json!({
        "resources": {"limits": {"memory": "2Gi"}},
        "imagePullSecrets": [{"name": "district-registry"}],
        "nodeSelector": {"pool": "district"},
        "tolerations": [],
        "priorityClassName": "district-high",
        "podLabels": {"team": "district-a"},
        "podAnnotations": {"example.com/owner": "district-a"},
        "extraEnv": [{"name": "NO_PROXY", "value": ".svc"}]
    }));
    let m = merge_pod_settings(&own, &defaults);
    assert_eq!(m.resources, own.resources);
    assert_eq!(m.image_pull_secrets, own.image_pull_secrets);
    assert_eq!(m.tolerations, Some(vec![]));
    assert_eq!(m.priority_class_name.as_deref(), Some("district-high"));
    assert_eq!(m.extra_env, own.extra_env);
    assert_eq!(
        m.node_selector,
        BTreeMap::from([
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("pool".to_string(), "district".to_string())
        ])
    );
    assert_eq!(
        m.pod_labels,
        BTreeMap::from([
            ("cost-center".to_string(), "42".to_string()),
            ("team".to_string(), "district-a".to_string())
        ])
    );
    assert_eq!(m.pod_annotations.len(), 2);
    // Not set on the schedule: the defaults.
    assert_eq!(m.affinity, defaults.affinity);
    assert_eq!(m.extra_volumes, defaults.extra_volumes);
    assert_eq!(m.extra_volume_mounts, defaults.extra_volume_mounts);

    // Empty resources, affinity and priorityClassName count as unset; without resources
    // anywhere, the built-in ones.
    let empty = pod_settings(json!({"resources": {}, "affinity": {}}));
    let m = merge_pod_settings(&empty, &defaults);
    assert_eq!(
        (m.resources, m.affinity),
        (defaults.resources.clone(), defaults.affinity.clone())
    );
    let no_prio = JobPodSettings {
        priority_class_name: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(
        merge_pod_settings(&no_prio, &defaults)
            .priority_class_name
            .as_deref(),
        Some("platform-low")
    );
    let m = merge_pod_settings(&empty, &JobPodSettings::default());
    assert_eq!((m.resources, m.affinity), (Some(default_resources()), None));
}

#[test]
fn operator_defaults_reach_the_job_and_the_schedule_overrides_them() {
    let defaults = pod_settings(json!({
        "podAnnotations": {"sidecar.istio.io/inject": "false", "example.com/tier": "platform"},
        "podLabels": {"team": "platform"},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}]
    }));
    let s = schedule_with_job(json!({
        "podAnnotations": {"example.com/tier": "district"},
        "tolerations": []
    }));
    let (meta, pod) = template(&build_with(&s, defaults));
    let annotations = meta.annotations.unwrap_or_default();
    assert_eq!(annotations["sidecar.istio.io/inject"], "false");
    assert_eq!(annotations["example.com/tier"], "district");
    assert_eq!(meta.labels.unwrap_or_default()["team"], "platform");
    assert_eq!(pod.tolerations, Some(vec![]));
    let c = &pod.containers[0];
    assert_eq!(c.env.as_ref().map(Vec::len), Some(3));
    assert_eq!(
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .map(|l| l["memory"].0.as_str()),
        Some("128Mi")
    );
}

#[test]
fn volume_mounts_must_name_a_volume_of_the_merged_template() {
    let defaults = pod_settings(json!({
        "extraVolumes": [{"name": "ca", "secret": {"secretName": "corp-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ca"}]
    }));
    // The schedule's mounts may name the defaults' volumes.
    let own =
        pod_settings(json!({"extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corp"}]}));
    assert_eq!(template_problems(&own, &defaults), Vec::<String>::new());
    // The schedule's volumes replace the defaults', so the default mount names nothing.
    let own = pod_settings(json!({"extraVolumes": [{"name": "cache", "emptyDir": {}}]}));
    let problems = template_problems(&own, &defaults);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "extraVolumeMounts (the operator's sync Job defaults) mounts volume \"ca\" at /etc/ca, \
             but no volume has that name (extraVolumes (spec.job) has cache)"
        ),
        "{}",
        problems[0]
    );
    // Duplicates within one list.
    let own = pod_settings(json!({
        "extraVolumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "a", "mountPath": "/x"}, {"name": "a", "mountPath": "/x"}]
    }));
    assert_eq!(
        template_problems(&own, &JobPodSettings::default()),
        [
            "extraVolumes (spec.job) has two volumes named \"a\"",
            "extraVolumeMounts (spec.job) mounts two volumes at /x"
        ]
    );
    // No volumes at all.
    let own = pod_settings(json!({"extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ca"}]}));
    assert!(template_problems(&own, &JobPodSettings::default())[0].contains("(there are none)"));
}

#[test]
fn operator_defaults_parse_from_json_and_are_checked() {
    let d = parse_defaults(
        r#"{"podAnnotations": {"sidecar.istio.io/inject": "false"},
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}}}"#,
    )
    .expect("valid defaults");
    assert_eq!(d.pod_annotations["sidecar.istio.io/inject"], "false");
    assert_eq!(d.extra_env.as_ref().map(Vec::len), Some(1));
    assert_eq!(parse_defaults("{}"), Ok(JobPodSettings::default()));
    for (json, expected) in [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object"),
        (
            r#"{"podLabel": {}}"#,
            "unknown field(s) podLabel; the fields are resources, ",
        ),
        (r#"{"tolerations": "all"}"#, "at tolerations: invalid type"),
        (
            r#"{"extraEnv": [{"name": "DATABASE_URL", "value": "x"}]}"#,
            "extraEnv (the operator's sync Job defaults) sets DATABASE_URL",
        ),
        (
            r#"{"podLabels": {"rostersync.io/connection": "x"}}"#,
            "podLabels (the operator's sync Job defaults) sets rostersync.io/connection",
        ),
        (
            r#"{"extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ca"}]}"#,
            "mounts volume \"ca\" at /etc/ca, but no volume has that name",
        ),
    ] {
        let err = parse_defaults(json).expect_err(json);
        assert!(err.contains(expected), "{json}: {err}");
    }
}

#[test]
fn a_ca_bundle_is_mounted_from_the_configmap_and_passed_as_extra_ca_file() {
    let (s, c) = (schedule("nightly"), connection());
    let mut cfg = config();
    cfg.defaults = serde_json::from_value(serde_json::json!({
        "extraVolumes": [{"name": "proxy-ca", "secret": {"secretName": "proxy"}}],
        "extraVolumeMounts": [{"name": "proxy-ca", "mountPath": "/etc/proxy"}]
    }))
    .expect("defaults");
    let build = |cfg: &JobConfig| {
        let job = build_job(&JobInput {
            schedule: &s,
            connection: &c,
            request: &RunRequest::SyncNow { token: "t1".into() },
            credentials: CredentialKeys::Token,
            config: cfg,
        })
        .expect("job");
        job.spec.expect("spec").template.spec.expect("pod")
    };
    // Not configured: nothing of it.
    let pod = build(&cfg);
    let names: Vec<String> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(names, ["proxy-ca"]);
    let args = pod.containers[0].args.clone().unwrap_or_default();
    assert!(
        !args.iter().any(|a| a.starts_with("--extra-ca-file")),
        "{args:?}"
    );

    for (flag, key) in [("corp-ca", "ca.crt"), ("corp-ca:bundle.pem", "bundle.pem")] {
        cfg.ca_bundle = Some(parse_ca_bundle(flag).expect("valid"));
        let pod = build(&cfg);
        let volumes = pod.volumes.clone().unwrap_or_default();
        assert_eq!(volumes.len(), 2, "the operator's volumes stay: {volumes:?}");
        let ca = volumes
            .iter()
            .find(|v| v.name == CA_BUNDLE_VOLUME)
            .expect("the CA volume");
        let cm = ca.config_map.clone().expect("a ConfigMap volume");
        assert_eq!(cm.name, "corp-ca");
        assert_eq!(
            cm.optional,
            Some(false),
            "a missing ConfigMap must not go unnoticed"
        );
        let items = cm.items.unwrap_or_default();
        assert_eq!(
            items
                .iter()
                .map(|i| (i.key.as_str(), i.path.as_str()))
                .collect::<Vec<_>>(),
            [(key, CA_BUNDLE_FILE)]
        );
        let container = &pod.containers[0];
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        let mount = mounts
            .iter()
            .find(|m| m.name == CA_BUNDLE_VOLUME)
            .expect("the CA mount");
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            (CA_BUNDLE_DIR, Some(true))
        );
        assert!(mounts.iter().any(|m| m.name == "proxy-ca"));
        let args = container.args.clone().unwrap_or_default();
        assert!(
            args.contains(&"--extra-ca-file=/etc/rostersync/extra-ca/ca.crt".to_string()),
            "{args:?}"
        );
    }
}

#[test]
fn ca_bundle_flag_values_are_checked() {
    assert_eq!(
        parse_ca_bundle("corp-ca").expect("valid"),
        CaBundle {
            config_map: "corp-ca".into(),
            key: "ca.crt".into()
        }
    );
    for bad in ["", "Corp", "corp-ca:", "corp-ca:a/b", "-x"] {
        assert!(parse_ca_bundle(bad).is_err(), "{bad:?}");
    }
    let defaults = serde_json::json!({
        "extraVolumes": [{"name": CA_BUNDLE_VOLUME, "emptyDir": {}}]
    });
    let err = parse_defaults(&defaults.to_string()).expect_err("reserved name");
    assert!(err.contains("--sync-ca-bundle-configmap"), "{err}");
}
