//! The rostersync.io/v1alpha1 API against the real API server: the CRDs install, examples apply,
//! invalid manifests are rejected with the intended field path and an actionable message, defaults
//! appear, `kubectl explain` and printer columns work, and status/spec are separated.
mod common;

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use rostersync::api::{JourneyPolicy, RosterConnection, SyncSchedule};
use serde_json::{Value, json};

#[test]
fn committed_crds_match_the_rust_types() {
    for crd in rostersync::api::crds() {
        let file = common::repo_path("crds").join(rostersync::api::crd_file_name(&crd));
        let committed = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; run `cargo run -- crds --out-dir crds`",
                file.display()
            )
        });
        let generated = serde_yaml_ng::to_string(&crd).unwrap();
        assert!(
            committed == generated,
            "{} is out of date with the Rust types; regenerate with `cargo run -- crds --out-dir crds`",
            file.display()
        );
    }
}

#[test]
fn crds_subcommand_prints_three_documents() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rosterconnections.rostersync.io",
            "syncschedules.rostersync.io",
            "journeypolicies.rostersync.io"
        ]
    );
    for d in &docs {
        assert_eq!(d["spec"]["scope"], "Namespaced");
        assert_eq!(d["spec"]["names"]["categories"], json!(["rostersync"]));
        assert_eq!(
            d["spec"]["versions"][0]["subresources"]["status"],
            json!({})
        );
    }
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("rostersync.io", "v1alpha1", kind))
}

fn dynamic(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource(kind))
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("test manifest")
}

fn valid_connection() -> Value {
    json!({"apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": "c"},
        "spec": {"districtId": "5e8f0c1a2b3c4d5e6f708192", "credentialsSecretRef": {"name": "s"}}})
}

fn valid_schedule() -> Value {
    json!({"apiVersion": "rostersync.io/v1alpha1", "kind": "SyncSchedule",
        "metadata": {"name": "s"},
        "spec": {"connectionRef": {"name": "c"}, "frequency": "Daily", "at": "22:00", "timeZone": "America/Chicago"}})
}

fn valid_policy() -> Value {
    json!({"apiVersion": "rostersync.io/v1alpha1", "kind": "JourneyPolicy",
        "metadata": {"name": "p"},
        "spec": {"licensedProducts": ["Early Literacy"], "newChildJourney": "Early Literacy"}})
}

/// One invalid manifest: the base object, a change to its spec, and what the error must mention.
struct Case {
    name: &'static str,
    base: fn() -> Value,
    edit: fn(&mut Value),
    field: &'static str,
    message: &'static str,
}

