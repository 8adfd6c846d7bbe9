//! Roster Sync Status: the controller's read-only web pages and JSON API (`--ui-addr`), for people
//! who never run kubectl (district admins, support, the SIS team).
//!
//! - `/` (`?namespace=NS`): the districts the caller may see (health, last run, next sync, Sync Now, suspended).
//! - `/districts/NS/NAME`: conditions in words, the schedule, the last 50 runs, a chart of
//!   children and classrooms, the last run's problems (`problems.csv`), a held run's approval.
//! - `/api/v1/districts`, `/api/v1/districts/NS/NAME`, `.../runs?limit=N`,
//!   `.../problems[?run=ID]`: the same as JSON (`kubectl roster history` uses it).
//!
//! Every request carries a bearer token (401 without a valid one, checked with a TokenReview); a
//! district is shown only if a SubjectAccessReview says the caller may `get` its RosterConnection
//! (absent from the list, 403 on its URL otherwise) — see [`auth`]. There is no write action:
//! the pages show the `kubectl roster` commands instead. Rendering is minijinja with HTML
//! auto-escaping; no JavaScript.
pub mod auth;
pub mod client;
pub mod data;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::{Client, ResourceExt};
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use crate::controller::Clock;
use crate::run::ConnectionKey;
use auth::{AuthError, Authorizer, Caller};
use data::DataError;

/// What the UI's handlers share.
pub struct UiState {
    pub client: Client,
    pub db: PgPool,
    /// The namespaces the controller watches (all when empty): nothing outside is shown.
    pub namespaces: Vec<String>,
    pub clock: Clock,
    pub auth: Authorizer,
    templates: Environment<'static>,
}

impl UiState {
    pub fn new(client: Client, db: PgPool, namespaces: Vec<String>, clock: Clock) -> UiState {
        UiState {
            auth: Authorizer::new(client.clone()),
            client,
            db,
            namespaces,
            clock,
            templates: templates(),
        }
    }
}

/// The page templates (auto-escaping: every `.html` template escapes what it prints).
fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    // A misspelt field is an error (a test fails), never an empty spot on the page.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("index.html", include_str!("templates/index.html")),
        ("district.html", include_str!("templates/district.html")),
        ("error.html", include_str!("templates/error.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            // The templates are part of the binary: a broken one is a bug a unit test catches.
            tracing::error!(template = name, error = %e, "invalid UI template");
        }
    }
    env
}

/// Whether an error is answered as a page or as JSON.
#[derive(Clone, Copy)]
enum Format {
    Html,
    Json,
}

/// Why a request is not answered with data.
#[derive(Debug, thiserror::Error)]
enum UiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(
        "you may not see {0}/{1}: ask your platform team for the rostersync-district-viewer role \
         in namespace {0}"
    )]
    Forbidden(String, String),
    #[error("there is no RosterConnection {0}/{1}")]
    NotFound(String, String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("cannot render the page: {0}")]
    Template(#[from] minijinja::Error),
    #[error("{0}")]
    BadRequest(String),
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            UiError::Auth(AuthError::NoToken | AuthError::Unauthenticated(_)) => {
                StatusCode::UNAUTHORIZED
            }
            UiError::Auth(AuthError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Forbidden(..) => StatusCode::FORBIDDEN,
            UiError::NotFound(..) => StatusCode::NOT_FOUND,
            UiError::Data(_) => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Template(_) => StatusCode::INTERNAL_SERVER_ERROR,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn respond(self, state: &UiState, format: Format) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "status UI request failed");
        }
        let message = self.to_string();
        let mut response = match format {
            Format::Json => (status, axum::Json(json!({"error": message}))).into_response(),
            Format::Html => {
                let title = match status {
                    StatusCode::UNAUTHORIZED => "Sign in needed",
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    _ => "Something went wrong",
                };
                let body = state
                    .templates
                    .get_template("error.html")
                    .and_then(|t| {
                        t.render(minijinja::context! {
                            status => status.as_u16(), title => title, message => message
                        })
                    })
                    .unwrap_or_else(|_| "error".to_string());
                (status, html_headers(), body).into_response()
            }
        };
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rostersync\""),
            );
        }
        response
    }
}

