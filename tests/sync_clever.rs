//! The sync against the Clever emulator over real HTTP: fetch + filter + apply, atomic failure
//! mid-stream, and the real binary's exit codes and JSON output.
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{
    clever_emulator as emulator, clever_source as source, clever_spec as spec,
    sync_request as request, write_connection_manifest as write_manifest,
};
use rostersync::api::{Grade, RunResult};
use rostersync::clever::{Section, User};
use rostersync::devtools::emulator::{EmulatorHandle, Fault, FaultKind, Kind};
use rostersync::sync::run_sync;
use sqlx::PgPool;

/// Students of the emulator's sections with a shared (early) grade.
fn kept_students(emu: &EmulatorHandle) -> (HashSet<String>, usize) {
    emu.read(|s| {
        let sections: Vec<Section> = s.all(Kind::Sections);
        let kept: Vec<&Section> = sections
            .iter()
            .filter(|x| {
                x.grade.as_ref().is_some_and(|g| {
                    Grade::parse(&g.as_clever()).is_some_and(|g| Grade::EARLY.contains(&g))
                })
            })
            .collect();
        (
            kept.iter()
                .flat_map(|x| x.students.iter().cloned())
                .collect(),
            kept.len(),
        )
    })
}

async fn db() -> Option<(PgPool, String)> {
    let db = common::fresh_db().await?;
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    Some((db.pool, db.url))
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

async fn roster_snapshot(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT v FROM (
            SELECT 's:' || clever_id || ':' || xmin::text v FROM schools UNION ALL
            SELECT 'c:' || clever_id || ':' || xmin::text FROM classrooms UNION ALL
            SELECT 'e:' || clever_id || ':' || xmin::text FROM educators UNION ALL
            SELECT 'k:' || id || ':' || xmin::text FROM children UNION ALL
            SELECT 'n:' || child_id || ':' || xmin::text FROM enrollments) x ORDER BY v",
    )
    .fetch_all(pool)
    .await
    .expect("snapshot")
}

#[tokio::test]
async fn syncs_the_shared_sections_of_the_emulated_district_then_resyncs_as_a_no_op() {
    let Some((pool, _)) = db().await else { return };
    let emu = emulator(1500).await;
    let (students, sections) = kept_students(&emu);
    assert!(
        !students.is_empty() && sections > 0,
        "the generated district has early-grade sections"
    );
    let out = run_sync(&pool, &request(spec(&emu)), &source(&emu, 300))
        .await
        .expect("sync");
    assert_eq!(out.result, RunResult::Succeeded, "{:?}", out.message);
    assert_eq!(out.counts.children.created as usize, students.len());
    assert_eq!(out.counts.enrollments.created as usize, students.len());
    assert_eq!(out.counts.classrooms.created as usize, sections);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children").await as usize,
        students.len()
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM children WHERE grade NOT IN ('InfantToddler','Preschool','PreKindergarten','TransitionalKindergarten','Kindergarten')").await, 0);
    assert!(scalar(&pool, "SELECT count(*) FROM educators").await > 0);
    // Enrollments point at kept classrooms only; one per child.
    assert_eq!(scalar(&pool, "SELECT count(*) FROM enrollments e LEFT JOIN classrooms c ON c.clever_id = e.classroom_clever_id WHERE c.clever_id IS NULL").await, 0);

    let before = roster_snapshot(&pool).await;
    let again = run_sync(&pool, &request(spec(&emu)), &source(&emu, 10_000))
        .await
        .expect("resync");
    assert_eq!(again.result, RunResult::Succeeded);
    for (entity, c) in again.counts.entities() {
        assert_eq!(c.changes(), 0, "{entity}: {c:?}");
    }
    assert_eq!(roster_snapshot(&pool).await, before);
}

