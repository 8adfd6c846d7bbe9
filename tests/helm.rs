//! The Helm charts (`charts/rostersync`, `charts/rostersync-district`) and the GitOps example:
//! `helm lint --strict`, rendered-template assertions for the values that matter, the values schemas'
//! error messages, the CRD drift check, the RBAC checks (the controller's rules are exactly what it
//! calls; `deploy/rbac/` is what the charts render), the chart conventions (names, one component
//! label, README values tables, the `helm test` hook), real installs into the test control plane
//! (no `--wait`: there is no kubelet) followed by assertions on what was created, and the platform
//! team's path end to end on a control plane of its own.
//!
//! Rendering needs only the `helm` binary (on PATH after `source <k8s dir>/env`, and under
//! `hack/test.sh`); without it the tests skip, except under `hack/test.sh`, where they fail.
mod common;
#[path = "controller/env.rs"]
mod env;

use std::path::PathBuf;
use std::process::Command;

use kube::Api;
use rostersync::api::{JourneyPolicy, RosterConnection, SyncSchedule};
use serde_json::{Value, json};

const DISTRICT_ID: &str = "5e8f0c1a2b3c4d5e6f708192";

/// Whether `helm` can run here; skips (or fails under hack/test.sh) when it cannot.
fn helm_available() -> bool {
    common::tool_available("helm", "version", "hack/k8s/build.sh builds it")
}

fn chart(name: &str) -> String {
    common::repo_path("charts")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn example(name: &str) -> String {
    common::repo_path("examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs helm and returns (success, stdout, stderr).
fn helm(args: &[&str]) -> (bool, String, String) {
    common::run_tool("helm", args)
}

/// `helm template` with extra args; panics with helm's message when rendering fails.
fn render(chart_name: &str, args: &[&str]) -> Vec<Value> {
    let chart = chart(chart_name);
    let mut all = vec!["template", "t", chart.as_str(), "--namespace", "ops"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = helm(&all);
    assert!(ok, "helm template {args:?} failed: {stderr}");
    parse_docs(&stdout)
}

/// `helm template` that must fail; returns helm's error text.
fn render_err(chart_name: &str, args: &[&str]) -> String {
    let chart = chart(chart_name);
    let mut all = vec!["template", "t", chart.as_str(), "--namespace", "ops"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = helm(&all);
    assert!(
        !ok,
        "helm template {args:?} should have failed but rendered:\n{stdout}"
    );
    stderr
}

fn parse_docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn get<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(docs, kind, name).unwrap_or_else(|| {
        let have: Vec<String> = docs
            .iter()
            .map(|d| format!("{}/{}", d["kind"], d["metadata"]["name"]))
            .collect();
        panic!("no {kind} {name} rendered; have {have:?}")
    })
}

fn kinds(docs: &[Value], kind: &str) -> usize {
    docs.iter().filter(|d| d["kind"] == kind).count()
}

fn args_of(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect()
}

fn district_args() -> Vec<&'static str> {
    vec![
        "--set",
        "districtId=5e8f0c1a2b3c4d5e6f708192",
        "--set",
        "journey.licensedProducts={Early Literacy,Early Math}",
        "--set",
        "journey.newChildJourney=Early Math",
    ]
}

// ------------------------------------------------------------------------------------------------
// lint and drift

#[test]
fn helm_lint_strict_passes_for_both_charts() {
    if !helm_available() {
        return;
    }
    let (ok, out, err) = helm(&["lint", "--strict", &chart("rostersync")]);
    assert!(ok, "helm lint charts/rostersync:\n{out}{err}");
    let values = example("district-values.yaml");
    let (ok, out, err) = helm(&[
        "lint",
        "--strict",
        &chart("rostersync-district"),
        "-f",
        &values,
    ]);
    assert!(ok, "helm lint charts/rostersync-district:\n{out}{err}");
}

#[test]
fn chart_crds_match_the_repository_crds() {
    let repo: PathBuf = common::repo_path("crds");
    let chart_crds: PathBuf = common::repo_path("charts/rostersync/crds");
    for crd in rostersync::api::crds() {
        let file = rostersync::api::crd_file_name(&crd);
        let a = std::fs::read_to_string(repo.join(&file)).expect("crds/ file");
        let b = std::fs::read_to_string(chart_crds.join(&file)).unwrap_or_default();
        assert!(
            a == b,
            "charts/rostersync/crds/{file} differs from crds/{file}; copy it: cp crds/*.yaml charts/rostersync/crds/"
        );
    }
    let mut extra: Vec<String> = std::fs::read_dir(&chart_crds)
        .expect("charts/rostersync/crds")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !repo.join(f).exists())
        .collect();
    extra.sort();
    assert!(
        extra.is_empty(),
        "charts/rostersync/crds has files that crds/ does not: {extra:?}"
    );
}

// ------------------------------------------------------------------------------------------------
// the operator chart, rendered

#[test]
fn one_replica_uses_recreate_without_leader_election_or_pdb() {
    if !helm_available() {
        return;
    }
    let docs = render("rostersync", &[]);
    let dep = get(&docs, "Deployment", "t-rostersync");
    assert_eq!(dep["spec"]["replicas"], 1);
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    let args = args_of(dep);
    assert_eq!(args[0], "controller");
    assert!(!args.iter().any(|a| a.starts_with("--leader-elect")));
    assert_eq!(kinds(&docs, "PodDisruptionBudget"), 0);
    assert!(find(&docs, "Role", "t-rostersync-leader-election").is_none());
    for expected in [
        "--metrics-addr=0.0.0.0:8080",
        "--database-secret=rostersync-database",
        "--database-secret-key=url",
        "--sync-image=ghcr.io/rostersync/rostersync:0.1.0",
        "--sync-service-account=rostersync-sync",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} missing in {args:?}"
        );
    }
}

#[test]
fn more_replicas_turn_on_leader_election_pdb_and_rolling_update() {
    if !helm_available() {
        return;
    }
    let docs = render("rostersync", &["--set", "replicaCount=2"]);
    let dep = get(&docs, "Deployment", "t-rostersync");
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(dep["spec"]["strategy"]["type"], "RollingUpdate");
    let args = args_of(dep);
    assert!(args.iter().any(|a| a == "--leader-elect"), "{args:?}");
    assert!(
        args.iter().any(|a| a == "--lease-name=t-rostersync"),
        "{args:?}"
    );
    let pdb = get(&docs, "PodDisruptionBudget", "t-rostersync");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        dep["spec"]["selector"]["matchLabels"]
    );
    let role = get(&docs, "Role", "t-rostersync-leader-election");
    assert_eq!(role["metadata"]["namespace"], "ops");
    assert_eq!(
        role["rules"][0]["apiGroups"],
        json!(["coordination.k8s.io"])
    );
    assert_eq!(role["rules"][1]["resourceNames"], json!(["t-rostersync"]));
    get(&docs, "RoleBinding", "t-rostersync-leader-election");

    // Leader election can be forced on for one replica (no PDB then) ...
    let docs = render(
        "rostersync",
        &[
            "--set",
            "controller.leaderElection=true",
            "--set",
            "image.tag=1.2.3",
        ],
    );
    let dep = get(&docs, "Deployment", "t-rostersync");
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    assert!(args_of(dep).iter().any(|a| a == "--leader-elect"));
    assert_eq!(kinds(&docs, "PodDisruptionBudget"), 0);
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/rostersync/rostersync:1.2.3"
    );
}

#[test]
fn controller_pod_is_restricted_and_probed() {
    if !helm_available() {
        return;
    }
    let docs = render("rostersync", &[]);
    let pod = &get(&docs, "Deployment", "t-rostersync")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "t-rostersync");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let db = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "DATABASE_URL")
        .expect("DATABASE_URL env");
    assert_eq!(
        db["valueFrom"]["secretKeyRef"],
        json!({"name": "rostersync-database", "key": "url"})
    );
    let svc = get(&docs, "Service", "t-rostersync-metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        svc["spec"]["selector"],
        pod_labels(get(&docs, "Deployment", "t-rostersync"))
    );
}

fn pod_labels(dep: &Value) -> Value {
    dep["spec"]["selector"]["matchLabels"].clone()
}

/// What the controller does with the Kubernetes API, call by call: (API group, resource, verbs).
/// The chart must grant exactly this in the namespaces it watches: a verb missing here and in the
/// chart shows up as 403s in `platform_team_path_helm_install_to_synced_districts`, and a verb the
/// chart grants beyond this list fails `controller_rbac_grants_exactly_what_the_controller_uses`.
/// When the controller starts making a new call, add it here and to `rostersync.controllerRules`.
const CONTROLLER_USES: &[(&str, &str, &[&str])] = &[
    // controller/watch.rs: a Controller (list + watch) per kind, RosterConnections also watched by
    // the SyncSchedule Controller; controller/schedule/observe.rs: `get_opt` of a schedule's
    // RosterConnection.
    // controller/tenancy.rs: a merge patch of a RosterConnection's finalizers (offboarding).
    (
        "rostersync.io",
        "rosterconnections",
        &["get", "list", "patch", "watch"],
    ),
    ("rostersync.io", "syncschedules", &["list", "watch"]),
    ("rostersync.io", "journeypolicies", &["list", "watch"]),
    // controller/status.rs `apply_status`: server-side apply of /status (a PATCH).
    ("rostersync.io", "rosterconnections/status", &["patch"]),
    ("rostersync.io", "syncschedules/status", &["patch"]),
    ("rostersync.io", "journeypolicies/status", &["patch"]),
    // controller/watch.rs: Jobs owned and watched (list + watch); controller/schedule/apply.rs:
    // `create` per run, `patch` to mark a finished Job reported, `delete` to prune by the history
    // limits; controller/schedule/observe.rs: `list` of the managed Jobs.
    (
        "batch",
        "jobs",
        &["create", "delete", "list", "patch", "watch"],
    ),
    // controller/watch.rs: Secrets watched (a rotated credentials Secret is re-verified);
    // controller/connection.rs and schedule/apply.rs: `get_opt` of the credentials Secret;
    // controller/tenancy.rs (dedicated tenancy, the default): server-side apply (a PATCH that may
    // create) of each connection's database credential Secret.
    ("", "secrets", &["create", "get", "list", "patch", "watch"]),
    // kube-runtime's events::Recorder (controller/status.rs `publish`): creates events.k8s.io/v1
    // Events and patches a repeated one into a series.
    ("events.k8s.io", "events", &["create", "patch"]),
    // ui/auth.rs (the status UI, `ui.enabled` by default): a TokenReview of each caller's token and
    // a SubjectAccessReview per district shown.
    ("authentication.k8s.io", "tokenreviews", &["create"]),
    ("authorization.k8s.io", "subjectaccessreviews", &["create"]),
];

