//! Faults between the sync and Postgres, through a fault-injecting TCP proxy
//! (tests/common/faultproxy.rs) in front of the test Postgres: the connection cut during staging,
//! during apply, just before and just after COMMIT; the path frozen mid-transaction; the sync's
//! backend terminated; the run's row finished by another party. Each case asserts the roster
//! (every row of every roster table, whole), the run's row, and that the run ends within a bound.
mod common;

use std::time::{Duration, Instant};

use common::faultproxy::{Fault, FaultProxy};
use rostersync::api::{RosterConnectionSpec, RunResult, Trigger};
use rostersync::devtools::emulator::{EmulatorHandle, Kind};
use rostersync::run::RunRecord;
use rostersync::store::SessionLimits;
use rostersync::store::runs;
use rostersync::sync::{SyncError, SyncRequest, run_sync, run_sync_with};
use sqlx::PgPool;

const CONN: &str = common::SYNC_CONNECTION;
/// Every run here ends well within this (a healthy one takes about a second).
const RUN_BOUND: Duration = Duration::from_secs(60);

/// A synced district whose roster has since changed in Clever (a student left, one was renamed),
/// and a proxy in front of its database.
struct Setup {
    db: common::TestDb,
    emu: EmulatorHandle,
    spec: RosterConnectionSpec,
    proxy: FaultProxy,
    /// A pool through the proxy, with `limits`.
    proxied: PgPool,
    proxied_url: String,
    limits: SessionLimits,
    /// The roster as synced, before the change.
    before: Vec<String>,
    renamed: String,
}

async fn setup() -> Option<Setup> {
    let db = common::fresh_db().await?;
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    let emu = common::clever_emulator(600).await;
    let mut spec = common::clever_spec(&emu);
    spec.settings.allow_removal = true;
    spec.settings.removal_guard_percent = 100;
    let first = run_sync(&db.pool, &common::sync_request(spec.clone()), &source(&emu))
        .await
        .expect("first sync");
    assert_eq!(first.result, RunResult::Succeeded, "{:?}", first.message);
    let before = common::roster_dump(&db.pool, CONN).await;
    let synced: Vec<String> = sqlx::query_scalar(
        "SELECT clever_id FROM children WHERE connection = $1 AND active ORDER BY clever_id LIMIT 2",
    )
    .bind(CONN)
    .fetch_all(&db.pool)
    .await
    .expect("children");
    assert_eq!(synced.len(), 2, "the district has children");
    emu.update(|st| {
        st.remove(Kind::Users, &synced[0]).expect("remove");
        st.patch(
            Kind::Users,
            &synced[1],
            &serde_json::json!({"name": {"first": "Renamed"}}),
        )
        .expect("patch");
    });
    let (proxy, proxied_url) = FaultProxy::for_postgres(&db.url).await;
    let limits = SessionLimits {
        client_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let proxied = rostersync::store::connect_with(&proxied_url, 4, &limits)
        .await
        .expect("connect through the proxy");
    Some(Setup {
        db,
        emu,
        spec,
        proxy,
        proxied,
        proxied_url,
        limits,
        before,
        renamed: synced[1].clone(),
    })
}

fn source(emu: &EmulatorHandle) -> rostersync::sync::clever_source::CleverSource {
    common::clever_source(emu, 200)
}

impl Setup {
    fn request(&self) -> SyncRequest {
        common::sync_request(self.spec.clone())
    }

    /// Runs `req` through the proxy, bounded.
    async fn run_proxied(&self, req: &SyncRequest) -> Result<RunRecord, SyncError> {
        tokio::time::timeout(
            RUN_BOUND,
            run_sync_with(&self.proxied, req, &source(&self.emu), &self.limits),
        )
        .await
        .unwrap_or_else(|_| panic!("the run did not end within {RUN_BOUND:?}"))
    }

    async fn dump(&self) -> Vec<String> {
        common::roster_dump(&self.db.pool, CONN).await
    }

    /// The run's row, read directly (not through the proxy).
    async fn row(&self, run_id: &str) -> RunRecord {
        let connection = CONN.parse().expect("connection key");
        runs::by_id(&self.db.pool, &connection, run_id)
            .await
            .expect("read the run")
            .expect("the run is recorded")
    }

    async fn first_name(&self, clever_id: &str) -> Option<String> {
        sqlx::query_scalar(
            "SELECT first_name FROM children WHERE connection = $1 AND clever_id = $2",
        )
        .bind(CONN)
        .bind(clever_id)
        .fetch_one(&self.db.pool)
        .await
        .expect("child")
    }

    /// The changed district applied: the renamed child renamed, the one who left deactivated.
    async fn assert_change_applied(&self) {
        assert_ne!(self.dump().await, self.before);
        assert_eq!(
            self.first_name(&self.renamed).await.as_deref(),
            Some("Renamed")
        );
        let inactive: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM children WHERE connection = $1 AND NOT active",
        )
        .bind(CONN)
        .fetch_one(&self.db.pool)
        .await
        .expect("count");
        assert_eq!(inactive, 1);
    }

    /// A failed run that changed nothing, then its next attempt (the Job's retry, same run id)
    /// through the repaired path applies the change.
    async fn assert_failed_unchanged_then_retry_applies(&self, req: &SyncRequest, out: RunRecord) {
        assert_eq!(out.result, RunResult::Failed, "{:?}", out.message);
        assert_eq!(out.reason.as_deref(), Some("DatabaseError"));
        assert_eq!(out.exit_code(), 1, "a database fault is retriable");
        assert_eq!(
            self.dump().await,
            self.before,
            "the failed run changed the roster"
        );
        let row = self.row(&req.run_id).await;
        assert_eq!(
            (row.result, row.retriable, row.attempts),
            (RunResult::Failed, true, 1)
        );
        assert!(row.finished_at.is_some());
        let retry = self.run_proxied(req).await.expect("the retry runs");
        assert_eq!(retry.result, RunResult::Succeeded, "{:?}", retry.message);
        assert_eq!(retry.attempts, 2);
        assert_eq!(retry.counts.children.deactivated, 1);
        assert_eq!(retry.counts.children.updated, 1);
        self.assert_change_applied().await;
    }
}