#[tokio::test]
async fn a_clever_failure_mid_stream_leaves_the_roster_exactly_as_before() {
    let Some((pool, _)) = db().await else { return };
    let emu = emulator(1500).await;
    let mut s = spec(&emu);
    s.settings.allow_removal = true;
    s.settings.removal_guard_percent = 100;
    run_sync(&pool, &request(s.clone()), &source(&emu, 200))
        .await
        .expect("first sync");
    let before = roster_snapshot(&pool).await;
    // Change the district (a student leaves, one is renamed), then fail the third students page.
    let (students, _) = kept_students(&emu);
    let mut ids: Vec<String> = students.into_iter().collect();
    ids.sort();
    emu.update(|st| {
        st.remove(Kind::Users, &ids[0]).expect("remove");
        st.patch(
            Kind::Users,
            &ids[1],
            &serde_json::json!({"name": {"first": "Renamed"}}),
        )
        .expect("patch");
    });
    emu.add_fault(Fault::new(
        Some("/v3.0/users"),
        3,
        10,
        FaultKind::Status { status: 503 },
    ));
    let failing = request(s.clone());
    let out = run_sync(&pool, &failing, &source(&emu, 200))
        .await
        .expect("a recorded failure");
    assert_eq!(out.result, RunResult::Failed);
    assert_eq!(out.exit_code(), 1, "a 503 is retriable");
    assert_eq!(out.attempts, 1);
    assert_eq!(
        roster_snapshot(&pool).await,
        before,
        "nothing of the failed run is applied"
    );
    let row = rostersync::store::runs::by_id(&pool, &out_key(), &out.run_id)
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(row.result, RunResult::Failed);
    assert_eq!(row.reason.as_deref(), Some("CleverUnavailable"));
    assert!(
        row.message.as_deref().is_some_and(|m| m.contains("503")),
        "{:?}",
        row.message
    );
    assert!(row.finished_at.is_some());

    // The Job's next attempt (the same run id) fetches again and applies: a retry that retries.
    emu.clear_faults();
    let requests_before = emu.requests().len();
    let ok = run_sync(&pool, &failing, &source(&emu, 200))
        .await
        .expect("recovery");
    assert!(
        emu.requests().len() > requests_before,
        "the retry fetched nothing"
    );
    assert_eq!(ok.run_id, out.run_id);
    assert_eq!(ok.result, RunResult::Succeeded);
    assert_eq!(ok.attempts, 2);
    assert!(ok.summary().ends_with("(attempt 2)"), "{}", ok.summary());
    assert_eq!(ok.counts.children.deactivated, 1);
    assert_eq!(ok.counts.children.updated, 1);
    // A finished success is final: a third attempt reports it without fetching.
    let requests_before = emu.requests().len();
    let again = run_sync(&pool, &failing, &source(&emu, 200))
        .await
        .expect("report");
    assert_eq!(emu.requests().len(), requests_before);
    assert_eq!((again.result, again.attempts), (RunResult::Succeeded, 2));
}

async fn run_binary(
    url: &str,
    manifest: &std::path::Path,
    token: &str,
    extra: &[&str],
) -> (i32, String) {
    run_binary_logs(url, manifest, token, extra).await.0
}

/// [`run_binary`] with JSON logs at `info` (as a Job inheriting the controller's): also its stderr.
async fn run_binary_logs(
    url: &str,
    manifest: &std::path::Path,
    token: &str,
    extra: &[&str],
) -> ((i32, String), String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["sync", "--output", "json", "--connection-file"])
        .arg(manifest)
        .args(extra)
        .env("RUST_LOG", "info")
        .env("ROSTERSYNC_LOG_FORMAT", "json")
        .env("DATABASE_URL", url)
        .env("CLEVER_TOKEN", token)
        .env_remove("CLEVER_CLIENT_ID")
        .output()
        .await
        .expect("run rostersync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.is_empty() {
        eprintln!("rostersync stderr:\n{stderr}");
    }
    (
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        stderr.into_owned(),
    )
}

