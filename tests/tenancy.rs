//! Many districts, one cluster (issue #14, first part), on the real API server: a district editor
//! (the chart's `rostersync-district-editor` ClusterRole, bound in the district namespace, used
//! through impersonation) cannot send the district's Clever credentials anywhere the operator does
//! not allow, cannot read Secrets, and names of up to 200 characters sync like short ones.
mod common;
#[path = "controller/env.rs"]
mod env;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use env::{Env, TIMEOUT, handled_token, last_run};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rostersync::api::{RosterConnection, RunResult, SYNC_NOW_ANNOTATION, SyncSchedule};
use serde_json::json;

const EDITOR: &str = "district-editor@example.org";
const VIEWER: &str = "district-viewer@example.org";

/// A plain TCP listener on loopback that counts the connections it receives (and answers none):
/// the host a district editor would like the credentials sent to.
struct Trap {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    async fn start() -> Trap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the trap listener");
        let port = listener.local_addr().expect("trap address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Trap {
            port,
            connections,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client that acts as `user` (impersonation through the admin kubeconfig).
async fn client_as(user: &str) -> Client {
    let mut config = kube::Config::infer().await.expect("kubeconfig");
    config.auth_info.impersonate = Some(user.to_string());
    Client::try_from(config).expect("impersonating client")
}

/// Binds the operator chart's ClusterRole `role` to `user` in `ns` (as a platform team would).
async fn bind(env: &Env, role: &str, user: &str) {
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    }))
    .expect("role binding");
    Api::<RoleBinding>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &rb)
        .await
        .expect("create the RoleBinding");
}

/// `kubectl auth can-i VERB RESOURCE -n NS --as USER` (`RESOURCE/SUB`: `--subresource SUB`).
fn can_i(user: &str, verb: &str, resource: &str, ns: &str) -> bool {
    let mut args = vec!["auth", "can-i", verb, "-n", ns, "--as", user];
    match resource.split_once('/') {
        Some((kind, sub)) => args.extend([kind, "--subresource", sub]),
        None => args.push(resource),
    }
    let (_, out, err) = common::kubectl(&args);
    match out.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i {verb} {resource}: {other} {err}"),
    }
}

fn connection(name: &str, district: &str, base: &str, secret: &str) -> RosterConnection {
    serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": name},
        "spec": {"districtId": district, "apiBaseUrl": base, "credentialsSecretRef": {"name": secret}}
    }))
    .expect("connection")
}