/// The sync's backend, found by the advisory lock its session holds (from an admin connection).
async fn sync_backend(pool: &PgPool) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_optional(pool)
    .await
    .expect("pg_locks")
}

#[tokio::test]
async fn a_connection_cut_during_staging_fails_the_run_and_changes_nothing() {
    let Some(t) = setup().await else { return };
    t.proxy
        .on_client_bytes(b"COPY stg_children", Fault::CutBefore);
    let req = t.request();
    let out = t.run_proxied(&req).await.expect("a recorded failure");
    assert_eq!(t.proxy.fired(), 1, "the cut happened");
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("staging")),
        "{:?}",
        out.message
    );
    t.assert_failed_unchanged_then_retry_applies(&req, out)
        .await;
}

#[tokio::test]
async fn a_connection_cut_during_apply_fails_the_run_and_changes_nothing() {
    let Some(t) = setup().await else { return };
    // Schools, classrooms and educators are written by then, in the open transaction.
    t.proxy
        .on_client_bytes(b"UPDATE children t SET", Fault::CutBefore);
    let req = t.request();
    let out = t.run_proxied(&req).await.expect("a recorded failure");
    assert_eq!(t.proxy.fired(), 1, "the cut happened");
    t.assert_failed_unchanged_then_retry_applies(&req, out)
        .await;
}

#[tokio::test]
async fn a_connection_cut_before_commit_is_forwarded_fails_the_run_and_changes_nothing() {
    let Some(t) = setup().await else { return };
    t.proxy.on_client_bytes(b"COMMIT", Fault::CutBefore);
    let req = t.request();
    let out = t.run_proxied(&req).await.expect("a recorded failure");
    assert_eq!(t.proxy.fired(), 1, "the cut happened");
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("committing")),
        "{:?}",
        out.message
    );
    t.assert_failed_unchanged_then_retry_applies(&req, out)
        .await;
}

/// The server committed but the client never got the reply: the run reads its row back and
/// reports the truth (Succeeded), never a guessed failure.
#[tokio::test]
async fn a_connection_cut_after_commit_is_forwarded_reports_the_committed_outcome() {
    let Some(t) = setup().await else { return };
    t.proxy.on_client_bytes(b"COMMIT", Fault::CutAfterReply);
    let req = t.request();
    let out = t.run_proxied(&req).await.expect("the outcome read back");
    assert_eq!(t.proxy.fired(), 1, "the cut happened");
    assert_eq!(out.result, RunResult::Succeeded, "{:?}", out.message);
    assert_eq!(out.reason.as_deref(), Some("Synced"));
    assert_eq!(out.exit_code(), 0);
    assert_eq!(out.counts.children.deactivated, 1);
    assert_eq!(out.counts.children.updated, 1);
    let row = t.row(&req.run_id).await;
    assert_eq!((row.result, row.attempts), (RunResult::Succeeded, 1));
    assert_eq!(row.reason.as_deref(), Some("Synced"));
    t.assert_change_applied().await;
    // A success is final: the same run id is reported, not run again.
    let again = t.run_proxied(&req).await.expect("reported");
    assert_eq!((again.result, again.attempts), (RunResult::Succeeded, 1));
}

