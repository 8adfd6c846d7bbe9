//! End-to-end tests of `rostersync controller` on the real control plane: the controller (real
//! binary, its ServiceAccount's token), the pod runner running real `rostersync sync` Jobs, an
//! in-process Clever emulator and Postgres.
mod common;
#[path = "controller/env.rs"]
mod env;

use env::{Env, TIMEOUT, handled_token, slot_ahead};
use rostersync::api::RunResult;
use serde_json::json;

/// Runs a command that must succeed and returns its stdout.
fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run a rostersync binary");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kstatus conditions (Ready, Reconciling, Stalled) of an object: (type, status) in that order.
fn kstatus(object: &serde_json::Value) -> Vec<(&str, &str)> {
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ["Ready", "Reconciling", "Stalled"]
        .into_iter()
        .filter_map(|t| {
            conditions.iter().find(|c| c["type"] == t).map(|c| {
                let status = if c["status"] == "True" {
                    "True"
                } else {
                    "False"
                };
                (t, status)
            })
        })
        .collect()
}

#[tokio::test]
async fn connection_wrong_district_then_fixed_and_rotated_secret_reverified() {
    let Some((env, _controller)) = Env::with_controller("e2e-conn", 40).await else {
        return;
    };
    env.create_connection("springfield", "0123456789abcdef01234567", json!({}))
        .await;
    let msg = env
        .connection_reason("springfield", "DistrictNotFound")
        .await;
    assert!(msg.contains("instant login link"), "{msg}");
    // kstatus: a wrong district needs a person, so the connection is Stalled, and Argo CD's health
    // check (the shipped Lua, on the object as the API server returns it) says Degraded.
    let stalled = env.connection_json("springfield").await;
    assert_eq!(
        kstatus(&stalled),
        [("Ready", "False"), ("Stalled", "True")],
        "{stalled}"
    );
    if let Some((health, message)) = common::argocd_health(&stalled) {
        assert_eq!(health, "Degraded", "{message}");
        assert!(message.starts_with("DistrictNotFound: "), "{message}");
    }

    let patch = json!({"spec": {"districtId": env.district_id()}});
    env.connections()
        .patch(
            "springfield",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("fix district id");
    env.connection_reason("springfield", "Verified").await;
    let ready = env.connection_json("springfield").await;
    assert_eq!(kstatus(&ready), [("Ready", "True")], "{ready}");
    if let Some((health, message)) = common::argocd_health(&ready) {
        assert_eq!(health, "Healthy", "{message}");
    }
    let c = env.connections().get("springfield").await.expect("get");
    let status = c.status.expect("status");
    assert!(status.district.is_some_and(|d| !d.name.is_empty()));
    assert!(status.last_check_time.is_some());
    assert_eq!(status.observed_generation, c.metadata.generation);

    // A rotated Secret is verified again at once (no periodic recheck within the test).
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    let rotate = |token: &str| json!({"stringData": {"token": token}});
    secrets
        .patch(
            "clever",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&rotate("revoked-token")),
        )
        .await
        .expect("rotate");
    env.connection_reason("springfield", "CredentialsInvalid")
        .await;
    let invalid = env.connection_json("springfield").await;
    assert_eq!(
        kstatus(&invalid),
        [("Ready", "False"), ("Stalled", "True")],
        "{invalid}"
    );
    if let Some((health, message)) = common::argocd_health(&invalid) {
        assert_eq!(health, "Degraded", "{message}");
        assert!(message.starts_with("CredentialsInvalid: "), "{message}");
    }
    secrets
        .patch(
            "clever",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&rotate(env.emulator.token())),
        )
        .await
        .expect("rotate back");
    env.connection_reason("springfield", "Verified").await;
    let events = env.event_reasons("springfield").await;
    assert!(
        events.iter().any(|(r, _)| r == "CredentialsInvalid"),
        "{events:?}"
    );
}