/// The editor points one connection with a district token and one with app credentials at a
/// listener the operator does not allow: both get `ApiHostNotAllowed` with a message naming the
/// host, the flag and the chart value, and the listener sees no connection at all, while the
/// editor's connection to the allowed host (the emulator) is Verified. The editor may edit the
/// three kinds and set the Sync Now annotation, but may not read Secrets; the viewer may only read.
#[tokio::test]
async fn an_editor_cannot_send_credentials_to_a_host_the_operator_does_not_allow() {
    let Some((env, _controller)) = Env::with_controller("tenancy-host", 10).await else {
        return;
    };
    let trap = Trap::start().await;
    bind(&env, "rostersync-district-editor", EDITOR).await;
    bind(&env, "rostersync-district-viewer", VIEWER).await;

    // The platform team created the credentials (the editor cannot read or write Secrets).
    let app: Secret = serde_json::from_value(json!({
        "metadata": {"name": "clever-app"},
        "stringData": {"client_id": "app-id", "client_secret": "app-secret-not-for-anyone"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &app)
        .await
        .expect("create the app credentials Secret");

    let editor = client_as(EDITOR).await;
    let conns: Api<RosterConnection> = Api::namespaced(editor.clone(), &env.ns);
    let district = env.district_id();
    let emulator = env
        .emulator
        .base_url()
        .as_str()
        .trim_end_matches('/')
        .to_string();
    for c in [
        connection("allowed", &district, &emulator, "clever"),
        connection("trap-token", &district, &trap.url(), "clever"),
        connection(
            "trap-app",
            &district,
            &format!("{}/v3.0/", trap.url()),
            "clever-app",
        ),
    ] {
        conns
            .create(&PostParams::default(), &c)
            .await
            .unwrap_or_else(|e| panic!("the editor creates {}: {e}", c.name_any()));
    }
    env.connection_reason("allowed", "Verified").await;
    for name in ["trap-token", "trap-app"] {
        let message = env.connection_reason(name, "ApiHostNotAllowed").await;
        for part in [
            trap.host().as_str(),
            "--allowed-api-host",
            "clever.allowedApiHosts",
        ] {
            assert!(message.contains(part), "{name}: {part} missing: {message}");
        }
        assert!(!message.contains("app-secret"), "{message}");
        let c = env.connections().get(name).await.expect("get");
        let ready = c
            .status
            .expect("status")
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.status, "False");
    }
    // A schedule on the refused connection starts nothing: Sync Now is not available.
    let schedules: Api<SyncSchedule> = Api::namespaced(editor.clone(), &env.ns);
    let s: SyncSchedule = serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "SyncSchedule",
        "metadata": {"name": "trap", "annotations": {SYNC_NOW_ANNOTATION: "editor-1"}},
        "spec": {"connectionRef": {"name": "trap-token"}, "frequency": "Weekly", "dayOfWeek": "Sunday",
                 "at": "03:00", "timeZone": "UTC"}
    }))
    .expect("schedule");
    schedules
        .create(&PostParams::default(), &s)
        .await
        .expect("the editor creates a SyncSchedule with a Sync Now token");
    env.schedule_until("trap", "the Sync Now token handled", |s| {
        handled_token(s) == Some("editor-1")
    })
    .await;
    let jobs = env.jobs().list(&ListParams::default()).await.expect("jobs");
    assert!(
        jobs.items.is_empty(),
        "a Job was created for a refused host"
    );
    assert_eq!(
        trap.count(),
        0,
        "the listener the operator does not allow received a connection"
    );

    // What the identities may do, as the API server says.
    let ns = env.ns.as_str();
    assert!(!can_i(EDITOR, "get", "secrets", ns));
    assert!(!can_i(EDITOR, "list", "secrets", ns));
    assert!(!can_i(EDITOR, "create", "jobs", ns));
    assert!(can_i(
        EDITOR,
        "patch",
        "rosterconnections.rostersync.io",
        ns
    ));
    assert!(can_i(EDITOR, "delete", "syncschedules.rostersync.io", ns));
    assert!(!can_i(
        EDITOR,
        "patch",
        "rosterconnections.rostersync.io/status",
        ns
    ));
    assert!(!can_i(VIEWER, "get", "secrets", ns));
    assert!(can_i(VIEWER, "list", "journeypolicies.rostersync.io", ns));
    assert!(!can_i(VIEWER, "patch", "syncschedules.rostersync.io", ns));
    // Bound in this namespace only.
    assert!(!can_i(
        EDITOR,
        "get",
        "rosterconnections.rostersync.io",
        "default"
    ));
    // And the editor's own client is refused a Secret.
    let denied = Api::<Secret>::namespaced(editor, &env.ns)
        .get("clever")
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "{denied:?}"
    );
    assert_eq!(trap.count(), 0);
}

/// The sync Job enforces the operator's list too: `rostersync sync --connection NS/NAME` with
/// `--allowed-api-host` (as every Job gets it) refuses a connection pointing elsewhere, before any
/// request and not retriable (exit 2), with token and with app credentials.
#[tokio::test]
async fn a_sync_job_refuses_a_host_the_operator_does_not_allow() {
    let Some(env) = Env::new("tenancy-job", 10).await else {
        return;
    };
    let trap = Trap::start().await;
    let conns = env.connections();
    conns
        .create(
            &PostParams::default(),
            &connection("elsewhere", &env.district_id(), &trap.url(), "clever"),
        )
        .await
        .expect("create connection");
    let key = format!("{}/elsewhere", env.ns);
    let allowed = env.allowed_api_host_arg();
    let credentials: [&[(&str, &str)]; 2] = [
        &[("CLEVER_TOKEN", "district-token")],
        &[
            ("CLEVER_CLIENT_ID", "app-id"),
            ("CLEVER_CLIENT_SECRET", "app-secret"),
        ],
    ];
    for creds in credentials {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
        cmd.args([
            "sync",
            "--connection",
            &key,
            &allowed,
            "--run-id",
            "refused",
        ])
        .env("DATABASE_URL", &env.db.url)
        .env_remove("CLEVER_TOKEN")
        .env_remove("CLEVER_CLIENT_ID")
        .env_remove("CLEVER_CLIENT_SECRET");
        for (k, v) in creds {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run rostersync sync");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{creds:?}: {stderr}");
        assert!(
            stderr.contains(&trap.host()) && stderr.contains("not an allowed Clever API host"),
            "{stderr}"
        );
        assert!(!stderr.contains("app-secret") && !stderr.contains("district-token"));
    }
    assert_eq!(trap.count(), 0, "the refused host received a connection");
    rostersync::store::migrate(&env.db.pool)
        .await
        .expect("migrate");
    assert_eq!(
        env.count("SELECT count(*) FROM sync_runs WHERE run_id = 'refused'")
            .await,
        0
    );
}