fn html_headers() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "text/html; charset=utf-8")]
}

type Shared = Arc<UiState>;

/// The caller of this request (401 without a valid token).
async fn caller(state: &UiState, headers: &HeaderMap) -> Result<Caller, UiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    Ok(state.auth.authenticate(header).await?)
}

/// Whether the controller shows namespace `ns` at all.
fn watched(state: &UiState, ns: &str) -> bool {
    state.namespaces.is_empty() || state.namespaces.iter().any(|n| n == ns)
}

/// The caller, after checking that they may see `ns/name` (403 otherwise, before anything is read).
async fn authorize(
    state: &UiState,
    headers: &HeaderMap,
    ns: &str,
    name: &str,
) -> Result<ConnectionKey, UiError> {
    let caller = caller(state, headers).await?;
    let key = ConnectionKey::new(ns, name)
        .map_err(|e| UiError::BadRequest(format!("not a district: {e}")))?;
    if !state.auth.may_get(&caller, ns, name).await? {
        return Err(UiError::Forbidden(ns.to_string(), name.to_string()));
    }
    if !watched(state, ns) {
        return Err(UiError::NotFound(ns.to_string(), name.to_string()));
    }
    Ok(key)
}

/// The districts `headers`' caller may see.
async fn visible_districts(
    state: &UiState,
    headers: &HeaderMap,
    only: Option<&str>,
) -> Result<Vec<data::DistrictJson>, UiError> {
    let caller = caller(state, headers).await?;
    let objects = data::list_objects(&state.client, &state.namespaces).await?;
    let now = state.clock.now();
    let mut out = Vec::new();
    for c in &objects.connections {
        let ns = c.namespace().unwrap_or_default();
        if only.is_some_and(|only| only != ns) {
            continue;
        }
        if !state.auth.may_get(&caller, &ns, &c.name_any()).await? {
            continue;
        }
        out.push(data::district(&state.db, c, &objects.schedules, now).await?);
    }
    Ok(out)
}

async fn detail(
    state: &UiState,
    headers: &HeaderMap,
    ns: &str,
    name: &str,
) -> Result<data::DistrictDetailJson, UiError> {
    authorize(state, headers, ns, name).await?;
    let (connection, schedules) = data::get_objects(&state.client, ns, name)
        .await?
        .ok_or_else(|| UiError::NotFound(ns.to_string(), name.to_string()))?;
    Ok(data::detail(&state.db, &connection, &schedules, state.clock.now()).await?)
}

fn render<S: Serialize>(state: &UiState, template: &str, ctx: S) -> Result<Response, UiError> {
    let body = state.templates.get_template(template)?.render(ctx)?;
    Ok((html_headers(), body).into_response())
}

/// `?namespace=NS`: only the districts of one namespace.
#[derive(Debug, Deserialize)]
struct IndexQuery {
    namespace: Option<String>,
}

async fn index_html(
    State(state): State<Shared>,
    Query(q): Query<IndexQuery>,
    headers: HeaderMap,
) -> Response {
    let page = async {
        let districts = visible_districts(&state, &headers, q.namespace.as_deref()).await?;
        let now = state.clock.now();
        let views: Vec<view::DistrictView> = districts
            .iter()
            .map(|d| view::district_view(d, now))
            .collect();
        render(
            &state,
            "index.html",
            minijinja::context! { districts => views },
        )
    };
    page.await
        .unwrap_or_else(|e| e.respond(&state, Format::Html))
}

async fn index_json(
    State(state): State<Shared>,
    Query(q): Query<IndexQuery>,
    headers: HeaderMap,
) -> Response {
    match visible_districts(&state, &headers, q.namespace.as_deref()).await {
        Ok(items) => axum::Json(json!({ "items": items })).into_response(),
        Err(e) => e.respond(&state, Format::Json),
    }
}

