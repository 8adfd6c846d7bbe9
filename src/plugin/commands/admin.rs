//! `kubectl roster problems|match|journeys|rollover`: the admin verbs of `rostersync` (same
//! arguments and output, `crate::admin`), with NAME completed by -n or the kubeconfig's namespace.
use crate::admin::AdminCommand;

pub(super) async fn run(command: AdminCommand, namespace: Option<String>) -> anyhow::Result<u8> {
    let namespace = match namespace {
        Some(ns) => Some(ns),
        // Only needed for a bare NAME; a kubeconfig is not required for NAMESPACE/NAME.
        None => kube::Config::infer()
            .await
            .ok()
            .map(|c| c.default_namespace),
    };
    crate::admin::run(command, namespace.as_deref()).await
}
