//! The HTTP side of the emulator: Clever's Data API (`/v3.0/...`), rate limits and fault injection.
//! The oauth tokens endpoint is in `oauth`, the test API (`/_emulator/...`) in `testapi`.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::faults::{FaultKind, Faults};
use super::paging::{self, PageQuery, QueryError};
use super::record::{Entry, Kind};
use super::store::Store;
use crate::clever::models::Role;

/// Everything the handlers share.
pub struct Shared {
    pub store: RwLock<Store>,
    pub faults: Mutex<Faults>,
    pub token: String,
    pub client_id: String,
    pub client_secret: String,
    pub rate_limit_per_minute: AtomicU64,
    windows: Mutex<HashMap<String, (i64, u64)>>,
    /// Each API request's arrival time and path (with its query).
    log: Mutex<Vec<(std::time::Instant, String)>>,
}

const LOG_CAP: usize = 100_000;

impl Shared {
    pub fn new(
        store: Store,
        token: String,
        client_id: String,
        client_secret: String,
        rate_limit: u64,
    ) -> Shared {
        Shared {
            store: RwLock::new(store),
            faults: Mutex::default(),
            token,
            client_id,
            client_secret,
            rate_limit_per_minute: AtomicU64::new(rate_limit),
            windows: Mutex::default(),
            log: Mutex::default(),
        }
    }

    /// Path and query of every API request received, oldest first (capped).
    pub fn request_log(&self) -> Vec<String> {
        self.log
            .lock()
            .map(|l| l.iter().map(|(_, p)| p.clone()).collect())
            .unwrap_or_default()
    }

    /// [`Shared::request_log`] with each request's arrival time (to measure request rates).
    pub fn request_log_timed(&self) -> Vec<(std::time::Instant, String)> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn clear_request_log(&self) {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }

    /// Counts a request in its one-minute window; returns (limit, remaining, reset, exceeded).
    fn count(&self, key: &str) -> RateInfo {
        let limit = self.rate_limit_per_minute.load(Ordering::Relaxed);
        let now = jiff::Timestamp::now().as_second();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.entry(key.to_owned()).or_insert((now, 0));
        if now >= w.0 + 60 {
            *w = (now, 0);
        }
        w.1 += 1;
        RateInfo {
            limit,
            remaining: limit.saturating_sub(w.1),
            reset: w.0 + 60,
            exceeded: w.1 > limit,
        }
    }
}

struct RateInfo {
    limit: u64,
    remaining: u64,
    reset: i64,
    exceeded: bool,
}

/// A response before headers are finalised.
pub(super) struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    location: Option<String>,
}

impl Reply {
    pub(super) fn json(status: StatusCode, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            body,
            location: None,
        }
    }
    fn message(status: StatusCode, message: &str) -> Reply {
        Reply::json(
            status,
            serde_json::json!({ "message": message })
                .to_string()
                .into_bytes(),
        )
    }
    fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: Vec::new(),
            location: None,
        }
    }
}

