//! One e2e environment per test: a fresh namespace and database, an in-process Clever emulator,
//! the RBAC the Helm charts render (`hack/rbac/render.sh`, run at test time: the chart is the one
//! source, and `deploy/rbac/` is checked against it), the pod runner, and the controller as a
//! subprocess of the real binary running with its ServiceAccount's token (never as admin). Also
//! the status readers and waits the scenarios share. Each test binary uses only part of it.
#![allow(dead_code)]
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rostersync::api::{
    LastSync, RosterConnection, RunResult, RunStatus, SYNC_NOW_ANNOTATION, SyncSchedule,
};
use rostersync::devtools::emulator::{Emulator, EmulatorConfig, EmulatorHandle, Fault, FaultKind};
use serde_json::json;

use crate::common::{self, Proc, TestDb};

pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A weekly slot two days away (on a minute) and the `--clock-offset-seconds` value (the hidden
/// test flag; production reads the same clock) that puts the controller `lead` seconds before it
/// (a negative `lead`: that long after it).
pub fn slot_ahead(lead: i64) -> (jiff::Timestamp, String) {
    let real = jiff::Timestamp::now();
    let slot_s = (real.as_second() + 2 * 86_400) / 60 * 60;
    let slot = jiff::Timestamp::from_second(slot_s).expect("slot");
    let offset = slot_s - real.as_second() - lead;
    (slot, offset.to_string())
}

/// The last run in a schedule's status.
pub fn last_run(s: &SyncSchedule) -> Option<&RunStatus> {
    s.status.as_ref()?.last_run.as_ref()
}

/// The last run's id and result, once it has a result.
pub fn last_result(s: &SyncSchedule) -> Option<(String, RunResult)> {
    let run = last_run(s)?;
    Some((run.run_id.clone(), run.result?))
}

/// Whether the status says Sync Now is available.
pub fn sync_now_available(s: &SyncSchedule) -> bool {
    s.status
        .as_ref()
        .and_then(|st| st.sync_now.as_ref())
        .is_some_and(|n| n.available)
}

/// The last Sync Now token the controller handled (accepted or rejected).
pub fn handled_token(s: &SyncSchedule) -> Option<&str> {
    s.status
        .as_ref()?
        .sync_now
        .as_ref()?
        .last_handled_token
        .as_deref()
}

pub struct Env {
    pub client: Client,
    pub ns: String,
    pub db: TestDb,
    pub emulator: EmulatorHandle,
    pub controller_kubeconfig: std::path::PathBuf,
    _runner: Proc,
    _dir: tempfile::TempDir,
}

/// The RBAC manifests as the charts render them now (`hack/rbac/render.sh --out DIR`, with `helm`
/// from PATH): `controller.yaml` and `sync.yaml`, each parsed into its documents.
pub fn chart_rbac(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let script = common::repo_path("hack/rbac/render.sh");
    let out = std::process::Command::new(&script)
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "hack/rbac/render.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ["controller.yaml", "sync.yaml", "people.yaml"]
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(dir.join(file)).expect("rendered RBAC");
            serde_yaml_ng::Deserializer::from_str(&text)
                .map(|doc| {
                    let v: serde_yaml_ng::Value =
                        serde::Deserialize::deserialize(doc).expect("yaml");
                    serde_json::to_value(v).expect("json")
                })
                .filter(|v| !v.is_null())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn object_name(value: &serde_json::Value) -> String {
    value["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string()
}

/// Applies an object of the chart-rendered RBAC in namespace `ns` (its subjects too).
async fn apply_in<K>(client: &Client, ns: &str, mut value: serde_json::Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    value["metadata"]["namespace"] = json!(ns);
    if let Some(subjects) = value.get_mut("subjects").and_then(|s| s.as_array_mut()) {
        for s in subjects {
            s["namespace"] = json!(ns);
        }
    }
    let api = Api::<K>::namespaced(client.clone(), ns);
    common::apply(&api, &object_name(&value), &value).await;
}

impl Env {
    /// Everything but the controller. `None` (skipped) without servers.
    pub async fn new(prefix: &str, students: u32) -> Option<Env> {
        let client = common::kube_client().await?;
        let db = common::fresh_db().await?;
        common::install_crds(&client).await;
        let ns = common::fresh_namespace(&client, prefix).await;
        let emulator = Emulator::start(EmulatorConfig::generated(7, students))
            .await
            .expect("emulator");

        // RBAC exactly as the charts render it, bound in the test namespace.
        let dir = tempfile::tempdir().expect("tempdir");
        for doc in chart_rbac(dir.path()) {
            match doc["kind"].as_str() {
                Some("ClusterRole") => {
                    let api = Api::<ClusterRole>::all(client.clone());
                    common::apply(&api, &object_name(&doc), &doc).await
                }
                Some("Role") => apply_in::<Role>(&client, &ns, doc).await,
                Some("ServiceAccount") => apply_in::<ServiceAccount>(&client, &ns, doc).await,
                Some("RoleBinding") => apply_in::<RoleBinding>(&client, &ns, doc).await,
                Some("ClusterRoleBinding") => {
                    // Namespace-scoped in tests: the same ClusterRole through a RoleBinding.
                    let mut rb = doc.clone();
                    rb["kind"] = json!("RoleBinding");
                    apply_in::<RoleBinding>(&client, &ns, rb).await
                }
                _ => {}
            }
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        for (name, key, value) in [
            ("rostersync-database", "url", db.url.clone()),
            ("clever", "token", emulator.token().to_string()),
        ] {
            let s: Secret = serde_json::from_value(
                json!({"metadata": {"name": name}, "stringData": {key: value}}),
            )
            .expect("secret");
            secrets
                .create(&PostParams::default(), &s)
                .await
                .expect("create secret");
        }
        let controller_kubeconfig = dir.path().join("controller.kubeconfig");
        common::wait_for("a controller token", TIMEOUT, || {
            let (client, ns, path) = (client.clone(), ns.clone(), controller_kubeconfig.clone());
            async move {
                rostersync::devtools::podrunner::service_account_kubeconfig(
                    &client,
                    &ns,
                    "rostersync-controller",
                    &path,
                )
                .await
                .ok()
            }
        })
        .await;
        let runner = common::start_pod_runner(&ns);
        Some(Env {
            client,
            ns,
            db,
            emulator,
            controller_kubeconfig,
            _runner: runner,
            _dir: dir,
        })
    }

    /// An environment with a controller running (no extra flags). Returns the environment and
    /// the controller; `None` (skipped) without servers.
    pub async fn with_controller(prefix: &str, students: u32) -> Option<(Env, Proc)> {
        let env = Env::new(prefix, students).await?;
        let controller = env.controller("controller", &[]);
        Some((env, controller))
    }

    /// The starting point of most Sync Now scenarios: [`Env::with_controller`], then
    /// [`Env::ready_schedule`] with default settings.
    pub async fn ready(prefix: &str, students: u32) -> Option<(Env, Proc)> {
        let (env, controller) = Env::with_controller(prefix, students).await?;
        env.ready_schedule(json!({})).await;
        Some((env, controller))
    }

    /// Clever answers the next `times` requests for sections with an HTML 404 page (like a proxy
    /// or a wrong base URL): sync runs fail.
    pub fn fail_sections(&self, times: u64) {
        self.emulator.add_fault(Fault::new(
            Some("/v3.0/sections"),
            1,
            times,
            FaultKind::Html404,
        ));
    }

    /// Clever delays every response under `path` (any path when `None`) by `ms` milliseconds, so
    /// a sync run lasts long enough to act on it while it runs.
    pub fn slow_clever(&self, path: Option<&str>, ms: u64) {
        self.emulator
            .add_fault(Fault::new(path, 1, 100_000, FaultKind::Delay { ms }));
    }

    /// Starts a controller for this namespace (`extra` flags appended).
    pub fn controller(&self, name: &str, extra: &[&str]) -> Proc {
        self.controller_with_metrics(name, "127.0.0.1:0", extra)
    }

    /// Like [`Env::controller`], with the admin server (`/metrics`, ...) on `metrics_addr`
    /// (clap rejects a repeated `--metrics-addr`, so it cannot go in `extra`).
    pub fn controller_with_metrics(&self, name: &str, metrics_addr: &str, extra: &[&str]) -> Proc {
        let allowed = self.allowed_api_host_arg();
        let mut args = vec![
            "controller",
            "--namespace",
            &self.ns,
            "--metrics-addr",
            metrics_addr,
            "--sync-image",
            "rostersync:test",
            "--lease-namespace",
            &self.ns,
            &allowed,
        ];
        // Slots fire on time unless a test asks for jitter: tests place the clock at a slot.
        if !extra.contains(&"--slot-jitter-seconds") {
            args.extend_from_slice(&["--slot-jitter-seconds", "0"]);
        }
        args.extend_from_slice(extra);
        let kubeconfig = self.controller_kubeconfig.display().to_string();
        Proc::start(
            name,
            &args,
            &[
                ("KUBECONFIG", &kubeconfig),
                ("DATABASE_URL", &self.db.url),
                ("RUST_LOG", "info,rostersync=debug"),
            ],
        )
    }

    /// The emulator's exact `host:port`, the one Clever API host the tests' controllers allow.
    pub fn emulator_host(&self) -> String {
        let url = self.emulator.base_url();
        format!(
            "{}:{}",
            url.host_str().expect("emulator host"),
            url.port_or_known_default().expect("emulator port")
        )
    }

    /// `--allowed-api-host=<the emulator's host:port>`.
    pub fn allowed_api_host_arg(&self) -> String {
        format!("--allowed-api-host={}", self.emulator_host())
    }

    pub fn connections(&self) -> Api<RosterConnection> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn schedules(&self) -> Api<SyncSchedule> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn district_id(&self) -> String {
        self.emulator.district_id()
    }

    pub async fn create_connection(
        &self,
        name: &str,
        district_id: &str,
        settings: serde_json::Value,
    ) {
        let c: RosterConnection = serde_json::from_value(json!({
            "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
            "metadata": {"name": name},
            "spec": {"districtId": district_id, "apiBaseUrl": self.emulator.base_url().as_str().trim_end_matches('/'),
                     "credentialsSecretRef": {"name": "clever"}, "settings": settings,
                     "sharing": {"grades": ["InfantToddler", "Preschool", "PreKindergarten", "TransitionalKindergarten", "Kindergarten", "1", "2", "3", "4", "5"]}}
        }))
        .expect("connection");
        self.connections()
            .create(&PostParams::default(), &c)
            .await
            .expect("create connection");
    }

    /// A weekly schedule; `slot` (UTC) picks its day and time, else a slot far away.
    pub async fn create_schedule(
        &self,
        name: &str,
        connection: &str,
        slot: Option<jiff::Timestamp>,
        suspend: bool,
    ) {
        let t =
            slot.unwrap_or_else(|| jiff::Timestamp::now() + jiff::SignedDuration::from_hours(72));
        let zoned = t.to_zoned(jiff::tz::TimeZone::UTC);
        let day = format!("{:?}", zoned.weekday());
        let s: SyncSchedule = serde_json::from_value(json!({
            "apiVersion": "rostersync.io/v1alpha1", "kind": "SyncSchedule",
            "metadata": {"name": name},
            "spec": {"connectionRef": {"name": connection}, "frequency": "Weekly", "dayOfWeek": day,
                     "at": format!("{:02}:{:02}", zoned.hour(), zoned.minute()), "timeZone": "UTC",
                     "suspend": suspend, "job": {"backoffLimit": 0, "activeDeadlineSeconds": 600}}
        }))
        .expect("schedule");
        self.schedules()
            .create(&PostParams::default(), &s)
            .await
            .expect("create schedule");
    }

    /// The usual starting point of a scenario: connection `springfield` (with `settings`, to the
    /// emulator's district) and schedule `nightly` (a weekly slot far away, not suspended), once
    /// the connection is Verified.
    pub async fn verified_schedule(&self, settings: serde_json::Value) {
        self.create_connection("springfield", &self.district_id(), settings)
            .await;
        self.create_schedule("nightly", "springfield", None, false)
            .await;
        self.connection_reason("springfield", "Verified").await;
    }

    /// [`Env::verified_schedule`], then waits until Sync Now is available on `nightly`.
    pub async fn ready_schedule(&self, settings: serde_json::Value) {
        self.verified_schedule(settings).await;
        self.wait_sync_now_available("Sync Now available").await;
    }

    /// Waits until Sync Now is available on `nightly`; `what` names the wait in a timeout.
    pub async fn wait_sync_now_available(&self, what: &str) -> SyncSchedule {
        self.schedule_until("nightly", what, sync_now_available)
            .await
    }

    /// Requests a Sync Now of `nightly` with `token` (a new token is a new request).
    pub async fn sync_now(&self, token: &str) {
        self.annotate("nightly", SYNC_NOW_ANNOTATION, token).await;
    }

    /// Requests a Sync Now of `nightly` with `token` and waits until the controller handled it
    /// (accepted or rejected).
    pub async fn sync_now_handled(&self, token: &str) -> SyncSchedule {
        self.sync_now(token).await;
        self.schedule_until("nightly", &format!("Sync Now {token} handled"), |s| {
            handled_token(s) == Some(token)
        })
        .await
    }

    /// Requests a Sync Now of `nightly` with `token` and waits until its run finished: the token
    /// handled and a last run that is none of `previous` and no longer Running. Returns that run.
    pub async fn sync_now_finished(&self, token: &str, previous: &[&str]) -> RunStatus {
        self.sync_now(token).await;
        let s = self
            .schedule_until(
                "nightly",
                &format!("the run of Sync Now {token} to finish"),
                |s| {
                    handled_token(s) == Some(token)
                        && last_run(s).is_some_and(|r| {
                            !previous.contains(&r.run_id.as_str())
                                && r.result.is_some_and(|res| res != RunResult::Running)
                        })
                },
            )
            .await;
        last_run(&s).cloned().expect("last run")
    }

    /// Waits until the last run of `nightly` has a result and `check(run id, result)` holds;
    /// returns the run's id and the schedule.
    pub async fn last_run_until(
        &self,
        what: &str,
        check: impl Fn(&str, RunResult) -> bool,
    ) -> (String, SyncSchedule) {
        let s = self
            .schedule_until("nightly", what, |s| {
                last_result(s).is_some_and(|(id, r)| check(&id, r))
            })
            .await;
        let (run_id, _) = last_result(&s).expect("last run");
        (run_id, s)
    }

    /// Waits until connection `springfield` reports run `run_id` as its last sync.
    pub async fn connection_last_sync(&self, run_id: &str) -> LastSync {
        common::wait_for(
            &format!("run {run_id} as the connection's lastSync"),
            TIMEOUT,
            || async {
                let c = self.connections().get("springfield").await.ok()?;
                c.status?.last_sync.filter(|l| l.run_id == run_id)
            },
        )
        .await
    }

    pub async fn annotate(&self, schedule: &str, key: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.schedules()
            .patch(schedule, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate schedule");
    }

    /// The connection as the API server returns it (JSON), as Argo CD and Flux see it.
    pub async fn connection_json(&self, name: &str) -> serde_json::Value {
        let c = self.connections().get(name).await.expect("get connection");
        serde_json::to_value(c).expect("connection JSON")
    }

    /// Waits until the connection's Ready condition has `reason`, and returns its message.
    pub async fn connection_reason(&self, name: &str, reason: &str) -> String {
        let api = self.connections();
        common::wait_for(
            &format!("connection {name} Ready reason {reason}"),
            TIMEOUT,
            || {
                let api = api.clone();
                async move {
                    let c = api.get(name).await.ok()?;
                    c.status?
                        .conditions
                        .into_iter()
                        .find(|c| c.type_ == "Ready" && c.reason == reason)
                        .map(|c| c.message)
                }
            },
        )
        .await
    }

    /// Waits until `check` holds on the schedule's status.
    pub async fn schedule_until(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&SyncSchedule) -> bool,
    ) -> SyncSchedule {
        // A poll of its own rather than common::wait_for: a timeout shows the last status seen.
        let api = self.schedules();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let got = api.get(name).await;
            if let Ok(s) = &got
                && check(s)
            {
                return s.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                let last = match &got {
                    Ok(s) => serde_json::to_string(&s.status).unwrap_or_default(),
                    Err(e) => format!("not readable: {e}"),
                };
                panic!(
                    "timed out after {TIMEOUT:?} waiting for {what} ({name}); last status: {last}"
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn job_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .jobs()
            .list(&ListParams::default())
            .await
            .expect("jobs")
            .items
            .iter()
            .map(|j| j.name_any())
            .collect();
        names.sort();
        names
    }

    /// Reasons of the Events about an object, oldest first.
    pub async fn event_reasons(&self, name: &str) -> Vec<(String, String)> {
        use k8s_openapi::api::events::v1::Event;
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let mut events = api
            .list(&ListParams::default())
            .await
            .expect("events")
            .items;
        events.retain(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name));
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Waits for an Event with `reason` about `name` and returns its note.
    pub async fn event(&self, name: &str, reason: &str) -> String {
        common::wait_for(
            &format!("a {reason} Event on {name}"),
            TIMEOUT,
            || async move {
                self.event_reasons(name)
                    .await
                    .into_iter()
                    .find(|(r, _)| r == reason)
                    .map(|(_, n)| n)
            },
        )
        .await
    }

    /// The value of a `SELECT count(*) ...` query on the test database.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Waits until the run's row in `sync_runs` has `result` (e.g. `Running`: the run recorded
    /// itself).
    pub async fn wait_run_row(&self, run_id: &str, result: &str) {
        common::wait_for(&format!("run {run_id}'s {result} row"), TIMEOUT, || async {
            self.run_result(run_id)
                .await
                .filter(|(r, _)| r == result)
                .map(|_| ())
        })
        .await;
    }

    pub async fn run_result(&self, run_id: &str) -> Option<(String, Option<String>)> {
        sqlx::query_as("SELECT result, reason FROM sync_runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.db.pool)
            .await
            .expect("query sync_runs")
    }
}
