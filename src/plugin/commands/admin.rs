//! `kubectl roster problems|match|journeys|rollover`: the admin verbs of `rostersync` (same
//! arguments and output, `crate::admin`), with NAME completed by -n or the kubeconfig's namespace.
//! `problems` without a database URL reads the status UI's API as the kubeconfig's user.
use anyhow::Context as _;

use crate::admin::{AdminCommand, ProblemsArgs};
use crate::plugin::GlobalArgs;
use crate::store::problems::ProblemRow;

pub(super) async fn run(command: AdminCommand, global: &GlobalArgs) -> anyhow::Result<u8> {
    let namespace = match &global.namespace {
        Some(ns) => Some(ns.clone()),
        // Only needed for a bare NAME; a kubeconfig is not required for NAMESPACE/NAME.
        None => super::client_config(global)
            .await
            .ok()
            .map(|c| c.default_namespace),
    };
    match command {
        AdminCommand::Problems(args) if args.common.database_url.is_none() => {
            problems_through_ui(&args, namespace.as_deref(), global).await
        }
        command => crate::admin::run(command, namespace.as_deref(), global.utc).await,
    }
}

/// `problems` through the status UI (`ROSTERSYNC_UI_URL`, else a port-forward to its Service):
/// the same rows as from the database, with the user's own permissions.
async fn problems_through_ui(
    args: &ProblemsArgs,
    namespace: Option<&str>,
    global: &GlobalArgs,
) -> anyhow::Result<u8> {
    let key = crate::admin::connection_key(&args.common.connection, namespace)?;
    let config = super::client_config(global).await?;
    let client = kube::Client::try_from(config.clone()).context(
        "cannot build the API client from the kubeconfig: check --kubeconfig / --context",
    )?;
    let url = std::env::var(crate::ui::client::UI_URL_ENV).ok();
    let url = crate::ui::client::resolve_url(&client, url.as_deref()).await?;
    let answer = crate::ui::client::UiClient::with_config(config, &url)?
        .problems(key.namespace(), key.name(), args.run_id.as_deref())
        .await
        .with_context(|| {
            format!("cannot read the problems of {key} through the status UI at {url}")
        })?;
    let Some(run_id) = answer.run_id else {
        anyhow::bail!("{key} has no finished run yet");
    };
    if !args.common.output.is_machine() {
        eprintln!("run {run_id} of {key} (through the status UI)");
    }
    let rows: Vec<ProblemRow> = answer
        .items
        .into_iter()
        .map(|p| ProblemRow {
            run_id: run_id.clone(),
            code: p.code,
            record_kind: p.record_kind,
            clever_id: p.clever_id,
            message: p.message,
            what_to_do: p.what_to_do,
        })
        .collect();
    crate::admin::print::rows(&rows, args.common.output, global.utc, "no problems")?;
    Ok(crate::output::exit::OK)
}
