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
        self.start_wait_with(timeout, &[]).await
    }

    /// [`District::start_wait`] with more arguments.
    async fn start_wait_with(
        &self,
        timeout: &str,
        extra: &[&str],
    ) -> (tokio::process::Child, String) {
        let before = self.annotation(SYNC_NOW_ANNOTATION).await;
        let child = sync_now_wait(&self.ns, timeout)
            .args(extra)
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
        "--utc",
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
    assert_eq!(code, 5, "rejected: stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("rejected: UsedSinceLastScheduledRun"),
        "{stderr}"
    );
    assert!(
        stderr.contains("already used since the last scheduled run"),
        "{stderr}"
    );
    assert!(
        stderr.contains("available again at 2030-01-01T04:00:00Z"),
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
    assert_eq!(out.status.code(), Some(4), "{stderr}");
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

/// Runs the plugin and parses its stdout as a JSON document.
fn plugin_json(args: &[&str]) -> Value {
    let out = plugin(args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{stdout}"))
}

/// Creates an Event about `kind/name` in the district, last seen at `at`.
async fn create_event(
    district: &District,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
    at: &str,
) {
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{name}.")},
        "involvedObject": {"apiVersion": "rostersync.io/v1alpha1", "kind": kind,
            "name": name, "namespace": district.ns},
        "reason": reason, "type": "Normal", "message": message, "count": 1,
        "firstTimestamp": at, "lastTimestamp": at,
        "source": {"component": "rostersync-controller"}
    }))
    .expect("event");
    Api::<k8s_openapi::api::core::v1::Event>::namespaced(district.client.clone(), &district.ns)
        .create(&PostParams::default(), &event)
        .await
        .expect("create event");
}

fn is_rfc3339_utc(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && s.parse::<jiff::Timestamp>().is_ok())
}

