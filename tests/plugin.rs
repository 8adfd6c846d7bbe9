//! `kubectl roster` (the `kubectl-roster` binary) against the real control plane. The controller is
//! simulated: the tests write status through the /status subresource as the controller would.
mod common;

use std::process::Output;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rostersync::api::{
    APPROVE_REMOVALS_ANNOTATION, JourneyPolicy, RosterConnection, SYNC_NOW_ANNOTATION, SyncSchedule,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-roster");

fn plugin(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("cannot run kubectl-roster")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh namespace with a connection and a policy named `springfield` and their schedule
/// `springfield-nightly` (CRDs installed). No controller runs: tests write status as it would.
struct District {
    client: kube::Client,
    ns: String,
    schedules: Api<SyncSchedule>,
}

impl District {
    /// The district, or `None` (test skipped) without a control plane.
    async fn new(prefix: &str) -> Option<District> {
        let client = common::kube_client().await?;
        let ns = create_district(&client, prefix).await;
        Some(District {
            schedules: Api::namespaced(client.clone(), &ns),
            client,
            ns,
        })
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Writes the status of `springfield-nightly` the way the controller does.
    async fn set_schedule_status(&self, status: Value) {
        set_status(&self.schedules, "springfield-nightly", status).await;
    }

    /// `springfield-nightly` as it is now.
    async fn schedule(&self) -> SyncSchedule {
        self.schedules
            .get("springfield-nightly")
            .await
            .expect("get schedule")
    }

    /// An annotation of `springfield-nightly`.
    async fn annotation(&self, key: &str) -> Option<String> {
        self.schedules
            .get("springfield-nightly")
            .await
            .ok()?
            .metadata
            .annotations?
            .get(key)
            .cloned()
    }

    /// Starts `sync-now --wait`, waits for its token, and returns (child, token).
    async fn start_wait(&self, timeout: &str) -> (tokio::process::Child, String) {
        let before = self.annotation(SYNC_NOW_ANNOTATION).await;
        let child = sync_now_wait(&self.ns, timeout)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn kubectl-roster");
        let token = common::wait_for("the sync-now token", Duration::from_secs(30), || {
            let before = before.clone();
            async move {
                let now = self.annotation(SYNC_NOW_ANNOTATION).await?;
                (Some(&now) != before.as_ref()).then_some(now)
            }
        })
        .await;
        (child, token)
    }
}

async fn create_district(client: &kube::Client, prefix: &str) -> String {
    common::install_crds(client).await;
    let ns = common::fresh_namespace(client, prefix).await;
    let pp = PostParams::default();
    let policy: JourneyPolicy = serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "JourneyPolicy",
        "metadata": {"name": "springfield"},
        "spec": {"licensedProducts": ["Early Literacy"], "newChildJourney": "Early Literacy"}
    }))
    .expect("policy");
    Api::<JourneyPolicy>::namespaced(client.clone(), &ns)
        .create(&pp, &policy)
        .await
        .expect("create policy");
    let conn: RosterConnection = serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": "springfield"},
        "spec": {"districtId": "5e8f0c1a2b3c4d5e6f708192",
                 "credentialsSecretRef": {"name": "springfield-clever"},
                 "journeyPolicyRef": {"name": "springfield"}}
    }))
    .expect("connection");
    Api::<RosterConnection>::namespaced(client.clone(), &ns)
        .create(&pp, &conn)
        .await
        .expect("create connection");
    let sched: SyncSchedule = serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "SyncSchedule",
        "metadata": {"name": "springfield-nightly"},
        "spec": {"connectionRef": {"name": "springfield"}, "frequency": "Daily", "at": "22:00",
                 "timeZone": "America/Chicago"}
    }))
    .expect("schedule");
    Api::<SyncSchedule>::namespaced(client.clone(), &ns)
        .create(&pp, &sched)
        .await
        .expect("create schedule");
    ns
}

/// Writes status the way the controller does (through /status).
async fn set_status<K>(api: &Api<K>, name: &str, status: Value)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .expect("cannot write status");
}

fn run(id: &str, result: &str, started: &str, finished: Option<&str>, summary: &str) -> Value {
    let mut r = json!({"job": format!("springfield-{id}"), "runId": id, "trigger": "Scheduled",
        "result": result, "startedAt": started, "summary": summary});
    if let Some(f) = finished {
        r["finishedAt"] = json!(f);
    }
    r
}

