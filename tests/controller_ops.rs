//! End-to-end tests of the controller's operational behaviour: the admin server
//! (`/metrics`, `/healthz`, `/readyz`) and the pruning of finished Jobs by the history limits.
//! Same environment as `controller_e2e.rs`: the real binary with its ServiceAccount's token, the
//! pod runner running real sync Jobs, an in-process Clever emulator and Postgres.
mod common;
#[path = "controller/env.rs"]
mod env;

use env::{Env, TIMEOUT, slot_ahead};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use rostersync::api::{RunResult, RunStatus, SYNC_NOW_ANNOTATION};
use serde_json::json;

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

/// The value of the first sample line starting with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[tokio::test]
async fn metrics_health_and_readiness_are_served() {
    let Some(env) = Env::new("ops-metrics", 40).await else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let _controller = env.controller_with_metrics("controller", &addr, &[]);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("http client");
    let base = format!("http://{addr}");

    common::wait_for("/healthz to answer 200", TIMEOUT, || async {
        get(&http, &format!("{base}/healthz"))
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    common::wait_for("/readyz to answer 200", TIMEOUT, || async {
        get(&http, &format!("{base}/readyz"))
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;

    env.ready_schedule(json!({})).await;
    let run = env.sync_now_finished("metrics", &[]).await;
    assert_eq!(run.result, Some(RunResult::Succeeded), "{run:?}");

    // The status is written before the gauges are set in the same reconcile: wait for them.
    let labels = format!(
        "{{namespace=\"{}\",schedule=\"nightly\",connection=\"springfield\"}}",
        env.ns
    );
    let last_success = format!("rostersync_last_successful_sync_timestamp_seconds{labels}");
    let next_sync = format!("rostersync_next_sync_timestamp_seconds{labels}");
    let succeeded = format!(
        "rostersync_syncs_total{{namespace=\"{}\",connection=\"springfield\",result=\"Succeeded\"}}",
        env.ns
    );
    let text = common::wait_for("/metrics to show the successful sync", TIMEOUT, || {
        let (http, base, last_success, succeeded) = (&http, &base, &last_success, &succeeded);
        async move {
            let (code, text) = get(http, &format!("{base}/metrics")).await?;
            (code == 200 && sample(&text, succeeded)? >= 1.0 && sample(&text, last_success)? > 0.0)
                .then_some(text)
        }
    })
    .await;

    for kind in ["RosterConnection", "SyncSchedule"] {
        let series = format!("rostersync_reconciles_total{{kind=\"{kind}\"}}");
        assert!(
            sample(&text, &series).is_some_and(|v| v >= 1.0),
            "{series}:\n{text}"
        );
    }
    let conn = format!("namespace=\"{}\",connection=\"springfield\"", env.ns);
    assert!(
        sample(
            &text,
            &format!("rostersync_sync_duration_seconds_count{{{conn}}}")
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rostersync_sync_duration_seconds_bucket{{le=\"5.0\",{conn}}}"
        )),
        "{text}"
    );
    assert!(
        sample(
            &text,
            &format!("rostersync_sync_duration_seconds_sum{{{conn}}}")
        )
        .is_some(),
        "{text}"
    );
    let now = jiff::Timestamp::now().as_second() as f64;
    let success = sample(&text, &last_success).expect("last success gauge");
    assert!(
        (now - 600.0..=now + 60.0).contains(&success),
        "{success} vs now {now}"
    );
    let next = sample(&text, &next_sync).unwrap_or_else(|| panic!("{next_sync}:\n{text}"));
    assert!(next > now, "next sync {next} is not after now {now}");

    // Nothing personal and no secret: the token is absent, and the only labels are the known ones.
    assert!(
        !text.contains(env.emulator.token()),
        "the token leaked:\n{text}"
    );
    assert!(
        !text.contains(&env.db.url),
        "the database URL leaked:\n{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let labels = rest.split_once('}').map(|(l, _)| l).unwrap_or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let key = pair.split_once('=').map(|(k, _)| k).unwrap_or(pair);
            assert!(
                [
                    "kind",
                    "error",
                    "result",
                    "namespace",
                    "schedule",
                    "connection",
                    "controller",
                    "version",
                    "le"
                ]
                .contains(&key),
                "unexpected label {key:?} in {line:?}"
            );
        }
    }
}

async fn pods_of(env: &Env, job: &str) -> usize {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    pods.list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .expect("list pods")
        .items
        .len()
}

#[tokio::test]
async fn finished_jobs_are_pruned_by_the_history_limits() {
    let Some((env, _controller)) = Env::ready("ops-prune", 40).await else {
        return;
    };
    let patch = json!({"spec": {"history": {"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 1}}});
    env.schedules()
        .patch("nightly", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("set the history limits");

    // Two failed runs (Clever answers an HTML 404 on sections); a failed run leaves Sync Now
    // available, so the second request runs too.
    env.fail_sections(1000);
    let first = env.sync_now_finished("fail-1", &[]).await;
    assert_eq!(first.result, Some(RunResult::Failed), "{first:?}");
    env.wait_sync_now_available("Sync Now available after a failure")
        .await;
    let second = env.sync_now_finished("fail-2", &[&first.run_id]).await;
    assert_eq!(second.result, Some(RunResult::Failed), "{second:?}");
    assert_ne!(first.job, second.job);

    // Only the newer failed Job is kept; the older one is deleted, its pods too.
    common::wait_for("the older failed Job to be pruned", TIMEOUT, || async {
        (env.job_names().await == vec![second.job.clone()]).then_some(())
    })
    .await;
    common::wait_for("the pruned Job's pods to be deleted", TIMEOUT, || async {
        (pods_of(&env, &first.job).await == 0).then_some(())
    })
    .await;
    assert!(
        pods_of(&env, &second.job).await >= 1,
        "the kept Job lost its pod"
    );
    // History is never lost: both runs stay in sync_runs and in the status.
    for run in [&first, &second] {
        assert_eq!(
            env.run_result(&run.run_id).await.map(|r| r.0).as_deref(),
            Some("Failed"),
            "{run:?}"
        );
    }

    // A successful run: its Job is pruned at once (limit 0), the failed one stays.
    env.emulator.clear_faults();
    env.wait_sync_now_available("Sync Now available after a failure")
        .await;
    let ok = env.sync_now_finished("ok", &[&second.run_id]).await;
    assert_eq!(ok.result, Some(RunResult::Succeeded), "{ok:?}");
    common::wait_for("the successful Job to be pruned", TIMEOUT, || async {
        (env.job_names().await == vec![second.job.clone()]).then_some(())
    })
    .await;
    assert_eq!(
        env.run_result(&ok.run_id).await.map(|r| r.0).as_deref(),
        Some("Succeeded")
    );
    let s = env.schedules().get("nightly").await.expect("schedule");
    let st = s.status.expect("status");
    let last = st.last_run.as_ref().expect("lastRun");
    assert_eq!(last.run_id, ok.run_id);
    assert_eq!(last.result, Some(RunResult::Succeeded));
    let recent: Vec<&str> = st.recent_runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        recent,
        [
            ok.run_id.as_str(),
            second.run_id.as_str(),
            first.run_id.as_str()
        ],
        "recentRuns"
    );
    assert!(st.last_successful_time.is_some());
}

/// The Secret's URL and its fingerprint annotation.
async fn credential_secret(env: &Env, name: &str) -> Option<(String, String, String)> {
    use k8s_openapi::api::core::v1::Secret;
    let s = Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .get_opt(&rostersync::controller::tenancy::secret_name(name))
        .await
        .expect("get Secret")?;
    let owner = s.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        owner
            .iter()
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .collect::<Vec<_>>(),
        [("RosterConnection", name)],
        "owned by its RosterConnection"
    );
    let url = String::from_utf8(s.data?.get("url")?.0.clone()).expect("utf-8");
    let annotations = s.metadata.annotations.unwrap_or_default();
    Some((
        url,
        annotations
            .get(rostersync::controller::tenancy::FINGERPRINT_ANNOTATION)?
            .clone(),
        annotations
            .get(rostersync::controller::tenancy::ROTATED_FOR_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
    ))
}

/// Dedicated tenancy end to end, with the chart's RBAC: each connection gets its own database
/// role in a Secret it owns, its sync Jobs use it (the pod runner runs them with that URL), a
/// rotation on request works, and deleting a connection with `deletionPolicy: Delete` removes its
/// roster and role (the finalizer) while the other district's rows stay as they were.
#[tokio::test]
async fn districts_get_their_own_database_role_and_offboarding_deletes_only_theirs() {
    let Some((env, _controller)) = Env::with_controller("ops-tenancy", 120).await else {
        return;
    };
    env.create_connection("springfield", &env.district_id(), json!({}))
        .await;
    env.connections()
        .patch(
            "springfield",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"deletionPolicy": "Delete"}})),
        )
        .await
        .expect("set deletionPolicy");
    env.create_connection("shelbyville", &env.district_id(), json!({}))
        .await;
    env.create_schedule("nightly", "springfield", None, false)
        .await;
    env.create_schedule("other", "shelbyville", None, false)
        .await;
    env.connection_reason("springfield", "Verified").await;
    env.connection_reason("shelbyville", "Verified").await;

    let db_name = env.db.name.clone();
    let key = |name: &str| format!("{}/{name}", env.ns);
    for name in ["springfield", "shelbyville"] {
        let (url, _, _) = common::wait_for("the credential Secret", TIMEOUT, || {
            credential_secret(&env, name)
        })
        .await;
        let url = url::Url::parse(&url).expect("url");
        assert_eq!(
            url.username(),
            rostersync::store::tenancy::role_name(&db_name, &key(name))
        );
        assert_eq!(url.path(), format!("/{db_name}"));
    }

    // Both districts sync with their own credentials.
    env.wait_sync_now_available("Sync Now available").await;
    let first = env.sync_now_finished("s1", &[]).await;
    assert_eq!(first.result, Some(RunResult::Succeeded), "{first:?}");
    let other_run = |token: &'static str| {
        let env = &env;
        async move {
            env.annotate("other", rostersync::api::SYNC_NOW_ANNOTATION, token)
                .await;
            env.schedule_until("other", &format!("run {token} finished"), |s| {
                env::handled_token(s) == Some(token)
                    && env::last_run(s)
                        .is_some_and(|r| r.result.is_some_and(|x| x != RunResult::Running))
            })
            .await
        }
    };
    env.schedule_until("other", "Sync Now available", env::sync_now_available)
        .await;
    let s = other_run("o1").await;
    let o1 = env::last_run(&s).cloned().expect("run");
    assert_eq!(o1.result, Some(RunResult::Succeeded), "{o1:?}");
    let rows = |conn: String| {
        let env = &env;
        async move {
            let mut n = 0;
            for table in [
                "children",
                "enrollments",
                "classrooms",
                "educators",
                "schools",
            ] {
                n += env
                    .count(&format!(
                        "SELECT count(*) FROM {table} WHERE connection = '{conn}'"
                    ))
                    .await;
            }
            n
        }
    };
    assert!(rows(key("springfield")).await > 0);
    let shelbyville_rows = rows(key("shelbyville")).await;
    assert!(shelbyville_rows > 0);

    // Rotation on request: a new password in the Secret, the old one refused, the new one works.
    let (old_url, old_fp, _) = credential_secret(&env, "shelbyville")
        .await
        .expect("Secret");
    env.connections()
        .patch(
            "shelbyville",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {
                rostersync::controller::tenancy::ROTATE_ANNOTATION: "r1"}}})),
        )
        .await
        .expect("request a rotation");
    let (new_url, new_fp, _) = common::wait_for("the rotated credential", TIMEOUT, || async {
        credential_secret(&env, "shelbyville")
            .await
            .filter(|(_, fp, rotated)| *fp != old_fp && rotated == "r1")
    })
    .await;
    assert_ne!(new_url, old_url);
    assert_ne!(new_fp, old_fp);
    assert!(
        rostersync::store::connect(&old_url, 1).await.is_err(),
        "the old password no longer works"
    );
    // The new URL works and reaches shelbyville's rows (and only those).
    let pool = rostersync::store::connect(&new_url, 1)
        .await
        .expect("the rotated credential connects");
    let own: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE connection = $1), count(*) FILTER (WHERE connection <> $1)
         FROM children",
    )
    .bind(key("shelbyville"))
    .fetch_one(&pool)
    .await
    .expect("select children");
    assert!(own.0 > 0 && own.1 == 0, "{own:?}");
    pool.close().await;

    // Offboarding springfield (deletionPolicy: Delete).
    let before = common::roster_dump(&env.db.pool, &key("shelbyville")).await;
    env.connections()
        .delete("springfield", &Default::default())
        .await
        .expect("delete connection");
    common::wait_for("springfield to be gone", TIMEOUT, || async {
        env.connections()
            .get_opt("springfield")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        rows(key("springfield")).await,
        0,
        "springfield's roster is deleted"
    );
    assert_eq!(rows(key("shelbyville")).await, shelbyville_rows);
    assert_eq!(
        common::roster_dump(&env.db.pool, &key("shelbyville")).await,
        before,
        "shelbyville's rows are untouched"
    );
    let role = rostersync::store::tenancy::role_name(&db_name, &key("springfield"));
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"
        ))
        .await,
        0,
        "springfield's role is dropped"
    );
    // Its history stays (until the retention).
    assert!(
        env.count(&format!(
            "SELECT count(*) FROM sync_runs WHERE connection = '{}'",
            key("springfield")
        ))
        .await
            >= 1
    );
}