fn cases() -> Vec<Case> {
    fn c(
        name: &'static str,
        base: fn() -> Value,
        edit: fn(&mut Value),
        field: &'static str,
        message: &'static str,
    ) -> Case {
        Case {
            name,
            base,
            edit,
            field,
            message,
        }
    }
    let conn = valid_connection as fn() -> Value;
    let sched = valid_schedule as fn() -> Value;
    let pol = valid_policy as fn() -> Value;
    vec![
        // RosterConnection
        c(
            "district id missing",
            conn,
            |v| {
                v["spec"].as_object_mut().unwrap().remove("districtId");
            },
            "spec.districtId",
            "Required value",
        ),
        c(
            "district id upper case",
            conn,
            |v| v["spec"]["districtId"] = json!("5E8F0C1A2B3C4D5E6F708192"),
            "spec.districtId",
            "should match",
        ),
        c(
            "district id too short",
            conn,
            |v| v["spec"]["districtId"] = json!("5e8f0c1a"),
            "spec.districtId",
            "should match",
        ),
        c(
            "http to a public host",
            conn,
            |v| v["spec"]["apiBaseUrl"] = json!("http://api.clever.com"),
            "spec.apiBaseUrl",
            "must use https",
        ),
        c(
            "http to a private host",
            conn,
            |v| v["spec"]["apiBaseUrl"] = json!("http://10.0.0.5:8080"),
            "spec.apiBaseUrl",
            "only to 127.0.0.1, localhost or [::1]",
        ),
        c(
            "http to a look-alike host",
            conn,
            |v| v["spec"]["apiBaseUrl"] = json!("http://localhost.evil.example"),
            "spec.apiBaseUrl",
            "must use https",
        ),
        c(
            "credentials ref missing",
            conn,
            |v| {
                v["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("credentialsSecretRef");
            },
            "spec.credentialsSecretRef",
            "Required value",
        ),
        c(
            "credentials ref name empty",
            conn,
            |v| v["spec"]["credentialsSecretRef"]["name"] = json!(""),
            "spec.credentialsSecretRef.name",
            "at least 1",
        ),
        c(
            "provider unknown",
            conn,
            |v| v["spec"]["provider"] = json!("ClassLink"),
            "spec.provider",
            "Unsupported value",
        ),
        c(
            "no grades shared",
            conn,
            |v| v["spec"]["sharing"] = json!({"grades": []}),
            "spec.sharing.grades",
            "at least 1 items",
        ),
        c(
            "duplicate grade",
            conn,
            |v| v["spec"]["sharing"] = json!({"grades": ["Preschool", "Preschool"]}),
            "spec.sharing.grades[1]",
            "Duplicate value",
        ),
        c(
            "unknown grade",
            conn,
            |v| v["spec"]["sharing"] = json!({"grades": ["Nursery"]}),
            "spec.sharing.grades[0]",
            "Unsupported value",
        ),
        c(
            "guard above 100",
            conn,
            |v| v["spec"]["settings"] = json!({"removalGuardPercent": 101}),
            "spec.settings.removalGuardPercent",
            "less than or equal to 100",
        ),
        c(
            "removal mode unknown",
            conn,
            |v| v["spec"]["settings"] = json!({"removalMode": "Archive"}),
            "spec.settings.removalMode",
            "Unsupported value",
        ),
        c(
            "emails without recipients",
            conn,
            |v| v["spec"]["settings"] = json!({"sendEmails": true}),
            "spec.settings.emailRecipients",
            "must list at least one address",
        ),
        c(
            "recipient not an email",
            conn,
            |v| v["spec"]["settings"] = json!({"emailRecipients": ["it-admin"]}),
            "spec.settings.emailRecipients[0]",
            "should match",
        ),
        // SyncSchedule
        c(
            "at 24:00",
            sched,
            |v| v["spec"]["at"] = json!("24:00"),
            "spec.at",
            "should match",
        ),
        c(
            "at not zero padded",
            sched,
            |v| v["spec"]["at"] = json!("7:00"),
            "spec.at",
            "should be at least 5",
        ),
        c(
            "frequency unknown",
            sched,
            |v| v["spec"]["frequency"] = json!("Hourly"),
            "spec.frequency",
            "Unsupported value",
        ),
        c(
            "time zone missing",
            sched,
            |v| {
                v["spec"].as_object_mut().unwrap().remove("timeZone");
            },
            "spec.timeZone",
            "Required value",
        ),
        c(
            "connection ref missing",
            sched,
            |v| {
                v["spec"].as_object_mut().unwrap().remove("connectionRef");
            },
            "spec.connectionRef",
            "Required value",
        ),
        c(
            "weekly without day",
            sched,
            |v| v["spec"]["frequency"] = json!("Weekly"),
            "spec.dayOfWeek",
            "dayOfWeek is required when frequency is Weekly",
        ),
        c(
            "daily with a weekday",
            sched,
            |v| v["spec"]["dayOfWeek"] = json!("Monday"),
            "spec.dayOfWeek",
            "only allowed when frequency is Weekly",
        ),
        c(
            "monthly without day",
            sched,
            |v| v["spec"]["frequency"] = json!("Monthly"),
            "spec.dayOfMonth",
            "dayOfMonth is required when frequency is Monthly",
        ),
        c(
            "weekly with day of month",
            sched,
            |v| {
                v["spec"]["frequency"] = json!("Weekly");
                v["spec"]["dayOfWeek"] = json!("Friday");
                v["spec"]["dayOfMonth"] = json!(3);
            },
            "spec.dayOfMonth",
            "only allowed when frequency is Monthly",
        ),
        c(
            "day of month 32",
            sched,
            |v| {
                v["spec"]["frequency"] = json!("Monthly");
                v["spec"]["dayOfMonth"] = json!(32);
            },
            "spec.dayOfMonth",
            "less than or equal to 31",
        ),
        c(
            "weekday unknown",
            sched,
            |v| {
                v["spec"]["frequency"] = json!("Weekly");
                v["spec"]["dayOfWeek"] = json!("Funday");
            },
            "spec.dayOfWeek",
            "Unsupported value",
        ),
        c(
            "daily at noon, default window",
            sched,
            |v| v["spec"]["at"] = json!("12:00"),
            "spec.at",
            "daily syncs run only in off-peak hours",
        ),
        c(
            "daily at window end (exclusive)",
            sched,
            |v| v["spec"]["at"] = json!("06:00"),
            "spec.at",
            "daily syncs run only in off-peak hours",
        ),
        c(
            "daily outside a wrapping window",
            sched,
            |v| {
                v["spec"]["offPeakWindow"] = json!({"start": "22:00", "end": "02:00"});
                v["spec"]["at"] = json!("03:00");
            },
            "spec.at",
            "daily syncs run only in off-peak hours",
        ),
        c(
            "daily outside a plain window",
            sched,
            |v| {
                v["spec"]["offPeakWindow"] = json!({"start": "01:00", "end": "04:00"});
                v["spec"]["at"] = json!("23:00");
            },
            "spec.at",
            "daily syncs run only in off-peak hours",
        ),
        c(
            "window start equals end",
            sched,
            |v| {
                v["spec"]["offPeakWindow"] = json!({"start": "22:00", "end": "22:00"});
                v["spec"]["at"] = json!("22:00");
            },
            "spec.offPeakWindow.end",
            "start and end must differ",
        ),
        c(
            "window time invalid",
            sched,
            |v| v["spec"]["offPeakWindow"] = json!({"start": "25:00", "end": "06:00"}),
            "spec.offPeakWindow.start",
            "should match",
        ),
        c(
            "deadline zero",
            sched,
            |v| v["spec"]["startingDeadlineMinutes"] = json!(0),
            "spec.startingDeadlineMinutes",
            "greater than or equal to 1",
        ),
        c(
            "backoff limit 7",
            sched,
            |v| v["spec"]["job"] = json!({"backoffLimit": 7}),
            "spec.job.backoffLimit",
            "less than or equal to 6",
        ),
        c(
            "deadline under a minute",
            sched,
            |v| v["spec"]["job"] = json!({"activeDeadlineSeconds": 30}),
            "spec.job.activeDeadlineSeconds",
            "greater than or equal to 60",
        ),
        c(
            "history limit 21",
            sched,
            |v| v["spec"]["history"] = json!({"successfulJobsHistoryLimit": 21}),
            "spec.history.successfulJobsHistoryLimit",
            "less than or equal to 20",
        ),
        // JourneyPolicy
        c(
            "unlicensed journey",
            pol,
            |v| v["spec"]["newChildJourney"] = json!("Early Math"),
            "spec.newChildJourney",
            "you can only assign products you hold licenses for",
        ),
        c(
            "no licensed products",
            pol,
            |v| v["spec"]["licensedProducts"] = json!([]),
            "spec.licensedProducts",
            "at least 1 items",
        ),
        c(
            "duplicate product",
            pol,
            |v| v["spec"]["licensedProducts"] = json!(["Early Literacy", "Early Literacy"]),
            "spec.licensedProducts[1]",
            "Duplicate value",
        ),
        c(
            "journey missing",
            pol,
            |v| {
                v["spec"].as_object_mut().unwrap().remove("newChildJourney");
            },
            "spec.newChildJourney",
            "Required value",
        ),
        c(
            "grade twice in levels",
            pol,
            |v| v["spec"]["gradePlacement"] = json!({"levels": [{"grade": "Preschool", "startingLevel": 1}, {"grade": "Preschool", "startingLevel": 2}]}),
            "spec.gradePlacement.levels[1]",
            "Duplicate value",
        ),
        c(
            "starting level zero",
            pol,
            |v| {
                v["spec"]["gradePlacement"] =
                    json!({"levels": [{"grade": "Preschool", "startingLevel": 0}]})
            },
            "spec.gradePlacement.levels[0].startingLevel",
            "greater than or equal to 1",
        ),
        c(
            "cutoff month 13",
            pol,
            |v| v["spec"]["gradePlacement"] = json!({"birthdateCutoff": "13-01"}),
            "spec.gradePlacement.birthdateCutoff",
            "should match",
        ),
    ]
}

#[tokio::test]
async fn invalid_manifests_are_rejected_with_field_path_and_actionable_message() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let ns = common::fresh_namespace(&client, "api-invalid").await;
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        let mut manifest = (case.base)();
        (case.edit)(&mut manifest);
        let kind = manifest["kind"].as_str().unwrap().to_string();
        let api = dynamic(&client, &ns, &kind);
        match api
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &object(manifest),
            )
            .await
        {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(kube::Error::Api(status)) => {
                let text = status.message.clone();
                if status.code != 422 || !text.contains(case.field) || !text.contains(case.message)
                {
                    failures.push(format!(
                        "{}: expected 422 mentioning `{}` and `{}`, got {}: {text}",
                        case.name, case.field, case.message, status.code
                    ));
                }
            }
            Err(other) => failures.push(format!("{}: unexpected error {other}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn valid_edge_cases_are_accepted() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let ns = common::fresh_namespace(&client, "api-valid").await;
    let accept: Vec<(&str, Value)> = vec![
        ("http to 127.0.0.1", {
            let mut v = valid_connection();
            v["spec"]["apiBaseUrl"] = json!("http://127.0.0.1:8080");
            v
        }),
        ("http to localhost", {
            let mut v = valid_connection();
            v["spec"]["apiBaseUrl"] = json!("http://localhost");
            v
        }),
        ("http to [::1]", {
            let mut v = valid_connection();
            v["spec"]["apiBaseUrl"] = json!("http://[::1]:9/base");
            v
        }),
        ("daily just after midnight in a wrapping window", {
            let mut v = valid_schedule();
            v["spec"]["offPeakWindow"] = json!({"start": "22:00", "end": "02:00"});
            v["spec"]["at"] = json!("01:59");
            v
        }),
        ("daily at window start", {
            let mut v = valid_schedule();
            v["spec"]["at"] = json!("20:00");
            v
        }),
        ("weekly at noon (no window rule)", {
            let mut v = valid_schedule();
            v["spec"]["frequency"] = json!("Weekly");
            v["spec"]["dayOfWeek"] = json!("Sunday");
            v["spec"]["at"] = json!("12:00");
            v
        }),
        ("monthly on the 31st", {
            let mut v = valid_schedule();
            v["spec"]["frequency"] = json!("Monthly");
            v["spec"]["dayOfMonth"] = json!(31);
            v
        }),
    ];
    for (name, manifest) in accept {
        let kind = manifest["kind"].as_str().unwrap().to_string();
        let result = dynamic(&client, &ns, &kind)
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &object(manifest),
            )
            .await;
        assert!(result.is_ok(), "{name} was rejected: {result:?}");
    }
}

#[tokio::test]
async fn examples_apply_cleanly() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let ns = common::fresh_namespace(&client, "api-examples").await;
    let mut applied = 0;
    for entry in std::fs::read_dir(common::repo_path("examples")).unwrap() {
        let path = entry.unwrap().path();
        // Manifests only: `district-values.yaml` is Helm values, tested with the district chart.
        let is_manifest = std::fs::read_to_string(&path)
            .is_ok_and(|text| text.contains("\napiVersion: rostersync.io/"));
        if path.extension().is_none_or(|e| e != "yaml") || !is_manifest {
            continue;
        }
        let (ok, _out, err) = common::kubectl(&["apply", "-n", &ns, "-f", path.to_str().unwrap()]);
        assert!(ok, "{} does not apply: {err}", path.display());
        applied += 1;
    }
    assert!(
        applied >= 6,
        "expected minimal and complete examples for each kind"
    );
    let conns: Api<RosterConnection> = Api::namespaced(client.clone(), &ns);
    assert_eq!(
        conns.list(&Default::default()).await.unwrap().items.len(),
        2
    );
}