#[tokio::test]
async fn every_read_verb_prints_a_stable_json_document() {
    let Some(district) = District::new("plugin-json").await else {
        return;
    };
    let ns = district.ns.as_str();
    let next = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(90);
    district.set_schedule_status(json!({
        "conditions": [cond("Ready", true, "Scheduled", "ok")],
        "nextSyncTime": next.to_string(),
        "lastRun": run("r-2", "Succeeded", "2026-01-02T04:00:00Z", Some("2026-01-02T04:01:00Z"), "children: created 2"),
        "recentRuns": [
            run("r-2", "Succeeded", "2026-01-02T04:00:00Z", Some("2026-01-02T04:01:00Z"), "children: created 2"),
            run("r-1", "Failed", "2026-01-01T04:00:00Z", Some("2026-01-01T04:00:30Z"), "CleverUnavailable: 503")
        ],
        "syncNow": {"available": true, "reason": "Available"}
    }))
    .await;
    set_status(&district.api::<RosterConnection>(), "springfield",
        json!({"conditions": [cond("Ready", false, "SecretNotFound", "create the Secret springfield-clever")]})).await;
    create_event(
        &district,
        "SyncSchedule",
        "springfield-nightly",
        "SyncSucceeded",
        "run r-2 succeeded",
        "2026-01-02T04:01:00Z",
    )
    .await;
    create_event(
        &district,
        "RosterConnection",
        "springfield",
        "SecretNotFound",
        "no Secret",
        "2026-01-01T03:00:00Z",
    )
    .await;
    create_event(
        &district,
        "ConfigMap",
        "unrelated",
        "Whatever",
        "not ours",
        "2026-01-02T05:00:00Z",
    )
    .await;

    // status
    let doc = plugin_json(&["status", "-n", ns, "-o", "json"]);
    assert_eq!(doc["apiVersion"], "cli.rostersync.io/v1");
    assert_eq!(doc["kind"], "StatusList");
    let items = doc["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{doc:#}");
    let sched = items
        .iter()
        .find(|i| i["kind"] == "SyncSchedule")
        .expect("schedule item");
    assert_eq!(sched["name"], "springfield-nightly");
    assert_eq!(sched["namespace"], ns);
    assert_eq!(sched["health"], "Ready");
    assert_eq!(sched["ready"], true);
    assert_eq!(sched["lastResult"], "Succeeded");
    assert_eq!(sched["lastRunId"], "r-2");
    assert_eq!(sched["lastSync"], "2026-01-02T04:01:00Z");
    assert!(is_rfc3339_utc(&sched["nextSync"]), "{sched:#}");
    assert_eq!(sched["syncNow"]["available"], true);
    assert_eq!(sched["connection"], "springfield");
    let conn = items
        .iter()
        .find(|i| i["kind"] == "RosterConnection")
        .expect("connection item");
    assert_eq!(conn["ready"], false);
    assert_eq!(conn["health"], "SecretNotFound");
    assert_eq!(conn["message"], "create the Secret springfield-clever");
    // YAML is the same document.
    let out = plugin(&["status", "-n", ns, "-o", "yaml"]);
    let yaml: Value = serde_yaml_ng::from_slice(&out.stdout).expect("yaml");
    assert_eq!(yaml["items"], doc["items"]);
    // wide: absolute times (UTC with --utc) and the wide columns; CSV: the wide columns.
    let out = plugin(&["status", "-n", ns, "-o", "wide", "--utc"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.lines().next().unwrap_or("").contains("LAST RUN"),
        "{stdout}"
    );
    assert!(stdout.contains("2026-01-02T04:01:00Z"), "{stdout}");
    let out = plugin(&["status", "-n", ns, "-o", "csv"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.starts_with(
            "KIND,NAME,HEALTH,LAST RESULT,LAST SYNC,NEXT SYNC,SYNC NOW,LAST RUN,CONNECTION\r\n"
        ),
        "{stdout}"
    );

    // history (status.recentRuns without a database)
    let doc = plugin_json(&["history", "springfield", "-n", ns, "-o", "json"]);
    assert_eq!(doc["kind"], "RunList");
    let ids: Vec<&str> = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["runId"].as_str())
        .collect();
    assert_eq!(ids, ["r-2", "r-1"]);
    assert_eq!(doc["items"][1]["result"], "Failed");
    assert_eq!(doc["items"][1]["durationSeconds"], 30);
    assert_eq!(doc["items"][1]["summary"], "CleverUnavailable: 503");
    assert_eq!(doc["items"][0]["connection"], format!("{ns}/springfield"));
    assert_eq!(doc["items"][0]["source"], "status.recentRuns");

    // events: the three kinds' only, newest last
    let doc = plugin_json(&["events", "springfield", "-n", ns, "-o", "json"]);
    assert_eq!(doc["kind"], "EventList");
    let reasons: Vec<&str> = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["SecretNotFound", "SyncSucceeded"], "{doc:#}");
    assert_eq!(
        doc["items"][1]["object"],
        "SyncSchedule/springfield-nightly"
    );
    assert_eq!(doc["items"][1]["lastSeen"], "2026-01-02T04:01:00Z");
    assert_eq!(doc["items"][1]["type"], "Normal");
    let out = plugin(&["events", "springfield", "-n", ns]);
    let (stdout, _) = text(&out);
    assert!(stdout.starts_with("LAST SEEN"), "{stdout}");
    assert!(!stdout.contains("not ours"), "{stdout}");

    // preview
    let doc = plugin_json(&[
        "preview",
        "springfield",
        "-n",
        ns,
        "--count",
        "3",
        "-o",
        "json",
    ]);
    assert_eq!(doc["kind"], "SlotList");
    let slots = doc["items"].as_array().expect("items");
    assert_eq!(slots.len(), 3);
    for slot in slots {
        assert!(is_rfc3339_utc(&slot["at"]), "{slot}");
        assert!(
            slot["local"]
                .as_str()
                .is_some_and(|l| l.contains("T22:00:00")),
            "{slot}"
        );
    }

    // sync-now without --wait: the request
    let doc = plugin_json(&["sync-now", "springfield", "-n", ns, "-o", "json"]);
    assert_eq!(doc["kind"], "SyncNowResult");
    assert_eq!(doc["outcome"], "Requested");
    assert_eq!(doc["exitCode"], 0);
    assert_eq!(doc["schedule"], "springfield-nightly");
    assert_eq!(
        doc["token"].as_str(),
        district.annotation(SYNC_NOW_ANNOTATION).await.as_deref()
    );
}