#[tokio::test]
async fn the_binary_exits_0_3_and_2_and_prints_the_json_contract() {
    let Some((pool, url)) = db().await else {
        return;
    };
    let emu = emulator(800).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = spec(&emu);
    s.settings.allow_removal = true;
    s.settings.removal_guard_percent = 10;
    let manifest = write_manifest(dir.path(), &s);

    let ((code, stdout), logs) = run_binary_logs(&url, &manifest, emu.token(), &[]).await;
    assert_eq!(code, 0, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json output");
    assert_eq!(json["result"], "Succeeded");
    // JSON logs, each line of the run inside its span: run id, connection and trigger, so that a
    // run can be followed from the controller's decision (same fields) to the Job's phases.
    let in_run: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["span"]["name"] == "run")
        .collect();
    assert!(
        in_run
            .iter()
            .any(|l| l["fields"]["message"] == "sync started"),
        "{logs}"
    );
    for line in &in_run {
        assert_eq!(line["span"]["run_id"], json["runId"], "{line}");
        assert_eq!(line["span"]["connection"], "default/district", "{line}");
        assert_eq!(line["span"]["trigger"], "Manual", "{line}");
    }
    for key in ["runId", "result", "counts", "problems", "durationMs"] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    for entity in [
        "schools",
        "classrooms",
        "educators",
        "children",
        "enrollments",
    ] {
        for k in [
            "created",
            "updated",
            "unchanged",
            "deactivated",
            "removed",
            "reactivated",
            "carriedOver",
            "matched",
        ] {
            assert!(
                json["counts"][entity][k].is_u64(),
                "counts.{entity}.{k} missing: {json}"
            );
        }
    }
    assert!(json["counts"]["children"]["created"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM sync_runs WHERE connection = 'default/district'"
        )
        .await,
        1
    );

    // Half of the kept students leave: held (exit 3), nothing applied; approved: applied.
    let (students, _) = kept_students(&emu);
    let mut ids: Vec<String> = students.into_iter().collect();
    ids.sort();
    emu.update(|st| {
        ids.iter()
            .step_by(2)
            .for_each(|id| st.remove(Kind::Users, id).expect("remove"))
    });
    let active = scalar(&pool, "SELECT count(*) FROM children WHERE active").await;
    let (code, stdout) = run_binary(&url, &manifest, emu.token(), &[]).await;
    assert_eq!(code, 3, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(json["result"], "Held");
    assert_eq!(
        json["counts"]["children"]["deactivated"].as_u64(),
        Some(ids.len().div_ceil(2) as u64)
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await,
        active
    );
    let (code, _) = run_binary(&url, &manifest, emu.token(), &["--approve-removals"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM children WHERE active").await as usize,
        ids.len() / 2
    );

    // Not retriable: a wrong token, a wrong district, an invalid manifest.
    let (code, stdout) = run_binary(&url, &manifest, "not-the-token", &[]).await;
    assert_eq!(code, 2, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(json["reason"], "CredentialsInvalid");
    let mut wrong = s.clone();
    wrong.district_id = "ffffffffffffffffffffffff".into();
    let (code, _) = run_binary(&url, &write_manifest(dir.path(), &wrong), emu.token(), &[]).await;
    assert_eq!(code, 2);
    let mut invalid = s.clone();
    invalid.api_base_url = "http://example.com".into();
    let (code, _) = run_binary(
        &url,
        &write_manifest(dir.path(), &invalid),
        emu.token(),
        &[],
    )
    .await;
    assert_eq!(code, 2);
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT coalesce(reason, '') FROM sync_runs ORDER BY started_at")
            .fetch_all(&pool)
            .await
            .expect("reasons");
    assert_eq!(
        reasons,
        [
            "Synced",
            "RemovalGuard",
            "Synced",
            "CredentialsInvalid",
            "DistrictNotFound"
        ]
    );
}

#[tokio::test]
async fn the_same_run_id_is_not_run_twice_by_the_binary() {
    let Some((pool, url)) = db().await else {
        return;
    };
    let emu = emulator(300).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &spec(&emu));
    let (code, first) = run_binary(&url, &manifest, emu.token(), &["--run-id", "slot-1"]).await;
    assert_eq!(code, 0);
    let (code, second) = run_binary(
        &url,
        &manifest,
        "wrong-token-does-not-matter",
        &["--run-id", "slot-1"],
    )
    .await;
    assert_eq!(code, 0, "the recorded outcome is reported");
    let a: serde_json::Value = serde_json::from_str(first.trim()).expect("json");
    let b: serde_json::Value = serde_json::from_str(second.trim()).expect("json");
    assert_eq!(a["counts"], b["counts"]);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM sync_runs").await, 1);
    let _ = User::default();
}

/// Broken Clever responses fail the run before anything is applied, with removal allowed and the
/// guard at 100% (so only the engine stands in the way): the roster is unchanged row for row, the
/// run is Failed with `CleverProtocolError`, and a redirect's target receives no request at all.
#[tokio::test]
async fn broken_clever_responses_fail_the_run_and_change_nothing() {
    let Some((pool, _)) = db().await else { return };
    let emu = emulator(300).await;
    emu.set_rate_limit(1_000_000);
    let trap = std::net::TcpListener::bind("127.0.0.1:0").expect("trap listener");
    trap.set_nonblocking(true).expect("nonblocking");
    let trap_url = format!(
        "http://{}/v3.0/users",
        trap.local_addr().expect("trap address")
    );
    let mut spec = spec(&emu);
    spec.settings.allow_removal = true;
    spec.settings.removal_guard_percent = 100;
    let paged = |max_body_bytes: u64| {
        let mut s = source(&emu, 5);
        s.config.max_pages = 200;
        s.config.max_body_bytes = max_body_bytes;
        s
    };
    let first = run_sync(&pool, &request(spec.clone()), &paged(1 << 20))
        .await
        .expect("first sync");
    assert_eq!(first.result, RunResult::Succeeded, "{:?}", first.message);
    let before = roster_snapshot(&pool).await;
    assert!(!before.is_empty());

    let every = |path: &str, kind: FaultKind| Fault::new(Some(path), 1, u64::MAX, kind);
    let cases: Vec<(&str, Option<Fault>, u64)> = vec![
        (
            "200 {} for users",
            Some(every("/v3.0/users", FaultKind::EmptyObject)),
            1 << 20,
        ),
        (
            "200 data:null for sections",
            Some(every("/v3.0/sections", FaultKind::NullData)),
            1 << 20,
        ),
        (
            "a 2-cycle",
            Some(Fault::new(
                Some("/v3.0/users"),
                2,
                1,
                FaultKind::PagingCycle,
            )),
            1 << 20,
        ),
        (
            "a drifting cursor",
            Some(every("/v3.0/schools", FaultKind::DriftingCursor)),
            1 << 20,
        ),
        (
            "no next mid-roster",
            Some(Fault::new(Some("/v3.0/users"), 3, 1, FaultKind::DropNext)),
            1 << 20,
        ),
        (
            "a redirect",
            Some(every(
                "/v3.0/users",
                FaultKind::Redirect {
                    location: trap_url.clone(),
                },
            )),
            1 << 20,
        ),
        ("a body over the cap", None, 256),
    ];
    for (name, fault, max_body_bytes) in cases {
        emu.clear_faults();
        if let Some(fault) = fault {
            emu.add_fault(fault);
        }
        let out = run_sync(&pool, &request(spec.clone()), &paged(max_body_bytes))
            .await
            .expect("the run is recorded");
        assert_eq!(out.result, RunResult::Failed, "{name}: {:?}", out.message);
        assert_eq!(
            out.reason.as_deref(),
            Some("CleverProtocolError"),
            "{name}: {:?}",
            out.message
        );
        let message = out.message.unwrap_or_default();
        if name == "a redirect" {
            // The status and the target host are named, so a person sees where it pointed.
            let target = format!("{}", trap.local_addr().expect("trap address"));
            assert!(
                message.contains("redirect (3") && message.contains(&target),
                "{name}: {message}"
            );
        }
        assert!(
            !message.contains(emu.token()),
            "{name}: the token leaked: {message}"
        );
        assert_eq!(
            roster_snapshot(&pool).await,
            before,
            "{name} changed the roster"
        );
    }
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the redirect target received a connection"
    );
    emu.clear_faults();
    let after = run_sync(&pool, &request(spec), &paged(1 << 20))
        .await
        .expect("a good sync");
    assert_eq!(after.result, RunResult::Succeeded);
}

/// One stuck run cannot hold the others: every connection carries the session limits, and a run
/// that cannot get a lock within the lock timeout fails (retriable, exit 1) while the lock is still
/// held, changing nothing, instead of waiting for it.
#[tokio::test]
async fn a_run_blocked_on_a_lock_fails_within_the_lock_timeout_and_changes_nothing() {
    let Some((pool, url)) = db().await else {
        return;
    };
    let emu = emulator(300).await;
    let s = spec(&emu);
    let first = run_sync(&pool, &request(s.clone()), &source(&emu, 200))
        .await
        .expect("first sync");
    assert_eq!(first.result, RunResult::Succeeded);
    let before = roster_snapshot(&pool).await;

    let limits = rostersync::store::SessionLimits {
        lock_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let limited = rostersync::store::connect_with(&url, 4, &limits)
        .await
        .expect("connect with limits");
    for (setting, want) in [
        ("lock_timeout", "1s"),
        ("statement_timeout", "10min"),
        ("idle_in_transaction_session_timeout", "2min"),
    ] {
        let shown: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&limited)
            .await
            .expect("show");
        assert_eq!(shown, want, "{setting}");
    }

    // Another district's stuck transaction holds the children table.
    let mut blocker = pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE children IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        run_sync(&limited, &request(s.clone()), &source(&emu, 200)),
    )
    .await
    .expect("the run waited for the lock instead of timing out")
    .expect("the run is recorded");
    assert_eq!(out.result, RunResult::Failed);
    assert_eq!(out.reason.as_deref(), Some("DatabaseError"));
    assert_eq!(out.exit_code(), 1, "a lock timeout is retriable");
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("lock timeout")),
        "{:?}",
        out.message
    );
    blocker.rollback().await.expect("release");
    assert_eq!(roster_snapshot(&pool).await, before);
}