#[tokio::test]
async fn sync_now_runs_second_is_rejected_and_a_failed_run_makes_it_available_again() {
    let Some((env, _controller)) = Env::ready("e2e-now", 60).await else {
        return;
    };

    // 1. A run that fails (Clever answers an HTML 404 on sections) ...
    env.fail_sections(1000);
    env.sync_now("t1").await;
    let (failed_run, _) = env
        .last_run_until("the first run to fail", |_, r| r == RunResult::Failed)
        .await;
    assert_eq!(
        env.run_result(&failed_run).await.map(|r| r.0).as_deref(),
        Some("Failed")
    );
    env.event("nightly", "SyncNowAccepted").await;
    env.event("nightly", "SyncFailed").await;

    // 2. ... leaves Sync Now available: the next one runs and succeeds.
    env.emulator.clear_faults();
    let s = env
        .wait_sync_now_available("Sync Now available after the failure")
        .await;
    assert_eq!(handled_token(&s), Some("t1"));
    env.sync_now("t2").await;
    let (ok_run, s) = env
        .last_run_until("the second run to succeed", |_, r| {
            r == RunResult::Succeeded
        })
        .await;
    assert_eq!(
        env.run_result(&ok_run).await.map(|r| r.0).as_deref(),
        Some("Succeeded")
    );
    env.event("nightly", "SyncSucceeded").await;
    let st = s.status.clone().expect("status");
    assert_eq!(st.recent_runs.len(), 2);
    assert_eq!(st.consecutive_failures, 0);
    assert!(st.last_successful_time.is_some() && st.last_failure_time.is_some());
    // One failure is not "repeated failures": the schedule stays Ready, and healthy for Argo CD.
    let schedule = serde_json::to_value(&s).expect("schedule JSON");
    assert_eq!(kstatus(&schedule), [("Ready", "True")], "{schedule}");
    if let Some((health, message)) = common::argocd_health(&schedule) {
        assert_eq!(health, "Healthy", "{message}");
    }
    // The connection reflects the run too.
    let conn = env.connection_last_sync(&ok_run).await;
    assert_eq!(conn.result, Some(RunResult::Succeeded));
    assert_eq!(conn.summary, st.recent_runs[0].summary);

    // One run reads the same everywhere: status.recentRuns, `rostersync history` and
    // `kubectl roster history` print the same summary line, for the failed run and the good one.
    let key = format!("{}/springfield", env.ns);
    let rostersync = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_rostersync")).args([
            "history",
            "--connection",
            &key,
            "--database-url",
            &env.db.url,
        ]),
    );
    let plugin = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
            .args(["history", "nightly", "-n", &env.ns])
            .env("DATABASE_URL", &env.db.url),
    );
    for run in &st.recent_runs {
        assert!(!run.summary.is_empty(), "{run:?}");
        for (surface, out) in [
            ("rostersync history", &rostersync),
            ("kubectl roster history", &plugin),
        ] {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{} ", run.run_id)))
                .unwrap_or_else(|| panic!("{surface} has no line for {}:\n{out}", run.run_id));
            assert!(
                line.trim_end().ends_with(&run.summary),
                "{surface} shows another summary than status ({:?}):\n{line}",
                run.summary
            );
        }
    }

    // 3. A third request is rejected: Sync Now was used since the last scheduled run.
    let jobs_before = env.job_names().await;
    let s = env.sync_now_handled("t3").await;
    let now = s.status.and_then(|st| st.sync_now).expect("syncNow");
    assert!(!now.available);
    assert_eq!(now.reason, "UsedSinceLastScheduledRun");
    assert!(now.available_after.is_some());
    let note = env.event("nightly", "SyncNowRejected").await;
    assert!(note.contains("UsedSinceLastScheduledRun"), "{note}");
    assert_eq!(
        env.job_names().await,
        jobs_before,
        "a rejected request started a Job"
    );
}

