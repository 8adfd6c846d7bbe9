//! The controller's scope and privileges, on the real control plane: which namespaces it watches
//! (`--namespace`, repeatable), that it reads Secrets as metadata plus targeted gets only, that the
//! operator chart grants Secrets only in the listed namespaces (`kubectl auth can-i` against a
//! `helm install`), and that with `--leader-elect` a standby replica is Ready while only the Lease
//! holder acts.
//!
//! The controller is the real binary with its ServiceAccount's token (tests/controller/env.rs); the
//! Secret test puts a recording proxy (plain HTTP on 127.0.0.1) between it and the API server, to
//! see what it asks for.
mod common;
#[path = "controller/env.rs"]
mod env;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use env::{Env, TIMEOUT};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use rostersync::api::{RosterConnection, RunResult};
use serde_json::json;

// ------------------------------------------------------------------------------------------------
// helpers

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

/// The value of the sample line `series` (name and labels, exactly); `None` if absent.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The sum of `rostersync_reconciles_total` over the kinds (0 when the series is absent: a
/// replica that never reconciled).
fn reconciles(text: &str) -> f64 {
    ["RosterConnection", "SyncSchedule", "JourneyPolicy"]
        .iter()
        .filter_map(|k| {
            sample(
                text,
                &format!("rostersync_reconciles_total{{kind=\"{k}\"}}"),
            )
        })
        .sum()
}

/// One replica's admin server.
struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    fn new(addr: &str) -> Admin {
        Admin {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
            base: format!("http://{addr}"),
        }
    }

    async fn readyz(&self) -> Option<u16> {
        get(&self.http, &format!("{}/readyz", self.base))
            .await
            .map(|(code, _)| code)
    }

    async fn metrics(&self) -> Option<String> {
        get(&self.http, &format!("{}/metrics", self.base))
            .await
            .filter(|(code, _)| *code == 200)
            .map(|(_, text)| text)
    }

    /// Waits until `/metrics` satisfies `check`; returns the text.
    async fn metrics_until(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let check = &check;
        common::wait_for(what, TIMEOUT, || async move {
            self.metrics().await.filter(|t| check(t))
        })
        .await
    }
}

/// Copies the Roles and RoleBindings of the environment's namespace into `ns` (their subjects stay
/// the ServiceAccounts of the environment's namespace): the controller then has the same
/// permissions in `ns` as at home, whatever the RBAC source names its objects.
async fn grant_controller_in(env: &Env, ns: &str) {
    let roles = Api::<Role>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .expect("list Roles");
    let target_roles: Api<Role> = Api::namespaced(env.client.clone(), ns);
    for role in roles.items {
        let name = role.name_any();
        let copy = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": ns},
            "rules": role.rules,
        });
        common::apply(&target_roles, &name, &copy).await;
    }
    let bindings = Api::<RoleBinding>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .expect("list RoleBindings");
    let target_bindings: Api<RoleBinding> = Api::namespaced(env.client.clone(), ns);
    for rb in bindings.items {
        let name = rb.name_any();
        let copy = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": rb.role_ref,
            "subjects": rb.subjects,
        });
        common::apply(&target_bindings, &name, &copy).await;
    }
}

async fn create_secret(env: &Env, ns: &str, name: &str, data: serde_json::Value) {
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
        .expect("secret");
    Api::<Secret>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap_or_else(|e| panic!("create Secret {ns}/{name}: {e}"));
}

async fn create_connection_in(env: &Env, ns: &str, name: &str) {
    let c: RosterConnection = serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": name},
        "spec": {"districtId": env.district_id(),
                 "apiBaseUrl": env.emulator.base_url().as_str().trim_end_matches('/'),
                 "credentialsSecretRef": {"name": "clever"}}
    }))
    .expect("connection");
    Api::<RosterConnection>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &c)
        .await
        .unwrap_or_else(|e| panic!("create RosterConnection {ns}/{name}: {e}"));
}

/// The Ready reason of a connection, if it has one.
async fn ready_reason(env: &Env, ns: &str, name: &str) -> Option<String> {
    let c = Api::<RosterConnection>::namespaced(env.client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    c.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason)
}

async fn wait_reason(env: &Env, ns: &str, name: &str, reason: &str) {
    common::wait_for(
        &format!("connection {ns}/{name} Ready reason {reason}"),
        TIMEOUT,
        || async { (ready_reason(env, ns, name).await.as_deref() == Some(reason)).then_some(()) },
    )
    .await;
}