/// The connection key of the runs these tests make.
fn out_key() -> rostersync::run::ConnectionKey {
    common::SYNC_CONNECTION.parse().expect("connection key")
}

/// More broken Clever answers, one row each, not covered by
/// `broken_clever_responses_fail_the_run_and_change_nothing` (the `{}`, `data: null`, cycle,
/// drifting cursor, missing `next`, redirect and size cap rows) nor by
/// `tests/sync_engine.rs` `duplicate_ids_are_kept_once_with_a_problem`: an HTML page with a 200,
/// a truncated body, a 429 storm longer than the retries, a 401 after pages succeeded, and a
/// connection cut mid-body by a real TCP proxy between the sync and the emulator. Each row: the
/// run is Failed with the expected reason and retriability, its history row says the same, every
/// roster row is unchanged (compared whole), and the run ends within a bound. Then a 429 burst
/// shorter than the retries is ridden out: the run succeeds and applies the change.
#[tokio::test]
async fn clever_faults_fail_the_run_retriable_or_not_and_change_nothing() {
    use common::faultproxy::{Fault as NetFault, FaultProxy};
    let Some((pool, _)) = db().await else { return };
    let emu = emulator(300).await;
    emu.set_rate_limit(1_000_000);
    let proxy = FaultProxy::start(emu.addr()).await;
    let proxied_base: url::Url = format!("http://127.0.0.1:{}/", proxy.port)
        .parse()
        .expect("proxy url");
    let mut spec = spec(&emu);
    spec.settings.allow_removal = true;
    spec.settings.removal_guard_percent = 100;
    let paged = |through_proxy: bool| {
        let mut s = source(&emu, 20);
        s.config.max_attempts = 3;
        s.config.min_backoff = Duration::from_millis(5);
        s.config.max_backoff = Duration::from_millis(50);
        if through_proxy {
            s.config.base_url = proxied_base.clone();
        }
        s
    };
    let first = run_sync(&pool, &request(spec.clone()), &paged(false))
        .await
        .expect("first sync");
    assert_eq!(first.result, RunResult::Succeeded, "{:?}", first.message);
    // The district changes (a student leaves): a run that applied anything would show it.
    let (students, _) = kept_students(&emu);
    let mut ids: Vec<String> = students.into_iter().collect();
    ids.sort();
    emu.update(|st| st.remove(Kind::Users, &ids[0]).expect("remove"));
    let before = common::roster_dump(&pool, common::SYNC_CONNECTION).await;
    assert!(!before.is_empty());

    const BOUND: Duration = Duration::from_secs(30);
    let users =
        |nth: u64, times: u64, kind: FaultKind| Fault::new(Some("/v3.0/users"), nth, times, kind);
    // (name, emulator fault, proxy fault, reason, retriable)
    type Case = (
        &'static str,
        Option<Fault>,
        Option<NetFault>,
        &'static str,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "HTML 200",
            Some(users(2, u64::MAX, FaultKind::Html200)),
            None,
            "CleverProtocolError",
            false,
        ),
        (
            "a truncated body",
            Some(users(2, u64::MAX, FaultKind::TruncatedJson)),
            None,
            "CleverProtocolError",
            false,
        ),
        (
            "a 429 storm longer than the retries",
            Some(users(2, 1000, FaultKind::RateLimit { reset_secs: 0 })),
            None,
            "CleverUnavailable",
            true,
        ),
        (
            "a 401 after pages succeeded",
            Some(users(3, u64::MAX, FaultKind::Status { status: 401 })),
            None,
            "CredentialsInvalid",
            false,
        ),
        (
            "the connection cut mid-body (TCP proxy)",
            None,
            Some(NetFault::CutReplyAfter(600)),
            "CleverUnavailable",
            true,
        ),
    ];
    for (name, fault, net, reason, retriable) in cases {
        emu.clear_faults();
        if let Some(fault) = fault {
            emu.add_fault(fault);
        }
        let through_proxy = net.is_some();
        let mut s = spec.clone();
        if let Some(net) = net {
            s.api_base_url = proxied_base.as_str().trim_end_matches('/').to_string();
            // Every users request (each retry too) has its reply cut mid-body.
            proxy.on_every_client_bytes(b"GET /v3.0/users", net);
        }
        let req = request(s);
        let started = std::time::Instant::now();
        let out = tokio::time::timeout(BOUND, run_sync(&pool, &req, &paged(through_proxy)))
            .await
            .unwrap_or_else(|_| panic!("{name}: the run did not end within {BOUND:?}"))
            .expect("the run is recorded");
        let took = started.elapsed();
        assert_eq!(out.result, RunResult::Failed, "{name}: {:?}", out.message);
        assert_eq!(
            out.reason.as_deref(),
            Some(reason),
            "{name}: {:?}",
            out.message
        );
        assert_eq!(out.exit_code(), if retriable { 1 } else { 2 }, "{name}");
        let message = out.message.clone().unwrap_or_default();
        assert!(!message.contains(emu.token()), "{name}: the token leaked");
        let row = rostersync::store::runs::by_id(&pool, &out_key(), &req.run_id)
            .await
            .expect("row")
            .expect("the run is recorded");
        assert_eq!(
            (
                row.result,
                row.reason.as_deref(),
                row.retriable,
                row.attempts
            ),
            (RunResult::Failed, Some(reason), retriable, 1),
            "{name}"
        );
        assert!(row.finished_at.is_some(), "{name}");
        assert_eq!(
            common::roster_dump(&pool, common::SYNC_CONNECTION).await,
            before,
            "{name} changed the roster"
        );
        if through_proxy {
            assert!(proxy.fired() >= 1, "{name}: the proxy's cut did not happen");
            proxy.disarm();
        }
        eprintln!(
            "figure: {name}: Failed {reason} in {} ms: {message}",
            took.as_millis()
        );
    }

    // A 429 burst shorter than the retries is ridden out: the run succeeds and applies.
    emu.clear_faults();
    emu.add_fault(users(2, 2, FaultKind::RateLimit { reset_secs: 0 }));
    let out = tokio::time::timeout(BOUND, run_sync(&pool, &request(spec), &paged(false)))
        .await
        .expect("the run ends within the bound")
        .expect("a run");
    assert_eq!(out.result, RunResult::Succeeded, "{:?}", out.message);
    assert_eq!(out.counts.children.deactivated, 1);
    // The run records what it cost Clever: the two 429s, each retried, among its requests.
    assert_eq!(
        (out.clever.rate_limited, out.clever.retries),
        (2, 2),
        "{:?}",
        out.clever
    );
    assert!(out.clever.requests > 2, "{:?}", out.clever);
    assert_ne!(
        common::roster_dump(&pool, common::SYNC_CONNECTION).await,
        before
    );
}

