//! A small stand-in for a kubelet, for tests and the local demo: it runs the Pending pods of
//! rostersync's Jobs as local processes and reports their status, so that the real Job controller
//! completes or fails the Jobs (honouring backoffLimit, podFailurePolicy and activeDeadlineSeconds).
//!
//! What it does, like a kubelet: resolves the container's env (plain values, `secretKeyRef`,
//! `configMapKeyRef`, `fieldRef` to the pod's name/namespace), runs `command` + `args` with only that
//! env (plus PATH and HOME), marks the pod Running, then Succeeded or Failed with the container's exit
//! code, and kills the process (TERM, then KILL) when the pod is deleted. What it does not do: images,
//! volumes, resource limits, probes. The executable named in the container (for example
//! `rostersync`) is mapped to a local path with `--binary NAME=PATH`.
mod env;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

/// Arguments of `rostersync pod-runner`.
#[derive(Debug, clap::Args)]
pub struct PodRunnerArgs {
    /// Only pods in this namespace (default: all namespaces).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Label selector of the pods to run.
    #[arg(long, default_value = "app.kubernetes.io/managed-by=rostersync")]
    pub selector: String,
    /// Map an executable named in a container to a local path, e.g. `rostersync=/path/to/rostersync`.
    /// Unmapped executables are looked up on PATH.
    #[arg(long = "binary", value_parser = parse_mapping)]
    pub binaries: Vec<(String, PathBuf)>,
    /// Directory for the containers' logs (`<namespace>_<pod>.log`).
    #[arg(long, default_value = "/tmp/rostersync-pod-runner")]
    pub log_dir: PathBuf,
    /// Seconds between TERM and KILL when a pod is deleted.
    #[arg(long, default_value_t = 5)]
    pub grace_seconds: u64,
}

fn parse_mapping(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PATH, got {s:?}"))?;
    Ok((name.to_string(), PathBuf::from(path)))
}

/// Pods being run, by uid, with a sender that asks their task to kill the process.
type Running = Arc<Mutex<HashMap<String, watch::Sender<bool>>>>;

/// Runs until the process is stopped.
pub async fn run(args: PodRunnerArgs) -> anyhow::Result<u8> {
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client (KUBECONFIG?)")?;
    let pods: Api<Pod> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    std::fs::create_dir_all(&args.log_dir)
        .with_context(|| format!("cannot create {}", args.log_dir.display()))?;
    let args = Arc::new(args);
    let running: Running = Arc::default();
    info!(selector = %args.selector, "pod runner started");
    // Like a kubelet, a watch error (the API server restarting, a timeout under load, a 410 Gone)
    // is retried with backoff, never the end of the runner: a runner that exits leaves every later
    // pod Pending forever.
    let mut events = watcher(pods, watcher::Config::default().labels(&args.selector))
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                warn!(error = %err, "pod watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                handle(&client, &args, &running, pod)
            }
            watcher::Event::Delete(pod) => stop(&running, &pod),
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
    Ok(0)
}

