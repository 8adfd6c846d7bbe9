//! The commands of `kubectl roster`, against the API server (and Postgres for `history`): one
//! module per command group; this one dispatches and resolves NAME to a SyncSchedule.
mod admin;
mod district_id;
mod history;
mod schedule;
mod status;
mod sync_now;

pub use sync_now::{Outcome, sync_now_outcome};

use anyhow::{Context as _, bail};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{PluginCli, PluginCommand};
use crate::api::SyncSchedule;

/// The field manager of the plugin's patches.
const FIELD_MANAGER: &str = "kubectl-roster";

pub(super) async fn run(cli: PluginCli) -> anyhow::Result<u8> {
    match cli.command {
        PluginCommand::Admin(command) => return admin::run(command, cli.namespace).await,
        PluginCommand::DistrictId { link } => return district_id::district_id(&link),
        _ => {}
    }
    let client = Client::try_default()
        .await
        .context("cannot reach the cluster: check KUBECONFIG / the current kubectl context")?;
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    match cli.command {
        PluginCommand::Status {
            name,
            all_namespaces,
        } => status::status(&client, &ns, name.as_deref(), all_namespaces).await,
        PluginCommand::SyncNow {
            name,
            wait,
            timeout,
        } => sync_now::sync_now(&client, &ns, &name, wait, timeout).await,
        PluginCommand::History { name, limit } => {
            history::history(&client, &ns, &name, limit).await
        }
        PluginCommand::Suspend { name } => schedule::set_suspend(&client, &ns, &name, true).await,
        PluginCommand::Resume { name } => schedule::set_suspend(&client, &ns, &name, false).await,
        PluginCommand::Approve { name, run_id } => {
            schedule::approve(&client, &ns, &name, &run_id).await
        }
        PluginCommand::Preview { name, count } => {
            schedule::preview(&client, &ns, &name, count).await
        }
        // Handled before connecting (above); kept for exhaustiveness.
        PluginCommand::Admin(command) => admin::run(command, Some(ns)).await,
        PluginCommand::DistrictId { link } => district_id::district_id(&link),
    }
}

/// The SyncSchedule named `name`, or the single one whose connectionRef is `name`.
async fn resolve_schedule(client: &Client, ns: &str, name: &str) -> anyhow::Result<SyncSchedule> {
    let api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    if let Some(s) = api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read SyncSchedule {ns}/{name}"))?
    {
        return Ok(s);
    }
    let all = api
        .list(&ListParams::default())
        .await
        .context("cannot list SyncSchedules (are the rostersync CRDs installed?)")?
        .items;
    let mut matching: Vec<SyncSchedule> = all
        .into_iter()
        .filter(|s| s.spec.connection_ref.name == name)
        .collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => bail!(
            "no SyncSchedule named {name:?} (nor one for a RosterConnection {name:?}) in namespace {ns}; \
             see `kubectl roster status -n {ns}`"
        ),
        _ => {
            let names: Vec<String> = matching.iter().map(|s| s.name_any()).collect();
            bail!(
                "RosterConnection {name:?} has several SyncSchedules ({}); name one of them",
                names.join(", ")
            )
        }
    }
}

/// Sets annotation `key` to `value` on SyncSchedule `ns/name` (how Sync Now and approvals are asked).
async fn annotate(
    client: &Client,
    ns: &str,
    name: &str,
    key: &str,
    value: &str,
) -> anyhow::Result<()> {
    let api: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&patch),
    )
    .await
    .with_context(|| format!("cannot annotate SyncSchedule {ns}/{name}"))?;
    Ok(())
}