/// The (group, resource, verb) triples a list of RBAC rules grants, checking that none uses a
/// wildcard or is limited to names (those are checked separately).
fn granted(rules: &Value) -> std::collections::BTreeSet<(String, String, String)> {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|x| x.as_str().expect("a string").to_string())
            .collect()
    };
    let mut out = std::collections::BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(
                !list(&rule[field]).contains(&"*".to_string()),
                "wildcard in {rule}"
            );
        }
        for group in list(&rule["apiGroups"]) {
            for resource in list(&rule["resources"]) {
                for verb in list(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

fn controller_uses() -> std::collections::BTreeSet<(String, String, String)> {
    CONTROLLER_USES
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .map(move |v| (group.to_string(), resource.to_string(), v.to_string()))
        })
        .collect()
}

/// The difference between what `rules` grant and what the controller uses, as a readable message.
fn rbac_diff(rules: &Value) -> Option<String> {
    let granted = granted(rules);
    let needed = controller_uses();
    let missing: Vec<_> = needed.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    (!missing.is_empty() || !extra.is_empty()).then(|| {
        format!("the chart does not grant {missing:?}; it grants more than the controller uses: {extra:?}")
    })
}

#[test]
fn controller_rbac_grants_exactly_what_the_controller_uses() {
    if !helm_available() {
        return;
    }
    // Cluster-wide by default: a ClusterRole bound by a ClusterRoleBinding.
    let docs = render("rostersync", &[]);
    let role = get(&docs, "ClusterRole", "t-rostersync");
    if let Some(diff) = rbac_diff(&role["rules"]) {
        panic!("ClusterRole t-rostersync: {diff}");
    }
    let binding = get(&docs, "ClusterRoleBinding", "t-rostersync");
    assert_eq!(binding["roleRef"]["name"], "t-rostersync");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "t-rostersync", "namespace": "ops"}])
    );
    // No leader election with one replica, and no Secret of its own to read without SMTP (the
    // database URL is an environment variable).
    assert_eq!(kinds(&docs, "Role"), 0, "{docs:?}");
    // The sync Job reads its RosterConnection and JourneyPolicy (src/sync/cli.rs), nothing else.
    let job_role = get(&docs, "ClusterRole", "t-rostersync-sync-job");
    assert_eq!(
        job_role["rules"],
        json!([{"apiGroups": ["rostersync.io"],
                "resources": ["rosterconnections", "journeypolicies"],
                "verbs": ["get"]}])
    );

    // With leader election and SMTP: the Lease (src/controller/leader.rs: get, create, patch; only
    // create cannot be limited to the name) and the SMTP Secret, by name, in the release namespace.
    let docs = render(
        "rostersync",
        &["--set", "replicaCount=2", "--set", "smtp.secretName=mail"],
    );
    let lease = get(&docs, "Role", "t-rostersync-leader-election");
    assert_eq!(lease["metadata"]["namespace"], "ops");
    assert_eq!(
        lease["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["t-rostersync"], "verbs": ["get", "patch"]}
        ])
    );
    let config = get(&docs, "Role", "t-rostersync-config");
    assert_eq!(
        config["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["mail"], "verbs": ["get"]}])
    );
    for name in ["t-rostersync-leader-election", "t-rostersync-config"] {
        let binding = get(&docs, "RoleBinding", name);
        assert_eq!(binding["roleRef"]["name"], name);
        assert_eq!(binding["subjects"][0]["name"], "t-rostersync");
    }

    // One watched namespace: the same rules as a Role there.
    let docs = render("rostersync", &["--set", "watch.namespaces={district-a}"]);
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "district-a")
        .expect("a Role in district-a");
    if let Some(diff) = rbac_diff(&role["rules"]) {
        panic!("Role in district-a: {diff}");
    }
}

/// `deploy/rbac/` (for installs without Helm) is generated from the charts by
/// `hack/rbac/render.sh`; the committed files must be what the charts render now.
#[test]
fn deploy_rbac_is_what_the_charts_render() {
    if !helm_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rendered = env::chart_rbac(dir.path());
    for file in ["controller.yaml", "sync.yaml", "people.yaml"] {
        let committed = std::fs::read_to_string(common::repo_path("deploy/rbac").join(file))
            .unwrap_or_default();
        let now = std::fs::read_to_string(dir.path().join(file)).expect("rendered file");
        assert!(
            committed == now,
            "deploy/rbac/{file} differs from what the charts render: run hack/rbac/render.sh and commit deploy/rbac/"
        );
    }
    // What it holds: the controller's ClusterRole is the chart's, with the verbs the controller uses.
    let role = rendered
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "rostersync-controller")
        .expect("ClusterRole rostersync-controller in deploy/rbac/controller.yaml");
    if let Some(diff) = rbac_diff(&role["rules"]) {
        panic!("deploy/rbac/controller.yaml: {diff}");
    }
    let lease = rendered
        .iter()
        .find(|d| {
            d["kind"] == "Role" && d["metadata"]["name"] == "rostersync-controller-leader-election"
        })
        .expect("the leader election Role");
    // The binary's default --lease-name.
    assert_eq!(
        lease["rules"][1]["resourceNames"],
        json!(["rostersync-controller"])
    );
    for (kind, name) in [
        ("ServiceAccount", "rostersync-controller"),
        ("ClusterRoleBinding", "rostersync-controller"),
        ("ClusterRole", "rostersync-sync-job"),
        ("ServiceAccount", "rostersync-sync"),
        ("RoleBinding", "rostersync-sync"),
    ] {
        assert!(
            rendered
                .iter()
                .any(|d| d["kind"] == kind && d["metadata"]["name"] == name),
            "deploy/rbac/ has no {kind} {name}"
        );
    }
}

/// `clever.allowedApiHosts` becomes one `--allowed-api-host` each (default: Clever's own hosts),
/// the schema refuses a URL in their place, and the people's ClusterRoles grant the three kinds
/// only (no Secrets), aggregated into view / edit / admin unless turned off.
#[test]
fn allowed_api_hosts_and_people_roles() {
    if !helm_available() {
        return;
    }
    let hosts = |docs: &[Value]| -> Vec<String> {
        args_of(get(docs, "Deployment", "t-rostersync"))
            .into_iter()
            .filter(|a| a.starts_with("--allowed-api-host="))
            .collect()
    };
    let docs = render("rostersync", &[]);
    assert_eq!(
        hosts(&docs),
        [
            "--allowed-api-host=api.clever.com",
            "--allowed-api-host=clever.com"
        ]
    );
    let docs = render(
        "rostersync",
        &[
            "--set",
            "clever.allowedApiHosts={127.0.0.1:8080,[::1]:9090}",
        ],
    );
    assert_eq!(
        hosts(&docs),
        [
            "--allowed-api-host=127.0.0.1:8080",
            "--allowed-api-host=[::1]:9090"
        ]
    );
    let err = render_err(
        "rostersync",
        &["--set", "clever.allowedApiHosts={https://api.clever.com}"],
    );
    assert!(err.contains("allowedApiHosts"), "{err}");

    let viewer = get(&docs, "ClusterRole", "t-rostersync-district-viewer");
    let editor = get(&docs, "ClusterRole", "t-rostersync-district-editor");
    for (role, verbs, aggregate) in [
        (
            viewer,
            json!(["get", "list", "watch"]),
            vec!["aggregate-to-view"],
        ),
        (
            editor,
            json!([
                "get", "list", "watch", "create", "update", "patch", "delete"
            ]),
            vec!["aggregate-to-edit", "aggregate-to-admin"],
        ),
    ] {
        assert_eq!(role["rules"].as_array().map(Vec::len), Some(1), "{role}");
        let rule = &role["rules"][0];
        assert_eq!(rule["apiGroups"], json!(["rostersync.io"]));
        assert_eq!(
            rule["resources"],
            json!(["rosterconnections", "syncschedules", "journeypolicies"])
        );
        assert_eq!(rule["verbs"], verbs);
        for label in aggregate {
            assert_eq!(
                role["metadata"]["labels"][format!("rbac.authorization.k8s.io/{label}")],
                "true"
            );
        }
    }
    let docs = render(
        "rostersync",
        &["--set", "rbac.districtRoles.aggregate=false"],
    );
    let viewer = get(&docs, "ClusterRole", "t-rostersync-district-viewer");
    assert!(
        !viewer["metadata"]["labels"]
            .to_string()
            .contains("aggregate")
    );
    let docs = render("rostersync", &["--set", "rbac.districtRoles.create=false"]);
    assert!(find(&docs, "ClusterRole", "t-rostersync-district-editor").is_none());
}

#[test]
fn watch_namespaces_use_roles_per_namespace() {
    if !helm_available() {
        return;
    }
    let docs = render(
        "rostersync",
        &[
            "--set",
            "watch.namespaces={district-a,district-b}",
            "--set",
            "smtp.secretName=rostersync-smtp",
        ],
    );
    assert!(find(&docs, "ClusterRole", "t-rostersync").is_none());
    // The one cluster-wide binding: the status UI's reviews (cluster-scoped questions to the API
    // server; they read nothing).
    assert_eq!(kinds(&docs, "ClusterRoleBinding"), 1);
    assert_eq!(
        get(&docs, "ClusterRole", "t-rostersync-ui-reviews")["rules"],
        json!([
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}
        ])
    );
    assert_eq!(
        get(&docs, "ClusterRoleBinding", "t-rostersync-ui-reviews")["subjects"],
        json!([{"kind": "ServiceAccount", "name": "t-rostersync", "namespace": "ops"}])
    );
    // Nothing cluster-wide mentions Secrets: the only ClusterRole left is the sync Job's.
    for role in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
        assert!(!role["rules"].to_string().contains("secrets"), "{role}");
    }
    let args = args_of(get(&docs, "Deployment", "t-rostersync"));
    for ns in ["district-a", "district-b"] {
        let role = docs
            .iter()
            .find(|d| {
                d["kind"] == "Role"
                    && d["metadata"]["name"] == "t-rostersync"
                    && d["metadata"]["namespace"] == ns
            })
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        assert!(role["rules"].as_array().is_some_and(|r| r.len() >= 5));
        assert!(docs.iter().any(|d| d["kind"] == "RoleBinding"
            && d["metadata"]["name"] == "t-rostersync"
            && d["metadata"]["namespace"] == ns
            && d["roleRef"]["kind"] == "Role"));
        assert!(docs.iter().any(|d| d["kind"] == "ServiceAccount"
            && d["metadata"]["name"] == "rostersync-sync"
            && d["metadata"]["namespace"] == ns));
        assert!(docs.iter().any(|d| d["kind"] == "RoleBinding"
            && d["metadata"]["name"] == "t-rostersync-sync-job"
            && d["metadata"]["namespace"] == ns
            && d["roleRef"]["name"] == "t-rostersync-sync-job"));
        assert_eq!(
            args.iter()
                .filter(|a| **a == format!("--namespace={ns}"))
                .count(),
            1,
            "{args:?}"
        );
    }
    assert!(args.iter().any(|a| a == "--smtp-secret=rostersync-smtp"));
    let config = get(&docs, "Role", "t-rostersync-config");
    assert_eq!(
        config["rules"][0]["resourceNames"],
        json!(["rostersync-smtp"])
    );
    // A namespace listed twice is a mistake the schema names.
    let err = render_err(
        "rostersync",
        &["--set", "watch.namespaces={district-a,district-a}"],
    );
    assert!(
        err.contains("/watch/namespaces") && (err.contains("equal") || err.contains("unique")),
        "a repeated watch namespace was accepted: {err}"
    );
}

/// The chart and the binary agree on flags: every argument the chart renders (with all options on)
/// parses with the real `rostersync` (a clap error would exit at once with "unexpected argument").
#[test]
fn rendered_controller_args_are_accepted_by_the_binary() {
    if !helm_available() {
        return;
    }
    let docs = render(
        "rostersync",
        &[
            "--set",
            "replicaCount=2",
            "--set",
            "watch.namespaces={district-a,district-b}",
            "--set",
            "smtp.secretName=rostersync-smtp",
        ],
    );
    let args = args_of(get(&docs, "Deployment", "t-rostersync"));
    assert!(args.iter().any(|a| a == "--leader-elect"));
    assert!(args.iter().any(|a| a == "--namespace=district-b"));
    let mut with_help: Vec<String> = args.clone();
    with_help.push("--help".into());
    let out = Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(&with_help)
        .output()
        .expect("run rostersync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the binary rejects the chart's arguments {args:?}: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: rostersync controller"));
}