#[tokio::test]
async fn scheduled_slot_runs_once_suspended_schedule_does_not_and_restart_starts_nothing_twice() {
    let Some(env) = Env::new("e2e-slot", 40).await else {
        return;
    };
    let (slot, offset) = slot_ahead(25);
    let mut controller = env.controller("controller", &["--clock-offset-seconds", &offset]);
    env.create_connection("springfield", &env.district_id(), json!({}))
        .await;
    env.create_schedule("nightly", "springfield", Some(slot), false)
        .await;
    env.create_schedule("summer", "springfield", Some(slot), true)
        .await;
    env.connection_reason("springfield", "Verified").await;
    let s = env
        .schedule_until("summer", "the suspended schedule's status", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "Suspended" && c.status == "True")
            })
        })
        .await;
    assert!(s.status.expect("status").next_sync_time.is_none());

    let (_, s) = env
        .last_run_until("the scheduled run to succeed", |_, r| {
            r == RunResult::Succeeded
        })
        .await;
    let st = s.status.clone().expect("status");
    let run = st.last_run.clone().expect("last run");
    assert_eq!(run.trigger, Some(rostersync::api::Trigger::Scheduled));
    assert_eq!(run.job, format!("nightly-{}", slot.as_second() / 60));
    assert_eq!(st.last_schedule_time.map(|t| t.0), Some(slot));
    assert!(st.next_sync_time.is_some_and(|t| t.0 > slot));
    assert_eq!(
        env.job_names().await,
        vec![run.job.clone()],
        "exactly one Job, none for the suspended schedule"
    );

    // A restart re-reads everything and starts nothing again.
    controller.stop().await;
    let _controller = env.controller("controller-2", &["--clock-offset-seconds", &offset]);
    env.event("nightly", "SyncSucceeded").await;
    // A Sync Now request after the restart proves the new controller reconciled the schedule.
    env.sync_now_handled("after-restart").await;
    let jobs = env.job_names().await;
    assert_eq!(
        jobs.iter().filter(|j| j.starts_with("nightly-2")).count(),
        1,
        "{jobs:?}"
    );
    assert!(jobs.iter().all(|j| !j.starts_with("summer")), "{jobs:?}");
    let runs = env
        .count("SELECT count(*) FROM sync_runs WHERE trigger = 'Scheduled'")
        .await;
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn with_leader_election_only_one_controller_acts() {
    let Some(env) = Env::new("e2e-leader", 40).await else {
        return;
    };
    let a = env.controller("controller-a", &["--leader-elect", "--identity", "a"]);
    let b = env.controller("controller-b", &["--leader-elect", "--identity", "b"]);
    env.verified_schedule(json!({})).await;
    env.sync_now("once").await;
    env.last_run_until("the run to succeed", |_, r| r == RunResult::Succeeded)
        .await;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    let lease = leases.get("rostersync-controller").await.expect("lease");
    let holder = lease.spec.and_then(|s| s.holder_identity).expect("holder");
    let (leader, follower) = if holder == "a" { (&a, &b) } else { (&b, &a) };
    assert!(leader.log_text().contains("acquired the leader Lease"));
    let follower_log = follower.log_text();
    assert!(
        follower_log.contains("waiting for the leader Lease"),
        "{follower_log}"
    );
    assert!(
        !follower_log.contains("controller starting"),
        "the follower acted: {follower_log}"
    );
    assert_eq!(env.job_names().await.len(), 1);
}

async fn active_children(env: &Env) -> i64 {
    env.count("SELECT count(*) FROM children WHERE active")
        .await
}

#[tokio::test]
async fn guarded_removal_is_held_then_approved_and_applied() {
    let Some(env) = Env::new("e2e-held", 80).await else {
        return;
    };
    let (slot, offset) = slot_ahead(20);
    let _controller = env.controller("controller", &["--clock-offset-seconds", &offset]);
    let settings = json!({"allowRemoval": true, "removalGuardPercent": 10});
    env.create_connection("springfield", &env.district_id(), settings)
        .await;
    env.create_schedule("nightly", "springfield", Some(slot), false)
        .await;
    env.last_run_until("the scheduled run to succeed", |_, r| {
        r == RunResult::Succeeded
    })
    .await;
    let before = active_children(&env).await;
    assert!(before > 0);

    // Half the sections leave the roster: far more than the 10% guard.
    env.emulator.update(|store| {
        use rostersync::devtools::emulator::Kind;
        let ids: Vec<String> = store
            .entries(Kind::Sections)
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        for id in ids.iter().take(ids.len() / 2) {
            store.remove(Kind::Sections, id).expect("remove section");
        }
    });
    env.sync_now("after-unshare").await;
    let (held, _) = env
        .last_run_until("the run to be held", |_, r| r == RunResult::Held)
        .await;
    let note = env.event("nightly", "SyncHeld").await;
    assert!(
        note.contains(&held) && note.contains("approve-removals"),
        "{note}"
    );
    assert_eq!(
        active_children(&env).await,
        before,
        "a held run applied removals"
    );

    env.annotate(
        "nightly",
        rostersync::api::APPROVE_REMOVALS_ANNOTATION,
        &held,
    )
    .await;
    let (_, s) = env
        .last_run_until("the approved run to succeed", |id, r| {
            id != held && r == RunResult::Succeeded
        })
        .await;
    let st = s.status.expect("status");
    assert_eq!(st.last_handled_approval.as_deref(), Some(held.as_str()));
    assert!(
        st.last_run
            .is_some_and(|r| r.job.starts_with("nightly-approve-"))
    );
    env.event("nightly", "RemovalsApproved").await;
    assert!(
        active_children(&env).await < before,
        "the approved run did not apply the removals"
    );
}

