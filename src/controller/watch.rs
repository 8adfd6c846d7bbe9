//! Wiring: the three Controllers (per watched namespace), their watches, readiness, the
//! DeserializeGuard wrappers (one malformed object is reported and skipped, never stopping a
//! watch), error backoff and shutdown.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::core::error_boundary::InvalidObject;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch as channel;
use tracing::{info, warn};

use super::Context;
use super::error::{Error, Result};
use super::job::{MANAGED_BY, MANAGED_BY_LABEL};
use super::metrics::Metrics;
use crate::api::{JourneyPolicy, RosterConnection, SyncSchedule};

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Sets the channel on SIGTERM or Ctrl-C.
pub async fn shutdown_on_signals(tx: channel::Sender<bool>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    info!("shutdown requested");
    let _ = tx.send(true);
}

/// A future that completes once shutdown is requested.
pub(super) fn shutdown_future(
    mut rx: channel::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    let (tx, done) = futures::channel::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = rx.wait_for(|stop| *stop).await;
        let _ = tx.send(());
    });
    async move {
        let _ = done.await;
    }
}

/// Runs the three Controllers in each namespace of `namespaces` (all namespaces when it is empty)
/// until shutdown is requested; each finishes its in-flight reconciles.
///
/// One set of Controllers per namespace, each on `Api::namespaced`: the controller then needs
/// permissions in the listed namespaces only, and the reconcile code is the same in both modes (a
/// reconcile only ever looks at its own namespace).
pub async fn run_controllers(
    ctx: Arc<Context>,
    namespaces: &[String],
    shutdown: channel::Receiver<bool>,
) {
    futures::future::join_all(
        scopes(namespaces)
            .into_iter()
            .map(|ns| run_in(ctx.clone(), ns, shutdown.clone())),
    )
    .await;
}

/// One scope per namespace, or the single scope `None` (all namespaces) when there is none.
fn scopes(namespaces: &[String]) -> Vec<Option<&str>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|ns| Some(ns.as_str())).collect()
    }
}