#[test]
fn ca_bundle_and_the_controllers_extra_env_and_volumes() {
    if !helm_available() {
        return;
    }
    let docs = render(
        "rostersync",
        &[
            "--set",
            "caBundle.configMapName=corp-ca",
            "--set",
            "caBundle.key=bundle.pem",
            "--set",
            "controller.extraEnv[0].name=HTTPS_PROXY",
            "--set",
            "controller.extraEnv[0].value=http://proxy.example.org:3128",
            "--set",
            "controller.extraVolumes[0].name=scratch",
            "--set",
            "controller.extraVolumes[0].emptyDir.medium=Memory",
            "--set",
            "controller.extraVolumeMounts[0].name=scratch",
            "--set",
            "controller.extraVolumeMounts[0].mountPath=/scratch",
        ],
    );
    let dep = get(&docs, "Deployment", "t-rostersync");
    let pod = &dep["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = args_of(dep);
    for want in [
        "--extra-ca-file=/etc/rostersync/extra-ca/ca.crt",
        "--sync-ca-bundle-configmap=corp-ca:bundle.pem",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} missing: {args:?}");
    }
    let volumes = pod["volumes"].as_array().expect("volumes");
    let ca = volumes
        .iter()
        .find(|v| v["name"] == "extra-ca")
        .expect("the CA volume");
    assert_eq!(ca["configMap"]["name"], "corp-ca");
    assert_eq!(
        ca["configMap"]["items"],
        serde_json::json!([{"key": "bundle.pem", "path": "ca.crt"}])
    );
    assert!(volumes.iter().any(|v| v["name"] == "scratch"));
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    assert!(mounts.iter().any(|m| m["name"] == "extra-ca"
        && m["mountPath"] == "/etc/rostersync/extra-ca"
        && m["readOnly"] == true));
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "scratch" && m["mountPath"] == "/scratch")
    );
    let env = container["env"].as_array().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"] == "HTTPS_PROXY" && e["value"] == "http://proxy.example.org:3128")
    );
    // The binary takes the chart's arguments.
    let mut with_help = args.clone();
    with_help.push("--help".into());
    let out = Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(&with_help)
        .output()
        .expect("run rostersync");
    assert!(
        out.status.success(),
        "the binary rejects {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The controller only, not the Jobs; and nothing without a ConfigMap.
    let own = args_of(get(
        &render(
            "rostersync",
            &[
                "--set",
                "caBundle.configMapName=corp-ca",
                "--set",
                "caBundle.syncJobs=false",
            ],
        ),
        "Deployment",
        "t-rostersync",
    ));
    assert!(own.iter().any(|a| a.starts_with("--extra-ca-file=")));
    assert!(
        !own.iter()
            .any(|a| a.starts_with("--sync-ca-bundle-configmap"))
    );
    let none = args_of(get(
        &render("rostersync", &[]),
        "Deployment",
        "t-rostersync",
    ));
    assert!(
        !none
            .iter()
            .any(|a| a.contains("extra-ca") || a.contains("ca-bundle"))
    );

    let err = render_err(
        "rostersync",
        &["--set", "controller.extraEnv[0].name=DATABASE_URL"],
    );
    assert!(
        err.contains("controller.extraEnv sets DATABASE_URL"),
        "{err}"
    );

    // The district chart creates the ConfigMap the sync Jobs mount.
    let dir = tempfile::tempdir().expect("tempdir");
    let values = values_file(
        &dir,
        "ca.yaml",
        "caBundle:\n  create: true\n  configMapName: corp-ca\n  key: bundle.pem\n  pem: |\n    \
         -----BEGIN CERTIFICATE-----\n    AAAA\n    -----END CERTIFICATE-----\n",
    );
    let mut district = district_args();
    district.extend(["-f", values.as_str()]);
    let docs = render("rostersync-district", &district);
    let cm = get(&docs, "ConfigMap", "corp-ca");
    assert_eq!(
        cm["data"]["bundle.pem"],
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    );
    let mut no_pem = district_args();
    no_pem.extend(["--set", "caBundle.create=true"]);
    let err = render_err("rostersync-district", &no_pem);
    assert!(err.contains("caBundle.pem must hold"), "{err}");
}

#[test]
fn optional_servicemonitor_and_networkpolicy() {
    if !helm_available() {
        return;
    }
    let docs = render("rostersync", &[]);
    assert_eq!(kinds(&docs, "ServiceMonitor"), 0);
    assert_eq!(kinds(&docs, "NetworkPolicy"), 0);
    let docs = render(
        "rostersync",
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.serviceMonitor.labels.release=prom",
            "--set",
            "networkPolicy.enabled=true",
        ],
    );
    let sm = get(&docs, "ServiceMonitor", "t-rostersync");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http-metrics");
    let np = get(&docs, "NetworkPolicy", "t-rostersync");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], "http");
}

#[test]
fn optional_grafana_dashboard_configmap_holds_the_shipped_dashboard() {
    if !helm_available() {
        return;
    }
    assert_eq!(kinds(&render("rostersync", &[]), "ConfigMap"), 0);
    let docs = render(
        "rostersync",
        &[
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "grafanaDashboard.namespace=monitoring",
            "--set",
            "grafanaDashboard.annotations.grafana_folder=Platform",
        ],
    );
    let cm = get(&docs, "ConfigMap", "t-rostersync-dashboard");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "Platform");
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_path(
            "charts/rostersync/dashboards/rostersync.json",
        ))
        .expect("dashboard file"),
    )
    .expect("the dashboard is JSON");
    let rendered: Value =
        serde_json::from_str(cm["data"]["rostersync.json"].as_str().expect("data"))
            .expect("the ConfigMap's dashboard is JSON");
    assert_eq!(rendered, shipped);
    assert_eq!(shipped["uid"], "rostersync-overview");
    let titles: Vec<&str> = shipped["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        ["Fleet overview", "One district", "Controller health"]
    );
}

