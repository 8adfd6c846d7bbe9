//! `kubectl roster status`: one table across RosterConnections, SyncSchedules and JourneyPolicies.
use anyhow::{Context as _, bail};
use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::api::{JourneyPolicy, RosterConnection, SyncSchedule};
use crate::plugin::format::status_table;

pub async fn status(
    client: &Client,
    ns: &str,
    name: Option<&str>,
    all: bool,
) -> anyhow::Result<u8> {
    fn api<K>(client: &Client, ns: &str, all: bool) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        if all {
            Api::all(client.clone())
        } else {
            Api::namespaced(client.clone(), ns)
        }
    }
    let lp = ListParams::default();
    let keep = |n: String| name.is_none_or(|want| want == n);
    let mut connections = api::<RosterConnection>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list RosterConnections (are the rostersync CRDs installed?)")?
        .items;
    connections.retain(|o| keep(o.name_any()));
    let mut schedules = api::<SyncSchedule>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list SyncSchedules")?
        .items;
    // With a NAME, a connection's schedules come along (they may be named differently).
    schedules.retain(|o| {
        keep(o.name_any())
            || name.is_some_and(|n| {
                o.spec.connection_ref.name == n
                    && connections
                        .iter()
                        .any(|c| c.namespace() == o.namespace() && c.name_any() == n)
            })
    });
    let mut policies = api::<JourneyPolicy>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list JourneyPolicies")?
        .items;
    policies.retain(|o| keep(o.name_any()));
    if let Some(name) = name
        && connections.is_empty()
        && schedules.is_empty()
        && policies.is_empty()
    {
        bail!(
            "no RosterConnection, SyncSchedule or JourneyPolicy named {name:?} in namespace {ns}"
        );
    }
    print!(
        "{}",
        status_table(&connections, &schedules, &policies, all, Timestamp::now())
    );
    Ok(0)
}