/// A name of `len` characters: DNS labels of at most 63 joined by dots (a valid object name).
fn long_name(prefix: &str, len: usize) -> String {
    let mut name = String::from(prefix);
    while name.len() < len {
        let label_len = name.rsplit('.').next().map_or(0, str::len);
        if label_len >= 62 && name.len() + 2 <= len {
            name.push_str(".x");
        } else {
            name.push(char::from(b'a' + (name.len() % 26) as u8));
        }
    }
    name
}

/// RosterConnections and SyncSchedules named with 63, 64 and 200 characters: every Job is created
/// (labels fit: hashed beyond 63), carries the full names in its annotations, and Sync Now
/// succeeds for each, with the run recorded under the connection's full key.
#[tokio::test]
async fn names_of_63_64_and_200_characters_sync_now() {
    let Some((env, _controller)) = Env::with_controller("tenancy-names", 20).await else {
        return;
    };
    let district = env.district_id();
    let lengths = [63usize, 64, 200];
    let mut pairs = Vec::new();
    for len in lengths {
        let conn = long_name("c", len);
        let sched = long_name("s", len);
        assert_eq!((conn.len(), sched.len()), (len, len));
        env.create_connection(&conn, &district, json!({})).await;
        env.create_schedule(&sched, &conn, None, false).await;
        pairs.push((conn, sched));
    }
    for (conn, sched) in &pairs {
        env.connection_reason(conn, "Verified").await;
        env.schedule_until(sched, "Sync Now available", env::sync_now_available)
            .await;
        env.annotate(sched, SYNC_NOW_ANNOTATION, "long-1").await;
    }
    for (conn, sched) in &pairs {
        let s = env
            .schedule_until(sched, "the Sync Now run to finish", |s| {
                handled_token(s) == Some("long-1")
                    && last_run(s)
                        .is_some_and(|r| r.result.is_some_and(|res| res != RunResult::Running))
            })
            .await;
        let run = last_run(&s).expect("last run").clone();
        assert_eq!(
            run.result,
            Some(RunResult::Succeeded),
            "{} characters: {run:?}",
            conn.len()
        );
        assert!(run.run_id.len() <= 63, "{}", run.run_id);
        let key = format!("{}/{conn}", env.ns);
        let recorded: (String, String) =
            sqlx::query_as("SELECT connection, result FROM sync_runs WHERE run_id = $1")
                .bind(&run.run_id)
                .fetch_one(&env.db.pool)
                .await
                .expect("the run's row");
        assert_eq!(recorded, (key, "Succeeded".to_string()));
        let job = env.jobs().get(&run.job).await.expect("the run's Job");
        let labels = job.labels();
        for (label, full) in [
            ("rostersync.io/connection", conn),
            ("rostersync.io/schedule", sched),
        ] {
            let value = &labels[label];
            assert!(value.len() <= 63, "{label}={value}");
            assert_eq!(value == full, full.len() <= 63, "{label}={value}");
            assert_eq!(&job.annotations()[label], full);
        }
        // The connection's status reports the run (found through the full name).
        common::wait_for("the run as the connection's lastSync", TIMEOUT, || async {
            let c = env.connections().get(conn).await.ok()?;
            c.status?.last_sync.filter(|l| l.run_id == run.run_id)
        })
        .await;
    }
    // Two connections' run ids never meet: each is unique and carries 64 bits of hash.
    let ids: std::collections::BTreeSet<String> =
        sqlx::query_scalar("SELECT run_id FROM sync_runs")
            .fetch_all(&env.db.pool)
            .await
            .expect("run ids")
            .into_iter()
            .collect();
    assert_eq!(ids.len(), lengths.len());
}