#[test]
fn operator_schema_rejects_bad_values_with_helpful_messages() {
    if !helm_available() {
        return;
    }
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicaCount=0"], "/replicaCount"),
        (&["--set", "replicas=2"], "'replicas' not allowed"),
        (&["--set", "database.secretName="], "/database/secretName"),
        (&["--set", "image.digest=latest"], "/image/digest"),
        (
            &["--set", "controller.leaderElection=maybe"],
            "/controller/leaderElection",
        ),
        (
            &["--set", "watch.namespaces={Not_A_Namespace}"],
            "/watch/namespaces/0",
        ),
        (
            &["--set", "metrics.service.type=Headless"],
            "/metrics/service/type",
        ),
        (
            &[
                "--set",
                "replicaCount=2",
                "--set",
                "controller.leaderElection=false",
            ],
            "two controllers would both act",
        ),
    ];
    for (args, expected) in cases {
        let err = render_err("rostersync", args);
        assert!(
            err.contains(expected),
            "helm template {args:?}: expected {expected:?} in the error, got: {err}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// the district chart, rendered

#[test]
fn district_chart_renders_the_setup_guide_as_custom_resources() {
    if !helm_available() {
        return;
    }
    let values = example("district-values.yaml");
    let docs = render("rostersync-district", &["-f", &values]);
    let conn = get(&docs, "RosterConnection", "springfield");
    assert_eq!(conn["metadata"]["namespace"], "ops");
    assert_eq!(
        conn["spec"],
        json!({
            "provider": "Clever",
            "districtId": DISTRICT_ID,
            "apiBaseUrl": "https://api.clever.com",
            "credentialsSecretRef": {"name": "springfield-clever"},
            "sharing": {
                "grades": ["InfantToddler", "Preschool", "PreKindergarten", "TransitionalKindergarten", "Kindergarten"],
                "includeDemographics": true
            },
            "settings": {
                "allowRemoval": true, "removalMode": "Deactivate", "removalGuardPercent": 10,
                "sendEmails": true, "sendSuccessEmails": false,
                "emailRecipients": ["roster-admins@springfield.example.org"],
                "autoCarryover": true, "allowClassroomNameOverrides": true
            },
            "journeyPolicyRef": {"name": "springfield"}
        })
    );
    let sched = get(&docs, "SyncSchedule", "springfield");
    assert_eq!(
        sched["spec"],
        json!({
            "connectionRef": {"name": "springfield"},
            "suspend": false,
            "frequency": "Daily",
            "at": "22:00",
            "timeZone": "America/Chicago",
            "offPeakWindow": {"start": "20:00", "end": "06:00"},
            "startingDeadlineMinutes": 120,
            "job": {"backoffLimit": 1, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 86400},
            "history": {"successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 5}
        })
    );
    let policy = get(&docs, "JourneyPolicy", "springfield");
    assert_eq!(
        policy["spec"],
        json!({
            "licensedProducts": ["Early Literacy", "Early Math"],
            "newChildJourney": "Early Literacy",
            "gradePlacement": {"useDemographics": true, "birthdateCutoff": "09-01"}
        })
    );
    // Every rendered CR is a valid typed object of this crate's API.
    serde_json::from_value::<RosterConnection>(conn.clone()).expect("typed RosterConnection");
    serde_json::from_value::<SyncSchedule>(sched.clone()).expect("typed SyncSchedule");
    serde_json::from_value::<JourneyPolicy>(policy.clone()).expect("typed JourneyPolicy");
    // No credentials in the example: the Secret is created outside the chart.
    assert_eq!(kinds(&docs, "Secret"), 0);
    let sa = get(&docs, "ServiceAccount", "rostersync-sync");
    assert_eq!(sa["metadata"]["namespace"], "ops");
    let rb = get(&docs, "RoleBinding", "rostersync-sync");
    assert_eq!(rb["roleRef"]["name"], "rostersync-sync-job");
}

#[test]
fn district_chart_weekly_monthly_suspend_levels_and_secrets() {
    if !helm_available() {
        return;
    }
    let mut args = district_args();
    args.extend([
        "--set",
        "schedule.frequency=Weekly",
        "--set",
        "schedule.dayOfWeek=Sunday",
        "--set",
        "schedule.at=02:30",
        "--set",
        "schedule.enabled=false",
        "--set",
        "journey.gradePlacement.levels[0].grade=1",
        "--set",
        "journey.gradePlacement.levels[0].startingLevel=6",
        "--set",
        "sharing.grades={Kindergarten,1}",
        "--set",
        "credentials.create=true",
        "--set",
        "credentials.token=not-a-real-token",
    ]);
    let docs = render("rostersync-district", &args);
    let sched = &get(&docs, "SyncSchedule", "t")["spec"];
    assert_eq!(sched["frequency"], "Weekly");
    assert_eq!(sched["dayOfWeek"], "Sunday");
    assert_eq!(sched["suspend"], true);
    assert!(sched.get("dayOfMonth").is_none());
    let conn = &get(&docs, "RosterConnection", "t")["spec"];
    assert_eq!(conn["sharing"]["grades"], json!(["Kindergarten", "1"]));
    assert_eq!(conn["credentialsSecretRef"]["name"], "t-clever");
    let policy = &get(&docs, "JourneyPolicy", "t")["spec"];
    assert_eq!(
        policy["gradePlacement"]["levels"],
        json!([{"grade": "1", "startingLevel": 6}])
    );
    let secret = get(&docs, "Secret", "t-clever");
    assert_eq!(secret["stringData"], json!({"token": "not-a-real-token"}));

    let mut args = district_args();
    args.extend([
        "--set",
        "schedule.frequency=Monthly",
        "--set",
        "schedule.dayOfMonth=31",
        "--set",
        "journey.enabled=false",
        "--set",
        "syncJob.serviceAccount.create=false",
        "--set",
        "database.createSecret=true",
        "--set",
        "database.url=postgres://u:p@db:5432/roster",
    ]);
    let docs = render("rostersync-district", &args);
    let sched = &get(&docs, "SyncSchedule", "t")["spec"];
    assert_eq!(sched["dayOfMonth"], 31);
    assert_eq!(kinds(&docs, "JourneyPolicy"), 0);
    assert!(
        get(&docs, "RosterConnection", "t")["spec"]
            .get("journeyPolicyRef")
            .is_none()
    );
    assert_eq!(kinds(&docs, "ServiceAccount"), 0);
    let db = get(&docs, "Secret", "rostersync-database");
    assert_eq!(
        db["stringData"],
        json!({"url": "postgres://u:p@db:5432/roster"})
    );
}

#[test]
fn district_schema_rejects_bad_values_with_helpful_messages() {
    if !helm_available() {
        return;
    }
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "districtId=ABC"], "/districtId"),
        (&["--set", "schedule.at=25:00"], "/schedule/at"),
        (
            &["--set", "schedule.frequency=Hourly"],
            "/schedule/frequency",
        ),
        (
            &["--set", "schedule.frequency=Weekly"],
            "schedule.dayOfWeek is required when schedule.frequency is Weekly",
        ),
        (
            &["--set", "schedule.dayOfMonth=3"],
            "schedule.dayOfMonth is only allowed when schedule.frequency is Monthly",
        ),
        (
            &["--set", "sharing.grades={Kindergarten,Kindergarten}"],
            "/sharing/grades",
        ),
        (&["--set", "sharing.grades={Grade1}"], "/sharing/grades/0"),
        (
            &["--set", "settings.removalGuardPercent=150"],
            "/settings/removalGuardPercent",
        ),
        (
            &["--set", "settings.sendEmails=true"],
            "settings.emailRecipients must list at least one address",
        ),
        (
            &["--set", "settings.emailRecipients={not-an-email}"],
            "/settings/emailRecipients/0",
        ),
        (
            &["--set", "journey.newChildJourney=Early Science"],
            "you can only assign products you hold licenses for",
        ),
        (
            &["--set", "apiBaseUrl=http://clever.example"],
            "/apiBaseUrl",
        ),
        (
            &["--set", "credentials.create=true"],
            "set credentials.token",
        ),
        (&["--set", "scheduel.at=22:00"], "'scheduel' not allowed"),
    ];
    for (extra, expected) in cases {
        let mut args = district_args();
        args.extend_from_slice(extra);
        let err = render_err("rostersync-district", &args);
        assert!(
            err.contains(expected),
            "helm template {extra:?}: expected {expected:?} in the error, got: {err}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// chart conventions: names, labels, README values tables, the helm test hook

/// The operator chart with every optional object turned on, and the district chart with its
/// Secrets and ServiceAccount: (chart, args) pairs covering every template.
fn everything_on() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut district = district_args();
    district.extend([
        "--set",
        "credentials.create=true",
        "--set",
        "credentials.token=not-a-real-token",
        "--set",
        "database.createSecret=true",
        "--set",
        "database.url=postgres://u:p@db:5432/roster",
        "--set",
        "labels.team=roster",
    ]);
    vec![
        (
            "rostersync",
            vec![
                "--set",
                "replicaCount=2",
                "--set",
                "smtp.secretName=mail",
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "networkPolicy.enabled=true",
                "--set",
                "grafanaDashboard.enabled=true",
                "--set",
                "podLabels.team=roster",
            ],
        ),
        (
            "rostersync",
            vec![
                "--set",
                "watch.namespaces={district-a}",
                "--set",
                "podLabels.team=roster",
            ],
        ),
        ("rostersync-district", district),
    ]
}

/// `helm template` output as text (duplicate keys survive in text, not once parsed).
fn render_text(chart_name: &str, args: &[&str]) -> String {
    let chart = chart(chart_name);
    let mut all = vec!["template", "t", chart.as_str(), "--namespace", "ops"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = helm(&all);
    assert!(ok, "helm template {args:?} failed: {stderr}");
    stdout
}

/// The `app.kubernetes.io/component` lines of a rendered document's top-level `metadata.labels`.
fn component_lines(doc: &str) -> Vec<String> {
    let mut in_metadata = false;
    let mut out = Vec::new();
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.is_empty() && !line.starts_with('#') {
            in_metadata = line == "metadata:";
            continue;
        }
        if in_metadata
            && line
                .trim_start()
                .starts_with("app.kubernetes.io/component:")
        {
            out.push(line.trim().to_string());
        }
    }
    out
}

#[test]
fn every_object_has_exactly_one_component_label() {
    if !helm_available() {
        return;
    }
    for (chart_name, args) in everything_on() {
        let text = render_text(chart_name, &args);
        let mut seen = 0;
        for doc in text.split("\n---\n").filter(|d| d.contains("\nkind: ")) {
            seen += 1;
            let header = doc
                .lines()
                .filter(|l| l.starts_with("kind:") || l.starts_with("  name:"))
                .collect::<Vec<_>>()
                .join(" ");
            let lines = component_lines(doc);
            assert_eq!(
                lines.len(),
                1,
                "{chart_name} {args:?}: {header} has {} component labels: {lines:?}",
                lines.len()
            );
        }
        assert!(seen >= 3, "{chart_name}: rendered only {seen} objects");
        // Pod templates too: the selector's component, once, whatever podLabels say.
        for d in parse_docs(&text) {
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            if labels.is_object() {
                assert_eq!(labels["app.kubernetes.io/component"], "controller", "{d}");
                assert_eq!(labels["team"], "roster");
            }
        }
    }
    // The helm test Pod is not a controller pod: the Service and the PDB must not select it.
    let docs = render("rostersync", &["--set", "replicaCount=2"]);
    let test_pod = get(&docs, "Pod", "t-rostersync-test-readyz");
    assert_eq!(
        test_pod["metadata"]["labels"]["app.kubernetes.io/component"],
        "test"
    );
}

#[test]
fn name_overrides_rename_every_object() {
    if !helm_available() {
        return;
    }
    // nameOverride replaces the chart name: `<release>-<nameOverride>` and app.kubernetes.io/name.
    let docs = render("rostersync", &["--set", "nameOverride=roster-operator"]);
    let dep = get(&docs, "Deployment", "t-roster-operator");
    assert_eq!(
        dep["metadata"]["labels"]["app.kubernetes.io/name"],
        "roster-operator"
    );
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "roster-operator"
    );
    get(&docs, "ClusterRole", "t-roster-operator-sync-job");

    // fullnameOverride replaces the whole name, everywhere a name is derived from it.
    let docs = render(
        "rostersync",
        &[
            "--set",
            "fullnameOverride=roster",
            "--set",
            "replicaCount=2",
            "--set",
            "smtp.secretName=mail",
        ],
    );
    for (kind, name) in [
        ("Deployment", "roster"),
        ("ServiceAccount", "roster"),
        ("Service", "roster-metrics"),
        ("ClusterRole", "roster"),
        ("ClusterRoleBinding", "roster"),
        ("ClusterRole", "roster-sync-job"),
        ("Role", "roster-leader-election"),
        ("Role", "roster-config"),
        ("PodDisruptionBudget", "roster"),
        ("Pod", "roster-test-readyz"),
    ] {
        get(&docs, kind, name);
    }
    let names: Vec<String> = docs
        .iter()
        .map(|d| {
            d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|n| n.contains("rostersync"))
        .collect();
    assert!(
        names.is_empty(),
        "names still derived from the chart name: {names:?}"
    );
    let dep = get(&docs, "Deployment", "roster");
    assert_eq!(
        dep["spec"]["template"]["spec"]["serviceAccountName"],
        "roster"
    );
    assert!(args_of(dep).iter().any(|a| a == "--lease-name=roster"));
    // The selector keeps the chart name (it is immutable in a Deployment).
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "rostersync"
    );

    // The district chart: fullnameOverride names the three resources (and wins over `name`);
    // nameOverride changes app.kubernetes.io/name.
    let mut args = district_args();
    args.extend([
        "--set",
        "name=ignored",
        "--set",
        "fullnameOverride=lincoln",
        "--set",
        "nameOverride=district",
    ]);
    let docs = render("rostersync-district", &args);
    for kind in ["RosterConnection", "SyncSchedule", "JourneyPolicy"] {
        let d = get(&docs, kind, "lincoln");
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/name"],
            "district"
        );
    }
    let conn = get(&docs, "RosterConnection", "lincoln");
    assert_eq!(
        conn["spec"]["credentialsSecretRef"]["name"],
        "lincoln-clever"
    );
    assert_eq!(conn["spec"]["journeyPolicyRef"]["name"], "lincoln");
    assert_eq!(
        get(&docs, "SyncSchedule", "lincoln")["spec"]["connectionRef"]["name"],
        "lincoln"
    );
}

/// `helm test RELEASE` runs a Pod that asks the controller's metrics Service for /readyz. It
/// needs an image (this machine pulls none), so this checks the rendered manifest: a test hook,
/// the Service's name, namespace and port, the path the readiness probe uses, the restricted Pod
/// Security Standard, and no API access.
#[test]
fn helm_test_hook_queries_readyz_through_the_metrics_service() {
    if !helm_available() {
        return;
    }
    for (args, fullname, port) in [
        (vec![], "t-rostersync", 8080),
        (
            vec![
                "--set",
                "fullnameOverride=roster",
                "--set",
                "metrics.service.port=9090",
                "--set",
                "test.image.repository=registry.example/busybox",
            ],
            "roster",
            9090,
        ),
    ] {
        let docs = render("rostersync", &args);
        let pod = get(&docs, "Pod", &format!("{fullname}-test-readyz"));
        assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
        assert!(
            pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
                .as_str()
                .is_some_and(|p| p.contains("before-hook-creation")),
            "{pod}"
        );
        let svc = get(&docs, "Service", &format!("{fullname}-metrics"));
        assert_eq!(svc["spec"]["ports"][0]["port"], port);
        let dep = get(&docs, "Deployment", fullname);
        let probe_path =
            &dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"];
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        let c = &spec["containers"][0];
        let command: Vec<&str> = c["command"]
            .as_array()
            .expect("command")
            .iter()
            .map(|v| v.as_str().expect("string"))
            .collect();
        assert_eq!(command[0], "wget");
        let url = format!(
            "http://{fullname}-metrics.ops.svc:{port}{}",
            probe_path.as_str().expect("the readiness probe's path")
        );
        assert_eq!(command.last().copied(), Some(url.as_str()), "{command:?}");
        assert!(url.ends_with("/readyz"));
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        if fullname == "roster" {
            assert_eq!(c["image"], "registry.example/busybox:1.37");
        }
    }
    // `helm template --skip-tests` (what GitOps tools render) leaves it out.
    let docs = render("rostersync", &["--skip-tests"]);
    assert_eq!(kinds(&docs, "Pod"), 0);
}

/// One row per key of a chart's values.yaml: leaves with their default, and parents that have a
/// comment of their own; the description is the comment above the key.
fn values_table(values_yaml: &str) -> String {
    let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(values_yaml).expect("values.yaml");
    let mut rows = vec![
        "| Key | Default | Description |".to_string(),
        "|---|---|---|".to_string(),
    ];
    let mut comments: Vec<String> = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in values_yaml.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            comments.clear();
            continue;
        }
        if let Some(c) = trimmed.strip_prefix('#') {
            let c = c.trim();
            // Section rulers and commented-out examples (`key: value`) are not descriptions.
            let example = c.split_once(": ").is_some_and(|(k, v)| {
                k.chars().next().is_some_and(|ch| ch.is_ascii_lowercase())
                    && k.chars().all(|ch| ch.is_ascii_alphanumeric())
                    && !v.contains(' ')
            });
            if !c.starts_with("---") && !example {
                comments.push(c.to_string());
            }
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        if trimmed.starts_with('-') || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        let mut value = &values;
        for k in &path {
            value = &value[*k];
        }
        let description = comments.join(" ").replace('|', "\\|");
        comments.clear();
        let parent = value.as_mapping().is_some_and(|m| !m.is_empty());
        if parent && description.is_empty() {
            continue;
        }
        let default = if parent {
            String::new()
        } else {
            let json = serde_json::to_string(&serde_json::to_value(value).expect("json"))
                .expect("json text");
            format!("`{}`", json.replace('|', "\\|"))
        };
        rows.push(format!(
            "| `{}` | {default} | {description} |",
            path.join(".")
        ));
    }
    rows.join("\n") + "\n"
}

const TABLE_BEGIN: &str = "<!-- values table: generated from values.yaml by tests/helm.rs (UPDATE_DOCS=1 cargo test --test helm chart_readmes) -->\n";
const TABLE_END: &str = "<!-- end of values table -->";

