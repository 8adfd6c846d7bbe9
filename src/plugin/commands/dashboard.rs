//! `kubectl roster dashboard`: the status pages in a browser, as the kubeconfig's user. A local
//! proxy on 127.0.0.1 adds the user's own bearer token (from the kubeconfig, exec/OIDC plugins
//! included, refreshed by kube's auth layer) to each request and forwards it to the controller's
//! status UI (`--ui-url`, else a port-forward to the UI Service), then prints the local URL (and
//! opens it with `--open`).
use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::ui::client::UiClient;

/// What the proxy forwards to and which Host headers it answers.
#[derive(Clone)]
struct Proxy {
    ui: UiClient,
    /// `127.0.0.1:PORT` and `localhost:PORT`: anything else is refused (DNS rebinding).
    hosts: [String; 2],
}

/// Forwards one GET (or HEAD) to the UI with the user's token. The UI is read-only: other
/// methods are refused here already.
async fn forward(State(p): State<Proxy>, method: Method, headers: HeaderMap, uri: Uri) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !p.hosts.iter().any(|h| h == host) {
        return (
            StatusCode::FORBIDDEN,
            "this local proxy answers only at 127.0.0.1 or localhost",
        )
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "the status pages are read-only",
        )
            .into_response();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = match Request::builder()
        .method(method)
        .uri(path)
        .body(kube::client::Body::empty())
    {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match p.ui.raw().send(request).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("cannot reach the status UI at {}: {e}", p.ui.url()),
        )
            .into_response(),
    }
}

/// Runs the proxy until Ctrl-C.
pub(super) async fn dashboard(
    ctx: &super::Ctx,
    ui_url: Option<&str>,
    port: u16,
    open: bool,
) -> anyhow::Result<u8> {
    // Without --ui-url: a port-forward to the UI Service, as the user (like kubectl port-forward).
    let ui_url = crate::ui::client::resolve_url(&ctx.client, ui_url).await?;
    let config = super::client_config(&ctx.global).await?;
    let ui = UiClient::with_config(config, &ui_url)?;
    let namespace = ctx.global.namespace.as_deref();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let addr = listener
        .local_addr()
        .context("cannot read the local address")?;
    let proxy = Proxy {
        ui,
        hosts: [
            format!("127.0.0.1:{}", addr.port()),
            format!("localhost:{}", addr.port()),
        ],
    };
    let app = Router::new().fallback(forward).with_state(proxy);
    let url = match namespace {
        Some(ns) => format!("http://{addr}/?namespace={ns}"),
        None => format!("http://{addr}/"),
    };
    println!("Roster Sync Status at {url} (as your kubeconfig user; Ctrl-C to stop)");
    if open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        if let Err(e) = std::process::Command::new(opener).arg(&url).spawn() {
            eprintln!("note: cannot open a browser ({opener}: {e}); open {url} yourself");
        }
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the local proxy stopped")?;
    Ok(0)
}