#[tokio::test]
async fn defaults_appear_on_created_objects() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let ns = common::fresh_namespace(&client, "api-defaults").await;
    let pp = PostParams::default();
    dynamic(&client, &ns, "RosterConnection")
        .create(&pp, &object(valid_connection()))
        .await
        .unwrap();
    dynamic(&client, &ns, "SyncSchedule")
        .create(&pp, &object(valid_schedule()))
        .await
        .unwrap();
    dynamic(&client, &ns, "JourneyPolicy")
        .create(&pp, &object(valid_policy()))
        .await
        .unwrap();

    let conn = Api::<RosterConnection>::namespaced(client.clone(), &ns)
        .get("c")
        .await
        .unwrap()
        .spec;
    assert_eq!(conn.provider, rostersync::api::Provider::Clever);
    assert_eq!(conn.api_base_url, "https://api.clever.com");
    assert_eq!(conn.sharing.grades, rostersync::api::Grade::EARLY.to_vec());
    assert!(conn.sharing.include_demographics);
    let s = &conn.settings;
    assert!(
        !s.allow_removal
            && !s.send_emails
            && !s.auto_carryover
            && !s.allow_classroom_name_overrides
    );
    assert_eq!(s.removal_mode, rostersync::api::RemovalMode::Deactivate);
    assert_eq!(s.removal_guard_percent, 10);

    let sched = Api::<SyncSchedule>::namespaced(client.clone(), &ns)
        .get("s")
        .await
        .unwrap()
        .spec;
    assert!(!sched.suspend);
    assert_eq!(
        (
            sched.off_peak_window.start.as_str(),
            sched.off_peak_window.end.as_str()
        ),
        ("20:00", "06:00")
    );
    assert_eq!(sched.starting_deadline_minutes, 120);
    assert_eq!(
        (sched.job.backoff_limit, sched.job.active_deadline_seconds),
        (1, 7200)
    );
    assert_eq!(sched.job.ttl_seconds_after_finished, None);
    assert_eq!(
        (
            sched.history.successful_jobs_history_limit,
            sched.history.failed_jobs_history_limit
        ),
        (3, 5)
    );

    let raw = dynamic(&client, &ns, "JourneyPolicy")
        .get("p")
        .await
        .unwrap();
    assert_eq!(
        raw.data["spec"]["gradePlacement"],
        json!({"useDemographics": true, "birthdateCutoff": "09-01", "levels": [
            {"grade": "InfantToddler", "startingLevel": 1},
            {"grade": "Preschool", "startingLevel": 1}, {"grade": "PreKindergarten", "startingLevel": 3},
            {"grade": "TransitionalKindergarten", "startingLevel": 3}, {"grade": "Other", "startingLevel": 3},
            {"grade": "Kindergarten", "startingLevel": 4}, {"grade": "1", "startingLevel": 6}]})
    );
    let policy = Api::<JourneyPolicy>::namespaced(client.clone(), &ns)
        .get("p")
        .await
        .unwrap()
        .spec;
    assert_eq!(
        policy
            .grade_placement
            .level_for(rostersync::api::Grade::Kindergarten),
        Some(4)
    );
}