// ------------------------------------------------------------------------------------------------
// a recording proxy between the controller and the API server

/// One request the controller made.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    accept: String,
}

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    server: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Forwards one request to the API server (streaming the answer: watches stay open) and records it.
async fn forward(
    axum::extract::State(up): axum::extract::State<Upstream>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    up.seen.lock().expect("seen").push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        accept,
    });
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut headers = parts.headers.clone();
    for h in [
        header::HOST,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(h);
    }
    let sent = up
        .client
        .request(parts.method, format!("{}{path_and_query}", up.server))
        .headers(headers)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status();
            let mut headers = resp.headers().clone();
            for h in [
                header::CONNECTION,
                header::TRANSFER_ENCODING,
                header::CONTENT_LENGTH,
            ] {
                headers.remove(h);
            }
            let mut out =
                axum::response::Response::new(axum::body::Body::from_stream(resp.bytes_stream()));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            out
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Starts a recording proxy for the API server of `kubeconfig` and writes `proxied`, the same
/// kubeconfig pointing at the proxy (plain HTTP on 127.0.0.1). Returns what the proxy saw.
async fn recording_proxy(
    kubeconfig: &std::path::Path,
    proxied: &std::path::Path,
) -> Arc<Mutex<Vec<Seen>>> {
    let mut config =
        kube::config::Kubeconfig::read_from(kubeconfig).expect("read the controller kubeconfig");
    let cluster = config
        .clusters
        .first_mut()
        .and_then(|c| c.cluster.as_mut())
        .expect("a cluster in the kubeconfig");
    let server = cluster.server.clone().expect("the cluster's server");
    let ca = match (
        &cluster.certificate_authority,
        &cluster.certificate_authority_data,
    ) {
        (Some(path), _) => std::fs::read(path).expect("read the CA file"),
        (None, Some(data)) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .expect("base64 CA")
        }
        (None, None) => panic!("the kubeconfig names no CA"),
    };
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA certificate"))
        .build()
        .expect("proxy client");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().fallback(forward).with_state(Upstream {
        client,
        server: server.trim_end_matches('/').to_string(),
        seen: seen.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    cluster.server = Some(format!("http://{addr}"));
    cluster.certificate_authority = None;
    cluster.certificate_authority_data = None;
    let text = serde_yaml_ng::to_string(&config).expect("kubeconfig YAML");
    std::fs::write(proxied, text).expect("write the proxied kubeconfig");
    seen
}

// ------------------------------------------------------------------------------------------------
// namespaces and Secrets

/// A controller started with two `--namespace` flags verifies the connections of both namespaces,
/// notices a rotated Secret in the second, and never touches a third namespace where it has the
/// same permissions. Secrets: collections only as metadata, data only by a get of the Secret a
/// connection names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_watches_only_the_listed_namespaces_and_reads_secrets_by_name() {
    let Some(env) = Env::new("ns-a", 20).await else {
        return;
    };
    let b = common::fresh_namespace(&env.client, "ns-b").await;
    let c = common::fresh_namespace(&env.client, "ns-c").await;
    for ns in [&b, &c] {
        grant_controller_in(&env, ns).await;
        create_secret(&env, ns, "clever", json!({"token": env.emulator.token()})).await;
        // A Secret no connection names: its data must never be read.
        create_secret(
            &env,
            ns,
            "unrelated",
            json!({"password": "not-for-rostersync"}),
        )
        .await;
    }
    create_secret(&env, &env.ns, "unrelated", json!({"password": "x"})).await;
    // The ignored namespace's connection exists before the controller starts.
    create_connection_in(&env, &c, "shelbyville").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let proxied = dir.path().join("proxied.kubeconfig");
    let seen = recording_proxy(&env.controller_kubeconfig, &proxied).await;
    let kubeconfig = proxied.display().to_string();
    let allowed = env.allowed_api_host_arg();
    let _controller = common::Proc::start(
        "controller-ns",
        &[
            "controller",
            &allowed,
            "--namespace",
            &env.ns,
            "--namespace",
            &b,
            "--metrics-addr",
            "127.0.0.1:0",
            "--sync-image",
            "rostersync:test",
            "--lease-namespace",
            &env.ns,
        ],
        &[
            ("KUBECONFIG", &kubeconfig),
            ("DATABASE_URL", &env.db.url),
            ("RUST_LOG", "info,rostersync=debug"),
        ],
    );

    create_connection_in(&env, &env.ns, "springfield").await;
    create_connection_in(&env, &b, "capital-city").await;
    wait_reason(&env, &env.ns, "springfield", "Verified").await;
    wait_reason(&env, &b, "capital-city", "Verified").await;

    // A rotated Secret in the second namespace is noticed (through the metadata watch).
    let secrets_b: Api<Secret> = Api::namespaced(env.client.clone(), &b);
    let rotate = |token: &str| json!({"stringData": {"token": token}});
    secrets_b
        .patch(
            "clever",
            &PatchParams::default(),
            &Patch::Merge(&rotate("revoked-token")),
        )
        .await
        .expect("rotate");
    wait_reason(&env, &b, "capital-city", "CredentialsInvalid").await;
    secrets_b
        .patch(
            "clever",
            &PatchParams::default(),
            &Patch::Merge(&rotate(env.emulator.token())),
        )
        .await
        .expect("rotate back");
    wait_reason(&env, &b, "capital-city", "Verified").await;

    // The third namespace: its connection, there before the others, was never reconciled ...
    let ignored = Api::<RosterConnection>::namespaced(env.client.clone(), &c)
        .get("shelbyville")
        .await
        .expect("the ignored connection");
    assert!(
        ignored.status.is_none(),
        "a connection outside the watched namespaces got a status: {:?}",
        ignored.status
    );
    let seen = seen.lock().expect("seen").clone();
    // ... and the controller made no request there at all.
    let in_c: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.contains(&format!("/namespaces/{c}/")))
        .collect();
    assert!(
        in_c.is_empty(),
        "requests in the ignored namespace: {in_c:#?}"
    );
    // Nothing cluster-wide either (every watch is namespaced).
    let cluster_wide: Vec<&Seen> = seen
        .iter()
        .filter(|s| {
            ["/api/v1/secrets", "/apis/batch/v1/jobs"].contains(&s.path.as_str())
                || s.path.starts_with("/apis/rostersync.io/v1alpha1/")
                    && !s.path.contains("/namespaces/")
        })
        .collect();
    assert!(
        cluster_wide.is_empty(),
        "cluster-wide requests: {cluster_wide:#?}"
    );

    // Secrets: list and watch in both namespaces, metadata only; data by name, only `clever`.
    let secret_requests: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.contains("/secrets"))
        .collect();
    for ns in [&env.ns, &b] {
        let collection = format!("/api/v1/namespaces/{ns}/secrets");
        let watches: Vec<&&Seen> = secret_requests
            .iter()
            .filter(|s| s.path == collection && s.query.contains("watch=true"))
            .collect();
        assert!(
            !watches.is_empty(),
            "no watch of Secrets in {ns}: {secret_requests:#?}"
        );
        let named_gets: Vec<&&Seen> = secret_requests
            .iter()
            .filter(|s| s.path == format!("{collection}/clever") && s.method == "GET")
            .filter(|s| !s.accept.contains("PartialObjectMetadata"))
            .collect();
        assert!(
            !named_gets.is_empty(),
            "no targeted get of the credentials Secret in {ns}: {secret_requests:#?}"
        );
        // Its version comes from the Secret watch's store, not from a request per reconcile
        // (one at most, while the store is not listed yet), rotations included.
        let metadata_gets = secret_requests
            .iter()
            .filter(|s| s.path == format!("{collection}/clever") && s.method == "GET")
            .filter(|s| s.accept.contains("PartialObjectMetadata"))
            .count();
        assert!(
            metadata_gets <= 1,
            "{metadata_gets} metadata reads of the credentials Secret in {ns}: {secret_requests:#?}"
        );
    }
    for s in &secret_requests {
        let (collection, name) = match s.path.split_once("/secrets/") {
            Some((c, n)) => (c, Some(n)),
            None => (s.path.as_str(), None),
        };
        assert!(collection.starts_with("/api/v1/namespaces/"), "{s:?}");
        // The connection's own database credential (dedicated tenancy): written with server-side
        // apply, and only its metadata read back (the fingerprint), never its data.
        // The connections here have short names: their credential Secrets are `<name>-database`.
        let credential = |n: &str| n.ends_with("-database");
        match (s.method.as_str(), name) {
            // A list or a watch: metadata only.
            ("GET", None) => assert!(
                s.accept.contains("as=PartialObjectMetadata"),
                "a list or watch of Secrets with their data: {s:?}"
            ),
            ("GET", Some("clever")) => {}
            ("GET", Some(n)) if credential(n) => assert!(
                s.accept.contains("as=PartialObjectMetadata"),
                "read the data of the database credential Secret: {s:?}"
            ),
            ("PATCH", Some(n)) if credential(n) => {}
            _ => panic!("a Secret call the controller must not make: {s:?}"),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// leader election

/// Two replicas with `--leader-elect`: both answer /readyz 200, exactly one holds the Lease and
/// acts (reconciles, writes status, publishes Events, creates the Job); when it stops, it releases
/// the Lease and the standby takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_are_ready_and_only_the_lease_holder_acts() {
    let Some(env) = Env::new("ns-leader", 40).await else {
        return;
    };
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let started = Instant::now();
    let mut a = env.controller_with_metrics(
        "controller-a",
        &addr_a,
        &["--leader-elect", "--identity", "a"],
    );
    let mut b = env.controller_with_metrics(
        "controller-b",
        &addr_b,
        &["--leader-elect", "--identity", "b"],
    );
    let (admin_a, admin_b) = (Admin::new(&addr_a), Admin::new(&addr_b));

    // Both Ready within the deadline, the standby included.
    let deadline = Duration::from_secs(60);
    for (name, admin) in [("a", &admin_a), ("b", &admin_b)] {
        common::wait_for(
            &format!("replica {name}'s /readyz to answer 200"),
            deadline,
            || async { (admin.readyz().await == Some(200)).then_some(()) },
        )
        .await;
    }
    eprintln!("both replicas Ready after {:?}", started.elapsed());

    // Exactly one holds the Lease, and the gauges agree.
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let holder = common::wait_for("a Lease holder", TIMEOUT, || async {
        let lease = leases.get_opt("rostersync-controller").await.ok()??;
        lease.spec?.holder_identity.filter(|h| h == "a" || h == "b")
    })
    .await;
    let (leader, standby, leader_admin, standby_admin, standby_name) = if holder == "a" {
        (&mut a, &mut b, &admin_a, &admin_b, "b")
    } else {
        (&mut b, &mut a, &admin_b, &admin_a, "a")
    };
    leader_admin
        .metrics_until("rostersync_leader 1 on the leader", |t| {
            sample(t, "rostersync_leader") == Some(1.0)
        })
        .await;
    standby_admin
        .metrics_until("rostersync_leader 0 on the standby", |t| {
            sample(t, "rostersync_leader") == Some(0.0)
        })
        .await;
    common::wait_for("the standby to log that it stands by", TIMEOUT, || async {
        standby.log_text().contains("standing by").then_some(())
    })
    .await;

    // The leader verifies, writes status, accepts a Sync Now, creates one Job.
    env.ready_schedule(json!({})).await;
    env.sync_now("once").await;
    env.last_run_until("the run to succeed", |_, r| r == RunResult::Succeeded)
        .await;
    assert_eq!(env.job_names().await.len(), 1);
    let leader_metrics = leader_admin
        .metrics_until("the leader's reconciles", |t| reconciles(t) > 0.0)
        .await;
    let standby_metrics = standby_admin.metrics().await.expect("standby /metrics");
    assert_eq!(
        reconciles(&standby_metrics),
        0.0,
        "the standby reconciled:\n{standby_metrics}"
    );
    assert_eq!(
        standby_admin.readyz().await,
        Some(200),
        "the standby turned unready"
    );
    eprintln!(
        "leader {holder}: {} reconciles; standby {standby_name}: 0",
        reconciles(&leader_metrics)
    );
    let standby_log = standby.log_text();
    assert!(
        !standby_log.contains("controller starting"),
        "the standby acted: {standby_log}"
    );
    // Every Event came from the leader.
    let instances = event_instances(&env).await;
    assert!(!instances.is_empty());
    assert!(
        instances.iter().all(|i| *i == holder),
        "Events from {instances:?}, leader {holder}"
    );

    // The leader stops (SIGTERM): it releases the Lease, the standby takes over and acts.
    let stopped = Instant::now();
    leader.stop().await;
    let status = leader.child.try_wait().expect("leader status");
    assert!(
        status.is_some_and(|s| s.success()),
        "the leader did not exit cleanly: {status:?}"
    );
    assert!(
        leader.log_text().contains("released the leader Lease"),
        "{}",
        leader.log_text()
    );
    common::wait_for("the standby to take the Lease", TIMEOUT, || async {
        let lease = leases.get_opt("rostersync-controller").await.ok()??;
        (lease.spec?.holder_identity.as_deref() == Some(standby_name)).then_some(())
    })
    .await;
    standby_admin
        .metrics_until("rostersync_leader 1 on the former standby", |t| {
            sample(t, "rostersync_leader") == Some(1.0)
        })
        .await;
    eprintln!("takeover after {:?}", stopped.elapsed());
    assert!(standby.log_text().contains("acquired the leader Lease"));
    // The new leader acts: a Sync Now of a new schedule (nightly's was used until its next slot)
    // creates its Job and the run succeeds; the Events say who acted.
    env.create_schedule("second", "springfield", None, false)
        .await;
    env.schedule_until(
        "second",
        "Sync Now available on second",
        env::sync_now_available,
    )
    .await;
    env.annotate(
        "second",
        rostersync::api::SYNC_NOW_ANNOTATION,
        "after-handover",
    )
    .await;
    let s = env
        .schedule_until("second", "the run of second's Sync Now to succeed", |s| {
            env::last_result(s).is_some_and(|(_, r)| r == RunResult::Succeeded)
        })
        .await;
    let job = env::last_run(&s).map(|r| r.job.clone()).unwrap_or_default();
    let jobs = env.job_names().await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(
        jobs.contains(&job) && job.starts_with("second-now-"),
        "{job} in {jobs:?}"
    );
    let new_leader_metrics = standby_admin
        .metrics_until("the new leader's reconciles", |t| reconciles(t) > 0.0)
        .await;
    eprintln!(
        "new leader {standby_name}: {} reconciles",
        reconciles(&new_leader_metrics)
    );
    let accepted = env.event("second", "SyncNowAccepted").await;
    assert!(accepted.contains("after-handover"), "{accepted}");
    let instances = event_instances(&env).await;
    assert!(
        instances.iter().any(|i| i == standby_name),
        "no Event from the new leader: {instances:?}"
    );
}

/// The `reportingInstance` of the Events in the environment's namespace.
async fn event_instances(env: &Env) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    Api::<Event>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("rostersync-controller"))
        .filter_map(|e| e.reporting_instance)
        .collect()
}

