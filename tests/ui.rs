//! The status UI (`rostersync controller --ui-addr`, src/ui/) on the real control plane, Postgres
//! and the real controller binary: two districts (namespaces A and B), a person bound to
//! `rostersync-district-viewer` in A only, their ServiceAccount token as the bearer token.
//!
//! - no token: 401; A listed, B absent, B's URL 403;
//! - the history JSON equals `sync_runs` row for row (60 runs);
//! - the problems CSV parses (Python's csv) and holds no names or birth dates;
//! - a hostile `<script>` in a problem message is printed as text;
//! - `kubectl roster history` without DATABASE_URL reads through the API as the user, and the
//!   plugin's problems client too;
//! - `kubectl roster dashboard` (the local proxy adding the user's token) serves the pages to a
//!   headless Chromium, whose DOM shows A's last run; screenshots are kept in docs/images/ with
//!   `UPDATE_DOCS=1`.
mod common;
#[path = "controller/env.rs"]
mod env;

use std::time::Duration;

use env::{Env, TIMEOUT};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rostersync::api::RunResult;
use rostersync::run::{ConnectionKey, Counts, EntityCounts, ProblemCodes};
use rostersync::store::runs::{self as store_runs, Finish, RunStart};
use serde_json::{Value, json};

const HOSTILE: &str = "<script>alert('classroom')</script>";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("addr").port()
}