/// A kubeconfig whose current context points at a dead port and whose second context, `real`,
/// is the test control plane (same credentials).
fn two_context_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = std::env::var("KUBECONFIG").expect("KUBECONFIG is set with the servers");
    let orig: Value = serde_yaml_ng::from_slice(&std::fs::read(&path).expect("read kubeconfig"))
        .expect("kubeconfig yaml");
    let current = orig["current-context"].as_str().expect("current-context");
    let ctx = orig["contexts"]
        .as_array()
        .expect("contexts")
        .iter()
        .find(|c| c["name"] == current)
        .expect("the current context")["context"]
        .clone();
    let cluster = orig["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["name"] == ctx["cluster"])
        .expect("its cluster")["cluster"]
        .clone();
    // A port nothing listens on: bind one, then free it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let mut dead_cluster = cluster.clone();
    dead_cluster["server"] = json!(format!("https://127.0.0.1:{dead_port}"));
    let doc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "dead", "cluster": dead_cluster}, {"name": "real", "cluster": cluster}],
        "users": orig["users"],
        "contexts": [
            {"name": "dead", "context": {"cluster": "dead", "user": ctx["user"]}},
            {"name": "real", "context": {"cluster": "real", "user": ctx["user"]}}
        ],
        "current-context": "dead"
    });
    let out = dir.join("two-contexts.kubeconfig");
    std::fs::write(&out, serde_yaml_ng::to_string(&doc).expect("yaml")).expect("write kubeconfig");
    out
}