fn cond(type_: &str, ok: bool, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": if ok {"True"} else {"False"}, "reason": reason,
           "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

/// The last run before a test's Sync Now request.
fn old_run() -> Value {
    run(
        "r-old",
        "Succeeded",
        "2026-01-01T04:00:00Z",
        Some("2026-01-01T04:01:00Z"),
        "old",
    )
}

#[tokio::test]
async fn status_table_spans_the_three_kinds() {
    let Some(district) = District::new("plugin-status").await else {
        return;
    };
    set_status(&district.api::<RosterConnection>(), "springfield", json!({"conditions": [cond("Ready", false, "DistrictNotFound",
        "Clever has no district 5e8f...; double-check the district id from the instant login link")]}))
    .await;
    let next = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(330);
    let after = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(330);
    district.set_schedule_status(json!({
        "conditions": [cond("Ready", true, "Scheduled", "ok")],
        "nextSyncTime": next.to_string(),
        "lastRun": run("r-1", "Succeeded", "2026-01-01T04:00:00Z", Some("2026-01-01T04:02:00Z"), "children: created 3"),
        "syncNow": {"available": false, "reason": "UsedSinceLastScheduledRun", "availableAfter": after.to_string()}
    }))
    .await;
    set_status(
        &district.api::<JourneyPolicy>(),
        "springfield",
        json!({"conditions": [cond("Ready", true, "Valid", "ok")]}),
    )
    .await;

    let out = plugin(&["status", "-n", &district.ns]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line = |kind: &str| -> String {
        stdout
            .lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} row in:\n{stdout}"))
            .to_string()
    };
    assert!(stdout.starts_with("KIND"), "{stdout}");
    let c = line("RosterConnection");
    assert!(
        c.contains("springfield") && c.contains("DistrictNotFound"),
        "{c}"
    );
    let s = line("SyncSchedule");
    for want in [
        "springfield-nightly",
        "Ready",
        "Succeeded",
        "ago",
        "in 5h",
        "no: UsedSinceLastScheduledRun (available in 5h",
    ] {
        assert!(s.contains(want), "{want:?} missing in {s}");
    }
    let p = line("JourneyPolicy");
    assert!(p.contains("Ready"), "{p}");
    assert!(
        stdout.contains("double-check the district id"),
        "the not-ready explanation is missing:\n{stdout}"
    );

    // A NAME selects the connection, its schedule (named differently) and the policy.
    let out = plugin(&["status", "springfield", "-n", &district.ns]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert_eq!(
        stdout.lines().filter(|l| l.contains("springfield")).count(),
        4,
        "{stdout}"
    );
    // -A adds the namespace column.
    let out = plugin(&["status", "-A"]);
    let (stdout, _) = text(&out);
    assert!(stdout.starts_with("NAMESPACE"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with(&district.ns)),
        "{stdout}"
    );
    // An unknown name is an error that says where it looked.
    let out = plugin(&["status", "nope", "-n", &district.ns]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no RosterConnection, SyncSchedule or JourneyPolicy named \"nope\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn sync_now_sets_a_fresh_token_each_time() {
    let Some(district) = District::new("plugin-syncnow").await else {
        return;
    };
    let out = plugin(&["sync-now", "springfield-nightly", "-n", &district.ns]);
    assert!(out.status.success(), "{:?}", text(&out));
    let first = district
        .annotation(SYNC_NOW_ANNOTATION)
        .await
        .expect("token after the first sync-now");
    assert!(text(&out).0.contains(&first));
    // By connection name too (it has one schedule).
    let out = plugin(&["sync-now", "springfield", "-n", &district.ns]);
    assert!(out.status.success(), "{:?}", text(&out));
    let second = district
        .annotation(SYNC_NOW_ANNOTATION)
        .await
        .expect("token after the second sync-now");
    assert_ne!(first, second, "each sync-now must be a new request");
    // A name that is neither is an actionable error.
    let out = plugin(&["sync-now", "nope", "-n", &district.ns]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no SyncSchedule named \"nope\""));
}

#[tokio::test]
async fn suspend_and_resume_flip_spec_suspend() {
    let Some(district) = District::new("plugin-suspend").await else {
        return;
    };
    let out = plugin(&["suspend", "springfield-nightly", "-n", &district.ns]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(district.schedule().await.spec.suspend);
    let out = plugin(&["status", "-n", &district.ns]);
    assert!(text(&out).0.contains("suspended"));
    let out = plugin(&["resume", "springfield-nightly", "-n", &district.ns]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!district.schedule().await.spec.suspend);
}

#[tokio::test]
async fn approve_sets_the_annotation_for_a_held_run_only() {
    let Some(district) = District::new("plugin-approve").await else {
        return;
    };
    district.set_schedule_status(json!({
        "lastRun": run("r-held", "Held", "2026-01-02T04:00:00Z", Some("2026-01-02T04:01:00Z"), "held: would deactivate 40% of children"),
        "recentRuns": [
            run("r-held", "Held", "2026-01-02T04:00:00Z", Some("2026-01-02T04:01:00Z"), "held"),
            run("r-ok", "Succeeded", "2026-01-01T04:00:00Z", Some("2026-01-01T04:01:00Z"), "ok")
        ]
    }))
    .await;
    let out = plugin(&["approve", "springfield-nightly", "r-ok", "-n", &district.ns]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("not Held"), "{:?}", text(&out));
    assert_eq!(district.annotation(APPROVE_REMOVALS_ANNOTATION).await, None);
    let out = plugin(&[
        "approve",
        "springfield-nightly",
        "r-held",
        "-n",
        &district.ns,
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        district
            .annotation(APPROVE_REMOVALS_ANNOTATION)
            .await
            .as_deref(),
        Some("r-held")
    );
}

#[tokio::test]
async fn history_falls_back_to_recent_runs() {
    let Some(district) = District::new("plugin-history").await else {
        return;
    };
    district.set_schedule_status(json!({
        "recentRuns": [
            run("r-3", "Failed", "2026-01-03T04:00:00Z", Some("2026-01-03T04:01:00Z"), "CleverUnavailable: 503 from Clever"),
            run("r-2", "Succeeded", "2026-01-02T04:00:00Z", Some("2026-01-02T04:01:00Z"), "children: created 2"),
            run("r-1", "Succeeded", "2026-01-01T04:00:00Z", Some("2026-01-01T04:01:00Z"), "children: created 40")
        ]
    }))
    .await;
    let out = plugin(&["history", "springfield", "-n", &district.ns, "--limit", "2"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("status.recentRuns"), "{stderr}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("r-")).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows[0].starts_with("r-3") && rows[0].contains("Failed") && rows[0].contains("503"));
    assert!(rows[1].starts_with("r-2"));
}

#[tokio::test]
async fn history_reads_sync_runs_from_postgres() {
    let Some(district) = District::new("plugin-pghistory").await else {
        return;
    };
    let Some(db) = common::fresh_db().await else {
        return;
    };
    // The schema the sync engine writes: the real migrations, not a copy of them.
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    let conn_key = format!("{}/springfield", district.ns);
    for (id, conn, started, result, counts, reason) in [
        (
            "db-1",
            conn_key.as_str(),
            "2026-01-01T04:00:00Z",
            "Succeeded",
            json!({"children": {"created": 7}}),
            None,
        ),
        (
            "db-2",
            conn_key.as_str(),
            "2026-01-02T04:00:00Z",
            "Held",
            json!({}),
            Some("RemovalGuard"),
        ),
        (
            "other",
            "elsewhere/springfield",
            "2026-01-03T04:00:00Z",
            "Succeeded",
            json!({}),
            None,
        ),
    ] {
        sqlx::query(
            "INSERT INTO sync_runs (run_id, connection, trigger, started_at, finished_at, result, counts, reason)
             VALUES ($1, $2, 'Scheduled', $3::timestamptz, $3::timestamptz + interval '1 minute', $4, $5, $6)",
        )
        .bind(id)
        .bind(conn)
        .bind(started)
        .bind(result)
        .bind(counts)
        .bind(reason)
        .execute(&db.pool)
        .await
        .expect("insert run");
    }
    let out = std::process::Command::new(BIN)
        .args(["history", "springfield-nightly", "-n", &district.ns])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run plugin");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("(sync_runs)"), "{stdout}\n{stderr}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("db-") || l.starts_with("other"))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[0].starts_with("db-2") && rows[0].contains("Held") && rows[0].contains("RemovalGuard")
    );
    assert!(rows[1].starts_with("db-1") && rows[1].contains("children: 7 created"));
}

/// `kubectl roster sync-now springfield-nightly --wait --timeout TIMEOUT` in `ns`.
fn sync_now_wait(ns: &str, timeout: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args([
        "sync-now",
        "springfield-nightly",
        "-n",
        ns,
        "--wait",
        "--timeout",
        timeout,
    ])
    .env_remove("DATABASE_URL");
    cmd
}

async fn finish(child: tokio::process::Child) -> (i32, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl-roster did not exit")
        .expect("wait for kubectl-roster");
    let (stdout, stderr) = text(&out);
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[tokio::test]
async fn sync_now_wait_reports_the_finished_run() {
    let Some(district) = District::new("plugin-wait").await else {
        return;
    };
    let old = old_run();
    district
        .set_schedule_status(json!({"lastRun": old, "recentRuns": [old],
        "syncNow": {"available": true, "reason": "Available"}}))
        .await;
    let (child, token) = district.start_wait("2m").await;

    // The simulated controller: accepts (a new active run) ...
    let running = json!({"job": "springfield-now", "runId": "r-now", "trigger": "Manual",
        "result": "Running", "startedAt": "2026-01-05T10:00:00Z", "summary": ""});
    district
        .set_schedule_status(json!({"active": ["springfield-now"], "lastRun": running,
        "syncNow": {"available": false, "reason": "RunActive", "lastHandledToken": token}}))
        .await;
    // ... and finishes the run.
    let done = run(
        "r-now",
        "Succeeded",
        "2026-01-05T10:00:00Z",
        Some("2026-01-05T10:02:30Z"),
        "children: created 12, updated 3",
    );
    district
        .set_schedule_status(json!({"active": [], "lastRun": done,
        "recentRuns": [done, old]}))
        .await;

    let (code, stdout, stderr) = finish(child).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("Sync Succeeded: run r-now"), "{stdout}");
    assert!(stdout.contains("in 2m"), "{stdout}");
    assert!(
        stdout.contains("children: created 12, updated 3"),
        "{stdout}"
    );
}

#[tokio::test]
async fn sync_now_wait_fails_on_a_failed_run() {
    let Some(district) = District::new("plugin-waitfail").await else {
        return;
    };
    let (child, token) = district.start_wait("2m").await;
    let failed = run(
        "r-bad",
        "Failed",
        "2026-01-05T10:00:00Z",
        Some("2026-01-05T10:00:05Z"),
        "CredentialsInvalid: Clever rejected the district token",
    );
    district
        .set_schedule_status(json!({"lastRun": failed, "recentRuns": [failed],
        "syncNow": {"available": true, "reason": "Available", "lastHandledToken": token}}))
        .await;
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("Sync Failed: run r-bad"), "{stdout}");
    assert!(stdout.contains("CredentialsInvalid"), "{stdout}");
}

#[tokio::test]
async fn sync_now_wait_rejection_exits_nonzero_with_the_reason() {
    let Some(district) = District::new("plugin-reject").await else {
        return;
    };
    let old = old_run();
    district
        .set_schedule_status(json!({"lastRun": old, "recentRuns": [old]}))
        .await;
    let (child, token) = district.start_wait("2m").await;

    // The simulated controller rejects: an Event, and the token handled without a new run.
    let sched = district.schedule().await;
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"generateName": "springfield-nightly."},
        "involvedObject": {"apiVersion": "rostersync.io/v1alpha1", "kind": "SyncSchedule",
            "name": "springfield-nightly", "namespace": district.ns, "uid": sched.metadata.uid},
        "reason": "SyncNowRejected", "type": "Warning",
        "message": "Sync Now was already used since the last scheduled run",
        "lastTimestamp": jiff::Timestamp::now().to_string(),
        "source": {"component": "rostersync-controller"}
    }))
    .expect("event");
    Api::<k8s_openapi::api::core::v1::Event>::namespaced(district.client.clone(), &district.ns)
        .create(&PostParams::default(), &event)
        .await
        .expect("create event");
    district
        .set_schedule_status(json!({"syncNow": {"available": false,
        "reason": "UsedSinceLastScheduledRun", "availableAfter": "2030-01-01T04:00:00Z",
        "lastHandledToken": token}}))
        .await;

    let (code, stdout, stderr) = finish(child).await;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("rejected: UsedSinceLastScheduledRun"),
        "{stderr}"
    );
    assert!(
        stderr.contains("already used since the last scheduled run"),
        "{stderr}"
    );
    assert!(
        stderr.contains("available again at 2030-01-01 04:00:00Z"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sync_now_wait_times_out_without_a_controller() {
    let Some(district) = District::new("plugin-timeout").await else {
        return;
    };
    let out = sync_now_wait(&district.ns, "2s")
        .output()
        .await
        .expect("run plugin");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("timed out after 2s"), "{stderr}");
}

#[tokio::test]
async fn preview_shows_the_schedule_and_next_sync() {
    let Some(district) = District::new("plugin-preview").await else {
        return;
    };
    let out = plugin(&["preview", "springfield", "-n", &district.ns]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Daily at 22:00 America/Chicago"),
        "{stdout}"
    );
}
