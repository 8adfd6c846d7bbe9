use super::*;
use crate::api::{RosterConnection, SyncSchedule};

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
    }
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
            "nightly-29540640"
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