/// Schedule `name`'s last run once it is not `previous` and finished.
async fn finished_run_of(env: &Env, name: &str, what: &str, previous: &[&str]) -> RunStatus {
    let s = env
        .schedule_until(name, what, |s| {
            env::last_run(s).is_some_and(|r| {
                !previous.contains(&r.run_id.as_str())
                    && r.result.is_some_and(|res| res != RunResult::Running)
            })
        })
        .await;
    env::last_run(&s).cloned().expect("last run")
}

/// Requests a Sync Now of schedule `name` and waits for its run to finish.
async fn sync_now_of(env: &Env, name: &str, token: &str, previous: &[&str]) -> RunStatus {
    env.schedule_until(name, "Sync Now available", env::sync_now_available)
        .await;
    env.annotate(name, SYNC_NOW_ANNOTATION, token).await;
    finished_run_of(env, name, &format!("the run of Sync Now {token}"), previous).await
}

/// `/metrics` once `check` holds on its text.
async fn metrics_until(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let check = &check;
    common::wait_for(what, TIMEOUT, || async move {
        let (code, text) = get(http, &format!("{base}/metrics")).await?;
        (code == 200 && check(&text)).then_some(text)
    })
    .await
}

/// Two connections in one namespace: `springfield` (schedule `nightly`, with the removal guard)
/// syncs at its slot, then a Sync Now is held by the guard; `shelbyville` (schedule `weekly`) fails,
/// then succeeds. The per-connection and per-schedule series say exactly that, and deleting
/// `weekly` and `shelbyville` removes their series while springfield's stay.
#[tokio::test]
async fn sync_series_per_connection_and_schedule_and_removed_with_the_objects() {
    let Some(env) = Env::new("ops-series", 80).await else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let (slot, offset) = slot_ahead(25);
    let _controller =
        env.controller_with_metrics("controller", &addr, &["--clock-offset-seconds", &offset]);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("http client");
    let base = format!("http://{addr}");
    let ns = env.ns.clone();

    let guard = json!({"allowRemoval": true, "removalGuardPercent": 10});
    env.create_connection("springfield", &env.district_id(), guard)
        .await;
    env.create_schedule("nightly", "springfield", Some(slot), false)
        .await;
    env.create_connection("shelbyville", &env.district_id(), json!({}))
        .await;
    env.create_schedule("weekly", "shelbyville", None, false)
        .await;
    let scheduled = finished_run_of(&env, "nightly", "the scheduled run", &[]).await;
    assert_eq!(
        scheduled.result,
        Some(RunResult::Succeeded),
        "{scheduled:?}"
    );

    // shelbyville: a failed run (Clever answers an HTML 404 on sections), then a successful one.
    env.fail_sections(1000);
    let failed = sync_now_of(&env, "weekly", "fail", &[]).await;
    assert_eq!(failed.result, Some(RunResult::Failed), "{failed:?}");
    env.emulator.clear_faults();
    let ok = sync_now_of(&env, "weekly", "ok", &[&failed.run_id]).await;
    assert_eq!(ok.result, Some(RunResult::Succeeded), "{ok:?}");

    // springfield: half the sections leave the roster, far more than its 10% guard: held.
    env.emulator.update(|store| {
        use rostersync::devtools::emulator::Kind;
        let ids: Vec<String> = store
            .entries(Kind::Sections)
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        for id in ids.iter().take(ids.len() / 2) {
            store.remove(Kind::Sections, id).expect("remove section");
        }
    });
    let held = sync_now_of(&env, "nightly", "held", &[&scheduled.run_id]).await;
    assert_eq!(held.result, Some(RunResult::Held), "{held:?}");

    // An email waiting in the outbox of springfield (no SMTP in this test: none is ever sent).
    sqlx::query(
        "INSERT INTO email_outbox (connection, kind, fingerprint, recipients, subject, body_text, \
         body_html, created_at) VALUES ($1, 'RunFailed', 'f', ARRAY['ops@example.org'], 's', 't', \
         'h', now() - interval '1 hour')",
    )
    .bind(format!("{ns}/springfield"))
    .execute(&env.db.pool)
    .await
    .expect("queue an email");

    let sf = format!("namespace=\"{ns}\",connection=\"springfield\"");
    let sb = format!("namespace=\"{ns}\",connection=\"shelbyville\"");
    let nightly = format!("namespace=\"{ns}\",schedule=\"nightly\",connection=\"springfield\"");
    let weekly = format!("namespace=\"{ns}\",schedule=\"weekly\",connection=\"shelbyville\"");
    let s = |name: &str, labels: &str| format!("{name}{{{labels}}}");
    let runs = |labels: &str, result: &str| {
        format!("rostersync_syncs_total{{{labels},result=\"{result}\"}}")
    };
    let text = metrics_until(&http, &base, "/metrics to show all four runs", |t| {
        sample(t, &runs(&sf, "Held")) == Some(1.0)
            && sample(t, &runs(&sb, "Succeeded")) == Some(1.0)
            && sample(t, &s("rostersync_schedule_held_runs", &nightly)) == Some(1.0)
            && sample(t, &s("rostersync_schedule_consecutive_failures", &weekly)) == Some(0.0)
    })
    .await;
    let expect = [
        (runs(&sf, "Succeeded"), 1.0),
        (runs(&sf, "Held"), 1.0),
        (runs(&sb, "Failed"), 1.0),
        (runs(&sb, "Succeeded"), 1.0),
        (s("rostersync_sync_duration_seconds_count", &sf), 2.0),
        (s("rostersync_sync_duration_seconds_count", &sb), 2.0),
        (s("rostersync_schedule_held_runs", &nightly), 1.0),
        (s("rostersync_schedule_held_runs", &weekly), 0.0),
        (s("rostersync_schedule_consecutive_failures", &nightly), 1.0),
        (s("rostersync_schedule_consecutive_failures", &weekly), 0.0),
        (s("rostersync_schedule_period_seconds", &nightly), 604_800.0),
        (s("rostersync_schedule_suspended", &weekly), 0.0),
        (s("rostersync_schedule_missed_slots", &nightly), 0.0),
        (s("rostersync_email_outbox_pending", &sf), 1.0),
        ("rostersync_leader".to_string(), 1.0),
    ];
    for (series, value) in &expect {
        assert_eq!(sample(&text, series), Some(*value), "{series}:\n{text}");
    }
    assert!(
        sample(&text, &runs(&sf, "Failed")).is_none()
            && sample(&text, &runs(&sb, "Held")).is_none(),
        "{text}"
    );
    // What the runs cost Clever, as the Jobs recorded it in their history rows: every run sent
    // requests (the district, its schools, sections, users); the emulator answered no 429.
    for labels in [&sf, &sb] {
        let requests = sample(&text, &s("rostersync_clever_requests_total", labels));
        assert!(
            requests.is_some_and(|r| r >= 4.0),
            "{labels}: {requests:?}\n{text}"
        );
        assert_eq!(
            sample(&text, &s("rostersync_clever_rate_limited_total", labels)),
            Some(0.0),
            "{labels}"
        );
    }
    let now = jiff::Timestamp::now().as_second() as f64;
    let held_since = sample(
        &text,
        &s("rostersync_schedule_held_since_timestamp_seconds", &nightly),
    )
    .unwrap_or_else(|| panic!("held since:\n{text}"));
    // Within the last minutes, by the Job's clock (real time; the controller's runs ahead).
    assert!(
        (now - 600.0..=now + 60.0).contains(&held_since),
        "held since {held_since}, now {now}"
    );
    assert!(
        sample(
            &text,
            &s("rostersync_schedule_held_since_timestamp_seconds", &weekly)
        )
        .is_none(),
        "{text}"
    );
    let age = sample(
        &text,
        &s("rostersync_email_outbox_oldest_pending_age_seconds", &sf),
    )
    .unwrap_or_else(|| panic!("outbox age:\n{text}"));
    assert!((3500.0..3700.0).contains(&age), "oldest email age {age}");
    let success = sample(
        &text,
        "rostersync_reconcile_total{controller=\"SyncSchedule\",result=\"success\"}",
    );
    assert!(success.is_some_and(|v| v >= 1.0), "{text}");
    assert!(
        sample(
            &text,
            "rostersync_reconcile_duration_seconds_count{controller=\"RosterConnection\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("rostersync_build_info{version=\"") && l.ends_with(" 1")),
        "{text}"
    );

    // Deleting shelbyville's schedule and connection removes every one of their series.
    env.schedules()
        .delete("weekly", &DeleteParams::default())
        .await
        .expect("delete the schedule");
    env.connections()
        .delete("shelbyville", &DeleteParams::default())
        .await
        .expect("delete the connection");
    let text = metrics_until(&http, &base, "shelbyville's series to go", |t| {
        !t.contains("connection=\"shelbyville\"") && !t.contains("schedule=\"weekly\"")
    })
    .await;
    for (series, value) in expect.iter().filter(|(s, _)| !s.contains("shelbyville")) {
        assert_eq!(
            sample(&text, series),
            Some(*value),
            "{series} after the deletion:\n{text}"
        );
    }
}