/// The three Controllers of one namespace (`None`: all namespaces).
async fn run_in(ctx: Arc<Context>, namespace: Option<&str>, shutdown: channel::Receiver<bool>) {
    let client = ctx.client.clone();
    let ctx_metrics = ctx.metrics.clone();
    let wc = watcher::Config::default().any_semantic();
    let jobs_wc = jobs_config();

    let connections = Controller::new(
        api::<DeserializeGuard<RosterConnection>>(&client, namespace),
        wc.clone(),
    );
    let conn_store = connections.store();
    // Secrets: metadata only (names, resourceVersions, annotations; never their data), kept in a
    // store: a change re-verifies the connections that use the Secret, and a reconcile compares
    // versions from the store instead of asking the API each time. The reconcile reads the one
    // Secret it verifies with a targeted get.
    let (secret_store, secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let secrets = reflector(
        secret_writer,
        watcher(
            api::<PartialObjectMeta<Secret>>(&client, namespace),
            wc.clone(),
        ),
    )
    .default_backoff()
    .touched_objects();
    if let Ok(mut stores) = ctx.secret_stores.write() {
        stores.push(secret_store);
    }
    let connections = connections
        .watches_stream(secrets, move |secret| {
            let ns = secret.namespace();
            let name = secret.name_any();
            // Its credentials Secret, or the database credential Secret it owns.
            let owners: Vec<String> = secret
                .owner_references()
                .iter()
                .map(|o| o.uid.clone())
                .collect();
            conn_store
                .state()
                .into_iter()
                .filter(|c| {
                    c.0.as_ref().is_ok_and(|c| {
                        c.namespace() == ns
                            && (c.spec.credentials_secret_ref.name == name
                                || c.uid().is_some_and(|uid| owners.contains(&uid)))
                    })
                })
                .map(|c| ObjectRef::from_obj(&*c))
                .collect::<Vec<_>>()
        })
        .watches(api::<Job>(&client, namespace), jobs_wc.clone(), |job| {
            let ns = job.namespace()?;
            // The full name (a label holds a hashed form of a long one).
            let conn = super::names::connection_of(&job)?;
            Some(ObjectRef::new(&conn).within(&ns))
        });

    let schedules = Controller::new(
        api::<DeserializeGuard<SyncSchedule>>(&client, namespace),
        wc.clone(),
    );
    let sched_store = schedules.store();
    let schedules = schedules
        .owns(api::<Job>(&client, namespace), jobs_wc)
        .watches(
            api::<DeserializeGuard<RosterConnection>>(&client, namespace),
            wc.clone(),
            move |conn| {
                let ns = conn.meta().namespace.clone();
                let name = conn.meta().name.clone().unwrap_or_default();
                sched_store
                    .state()
                    .into_iter()
                    .filter(|s| {
                        s.0.as_ref().is_ok_and(|s| {
                            s.spec.connection_ref.name == name && s.namespace() == ns
                        })
                    })
                    .map(|s| ObjectRef::from_obj(&*s))
                    .collect::<Vec<_>>()
            },
        );

    let policies = Controller::new(
        api::<DeserializeGuard<JourneyPolicy>>(&client, namespace),
        wc,
    );
    if let Ok(mut stores) = ctx.policy_stores.write() {
        stores.push(policies.store());
    }

    // Bounded: a restart queues every object at once; at most this many reconcile at a time
    // (per kind and namespace), the rest wait their turn.
    let concurrency = ctx.max_concurrent_reconciles;
    let config = move || controller::Config::default().concurrency(concurrency);
    let c = connections
        .with_config(config())
        .graceful_shutdown_on(shutdown_future(shutdown.clone()))
        .run(reconcile_connection, error_policy, ctx.clone())
        .for_each(log_result);
    let s = schedules
        .with_config(config())
        .graceful_shutdown_on(shutdown_future(shutdown.clone()))
        .run(reconcile_schedule, error_policy, ctx.clone())
        .for_each(log_result);
    let p = policies
        .with_config(config())
        .graceful_shutdown_on(shutdown_future(shutdown))
        .run(reconcile_policy, error_policy, ctx)
        .for_each(log_result);
    // The series of deleted schedules and connections go (a reconcile never sees the object gone).
    let forget = tokio::spawn(forget_deleted(
        client,
        namespace.map(str::to_string),
        ctx_metrics,
    ));
    futures::future::join3(c, s, p).await;
    forget.abort();
}

/// Removes the metric series of SyncSchedules and RosterConnections deleted in `namespace` (all
/// when `None`): on their watch's Delete event, and after each full (re)list for those no longer
/// listed (deleted while the watch was down). Metadata only.
async fn forget_deleted(client: Client, namespace: Option<String>, metrics: Arc<Metrics>) {
    let scope = namespace.as_deref();
    let schedules = forget_kind(
        api::<PartialObjectMeta<SyncSchedule>>(&client, scope),
        scope,
        &metrics,
        Metrics::forget_schedule,
        Metrics::retain_schedules,
    );
    let connections = forget_kind(
        api::<PartialObjectMeta<RosterConnection>>(&client, scope),
        scope,
        &metrics,
        Metrics::forget_connection,
        Metrics::retain_connections,
    );
    futures::future::join(schedules, connections).await;
}

type Listed = std::collections::HashSet<(String, String)>;

async fn forget_kind<K>(
    api: Api<PartialObjectMeta<K>>,
    scope: Option<&str>,
    metrics: &Metrics,
    forget: fn(&Metrics, &str, &str),
    retain: fn(&Metrics, Option<&str>, &Listed),
) where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    PartialObjectMeta<K>: Resource<DynamicType = ()>,
{
    use kube::runtime::WatchStreamExt;
    let wc = watcher::Config::default().any_semantic();
    let mut events = std::pin::pin!(watcher(api, wc).default_backoff());
    let mut listed = Listed::new();
    let id = |o: &PartialObjectMeta<K>| (o.namespace().unwrap_or_default(), o.name_any());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Delete(o)) => {
                let (ns, name) = id(&o);
                forget(metrics, &ns, &name);
            }
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                listed.insert(id(&o));
            }
            Ok(watcher::Event::InitDone) => retain(metrics, scope, &listed),
            Ok(watcher::Event::Apply(_)) => {}
            Err(err) => warn!(error = %err, "watch for deleted objects' metrics failed; retrying"),
        }
    }
}

/// The sync Jobs the controller created (by label).
fn jobs_config() -> watcher::Config {
    watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
}

/// Sets `metrics.ready` once everything the Controllers watch was listed once in every namespace
/// of `namespaces` (all when empty), with the same selectors. It runs on every replica, the
/// leader and a standby alike, and does not wait for the Lease: it answers "could this replica
/// serve and take over", not "does it act".
///
/// Separate watches, not the Controllers' stores: waiting on those (`Store::wait_until_ready`)
/// beside the Controllers themselves loses a wake-up (kube's DelayedInit keeps a single waker),
/// which left /readyz at 503 for good and could stall a Controller's start; and a standby has no
/// Controllers.
pub fn spawn_readiness(client: &Client, namespaces: &[String], metrics: Arc<Metrics>) {
    let wc = watcher::Config::default().any_semantic();
    let mut lists = Vec::new();
    for ns in scopes(namespaces) {
        lists.push(
            initial_list_done(
                api::<DeserializeGuard<RosterConnection>>(client, ns),
                wc.clone(),
            )
            .boxed(),
        );
        lists.push(
            initial_list_done(
                api::<DeserializeGuard<SyncSchedule>>(client, ns),
                wc.clone(),
            )
            .boxed(),
        );
        lists.push(
            initial_list_done(
                api::<DeserializeGuard<JourneyPolicy>>(client, ns),
                wc.clone(),
            )
            .boxed(),
        );
        lists.push(
            initial_list_done(api::<PartialObjectMeta<Secret>>(client, ns), wc.clone()).boxed(),
        );
        lists.push(initial_list_done(api::<Job>(client, ns), jobs_config()).boxed());
    }
    tokio::spawn(async move {
        let done = futures::future::join_all(lists).await;
        if done.iter().all(|ok| *ok) {
            metrics.ready.store(true, Ordering::Relaxed);
            info!("every watched kind listed; ready");
        }
    });
}

