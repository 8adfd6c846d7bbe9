//! The local pod runner (a stand-in kubelet) against the real control plane: the real Job
//! controller completes or fails Jobs from the pod status the runner writes, honours the
//! podFailurePolicy, and deleting a pod kills its process.
mod common;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};

const TIMEOUT: Duration = Duration::from_secs(90);

fn job(name: &str, script: &str, backoff_limit: i32) -> Job {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "rostersync"}},
        "spec": {
            "backoffLimit": backoff_limit,
            "podFailurePolicy": {"rules": [{"action": "FailJob",
                "onExitCodes": {"containerName": "sync", "operator": "In", "values": [2, 3]}}]},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/managed-by": "rostersync"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "sync", "image": "example.invalid/none:1",
                        "command": ["sh", "-c", script],
                        "env": [
                            {"name": "PLAIN", "value": "plain-value"},
                            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
                        ]}]
                }
            }
        }
    }))
    .expect("job manifest")
}

/// Waits until the Job has a final condition and returns (type, reason).
async fn finished(jobs: &Api<Job>, name: &str) -> (String, String) {
    common::wait_for(&format!("Job {name} to finish"), TIMEOUT, || async move {
        let job = jobs.get(name).await.ok()?;
        job.status?.conditions?.into_iter().find_map(|c| {
            ((c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
                .then(|| (c.type_, c.reason.unwrap_or_default()))
        })
    })
    .await
}

async fn setup(client: &Client) -> (String, Api<Job>) {
    let ns = common::fresh_namespace(client, "podrunner").await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "creds"}, "stringData": {"token": "s3cret-value"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    (ns.clone(), Api::namespaced(client.clone(), &ns))
}

#[tokio::test]
async fn job_completes_with_env_resolved_and_fails_at_once_on_exit_3() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    let (ns, jobs) = setup(&client).await;
    let _runner = common::start_pod_runner(&ns);

    let ok = job(
        "ok",
        r#"test "$PLAIN" = plain-value && test "$FROM_SECRET" = s3cret-value"#,
        0,
    );
    jobs.create(&PostParams::default(), &ok)
        .await
        .expect("create");
    assert_eq!(finished(&jobs, "ok").await.0, "Complete");

    // Exit 3 is not retriable: the podFailurePolicy fails the Job at once despite backoffLimit 3.
    jobs.create(&PostParams::default(), &job("held", "exit 3", 3))
        .await
        .expect("create");
    let (kind, reason) = finished(&jobs, "held").await;
    assert_eq!(
        (kind.as_str(), reason.as_str()),
        ("Failed", "PodFailurePolicy")
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let held_pods = pods
        .list(&ListParams::default().labels("job-name=held"))
        .await
        .expect("pods");
    assert_eq!(held_pods.items.len(), 1, "no retry after exit code 3");

    // Exit 1 is retriable: retried up to backoffLimit, then BackoffLimitExceeded.
    jobs.create(&PostParams::default(), &job("flaky", "exit 1", 1))
        .await
        .expect("create");
    let (kind, reason) = finished(&jobs, "flaky").await;
    assert_eq!(
        (kind.as_str(), reason.as_str()),
        ("Failed", "BackoffLimitExceeded")
    );
}

#[tokio::test]
async fn deleting_the_job_kills_the_process() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    let (ns, jobs) = setup(&client).await;
    let _runner = common::start_pod_runner(&ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 600", pid_file.display());
    jobs.create(&PostParams::default(), &job("long", &script, 0))
        .await
        .expect("create");
    let pid = common::wait_for("the container to start", TIMEOUT, || {
        let pid_file = pid_file.clone();
        async move {
            let text = std::fs::read_to_string(&pid_file).ok()?;
            text.trim().parse::<u32>().ok()
        }
    })
    .await;
    let alive = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(alive(pid));
    jobs.delete("long", &DeleteParams::background())
        .await
        .expect("delete");
    common::wait_for("the process to be killed", TIMEOUT, || async move {
        (!alive(pid)).then_some(())
    })
    .await;
}
