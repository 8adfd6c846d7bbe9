//! End-to-end tests of the controller's operational behaviour: the admin server
//! (`/metrics`, `/healthz`, `/readyz`) and the pruning of finished Jobs by the history limits.
//! Same environment as `controller_e2e.rs`: the real binary with its ServiceAccount's token, the
//! pod runner running real sync Jobs, an in-process Clever emulator and Postgres.
mod common;
#[allow(dead_code)] // uses only part of the e2e environment
#[path = "controller/env.rs"]
mod env;

use env::{Env, TIMEOUT};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use rostersync::api::{RunResult, RunStatus, SYNC_NOW_ANNOTATION, SyncSchedule};
use rostersync::devtools::emulator::{Fault, FaultKind};
use serde_json::json;

fn last_run(s: &SyncSchedule) -> Option<&RunStatus> {
    s.status.as_ref()?.last_run.as_ref()
}

fn sync_now_available(s: &SyncSchedule) -> bool {
    s.status
        .as_ref()
        .and_then(|st| st.sync_now.as_ref())
        .is_some_and(|n| n.available)
}

/// A free loopback port: bound by the OS, then released for the controller to take.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Status code and body of `GET url`, or `None` while nothing answers.
async fn get(http: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let resp = http.get(url).send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// The value of the first sample line starting with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Connection `springfield` and schedule `nightly`, Verified and with Sync Now available.
async fn ready_schedule(env: &Env) {
    env.create_connection("springfield", &env.district_id(), json!({}))
        .await;
    env.create_schedule("nightly", "springfield", None, false)
        .await;
    env.connection_reason("springfield", "Verified").await;
    env.schedule_until("nightly", "Sync Now available", sync_now_available)
        .await;
}

/// Requests a Sync Now with `token` and waits until its run finished (a new last run, not
/// Running); returns that run.
async fn sync_now(env: &Env, token: &str, previous: Option<&str>) -> RunStatus {
    env.annotate("nightly", SYNC_NOW_ANNOTATION, token).await;
    let s = env
        .schedule_until(
            "nightly",
            &format!("the run of Sync Now {token} to finish"),
            |s| {
                let handled = s
                    .status
                    .as_ref()
                    .and_then(|st| st.sync_now.as_ref())
                    .and_then(|n| n.last_handled_token.as_deref())
                    == Some(token);
                handled
                    && last_run(s).is_some_and(|r| {
                        Some(r.run_id.as_str()) != previous
                            && r.result.is_some_and(|res| res != RunResult::Running)
                    })
            },
        )
        .await;
    last_run(&s).cloned().expect("last run")
}

#[tokio::test]
async fn metrics_health_and_readiness_are_served() {
    let Some(env) = Env::new("ops-metrics", 40).await else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let _controller = env.controller_with_metrics("controller", &addr, &[]);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("http client");
    let base = format!("http://{addr}");

    common::wait_for("/healthz to answer 200", TIMEOUT, || async {
        get(&http, &format!("{base}/healthz"))
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    common::wait_for("/readyz to answer 200", TIMEOUT, || async {
        get(&http, &format!("{base}/readyz"))
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;

    ready_schedule(&env).await;
    let run = sync_now(&env, "metrics", None).await;
    assert_eq!(run.result, Some(RunResult::Succeeded), "{run:?}");

    // The status is written before the gauges are set in the same reconcile: wait for them.
    let labels = format!("{{namespace=\"{}\",schedule=\"nightly\"}}", env.ns);
    let last_success = format!("rostersync_last_successful_sync_timestamp_seconds{labels}");
    let next_sync = format!("rostersync_next_sync_timestamp_seconds{labels}");
    let text = common::wait_for("/metrics to show the successful sync", TIMEOUT, || {
        let (http, base, last_success) = (&http, &base, &last_success);
        async move {
            let (code, text) = get(http, &format!("{base}/metrics")).await?;
            (code == 200
                && sample(&text, "rostersync_syncs_total{result=\"Succeeded\"}")? >= 1.0
                && sample(&text, last_success)? > 0.0)
                .then_some(text)
        }
    })
    .await;

    for kind in ["RosterConnection", "SyncSchedule"] {
        let series = format!("rostersync_reconciles_total{{kind=\"{kind}\"}}");
        assert!(
            sample(&text, &series).is_some_and(|v| v >= 1.0),
            "{series}:\n{text}"
        );
    }
    assert!(
        sample(&text, "rostersync_sync_duration_seconds_count").is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        text.contains("rostersync_sync_duration_seconds_bucket{le=\"5.0\"}")
            || text.contains("rostersync_sync_duration_seconds_bucket{le=\"5\"}"),
        "{text}"
    );
    assert!(
        sample(&text, "rostersync_sync_duration_seconds_sum").is_some(),
        "{text}"
    );
    let now = jiff::Timestamp::now().as_second() as f64;
    let success = sample(&text, &last_success).expect("last success gauge");
    assert!(
        (now - 600.0..=now + 60.0).contains(&success),
        "{success} vs now {now}"
    );
    let next = sample(&text, &next_sync).unwrap_or_else(|| panic!("{next_sync}:\n{text}"));
    assert!(next > now, "next sync {next} is not after now {now}");

    // Nothing personal and no secret: the token is absent, and the only labels are the known ones.
    assert!(
        !text.contains(env.emulator.token()),
        "the token leaked:\n{text}"
    );
    assert!(
        !text.contains(&env.db.url),
        "the database URL leaked:\n{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let labels = rest.split_once('}').map(|(l, _)| l).unwrap_or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let key = pair.split_once('=').map(|(k, _)| k).unwrap_or(pair);
            assert!(
                ["kind", "error", "result", "namespace", "schedule", "le"].contains(&key),
                "unexpected label {key:?} in {line:?}"
            );
        }
    }
}

async fn pods_of(env: &Env, job: &str) -> usize {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    pods.list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .expect("list pods")
        .items
        .len()
}

#[tokio::test]
async fn finished_jobs_are_pruned_by_the_history_limits() {
    let Some(env) = Env::new("ops-prune", 40).await else {
        return;
    };
    let _controller = env.controller("controller", &[]);
    ready_schedule(&env).await;
    let patch = json!({"spec": {"history": {"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 1}}});
    env.schedules()
        .patch("nightly", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("set the history limits");

    // Two failed runs (Clever answers an HTML 404 on sections); a failed run leaves Sync Now
    // available, so the second request runs too.
    env.emulator.add_fault(Fault::new(
        Some("/v3.0/sections"),
        1,
        1000,
        FaultKind::Html404,
    ));
    let first = sync_now(&env, "fail-1", None).await;
    assert_eq!(first.result, Some(RunResult::Failed), "{first:?}");
    env.schedule_until(
        "nightly",
        "Sync Now available after a failure",
        sync_now_available,
    )
    .await;
    let second = sync_now(&env, "fail-2", Some(&first.run_id)).await;
    assert_eq!(second.result, Some(RunResult::Failed), "{second:?}");
    assert_ne!(first.job, second.job);

    // Only the newer failed Job is kept; the older one is deleted, its pods too.
    common::wait_for("the older failed Job to be pruned", TIMEOUT, || async {
        (env.job_names().await == vec![second.job.clone()]).then_some(())
    })
    .await;
    common::wait_for("the pruned Job's pods to be deleted", TIMEOUT, || async {
        (pods_of(&env, &first.job).await == 0).then_some(())
    })
    .await;
    assert!(
        pods_of(&env, &second.job).await >= 1,
        "the kept Job lost its pod"
    );
    // History is never lost: both runs stay in sync_runs and in the status.
    for run in [&first, &second] {
        assert_eq!(
            env.run_result(&run.run_id).await.map(|r| r.0).as_deref(),
            Some("Failed"),
            "{run:?}"
        );
    }

    // A successful run: its Job is pruned at once (limit 0), the failed one stays.
    env.emulator.clear_faults();
    env.schedule_until(
        "nightly",
        "Sync Now available after a failure",
        sync_now_available,
    )
    .await;
    let ok = sync_now(&env, "ok", Some(&second.run_id)).await;
    assert_eq!(ok.result, Some(RunResult::Succeeded), "{ok:?}");
    common::wait_for("the successful Job to be pruned", TIMEOUT, || async {
        (env.job_names().await == vec![second.job.clone()]).then_some(())
    })
    .await;
    assert_eq!(
        env.run_result(&ok.run_id).await.map(|r| r.0).as_deref(),
        Some("Succeeded")
    );
    let s = env.schedules().get("nightly").await.expect("schedule");
    let st = s.status.expect("status");
    let last = st.last_run.as_ref().expect("lastRun");
    assert_eq!(last.run_id, ok.run_id);
    assert_eq!(last.result, Some(RunResult::Succeeded));
    let recent: Vec<&str> = st.recent_runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        recent,
        [
            ok.run_id.as_str(),
            second.run_id.as_str(),
            first.run_id.as_str()
        ],
        "recentRuns"
    );
    assert!(st.last_successful_time.is_some());
}