/// Each chart's README.md holds the table of its values (every key with its default and the
/// comment above it in values.yaml), generated: regenerate with
/// `UPDATE_DOCS=1 cargo test --test helm chart_readmes`.
#[test]
fn chart_readmes_document_every_value_with_its_default() {
    for name in ["rostersync", "rostersync-district"] {
        let dir = common::repo_path("charts").join(name);
        let values = std::fs::read_to_string(dir.join("values.yaml")).expect("values.yaml");
        let table = values_table(&values);
        let path = dir.join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap_or_default();
        let (Some(begin), Some(end)) = (readme.find(TABLE_BEGIN), readme.find(TABLE_END)) else {
            panic!(
                "charts/{name}/README.md has no values table markers ({TABLE_BEGIN:?} ... {TABLE_END:?})"
            );
        };
        let current = &readme[begin + TABLE_BEGIN.len()..end];
        if current != table && std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
            let updated = format!("{}{TABLE_BEGIN}{table}{}", &readme[..begin], &readme[end..]);
            std::fs::write(&path, updated).expect("write README.md");
            continue;
        }
        assert!(
            current == table,
            "charts/{name}/README.md's values table is out of date with values.yaml; regenerate: \
             UPDATE_DOCS=1 cargo test --test helm chart_readmes"
        );
        // Every key is in it, with its default (the table is generated, but say it plainly).
        let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(&values).expect("values");
        let mut leaves = Vec::new();
        collect_leaves("", &values, &mut leaves);
        for (key, default) in leaves {
            assert!(
                current.contains(&format!("| `{key}` | `{default}` |")),
                "charts/{name}/README.md: no row for `{key}` with default `{default}`"
            );
        }
    }
}

fn collect_leaves(prefix: &str, v: &serde_yaml_ng::Value, out: &mut Vec<(String, String)>) {
    match v.as_mapping() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                let k = k.as_str().expect("string keys");
                let path = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_leaves(&path, child, out);
            }
        }
        _ => {
            let json =
                serde_json::to_string(&serde_json::to_value(v).expect("json")).expect("json");
            out.push((prefix.to_string(), json.replace('|', "\\|")));
        }
    }
}

// ------------------------------------------------------------------------------------------------
// sync Job pod settings: the district's `schedule.job`, the operator's `syncJob.defaults`

/// Values setting every pod knob of the district chart's `schedule.job`.
const DISTRICT_JOB_KNOBS: &str = r#"
schedule:
  job:
    resources:
      requests: {cpu: 50m, memory: 128Mi}
      limits: {cpu: 500m, memory: 512Mi}
    imagePullSecrets: [{name: regcred}]
    nodeSelector: {pool: batch}
    tolerations: [{key: dedicated, operator: Equal, value: batch, effect: NoSchedule}]
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]
    priorityClassName: batch-low
    podLabels: {team: district-a}
    podAnnotations: {sidecar.istio.io/inject: "false"}
    extraEnv: [{name: HTTPS_PROXY, value: "http://proxy.corp.example:3128"}]
    extraVolumes: [{name: corp-ca, configMap: {name: corp-ca}}]
    extraVolumeMounts: [{name: corp-ca, mountPath: /etc/rostersync/ca, readOnly: true}]
"#;

/// Writes `text` to a values file in `dir` and returns its path.
fn values_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write values");
    path.to_string_lossy().into_owned()
}

#[test]
fn district_chart_renders_every_job_knob_into_the_syncschedule() {
    if !helm_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let knobs = values_file(&dir, "knobs.yaml", DISTRICT_JOB_KNOBS);
    let docs = render(
        "rostersync-district",
        &["-f", &example("district-values.yaml"), "-f", &knobs],
    );
    let job = &get(&docs, "SyncSchedule", "springfield")["spec"]["job"];
    assert_eq!(
        *job,
        json!({
            "backoffLimit": 1, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 86400,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
            "imagePullSecrets": [{"name": "regcred"}],
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
            "priorityClassName": "batch-low",
            "podLabels": {"team": "district-a"},
            "podAnnotations": {"sidecar.istio.io/inject": "false"},
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp.example:3128"}],
            "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca"}}],
            "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/rostersync/ca", "readOnly": true}]
        })
    );
    // The rendered object is a valid SyncSchedule whose Job the controller can build.
    let sched: SyncSchedule =
        serde_json::from_value(get(&docs, "SyncSchedule", "springfield").clone())
            .expect("typed SyncSchedule");
    let problems = rostersync::controller::job::template_problems(
        &sched.spec.job.pod,
        &rostersync::api::JobPodSettings::default(),
    );
    assert!(problems.is_empty(), "{problems:?}");

    // Unset lists are left out (the operator's defaults apply); an empty list is rendered, so that
    // it replaces them.
    let cleared = values_file(
        &dir,
        "cleared.yaml",
        "schedule:\n  job:\n    tolerations: []\n",
    );
    let docs = render(
        "rostersync-district",
        &["-f", &example("district-values.yaml"), "-f", &cleared],
    );
    let job = &get(&docs, "SyncSchedule", "springfield")["spec"]["job"];
    assert_eq!(
        *job,
        json!({"backoffLimit": 1, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 86400,
               "tolerations": []})
    );
}

#[test]
fn district_chart_refuses_controller_owned_env_labels_and_dangling_mounts() {
    if !helm_available() {
        return;
    }
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "schedule.job.extraEnv[0].name=CLEVER_TOKEN"],
            "schedule.job.extraEnv sets CLEVER_TOKEN, which the controller sets",
        ),
        (
            &["--set", "schedule.job.extraEnv[0].name=DATABASE_URL"],
            "schedule.job.extraEnv sets DATABASE_URL",
        ),
        (
            &[
                "--set-string",
                "schedule.job.podLabels.app\\.kubernetes\\.io/managed-by=me",
            ],
            "schedule.job.podLabels sets app.kubernetes.io/managed-by",
        ),
        (
            &[
                "--set-string",
                "schedule.job.podLabels.rostersync\\.io/run-id=x",
            ],
            "schedule.job.podLabels sets rostersync.io/run-id",
        ),
        (
            &[
                "--set",
                "schedule.job.extraVolumes[0].name=cache",
                "--set",
                "schedule.job.extraVolumes[0].emptyDir.medium=Memory",
                "--set",
                "schedule.job.extraVolumeMounts[0].name=ca",
                "--set",
                "schedule.job.extraVolumeMounts[0].mountPath=/etc/ca",
            ],
            "schedule.job.extraVolumeMounts mounts volume \"ca\" at /etc/ca, but schedule.job.extraVolumes has no volume of that name",
        ),
        (
            &["--set", "schedule.job.extraVolumes[0].name=Not_A_Label"],
            "/schedule/job/extraVolumes/0/name",
        ),
        (
            &["--set", "schedule.job.podAnnotations.inject=false"],
            "/schedule/job/podAnnotations/inject",
        ),
        (
            &["--set", "schedule.job.extraEnv[0].value=x"],
            "/schedule/job/extraEnv/0",
        ),
        (
            &["--set", "schedule.job.affinity.nodeAfinity.x=y"],
            "'nodeAfinity' not allowed",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = district_args();
        args.extend_from_slice(extra);
        let err = render_err("rostersync-district", &args);
        assert!(
            err.contains(expected),
            "helm template {extra:?}: expected {expected:?} in the error, got: {err}"
        );
    }
    // A mount of a volume the operator's defaults hold renders: the controller checks the merge.
    let mut args = district_args();
    args.extend_from_slice(&[
        "--set",
        "schedule.job.extraVolumeMounts[0].name=corp-ca",
        "--set",
        "schedule.job.extraVolumeMounts[0].mountPath=/etc/ca",
    ]);
    let docs = render("rostersync-district", &args);
    let job = &get(&docs, "SyncSchedule", "t")["spec"]["job"];
    assert_eq!(job["extraVolumeMounts"][0]["name"], "corp-ca");
    assert!(job.get("extraVolumes").is_none());
}

/// The `--sync-job-defaults` value among the controller's arguments.
fn sync_job_defaults_arg(docs: &[Value]) -> Option<String> {
    args_of(get(docs, "Deployment", "t-rostersync"))
        .into_iter()
        .find_map(|a| a.strip_prefix("--sync-job-defaults=").map(str::to_string))
}

#[test]
fn operator_chart_passes_sync_job_defaults_to_the_controller() {
    if !helm_available() {
        return;
    }
    // By default: the resources (the same as the controller's built-in ones), nothing else.
    let docs = render("rostersync", &[]);
    let arg = sync_job_defaults_arg(&docs).expect("--sync-job-defaults by default");
    let defaults = rostersync::controller::job::parse_defaults(&arg).expect("valid defaults");
    assert_eq!(
        defaults,
        rostersync::api::JobPodSettings {
            resources: Some(rostersync::controller::job::default_resources()),
            ..Default::default()
        }
    );

    // Every knob, as a platform team would set it.
    let dir = tempfile::tempdir().expect("tempdir");
    let values = values_file(
        &dir,
        "platform.yaml",
        r#"
syncJob:
  defaults:
    resources: {requests: {cpu: 200m}}
    imagePullSecrets: [{name: platform-registry}]
    nodeSelector: {pool: batch}
    tolerations: [{key: dedicated, operator: Exists}]
    affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, preference: {matchExpressions: [{key: zone, operator: In, values: [a]}]}}]}}
    priorityClassName: batch-low
    podLabels: {team: platform}
    podAnnotations: {sidecar.istio.io/inject: "false"}
    extraEnv:
      - {name: HTTPS_PROXY, value: "http://proxy.corp.example:3128"}
      - {name: PGSSLROOTCERT, value: /etc/rostersync/ca/ca.crt}
    extraVolumes: [{name: corp-ca, configMap: {name: corp-ca}}]
    extraVolumeMounts: [{name: corp-ca, mountPath: /etc/rostersync/ca, readOnly: true}]
"#,
    );
    let docs = render("rostersync", &["-f", &values]);
    let arg = sync_job_defaults_arg(&docs).expect("--sync-job-defaults");
    let d = rostersync::controller::job::parse_defaults(&arg).expect("valid defaults");
    // Helm merges the values: the chart's limits stay, the request is the platform's.
    let resources = d.resources.clone().expect("resources");
    assert_eq!(resources.requests.expect("requests")["cpu"].0, "200m");
    assert_eq!(resources.limits.expect("limits")["memory"].0, "1Gi");
    assert_eq!(
        d.image_pull_secrets.as_ref().map(|s| s[0].name.as_str()),
        Some("platform-registry")
    );
    assert_eq!(d.node_selector["pool"], "batch");
    assert_eq!(d.tolerations.as_ref().map(Vec::len), Some(1));
    assert!(
        d.affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .is_some()
    );
    assert_eq!(d.priority_class_name.as_deref(), Some("batch-low"));
    assert_eq!(d.pod_labels["team"], "platform");
    assert_eq!(d.pod_annotations["sidecar.istio.io/inject"], "false");
    let env: Vec<&str> = d
        .extra_env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["HTTPS_PROXY", "PGSSLROOTCERT"]);
    assert_eq!(
        d.extra_volumes.as_ref().map(|v| v[0].name.as_str()),
        Some("corp-ca")
    );
    assert_eq!(
        d.extra_volume_mounts
            .as_ref()
            .map(|m| m[0].mount_path.as_str()),
        Some("/etc/rostersync/ca")
    );

    // The binary takes the rendered arguments as they are.
    let mut args = args_of(get(&docs, "Deployment", "t-rostersync"));
    args.push("--help".into());
    let out = Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(&args)
        .output()
        .expect("run rostersync");
    assert!(
        out.status.success(),
        "the binary rejects the chart's arguments {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // All empty: no flag at all.
    let docs = render("rostersync", &["--set", "syncJob.defaults.resources=null"]);
    assert_eq!(sync_job_defaults_arg(&docs), None);
}

