//! `kubectl roster logs NAME [RUN_ID]`: the log of a run's sync pod, while the pod exists.
use anyhow::{Context as _, bail};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};

use super::{Ctx, resolve_schedule};
use crate::controller::job::{CONTAINER, RUN_ID_LABEL};
use crate::controller::names::label_value;
use crate::output::exit;

/// Where a run's log goes once its pod is gone (printed when there is no pod to read).
pub const LOGS_GONE: &str = "the sync writes its log to the pod's stdout and stderr: once the Job is removed \
(ttlSecondsAfterFinished) it is only in your cluster's log collection (search for the run id); \
the outcome and counts stay in `kubectl roster history`";

pub async fn logs(ctx: &Ctx, name: &str, run_id: Option<&str>) -> anyhow::Result<u8> {
    let (client, ns) = (&ctx.client, ctx.ns.as_str());
    let schedule = resolve_schedule(client, ns, name).await?;
    let sched_name = schedule.name_any();
    let status = schedule.status.clone().unwrap_or_default();
    // The run: the one asked for, else the newest (lastRun).
    let run_id = match run_id {
        Some(id) => id.to_string(),
        None => match status.last_run.as_ref() {
            Some(r) => r.run_id.clone(),
            None => bail!(
                "syncschedule/{sched_name} has no run yet; start one: kubectl roster sync-now {sched_name} -n {ns}"
            ),
        },
    };
    let known_job = status
        .last_run
        .iter()
        .chain(status.recent_runs.iter())
        .find(|r| r.run_id == run_id)
        .map(|r| r.job.clone());
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let by_label = jobs
        .list(&ListParams::default().labels(&format!("{RUN_ID_LABEL}={}", label_value(&run_id))))
        .await
        .context("cannot list Jobs")?
        .items;
    let job = by_label.first().map(|j| j.name_any()).or(known_job.clone());
    let Some(job) = job else {
        eprintln!(
            "run {run_id} is not among syncschedule/{sched_name}'s recent runs and no Job has it; {LOGS_GONE}"
        );
        return Ok(exit::FAILED);
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .context("cannot list Pods")?
        .items;
    if list.is_empty() {
        eprintln!("the pod of run {run_id} (job {job}) no longer exists; {LOGS_GONE}");
        return Ok(exit::FAILED);
    }
    // The newest attempt last.
    list.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    for pod in &list {
        let pod_name = pod.name_any();
        if list.len() > 1 {
            println!("==> pod {pod_name} <==");
        }
        let params = LogParams {
            container: Some(CONTAINER.to_string()),
            ..LogParams::default()
        };
        match pods.logs(&pod_name, &params).await {
            Ok(text) => print!("{text}"),
            Err(err) => {
                eprintln!(
                    "cannot read the log of pod {pod_name} (run {run_id}): {err}; \
                     try `kubectl logs -n {ns} {pod_name} -c {CONTAINER}`; {LOGS_GONE}"
                );
                return Ok(exit::FAILED);
            }
        }
    }
    Ok(exit::OK)
}
