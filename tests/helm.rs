//! The Helm charts (`charts/rostersync`, `charts/rostersync-district`) and the GitOps example:
//! `helm lint --strict`, rendered-template assertions for the values that matter, the values schemas'
//! error messages, the CRD drift check, and real installs into the test control plane (no `--wait`:
//! there is no kubelet) followed by assertions on what was created.
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
    let ok = Command::new("helm")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !common::servers_required(),
            "helm is required under hack/test.sh but is not on PATH"
        );
        eprintln!("skipped: this test needs helm on PATH; run hack/test.sh to run it");
    }
    ok
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

#[test]
fn rbac_is_least_privilege_cluster_wide_by_default() {
    if !helm_available() {
        return;
    }
    let docs = render("rostersync", &[]);
    let role = get(&docs, "ClusterRole", "t-rostersync");
    let rules = role["rules"].as_array().expect("rules");
    for rule in rules {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(
                !rule[field]
                    .as_array()
                    .expect("list")
                    .iter()
                    .any(|v| v == "*"),
                "wildcard in {rule}"
            );
        }
    }
    let verbs = |resource: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|x| x == resource))
            })
            .flat_map(|r| r["verbs"].as_array().cloned().unwrap_or_default())
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(verbs("syncschedules"), ["get", "list", "watch"]);
    assert_eq!(verbs("syncschedules/status"), ["get", "patch", "update"]);
    assert_eq!(verbs("jobs"), ["create", "delete", "get", "list", "watch"]);
    assert_eq!(verbs("pods"), ["list"]);
    assert_eq!(verbs("secrets"), ["get", "list", "watch"]);
    assert!(verbs("events").contains(&"create".to_string()));
    assert!(verbs("configmaps").is_empty());
    get(&docs, "ClusterRoleBinding", "t-rostersync");
    // The sync Job may only read the three kinds.
    let job_role = get(&docs, "ClusterRole", "t-rostersync-sync-job");
    assert_eq!(
        job_role["rules"],
        json!([{"apiGroups": ["rostersync.io"],
                "resources": ["rosterconnections", "syncschedules", "journeypolicies"],
                "verbs": ["get"]}])
    );
    // Its own config Secrets, by name only.
    let config = get(&docs, "Role", "t-rostersync-config");
    assert_eq!(
        config["rules"][0]["resourceNames"],
        json!(["rostersync-database"])
    );
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
            "watch.namespaces={district-a}",
            "--set",
            "smtp.secretName=rostersync-smtp",
        ],
    );
    assert!(find(&docs, "ClusterRole", "t-rostersync").is_none());
    assert_eq!(kinds(&docs, "ClusterRoleBinding"), 0);
    let ns = "district-a";
    let role = docs
        .iter()
        .find(|d| {
            d["kind"] == "Role"
                && d["metadata"]["name"] == "t-rostersync"
                && d["metadata"]["namespace"] == ns
        })
        .unwrap_or_else(|| panic!("no Role in {ns}"));
    assert!(role["rules"].as_array().is_some_and(|r| r.len() >= 5));
    assert!(docs.iter().any(|d| d["kind"] == "ServiceAccount"
        && d["metadata"]["name"] == "rostersync-sync"
        && d["metadata"]["namespace"] == ns));
    assert!(docs.iter().any(|d| d["kind"] == "RoleBinding"
        && d["metadata"]["name"] == "t-rostersync-sync-job"
        && d["metadata"]["namespace"] == ns
        && d["roleRef"]["name"] == "t-rostersync-sync-job"));
    let args = args_of(get(&docs, "Deployment", "t-rostersync"));
    assert!(args.iter().any(|a| a == "--namespace=district-a"));
    // The controller watches all namespaces or one: the schema says so for two.
    let (ok, _, err) = helm(&[
        "template",
        "t",
        chart("rostersync").as_str(),
        "--set",
        "watch.namespaces={district-a,district-b}",
    ]);
    assert!(
        !ok && err.contains("/watch/namespaces") && err.contains("maxItems"),
        "two watch namespaces were accepted: {err}"
    );
    assert!(args.iter().any(|a| a == "--smtp-secret=rostersync-smtp"));
    let config = get(&docs, "Role", "t-rostersync-config");
    assert_eq!(
        config["rules"][0]["resourceNames"],
        json!(["rostersync-database", "rostersync-smtp"])
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
            "watch.namespaces={district-a}",
            "--set",
            "smtp.secretName=rostersync-smtp",
        ],
    );
    let args = args_of(get(&docs, "Deployment", "t-rostersync"));
    assert!(args.iter().any(|a| a == "--leader-elect"));
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
    assert_eq!(policy.spec.grade_placement.levels.len(), 6);

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
        // The e2e environment already created the sync ServiceAccount from deploy/rbac.
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