/// Whether a watch of `api` delivered its initial list (the watch then ends). Failures are retried
/// with backoff (and logged), so a missing permission shows in the log while /readyz stays 503.
async fn initial_list_done<K>(api: Api<K>, wc: watcher::Config) -> bool
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    use kube::runtime::WatchStreamExt;
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut events = std::pin::pin!(watcher(api, wc).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::InitDone) => return true,
            Ok(_) => {}
            Err(err) => {
                warn!(%kind, error = %err, "cannot list what the controller watches; not ready")
            }
        }
    }
    false
}

async fn log_result<K: Resource, E: std::fmt::Display>(
    r: std::result::Result<(ObjectRef<K>, Action), E>,
) {
    if let Err(err) = r {
        warn!(error = %err, "reconcile failed");
    }
}

fn key<K: Resource>(kind: &str, obj: &K) -> String {
    format!(
        "{kind}/{}/{}",
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default()
    )
}

async fn guarded<K, F, Fut>(
    kind: &'static str,
    obj: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    f: F,
) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<DeserializeGuard<K>>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action>>,
{
    use tracing::Instrument as _;
    ctx.metrics.reconciled(kind);
    let started = std::time::Instant::now();
    // One span per reconcile: every line it logs (and the runs it starts) carries the object.
    let meta = obj.meta();
    let span = tracing::info_span!(
        "reconcile",
        controller = kind,
        namespace = meta.namespace.as_deref().unwrap_or_default(),
        name = meta.name.as_deref().unwrap_or_default(),
    );
    let result = guarded_inner(kind, obj, ctx.clone(), f)
        .instrument(span)
        .await;
    ctx.metrics
        .reconcile_done(kind, result.is_ok(), started.elapsed().as_secs_f64());
    result
}

async fn guarded_inner<K, F, Fut>(
    kind: &'static str,
    obj: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    f: F,
) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<DeserializeGuard<K>>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action>>,
{
    // Not even reads (nor calls to Clever) once this replica may not act; every write checks
    // again right before it.
    ctx.acting.check()?;
    if let Err(invalid) = &obj.0 {
        report_invalid::<K>(&ctx, invalid).await;
        return Ok(Action::await_change());
    }
    let key = key(kind, &*obj);
    let result = f(obj, ctx.clone()).await;
    if result.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&key);
    }
    result
}

async fn reconcile_connection(
    obj: Arc<DeserializeGuard<RosterConnection>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    guarded("RosterConnection", obj, ctx, |o, c| async move {
        match &o.0 {
            Ok(conn) => super::connection::reconcile(conn, &c).await,
            Err(e) => Err(Error::InvalidObject(e.to_string())),
        }
    })
    .await
}

async fn reconcile_schedule(
    obj: Arc<DeserializeGuard<SyncSchedule>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    guarded("SyncSchedule", obj, ctx, |o, c| async move {
        match &o.0 {
            Ok(s) => super::schedule::reconcile(s, &c).await,
            Err(e) => Err(Error::InvalidObject(e.to_string())),
        }
    })
    .await
}

async fn reconcile_policy(
    obj: Arc<DeserializeGuard<JourneyPolicy>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    guarded("JourneyPolicy", obj, ctx, |o, c| async move {
        match &o.0 {
            Ok(p) => super::journey::reconcile(p, &c).await,
            Err(e) => Err(Error::InvalidObject(e.to_string())),
        }
    })
    .await
}

/// Exponential backoff per object: 2 s, 4 s, ... up to 5 minutes.
fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<DeserializeGuard<K>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let kind = K::kind(&()).to_string();
    ctx.metrics.failed(&kind, err.metric_label());
    let key = key(&kind, &*obj);
    let attempts = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let delay =
        Duration::from_secs(2u64.saturating_pow(attempts.min(9))).min(Duration::from_secs(300));
    warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// An object the controller cannot read: log it and tell its owner with a Warning Event.
async fn report_invalid<K: Resource<DynamicType = ()>>(ctx: &Context, invalid: &InvalidObject) {
    let meta = &invalid.metadata;
    warn!(kind = %K::kind(&()), name = ?meta.name, namespace = ?meta.namespace, error = %invalid.error, "cannot read object; skipping it");
    let reference = ObjectReference {
        api_version: Some(K::api_version(&()).into()),
        kind: Some(K::kind(&()).into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidObject".into(),
        note: Some(super::status::truncate(
            &format!("the controller cannot read this object: {}", invalid.error),
            1000,
        )),
        action: "Read".into(),
        secondary: None,
    };
    if !ctx.acting.may_act() {
        return;
    }
    if let Err(err) = ctx.recorder.publish(&event, &reference).await {
        warn!(error = %err, "cannot publish an Event");
    }
}
