//! Prometheus metrics and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
//!
//! `/readyz` means "can serve and take over": the first list of everything the controller watches
//! succeeded (the API server is reachable and the RBAC complete) and the database answers. It does
//! not depend on leadership: a standby replica is Ready; `rostersync_leader` tells which acts.
//!
//! The metrics (listed in docs/operations.md, "Metrics and alerts"):
//! - the controller, in controller-runtime's shape: `rostersync_reconcile_total{controller,result}`,
//!   `rostersync_reconcile_duration_seconds{controller}`, `rostersync_leader`,
//!   `rostersync_build_info{version}`;
//! - sync runs per connection (`namespace`, `connection`): `rostersync_syncs_total{result}` and
//!   `rostersync_sync_duration_seconds`;
//! - per schedule (`namespace`, `schedule`, `connection`), from its status: last success, next slot,
//!   period, suspended, a held run awaiting approval and since when, consecutive failures, missed
//!   slots;
//! - the email outbox per connection, read from Postgres at each scrape.
//!
//! Labels are object names only, never personal data. The series of a deleted schedule or
//! connection are removed (`forget_schedule`, `forget_connection`, driven by a watch).
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use std::sync::atomic::AtomicU64;
use tracing::warn;

use crate::api::{Frequency, RunResult, SyncScheduleSpec, SyncScheduleStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

/// A RosterConnection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub namespace: String,
    pub connection: String,
}

/// A connection's finished runs with one result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub namespace: String,
    pub connection: String,
    pub result: String,
}