#[tokio::test]
async fn kubectl_explain_shows_doc_comments_and_printer_columns_render() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let (ok, out, err) = common::kubectl(&[
        "explain",
        "rosterconnection.spec.settings.removalGuardPercent",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("a run that would remove more than this percentage"),
        "{out}"
    );
    let (ok, out, err) = common::kubectl(&["explain", "ssched.spec.offPeakWindow"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("daily syncs must be scheduled inside them"),
        "{out}"
    );

    let ns = common::fresh_namespace(&client, "api-columns").await;
    let pp = PostParams::default();
    dynamic(&client, &ns, "RosterConnection")
        .create(&pp, &object(valid_connection()))
        .await
        .unwrap();
    dynamic(&client, &ns, "SyncSchedule")
        .create(&pp, &object(valid_schedule()))
        .await
        .unwrap();
    dynamic(&client, &ns, "JourneyPolicy")
        .create(&pp, &object(valid_policy()))
        .await
        .unwrap();
    let headers = |kind: &str| {
        let (ok, out, err) = common::kubectl(&["get", kind, "-n", &ns]);
        assert!(ok, "{err}");
        out.lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(headers("rconn"), "NAME DISTRICT READY LAST SYNC RESULT AGE");
    assert_eq!(
        headers("ssched"),
        "NAME CONNECTION FREQUENCY SUSPENDED LAST RESULT LAST SYNC NEXT SYNC AGE"
    );
    assert_eq!(headers("jpolicy"), "NAME JOURNEY PRODUCTS READY AGE");
    let (ok, out, _) = common::kubectl(&["get", "rostersync", "-n", &ns, "-o", "name"]);
    assert!(ok);
    assert_eq!(
        out.lines().count(),
        3,
        "the rostersync category lists all three kinds: {out}"
    );
    let (_, out, _) = common::kubectl(&["get", "ssched", "s", "-n", &ns]);
    assert!(out.contains("Daily") && out.contains("false"), "{out}");
}

#[tokio::test]
async fn status_and_spec_are_written_through_their_own_endpoints_only() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let ns = common::fresh_namespace(&client, "api-status").await;
    let api = dynamic(&client, &ns, "RosterConnection");
    let mut with_status = valid_connection();
    with_status["status"] = json!({"district": {"name": "Injected", "state": "success"}});
    let created = api
        .create(&PostParams::default(), &object(with_status))
        .await
        .unwrap();
    assert!(
        created
            .data
            .get("status")
            .is_none_or(|s| s.get("district").is_none()),
        "status was written through create"
    );

    // A spec change through /status is ignored; a status change through the main resource too.
    let pp = PatchParams::default();
    let patch = json!({"spec": {"districtId": "000000000000000000000000"}, "status": {"district": {"name": "Springfield", "state": "success"}}});
    let after = api
        .patch_status("c", &pp, &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(after.data["spec"]["districtId"], "5e8f0c1a2b3c4d5e6f708192");
    assert_eq!(after.data["status"]["district"]["name"], "Springfield");
    let patch = json!({"spec": {"settings": {"allowRemoval": true}}, "status": {"district": {"name": "Changed"}}});
    let after = api.patch("c", &pp, &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(after.data["spec"]["settings"]["allowRemoval"], true);
    assert_eq!(after.data["status"]["district"]["name"], "Springfield");
}

// ------------------------------------------------------------------------------------------------
// SyncSchedule `spec.job`: the sync pod's settings

/// A schedule that sets every pod setting of `spec.job`.
fn schedule_with_every_job_knob() -> Value {
    let mut v = valid_schedule();
    v["spec"]["job"] = json!({
        "backoffLimit": 2, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 86400,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
                        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}],
        "affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]}]}},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "rostersync"}}}}]}
        },
        "priorityClassName": "batch-low",
        "podLabels": {"team": "data", "example.com/cost-center": "42"},
        "podAnnotations": {"sidecar.istio.io/inject": "false", "example.com/note": "any text: here"},
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": "http://proxy.corp.example:3128"},
            {"name": "NO_PROXY", "value": ".svc,.cluster.local"},
            {"name": "PGSSLROOTCERT", "value": "/etc/rostersync/ca/ca.crt"},
            {"name": "PROXY_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "proxy", "key": "password"}}}
        ],
        "extraVolumes": [
            {"name": "corp-ca", "configMap": {"name": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}}
        ],
        "extraVolumeMounts": [
            {"name": "corp-ca", "mountPath": "/etc/rostersync/ca", "readOnly": true},
            {"name": "scratch", "mountPath": "/tmp"}
        ]
    });
    v
}