#[tokio::test]
async fn global_flags_select_the_context_identity_and_timeout() {
    let Some(district) = District::new("plugin-context").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = two_context_kubeconfig(dir.path());
    let kc = kubeconfig.to_str().expect("utf-8 path");
    let ns = district.ns.as_str();
    // The current context is dead: the plugin fails, quickly with --request-timeout.
    let started = std::time::Instant::now();
    let out = plugin(&[
        "status",
        "-n",
        ns,
        "--kubeconfig",
        kc,
        "--request-timeout",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    // --context picks the second one: the real control plane.
    let doc = plugin_json(&[
        "status",
        "-n",
        ns,
        "--kubeconfig",
        kc,
        "--context",
        "real",
        "-o",
        "json",
    ]);
    assert_eq!(doc["items"].as_array().map(Vec::len), Some(3), "{doc:#}");
    // $KUBECONFIG works the same way as --kubeconfig.
    let out = std::process::Command::new(BIN)
        .args(["status", "-n", ns, "--context", "real", "-o", "json"])
        .env("KUBECONFIG", kc)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run plugin");
    assert!(out.status.success(), "{:?}", text(&out));
    // An unknown context is an error naming it.
    let out = plugin(&["status", "-n", ns, "--kubeconfig", kc, "--context", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("nope"), "{:?}", text(&out));
    // --as impersonates: a user without RBAC is forbidden; --as-group system:masters is allowed.
    let out = plugin(&["status", "-n", ns, "--as", "jane@example.com"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("forbidden"), "{:?}", text(&out));
    let doc = plugin_json(&[
        "status",
        "-n",
        ns,
        "--as",
        "jane@example.com",
        "--as-group",
        "system:masters",
        "-o",
        "json",
    ]);
    assert_eq!(doc["items"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn sync_now_wait_prints_each_step_in_order_and_held_exits_3() {
    let Some(district) = District::new("plugin-steps").await else {
        return;
    };
    let old = old_run();
    district
        .set_schedule_status(json!({"lastRun": old, "recentRuns": [old],
        "syncNow": {"available": true, "reason": "Available"}}))
        .await;
    let (child, token) = district.start_wait("2m").await;
    district
        .set_schedule_status(json!({"active": ["springfield-now-1"],
        "syncNow": {"available": false, "reason": "RunActive", "lastHandledToken": token}}))
        .await;
    let held = run(
        "r-held",
        "Held",
        "2026-01-05T10:00:00Z",
        Some("2026-01-05T10:01:00Z"),
        "RemovalGuard: would deactivate 40% of children",
    );
    let mut held_run = held.clone();
    held_run["job"] = json!("springfield-now-1");
    district
        .set_schedule_status(
            json!({"active": [], "lastRun": held_run, "recentRuns": [held_run, old]}),
        )
        .await;
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!(code, 3, "held: stdout: {stdout}\nstderr: {stderr}");
    let steps = [
        "Sync Now requested for syncschedule/springfield-nightly",
        "token handled: the controller accepted the request",
        "Job created: springfield-now-1",
        "result: Sync Held: run r-held",
    ];
    let mut at = 0;
    for step in steps {
        let found = stdout[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing (in order) in:\n{stdout}"));
        at += found + step.len();
    }
    for line in stdout.lines() {
        assert!(
            line.starts_with('['),
            "every step line carries the elapsed time: {line:?}"
        );
    }
    assert!(
        stderr.contains("kubectl roster approve springfield-nightly r-held"),
        "{stderr}"
    );
}

#[tokio::test]
async fn logs_say_where_the_log_went_once_the_pod_is_gone() {
    let Some(district) = District::new("plugin-logs").await else {
        return;
    };
    let out = plugin(&["logs", "springfield", "-n", &district.ns]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("has no run yet"), "{:?}", text(&out));
    district
        .set_schedule_status(json!({"lastRun": old_run(), "recentRuns": [old_run()]}))
        .await;
    let out = plugin(&["logs", "springfield", "-n", &district.ns]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the pod of run r-old (job springfield-r-old) no longer exists"),
        "{stderr}"
    );
    assert!(stderr.contains("log collection"), "{stderr}");
    let out = plugin(&["logs", "springfield", "r-unknown", "-n", &district.ns]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("r-unknown"), "{:?}", text(&out));
}

#[tokio::test]
async fn status_watch_prints_again_on_a_change() {
    use tokio::io::AsyncBufReadExt as _;
    let Some(district) = District::new("plugin-watch").await else {
        return;
    };
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "status",
            "springfield-nightly",
            "-n",
            &district.ns,
            "--watch",
            "-o",
            "json",
        ])
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    // One JSON document per change; each ends with a `}` line.
    let mut next_doc = async || -> Value {
        let mut buf = String::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("a document within 30 s")
                .expect("read")
                .expect("stdout open");
            buf.push_str(&line);
            buf.push('\n');
            if line == "}" {
                return serde_json::from_str(&buf).expect("json document");
            }
        }
    };
    let first = next_doc().await;
    assert_eq!(first["items"][0]["lastResult"], Value::Null, "{first:#}");
    district
        .set_schedule_status(json!({"lastRun": old_run()}))
        .await;
    let second = next_doc().await;
    assert_eq!(second["items"][0]["lastResult"], "Succeeded", "{second:#}");
    let _ = child.kill().await;
}

#[test]
fn completion_scripts_for_both_binaries() {
    for (bin, shell, want) in [
        (BIN, "bash", "sync-now"),
        (BIN, "zsh", "sync-now"),
        (BIN, "fish", "sync-now"),
        (env!("CARGO_BIN_EXE_rostersync"), "bash", "controller"),
        (env!("CARGO_BIN_EXE_rostersync"), "fish", "controller"),
    ] {
        let out = std::process::Command::new(bin)
            .args(["completion", shell])
            .output()
            .expect("run");
        assert!(out.status.success(), "{bin} completion {shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(want), "{bin} {shell}:\n{script}");
        if bin != BIN {
            assert!(
                !script.contains("pod-runner") && !script.contains("clever-emulator"),
                "development tools stay out of completions too"
            );
        }
    }
}

/// The exit-code contract (README "Exit codes"), run against both binaries.
#[tokio::test]
async fn exit_code_contract_of_both_binaries() {
    let rostersync = env!("CARGO_BIN_EXE_rostersync");
    let code = |bin: &str, args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .expect("run")
            .status
            .code()
    };
    // Without servers: ok, usage, failed.
    assert_eq!(code(rostersync, &["crds"]), Some(0));
    assert_eq!(code(rostersync, &["--no-such-flag"]), Some(2));
    assert_eq!(
        code(
            rostersync,
            &["history", "--database-url", "postgres://u@127.0.0.1:1/db"]
        ),
        Some(1)
    );
    assert_eq!(code(BIN, &["--help"]), Some(0));
    assert_eq!(code(BIN, &["status", "--no-such-flag"]), Some(2));
    assert_eq!(code(BIN, &["sync-now", "x", "--timeout", "soon"]), Some(2));
    for bin in [BIN, rostersync] {
        let out = std::process::Command::new(bin)
            .arg("--help")
            .output()
            .expect("run");
        let help = String::from_utf8_lossy(&out.stdout);
        for line in [
            "0  ok",
            "1  failed",
            "2  usage",
            "3  held",
            "4  timed out",
            "5  rejected",
        ] {
            assert!(help.contains(line), "{bin} --help lacks {line:?}:\n{help}");
        }
    }
    let Some(district) = District::new("plugin-exit").await else {
        return;
    };
    let ns = district.ns.as_str();
    assert_eq!(code(BIN, &["status", "-n", ns]), Some(0));
    assert_eq!(code(BIN, &["status", "nope", "-n", ns]), Some(1));
    // 4: timed out
    assert_eq!(
        code(
            BIN,
            &[
                "sync-now",
                "springfield",
                "-n",
                ns,
                "--wait",
                "--timeout",
                "1s"
            ]
        ),
        Some(4)
    );
    // 5: rejected; 1: failed; 3: held (the controller simulated through status)
    for (result, want) in [
        ("Rejected", 5),
        ("Failed", 1),
        ("Held", 3),
        ("Succeeded", 0),
    ] {
        let (child, token) = district.start_wait("1m").await;
        let status = if result == "Rejected" {
            json!({"syncNow": {"available": false, "reason": "UsedSinceLastScheduledRun", "lastHandledToken": token}})
        } else {
            let id = format!("r-{}", result.to_lowercase());
            let r = run(
                &id,
                result,
                "2026-01-05T10:00:00Z",
                Some("2026-01-05T10:00:05Z"),
                result,
            );
            json!({"lastRun": r, "recentRuns": [r],
                   "syncNow": {"available": true, "reason": "Available", "lastHandledToken": token}})
        };
        district.set_schedule_status(status).await;
        let (code, stdout, stderr) = finish(child).await;
        assert_eq!(code, want, "{result}: stdout: {stdout}\nstderr: {stderr}");
    }
}

#[test]
fn krew_manifest_template_names_the_binary_for_each_platform() {
    let text = std::fs::read_to_string(common::repo_path("deploy/krew/roster.yaml")).expect("read");
    let filled = text
        .replace("${VERSION}", "0.1.0")
        .replace("${SHA256_LINUX_AMD64}", &"a".repeat(64))
        .replace("${SHA256_LINUX_ARM64}", &"b".repeat(64))
        .replace("${SHA256_DARWIN_ARM64}", &"c".repeat(64));
    assert!(!filled.contains("${"), "an unknown placeholder is left");
    let doc: Value = serde_yaml_ng::from_str(&filled).expect("yaml");
    assert_eq!(doc["kind"], "Plugin");
    assert_eq!(doc["metadata"]["name"], "roster", "kubectl roster");
    assert_eq!(doc["spec"]["version"], "v0.1.0");
    let platforms = doc["spec"]["platforms"].as_array().expect("platforms");
    assert!(platforms.len() >= 2);
    for p in platforms {
        assert_eq!(p["bin"], "kubectl-roster");
        assert!(
            p["uri"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://") && u.ends_with(".tar.gz"))
        );
        assert_eq!(p["sha256"].as_str().map(str::len), Some(64));
    }
}

#[tokio::test]
async fn sync_now_wait_quiet_prints_the_outcome_only() {
    let Some(district) = District::new("plugin-quiet").await else {
        return;
    };
    let (child, token) = district.start_wait_with("1m", &["--quiet"]).await;
    let done = run(
        "r-q",
        "Succeeded",
        "2026-01-05T10:00:00Z",
        Some("2026-01-05T10:00:40Z"),
        "children: created 1",
    );
    district
        .set_schedule_status(json!({"lastRun": done, "recentRuns": [done],
        "syncNow": {"available": false, "reason": "UsedSinceLastScheduledRun", "lastHandledToken": token}}))
        .await;
    let (code, stdout, stderr) = finish(child).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(
            "result: Sync Succeeded: run r-q (job springfield-r-q) in 40s; children: created 1"
        ),
        "{stdout}"
    );
    assert!(
        !stderr.contains('\r'),
        "no spinner off a terminal: {stderr:?}"
    );
}
