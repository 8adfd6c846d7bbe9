//! Prometheus metrics and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
//!
//! `/readyz` means "can serve and take over": the first list of everything the controller watches
//! succeeded (the API server is reachable and the RBAC complete) and the database answers. It does
//! not depend on leadership: a standby replica is Ready; `rostersync_leader` tells which acts.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    pub namespace: String,
    pub schedule: String,
}

/// The controller's metrics.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub syncs: Family<ResultLabels, Counter>,
    pub sync_duration: Histogram,
    pub last_success: Family<ScheduleLabels, Gauge<f64, AtomicU64>>,
    pub next_sync: Family<ScheduleLabels, Gauge<f64, AtomicU64>>,
    /// 1 while this replica acts (holds the Lease, or runs without leader election).
    pub leader: Gauge,
    /// Set once every watched kind was listed in every watched namespace.
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rostersync");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let syncs = Family::<ResultLabels, Counter>::default();
        let sync_duration = Histogram::new([
            5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
        ]);
        let last_success = Family::<ScheduleLabels, Gauge<f64, AtomicU64>>::default();
        let next_sync = Family::<ScheduleLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconcile errors by kind and error",
            errors.clone(),
        );
        registry.register("syncs", "Finished sync runs by result", syncs.clone());
        registry.register(
            "sync_duration_seconds",
            "Duration of finished sync runs",
            sync_duration.clone(),
        );
        registry.register(
            "last_successful_sync_timestamp_seconds",
            "When the latest successful sync of a schedule finished (unix seconds)",
            last_success.clone(),
        );
        registry.register(
            "next_sync_timestamp_seconds",
            "The next scheduled sync of a schedule (unix seconds)",
            next_sync.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica acts (holds the leader Lease, or runs without leader election), \
             0 while it stands by",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            syncs,
            sync_duration,
            last_success,
            next_sync,
            leader,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Records whether this replica acts.
    pub fn set_leader(&self, acting: bool) {
        self.leader.set(i64::from(acting));
    }

    pub fn reconciled(&self, kind: &str) {
        self.reconciles
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    pub fn failed(&self, kind: &str, error: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                error: error.into(),
            })
            .inc();
    }

    pub fn sync_finished(&self, result: &str, seconds: Option<f64>) {
        self.syncs
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
        if let Some(s) = seconds {
            self.sync_duration.observe(s);
        }
    }

    pub fn schedule_times(
        &self,
        ns: &str,
        name: &str,
        last_success: Option<f64>,
        next: Option<f64>,
    ) {
        let labels = ScheduleLabels {
            namespace: ns.into(),
            schedule: name.into(),
        };
        if let Some(t) = last_success {
            self.last_success.get_or_create(&labels).set(t);
        }
        match next {
            Some(t) => {
                self.next_sync.get_or_create(&labels).set(t);
            }
            None => {
                self.next_sync.remove(&labels);
            }
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

/// How long `/readyz` waits for the database (below the chart's probe timeout).
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn metrics_handler(State(a): State<Admin>) -> impl IntoResponse {
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
