//! Leader election on a Lease (`--leader-elect`): the controllers start only once this replica
//! holds the Lease, and the process stops when it loses it, so two replicas never both act.
//! A standby serves `/metrics` and is Ready while it waits (readiness does not depend on the
//! Lease), and a graceful stop releases the Lease, so that the standby takes it at its next check
//! instead of waiting for the last renewal to expire.
//! (Deterministic Job names already make a double run impossible; the Lease avoids duplicate
//! Events and status writes too.)
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::ControllerArgs;

/// How long a stopping leader waits for the Lease to be released before it exits anyway (the
/// standby then takes over once the Lease expires).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a free Lease before logging that this replica stands by.
const STANDBY_NOTICE: Duration = Duration::from_secs(3);

type LeaseTask = JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>;

/// This replica holds the Lease; the background task renews it.
pub struct Leadership {
    held: watch::Receiver<bool>,
    task: LeaseTask,
    lease: String,
}

impl Leadership {
    /// A receiver whose value turns `false` when the Lease is lost (and whose channel closes if
    /// the renewing task ends). Drop it before [`Leadership::release`].
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.held.clone()
    }

    /// Releases the Lease (when still held) and waits, bounded, for that to be written.
    pub async fn release(self) {
        let Leadership { held, task, lease } = self;
        // The renewing task releases the Lease once every receiver is gone.
        drop(held);
        match tokio::time::timeout(RELEASE_TIMEOUT, task).await {
            Ok(Ok(Ok(_))) => info!(%lease, "released the leader Lease"),
            Ok(Ok(Err(err))) => {
                warn!(%lease, error = %err, "cannot release the leader Lease; it expires on its own")
            }
            Ok(Err(err)) => {
                warn!(%lease, error = %err, "the leader election task failed; the Lease expires on its own")
            }
            Err(_) => warn!(
                %lease,
                timeout = ?RELEASE_TIMEOUT,
                "releasing the leader Lease takes too long; it expires on its own"
            ),
        }
    }
}

/// Waits until this replica holds the Lease. Returns `None` if shutdown was requested while
/// waiting.
pub async fn acquire(
    client: &Client,
    args: &ControllerArgs,
    identity: &str,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<Leadership>> {
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(identity)
        .with_duration(15)
        .with_grace(5)
        // One field manager per replica: server-side apply then reports a conflict on
        // holderIdentity when two replicas race for a free Lease. A shared manager name would let
        // both writes succeed, and both replicas would believe they lead.
        .with_field_manager(format!("rostersync-controller-lease-{identity}"))
        .build()
        .await
        .with_context(|| {
            format!(
                "cannot set up leader election on Lease {}/{} (the controller needs create, get, \
                 update and patch on it)",
                args.lease_namespace, args.lease_name
            )
        })?;
    let (mut held, task) = manager.watch().await;
    info!(lease = %args.lease_name, namespace = %args.lease_namespace, %identity, "waiting for the leader Lease");
    // A free Lease is taken within moments; after that, say who holds it (for the logs only).
    let quick = tokio::select! {
        r = tokio::time::timeout(STANDBY_NOTICE, held.wait_for(|h| *h)) => match r {
            Ok(r) => { r.context("leader election stopped")?; true }
            Err(_) => false,
        },
        _ = shutdown.wait_for(|s| *s) => return Ok(None),
    };
    if !quick {
        let holder = Api::<Lease>::namespaced(client.clone(), &args.lease_namespace)
            .get_opt(&args.lease_name)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .unwrap_or_else(|| "unknown".into());
        info!(
            lease = %args.lease_name,
            %holder,
            "standing by: Ready to take over, not acting while another replica holds the Lease"
        );
        tokio::select! {
            r = held.wait_for(|h| *h) => { r.context("leader election stopped")?; }
            _ = shutdown.wait_for(|s| *s) => return Ok(None),
        }
    }
    info!(lease = %args.lease_name, %identity, "acquired the leader Lease: this replica acts");
    Ok(Some(Leadership {
        held,
        task,
        lease: format!("{}/{}", args.lease_namespace, args.lease_name),
    }))
}