// ------------------------------------------------------------------------------------------------
// the operator chart's RBAC, as the API server enforces it

/// Whether `helm` and `kubectl` can run here; skips (or fails under hack/test.sh) when not.
fn tools_available() -> bool {
    let ok = [
        ("helm", &["version"][..]),
        ("kubectl", &["version", "--client"][..]),
    ]
    .iter()
    .all(|(tool, args)| {
        std::process::Command::new(tool)
            .args(*args)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        assert!(
            !common::servers_required(),
            "helm and kubectl are required under hack/test.sh but are not on PATH"
        );
        eprintln!("skipped: this test needs helm and kubectl on PATH; run hack/test.sh");
    }
    ok
}

/// Uninstalls a release (its cluster-scoped objects too) even when an assertion failed.
struct Release {
    name: String,
    namespace: String,
}

impl Release {
    fn install(name: &str, namespace: &str, extra: &[&str]) -> Release {
        let chart = common::repo_path("charts/rostersync");
        let chart = chart.to_string_lossy();
        let mut args = vec!["install", name, chart.as_ref(), "-n", namespace];
        args.extend_from_slice(extra);
        let (ok, out, err) = common::run_tool("helm", &args);
        assert!(ok, "helm install {args:?}: {out}{err}");
        Release {
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    /// The controller's ServiceAccount as a user name.
    fn controller(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}-rostersync",
            self.namespace, self.name
        )
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::process::Command::new("helm")
            .args(["uninstall", &self.name, "-n", &self.namespace])
            .output();
    }
}

/// `kubectl auth can-i VERB RESOURCE` as `user` in `ns` (`None`: all namespaces).
fn can_i(user: &str, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb, resource, "--as", user];
    match ns {
        Some(ns) => args.extend_from_slice(&["-n", ns]),
        None => args.push("--all-namespaces"),
    }
    let (_, out, _) = common::kubectl(&args);
    out.trim() == "yes"
}