/// The path to Postgres freezes mid-transaction (nothing forwarded either way, sockets open).
/// The server ends the frozen session after idle_in_transaction_session_timeout, releasing the
/// advisory lock and the row locks, so another run gets through within a bounded wait; the
/// frozen client gives up on its own (--db-client-timeout) and exits 1.
#[tokio::test]
async fn a_frozen_database_path_releases_the_locks_and_the_frozen_client_gives_up() {
    let Some(t) = setup().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = common::write_connection_manifest(dir.path(), &t.spec);
    let manifest = manifest.to_string_lossy().into_owned();
    let run_id = format!("frozen-{}", common::unique_suffix());
    t.proxy
        .on_client_bytes(b"UPDATE children t SET", Fault::FreezeAll);
    let mut frozen = common::Proc::start(
        "sync-frozen",
        &[
            "sync",
            "--output",
            "json",
            "--connection-file",
            &manifest,
            "--run-id",
            &run_id,
            "--db-idle-in-transaction-timeout",
            "2",
            "--db-client-timeout",
            "3",
        ],
        &[
            ("DATABASE_URL", t.proxied_url.as_str()),
            ("CLEVER_TOKEN", t.emu.token()),
        ],
    );
    t.proxy.wait_fired(1, RUN_BOUND).await;
    let frozen_at = Instant::now();

    // Another run (a direct connection) gets the lock once the server has ended the session.
    let takeover = common::wait_for(
        "a direct run to get past the frozen one",
        Duration::from_secs(30),
        || async {
            match run_sync(&t.db.pool, &t.request(), &source(&t.emu)).await {
                Ok(run) => Some(run),
                Err(SyncError::Locked { .. }) => None,
                Err(err) => panic!("the direct run failed: {err}"),
            }
        },
    )
    .await;
    let waited = frozen_at.elapsed();
    assert!(
        waited < Duration::from_secs(20),
        "the locks were held {waited:?}"
    );
    assert_eq!(
        takeover.result,
        RunResult::Succeeded,
        "{:?}",
        takeover.message
    );
    // Nothing of the frozen transaction was kept: the takeover made the whole change.
    assert_eq!(takeover.counts.children.deactivated, 1);
    assert_eq!(takeover.counts.children.updated, 1);
    t.assert_change_applied().await;
    let row = t.row(&run_id).await;
    assert_eq!(row.result, RunResult::Failed);
    assert_eq!(row.reason.as_deref(), Some("Interrupted"));

    // The frozen client gave up by itself (the proxy is still frozen).
    let status = tokio::time::timeout(Duration::from_secs(30), frozen.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the frozen client still runs after 30 s:\n{}",
                frozen.log_text()
            )
        })
        .expect("wait");
    assert_eq!(status.code(), Some(1), "{}", frozen.log_text());
    let log = frozen.log_text();
    assert!(log.contains("lost the database session"), "{log}");
    t.proxy.thaw();
}

#[tokio::test]
async fn terminating_the_sync_backend_fails_the_run_and_the_next_run_succeeds() {
    let Some(t) = setup().await else { return };
    // Hold the run mid-apply (its transaction open) while an administrator ends its backend.
    t.proxy
        .on_client_bytes(b"UPDATE children t SET", Fault::Pause);
    let req = t.request();
    let admin = async {
        t.proxy.wait_fired(1, RUN_BOUND).await;
        let pid = sync_backend(&t.db.pool)
            .await
            .expect("the sync holds its lock");
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 10000)")
            .bind(pid)
            .fetch_one(&t.db.pool)
            .await
            .expect("terminate");
        assert!(ended);
        t.proxy.resume();
    };
    let (out, ()) = tokio::join!(t.run_proxied(&req), admin);
    let out = out.expect("a recorded failure");
    assert!(
        out.message
            .as_deref()
            .is_some_and(|m| m.contains("terminat")),
        "{:?}",
        out.message
    );
    t.assert_failed_unchanged_then_retry_applies(&req, out)
        .await;
}

