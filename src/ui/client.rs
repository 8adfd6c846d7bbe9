//! The status UI's API as the plugin uses it (`kubectl roster history` without `DATABASE_URL`,
//! `problems`, `dashboard`): requests go to the UI's URL with the user's own bearer token, taken
//! from their kubeconfig the way kubectl takes it (a token, a token file, an exec plugin or an auth
//! provider, refreshed by kube's auth layer), so the user sees exactly what their RBAC allows.
use anyhow::{Context as _, bail};
use axum::http::{Request, StatusCode, Uri};
use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::{RunResult, Trigger};

/// The environment variable naming the UI's URL (like `--ui-url`).
pub const UI_URL_ENV: &str = "ROSTERSYNC_UI_URL";

/// A run as the API returns it (the fields the plugin prints; the API has every column).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiRun {
    pub run_id: String,
    /// `namespace/name` of the RosterConnection.
    pub connection: String,
    pub trigger: Trigger,
    #[serde(default)]
    pub dry_run: bool,
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub counts: crate::run::Counts,
    pub result: RunResult,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub summary: String,
    #[serde(default)]
    pub problems: u64,
    #[serde(default)]
    pub problem_codes: crate::run::ProblemCodes,
    pub reason: Option<String>,
}

/// A per-record problem as the API returns it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiProblem {
    pub record_kind: String,
    pub clever_id: Option<String>,
    pub code: String,
    pub message: String,
    pub what_to_do: String,
}

/// The problems of one run.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiProblems {
    /// `None` when the connection has no finished run.
    pub run_id: Option<String>,
    pub items: Vec<ApiProblem>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
}

/// A client of the status UI that authenticates as the kubeconfig's user.
#[derive(Clone)]
pub struct UiClient {
    client: kube::Client,
    url: Uri,
}

/// Whether a kubeconfig user has a bearer credential (what the UI accepts).
fn has_bearer_credential(auth: &kube::config::AuthInfo) -> bool {
    auth.token.is_some()
        || auth.token_file.is_some()
        || auth.exec.is_some()
        || auth.auth_provider.is_some()
}

impl UiClient {
    /// From the current kubeconfig context (KUBECONFIG, `~/.kube/config`, or in-cluster).
    pub async fn from_kubeconfig(ui_url: &str) -> anyhow::Result<UiClient> {
        let config = kube::Config::infer()
            .await
            .context("cannot read your kubeconfig (KUBECONFIG or ~/.kube/config)")?;
        UiClient::with_config(config, ui_url)
    }

    /// From `config` (its user's credentials), sending requests to `ui_url` instead of the API
    /// server.
    pub fn with_config(mut config: kube::Config, ui_url: &str) -> anyhow::Result<UiClient> {
        let url: Uri = ui_url
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("--ui-url {ui_url:?} is not a URL"))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            bail!("--ui-url {ui_url:?} must be an http:// or https:// URL with a host");
        }
        if !has_bearer_credential(&config.auth_info) {
            bail!(
                "your kubeconfig user has no bearer token (it authenticates with a client \
                 certificate or a password): the status UI accepts bearer tokens only, as issued \
                 by an exec/OIDC plugin or a ServiceAccount token"
            );
        }
        config.cluster_url = url.clone();
        // The API server's CA and TLS name do not apply to the UI (a port-forward or an Ingress
        // with a public certificate); impersonation is for the API server only.
        config.root_cert = None;
        config.root_cert_file = None;
        config.tls_server_name = None;
        config.auth_info.impersonate = None;
        config.auth_info.impersonate_uid = None;
        config.auth_info.impersonate_groups = None;
        config.auth_info.impersonate_user_extra = None;
        let client = kube::Client::try_from(config).context("cannot build a client for the UI")?;
        Ok(UiClient { client, url })
    }

    /// The UI's URL.
    pub fn url(&self) -> &Uri {
        &self.url
    }

    /// GET `path_and_query` with the user's token: the status and the body.
    pub async fn get(&self, path_and_query: &str) -> anyhow::Result<(StatusCode, bytes::Bytes)> {
        let request = Request::get(path_and_query)
            .header("accept", "application/json")
            .body(kube::client::Body::empty())
            .context("cannot build the request")?;
        let response = self
            .client
            .send(request)
            .await
            .with_context(|| format!("cannot reach the status UI at {}", self.url))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .with_context(|| format!("cannot read the answer of the status UI at {}", self.url))?;
        Ok((status, body))
    }

    /// The kube client whose requests go to the UI with the user's token (for the dashboard proxy).
    pub fn raw(&self) -> &kube::Client {
        &self.client
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let (status, body) = self.get(path).await?;
        if !status.is_success() {
            let why = serde_json::from_slice::<ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
            bail!("the status UI answered {status}: {why}");
        }
        serde_json::from_slice(&body).with_context(|| {
            format!("the status UI's answer to {path} is not what this plugin expects")
        })
    }

    /// The newest `limit` runs of RosterConnection `ns/name`.
    pub async fn history(&self, ns: &str, name: &str, limit: u16) -> anyhow::Result<Vec<ApiRun>> {
        let path = format!("/api/v1/districts/{ns}/{name}/runs?limit={limit}");
        Ok(self.get_json::<Items<ApiRun>>(&path).await?.items)
    }

    /// The problems of run `run_id` (default: the latest finished run) of RosterConnection
    /// `ns/name`.
    pub async fn problems(
        &self,
        ns: &str,
        name: &str,
        run_id: Option<&str>,
    ) -> anyhow::Result<ApiProblems> {
        let mut path = format!("/api/v1/districts/{ns}/{name}/problems");
        if let Some(run) = run_id {
            let encoded: String = url::form_urlencoded::byte_serialize(run.as_bytes()).collect();
            path.push_str(&format!("?run={encoded}"));
        }
        self.get_json(&path).await
    }
}

