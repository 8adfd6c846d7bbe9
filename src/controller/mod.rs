//! `rostersync controller`: the operator. Three kube-runtime Controllers (RosterConnection,
//! SyncSchedule, JourneyPolicy) per watched namespace (or one set for all namespaces) run
//! concurrently with one shared [`Context`]; an admin server serves `/metrics`, `/healthz` and
//! `/readyz`; with `--leader-elect` only the Lease holder acts, and a standby is Ready (it can
//! serve and take over) while it waits for the Lease.
//!
//! - [`connection`]: Secret + Clever verification, `lastSync` from Postgres.
//! - [`schedule`]: slots, Sync Now, approvals, Jobs, history (pure parts in [`job`], [`history`]).
//! - [`journey`]: policy validation.
pub mod clock;
pub mod connection;
pub mod emails;
pub mod error;
pub mod history;
pub mod job;
pub mod journey;
pub mod kstatus;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod pace;
pub mod runs;
pub mod schedule;
pub mod status;
pub mod tenancy;
mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use sqlx::PgPool;
use tracing::info;

pub use clock::Clock;
pub use error::Error;
use job::JobConfig;
use metrics::Metrics;

/// Arguments of `rostersync controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Postgres URL (roster and sync history); migrations run at start.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// How sync Jobs reach the database: `dedicated` (a login role per RosterConnection, limited
    /// to its rows by row-level security, in a Secret `<connection>-database` the controller
    /// writes; needs CREATEROLE) or `shared` (every Job uses `--database-secret`, a URL with the
    /// owner's rights: weaker, see docs/security.md).
    #[arg(long, value_enum, default_value_t = crate::store::tenancy::Tenancy::Dedicated)]
    pub database_tenancy: crate::store::tenancy::Tenancy,
    /// Shared tenancy: the Secret (in each Job's namespace) holding the database URL the sync
    /// Jobs use.
    #[arg(long, default_value = "rostersync-database")]
    pub database_secret: String,
    /// The key of the database URL in `--database-secret`.
    #[arg(long, default_value = "url")]
    pub database_secret_key: String,
    /// The image of the sync Jobs.
    #[arg(long, default_value = concat!("ghcr.io/rostersync/rostersync:", env!("CARGO_PKG_VERSION")))]
    pub sync_image: String,
    /// The executable in the image.
    #[arg(long, default_value = "rostersync")]
    pub sync_command: String,
    /// The ServiceAccount of the sync Jobs (in each Job's namespace).
    #[arg(long, default_value = "rostersync-sync")]
    pub sync_service_account: String,
    /// Defaults of the sync pods' settings: a JSON object with the fields of a SyncSchedule's
    /// `spec.job` (resources, imagePullSecrets, nodeSelector, tolerations, affinity,
    /// priorityClassName, podLabels, podAnnotations, extraEnv, extraVolumes, extraVolumeMounts). A
    /// field a SyncSchedule sets wins as a whole; podLabels, podAnnotations and nodeSelector merge
    /// key by key, the SyncSchedule's value winning.
    #[arg(long, value_name = "JSON", default_value = "{}", value_parser = job::parse_defaults)]
    pub sync_job_defaults: crate::api::JobPodSettings,
    /// The hosts (`HOST[:PORT]`) Clever credentials may be sent to: a RosterConnection whose
    /// apiBaseUrl (or the oauth tokens URL derived from it) is elsewhere is not Ready
    /// (`ApiHostNotAllowed`) and gets no request; its sync Jobs get this list and refuse too.
    /// Repeat the flag or give a comma-separated list; giving it replaces the default (Clever's
    /// own hosts), so list them too if they stay allowed. A port-less host allows the scheme's
    /// default port only.
    #[arg(
        long = "allowed-api-host",
        value_name = "HOST[:PORT]",
        value_delimiter = ',',
        value_parser = crate::clever::parse_allowed_host,
        default_values = crate::clever::CLEVER_API_HOSTS
    )]
    pub allowed_api_hosts: Vec<crate::clever::AllowedHost>,
    /// Watch only these namespaces: repeat the flag or give a comma-separated list (default: all
    /// namespaces). One set of watches runs per namespace, so the controller needs permissions in
    /// the listed namespaces only (a Role per namespace instead of a ClusterRole).
    #[arg(long = "namespace", value_name = "NS", value_delimiter = ',', value_parser = namespace_name)]
    pub namespaces: Vec<String>,
    /// Finished runs (with their problems) and sent emails older than this are deleted, hourly:
    /// a whole number and a unit (d, h, m, s).
    #[arg(long, default_value = "400d", value_parser = tenancy::parse_retention)]
    pub history_retention: Duration,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address of the read-only status pages and JSON API (`/`, `/api/v1/...`; bearer token +
    /// RBAC, see docs/ui.md); not served when unset.
    #[arg(long)]
    pub ui_addr: Option<SocketAddr>,
    /// Seconds between periodic re-verifications of a connection against Clever.
    #[arg(long, default_value_t = 600)]
    pub recheck_interval_seconds: u64,
    /// Act only while holding a Lease, so that two replicas never both act.
    #[arg(long)]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(long, default_value = "rostersync-controller")]
    pub lease_name: String,
    /// The Lease's namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (default: the host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Leader election: a standby takes the Lease this long after it last saw the Lease renewed.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Leader election: the leader stops acting (no Jobs, status writes, Events or emails) and
    /// exits with status 1 when no renewal succeeded for this long; shorter than
    /// `--lease-duration-seconds`, so that it stops before its Lease can expire for the others.
    #[arg(long, default_value_t = 10)]
    pub lease_renew_deadline_seconds: u64,
    /// Leader election: how often the leader renews the Lease and a standby tries to take it.
    #[arg(long, default_value_t = 2)]
    pub lease_retry_period_seconds: u64,
    /// At most this many reconciles at once per kind (RosterConnection, SyncSchedule,
    /// JourneyPolicy) and watched namespace; more wait in the queue.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,
    /// After a start, each connection already verified is verified again against Clever after a
    /// delay within this window, fixed per connection (a hash of its name), so that a restart with
    /// many connections does not call Clever all at once. New connections and changed specs or
    /// Secrets are verified at once. 0: all at once.
    #[arg(long, default_value_t = 120)]
    pub verify_startup_jitter_seconds: u64,
    /// At most this many Clever verifications a second from this controller (spaced evenly,
    /// first come first served), whatever number of connections are due at once: a restart, a mass
    /// creation, rotated Secrets. 0: no limit.
    #[arg(long, default_value_t = 20)]
    pub verify_rate_per_second: u32,
    /// A run still `Running` in the database whose Job no longer exists is recorded Failed
    /// (`JobLost`) and reported once it started at least this long ago.
    #[arg(long, default_value_t = 300)]
    pub lost_run_grace_seconds: u64,
    /// A SyncSchedule whose last this many runs failed is `Ready=False` (reason `RepeatedFailures`,
    /// kstatus `Stalled`) until a run succeeds; 0: never.
    #[arg(long, default_value_t = 3)]
    pub failures_before_not_ready: u32,
    /// Stagger same-minute slots: each SyncSchedule's slots fire a fixed delay of 0 to this many
    /// seconds (0 to 3600) after their time, chosen by a hash of its namespace and name, never
    /// past its off-peak window's end or local midnight; `spec.slotJitterSeconds` overrides it.
    /// 0: slots fire exactly on time. Sync Now is never delayed.
    #[arg(long, default_value_t = crate::schedule::DEFAULT_SLOT_JITTER_SECONDS,
        value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub slot_jitter_seconds: u32,
    /// At most this many sync Jobs run at once in the cluster (the watched namespaces); a
    /// scheduled run over the cap waits (`status.queuedRun`, Ready reason `Queued`) and starts in
    /// order, oldest due first, when one finishes. Sync Now and approvals are never queued but
    /// count. 0: no cap.
    #[arg(long, default_value_t = 0)]
    pub max_concurrent_syncs: u32,
    /// Tests only: shift the controller's clock by this many seconds.
    #[arg(long, default_value_t = 0, hide = true, allow_hyphen_values = true)]
    pub clock_offset_seconds: i64,
    /// `--extra-ca-file`: the controller's own connections (Clever, SMTP, Postgres) trust these
    /// CA certificates too.
    #[command(flatten)]
    pub extra_ca: crate::tls::ExtraCaArgs,
    /// The sync Jobs trust the CA certificates in this ConfigMap (in each Job's namespace, key
    /// `ca.crt` unless `:KEY` is given) too: each Job mounts it (`optional: false`, so a missing
    /// ConfigMap keeps the pod from starting, visibly) and gets `--extra-ca-file` pointing at it.
    #[arg(long, value_name = "NAME[:KEY]", value_parser = job::parse_ca_bundle)]
    pub sync_ca_bundle_configmap: Option<job::CaBundle>,
    /// Emails: SMTP (`--smtp-secret` or `--smtp-*`) and `--email-repeat-interval`. Without SMTP,
    /// emails are still queued in the outbox, and sent once SMTP is configured. A bare
    /// `--smtp-secret NAME` is in the controller's namespace (`POD_NAMESPACE`).
    #[command(flatten)]
    pub notify: crate::notify::NotifyArgs,
    /// The products this operator holds licenses for (comma separated): JourneyPolicies may only
    /// name these (else `Ready=False`, `ProductNotLicensed`), syncs give new children only these,
    /// and `journeys set` only sets these. Written to the database at start (`product_licenses`,
    /// read-only for districts). Unset: the database's list stays as it is (when empty, each
    /// JourneyPolicy's own licensedProducts apply, as before).
    #[arg(long, env = "ROSTERSYNC_LICENSED_PRODUCTS", value_delimiter = ',')]
    pub licensed_products: Option<Vec<String>>,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub db: PgPool,
    pub job_config: JobConfig,
    pub recheck_interval: Duration,
    /// Connections' last verification (see [`connection::Verified`]).
    pub verified: Mutex<HashMap<String, connection::Verified>>,
    /// Consecutive reconcile failures per object, for the error backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Repeats of the same problem are emailed at most once per this interval.
    pub email_repeat_interval: jiff::SignedDuration,
    /// Whether this replica may write now (the leader Lease is held and renewed in time); checked
    /// right before every Job creation, status write, Event, report and email.
    pub acting: leader::Acting,
    /// When the controller started acting (for the start-up verification delays).
    pub started: jiff::Timestamp,
    /// `--verify-startup-jitter-seconds`.
    pub verify_jitter: Duration,
    /// `--verify-rate-per-second`.
    pub verify_pacer: pace::Pacer,
    /// `--lost-run-grace-seconds`.
    pub lost_run_grace: Duration,
    /// `--max-concurrent-reconciles`.
    pub max_concurrent_reconciles: u16,
    /// Dedicated tenancy: the district roles (`None` in shared tenancy).
    pub tenants: Option<tenancy::Tenants>,
    /// `--extra-ca-file`, for verifying connections against Clever.
    pub extra_ca: Option<crate::tls::ExtraCa>,
    /// `--failures-before-not-ready`.
    pub failures_before_not_ready: u32,
    /// `--slot-jitter-seconds` and `--max-concurrent-syncs` (with the cap's state).
    pub sync_slots: schedule::SyncSlots,
    /// The JourneyPolicy Controllers' stores (one per watched namespace), so that a connection's
    /// reconcile finds its policy without a request.
    pub policy_stores: std::sync::RwLock<Vec<PolicyStore>>,
    /// The Secrets' metadata as the RosterConnection Controllers' Secret watches saw it (one store
    /// per watched namespace), so that a reconcile notices a changed Secret without a request.
    pub secret_stores: std::sync::RwLock<Vec<SecretStore>>,
}

