//! Leader election on a Lease (`--leader-elect`): the controllers start only once this replica
//! holds the Lease, and the process stops when it loses it, so two replicas never both act.
//! (Deterministic Job names already make a double run impossible; the Lease avoids duplicate
//! Events and status writes too.)
use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::info;

use super::ControllerArgs;

/// Waits until this replica holds the Lease. Returns a receiver that turns `false` when the Lease
/// is lost, or `None` if shutdown was requested while waiting.
pub async fn acquire(
    client: &Client,
    args: &ControllerArgs,
    identity: &str,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<watch::Receiver<bool>>> {
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
        .context("cannot set up leader election")?;
    let (mut held, task) = manager.watch().await;
    // Keep the task alive for the life of the process (it renews the Lease).
    tokio::spawn(async move {
        let _ = task.await;
    });
    info!(lease = %args.lease_name, namespace = %args.lease_namespace, %identity, "waiting for the leader Lease");
    tokio::select! {
        r = held.wait_for(|h| *h) => { r.context("leader election stopped")?; }
        _ = shutdown.wait_for(|s| *s) => return Ok(None),
    }
    info!("acquired the leader Lease");
    Ok(Some(held))
}