/// The controller recorded the run as lost while it ran: the run's final, conditional update
/// finds the row no longer Running, rolls its roster changes back and fails, leaving the
/// controller's record as it is. The failure path's update is conditional too.
#[tokio::test]
async fn a_run_finished_by_another_party_is_never_overwritten() {
    let Some(t) = setup().await else { return };
    let connection: rostersync::run::ConnectionKey = CONN.parse().expect("key");
    let lose = |run_id: String| {
        let pool = t.db.pool.clone();
        let connection = connection.clone();
        async move {
            let mut conn = pool.acquire().await.expect("connect");
            runs::record_lost_pod(
                &mut conn,
                &runs::LostPod {
                    run_id: &run_id,
                    connection: &connection,
                    schedule: "nightly",
                    trigger: Trigger::Scheduled,
                    job: "nightly-x",
                    started_at: jiff::Timestamp::now(),
                    reason: "PodLost",
                    message: "the pod stopped without an outcome",
                },
            )
            .await
            .expect("record the lost pod");
        }
    };

    // The success path: held just before the run writes its outcome.
    t.proxy
        .on_client_bytes(b"UPDATE sync_runs SET result = $2", Fault::Pause);
    let req = t.request();
    let admin = async {
        t.proxy.wait_fired(1, RUN_BOUND).await;
        lose(req.run_id.clone()).await;
        t.proxy.resume();
    };
    let (out, ()) = tokio::join!(t.run_proxied(&req), admin);
    let err = out.expect_err("the run fails");
    assert!(
        matches!(&err, SyncError::FinishedElsewhere { result, .. } if result == "Failed"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);
    assert_eq!(
        t.dump().await,
        t.before,
        "the run's changes were rolled back"
    );
    let row = t.row(&req.run_id).await;
    assert_eq!(row.result, RunResult::Failed);
    assert_eq!(row.reason.as_deref(), Some("PodLost"), "overwritten");

    // The failure path: lost while staging, then the connection is cut.
    t.proxy.on_client_bytes(b"COPY stg_children", Fault::Pause);
    let req = t.request();
    let admin = async {
        t.proxy.wait_fired(2, RUN_BOUND).await;
        lose(req.run_id.clone()).await;
        t.proxy.cut_all();
    };
    let (out, ()) = tokio::join!(t.run_proxied(&req), admin);
    let out = out.expect("the stored outcome");
    assert_eq!(out.result, RunResult::Failed);
    assert_eq!(out.reason.as_deref(), Some("PodLost"), "overwritten");
    assert_eq!(t.dump().await, t.before);
}

/// Two districts sync at once and one of them freezes mid-apply (the proxy holds its connection,
/// transaction open, after some tables were written): the other district's run finishes within
/// its normal time (bounded against a solo run measured here) with its roster right; the frozen
/// one fails within its timeouts (the server ends the idle transaction, the client's watch sees
/// the session gone) and leaves its roster unchanged; its next run records it and applies.
#[tokio::test]
async fn two_districts_at_once_one_frozen_mid_apply_the_other_finishes_in_its_normal_time() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    rostersync::store::migrate(&db.pool).await.expect("migrate");
    const A: &str = "default/district-a";
    const B: &str = "default/district-b";
    let emu_a = common::clever_emulator(600).await;
    let emu_b = rostersync::devtools::emulator::Emulator::start(
        rostersync::devtools::emulator::EmulatorConfig::generated(8, 600),
    )
    .await
    .expect("emulator");
    let request = |emu: &EmulatorHandle, connection: &str| {
        let mut spec = common::clever_spec(emu);
        spec.settings.allow_removal = true;
        spec.settings.removal_guard_percent = 100;
        let mut req = common::sync_request(spec);
        req.connection = connection.parse().expect("connection key");
        req
    };
    for (emu, key) in [(&emu_a, A), (&emu_b, B)] {
        let first = run_sync(&db.pool, &request(emu, key), &source(emu))
            .await
            .expect("first sync");
        assert_eq!(first.result, RunResult::Succeeded, "{:?}", first.message);
    }
    // B's normal time: a solo run of the same size, measured here.
    let solo_started = Instant::now();
    let solo = run_sync(&db.pool, &request(&emu_b, B), &source(&emu_b))
        .await
        .expect("solo run");
    assert_eq!(solo.result, RunResult::Succeeded);
    let solo_time = solo_started.elapsed();

    // Both districts change: a student leaves each.
    let id_a = first_active_child(&db.pool, A).await;
    let id_b = first_active_child(&db.pool, B).await;
    emu_a.update(|st| st.remove(Kind::Users, &id_a).expect("remove"));
    emu_b.update(|st| st.remove(Kind::Users, &id_b).expect("remove"));
    let before_a = common::roster_dump(&db.pool, A).await;
    let before_b = common::roster_dump(&db.pool, B).await;

    // A goes through the proxy, which holds its connection when apply reaches the children.
    let (proxy, proxied_url) = FaultProxy::for_postgres(&db.url).await;
    let limits = SessionLimits {
        idle_in_transaction_timeout: Duration::from_secs(3),
        client_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let proxied = rostersync::store::connect_with(&proxied_url, 4, &limits)
        .await
        .expect("connect through the proxy");
    proxy.on_client_bytes(b"UPDATE children t SET", Fault::Pause);
    let req_a = request(&emu_a, A);
    let req_b = request(&emu_b, B);
    let frozen = async {
        let started = Instant::now();
        let out = tokio::time::timeout(
            RUN_BOUND,
            run_sync_with(&proxied, &req_a, &source(&emu_a), &limits),
        )
        .await
        .unwrap_or_else(|_| panic!("the frozen run did not end within {RUN_BOUND:?}"));
        (out, started.elapsed())
    };
    let other = async {
        proxy.wait_fired(1, RUN_BOUND).await;
        let started = Instant::now();
        let out = run_sync(&db.pool, &req_b, &source(&emu_b))
            .await
            .expect("B's run");
        (out, started.elapsed())
    };
    let ((out_a, took_a), (out_b, took_b)) = tokio::join!(frozen, other);
    proxy.cut_all();

    // B: in its normal time, roster right.
    let bound_b = (solo_time * 3).max(solo_time + Duration::from_secs(5));
    eprintln!(
        "figure: district B solo {} ms, beside a frozen district {} ms (bound {} ms); the frozen \
         district gave up after {} ms",
        solo_time.as_millis(),
        took_b.as_millis(),
        bound_b.as_millis(),
        took_a.as_millis()
    );
    assert_eq!(out_b.result, RunResult::Succeeded, "{:?}", out_b.message);
    assert!(took_b <= bound_b, "B took {took_b:?} (solo {solo_time:?})");
    assert_eq!(out_b.counts.children.deactivated, 1);
    assert_ne!(common::roster_dump(&db.pool, B).await, before_b);
    let active_b: bool =
        sqlx::query_scalar("SELECT active FROM children WHERE connection = $1 AND clever_id = $2")
            .bind(B)
            .bind(&id_b)
            .fetch_one(&db.pool)
            .await
            .expect("child");
    assert!(!active_b, "B's leaver is deactivated");
    let connection_b = B.parse().expect("key");
    let row_b = runs::by_id(&db.pool, &connection_b, &req_b.run_id)
        .await
        .expect("read")
        .expect("B's run is recorded");
    assert_eq!((row_b.result, row_b.attempts), (RunResult::Succeeded, 1));

    // A: failed within its timeouts, roster unchanged.
    match out_a {
        Ok(run) => assert_eq!(run.result, RunResult::Failed, "{:?}", run.message),
        Err(err) => assert_eq!(err.exit_code(), 1, "{err}"),
    }
    assert!(took_a < Duration::from_secs(30), "A took {took_a:?}");
    assert_eq!(common::roster_dump(&db.pool, A).await, before_a);
    // Its next run (direct) records the frozen one as not succeeded and applies the change.
    let next = common::wait_for("A's next run", RUN_BOUND, || async {
        match run_sync(&db.pool, &request(&emu_a, A), &source(&emu_a)).await {
            Ok(run) => Some(run),
            Err(SyncError::Locked { .. }) => None,
            Err(err) => panic!("A's next run failed: {err}"),
        }
    })
    .await;
    assert_eq!(next.result, RunResult::Succeeded, "{:?}", next.message);
    assert_eq!(next.counts.children.deactivated, 1);
    let connection_a = A.parse().expect("key");
    let row_a = runs::by_id(&db.pool, &connection_a, &req_a.run_id)
        .await
        .expect("read")
        .expect("A's frozen run is recorded");
    assert_eq!(row_a.result, RunResult::Failed, "{:?}", row_a.reason);
}

async fn first_active_child(pool: &PgPool, connection: &str) -> String {
    sqlx::query_scalar(
        "SELECT clever_id FROM children WHERE connection = $1 AND active ORDER BY clever_id LIMIT 1",
    )
    .bind(connection)
    .fetch_one(pool)
    .await
    .expect("a child")
}
