//! The sync pod's settings end to end: the operator's defaults (`--sync-job-defaults`) and a
//! SyncSchedule's `spec.job` reach the real Job and its pod, in a namespace with a ResourceQuota;
//! a Job the API server rejects is reported as an Event; pod settings that cannot work together
//! (a mount whose volume the SyncSchedule replaced) make the schedule not Ready instead of failing
//! at the next run. The controller is the real binary with its ServiceAccount's token, the pod
//! runner runs the real `rostersync sync`.
mod common;
#[path = "controller/env.rs"]
mod env;

use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use rostersync::api::{RunResult, SYNC_NOW_ANNOTATION};
use serde_json::json;

use env::{Env, handled_token, last_result};

/// The operator's defaults, as the chart would pass them.
const DEFAULTS: &str = r#"{
    "podAnnotations": {"sidecar.istio.io/inject": "false", "example.com/tier": "platform"},
    "podLabels": {"team": "platform"},
    "extraEnv": [{"name": "NO_PROXY", "value": ".svc,.cluster.local"}],
    "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca", "optional": true}}],
    "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/rostersync/ca", "readOnly": true}],
    "tolerations": [{"key": "dedicated", "operator": "Exists"}]
}"#;

async fn patch_schedule(env: &Env, patch: serde_json::Value) -> i64 {
    env.schedules()
        .patch("nightly", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch the schedule")
        .metadata
        .generation
        .expect("generation")
}

/// Waits until the schedule's Ready condition reflects `generation` and `check(reason, message)`.
async fn ready_until(
    env: &Env,
    what: &str,
    generation: i64,
    check: impl Fn(&str, &str) -> bool,
) -> rostersync::api::SyncSchedule {
    env.schedule_until("nightly", what, |s| {
        s.status.as_ref().is_some_and(|st| {
            st.conditions.iter().any(|c| {
                c.type_ == "Ready"
                    && c.observed_generation == Some(generation)
                    && check(&c.reason, &c.message)
            })
        })
    })
    .await
}

#[tokio::test]
async fn defaults_and_schedule_settings_reach_the_sync_pod_and_bad_ones_are_reported() {
    let Some(env) = Env::new("e2e-jobpods", 30).await else {
        return;
    };
    // A namespace quota on requests and limits: a pod without them is refused at creation.
    let quotas: Api<ResourceQuota> = Api::namespaced(env.client.clone(), &env.ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "compute"},
        "spec": {"hard": {"requests.cpu": "2", "requests.memory": "4Gi",
                          "limits.cpu": "4", "limits.memory": "8Gi"}}
    }))
    .expect("quota");
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("create the quota");
    // The test control plane runs no quota controller: its part (the usage baseline) is written
    // here; the API server's quota admission then counts and enforces as in any cluster.
    let baseline = json!({"status": {
        "hard": quota.spec.as_ref().and_then(|s| s.hard.clone()),
        "used": {"requests.cpu": "0", "requests.memory": "0", "limits.cpu": "0", "limits.memory": "0"}
    }});
    quotas
        .patch_status("compute", &PatchParams::default(), &Patch::Merge(&baseline))
        .await
        .expect("quota status");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let bare: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    let refused = pods
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &bare,
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("must specify")),
        "the quota must refuse a pod without requests and limits: {refused:?}"
    );
    let _controller = env.controller("controller", &["--sync-job-defaults", DEFAULTS]);
    env.verified_schedule(json!({})).await;

    // 1. The schedule's own settings, one of which the Pod API refuses (an annotation key with a
    //    space): the Job is rejected, and an Event says why.
    patch_schedule(
        &env,
        json!({"spec": {"job": {
            "podAnnotations": {"example.com/tier": "district", "example.com/bad key": "x"},
            "podLabels": {"district": "springfield"},
            "nodeSelector": {"kubernetes.io/os": "linux"}
        }}}),
    )
    .await;
    env.wait_sync_now_available("Sync Now available").await;
    env.sync_now("t1").await;
    let note = env.event("nightly", "JobRejected").await;
    assert!(
        note.contains("the API server rejected the sync Job") && note.contains("bad key"),
        "{note}"
    );
    assert!(env.job_names().await.is_empty());

    // 2. Fixed: the pending Sync Now runs, under the quota, and succeeds.
    patch_schedule(
        &env,
        json!({"spec": {"job": {"podAnnotations": {"example.com/bad key": null}}}}),
    )
    .await;
    let s = env
        .schedule_until("nightly", "the Sync Now run to succeed", |s| {
            handled_token(s) == Some("t1")
                && last_result(s).is_some_and(|(_, r)| r == RunResult::Succeeded)
        })
        .await;
    let run = s.status.and_then(|st| st.last_run).expect("last run");

    // The Job's pod template and the pod: defaults merged with the schedule's settings.
    let job = env.jobs().get(&run.job).await.expect("the run's Job");
    let template = job.spec.expect("job spec").template;
    let meta = template.metadata.expect("template metadata");
    let annotations = meta.annotations.unwrap_or_default();
    assert_eq!(annotations["sidecar.istio.io/inject"], "false");
    assert_eq!(annotations["example.com/tier"], "district");
    assert!(!annotations.contains_key("example.com/bad key"));
    let labels = meta.labels.unwrap_or_default();
    assert_eq!(
        (labels["team"].as_str(), labels["district"].as_str()),
        ("platform", "springfield")
    );
    assert_eq!(labels["app.kubernetes.io/managed-by"], "rostersync");
    let spec = template.spec.expect("pod spec");
    assert_eq!(
        spec.node_selector.unwrap_or_default()["kubernetes.io/os"],
        "linux"
    );
    assert_eq!(spec.tolerations.map(|t| t.len()), Some(1));
    assert_eq!(spec.volumes.unwrap_or_default()[0].name.as_str(), "corp-ca");
    let container = &spec.containers[0];
    assert_eq!(
        container.volume_mounts.clone().unwrap_or_default()[0].mount_path,
        "/etc/rostersync/ca"
    );
    let env_names: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    // The controller's own RUST_LOG (tests/controller/env.rs) is inherited by the Job.
    assert_eq!(
        env_names,
        ["CLEVER_TOKEN", "DATABASE_URL", "RUST_LOG", "NO_PROXY"]
    );
    assert_eq!(
        container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "RUST_LOG")
            .and_then(|e| e.value.as_deref()),
        Some("info,rostersync=debug")
    );
    assert_eq!(
        container.resources,
        Some(rostersync::controller::job::default_resources())
    );

    let pod = pods
        .list(&ListParams::default().labels(&format!("rostersync.io/run-id={}", run.run_id)))
        .await
        .expect("pods")
        .items
        .into_iter()
        .next()
        .expect("the run's pod");
    assert_eq!(pod.annotations()["sidecar.istio.io/inject"], "false");
    assert_eq!(
        pod.status.and_then(|s| s.qos_class).as_deref(),
        Some("Burstable"),
        "the sync pod must not be BestEffort"
    );

    // 3. The schedule replaces the default volumes but keeps the default mount of corp-ca: no
    //    Job could be built. Same update as a new Sync Now request, so the reconcile that sees
    //    the one sees the other.
    let jobs_before = env.job_names().await;
    let generation = patch_schedule(
        &env,
        json!({"metadata": {"annotations": {SYNC_NOW_ANNOTATION: "t2"}},
               "spec": {"job": {"extraVolumes": [{"name": "cache", "emptyDir": {}}]}}}),
    )
    .await;
    let s = ready_until(
        &env,
        "Ready False InvalidJobTemplate",
        generation,
        |reason, _| reason == "InvalidJobTemplate",
    )
    .await;
    let ready = s
        .status
        .as_ref()
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("Ready");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains(
            "mounts volume \"corp-ca\" at /etc/rostersync/ca, but no volume has that name"
        ) && ready.message.contains("the operator's sync Job defaults"),
        "{}",
        ready.message
    );
    assert_eq!(handled_token(&s), Some("t1"), "no request is handled");
    let note = env.event("nightly", "InvalidJobTemplate").await;
    assert!(note.contains("corp-ca"), "{note}");
    assert_eq!(env.job_names().await, jobs_before);

    // 4. Fixed: the schedule is Ready again and the waiting request is handled.
    let generation = patch_schedule(
        &env,
        json!({"spec": {"job": {"extraVolumeMounts": [{"name": "cache", "mountPath": "/var/cache"}]}}}),
    )
    .await;
    let s = ready_until(&env, "Ready again", generation, |reason, _| {
        reason != "InvalidJobTemplate"
    })
    .await;
    let s = if handled_token(&s) == Some("t2") {
        s
    } else {
        env.schedule_until("nightly", "Sync Now t2 handled", |s| {
            handled_token(s) == Some("t2")
        })
        .await
    };
    assert_eq!(handled_token(&s), Some("t2"));
}