/// Where the chart puts the UI: the Service `rostersync-ui` of a release `rostersync` in namespace
/// `rostersync` (override with `--ui-namespace` / `--ui-service`, or env).
pub const DEFAULT_UI_NAMESPACE: &str = "rostersync";
pub const DEFAULT_UI_SERVICE: &str = "rostersync-ui";
/// The environment variables naming them.
pub const UI_NAMESPACE_ENV: &str = "ROSTERSYNC_UI_NAMESPACE";
pub const UI_SERVICE_ENV: &str = "ROSTERSYNC_UI_SERVICE";

/// A port-forward to a ready pod behind the UI Service `ns/service`, as the kubeconfig's user
/// (like `kubectl port-forward svc/...`): a listener on 127.0.0.1 whose every connection opens
/// its own forward. Returns the local URL; the listener lives as long as the process.
pub async fn port_forward(
    client: &kube::Client,
    ns: &str,
    service: &str,
) -> anyhow::Result<String> {
    use k8s_openapi::api::core::v1::{Pod, Service};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use kube::api::{Api, ListParams};

    let hint = format!(
        "is the operator chart installed in namespace {ns} with ui.enabled? Give \
         --ui-namespace/--ui-service ({UI_NAMESPACE_ENV}/{UI_SERVICE_ENV}), or --ui-url \
         ({UI_URL_ENV}) for an Ingress"
    );
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get_opt(service)
        .await
        .with_context(|| format!("cannot read Service {ns}/{service}"))?
        .with_context(|| format!("there is no Service {ns}/{service}: {hint}"))?;
    let spec = svc.spec.unwrap_or_default();
    let selector = spec
        .selector
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if selector.is_empty() {
        bail!("Service {ns}/{service} selects no pods: {hint}");
    }
    let target = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .next()
        .and_then(|p| p.target_port.or(Some(IntOrString::Int(p.port))))
        .with_context(|| format!("Service {ns}/{service} has no port"))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let pod = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("cannot list the pods of Service {ns}/{service}"))?
        .items
        .into_iter()
        .find(ready)
        .with_context(|| format!("no ready pod behind Service {ns}/{service}: {hint}"))?;
    let port = match target {
        IntOrString::Int(p) => p,
        IntOrString::String(name) => pod
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .with_context(|| format!("the UI pod has no port named {name:?}"))?,
    };
    let port = u16::try_from(port).with_context(|| format!("invalid UI port {port}"))?;
    let pod_name = pod.metadata.name.unwrap_or_default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot listen on 127.0.0.1 for the port-forward")?;
    let local = listener
        .local_addr()
        .context("cannot read the local address")?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (pods, pod_name) = (pods.clone(), pod_name.clone());
            tokio::spawn(async move {
                let mut forward = match pods.portforward(&pod_name, &[port]).await {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(pod = %pod_name, error = %e, "port-forward failed");
                        return;
                    }
                };
                if let Some(mut upstream) = forward.take_stream(port) {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                }
                forward.abort();
            });
        }
    });
    Ok(format!("http://{local}"))
}

/// The UI's URL: `ui_url` when given, else a port-forward to the UI Service (namespace and name
/// from the environment or the chart's defaults).
pub async fn resolve_url(client: &kube::Client, ui_url: Option<&str>) -> anyhow::Result<String> {
    if let Some(url) = ui_url {
        return Ok(url.to_string());
    }
    let ns = std::env::var(UI_NAMESPACE_ENV).unwrap_or_else(|_| DEFAULT_UI_NAMESPACE.into());
    let service = std::env::var(UI_SERVICE_ENV).unwrap_or_else(|_| DEFAULT_UI_SERVICE.into());
    port_forward(client, &ns, &service).await
}