/// The lines of `kubectl auth can-i --list` as `user` in `ns` that are about Secrets.
fn secret_rules(user: &str, ns: &str) -> Vec<String> {
    let (ok, out, err) = common::kubectl(&["auth", "can-i", "--list", "--as", user, "-n", ns]);
    assert!(ok, "kubectl auth can-i --list: {err}");
    out.lines()
        .filter(|l| l.split_whitespace().next() == Some("secrets"))
        .map(str::to_string)
        .collect()
}

/// `watch.namespaces: [a, b]`: the controller may read and watch Secrets (and its kinds) in a and b
/// only; nothing cluster-wide grants Secrets.
#[tokio::test]
async fn chart_with_watch_namespaces_grants_secrets_only_there() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    if !tools_available() {
        return;
    }
    common::install_crds(&client).await;
    let ops = common::fresh_namespace(&client, "rbac-ops").await;
    let a = common::fresh_namespace(&client, "rbac-a").await;
    let b = common::fresh_namespace(&client, "rbac-b").await;
    let other = common::fresh_namespace(&client, "rbac-other").await;
    let release = Release::install(
        &format!("rs-{}", common::unique_suffix()),
        &ops,
        &["--set", &format!("watch.namespaces={{{a},{b}}}")],
    );
    let sa = release.controller();

    for ns in [&a, &b] {
        for verb in ["get", "list", "watch"] {
            assert!(
                can_i(&sa, verb, "secrets", Some(ns)),
                "{verb} secrets in {ns}"
            );
            assert!(
                can_i(&sa, verb, "rosterconnections.rostersync.io", Some(ns)),
                "{verb} rosterconnections in {ns}"
            );
        }
        // Dedicated tenancy (the default): the districts' database credential Secrets are
        // written there; never deleted (they go with their RosterConnection).
        assert!(can_i(&sa, "create", "secrets", Some(ns)));
        assert!(!can_i(&sa, "delete", "secrets", Some(ns)));
        let rules = secret_rules(&sa, ns);
        assert!(!rules.is_empty(), "no Secret rule in {ns}");
    }
    for verb in ["get", "list", "watch", "create", "patch"] {
        assert!(
            !can_i(&sa, verb, "secrets", Some(&other)),
            "{verb} secrets in an unlisted namespace"
        );
        assert!(
            !can_i(&sa, verb, "secrets", None),
            "{verb} secrets cluster-wide"
        );
        assert!(!can_i(&sa, verb, "secrets", Some("default")));
    }
    assert!(!can_i(
        &sa,
        "watch",
        "rosterconnections.rostersync.io",
        Some(&other)
    ));
    // `auth can-i --list` in an unlisted namespace shows what applies cluster-wide: no Secrets.
    for ns in [other.as_str(), "default"] {
        let rules = secret_rules(&sa, ns);
        assert!(rules.is_empty(), "Secret access in {ns}: {rules:?}");
    }
    // In its own namespace, only its configuration Secret by name.
    let own = secret_rules(&sa, &ops);
    assert!(
        own.iter().all(|l| l.contains("rostersync-database")),
        "{own:?}"
    );
    assert!(!can_i(&sa, "list", "secrets", Some(&ops)));
}