/// The metadata (never the data) of the Secrets of one scope.
pub type SecretStore = kube::runtime::reflector::Store<
    kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>,
>;

/// What the JourneyPolicy Controller of one scope has seen.
pub type PolicyStore =
    kube::runtime::reflector::Store<kube::core::DeserializeGuard<crate::api::JourneyPolicy>>;

impl Context {
    /// Whether JourneyPolicy `ns/name` is in a policies store (valid or not). `false` may also
    /// mean "not listed yet": ask the API then.
    pub fn policy_known(&self, ns: &str, name: &str) -> bool {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(ns);
        self.policy_stores
            .read()
            .is_ok_and(|stores| stores.iter().any(|s| s.get(&key).is_some()))
    }

    /// Secret `ns/name`'s metadata as last seen by the Secret watch. `None`: no such Secret, or
    /// not listed yet: ask the API then.
    pub fn secret_meta(
        &self,
        ns: &str,
        name: &str,
    ) -> Option<Arc<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>>> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(ns);
        self.secret_stores
            .read()
            .ok()?
            .iter()
            .find_map(|s| s.get(&key))
    }
}

/// How long a replica that lost the Lease waits for its in-flight reconciles (which cannot write
/// anything any more) before it exits anyway.
const STEP_DOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the controller until SIGTERM/Ctrl-C (exit 0) or a lost Lease (exit 1).
pub async fn run(args: ControllerArgs) -> anyhow::Result<u8> {
    // Read once, first: a missing or broken CA file fails the start, naming the file.
    let extra_ca = args.extra_ca.load()?;
    if let Some(ca) = &extra_ca {
        info!(file = %ca.path().display(), certificates = ca.certificates().len(),
            "trusting extra CA certificates (Clever, SMTP, Postgres) besides the bundled roots");
    }
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    let db = crate::store::connect_with_ca(
        &args.database_url,
        8,
        &crate::store::SessionLimits::default(),
        extra_ca.as_ref(),
    )
    .await
    .context("cannot connect to Postgres")?;
    crate::store::migrate(&db)
        .await
        .context("cannot migrate the database")?;
    if let Some(products) = &args.licensed_products {
        let products: Vec<String> = products
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let changed = crate::store::journeys::set_licensed_products(&db, &products)
            .await
            .context("cannot record the licensed products")?;
        tracing::info!(products = %products.join(","), changed, "licensed products");
    }
    let tenants = match args.database_tenancy {
        crate::store::tenancy::Tenancy::Shared => None,
        crate::store::tenancy::Tenancy::Dedicated => Some(tenancy::Tenants {
            prepared: crate::store::tenancy::prepare(&db)
                .await
                .context("cannot prepare the district database roles")?,
            owner_url: args.database_url.clone(),
        }),
    };
    // Read (and validated) before anything else, so a broken SMTP setting fails the start.
    let mut notify = args.notify.clone();
    if let Some(secret) = notify.smtp_secret.as_mut()
        && !secret.contains('/')
    {
        // A bare name (as the Helm chart passes it) is in the controller's own namespace.
        *secret = format!("{}/{secret}", args.lease_namespace);
    }
    let smtp = notify
        .smtp_config(&client)
        .await
        .context("cannot read the SMTP configuration")?
        .map(|cfg| cfg.with_extra_ca(extra_ca.clone()));
    let sender = match &smtp {
        Some(cfg) => Some(
            crate::notify::Sender::new(db.clone(), cfg, crate::notify::SenderOptions::default())
                .context("cannot set up the email sender")?,
        ),
        None => {
            info!(
                "no SMTP configured (--smtp-secret or --smtp-host): emails are queued in the \
                 outbox (email_outbox) but not sent until SMTP is configured"
            );
            None
        }
    };
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let mut namespaces = args.namespaces.clone();
    namespaces.sort();
    namespaces.dedup();
    let metrics = Arc::new(Metrics::default());
    let (addr, server) = metrics::serve(args.metrics_addr, metrics.clone(), db.clone())
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    info!(%addr, "admin server listening (/metrics, /healthz, /readyz)");
    tokio::spawn(server);
    if let Some(ui_addr) = args.ui_addr {
        let clock = Clock::with_offset(jiff::SignedDuration::from_secs(args.clock_offset_seconds));
        let state = crate::ui::UiState::new(client.clone(), db.clone(), namespaces.clone(), clock);
        let (addr, server) = crate::ui::serve(ui_addr, state)
            .await
            .with_context(|| format!("cannot listen on --ui-addr {ui_addr}"))?;
        info!(%addr, "status UI listening (/, /api/v1)");
        tokio::spawn(server);
    }
    // Readiness means "can serve and take over", not "is the leader": every replica, a standby
    // too, proves that it can list everything it would watch (API reachable, RBAC complete);
    // /readyz checks the database on each probe.
    watch::spawn_readiness(&client, &namespaces, metrics.clone());

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(watch::shutdown_on_signals(shutdown_tx.clone()));
    let mut leadership = None;
    let acting = if args.leader_elect {
        let timing = leader::LeaseTiming::new(
            args.lease_duration_seconds,
            args.lease_renew_deadline_seconds,
            args.lease_retry_period_seconds,
        )
        .map_err(anyhow::Error::msg)?;
        metrics.set_leader(false);
        let held = match leader::acquire(
            &client,
            &args.lease_name,
            &args.lease_namespace,
            &identity,
            timing,
            shutdown_rx.clone(),
        )
        .await?
        {
            Some(held) => held,
            None => return Ok(0),
        };
        let acting = held.acting();
        leadership = Some(held);
        acting
    } else {
        leader::Acting::always()
    };
    metrics.set_leader(true);
    let clock = Clock::with_offset(jiff::SignedDuration::from_secs(args.clock_offset_seconds));
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "rostersync-controller".into(),
                instance: Some(identity.clone()),
            },
        ),
        metrics: metrics.clone(),
        clock,
        db,
        job_config: JobConfig {
            image: args.sync_image.clone(),
            command: args.sync_command.clone(),
            service_account: args.sync_service_account.clone(),
            database_secret: args.database_secret.clone(),
            database_secret_key: args.database_secret_key.clone(),
            tenancy: args.database_tenancy,
            defaults: args.sync_job_defaults.clone(),
            allowed_api_hosts: crate::clever::AllowedApiHosts::new(args.allowed_api_hosts.clone()),
            ca_bundle: args.sync_ca_bundle_configmap.clone(),
            log_env: crate::telemetry::inherited_env(),
        },
        extra_ca,
        tenants,
        recheck_interval: Duration::from_secs(args.recheck_interval_seconds.max(1)),
        verified: Mutex::default(),
        failures: Mutex::default(),
        email_repeat_interval: args.notify.email_repeat_interval,
        acting: acting.clone(),
        started: clock.now(),
        verify_jitter: Duration::from_secs(args.verify_startup_jitter_seconds),
        verify_pacer: pace::Pacer::new(args.verify_rate_per_second),
        lost_run_grace: Duration::from_secs(args.lost_run_grace_seconds),
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        failures_before_not_ready: args.failures_before_not_ready,
        sync_slots: schedule::SyncSlots::new(
            args.slot_jitter_seconds,
            args.max_concurrent_syncs,
            namespaces.clone(),
        ),
        policy_stores: std::sync::RwLock::default(),
        secret_stores: std::sync::RwLock::default(),
    });
    let lease_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(held) = &leadership {
        let mut lost = held.subscribe();
        let mut stopping = shutdown_rx.clone();
        let (tx, flag, metrics) = (shutdown_tx.clone(), lease_lost.clone(), metrics.clone());
        tokio::spawn(async move {
            let lost = tokio::select! {
                // An error means the renewing task ended: that is a loss too.
                r = lost.wait_for(Option::is_some) => { drop(r); true }
                // Shutting down: the Lease is released below.
                _ = stopping.wait_for(|stop| *stop) => false,
            };
            if lost {
                // The token is revoked already (nothing is written from here on); stop the
                // controllers, and exit even if an in-flight reconcile hangs.
                metrics.set_leader(false);
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = tx.send(true);
                tokio::time::sleep(STEP_DOWN_TIMEOUT).await;
                tracing::error!(
                    timeout = ?STEP_DOWN_TIMEOUT,
                    "in-flight reconciles did not finish after the Lease was lost; exiting now"
                );
                std::process::exit(1);
            }
        });
    }
    let watched = if namespaces.is_empty() {
        "all".to_string()
    } else {
        namespaces.join(",")
    };
    info!(namespaces = %watched, %identity, leader_elect = args.leader_elect, "controller starting");
    // Only the acting replica (the Lease holder with --leader-elect) sends; several senders would
    // be safe too (each message is claimed with FOR UPDATE SKIP LOCKED), e.g. during a handover.
    let sender = sender.map(|s| {
        let gate = acting.clone();
        tokio::spawn(
            s.with_gate(Arc::new(move || gate.may_act()))
                .run(watch::shutdown_future(shutdown_rx.clone())),
        )
    });
    tokio::spawn(tenancy::prune_history_forever(
        ctx.db.clone(),
        args.history_retention,
        acting.clone(),
        shutdown_rx.clone(),
    ));
    watch::run_controllers(ctx, &namespaces, shutdown_rx).await;
    if let Some(sender) = sender {
        let _ = shutdown_tx.send(true);
        // It finishes the message in flight (bounded by the SMTP timeout), then stops.
        let _ = sender.await;
    }
    if let Some(held) = leadership {
        // Every in-flight reconcile has finished: free the Lease, so that a standby takes it at
        // its next check instead of waiting for the last renewal to expire.
        metrics.set_leader(false);
        held.release().await;
    }
    info!("controller stopped");
    Ok(u8::from(
        lease_lost.load(std::sync::atomic::Ordering::Relaxed),
    ))
}

/// Parses one `--namespace` value (a DNS-1123 label, as Kubernetes requires of namespace names).
fn namespace_name(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(value.to_string())
    } else if value.is_empty() {
        Err("a namespace name cannot be empty (look for a stray comma)".into())
    } else {
        Err(format!(
            "{value:?} is not a namespace name: use lowercase letters, digits and '-', at most 63 \
             characters, starting and ending with a letter or digit"
        ))
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rostersync".into());
    format!("{host}-{}", std::process::id())
}