#[test]
fn operator_chart_refuses_sync_job_defaults_the_controller_would_refuse() {
    if !helm_available() {
        return;
    }
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--set",
                "syncJob.defaults.extraEnv[0].name=CLEVER_CLIENT_SECRET",
            ],
            "syncJob.defaults.extraEnv sets CLEVER_CLIENT_SECRET, which the controller sets",
        ),
        (
            &[
                "--set-string",
                "syncJob.defaults.podLabels.rostersync\\.io/schedule=x",
            ],
            "syncJob.defaults.podLabels sets rostersync.io/schedule",
        ),
        (
            &[
                "--set",
                "syncJob.defaults.extraVolumeMounts[0].name=ca",
                "--set",
                "syncJob.defaults.extraVolumeMounts[0].mountPath=/etc/ca",
            ],
            "syncJob.defaults.extraVolumeMounts mounts volume \"ca\" at /etc/ca, but syncJob.defaults.extraVolumes has no volume of that name",
        ),
        (
            &["--set", "syncJob.defaults.podLabel.team=x"],
            "'podLabel' not allowed",
        ),
        (
            &["--set", "syncJob.defaults.tolerations=all"],
            "/syncJob/defaults/tolerations",
        ),
    ];
    for (args, expected) in cases {
        let err = render_err("rostersync", args);
        assert!(
            err.contains(expected),
            "helm template {args:?}: expected {expected:?} in the error, got: {err}"
        );
    }
    // And the controller refuses the same at start, should the chart be bypassed.
    let out = Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args([
            "controller",
            "--sync-job-defaults",
            r#"{"extraEnv": [{"name": "CLEVER_TOKEN", "value": "x"}]}"#,
            "--help",
        ])
        .output()
        .expect("run rostersync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--sync-job-defaults")
            && stderr.contains("extraEnv (the operator's sync Job defaults) sets CLEVER_TOKEN"),
        "{stderr}"
    );
}

// ------------------------------------------------------------------------------------------------
// real installs

fn can_i(sa: &str, verb: &str, resource: &str, ns: &str) -> bool {
    let (resource, sub) = match resource.split_once('/') {
        Some((r, s)) => (r, format!("--subresource={s}")),
        None => (resource, String::new()),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "-n", ns, "--as", sa];
    if !sub.is_empty() {
        args.push(&sub);
    }
    let (_, out, _) = common::kubectl(&args);
    out.trim() == "yes"
}

#[tokio::test]
async fn helm_install_of_both_charts_creates_what_they_promise() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    if !helm_available() {
        return;
    }
    common::install_crds(&client).await;
    let ops = common::fresh_namespace(&client, "helm-ops").await;
    let district = common::fresh_namespace(&client, "helm-district").await;
    let release = format!("rs-{}", common::unique_suffix());
    let fullname = format!("{release}-rostersync");

    // The operator: no --wait (no kubelet here), then look at what exists.
    let (ok, out, err) = helm(&[
        "install",
        &release,
        &chart("rostersync"),
        "-n",
        &ops,
        "--set",
        &format!("watch.namespaces={{{district}}}"),
    ]);
    assert!(ok, "helm install rostersync: {out}{err}");
    let uninstall = Uninstall {
        release: release.clone(),
        namespace: ops.clone(),
    };

    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
    let dep = Api::<Deployment>::namespaced(client.clone(), &ops)
        .get(&fullname)
        .await
        .expect("the controller Deployment");
    let spec = dep.spec;
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("Recreate")
    );
    let container = &spec.template.spec.expect("pod spec").containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(args.contains(&format!("--namespace={district}")));
    Api::<ServiceAccount>::namespaced(client.clone(), &ops)
        .get(&fullname)
        .await
        .expect("controller ServiceAccount");
    Api::<Service>::namespaced(client.clone(), &ops)
        .get(&format!("{fullname}-metrics"))
        .await
        .expect("metrics Service");
    Api::<Role>::namespaced(client.clone(), &district)
        .get(&fullname)
        .await
        .expect("controller Role in the watched namespace");
    Api::<RoleBinding>::namespaced(client.clone(), &district)
        .get(&fullname)
        .await
        .expect("controller RoleBinding in the watched namespace");
    Api::<ClusterRole>::all(client.clone())
        .get(&format!("{fullname}-sync-job"))
        .await
        .expect("sync Job ClusterRole");

    // What the API server lets the ServiceAccounts do (the RBAC as installed).
    let controller = format!("system:serviceaccount:{ops}:{fullname}");
    assert!(can_i(
        &controller,
        "watch",
        "syncschedules.rostersync.io",
        &district
    ));
    assert!(can_i(
        &controller,
        "patch",
        "syncschedules.rostersync.io/status",
        &district
    ));
    assert!(can_i(&controller, "create", "jobs.batch", &district));
    assert!(can_i(&controller, "get", "secrets", &district));
    assert!(!can_i(
        &controller,
        "update",
        "syncschedules.rostersync.io",
        &district
    ));
    assert!(!can_i(&controller, "get", "secrets", "default"));
    assert!(!can_i(&controller, "delete", "pods", &district));
    let job = format!("system:serviceaccount:{district}:rostersync-sync");
    assert!(can_i(
        &job,
        "get",
        "rosterconnections.rostersync.io",
        &district
    ));
    assert!(!can_i(&job, "list", "secrets", &district));
    assert!(!can_i(
        &job,
        "patch",
        "syncschedules.rostersync.io",
        &district
    ));

    // One district, as a platform team would install it (the operator already made its SA).
    let values = example("district-values.yaml");
    let (ok, out, err) = helm(&[
        "install",
        "springfield",
        &chart("rostersync-district"),
        "-n",
        &district,
        "-f",
        &values,
        "--set",
        "syncJob.serviceAccount.create=false",
    ]);
    assert!(ok, "helm install rostersync-district: {out}{err}");
    let conn = Api::<RosterConnection>::namespaced(client.clone(), &district)
        .get("springfield")
        .await
        .expect("the RosterConnection");
    assert_eq!(conn.spec.district_id, DISTRICT_ID);
    assert!(conn.spec.settings.allow_removal);
    assert_eq!(conn.spec.settings.removal_guard_percent, 10);
    assert_eq!(conn.spec.credentials_secret_ref.name, "springfield-clever");
    let sched = Api::<SyncSchedule>::namespaced(client.clone(), &district)
        .get("springfield")
        .await
        .expect("the SyncSchedule");
    assert_eq!(sched.spec.at, "22:00");
    assert_eq!(sched.spec.time_zone, "America/Chicago");
    assert!(!sched.spec.suspend);
    let policy = Api::<JourneyPolicy>::namespaced(client.clone(), &district)
        .get("springfield")
        .await
        .expect("the JourneyPolicy");
    assert_eq!(policy.spec.new_child_journey, "Early Literacy");
    // API-server defaults filled what the chart left out.
    assert_eq!(policy.spec.grade_placement.levels.len(), 7);

    // An upgrade that suspends the schedule (the summer break) goes through Helm too.
    let (ok, out, err) = helm(&[
        "upgrade",
        "springfield",
        &chart("rostersync-district"),
        "-n",
        &district,
        "-f",
        &values,
        "--set",
        "syncJob.serviceAccount.create=false",
        "--set",
        "schedule.enabled=false",
    ]);
    assert!(ok, "helm upgrade rostersync-district: {out}{err}");
    let sched = Api::<SyncSchedule>::namespaced(client.clone(), &district)
        .get("springfield")
        .await
        .expect("the SyncSchedule");
    assert!(sched.spec.suspend);

    let (ok, _, err) = helm(&["uninstall", "springfield", "-n", &district]);
    assert!(ok, "helm uninstall district: {err}");
    drop(uninstall);
}

/// Uninstalls the operator release (its cluster-scoped objects) even when an assertion failed.
struct Uninstall {
    release: String,
    namespace: String,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = Command::new("helm")
            .args(["uninstall", &self.release, "-n", &self.namespace])
            .output();
    }
}

/// The real controller (with the pod runner and the Clever emulator) against a `helm install` of the
/// district chart: its RosterConnection, SyncSchedule and JourneyPolicy become `Ready`.
#[tokio::test]
async fn district_chart_objects_become_ready_under_the_controller() {
    // The controller e2e environment: emulator, Postgres, RBAC as shipped, the database Secret and
    // a Clever token Secret named `clever`, the pod runner; then the real controller binary.
    let Some((env, _controller)) = env::Env::with_controller("helm-ready", 20).await else {
        return;
    };
    let chart = chart("rostersync-district");
    let district = env.district_id();
    let base = env.emulator.base_url().to_string();
    let (ok, _out, err) = helm(&[
        "install",
        "springfield",
        chart.as_str(),
        "--namespace",
        &env.ns,
        "-f",
        &common::repo_path("examples/district-values.yaml").to_string_lossy(),
        "--set",
        &format!("districtId={district}"),
        "--set",
        &format!("apiBaseUrl={}", base.trim_end_matches('/')),
        "--set",
        "credentials.secretName=clever",
        // The e2e environment already created the sync ServiceAccount (chart-rendered RBAC).
        "--set",
        "syncJob.serviceAccount.create=false",
    ]);
    assert!(ok, "helm install of the district chart failed: {err}");

    let ready =
        |conditions: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>| {
            conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        };
    let conns: Api<RosterConnection> = Api::namespaced(env.client.clone(), &env.ns);
    common::wait_for(
        "the district's RosterConnection to become Ready",
        env::TIMEOUT,
        || {
            let conns = conns.clone();
            async move {
                let list = conns.list(&Default::default()).await.ok()?;
                let c = list.items.into_iter().next()?;
                ready(c.status.map(|s| s.conditions)).then_some(())
            }
        },
    )
    .await;
    let policies: Api<JourneyPolicy> = Api::namespaced(env.client.clone(), &env.ns);
    common::wait_for(
        "the district's JourneyPolicy to become Ready",
        env::TIMEOUT,
        || {
            let policies = policies.clone();
            async move {
                let list = policies.list(&Default::default()).await.ok()?;
                let p = list.items.into_iter().next()?;
                ready(p.status.map(|s| s.conditions)).then_some(())
            }
        },
    )
    .await;
    let schedules: Api<SyncSchedule> = Api::namespaced(env.client.clone(), &env.ns);
    let schedule = common::wait_for(
        "the district's SyncSchedule to become Ready with a next sync",
        env::TIMEOUT,
        || {
            let schedules = schedules.clone();
            async move {
                let list = schedules.list(&Default::default()).await.ok()?;
                let s = list.items.into_iter().next()?;
                let status = s.status.clone()?;
                (ready(Some(status.conditions)) && status.next_sync_time.is_some()).then_some(s)
            }
        },
    )
    .await;
    assert_eq!(schedule.spec.at, "22:00");
}

// ------------------------------------------------------------------------------------------------
// the platform team's path, end to end

/// A control plane of the test's own (`hack/k8s/up.sh`), stopped when dropped. The operator runs
/// cluster-wide here, as the chart installs it by default; on the shared test control plane it would
/// act on every other test's objects.
struct OwnCluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    _tmp: tempfile::TempDir,
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let tmp = tempfile::Builder::new()
            .prefix("rostersync-platform-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().join("k8s");
        let out = Command::new(common::repo_path("hack/k8s/up.sh"))
            .arg(&dir)
            .output()
            .expect("run hack/k8s/up.sh");
        assert!(
            out.status.success(),
            "hack/k8s/up.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        OwnCluster {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            _tmp: tmp,
        }
    }

    async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        kube::Client::try_from(config).expect("client")
    }

    /// `helm ARGS` against this control plane; panics with helm's output when it fails.
    fn helm(&self, args: &[&str]) -> String {
        let out = Command::new("helm")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("run helm");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "helm {args:?} failed: {stdout}{stderr}"
        );
        stdout
    }

    /// A kubeconfig that reaches this control plane as ServiceAccount `ns/sa`, with a token from the
    /// TokenRequest API (what the kubelet projects into a pod).
    async fn service_account_kubeconfig(
        &self,
        client: &kube::Client,
        ns: &str,
        sa: &str,
        path: &std::path::Path,
    ) {
        let token = rostersync::devtools::podrunner::service_account_token(client, ns, sa)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {ns}/{sa}: {e:#}"));
        let admin: Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(&self.kubeconfig).expect("admin kubeconfig"),
        )
        .expect("kubeconfig YAML");
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [{"name": sa, "context": {"cluster": "cluster", "user": sa, "namespace": ns}}],
            "current-context": sa,
        });
        std::fs::write(path, serde_yaml_ng::to_string(&config).expect("YAML"))
            .expect("write kubeconfig");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(common::repo_path("hack/k8s/down.sh"))
            .arg(&self.dir)
            .output();
    }
}