#[tokio::test]
async fn a_schedule_with_every_job_knob_is_accepted_and_kept_as_written() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let ns = common::fresh_namespace(&client, "api-job-knobs").await;
    let manifest = schedule_with_every_job_knob();
    dynamic(&client, &ns, "SyncSchedule")
        .create(&PostParams::default(), &object(manifest.clone()))
        .await
        .expect("a SyncSchedule with every job knob is accepted");
    // Nothing pruned, nested Pod API content (affinity, volume sources) included.
    let raw = dynamic(&client, &ns, "SyncSchedule")
        .get("s")
        .await
        .unwrap();
    assert_eq!(raw.data["spec"]["job"], manifest["spec"]["job"]);
    let typed = Api::<SyncSchedule>::namespaced(client.clone(), &ns)
        .get("s")
        .await
        .unwrap();
    let expected: rostersync::api::JobSettings =
        serde_json::from_value(manifest["spec"]["job"].clone()).unwrap();
    assert_eq!(typed.spec.job, expected);
    assert_eq!(
        typed.spec.job.pod.pod_annotations["sidecar.istio.io/inject"],
        "false"
    );
    // A SyncSchedule that mounts a volume only the operator's defaults have is accepted (the
    // controller checks the merged settings).
    let mut mounts_only = valid_schedule();
    mounts_only["metadata"]["name"] = json!("mounts-only");
    mounts_only["spec"]["job"] =
        json!({"extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/rostersync/ca"}]});
    dynamic(&client, &ns, "SyncSchedule")
        .create(&PostParams::default(), &object(mounts_only))
        .await
        .expect("mounts of the defaults' volumes are accepted");
}

