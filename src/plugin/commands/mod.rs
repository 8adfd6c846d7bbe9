//! The commands of `kubectl roster`, against the API server (and Postgres for `history`): one
//! module per command group; this one builds the client from the global flags, dispatches and
//! resolves NAME to a SyncSchedule.
mod admin;
mod dashboard;
mod district_id;
mod events;
mod history;
mod logs;
mod schedule;
mod status;
mod sync_now;

pub use sync_now::{Outcome, sync_now_outcome};

use anyhow::{Context as _, bail};
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::json;

use super::{GlobalArgs, PluginCli, PluginCommand};
use crate::api::SyncSchedule;
use crate::output::{OutputFormat, Printer};

/// The field manager of the plugin's patches.
const FIELD_MANAGER: &str = "kubectl-roster";

/// What every command gets: the client, the namespace, the global flags.
pub(super) struct Ctx {
    pub client: Client,
    pub ns: String,
    pub global: GlobalArgs,
}

impl Ctx {
    /// A printer for `-o format` with the global `--utc`.
    pub fn printer(&self, format: OutputFormat) -> Printer {
        Printer::new(format, self.global.utc)
    }
}

/// The client configuration the global flags describe: `--kubeconfig` (else $KUBECONFIG,
/// ~/.kube/config, in-cluster), `--context`, `--as`, `--as-group`, `--request-timeout`.
pub async fn client_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        cluster: None,
        user: None,
    };
    let mut config = match &global.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("cannot use kubeconfig {}", path.display()))?
        }
        None if global.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .context("cannot use the kubeconfig ($KUBECONFIG or ~/.kube/config)")?,
        None => Config::infer().await.context(
            "cannot find a cluster: no --kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster service account",
        )?,
    };
    if let Some(user) = &global.as_user {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !global.as_group.is_empty() {
        config.auth_info.impersonate_groups = Some(global.as_group.clone());
    }
    if let Some(t) = global.request_timeout {
        config.connect_timeout = Some(t);
        config.read_timeout = Some(t);
        config.write_timeout = Some(t);
    }
    Ok(config)
}

pub(super) async fn run(cli: PluginCli) -> anyhow::Result<u8> {
    // Postgres-only verbs: no cluster needed.
    match cli.command {
        PluginCommand::Admin(command) => return admin::run(command, &cli.global).await,
        PluginCommand::DistrictId { link } => return district_id::district_id(&link),
        _ => {}
    }
    let config = client_config(&cli.global).await?;
    let default_ns = config.default_namespace.clone();
    let client = Client::try_from(config).context(
        "cannot build the API client from the kubeconfig: check --kubeconfig / --context",
    )?;
    let ns = cli.global.namespace.clone().unwrap_or(default_ns);
    let ctx = Ctx {
        client,
        ns,
        global: cli.global,
    };
    let all = ctx.global.all_namespaces;
    match cli.command {
        PluginCommand::Status { name, watch, out } => {
            status::status(&ctx, name.as_deref(), all, watch, out.output).await
        }
        PluginCommand::SyncNow {
            name,
            wait,
            timeout,
            quiet,
            out,
        } => sync_now::sync_now(&ctx, &name, wait, timeout, quiet, out.output).await,
        PluginCommand::History { name, limit, out } => {
            history::history(&ctx, &name, limit, out.output).await
        }
        PluginCommand::Events { name, out } => {
            events::events(&ctx, name.as_deref(), all, out.output).await
        }
        PluginCommand::Dashboard { ui_url, port, open } => {
            dashboard::dashboard(&ctx, ui_url.as_deref(), port, open).await
        }
        PluginCommand::Logs { name, run_id } => logs::logs(&ctx, &name, run_id.as_deref()).await,
        PluginCommand::Suspend { name } => schedule::set_suspend(&ctx, &name, true).await,
        PluginCommand::Resume { name } => schedule::set_suspend(&ctx, &name, false).await,
        PluginCommand::Approve { name, run_id } => schedule::approve(&ctx, &name, &run_id).await,
        PluginCommand::Preview { name, count, out } => {
            schedule::preview(&ctx, &name, count, out.output).await
        }
        PluginCommand::Completion { .. } => Ok(0),
        // Handled before connecting (above); kept for exhaustiveness.
        PluginCommand::Admin(command) => admin::run(command, &ctx.global).await,
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