/// The controller container's environment as a kubelet gives it: plain values, Secret keys (of the
/// release namespace) and the pod's name and namespace. Anything else fails the test, so that a new
/// kind of env in the chart gets taught here rather than silently dropped.
async fn kubelet_env(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    container: &Value,
) -> Vec<(String, String)> {
    use k8s_openapi::api::core::v1::Secret;
    assert!(
        container.get("envFrom").is_none(),
        "envFrom is not resolved here: {container}"
    );
    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name").to_string();
        let from = &var["valueFrom"];
        let value = if let Some(v) = var["value"].as_str() {
            v.to_string()
        } else if from["secretKeyRef"].is_object() {
            let (secret, key) = (
                from["secretKeyRef"]["name"].as_str().expect("secret name"),
                from["secretKeyRef"]["key"].as_str().expect("secret key"),
            );
            let data = Api::<Secret>::namespaced(client.clone(), ns)
                .get(secret)
                .await
                .unwrap_or_else(|e| panic!("Secret {ns}/{secret} for env {name}: {e}"))
                .data
                .unwrap_or_default();
            let bytes = data
                .get(key)
                .unwrap_or_else(|| panic!("Secret {ns}/{secret} has no key {key}"));
            String::from_utf8(bytes.0.clone()).expect("UTF-8")
        } else {
            match from["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod.to_string(),
                Some("metadata.namespace") => ns.to_string(),
                _ => panic!("the test cannot resolve env {var}: teach kubelet_env"),
            }
        };
        env.push((name, value));
    }
    env
}

/// The log lines of a denied API call (kube reports them as `... is forbidden: ...`, code 403).
fn forbidden_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("forbidden") || l.contains("code: 403") || l.contains("\"code\":403")
        })
        .collect()
}

