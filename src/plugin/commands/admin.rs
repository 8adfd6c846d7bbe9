//! `kubectl roster problems|match|journeys|rollover`: the admin verbs of `rostersync` (same
//! arguments and output, `crate::admin`), with NAME completed by -n or the kubeconfig's namespace.
use crate::admin::AdminCommand;
use crate::plugin::GlobalArgs;

pub(super) async fn run(command: AdminCommand, global: &GlobalArgs) -> anyhow::Result<u8> {
    let namespace = match &global.namespace {
        Some(ns) => Some(ns.clone()),
        // Only needed for a bare NAME; a kubeconfig is not required for NAMESPACE/NAME.
        None => super::client_config(global)
            .await
            .ok()
            .map(|c| c.default_namespace),
    };
    crate::admin::run(command, namespace.as_deref(), global.utc).await
}