/// A SyncSchedule and the connection it syncs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    pub namespace: String,
    pub schedule: String,
    pub connection: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets of the reconcile duration (controller-runtime's, in seconds).
const RECONCILE_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

fn sync_histogram() -> Histogram {
    Histogram::new([
        5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
    ])
}

/// Seconds between two slots of a schedule: a day, a week, or the longest month (31 days), so an
/// alert on "no success within the period plus a grace" never fires in a short month.
pub fn period_seconds(frequency: Frequency) -> f64 {
    const DAY: f64 = 86_400.0;
    match frequency {
        Frequency::Daily => DAY,
        Frequency::Weekly => 7.0 * DAY,
        Frequency::Monthly => 31.0 * DAY,
    }
}

/// What a schedule's reconcile exports about it (from its spec and its new status).
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleGauges {
    pub last_success: Option<f64>,
    pub next_slot: Option<f64>,
    pub period_seconds: f64,
    pub suspended: bool,
    /// When the latest run, held by the removal guard, finished; `None` unless it awaits approval.
    pub held_since: Option<f64>,
    pub consecutive_failures: i64,
    pub missed_slots: i64,
}

impl ScheduleGauges {
    /// The gauges of a schedule with `spec` and the (new) `status`; `last_success` and `next_slot`
    /// as the plan computed them (Unix seconds).
    pub fn of(
        spec: &SyncScheduleSpec,
        status: &SyncScheduleStatus,
        last_success: Option<f64>,
        next_slot: Option<f64>,
    ) -> ScheduleGauges {
        // The latest run held: it waits for an approval (which starts a new, later run).
        let held_since = status
            .recent_runs
            .first()
            .filter(|r| r.result == Some(RunResult::Held))
            .map(|r| {
                r.finished_at
                    .as_ref()
                    .or(r.started_at.as_ref())
                    .map(|t| t.0.as_second() as f64)
                    .unwrap_or(0.0)
            });
        ScheduleGauges {
            last_success,
            next_slot,
            period_seconds: period_seconds(spec.frequency),
            suspended: spec.suspend,
            held_since,
            consecutive_failures: i64::from(status.consecutive_failures),
            missed_slots: status.missed_slots,
        }
    }
}

/// The controller's metrics.
pub struct Metrics {
    pub registry: Registry,
    /// Kept from before `reconcile_total` (same count, by `kind`).
    pub reconciles: Family<KindLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub reconcile_total: Family<ReconcileLabels, Counter>,
    pub reconcile_duration: HistogramFamily<ControllerLabels>,
    pub syncs: Family<RunLabels, Counter>,
    pub sync_duration: HistogramFamily<ConnectionLabels>,
    pub clever_requests: Family<ConnectionLabels, Counter>,
    pub clever_retries: Family<ConnectionLabels, Counter>,
    pub clever_rate_limited: Family<ConnectionLabels, Counter>,
    pub last_success: Family<ScheduleLabels, F64Gauge>,
    pub next_sync: Family<ScheduleLabels, F64Gauge>,
    pub period: Family<ScheduleLabels, F64Gauge>,
    pub suspended: Family<ScheduleLabels, Gauge>,
    pub held: Family<ScheduleLabels, Gauge>,
    pub held_since: Family<ScheduleLabels, F64Gauge>,
    pub consecutive_failures: Family<ScheduleLabels, Gauge>,
    pub missed_slots: Family<ScheduleLabels, Gauge>,
    pub outbox_pending: Family<ConnectionLabels, Gauge>,
    pub outbox_oldest_age: Family<ConnectionLabels, F64Gauge>,
    /// 1 while this replica acts (holds the Lease, or runs without leader election).
    pub leader: Gauge,
    pub build_info: Family<BuildLabels, Gauge>,
    /// Set once every watched kind was listed in every watched namespace.
    pub ready: AtomicBool,
    /// The labels each schedule's series carry, by (namespace, name): to remove them when the
    /// schedule is deleted or its connection changes.
    schedules: Mutex<HashMap<(String, String), ScheduleLabels>>,
    /// The connections with run series, by (namespace, name).
    connections: Mutex<HashSet<(String, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rostersync");
        let m = Metrics {
            registry: Registry::default(),
            reconciles: Family::default(),
            errors: Family::default(),
            reconcile_total: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            syncs: Family::default(),
            sync_duration: Family::new_with_constructor(sync_histogram),
            clever_requests: Family::default(),
            clever_retries: Family::default(),
            clever_rate_limited: Family::default(),
            last_success: Family::default(),
            next_sync: Family::default(),
            period: Family::default(),
            suspended: Family::default(),
            held: Family::default(),
            held_since: Family::default(),
            consecutive_failures: Family::default(),
            missed_slots: Family::default(),
            outbox_pending: Family::default(),
            outbox_oldest_age: Family::default(),
            leader: Gauge::default(),
            build_info: Family::default(),
            ready: AtomicBool::new(false),
            schedules: Mutex::default(),
            connections: Mutex::default(),
        };
        let r = &mut registry;
        r.register(
            "reconcile",
            "Reconciles by controller (kind) and result (success, error)",
            m.reconcile_total.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of reconciles by controller (kind)",
            m.reconcile_duration.clone(),
        );
        r.register(
            "reconciles",
            "Reconciles by kind (see rostersync_reconcile_total)",
            m.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconcile errors by kind and error",
            m.errors.clone(),
        );
        r.register(
            "leader",
            "1 while this replica acts (holds the leader Lease, or runs without leader election), \
             0 while it stands by",
            m.leader.clone(),
        );
        r.register(
            "build_info",
            "Always 1; the version of the controller in a label",
            m.build_info.clone(),
        );
        r.register(
            "syncs",
            "Finished sync runs by connection and result",
            m.syncs.clone(),
        );
        r.register(
            "sync_duration_seconds",
            "Duration of finished sync runs by connection",
            m.sync_duration.clone(),
        );
        r.register(
            "clever_requests",
            "HTTP requests finished sync runs sent to Clever (retries included), by connection",
            m.clever_requests.clone(),
        );
        r.register(
            "clever_retries",
            "Requests finished sync runs retried (after a 5xx, 429, timeout or connection error), by connection",
            m.clever_retries.clone(),
        );
        r.register(
            "clever_rate_limited",
            "429 Too Many Requests answers finished sync runs got from Clever, by connection",
            m.clever_rate_limited.clone(),
        );
        r.register(
            "last_successful_sync_timestamp_seconds",
            "When the latest successful sync of a schedule finished (unix seconds)",
            m.last_success.clone(),
        );
        r.register(
            "next_sync_timestamp_seconds",
            "The next scheduled sync of a schedule (unix seconds; absent while suspended)",
            m.next_sync.clone(),
        );
        r.register(
            "schedule_period_seconds",
            "Seconds between two slots of a schedule (Daily, Weekly, Monthly as 31 days)",
            m.period.clone(),
        );
        r.register(
            "schedule_suspended",
            "1 while a schedule is suspended (no scheduled syncs)",
            m.suspended.clone(),
        );
        r.register(
            "schedule_held_runs",
            "1 while the latest run of a schedule is held by the removal guard, awaiting approval",
            m.held.clone(),
        );
        r.register(
            "schedule_held_since_timestamp_seconds",
            "When the run awaiting approval was held (unix seconds; absent when none is)",
            m.held_since.clone(),
        );
        r.register(
            "schedule_consecutive_failures",
            "Failed or held runs of a schedule since its last success",
            m.consecutive_failures.clone(),
        );
        r.register(
            "schedule_missed_slots",
            "Slots of a schedule recorded as missed since it was created",
            m.missed_slots.clone(),
        );
        r.register(
            "email_outbox_pending",
            "Emails of a connection waiting in the outbox (not sent, not given up)",
            m.outbox_pending.clone(),
        );
        r.register(
            "email_outbox_oldest_pending_age_seconds",
            "Age of the oldest email of a connection waiting in the outbox",
            m.outbox_oldest_age.clone(),
        );
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        Metrics { registry, ..m }
    }
}

fn schedule_key(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

impl Metrics {
    /// Records whether this replica acts.
    pub fn set_leader(&self, acting: bool) {
        self.leader.set(i64::from(acting));
    }

    /// A reconcile started (the older per-kind count).
    pub fn reconciled(&self, kind: &str) {
        self.reconciles
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// A reconcile ended, successfully or not, after `seconds`.
    pub fn reconcile_done(&self, controller: &str, success: bool, seconds: f64) {
        let result = if success { "success" } else { "error" };
        self.reconcile_total
            .get_or_create(&ReconcileLabels {
                controller: controller.into(),
                result: result.into(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .observe(seconds);
    }

    pub fn failed(&self, kind: &str, error: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                error: error.into(),
            })
            .inc();
    }

    /// A run of connection `ns/connection` finished with `result` after `seconds`, having cost
    /// Clever `clever` (as the Job recorded it in its history row).
    pub fn sync_finished(
        &self,
        ns: &str,
        connection: &str,
        result: &str,
        seconds: Option<f64>,
        clever: crate::run::CleverRequests,
    ) {
        if let Ok(mut seen) = self.connections.lock() {
            seen.insert(schedule_key(ns, connection));
        }
        self.syncs
            .get_or_create(&RunLabels {
                namespace: ns.into(),
                connection: connection.into(),
                result: result.into(),
            })
            .inc();
        let labels = ConnectionLabels {
            namespace: ns.into(),
            connection: connection.into(),
        };
        if let Some(s) = seconds {
            self.sync_duration.get_or_create(&labels).observe(s);
        }
        self.clever_requests
            .get_or_create(&labels)
            .inc_by(clever.requests);
        self.clever_retries
            .get_or_create(&labels)
            .inc_by(clever.retries);
        self.clever_rate_limited
            .get_or_create(&labels)
            .inc_by(clever.rate_limited);
    }

    /// Sets the series of schedule `ns/name` (syncing `connection`) to `g`.
    pub fn schedule_observed(&self, ns: &str, name: &str, connection: &str, g: &ScheduleGauges) {
        let labels = ScheduleLabels {
            namespace: ns.into(),
            schedule: name.into(),
            connection: connection.into(),
        };
        let previous = self
            .schedules
            .lock()
            .ok()
            .and_then(|mut s| s.insert(schedule_key(ns, name), labels.clone()));
        if let Some(old) = previous.filter(|old| *old != labels) {
            self.remove_schedule_series(&old);
        }
        if let Some(t) = g.last_success {
            self.last_success.get_or_create(&labels).set(t);
        }
        match g.next_slot {
            Some(t) => {
                self.next_sync.get_or_create(&labels).set(t);
            }
            None => {
                self.next_sync.remove(&labels);
            }
        }
        self.period.get_or_create(&labels).set(g.period_seconds);
        self.suspended
            .get_or_create(&labels)
            .set(i64::from(g.suspended));
        self.held
            .get_or_create(&labels)
            .set(i64::from(g.held_since.is_some()));
        match g.held_since {
            Some(t) => {
                self.held_since.get_or_create(&labels).set(t);
            }
            None => {
                self.held_since.remove(&labels);
            }
        }
        self.consecutive_failures
            .get_or_create(&labels)
            .set(g.consecutive_failures);
        self.missed_slots.get_or_create(&labels).set(g.missed_slots);
    }

    fn remove_schedule_series(&self, labels: &ScheduleLabels) {
        self.last_success.remove(labels);
        self.next_sync.remove(labels);
        self.period.remove(labels);
        self.suspended.remove(labels);
        self.held.remove(labels);
        self.held_since.remove(labels);
        self.consecutive_failures.remove(labels);
        self.missed_slots.remove(labels);
    }

    /// Schedule `ns/name` was deleted: its series go.
    pub fn forget_schedule(&self, ns: &str, name: &str) {
        let labels = self
            .schedules
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&schedule_key(ns, name)));
        if let Some(labels) = labels {
            self.remove_schedule_series(&labels);
        }
    }

    /// Connection `ns/name` was deleted: its run series go.
    pub fn forget_connection(&self, ns: &str, name: &str) {
        if let Ok(mut seen) = self.connections.lock() {
            seen.remove(&schedule_key(ns, name));
        }
        for result in [
            RunResult::Running,
            RunResult::Succeeded,
            RunResult::Failed,
            RunResult::Held,
        ] {
            self.syncs.remove(&RunLabels {
                namespace: ns.into(),
                connection: name.into(),
                result: result.as_str().into(),
            });
        }
        let labels = ConnectionLabels {
            namespace: ns.into(),
            connection: name.into(),
        };
        self.sync_duration.remove(&labels);
        self.clever_requests.remove(&labels);
        self.clever_retries.remove(&labels);
        self.clever_rate_limited.remove(&labels);
    }

    /// After a full list of the schedules in `scope` (every namespace when `None`): forgets the
    /// ones with series that the list no longer has (deleted while the watch was down).
    pub fn retain_schedules(&self, scope: Option<&str>, listed: &HashSet<(String, String)>) {
        let gone: Vec<(String, String)> = self
            .schedules
            .lock()
            .map(|s| {
                s.keys()
                    .filter(|k| scope.is_none_or(|ns| k.0 == ns) && !listed.contains(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for (ns, name) in gone {
            self.forget_schedule(&ns, &name);
        }
    }

    /// Like [`Metrics::retain_schedules`], for connections.
    pub fn retain_connections(&self, scope: Option<&str>, listed: &HashSet<(String, String)>) {
        let gone: Vec<(String, String)> = self
            .connections
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|k| scope.is_none_or(|ns| k.0 == ns) && !listed.contains(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for (ns, name) in gone {
            self.forget_connection(&ns, &name);
        }
    }

    /// Replaces the outbox series with `rows` (connection `namespace/name`, pending, oldest age):
    /// a connection without pending email has no series.
    pub fn set_outbox(&self, rows: &[(String, i64, f64)]) {
        self.outbox_pending.clear();
        self.outbox_oldest_age.clear();
        for (connection, pending, age) in rows {
            let (namespace, name) = connection
                .split_once('/')
                .unwrap_or(("", connection.as_str()));
            let labels = ConnectionLabels {
                namespace: namespace.into(),
                connection: name.into(),
            };
            self.outbox_pending.get_or_create(&labels).set(*pending);
            self.outbox_oldest_age.get_or_create(&labels).set(*age);
        }
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What the admin server reads.
#[derive(Clone)]
struct Admin {
    metrics: Arc<Metrics>,
    db: PgPool,
}

/// How long `/readyz` (and the outbox figures of a scrape) wait for the database (below the
/// chart's probe timeout).
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Pending emails per connection and the age of the oldest, read for each scrape. On a database
/// error or timeout the previous figures stay (the scrape still answers).
async fn refresh_outbox(a: &Admin) {
    let query = sqlx::query!(
        r#"SELECT connection AS "connection!",
                  count(*) AS "pending!",
                  EXTRACT(EPOCH FROM (now() - min(created_at)))::float8 AS "oldest_age!"
             FROM email_outbox
            WHERE sent_at IS NULL AND failed_at IS NULL
            GROUP BY connection"#
    )
    .fetch_all(&a.db);
    match tokio::time::timeout(DB_CHECK_TIMEOUT, query).await {
        Ok(Ok(rows)) => {
            let rows: Vec<(String, i64, f64)> = rows
                .into_iter()
                .map(|r| (r.connection, r.pending, r.oldest_age))
                .collect();
            a.metrics.set_outbox(&rows);
        }
        Ok(Err(err)) => warn!(error = %err, "cannot read the email outbox for the metrics"),
        Err(_) => warn!(
            "the database did not answer within {DB_CHECK_TIMEOUT:?}: outbox metrics not updated"
        ),
    }
}

async fn metrics_handler(State(a): State<Admin>) -> impl IntoResponse {
    refresh_outbox(&a).await;
    match a.metrics.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(a): State<Admin>) -> impl IntoResponse {
    if !a.metrics.ready.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first list of every watched kind".to_string(),
        );
    }
    let ping = sqlx::query("SELECT 1").execute(&a.db);
    match tokio::time::timeout(DB_CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok".to_string()),
        Ok(Err(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database does not answer: {err}"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database did not answer within {DB_CHECK_TIMEOUT:?}"),
        ),
    }
}

/// Binds the admin server; returns the bound address and the serving future.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    db: PgPool,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Admin { metrics, db });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, async move { axum::serve(listener, app).await }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RunStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn spec(frequency: &str, suspend: bool) -> SyncScheduleSpec {
        let mut v = serde_json::json!({
            "connectionRef": {"name": "springfield"}, "frequency": frequency, "at": "02:00",
            "timeZone": "UTC", "suspend": suspend,
        });
        match frequency {
            "Weekly" => v["dayOfWeek"] = "Monday".into(),
            "Monthly" => v["dayOfMonth"] = 1.into(),
            _ => {}
        }
        serde_json::from_value(v).expect("spec")
    }

    fn run(result: RunResult, finished: i64) -> RunStatus {
        RunStatus {
            job: "j".into(),
            run_id: format!("r{finished}"),
            result: Some(result),
            finished_at: Some(Time(
                jiff::Timestamp::from_second(finished).expect("timestamp"),
            )),
            ..RunStatus::default()
        }
    }

    #[test]
    fn schedule_gauges_from_spec_and_status() {
        let status = |runs: Vec<RunStatus>| SyncScheduleStatus {
            recent_runs: runs,
            consecutive_failures: 2,
            missed_slots: 3,
            ..SyncScheduleStatus::default()
        };
        let cases = [
            // (frequency, suspend, recent runs newest first, period, held since)
            ("Daily", false, vec![], 86_400.0, None),
            ("Weekly", true, vec![], 604_800.0, None),
            ("Monthly", false, vec![], 2_678_400.0, None),
            (
                "Daily",
                false,
                vec![run(RunResult::Held, 1000), run(RunResult::Succeeded, 10)],
                86_400.0,
                Some(1000.0),
            ),
            // An older held run (approved since: a newer run followed) is not awaiting approval.
            (
                "Daily",
                false,
                vec![run(RunResult::Succeeded, 2000), run(RunResult::Held, 1000)],
                86_400.0,
                None,
            ),
        ];
        for (frequency, suspend, runs, period, held) in cases {
            let g = ScheduleGauges::of(&spec(frequency, suspend), &status(runs), Some(5.0), None);
            assert_eq!(g.period_seconds, period, "{frequency}");
            assert_eq!(g.suspended, suspend, "{frequency}");
            assert_eq!(g.held_since, held, "{frequency}");
            assert_eq!((g.consecutive_failures, g.missed_slots), (2, 3));
            assert_eq!((g.last_success, g.next_slot), (Some(5.0), None));
        }
    }

    fn gauges() -> ScheduleGauges {
        ScheduleGauges {
            last_success: Some(1.0),
            next_slot: Some(2.0),
            period_seconds: 86_400.0,
            suspended: false,
            held_since: Some(3.0),
            consecutive_failures: 1,
            missed_slots: 0,
        }
    }

    fn lines_with(m: &Metrics, needle: &str) -> Vec<String> {
        m.encode()
            .expect("encode")
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn deleted_and_relabelled_objects_lose_their_series() {
        let m = Metrics::default();
        m.schedule_observed("a", "nightly", "springfield", &gauges());
        m.schedule_observed("b", "nightly", "shelbyville", &gauges());
        let clever = crate::run::CleverRequests {
            requests: 7,
            retries: 2,
            rate_limited: 1,
        };
        m.sync_finished("a", "springfield", "Succeeded", Some(3.0), clever);
        m.sync_finished("b", "shelbyville", "Failed", None, Default::default());
        assert_eq!(lines_with(&m, "namespace=\"a\"").len(), 8 + 1 + 13 + 3);
        for line in [
            "rostersync_clever_requests_total{namespace=\"a\",connection=\"springfield\"} 7",
            "rostersync_clever_retries_total{namespace=\"a\",connection=\"springfield\"} 2",
            "rostersync_clever_rate_limited_total{namespace=\"a\",connection=\"springfield\"} 1",
        ] {
            assert!(
                lines_with(&m, "clever_").contains(&line.to_string()),
                "{line}"
            );
        }
        assert!(!lines_with(&m, "namespace=\"b\"").is_empty());

        // The connection changes: the series move to the new label set.
        m.schedule_observed("a", "nightly", "ogdenville", &gauges());
        assert!(lines_with(&m, "schedule=\"nightly\",connection=\"springfield\"").is_empty());
        assert_eq!(lines_with(&m, "connection=\"ogdenville\"").len(), 8);

        m.forget_schedule("a", "nightly");
        m.forget_connection("a", "springfield");
        assert!(lines_with(&m, "namespace=\"a\"").is_empty());
        assert!(!lines_with(&m, "namespace=\"b\"").is_empty());

        // After a relist without b's objects, theirs go too; other scopes are untouched.
        m.schedule_observed("c", "weekly", "x", &gauges());
        m.retain_schedules(Some("b"), &HashSet::new());
        m.retain_connections(None, &HashSet::new());
        assert!(lines_with(&m, "namespace=\"b\"").is_empty());
        assert_eq!(lines_with(&m, "namespace=\"c\"").len(), 8);
    }

    /// The metric names a PromQL text uses (`rostersync_...`, histogram and counter suffixes kept).
    fn names_used(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("rostersync_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
        names
    }

    /// Every series name the controller can export: `# TYPE` families with their samples' suffixes.
    fn exported() -> std::collections::BTreeSet<String> {
        // Empty families are not encoded: give every one a series.
        let m = Metrics::default();
        m.schedule_observed("a", "nightly", "springfield", &gauges());
        m.sync_finished("a", "springfield", "Failed", Some(1.0), Default::default());
        m.reconciled("SyncSchedule");
        m.reconcile_done("SyncSchedule", true, 0.1);
        m.failed("SyncSchedule", "database");
        m.set_outbox(&[("a/springfield".into(), 1, 2.0)]);
        let text = m.encode().expect("encode");
        let mut names = std::collections::BTreeSet::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        }
        names
    }

    /// The shipped Grafana dashboard and PrometheusRule use only metrics the controller exports
    /// (a renamed metric breaks this test, not an on-call engineer's night).
    #[test]
    fn dashboard_and_alerts_use_only_exported_metrics() {
        let exported = exported();
        assert!(exported.contains("rostersync_syncs_total"), "{exported:?}");
        for (file, text) in [
            (
                "charts/rostersync/dashboards/rostersync.json",
                include_str!("../../charts/rostersync/dashboards/rostersync.json"),
            ),
            (
                "charts/rostersync/templates/prometheusrule.yaml",
                include_str!("../../charts/rostersync/templates/prometheusrule.yaml"),
            ),
        ] {
            let used = names_used(text);
            assert!(used.len() >= 5, "{file} uses {used:?}");
            let unknown: Vec<_> = used.difference(&exported).collect();
            assert!(
                unknown.is_empty(),
                "{file} uses metrics the controller does not export: {unknown:?}"
            );
        }
        let dashboard: serde_json::Value = serde_json::from_str(include_str!(
            "../../charts/rostersync/dashboards/rostersync.json"
        ))
        .expect("the dashboard is JSON");
        assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 10));
    }

    #[test]
    fn controller_runtime_shaped_series_and_build_info() {
        let m = Metrics::default();
        m.reconcile_done("SyncSchedule", true, 0.02);
        m.reconcile_done("SyncSchedule", false, 0.5);
        let text = m.encode().expect("encode");
        for line in [
            "rostersync_reconcile_total{controller=\"SyncSchedule\",result=\"success\"} 1",
            "rostersync_reconcile_total{controller=\"SyncSchedule\",result=\"error\"} 1",
            "rostersync_reconcile_duration_seconds_count{controller=\"SyncSchedule\"} 2",
            "rostersync_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        m.set_outbox(&[("a/springfield".into(), 2, 30.5)]);
        let text = m.encode().expect("encode");
        assert!(text.contains(
            "rostersync_email_outbox_pending{namespace=\"a\",connection=\"springfield\"} 2"
        ));
        m.set_outbox(&[]);
        assert!(lines_with(&m, "email_outbox").is_empty());
    }
}