/// The requests an OTLP receiver got: content type and body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A loopback OTLP/HTTP receiver: the content type and body of every POST to `/v1/traces`.
async fn otlp_receiver() -> (String, Received) {
    use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
    let got: Received = Default::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                sink.lock().expect("lock").push((kind, body.to_vec()));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

/// With an OTLP endpoint (the flag's environment variable, as a Job inherits it), the run's span
/// reaches the collector: OTLP/HTTP protobuf with the run id, the connection and the service name,
/// flushed before the process exits. Without one, nothing is sent (the default is off).
#[tokio::test]
async fn the_runs_span_is_exported_over_otlp_when_an_endpoint_is_set() {
    let Some((_pool, url)) = db().await else {
        return;
    };
    let emu = emulator(40).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &spec(&emu));
    let (endpoint, got) = otlp_receiver().await;
    let run = |otlp: Option<&str>, run_id: &str| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
        cmd.args([
            "sync",
            "--output",
            "json",
            "--run-id",
            run_id,
            "--connection-file",
        ])
        .arg(&manifest)
        .env("DATABASE_URL", &url)
        .env("CLEVER_TOKEN", emu.token())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("CLEVER_CLIENT_ID");
        if let Some(e) = otlp {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", e);
        }
        cmd
    };
    let out = run(None, "otlp-off").output().await.expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        got.lock().expect("lock").is_empty(),
        "exported without an endpoint"
    );

    let out = run(Some(&endpoint), "otlp-on").output().await.expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = got.lock().expect("lock").clone();
    assert!(
        !requests.is_empty(),
        "no OTLP request before the process exited"
    );
    let contains = |needle: &str| {
        requests
            .iter()
            .any(|(_, body)| body.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    assert!(
        requests
            .iter()
            .all(|(kind, _)| kind == "application/x-protobuf"),
        "{:?}",
        requests.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for needle in [
        "rostersync-sync",
        "otlp-on",
        "run_id",
        "default/district",
        "Manual",
    ] {
        assert!(contains(needle), "{needle} missing from the exported spans");
    }
}
