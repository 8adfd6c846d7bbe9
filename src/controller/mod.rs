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
mod leader;
pub mod metrics;
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
    /// Tests only: shift the controller's clock by this many seconds.
    #[arg(long, default_value_t = 0, hide = true, allow_hyphen_values = true)]
    pub clock_offset_seconds: i64,
    /// Emails: SMTP (`--smtp-secret` or `--smtp-*`) and `--email-repeat-interval`. Without SMTP,
    /// emails are still queued in the outbox, and sent once SMTP is configured. A bare
    /// `--smtp-secret NAME` is in the controller's namespace (`POD_NAMESPACE`).
    #[command(flatten)]
    pub notify: crate::notify::NotifyArgs,
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
    pub email_repeat_interval: chrono::Duration,
    /// Dedicated tenancy: the district roles (`None` in shared tenancy).
    pub tenants: Option<tenancy::Tenants>,
}

/// Runs the controller until SIGTERM/Ctrl-C (exit 0) or a lost Lease (exit 1).
pub async fn run(args: ControllerArgs) -> anyhow::Result<u8> {
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    let db = crate::store::connect(&args.database_url, 8)
        .await
        .context("cannot connect to Postgres")?;
    crate::store::migrate(&db)
        .await
        .context("cannot migrate the database")?;
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
        .context("cannot read the SMTP configuration")?;
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
    // Readiness means "can serve and take over", not "is the leader": every replica, a standby
    // too, proves that it can list everything it would watch (API reachable, RBAC complete);
    // /readyz checks the database on each probe.
    watch::spawn_readiness(&client, &namespaces, metrics.clone());

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(watch::shutdown_on_signals(shutdown_tx.clone()));
    let mut leadership = None;
    if args.leader_elect {
        metrics.set_leader(false);
        match leader::acquire(&client, &args, &identity, shutdown_rx.clone()).await? {
            Some(held) => leadership = Some(held),
            None => return Ok(0),
        }
    }
    metrics.set_leader(true);
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
        clock: Clock::with_offset(jiff::SignedDuration::from_secs(args.clock_offset_seconds)),
        db,
        job_config: JobConfig {
            image: args.sync_image.clone(),
            command: args.sync_command.clone(),
            service_account: args.sync_service_account.clone(),
            database_secret: args.database_secret.clone(),
            database_secret_key: args.database_secret_key.clone(),
            tenancy: args.database_tenancy,
            defaults: args.sync_job_defaults.clone(),
        },
        tenants,
        recheck_interval: Duration::from_secs(args.recheck_interval_seconds.max(1)),
        verified: Mutex::default(),
        failures: Mutex::default(),
        email_repeat_interval: args.notify.email_repeat_interval,
    });
    let lease_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(held) = &leadership {
        let mut lost = held.subscribe();
        let mut stopping = shutdown_rx.clone();
        let (tx, flag, metrics) = (shutdown_tx.clone(), lease_lost.clone(), metrics.clone());
        tokio::spawn(async move {
            tokio::select! {
                // An error means the Lease task ended: that is a loss too.
                _ = lost.wait_for(|held| !*held) => {
                    tracing::error!("lost the leader Lease: stopping so that only the holder acts");
                    metrics.set_leader(false);
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    let _ = tx.send(true);
                }
                // Shutting down: drop the receiver, so that the Lease can be released.
                _ = stopping.wait_for(|stop| *stop) => {}
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
    let sender = sender.map(|s| tokio::spawn(s.run(watch::shutdown_future(shutdown_rx.clone()))));
    tokio::spawn(tenancy::prune_history_forever(
        ctx.db.clone(),
        args.history_retention,
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