/// Whether Debian's `chromium` is installed (hack/setup.sh installs it): a skip with a message
/// outside hack/test.sh, a failure under it.
fn chromium() -> Option<&'static str> {
    if std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("chromium");
    }
    assert!(
        !common::servers_required(),
        "chromium is required under hack/test.sh (hack/setup.sh installs Debian's `chromium`)"
    );
    eprintln!("skipped: the browser part needs Debian's `chromium`; run hack/test.sh");
    None
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom` or `--screenshot=...`); stdout.
async fn headless(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium finished within 120 s")
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {args:?} {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished synthetic run of `key`, `days` days before `before`.
async fn insert_run(
    pool: &sqlx::PgPool,
    key: &ConnectionKey,
    run_id: &str,
    result: RunResult,
    children: u64,
    before: jiff::Timestamp,
    days: i64,
) {
    let mut conn = pool.acquire().await.expect("db connection");
    store_runs::start(
        &mut conn,
        &RunStart {
            run_id: run_id.to_string(),
            connection: key.clone(),
            trigger: rostersync::api::Trigger::Scheduled,
            schedule: None,
            job: None,
            dry_run: false,
        },
    )
    .await
    .expect("start run");
    let counts = Counts {
        children: EntityCounts {
            created: children % 3,
            unchanged: children - children % 3,
            // What the removal guard held.
            deactivated: if result == RunResult::Held { 9 } else { 0 },
            ..Default::default()
        },
        classrooms: EntityCounts {
            unchanged: children - 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let codes: ProblemCodes = [("MultipleSections".to_string(), days as u64 % 3)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    let (reason, message) = match result {
        RunResult::Failed => ("CleverUnavailable", "Clever answered 503 three times"),
        RunResult::Held => ("RemovalGuard", "would deactivate 30% of children"),
        _ => ("Synced", "synced"),
    };
    store_runs::finish(
        &mut conn,
        key,
        run_id,
        &Finish {
            result,
            retriable: result == RunResult::Failed,
            counts: &counts,
            problem_codes: &codes,
            reason,
            message,
            timings: json!({"totalMs": 40_000}),
            clever: Default::default(),
        },
    )
    .await
    .expect("finish run");
    sqlx::query(
        "UPDATE sync_runs SET started_at = $2 - make_interval(days => $3::int),
                finished_at = $2 - make_interval(days => $3::int) + interval '40 seconds'
         WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(rostersync::store::time::Ts(before))
    .bind(i32::try_from(days).expect("days"))
    .execute(pool)
    .await
    .expect("date the run");
}

/// `sync_runs` of `key`, newest first, as the API orders them.
async fn db_runs(pool: &sqlx::PgPool, key: &ConnectionKey, limit: i64) -> Vec<Value> {
    let rows: Vec<(Value,)> = sqlx::query_as(
        "SELECT to_jsonb(r) FROM sync_runs r WHERE connection = $1
         ORDER BY started_at DESC, run_id DESC LIMIT $2",
    )
    .bind(key.as_str())
    .bind(limit)
    .fetch_all(pool)
    .await
    .expect("read sync_runs");
    rows.into_iter().map(|(v,)| v).collect()
}

fn ts(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str().map(|s| s.parse().expect("a timestamp"))
}

/// One API run against its `sync_runs` row, column by column.
fn assert_same_run(api: &Value, row: &Value) {
    let id = row["run_id"].as_str().expect("run_id");
    assert_eq!(api["runId"], row["run_id"], "run id");
    for (a, r) in [
        ("connection", "connection"),
        ("schedule", "schedule"),
        ("trigger", "trigger"),
        ("job", "job"),
        ("dryRun", "dry_run"),
        ("result", "result"),
        ("retriable", "retriable"),
        ("problems", "problems"),
        ("problemCodes", "problem_codes"),
        ("reason", "reason"),
        ("message", "message"),
        ("timings", "timings"),
        ("attempts", "attempts"),
    ] {
        assert_eq!(api[a], row[r], "run {id}: {a} differs from sync_runs.{r}");
    }
    assert_eq!(
        Counts::from_json(&row["counts"]).to_json(),
        api["counts"],
        "run {id}: counts"
    );
    assert_eq!(
        ts(&api["startedAt"]),
        ts(&row["started_at"]),
        "run {id}: started_at"
    );
    assert_eq!(
        ts(&api["finishedAt"]),
        ts(&row["finished_at"]),
        "run {id}: finished_at"
    );
    assert_eq!(
        api["notified"],
        json!(!row["notified_at"].is_null()),
        "run {id}: notified"
    );
}

/// Names and birth dates of the district's children (what must never be shown).
async fn personal_data(pool: &sqlx::PgPool, key: &ConnectionKey) -> Vec<String> {
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT first_name || ' ' || last_name, to_char(dob, 'YYYY-MM-DD'),
                    to_char(dob, 'FMMM/FMDD/YYYY'), last_name || ', ' || first_name
             FROM children WHERE connection = $1",
    )
    .bind(key.as_str())
    .fetch_all(pool)
    .await
    .expect("read children");
    rows.into_iter()
        .flat_map(|(a, b, c, d)| [a, b, c, d])
        .flatten()
        .collect()
}

fn assert_no_personal_data(what: &str, text: &str, personal: &[String]) {
    for p in personal {
        assert!(
            !text.contains(p.as_str()),
            "{what} shows personal data {p:?}"
        );
    }
}

/// Starts `kubectl-roster ARGS` with `env` (the test's environment without DATABASE_URL).
fn plugin(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-roster"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn status_ui_shows_a_viewer_their_district_only() {
    let Some(env) = Env::new("ui-a", 40).await else {
        return;
    };
    let client = env.client.clone();
    let ns_a = env.ns.clone();
    let ns_b = common::fresh_namespace(&client, "ui-b").await;

    // The controller reviews tokens and access (cluster-scoped) and reads both namespaces: the
    // chart's controller ClusterRole, bound cluster-wide (Env binds it in A only).
    let crb_name = format!("{ns_a}-ui-controller");
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    let crb: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": crb_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rostersync-controller"},
        "subjects": [{"kind": "ServiceAccount", "name": "rostersync-controller", "namespace": ns_a}]
    }))
    .expect("binding");
    crbs.create(&PostParams::default(), &crb)
        .await
        .expect("create ClusterRoleBinding");

    let port = free_port();
    let ui = format!("http://127.0.0.1:{port}");
    let ui_addr = format!("127.0.0.1:{port}");
    let _controller = env.controller("controller", &["--ui-addr", &ui_addr, "--namespace", &ns_b]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    common::wait_for("the status UI to answer", TIMEOUT, || {
        let (http, url) = (http.clone(), format!("{ui}/healthz"));
        async move {
            http.get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        }
    })
    .await;

    // District A: a real sync (the last run), then 59 older runs; district B: one run.
    env.ready_schedule(json!({})).await;
    let real = env.sync_now_finished("ui-1", &[]).await;
    assert_eq!(real.result, Some(RunResult::Succeeded), "{real:?}");
    let key_a = ConnectionKey::new(&ns_a, "springfield").expect("key");
    let real_start: (rostersync::store::time::Ts,) =
        sqlx::query_as("SELECT started_at FROM sync_runs WHERE run_id = $1")
            .bind(&real.run_id)
            .fetch_one(&env.db.pool)
            .await
            .expect("the real run");
    for i in 1..=59i64 {
        let result = match i % 10 {
            3 => RunResult::Failed,
            7 => RunResult::Held,
            _ => RunResult::Succeeded,
        };
        insert_run(
            &env.db.pool,
            &key_a,
            &format!("hist-{i:02}"),
            result,
            12 + (60 - i as u64) / 8,
            real_start.0.0,
            i,
        )
        .await;
    }
    sqlx::query(
        "INSERT INTO sync_problems (run_id, connection, record_kind, clever_id, code, message)
         VALUES ($1, $3, 'classrooms', 'section-hostile', 'ClassroomOverCapacity', $2)",
    )
    .bind(&real.run_id)
    .bind(format!(
        "40 children placed in classroom {HOSTILE}; the product allows at most 32"
    ))
    .bind(key_a.as_str())
    .execute(&env.db.pool)
    .await
    .expect("insert a hostile problem");
    let rc: rostersync::api::RosterConnection = serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": "shelbyville"},
        "spec": {"districtId": "5b2ad81a709e300001e2cd7a", "credentialsSecretRef": {"name": "clever"}}
    }))
    .expect("connection B");
    Api::<rostersync::api::RosterConnection>::namespaced(client.clone(), &ns_b)
        .create(&PostParams::default(), &rc)
        .await
        .expect("create connection B");
    let key_b = ConnectionKey::new(&ns_b, "shelbyville").expect("key");
    insert_run(
        &env.db.pool,
        &key_b,
        "b-run",
        RunResult::Succeeded,
        12,
        real_start.0.0,
        1,
    )
    .await;

    // The viewer: a ServiceAccount in A bound to the chart's district-viewer ClusterRole in A only.
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "viewer"}})).expect("sa");
    Api::<ServiceAccount>::namespaced(client.clone(), &ns_a)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create viewer");
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rostersync-district-viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": ns_a}]
    }))
    .expect("rb");
    Api::<RoleBinding>::namespaced(client.clone(), &ns_a)
        .create(&PostParams::default(), &rb)
        .await
        .expect("bind viewer");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("viewer.kubeconfig");
    let token = common::wait_for("a viewer token", TIMEOUT, || {
        let (client, ns) = (client.clone(), ns_a.clone());
        async move {
            rostersync::devtools::podrunner::service_account_token(&client, &ns, "viewer")
                .await
                .ok()
        }
    })
    .await;
    rostersync::devtools::podrunner::service_account_kubeconfig(
        &client,
        &ns_a,
        "viewer",
        &kubeconfig,
    )
    .await
    .expect("viewer kubeconfig");
    let kubeconfig = kubeconfig.display().to_string();

    let get = |path: &str, token: Option<&str>| {
        let mut req = http.get(format!("{ui}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.expect("request the UI");
            let status = r.status().as_u16();
            let auth = r
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap_or_default().to_string());
            (status, auth, r.text().await.expect("body"))
        }
    };
    let page_a = format!("/districts/{ns_a}/springfield");
    let page_b = format!("/districts/{ns_b}/shelbyville");

    // No token, or one the API server does not know: 401.
    for path in ["/", "/api/v1/districts", page_a.as_str()] {
        let (status, auth, _) = get(path, None).await;
        assert_eq!(status, 401, "{path} without a token");
        assert_eq!(auth.as_deref(), Some("Bearer realm=\"rostersync\""));
        assert_eq!(get(path, Some("not-a-token")).await.0, 401, "{path}");
    }
    // A listed, B absent; B's URLs 403, A's 200.
    let (status, _, body) = get("/api/v1/districts", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("json");
    let names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["namespace"].as_str().unwrap_or(""),
                d["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(names, vec![key_a.to_string()], "{body}");
    assert_eq!(list["items"][0]["lastRun"]["runId"], json!(real.run_id));
    // B is there for whoever may get it: the controller's own ServiceAccount sees both.
    let operator = rostersync::devtools::podrunner::service_account_token(
        &client,
        &ns_a,
        "rostersync-controller",
    )
    .await
    .expect("controller token");
    let (status, _, body) = get("/api/v1/districts", Some(&operator)).await;
    assert_eq!(status, 200, "{body}");
    let both: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(both["items"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(get(&page_b, Some(&operator)).await.0, 200);
    let (status, _, body) = get("/", Some(&operator)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("shelbyville") && body.contains("springfield"),
        "{body}"
    );
    for path in [
        page_b.clone(),
        format!("/api/v1{page_b}"),
        format!("/api/v1{page_b}/runs"),
        format!("/api/v1{page_b}/problems"),
        format!("{page_b}/problems.csv"),
    ] {
        assert_eq!(get(&path, Some(&token)).await.0, 403, "{path}");
    }
    let (status, _, index) = get("/", Some(&token)).await;
    assert_eq!(status, 200, "{index}");
    assert!(
        index.contains("springfield") && !index.contains("shelbyville"),
        "{index}"
    );
    let (status, _, html) = get(&page_a, Some(&token)).await;
    assert_eq!(status, 200, "{html}");
    // The hostile value is text, never markup.
    assert!(html.contains("&lt;script&gt;alert("), "{html}");
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    assert!(html.contains(&real.run_id), "{html}");
    assert!(html.contains("<svg class=\"chart\""), "{html}");
    let personal = personal_data(&env.db.pool, &key_a).await;
    assert!(!personal.is_empty(), "the real sync stored children");
    assert_no_personal_data("the district page", &html, &personal);
    assert_no_personal_data("the overview", &index, &personal);

    // The history JSON is sync_runs, row for row (60 runs).
    let (status, _, body) = get(&format!("/api/v1{page_a}/runs?limit=100"), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).expect("json");
    let api = api["items"].as_array().expect("items").clone();
    let rows = db_runs(&env.db.pool, &key_a, 100).await;
    assert_eq!(rows.len(), 60);
    assert_eq!(api.len(), rows.len());
    for (a, r) in api.iter().zip(&rows) {
        assert_same_run(a, r);
    }
    let (status, _, body) = get(&format!("/api/v1{page_a}/runs?limit=0"), Some(&token)).await;
    assert_eq!(status, 400, "{body}");

    // The problems CSV parses and holds ids, codes and messages only.
    let (status, _, csv) = get(&format!("{page_a}/problems.csv"), Some(&token)).await;
    assert_eq!(status, 200, "{csv}");
    let mut py = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write as _;
        py.stdin
            .take()
            .expect("stdin")
            .write_all(csv.as_bytes())
            .expect("write csv");
    }
    let out = py.wait_with_output().expect("python3 csv");
    assert!(out.status.success());
    let parsed: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).expect("csv rows");
    assert_eq!(
        parsed[0],
        [
            "run_id",
            "record_kind",
            "clever_id",
            "code",
            "message",
            "what_to_do"
        ]
    );
    let problems_in_db: (i64,) =
        sqlx::query_as("SELECT count(*) FROM sync_problems WHERE run_id = $1")
            .bind(&real.run_id)
            .fetch_one(&env.db.pool)
            .await
            .expect("count problems");
    assert_eq!(parsed.len() as i64 - 1, problems_in_db.0, "{csv}");
    assert!(
        parsed
            .iter()
            .skip(1)
            .all(|r| r.len() == 6 && r[0] == real.run_id)
    );
    assert!(
        parsed
            .iter()
            .any(|r| r[2] == "section-hostile" && r[4].contains(HOSTILE)),
        "{csv}"
    );
    assert_no_personal_data("the problems CSV", &csv, &personal);

    // The plugin's API client, as the viewer (their kubeconfig): history and problems.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).expect("read kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("viewer config");
    let viewer = rostersync::ui::client::UiClient::with_config(config, &ui).expect("ui client");
    let history = viewer
        .history(&ns_a, "springfield", 60)
        .await
        .expect("history");
    let ids: Vec<&str> = history.iter().map(|r| r.run_id.as_str()).collect();
    let db_ids: Vec<&str> = rows
        .iter()
        .map(|r| r["run_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, db_ids);
    let problems = viewer
        .problems(&ns_a, "springfield", None)
        .await
        .expect("problems");
    assert_eq!(problems.run_id.as_deref(), Some(real.run_id.as_str()));
    assert!(problems.items.iter().any(|p| p.message.contains(HOSTILE)));
    let refused = viewer
        .history(&ns_b, "shelbyville", 10)
        .await
        .expect_err("B is not the viewer's");
    assert!(refused.to_string().contains("403"), "{refused:#}");

    // `kubectl roster history` without DATABASE_URL: through the UI, as the viewer.
    let out = plugin(
        &["history", "-n", &ns_a, "springfield", "--limit", "60"],
        &[("KUBECONFIG", &kubeconfig), ("ROSTERSYNC_UI_URL", &ui)],
    )
    .output()
    .await
    .expect("kubectl-roster history");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(status UI)"), "{stdout}");
    assert!(
        stdout.contains(&real.run_id) && stdout.contains("hist-59"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        62,
        "title, header and 60 runs: {stdout}"
    );

    // `kubectl roster problems` without DATABASE_URL: through the UI, as the viewer, as JSON;
    // and refused for district B.
    let out = plugin(
        &["problems", "-n", &ns_a, "springfield", "-o", "json"],
        &[("KUBECONFIG", &kubeconfig), ("ROSTERSYNC_UI_URL", &ui)],
    )
    .output()
    .await
    .expect("kubectl-roster problems");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("problems JSON");
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), problems.items.len(), "{listed}");
    assert!(
        items
            .iter()
            .all(|p| p["runId"] == real.run_id.as_str() && p["whatToDo"].is_string()),
        "{listed}"
    );
    let out = plugin(
        &["problems", "-n", &ns_b, "shelbyville"],
        &[("KUBECONFIG", &kubeconfig), ("ROSTERSYNC_UI_URL", &ui)],
    )
    .output()
    .await
    .expect("kubectl-roster problems");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `kubectl roster dashboard`: the local proxy adds the viewer's token.
    let mut dashboard = plugin(
        &["dashboard", "-n", &ns_a, "--ui-url", &ui],
        &[("KUBECONFIG", &kubeconfig)],
    );
    dashboard.stdout(std::process::Stdio::piped());
    let mut dashboard = dashboard.spawn().expect("kubectl-roster dashboard");
    let stdout = dashboard.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("the dashboard prints its URL")
        .expect("read stdout")
        .expect("a line");
    let local = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no local URL in {line:?}"))
        .to_string();
    let origin = local.split('/').take(3).collect::<Vec<_>>().join("/");
    let r = http.get(&local).send().await.expect("proxy");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("body").contains("springfield"));
    assert_eq!(
        http.post(format!("{origin}/"))
            .send()
            .await
            .expect("post")
            .status(),
        405
    );
    assert_eq!(
        http.get(format!("{origin}/"))
            .header("host", "evil.example:80")
            .send()
            .await
            .expect("rebinding")
            .status(),
        403
    );

    if chromium().is_some() {
        let dom = headless(&local, &["--dump-dom"]).await;
        assert!(dom.contains("springfield"), "{dom}");
        assert!(!dom.contains("shelbyville"), "{dom}");
        assert!(dom.contains("Succeeded"), "{dom}");
        let dom = headless(&format!("{origin}{page_a}"), &["--dump-dom"]).await;
        assert!(dom.contains(&real.run_id), "{dom}");
        assert!(dom.contains("&lt;script&gt;alert("), "{dom}");
        let dom = headless(&format!("{origin}{page_b}"), &["--dump-dom"]).await;
        assert!(dom.contains("Not allowed"), "{dom}");
        let shots = tempfile::tempdir().expect("tempdir");
        for (file, url, size) in [
            ("ui-overview.png", local.clone(), "1000,700"),
            ("ui-district.png", format!("{origin}{page_a}"), "1000,2200"),
        ] {
            let path = shots.path().join(file);
            headless(
                &url,
                &[
                    &format!("--screenshot={}", path.display()),
                    &format!("--window-size={size}"),
                ],
            )
            .await;
            let png = std::fs::read(&path).expect("a screenshot");
            assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{file}");
            if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
                std::fs::write(common::repo_path("docs/images").join(file), &png)
                    .expect("write docs/images");
            }
        }
    }
    // A run held by the removal guard, newest: what it would remove and the approve command.
    let later = real_start.0.0 + jiff::SignedDuration::from_hours(1);
    insert_run(
        &env.db.pool,
        &key_a,
        "held-1",
        RunResult::Held,
        20,
        later,
        0,
    )
    .await;
    let (status, _, html) = get(&page_a, Some(&token)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("It would remove: 9 children."), "{html}");
    assert!(
        html.contains(&format!("kubectl roster approve -n {ns_a} nightly held-1")),
        "{html}"
    );
    let _ = dashboard.kill().await;
    let _ = crbs.delete(&crb_name, &DeleteParams::default()).await;
}
