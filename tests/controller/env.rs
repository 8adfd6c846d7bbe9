//! One e2e environment per test: a fresh namespace and database, an in-process Clever emulator,
//! RBAC from `deploy/rbac/`, the pod runner, and the controller as a subprocess of the real binary
//! running with its ServiceAccount's token (never as admin).
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rostersync::api::{RosterConnection, SyncSchedule};
use rostersync::devtools::emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use serde_json::json;

use crate::common::{self, Proc, TestDb};

pub const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Env {
    pub client: Client,
    pub ns: String,
    pub db: TestDb,
    pub emulator: EmulatorHandle,
    pub controller_kubeconfig: std::path::PathBuf,
    _runner: Proc,
    _dir: tempfile::TempDir,
}

fn manifests(file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(common::repo_path(file)).expect("rbac manifest");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let v: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).expect("yaml");
            serde_json::to_value(v).expect("json")
        })
        .collect()
}

async fn apply<K>(api: &Api<K>, mut value: serde_json::Value, ns: Option<&str>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    if let Some(ns) = ns {
        value["metadata"]["namespace"] = json!(ns);
        if let Some(subjects) = value.get_mut("subjects").and_then(|s| s.as_array_mut()) {
            for s in subjects {
                s["namespace"] = json!(ns);
            }
        }
    }
    let name = value["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply("rostersync-tests").force(),
        &Patch::Apply(&value),
    )
    .await
    .expect("apply an RBAC object");
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

        // RBAC exactly as shipped, bound in the test namespace.
        for doc in manifests("deploy/rbac/controller.yaml")
            .into_iter()
            .chain(manifests("deploy/rbac/sync.yaml"))
        {
            match doc["kind"].as_str() {
                Some("ClusterRole") => {
                    apply(&Api::<ClusterRole>::all(client.clone()), doc, None).await
                }
                Some("Role") => {
                    apply(
                        &Api::<Role>::namespaced(client.clone(), &ns),
                        doc,
                        Some(&ns),
                    )
                    .await
                }
                Some("ServiceAccount") => {
                    apply(
                        &Api::<ServiceAccount>::namespaced(client.clone(), &ns),
                        doc,
                        Some(&ns),
                    )
                    .await
                }
                Some("RoleBinding") => {
                    apply(
                        &Api::<RoleBinding>::namespaced(client.clone(), &ns),
                        doc,
                        Some(&ns),
                    )
                    .await
                }
                Some("ClusterRoleBinding") => {
                    // Namespace-scoped in tests: the same ClusterRole through a RoleBinding.
                    let mut rb = doc.clone();
                    rb["kind"] = json!("RoleBinding");
                    apply(
                        &Api::<RoleBinding>::namespaced(client.clone(), &ns),
                        rb,
                        Some(&ns),
                    )
                    .await
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
        let dir = tempfile::tempdir().expect("tempdir");
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

    /// Starts a controller for this namespace (`extra` flags appended).
    pub fn controller(&self, name: &str, extra: &[&str]) -> Proc {
        self.controller_with_metrics(name, "127.0.0.1:0", extra)
    }

    /// Like [`Env::controller`], with the admin server (`/metrics`, ...) on `metrics_addr`
    /// (clap rejects a repeated `--metrics-addr`, so it cannot go in `extra`).
    pub fn controller_with_metrics(&self, name: &str, metrics_addr: &str, extra: &[&str]) -> Proc {
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
        ];
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

    pub async fn annotate(&self, schedule: &str, key: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.schedules()
            .patch(schedule, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate schedule");
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
        let api = self.schedules();
        let check = &check;
        common::wait_for(what, TIMEOUT, || {
            let api = api.clone();
            async move { api.get(name).await.ok().filter(|s| check(s)) }
        })
        .await
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

    pub async fn run_result(&self, run_id: &str) -> Option<(String, Option<String>)> {
        sqlx::query_as("SELECT result, reason FROM sync_runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.db.pool)
            .await
            .expect("query sync_runs")
    }
}