/// The single entry point (an axum fallback): dispatches on the path.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    if req.uri().path().starts_with("/_emulator/") {
        return super::testapi::handle(shared, req).await;
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    if let Ok(mut log) = shared.log.lock()
        && log.len() < LOG_CAP
    {
        log.push((
            std::time::Instant::now(),
            if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{query}")
            },
        ));
    }
    let bearer = bearer(req.headers());
    let valid = bearer.as_deref() == Some(shared.token.as_str());
    let rate = shared.count(if valid { "district" } else { "anonymous" });
    let outcome = shared
        .faults
        .lock()
        .map(|mut f| f.on_request(&path))
        .unwrap_or_default();
    if outcome.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(outcome.delay_ms)).await;
    }
    let mut reset = rate.reset;
    let mut remaining = rate.remaining;
    let reply = match outcome.action {
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Reply::message(status, "injected failure")
        }
        Some(FaultKind::RateLimit { reset_secs }) => {
            reset = jiff::Timestamp::now().as_second() + reset_secs as i64;
            remaining = 0;
            Reply::empty(StatusCode::TOO_MANY_REQUESTS)
        }
        Some(FaultKind::Html404) => Reply {
            status: StatusCode::NOT_FOUND,
            content_type: "text/html; charset=utf-8",
            body: b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"
                .to_vec(),
            location: None,
        },
        Some(FaultKind::Html200) => Reply {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>Please sign in</form></body></html>"
                .to_vec(),
            location: None,
        },
        Some(FaultKind::EmptyObject) => Reply::json(StatusCode::OK, b"{}".to_vec()),
        Some(FaultKind::NullData) => Reply::json(StatusCode::OK, br#"{"data":null}"#.to_vec()),
        Some(FaultKind::Redirect { location }) => Reply {
            location: Some(location),
            ..Reply::empty(StatusCode::FOUND)
        },
        other => {
            let mut reply = if path == "/oauth/tokens" {
                super::oauth::tokens(&shared, req.headers(), &query)
            } else if !valid {
                Reply::message(StatusCode::UNAUTHORIZED, "invalid or missing bearer token")
            } else if rate.exceeded {
                Reply::empty(StatusCode::TOO_MANY_REQUESTS)
            } else {
                api(&shared, &path, &query)
            };
            match other {
                Some(FaultKind::TruncatedJson) => {
                    let cut = reply.body.len() / 2;
                    reply.body.truncate(cut);
                }
                Some(
                    kind @ (FaultKind::PagingCycle
                    | FaultKind::DriftingCursor
                    | FaultKind::DropNext),
                ) if reply.status == StatusCode::OK => {
                    reply.body = rewrite_next(&reply.body, &path, &query, &kind);
                }
                Some(FaultKind::DecoyNextLink) if reply.status == StatusCode::OK => {
                    reply.body = decoy_next_link(&reply.body);
                }
                _ => {}
            }
            reply
        }
    };
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    if let Some(location) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, location);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    let num = |n: i64| HeaderValue::from(n);
    h.insert("x-ratelimit-limit", num(rate.limit as i64));
    h.insert("x-ratelimit-remaining", num(remaining as i64));
    h.insert("x-ratelimit-reset", num(reset));
    h.insert(
        "x-ratelimit-bucket",
        HeaderValue::from_static(if valid { "district-token" } else { "anonymous" }),
    );
    resp
}

/// A list page with its `next` link broken the way `kind` says (the fault tests' paging bugs).
fn rewrite_next(body: &[u8], path: &str, query: &str, kind: &FaultKind) -> Vec<u8> {
    let Ok(mut page) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let keep: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| !p.starts_with("starting_after=") && !p.starts_with("drift="))
        .collect();
    let first = format!("{path}?{}", keep.join("&"));
    let drift = query
        .split('&')
        .find_map(|p| p.strip_prefix("drift="))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let next = match kind {
        FaultKind::PagingCycle => Some(first),
        FaultKind::DriftingCursor => Some(format!("{first}&drift={}", drift + 1)),
        _ => None,
    };
    if let Some(links) = page.get_mut("links").and_then(|l| l.as_array_mut()) {
        links.retain(|l| l.get("rel").and_then(|r| r.as_str()) != Some("next"));
        if let Some(uri) = next {
            links.push(serde_json::json!({"rel": "next", "uri": uri}));
        }
    }
    serde_json::to_vec(&page).unwrap_or_else(|_| body.to_vec())
}

/// A list page written `links` first, its last record holding a decoy `links` array.
fn decoy_next_link(body: &[u8]) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut page)) = serde_json::from_slice(body) else {
        return body.to_vec();
    };
    let links = page.remove("links").unwrap_or(serde_json::Value::Null);
    let mut data = page.remove("data").unwrap_or(serde_json::Value::Null);
    if let Some(record) = data
        .as_array_mut()
        .and_then(|items| items.last_mut())
        .and_then(|item| item.get_mut("data"))
        .and_then(|record| record.as_object_mut())
    {
        record.insert(
            "links".into(),
            serde_json::json!([{"rel": "next", "uri": "/v3.0/decoy"}]),
        );
    }
    format!("{{\"links\":{links},\"data\":{data}}}").into_bytes()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// `/v3.0/...` for an authenticated request.
