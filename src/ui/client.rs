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
    pub trigger: Trigger,
    pub result: RunResult,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub summary: String,
    #[serde(default)]
    pub problems: u64,
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