fn handle(client: &Client, args: &Arc<PodRunnerArgs>, running: &Running, pod: Pod) {
    if pod.metadata.deletion_timestamp.is_some() {
        stop(running, &pod);
        return;
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let uid = pod.uid().unwrap_or_default();
    if phase != "Pending" || uid.is_empty() {
        return;
    }
    let (tx, rx) = watch::channel(false);
    {
        let Ok(mut map) = running.lock() else { return };
        if map.contains_key(&uid) {
            return;
        }
        map.insert(uid.clone(), tx);
    }
    let (client, args, running) = (client.clone(), args.clone(), running.clone());
    tokio::spawn(async move {
        let name = pod.name_any();
        if let Err(err) = run_pod(&client, &args, pod, rx).await {
            warn!(pod = %name, error = %format!("{err:#}"), "cannot run pod");
        }
        if let Ok(mut map) = running.lock() {
            map.remove(&uid);
        }
    });
}

fn stop(running: &Running, pod: &Pod) {
    if let (Some(uid), Ok(map)) = (pod.uid(), running.lock())
        && let Some(tx) = map.get(&uid)
    {
        let _ = tx.send(true);
    }
}

async fn run_pod(
    client: &Client,
    args: &PodRunnerArgs,
    pod: Pod,
    mut killed: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let ns = pod.namespace().unwrap_or_else(|| "default".into());
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
        .context("pod has no container")?;
    // Like a kubelet, a container whose config cannot be resolved (missing Secret) waits and retries.
    let kubeconfig = args.log_dir.join(format!("{ns}_{name}.kubeconfig"));
    let automount = pod
        .spec
        .as_ref()
        .and_then(|s| s.automount_service_account_token)
        .unwrap_or(true);
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let env = loop {
        let resolved = match env::resolve_env(client, &ns, &name, &container).await {
            Ok(mut env) if automount => {
                // Like a kubelet's projected token: the process talks to the API as the pod's
                // ServiceAccount (so its RBAC is what is tested), never as the runner.
                service_account_kubeconfig(client, &ns, &sa, &kubeconfig)
                    .await
                    .map(|()| {
                        env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
                        env
                    })
            }
            other => other,
        };
        match resolved {
            Ok(env) => break env,
            Err(err) => {
                warn!(pod = %name, error = %format!("{err:#}"), "container config not ready; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = killed.changed() => return Ok(()),
                }
            }
        }
    };
    let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
    argv.extend(container.args.clone().unwrap_or_default());
    let program = argv.first().cloned().context("container has no command")?;
    let exe = args
        .binaries
        .iter()
        .find(|(n, _)| *n == program || program.rsplit('/').next() == Some(n.as_str()))
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| PathBuf::from(&program));

    let started = jiff::Timestamp::now().to_string();
    let cname = container.name.clone();
    patch_status(&api, &name, json!({"status": {
        "phase": "Running", "startTime": started,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
        "containerStatuses": [{"name": cname, "image": container.image, "imageID": "", "ready": true,
            "restartCount": 0, "started": true, "state": {"running": {"startedAt": started}}}]
    }}))
    .await?;

    let log_path = args.log_dir.join(format!("{ns}_{name}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    for key in ["PATH", "HOME"] {
        if let (Ok(v), false) = (std::env::var(key), env.contains_key(key)) {
            cmd.env(key, v);
        }
    }
    info!(pod = %format!("{ns}/{name}"), exe = %exe.display(), "starting container");
    let (exit_code, reason) = match cmd.spawn() {
        Err(err) => {
            warn!(pod = %name, error = %err, "cannot start container");
            (128, "StartError")
        }
        Ok(mut child) => {
            let status = tokio::select! {
                status = child.wait() => status?,
                _ = killed.changed() => {
                    terminate(&mut child, Duration::from_secs(args.grace_seconds)).await;
                    info!(pod = %name, "pod deleted; container killed");
                    return Ok(());
                }
            };
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(0), _) => (0, "Completed"),
                (Some(code), _) => (code, "Error"),
                (None, Some(sig)) => (128 + sig, "Error"),
                (None, None) => (1, "Error"),
            }
        }
    };
    let finished = jiff::Timestamp::now().to_string();
    let phase = if exit_code == 0 {
        "Succeeded"
    } else {
        "Failed"
    };
    patch_status(&api, &name, json!({"status": {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": finished, "reason": "PodCompleted"}],
        "containerStatuses": [{"name": cname, "image": container.image, "imageID": "", "ready": false,
            "restartCount": 0, "started": false, "state": {"terminated": {
                "exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": finished}}}]
    }}))
    .await?;
    info!(pod = %format!("{ns}/{name}"), exit_code, "container finished");
    let _ = std::fs::remove_file(&kubeconfig);
    Ok(())
}

/// A one-hour token of ServiceAccount `ns/sa` from the TokenRequest API (what the kubelet projects
/// into a pod).
pub async fn service_account_token(client: &Client, ns: &str, sa: &str) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_subresource::<TokenRequest, TokenRequest>(
            "token",
            sa,
            &Default::default(),
            &request,
        )
        .await
        .with_context(|| format!("cannot get a token for ServiceAccount {ns}/{sa}"))?
        .status
        .and_then(|s| s.token)
        .context("the TokenRequest has no token")
}

/// Writes a kubeconfig at `path` that reaches the runner's API server as ServiceAccount `sa` of
/// `ns` (a token from the TokenRequest API, valid for an hour).
pub async fn service_account_kubeconfig(
    client: &Client,
    ns: &str,
    sa: &str,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let token = service_account_token(client, ns, sa).await?;
    let own = kube::config::Kubeconfig::read().context("cannot read the runner's kubeconfig")?;
    let context = own
        .current_context
        .as_ref()
        .and_then(|c| own.contexts.iter().find(|n| &n.name == c))
        .and_then(|c| c.context.clone())
        .context("the runner's kubeconfig has no current context")?;
    let cluster = own
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .context("the runner's kubeconfig has no cluster for its context")?;
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": sa, "namespace": ns}}],
        "current-context": "pod",
    });
    let text = serde_yaml_ng::to_string(&config)?;
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())?;
    }
    Ok(())
}

async fn terminate(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id() {
        // TERM first so the sync can roll back cleanly; a failure means the process is gone already.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Writes a pod's status, retrying transient failures (a timeout or a 5xx from a loaded API
/// server) for about half a minute: a status never written leaves the Job waiting forever. A pod
/// that no longer exists is not retried.
async fn patch_status(api: &Api<Pod>, name: &str, patch: serde_json::Value) -> anyhow::Result<()> {
    use backon::{ExponentialBuilder, Retryable as _};
    let attempt = || async {
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(10),
        )
        .when(|err| !matches!(err, kube::Error::Api(resp) if resp.code == 404 || resp.code == 422))
        .notify(|err, wait| warn!(pod = %name, error = %err, ?wait, "cannot update pod status; retrying"))
        .await
        .with_context(|| format!("cannot update the status of pod {name}"))?;
    Ok(())
}