fn api(shared: &Shared, path: &str, query: &str) -> Reply {
    let Some(rest) = path.strip_prefix("/v3.0/") else {
        return Reply::message(StatusCode::NOT_FOUND, "Not Found");
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let store = shared.store.read().unwrap_or_else(|p| p.into_inner());
    let (kind, segs) = match segs.split_first() {
        Some((first, rest)) => match Kind::from_segment(first) {
            Some(kind) => (kind, rest),
            None => return Reply::message(StatusCode::NOT_FOUND, "Not Found"),
        },
        None => return Reply::message(StatusCode::NOT_FOUND, "Not Found"),
    };
    match segs {
        [] => {
            let q = match parse_query(query) {
                Ok(q) => q,
                Err(reply) => return reply,
            };
            let role = match q
                .role
                .as_deref()
                .filter(|_| kind == Kind::Users)
                .map(Role::parse)
            {
                Some(None) => return Reply::message(StatusCode::BAD_REQUEST, "invalid role"),
                Some(Some(role)) => Some(role),
                None => None,
            };
            let page = paging::select(
                store.entries(kind),
                |e| &e.id,
                &q,
                |e| role.is_none_or(|r| e.has_role(r)),
            );
            Reply::json(StatusCode::OK, list_body(path, &q, kind, &page))
        }
        [id] => match store.entry(kind, id) {
            Some(e) => {
                let mut body = Vec::with_capacity(e.json.len() + path.len() + 48);
                body.extend_from_slice(b"{\"data\":");
                body.extend_from_slice(&e.json);
                body.extend_from_slice(b",\"links\":[{\"rel\":\"self\",\"uri\":");
                body.extend_from_slice(serde_json::Value::from(path).to_string().as_bytes());
                body.extend_from_slice(b"}]}");
                Reply::json(StatusCode::OK, body)
            }
            None => Reply::message(
                StatusCode::NOT_FOUND,
                &format!("{} not found", kind.segment()),
            ),
        },
        [id, "users"] if kind == Kind::Sections => section_users(&store, path, query, id),
        _ => Reply::message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn parse_query(query: &str) -> Result<PageQuery, Reply> {
    PageQuery::parse(query).map_err(|e| match e {
        QueryError::Bad(msg) => Reply::message(StatusCode::BAD_REQUEST, &msg),
        QueryError::TooLarge(n) => Reply::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("limit {n} is above the maximum of 10000"),
        ),
    })
}

/// `/v3.0/sections/{id}/users?role=student|teacher`.
fn section_users(store: &Store, path: &str, query: &str, id: &str) -> Reply {
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    let Some(section) = store.get_value(Kind::Sections, id) else {
        return Reply::message(StatusCode::NOT_FOUND, "section not found");
    };
    let keys: &[&str] = match q.role.as_deref() {
        Some("student") => &["students"],
        Some("teacher") => &["teachers"],
        None => &["students", "teachers"],
        Some(_) => {
            return Reply::message(StatusCode::BAD_REQUEST, "role must be student or teacher");
        }
    };
    let mut ids: Vec<&str> = keys
        .iter()
        .filter_map(|k| section.get(*k).and_then(|v| v.as_array()))
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let members: Vec<&Entry> = ids
        .iter()
        .filter_map(|id| store.entry(Kind::Users, id))
        .collect();
    let page: Vec<&Entry> = paging::select(&members, |e| &e.id, &q, |_| true)
        .into_iter()
        .copied()
        .collect();
    Reply::json(StatusCode::OK, list_body(path, &q, Kind::Users, &page))
}

/// Writes `{"data":[{"data":{..},"uri":".."}],"links":[..]}` by copying stored JSON.
fn list_body(path: &str, q: &PageQuery, kind: Kind, page: &[&Entry]) -> Vec<u8> {
    let links = paging::links(
        path,
        q,
        page.first().map(|e| &*e.id),
        page.last().map(|e| &*e.id),
        page.len(),
    );
    let size: usize = page
        .iter()
        .map(|e| e.json.len() + e.id.len() + 40)
        .sum::<usize>()
        + links.len()
        + 32;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"data\":[");
    for (i, e) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"data\":");
        body.extend_from_slice(&e.json);
        body.extend_from_slice(b",\"uri\":\"/v3.0/");
        body.extend_from_slice(kind.segment().as_bytes());
        body.push(b'/');
        body.extend_from_slice(e.id.as_bytes());
        body.extend_from_slice(b"\"}");
    }
    body.extend_from_slice(b"],\"links\":");
    body.extend_from_slice(links.as_bytes());
    body.push(b'}');
    body
}