#[tokio::test]
async fn job_knob_rules_reject_controller_owned_env_and_labels_with_the_field_path() {
    let Some(client) = common::kube_client().await else {
        return;
    };
    common::install_crds(&client).await;
    let ns = common::fresh_namespace(&client, "api-job-rules").await;
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "CLEVER_TOKEN in extraEnv",
            |v| v["spec"]["job"]["extraEnv"][1] = json!({"name": "CLEVER_TOKEN", "value": "x"}),
            "spec.job.extraEnv[1].name",
            "CLEVER_TOKEN is set by the controller",
        ),
        (
            "DATABASE_URL from another Secret",
            |v| {
                v["spec"]["job"]["extraEnv"] = json!([{"name": "DATABASE_URL",
                    "valueFrom": {"secretKeyRef": {"name": "other", "key": "url"}}}])
            },
            "spec.job.extraEnv[0].name",
            "DATABASE_URL is set by the controller",
        ),
        (
            "CLEVER_CLIENT_SECRET in extraEnv",
            |v| v["spec"]["job"]["extraEnv"][0]["name"] = json!("CLEVER_CLIENT_SECRET"),
            "spec.job.extraEnv[0].name",
            "cannot be set in extraEnv",
        ),
        (
            "the managed-by label",
            |v| v["spec"]["job"]["podLabels"]["app.kubernetes.io/managed-by"] = json!("someone"),
            "spec.job.podLabels",
            "podLabels cannot set app.kubernetes.io/managed-by or rostersync.io/*",
        ),
        (
            "a rostersync.io label",
            |v| v["spec"]["job"]["podLabels"]["rostersync.io/run-id"] = json!("forged"),
            "spec.job.podLabels",
            "podLabels cannot set",
        ),
        (
            "a Job controller label",
            |v| v["spec"]["job"]["podLabels"]["batch.kubernetes.io/job-name"] = json!("x"),
            "spec.job.podLabels",
            "the Job controller's",
        ),
        (
            "a mount of no volume",
            |v| {
                v["spec"]["job"]["extraVolumeMounts"][1] =
                    json!({"name": "cache", "mountPath": "/var/cache"})
            },
            "spec.job.extraVolumeMounts",
            "must be the name of a volume in extraVolumes",
        ),
        (
            "two volumes of one name",
            |v| v["spec"]["job"]["extraVolumes"][1]["name"] = json!("corp-ca"),
            "spec.job.extraVolumes[1]",
            "Duplicate value",
        ),
        (
            "two mounts at one path",
            |v| v["spec"]["job"]["extraVolumeMounts"][1]["mountPath"] = json!("/etc/rostersync/ca"),
            "spec.job.extraVolumeMounts[1]",
            "Duplicate value",
        ),
        (
            "a volume name that is no DNS label",
            |v| {
                v["spec"]["job"]["extraVolumes"][0]["name"] = json!("Corp_CA");
                v["spec"]["job"]["extraVolumeMounts"][0]["name"] = json!("Corp_CA");
            },
            "spec.job.extraVolumes[0].name",
            "should match",
        ),
        (
            "a label value with a space",
            |v| v["spec"]["job"]["podLabels"]["team"] = json!("data team"),
            "spec.job.podLabels.team",
            "should match",
        ),
        (
            "an empty priority class",
            |v| v["spec"]["job"]["priorityClassName"] = json!(""),
            "spec.job.priorityClassName",
            "at least 1",
        ),
    ];
    let mut failures = Vec::new();
    for (name, edit, field, message) in &cases {
        let mut manifest = schedule_with_every_job_knob();
        edit(&mut manifest);
        let result = dynamic(&client, &ns, "SyncSchedule")
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &object(manifest),
            )
            .await;
        match result {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(kube::Error::Api(status))
                if status.code == 422
                    && status.message.contains(field)
                    && status.message.contains(message) => {}
            Err(other) => failures.push(format!(
                "{name}: expected 422 mentioning `{field}` and `{message}`, got {other}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // A misspelled volume source or affinity kind is an unknown field (kubectl validates strictly).
    for (edit, unknown) in [
        (
            json!({"extraVolumes": [{"name": "ca", "secrett": {"secretName": "ca"}}]}),
            "spec.job.extraVolumes[0].secrett",
        ),
        (
            json!({"affinity": {"nodeAfinity": {}}}),
            "spec.job.affinity.nodeAfinity",
        ),
    ] {
        let mut manifest = valid_schedule();
        manifest["spec"]["job"] = edit;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.json");
        std::fs::write(&file, manifest.to_string()).unwrap();
        let (ok, out, err) = common::kubectl(&[
            "apply",
            "--dry-run=server",
            "-n",
            &ns,
            "-f",
            file.to_str().unwrap(),
        ]);
        assert!(!ok, "accepted: {out}");
        assert!(
            err.contains(&format!("unknown field \"{unknown}\"")),
            "{unknown}: {err}"
        );
    }
}