/// The sum over every series of `rostersync_reconcile_errors_total` (0 while it has none).
fn reconcile_errors(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("rostersync_reconcile_errors_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The controller as the test runs it: its process and its admin server.
struct Operator {
    process: common::Proc,
    http: reqwest::Client,
    base: String,
}

impl Operator {
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.text().await.ok()?))
    }

    /// Fails when the controller has logged a denied API call or counted a reconcile error;
    /// returns `/metrics`.
    async fn assert_healthy(&self, when: &str) -> String {
        let log = self.process.log_text();
        let forbidden = forbidden_lines(&log);
        assert!(
            forbidden.is_empty(),
            "{when}: the controller was denied API calls ({} log lines), e.g.:\n{}",
            forbidden.len(),
            forbidden
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        );
        let (code, metrics) = self.get("/metrics").await.expect("/metrics answers");
        assert_eq!(code, 200);
        let errors = reconcile_errors(&metrics);
        assert!(
            errors == 0.0,
            "{when}: rostersync_reconcile_errors_total is {errors}:\n{}",
            metrics
                .lines()
                .filter(|l| l.starts_with("rostersync_reconcile_errors_total"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        metrics
    }

    /// [`Operator::assert_healthy`] over and over until `window` has passed.
    async fn stays_healthy(&self, when: &str, window: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            self.assert_healthy(when).await;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// `helm install` of the district chart for one district, from the example values: its own
/// namespace (created by helm), credentials Secret and sync ServiceAccount. No database Secret:
/// with dedicated tenancy (the default) the controller writes the district's own credential.
fn install_district(
    cluster: &OwnCluster,
    dir: &std::path::Path,
    release: &str,
    ns: &str,
    emulator: &rostersync::devtools::emulator::EmulatorHandle,
) {
    let overrides = json!({
        "fullnameOverride": release,
        "districtId": emulator.district_id(),
        "apiBaseUrl": emulator.base_url().as_str().trim_end_matches('/'),
        "credentials": {"secretName": format!("{release}-clever"), "create": true, "token": emulator.token()},
    });
    let file = dir.join(format!("{release}.values.json"));
    std::fs::write(&file, overrides.to_string()).expect("write values");
    cluster.helm(&[
        "install",
        release,
        &chart("rostersync-district"),
        "--namespace",
        ns,
        "--create-namespace",
        "-f",
        &example("district-values.yaml"),
        "-f",
        &file.to_string_lossy(),
    ]);
}

/// Sync Now on schedule `ns/name` with `token`; waits for its run to finish and returns it.
async fn sync_now(
    client: &kube::Client,
    ns: &str,
    name: &str,
    token: &str,
) -> rostersync::api::RunStatus {
    use kube::api::{Patch, PatchParams};
    let api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    let wait = |what: String, check: Box<dyn Fn(&SyncSchedule) -> bool>| {
        let api = api.clone();
        async move {
            common::wait_for(&what, env::TIMEOUT, || {
                let api = api.clone();
                let check = &check;
                async move { api.get(name).await.ok().filter(|s| check(s)) }
            })
            .await
        }
    };
    wait(
        format!("Sync Now to be available on {ns}/{name}"),
        Box::new(env::sync_now_available),
    )
    .await;
    let patch = json!({"metadata": {"annotations": {rostersync::api::SYNC_NOW_ANNOTATION: token}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate the schedule");
    let token = token.to_string();
    let s = wait(
        format!("the run of Sync Now {token} on {ns}/{name} to finish"),
        Box::new(move |s| {
            env::handled_token(s) == Some(token.as_str())
                && env::last_run(s).is_some_and(|r| {
                    r.result
                        .is_some_and(|res| res != rostersync::api::RunResult::Running)
                })
        }),
    )
    .await;
    env::last_run(&s).cloned().expect("last run")
}

/// The database roles of docs/operations.md ("Database role and grants"): `{role}` owns the schema
/// (the controller and the sync Jobs migrate and write it), `{reader}` may only read it. The docs
/// show it with `{db}` = roster, `{role}` = rostersync and `{reader}` = roster_reader.
const DB_ROLE_SQL: &str = "\
CREATE ROLE {role} LOGIN CREATEROLE PASSWORD 'change-me';
GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role};
CREATE SCHEMA {role} AUTHORIZATION {role};
ALTER ROLE {role} IN DATABASE {db} SET search_path = {role};
CREATE ROLE {reader} LOGIN PASSWORD 'change-me';
GRANT CONNECT ON DATABASE {db} TO {reader};
GRANT USAGE ON SCHEMA {role} TO {reader};
ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {role} GRANT SELECT ON TABLES TO {reader};
ALTER ROLE {reader} IN DATABASE {db} SET search_path = {role};
";

fn db_role_sql(db: &str, role: &str, reader: &str) -> String {
    DB_ROLE_SQL
        .replace("{db}", db)
        .replace("{reader}", reader)
        .replace("{role}", role)
}

/// `url` with another user (and the password of [`DB_ROLE_SQL`]).
fn as_user(url: &str, user: &str) -> String {
    let mut url = url::Url::parse(url).expect("database URL");
    url.set_username(user).expect("username");
    url.set_password(Some("change-me")).expect("password");
    url.to_string()
}

#[test]
fn operations_doc_shows_the_tested_database_roles() {
    let doc = std::fs::read_to_string(common::repo_path("docs/operations.md")).expect("docs");
    let sql = db_role_sql("roster", "rostersync", "roster_reader");
    assert!(
        doc.contains(&sql),
        "docs/operations.md must show the database roles the platform test uses:\n{sql}"
    );
}

/// The path a platform team takes, on a control plane of its own: `helm install` of the operator
/// chart; the controller run with exactly the arguments and environment the chart's Deployment
/// renders, as the chart's ServiceAccount (a TokenRequest token); `helm install` of the district
/// chart; Sync Now succeeds, and for 30 s after it the controller is denied nothing and counts no
/// reconcile error (a finished Job is patched as reported: without `patch` on Jobs in the chart this
/// fails). Then a second district in another namespace becomes ready beside the first, and after
/// `helm uninstall` of the first its Sync Now succeeds, still without a denied call or an error.
/// Both connect to Postgres as the role docs/operations.md recommends.
#[tokio::test]
async fn platform_team_path_helm_install_to_synced_districts() {
    use kube::ResourceExt;
    use rostersync::api::RunResult;
    use rostersync::devtools::emulator::{DataSource, Emulator, EmulatorConfig};
    // Skipped (or failed under hack/test.sh) without the test servers and helm.
    if common::kube_client().await.is_none() || !helm_available() {
        return;
    }
    let Some(db) = common::fresh_db().await else {
        return;
    };
    // The operator and the districts connect as the role docs/operations.md recommends.
    let role = format!("rs_{}", common::unique_suffix());
    let reader = format!("{role}_reader");
    for statement in db_role_sql(&db.name, &role, &reader).lines() {
        sqlx::query(statement)
            .execute(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let database_url = as_user(&db.url, &role);
    let cluster = OwnCluster::start();
    let client = cluster.client().await;
    let work = tempfile::tempdir().expect("tempdir");
    let free_port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (port, ui_port) = (free_port(), free_port());

    // The two districts' "Clever": the operator allows exactly their host:port.
    let emulator = |seed: u64, district: &str| {
        let mut config = EmulatorConfig::generated(seed, 30);
        if let DataSource::Generate(g) = &mut config.data {
            g.district_id = district.to_string();
        }
        Emulator::start(config)
    };
    let springfield = emulator(7, "5e8f0c1a2b3c4d5e6f708192")
        .await
        .expect("emulator");
    let lincoln = emulator(11, "6a7b8c9d0e1f2a3b4c5d6e7f")
        .await
        .expect("emulator");
    let host_port = |e: &rostersync::devtools::emulator::EmulatorHandle| {
        let url = e.base_url();
        format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port_or_known_default().expect("port")
        )
    };

    // 1. The operator chart, as its NOTES say: install, then the database Secret.
    let ops = "rostersync";
    cluster.helm(&[
        "install",
        "rostersync",
        &chart("rostersync"),
        "--namespace",
        ops,
        "--create-namespace",
        "--set",
        &format!("controller.metricsPort={port}"),
        "--set",
        &format!("ui.port={ui_port}"),
        "--set",
        &format!(
            "clever.allowedApiHosts={{{},{}}}",
            host_port(&springfield),
            host_port(&lincoln)
        ),
    ]);
    {
        use k8s_openapi::api::core::v1::Secret;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "rostersync-database"}, "stringData": {"url": database_url}
        }))
        .expect("secret");
        Api::<Secret>::namespaced(client.clone(), ops)
            .create(&Default::default(), &secret)
            .await
            .expect("create the database Secret");
    }

    // 2. The controller exactly as the rendered Deployment runs it.
    let manifest = parse_docs(&cluster.helm(&["get", "manifest", "rostersync", "-n", ops]));
    let deployment = get(&manifest, "Deployment", "rostersync");
    let pod_spec = &deployment["spec"]["template"]["spec"];
    let container = &pod_spec["containers"][0];
    assert!(
        container["command"].is_null(),
        "the container runs the image's entrypoint (rostersync); the test runs the binary the same way"
    );
    let mut args = args_of(deployment);
    // The one change: the pod's addresses are the loopback interface here.
    let listen = format!("--metrics-addr=0.0.0.0:{port}");
    let at = args
        .iter()
        .position(|a| *a == listen)
        .unwrap_or_else(|| panic!("{listen} not in the rendered args {args:?}"));
    args[at] = format!("--metrics-addr=127.0.0.1:{port}");
    let ui_listen = format!("--ui-addr=0.0.0.0:{ui_port}");
    let at = args
        .iter()
        .position(|a| *a == ui_listen)
        .unwrap_or_else(|| panic!("{ui_listen} not in the rendered args {args:?}"));
    args[at] = format!("--ui-addr=127.0.0.1:{ui_port}");
    let pod_name = "rostersync-5d8f7c9b4-x2x7q";
    let mut env = kubelet_env(&client, ops, pod_name, container).await;
    assert!(env.iter().any(|(k, _)| k == "DATABASE_URL"), "{env:?}");
    // In a pod, the client finds the ServiceAccount token; here a kubeconfig holds it.
    let service_account = pod_spec["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    let kubeconfig = work.path().join("controller.kubeconfig");
    cluster
        .service_account_kubeconfig(&client, ops, service_account, &kubeconfig)
        .await;
    env.push((
        "KUBECONFIG".into(),
        kubeconfig.to_string_lossy().into_owned(),
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let operator = Operator {
        process: common::Proc::start_env_only("platform-controller", &args, &env_refs),
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("http client"),
        base: format!("http://127.0.0.1:{port}"),
    };
    common::wait_for(
        "the controller's /readyz to answer 200",
        env::TIMEOUT,
        || async {
            operator
                .get("/readyz")
                .await
                .filter(|(code, _)| *code == 200)
        },
    )
    .await;

    // Sync Jobs' pods run as local processes (as their ServiceAccount) by the pod runner.
    let binary = format!("rostersync={}", env!("CARGO_BIN_EXE_rostersync"));
    let pod_logs = work.path().join("pods");
    let kubeconfig_admin = cluster.kubeconfig.to_string_lossy().into_owned();
    let _runner = common::Proc::start(
        "platform-pod-runner",
        &[
            "pod-runner",
            "--binary",
            &binary,
            "--log-dir",
            &pod_logs.to_string_lossy(),
            "--grace-seconds",
            "3",
        ],
        &[("KUBECONFIG", &kubeconfig_admin)],
    );

    // 3. The first district: its own chart release, its own sync ServiceAccount.
    install_district(
        &cluster,
        work.path(),
        "springfield",
        "district-springfield",
        &springfield,
    );
    let run = sync_now(&client, "district-springfield", "springfield", "platform-1").await;
    assert_eq!(run.result, Some(RunResult::Succeeded), "{run:?}");
    // The status UI under the chart's RBAC: the controller reviews the caller's token
    // (TokenReview) and access (SubjectAccessReview); the caller is its own ServiceAccount here.
    let token =
        rostersync::devtools::podrunner::service_account_token(&client, ops, service_account)
            .await
            .expect("a token");
    let ui = operator
        .http
        .get(format!("http://127.0.0.1:{ui_port}/api/v1/districts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the status UI answers");
    assert_eq!(ui.status(), 200);
    let body = ui.text().await.expect("body");
    assert!(body.contains("\"name\":\"springfield\""), "{body}");

    // 4. For 30 s after the run: nothing denied, no reconcile error. The finished Job gets marked
    //    reported (a patch) within that time.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(client.clone(), "district-springfield");
    let quiet = std::time::Duration::from_secs(30);
    let (_, reported) = futures::join!(
        operator.stays_healthy("after the first run", quiet),
        common::wait_for(
            "the finished Job to be marked reported",
            env::TIMEOUT,
            || async {
                let job = jobs.get(&run.job).await.ok()?;
                job.annotations()
                    .get(rostersync::controller::job::REPORTED_ANNOTATION)
                    .cloned()
            }
        )
    );
    assert_eq!(reported, "Succeeded");
    let metrics = operator.assert_healthy("after the first run").await;
    assert!(
        metrics.contains("rostersync_reconciles_total{kind=\"SyncSchedule\"}"),
        "the controller reconciled no SyncSchedule:\n{metrics}"
    );

    // 5. A second district in another namespace, ready beside the first.
    install_district(
        &cluster,
        work.path(),
        "lincoln",
        "district-lincoln",
        &lincoln,
    );
    for (ns, name) in [
        ("district-lincoln", "lincoln"),
        ("district-springfield", "springfield"),
    ] {
        let api: Api<RosterConnection> = Api::namespaced(client.clone(), ns);
        common::wait_for(
            &format!("{ns}/{name} to be Ready"),
            env::TIMEOUT,
            || async {
                let c = api.get(name).await.ok()?;
                c.status?
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
    }

    // 6. Uninstalling the first district leaves the second working: its Sync Now (Sync Now is
    //    available once per scheduled run, so this is the second district's first) succeeds.
    cluster.helm(&["uninstall", "springfield", "-n", "district-springfield"]);
    let connections: Api<RosterConnection> =
        Api::namespaced(client.clone(), "district-springfield");
    common::wait_for(
        "the uninstalled district's RosterConnection to be gone",
        env::TIMEOUT,
        || async { matches!(connections.get_opt("springfield").await, Ok(None)).then_some(()) },
    )
    .await;
    let run = sync_now(&client, "district-lincoln", "lincoln", "platform-2").await;
    assert_eq!(run.result, Some(RunResult::Succeeded), "{run:?}");
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(client.clone(), "district-lincoln");
    common::wait_for(
        "the second district's Job to be marked reported",
        env::TIMEOUT,
        || async {
            let job = jobs.get(&run.job).await.ok()?;
            job.annotations()
                .get(rostersync::controller::job::REPORTED_ANNOTATION)
                .cloned()
        },
    )
    .await;
    operator
        .assert_healthy("after uninstalling a district and syncing the other")
        .await;

    // The read-only role reads the history (both runs: an uninstall leaves the data) and cannot
    // change it.
    let reader_pool = sqlx::PgPool::connect(&as_user(&db.url, &reader))
        .await
        .expect("connect as the reader");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(&reader_pool)
        .await
        .expect("the reader reads sync_runs");
    assert_eq!(runs, 2);
    let denied = sqlx::query("DELETE FROM sync_runs")
        .execute(&reader_pool)
        .await;
    assert!(
        denied
            .as_ref()
            .is_err_and(|e| e.to_string().contains("permission denied")),
        "the reader could delete: {denied:?}"
    );
}

// ------------------------------------------------------------------------------------------------
// GitOps

#[tokio::test]
async fn gitops_kustomization_applies_cleanly() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let gitops = common::repo_path("examples/gitops");
    // Render first: the layout must build on its own.
    let (ok, rendered, err) = common::kubectl(&["kustomize", &gitops.to_string_lossy()]);
    assert!(ok, "kubectl kustomize examples/gitops: {err}");
    let docs = parse_docs(&rendered);
    for kind in [
        "Namespace",
        "RosterConnection",
        "SyncSchedule",
        "JourneyPolicy",
    ] {
        assert!(kinds(&docs, kind) >= 1, "examples/gitops renders no {kind}");
    }
    assert_eq!(kinds(&docs, "Secret"), 0, "no credentials in Git");

    // Apply it into a fresh namespace through an overlay, the way a second district would reuse it.
    let ns = format!("gitops-{}", common::unique_suffix());
    let overlay = tempfile::tempdir().expect("tempdir");
    let base = overlay.path().join("base");
    copy_dir(&gitops, &base);
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {ns}\nresources:\n  - base\n"
        ),
    )
    .expect("overlay kustomization");
    let dir = overlay.path().to_string_lossy().into_owned();
    let (ok, out, err) = common::kubectl(&["apply", "-k", &dir]);
    assert!(ok, "kubectl apply -k: {out}{err}");
    // Applying again changes nothing (GitOps tools re-apply all the time).
    let (ok, out, err) = common::kubectl(&["apply", "-k", &dir]);
    assert!(ok, "second kubectl apply -k: {err}");
    assert!(
        out.lines().all(|l| l.ends_with("unchanged")),
        "a re-apply changed something:\n{out}"
    );
    let n = Api::<SyncSchedule>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .expect("list schedules")
        .items
        .len();
    assert!(n >= 1);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// docs/api.md is generated from the CRDs (regenerate: UPDATE_DOCS=1 cargo test --test helm api_reference)

fn api_reference() -> String {
    let mut out = String::from(
        "# API reference: rostersync.io/v1alpha1\n\n\
         Generated from the CRDs (`crds/`) by `tests/helm.rs` (`api_reference_is_generated_from_the_crds`);\n\
         regenerate with `UPDATE_DOCS=1 cargo test --test helm api_reference`. `kubectl explain <kind>.spec`\n\
         shows the same text. Admission rules (CEL) are listed under each kind.\n\n\
         Annotations on a SyncSchedule: `rostersync.io/sync-now: <token>` asks for one immediate sync (a new\n\
         token is a new request; `status.syncNow.lastHandledToken` echoes it once handled, accepted or\n\
         rejected); `rostersync.io/approve-removals: <run id>` approves one run held by the removal guard.\n",
    );
    for crd in rostersync::api::crds() {
        let crd = serde_json::to_value(&crd).expect("crd json");
        let names = &crd["spec"]["names"];
        let version = &crd["spec"]["versions"][0];
        out.push_str(&format!(
            "\n## {}\n\nPlural `{}`, short name `{}`, category `rostersync`, namespaced, status subresource.\n\n",
            names["kind"].as_str().unwrap_or_default(),
            names["plural"].as_str().unwrap_or_default(),
            names["shortNames"][0].as_str().unwrap_or_default(),
        ));
        let schema = &version["schema"]["openAPIV3Schema"];
        if let Some(d) = schema["properties"]["spec"]["description"].as_str() {
            out.push_str(&format!("{}\n\n", d.replace('\n', " ")));
        }
        out.push_str("| Field | Type | Default | Description |\n|---|---|---|---|\n");
        for top in ["spec", "status"] {
            walk(&format!(".{top}"), &schema["properties"][top], &mut out);
        }
        let mut rules = Vec::new();
        collect_rules(".", schema, &mut rules);
        if !rules.is_empty() {
            out.push_str("\nAdmission rules:\n\n");
            for r in rules {
                out.push_str(&format!("- {r}\n"));
            }
        }
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('\n', " ").replace('|', "\\|")
}

fn type_of(v: &Value) -> String {
    let t = v["type"].as_str().unwrap_or("object");
    let base = match t {
        "array" => format!("[]{}", type_of(&v["items"])),
        other => other.to_string(),
    };
    if let Some(e) = v["enum"].as_array() {
        let vals: Vec<String> = e
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect();
        return format!("{base} ({})", vals.join(", "));
    }
    base
}

fn walk(path: &str, v: &Value, out: &mut String) {
    let default = if v.get("default").is_some() {
        format!("`{}`", v["default"])
    } else {
        String::new()
    };
    let mut desc = cell(v["description"].as_str().unwrap_or_default());
    let mut bounds = Vec::new();
    for (k, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ] {
        if let Some(n) = v.get(k).and_then(Value::as_i64) {
            bounds.push(format!("{label} {n}"));
        }
    }
    if let Some(p) = v["pattern"].as_str() {
        bounds.push(format!("pattern `{}`", cell(p)));
    }
    if !bounds.is_empty() {
        desc = format!("{desc} ({})", bounds.join("; "));
    }
    out.push_str(&format!(
        "| `{path}` | {} | {default} | {desc} |\n",
        cell(&type_of(v))
    ));
    let children = if v["type"] == "array" { &v["items"] } else { v };
    if path.ends_with(".conditions") || path.ends_with(".resources") {
        return;
    }
    if let Some(props) = children["properties"].as_object() {
        let suffix = if v["type"] == "array" { "[]" } else { "" };
        for (name, child) in props {
            walk(&format!("{path}{suffix}.{name}"), child, out);
        }
    }
}

fn collect_rules(path: &str, v: &Value, out: &mut Vec<String>) {
    if let Some(rules) = v["x-kubernetes-validations"].as_array() {
        for r in rules {
            out.push(format!(
                "`{}{}`: {}",
                path.trim_end_matches('.'),
                r["fieldPath"].as_str().unwrap_or_default(),
                r["message"].as_str().unwrap_or_default()
            ));
        }
    }
    if let Some(props) = v["properties"].as_object() {
        for (name, child) in props {
            collect_rules(&format!("{path}{name}."), child, out);
        }
    }
}

#[test]
fn api_reference_is_generated_from_the_crds() {
    let generated = api_reference();
    let path = common::repo_path("docs/api.md");
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write docs/api.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/api.md is out of date with the CRDs; regenerate: UPDATE_DOCS=1 cargo test --test helm api_reference"
    );
}