async fn detail_html(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let page = async {
        let d = detail(&state, &headers, &ns, &name).await?;
        let v = view::detail_view(&d, state.clock.now());
        render(&state, "district.html", minijinja::context! { v => v })
    };
    page.await
        .unwrap_or_else(|e| e.respond(&state, Format::Html))
}

async fn detail_json(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match detail(&state, &headers, &ns, &name).await {
        Ok(d) => axum::Json(d).into_response(),
        Err(e) => e.respond(&state, Format::Json),
    }
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    limit: Option<i64>,
}

async fn runs_json(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<RunsQuery>,
    headers: HeaderMap,
) -> Response {
    let runs = async {
        let key = authorize(&state, &headers, &ns, &name).await?;
        let limit = q.limit.unwrap_or(data::PAGE_RUNS);
        if !(1..=data::MAX_RUNS).contains(&limit) {
            return Err(UiError::BadRequest(format!(
                "limit must be between 1 and {}",
                data::MAX_RUNS
            )));
        }
        Ok(data::runs(&state.db, &key, limit).await?)
    };
    match runs.await {
        Ok(items) => axum::Json(json!({ "items": items })).into_response(),
        Err(e) => e.respond(&state, Format::Json),
    }
}

#[derive(Debug, Deserialize)]
struct ProblemsQuery {
    run: Option<String>,
}

/// The problems of `run` (default: the latest finished run) of `ns/name`, and the run's id.
async fn problems(
    state: &UiState,
    headers: &HeaderMap,
    ns: &str,
    name: &str,
    run: Option<String>,
) -> Result<(Option<String>, Vec<data::ProblemJson>), UiError> {
    let key = authorize(state, headers, ns, name).await?;
    let run_id = match run {
        Some(r) => Some(r),
        None => data::latest_finished_run(&state.db, &key).await?,
    };
    let problems = match &run_id {
        Some(r) => data::latest_problems(&state.db, &key, r)
            .await?
            .into_iter()
            .map(|p| data::ProblemJson::of(p, &key))
            .collect(),
        None => Vec::new(),
    };
    Ok((run_id, problems))
}

async fn problems_json(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ProblemsQuery>,
    headers: HeaderMap,
) -> Response {
    match problems(&state, &headers, &ns, &name, q.run).await {
        Ok((run_id, items)) => {
            axum::Json(json!({ "runId": run_id, "items": items })).into_response()
        }
        Err(e) => e.respond(&state, Format::Json),
    }
}

async fn problems_csv(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ProblemsQuery>,
    headers: HeaderMap,
) -> Response {
    match problems(&state, &headers, &ns, &name, q.run).await {
        Ok((run_id, items)) => {
            let run_id = run_id.unwrap_or_default();
            let disposition = format!("attachment; filename=\"{ns}-{name}-problems.csv\"");
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                view::problems_csv(&run_id, &items),
            )
                .into_response()
        }
        Err(e) => e.respond(&state, Format::Html),
    }
}

/// Headers on every answer: no script or frame may run, nothing is cached (access depends on the
/// caller), no referrer leaves the page.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The UI's routes.
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/", get(index_html))
        .route("/districts/{ns}/{name}", get(detail_html))
        .route("/districts/{ns}/{name}/problems.csv", get(problems_csv))
        .route("/api/v1/districts", get(index_json))
        .route("/api/v1/districts/{ns}/{name}", get(detail_json))
        .route("/api/v1/districts/{ns}/{name}/runs", get(runs_json))
        .route("/api/v1/districts/{ns}/{name}/problems", get(problems_json))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Arc::new(state))
}

/// Binds `addr` and returns the bound address and the server to spawn.
pub async fn serve(
    addr: SocketAddr,
    state: UiState,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, async move { axum::serve(listener, app).await }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes_html() {
        let env = templates();
        for name in ["base.html", "index.html", "district.html", "error.html"] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
        let out = env
            .get_template("error.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    status => 400, title => "t", message => "<script>alert(1)</script>"
                })
            })
            .expect("render");
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{out}"
        );
        assert!(!out.contains("<script>"), "{out}");
    }
}