#[tokio::test]
async fn a_sync_process_killed_mid_run_leaves_the_roster_unchanged_and_a_failed_row() {
    let Some((env, _controller)) = Env::ready("e2e-kill", 40).await else {
        return;
    };
    // Every Clever response takes a while, so the run is still going when it is killed.
    env.slow_clever(None, 1500);
    env.sync_now("doomed").await;
    let (run_id, _) = env
        .last_run_until("the run to start", |_, r| r == RunResult::Running)
        .await;
    let pid = common::wait_for("the sync process", TIMEOUT, || {
        let run_id = run_id.clone();
        async move {
            let out = std::process::Command::new("pgrep")
                .args(["-f", "--", &format!("--run-id {run_id}")])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()?
                .trim()
                .parse::<u32>()
                .ok()
        }
    })
    .await;
    // Wait until the run recorded itself as Running, then kill it without warning.
    env.wait_run_row(&run_id, "Running").await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());

    env.last_run_until("the run to be reported Failed", |id, r| {
        id == run_id && r == RunResult::Failed
    })
    .await;
    let (result, reason) = env.run_result(&run_id).await.expect("row");
    assert_eq!(result, "Failed");
    assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        active_children(&env).await,
        0,
        "a killed run changed the roster"
    );
    env.event("nightly", "SyncFailed").await;
}

/// Events about `name` with `reason`, each with its series count (a repeat of one Event by the same
/// recorder is a series on one object, not a second object).
async fn event_count(env: &Env, name: &str, reason: &str) -> i32 {
    use k8s_openapi::api::events::v1::Event;
    let api: kube::Api<Event> = kube::Api::namespaced(env.client.clone(), &env.ns);
    api.list(&Default::default())
        .await
        .expect("events")
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1)))
        .sum()
}

#[tokio::test]
async fn controller_restart_during_a_run_loses_nothing_and_starts_nothing_twice() {
    let Some((env, mut controller)) = Env::ready("e2e-restart", 40).await else {
        return;
    };
    // Every users page takes 5 s: the run lasts long enough to restart the controller under it.
    env.slow_clever(Some("/v3.0/users"), 5000);
    env.sync_now("slow").await;
    let (run_id, _) = env
        .last_run_until("the run to start", |_, r| r == RunResult::Running)
        .await;
    env.wait_run_row(&run_id, "Running").await;
    let jobs = env.jobs().list(&Default::default()).await.expect("jobs");
    assert_eq!(jobs.items.len(), 1);
    assert_eq!(
        rostersync::controller::runs::job_state(&jobs.items[0]),
        rostersync::controller::runs::JobState::Active,
        "the Job must still be running when the controller dies"
    );

    // The controller dies without warning while the Job runs; a new one takes over.
    controller.child.kill().await.expect("kill the controller");
    assert_eq!(
        env.run_result(&run_id).await.map(|r| r.0).as_deref(),
        Some("Running"),
        "the run finished before the controller was killed: make the fault slower"
    );
    let _controller = env.controller("controller-2", &[]);
    let (_, s) = env
        .last_run_until("the run to be reported Succeeded", |id, r| {
            id == run_id && r == RunResult::Succeeded
        })
        .await;
    env.event("nightly", "SyncSucceeded").await;

    // Nothing lost: the run is in history, status and the connection; nothing twice.
    let st = s.status.expect("status");
    assert_eq!(st.recent_runs.len(), 1, "{:?}", st.recent_runs);
    assert_eq!(st.consecutive_failures, 0);
    assert!(st.last_successful_time.is_some());
    assert!(st.active.is_empty(), "{:?}", st.active);
    assert_eq!(
        st.sync_now.and_then(|n| n.last_handled_token).as_deref(),
        Some("slow")
    );
    let jobs = env.job_names().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(jobs[0].starts_with("nightly-now-"), "{jobs:?}");
    let rows: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT run_id, result, notified_at IS NOT NULL FROM sync_runs ORDER BY started_at",
    )
    .fetch_all(&env.db.pool)
    .await
    .expect("sync_runs");
    assert_eq!(rows, vec![(run_id.clone(), "Succeeded".to_string(), true)]);
    env.connection_last_sync(&run_id).await;
    // A Sync Now request handled by the new controller proves it reconciled after the report;
    // the run's Events are final by then.
    env.sync_now_handled("after-restart").await;
    assert_eq!(event_count(&env, "nightly", "SyncSucceeded").await, 1);
    assert_eq!(event_count(&env, "nightly", "SyncNowAccepted").await, 1);
    assert_eq!(env.job_names().await.len(), 1);
}