/// No `watch.namespaces`: the ClusterRole mode, where the controller may watch everywhere.
#[tokio::test]
async fn chart_without_watch_namespaces_uses_a_cluster_role() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    if !tools_available() {
        return;
    }
    common::install_crds(&client).await;
    let ops = common::fresh_namespace(&client, "rbac-all-ops").await;
    let anywhere = common::fresh_namespace(&client, "rbac-all-any").await;
    let release = Release::install(&format!("rs-{}", common::unique_suffix()), &ops, &[]);
    let sa = release.controller();
    for verb in ["get", "list", "watch"] {
        assert!(
            can_i(&sa, verb, "secrets", None),
            "{verb} secrets cluster-wide"
        );
        assert!(can_i(&sa, verb, "secrets", Some(&anywhere)));
    }
    // The controller lists and watches SyncSchedules (it never gets one by name).
    for verb in ["list", "watch"] {
        assert!(can_i(
            &sa,
            verb,
            "syncschedules.rostersync.io",
            Some(&anywhere)
        ));
    }
    assert!(
        can_i(&sa, "create", "secrets", Some(&anywhere)),
        "dedicated tenancy"
    );
    assert!(!can_i(&sa, "delete", "secrets", Some(&anywhere)));
    assert!(!secret_rules(&sa, &anywhere).is_empty());
}
