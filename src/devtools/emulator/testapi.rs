//! The test API under `/_emulator/...`: change the data and the faults between (or during) runs.
//! No Clever token is needed; the emulator only listens on loopback. See `docs/emulator.md`.
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::data::{GenConfig, generate};
use super::faults::Fault;
use super::record::Kind;
use super::server::Shared;
use super::store::{EmulatorStoreError, Store};

const MAX_BODY: usize = 512 * 1024 * 1024;

pub async fn handle(shared: Arc<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path()
        .trim_start_matches("/_emulator/")
        .to_owned();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({ "message": format!("cannot read body: {e}") }),
            );
        }
    };
    let parsed: Result<Value, _> = if body.is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_slice(&body)
    };
    let body = match parsed {
        Ok(v) => v,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({ "message": format!("body is not JSON: {e}") }),
            );
        }
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match route(&shared, &method, &segs, body) {
        Ok((status, value)) => reply(status, value),
        Err(TestApiError::NotFound(msg)) => reply(StatusCode::NOT_FOUND, json!({ "message": msg })),
        Err(TestApiError::Bad(msg)) => reply(StatusCode::BAD_REQUEST, json!({ "message": msg })),
    }
}

enum TestApiError {
    NotFound(String),
    Bad(String),
}

impl From<EmulatorStoreError> for TestApiError {
    fn from(e: EmulatorStoreError) -> Self {
        match e {
            EmulatorStoreError::NotFound { .. } => TestApiError::NotFound(e.to_string()),
            EmulatorStoreError::Invalid(_) => TestApiError::Bad(e.to_string()),
        }
    }
}

fn bad(e: impl std::fmt::Display) -> TestApiError {
    TestApiError::Bad(e.to_string())
}

type Outcome = Result<(StatusCode, Value), TestApiError>;

fn route(shared: &Shared, method: &Method, segs: &[&str], body: Value) -> Outcome {
    let write = || shared.store.write().unwrap_or_else(|p| p.into_inner());
    let ok = |v: Value| Ok((StatusCode::OK, v));
    let done = || Ok((StatusCode::NO_CONTENT, Value::Null));
    match (method.as_str(), segs) {
        ("GET", ["health"]) => ok(json!({ "ok": true })),
        ("GET", ["requests"]) => ok(json!(shared.request_log())),
        ("DELETE", ["requests"]) => {
            shared.clear_request_log();
            done()
        }
        ("GET", ["faults"]) => ok(json!(
            shared.faults.lock().map(|f| f.list()).unwrap_or_default()
        )),
        ("POST", ["faults"]) => {
            let faults: Vec<Fault> = match body {
                Value::Array(_) => serde_json::from_value(body).map_err(bad)?,
                other => vec![serde_json::from_value(other).map_err(bad)?],
            };
            if let Ok(mut f) = shared.faults.lock() {
                faults.into_iter().for_each(|x| f.add(x));
            }
            done()
        }
        ("DELETE", ["faults"]) => {
            if let Ok(mut f) = shared.faults.lock() {
                f.clear();
            }
            done()
        }
        ("PUT", ["rate-limit"]) => {
            let n = body
                .get("per_minute")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("expected {\"per_minute\": N}"))?;
            shared.rate_limit_per_minute.store(n, Ordering::Relaxed);
            done()
        }
        ("PUT", ["dataset"]) => {
            let store = replace_dataset(&write(), body)?;
            *write() = store;
            done()
        }
        ("POST", ["dataset", "generate"]) => {
            #[derive(Deserialize)]
            struct Gen {
                #[serde(default)]
                seed: u64,
                students: u32,
                schools: Option<u32>,
            }
            let g: Gen = serde_json::from_value(body).map_err(bad)?;
            let district_id = write().district_id().to_owned();
            let store = generate(&GenConfig {
                seed: g.seed,
                students: g.students,
                schools: g.schools,
                district_id,
            });
            *write() = store.map_err(bad)?;
            done()
        }
        ("POST", ["move"]) => {
            let field = |k: &str| {
                body.get(k)
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("missing `{k}`")))
            };
            write().move_student(field("student")?, field("from")?, field("to")?)?;
            done()
        }
        ("POST", ["sections", id, "students"]) => {
            let student = body
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("expected {\"id\": student id}"))?;
            write().add_to_section(id, student)?;
            done()
        }
        ("DELETE", ["sections", id, "students", student]) => {
            write().remove_from_section(id, student)?;
            done()
        }
        ("POST", [collection]) => {
            let (kind, is_student) = collection_kind(collection)?;
            let mut body = body;
            if is_student && body.pointer("/roles/student").is_none_or(Value::is_null) {
                let obj = body
                    .as_object_mut()
                    .ok_or_else(|| bad("expected a JSON object"))?;
                let roles = obj.entry("roles").or_insert_with(|| json!({}));
                if let Some(roles) = roles.as_object_mut() {
                    roles.insert("student".into(), json!({}));
                }
            }
            let id = write().put_value(kind, body)?;
            Ok((StatusCode::CREATED, json!({ "id": id })))
        }
        ("GET", [collection, id]) => {
            let (kind, _) = collection_kind(collection)?;
            let store = shared.store.read().unwrap_or_else(|p| p.into_inner());
            store
                .get_value(kind, id)
                .map(|v| (StatusCode::OK, v))
                .ok_or_else(|| TestApiError::NotFound(format!("no {collection} {id}")))
        }
        ("PATCH", [collection, id]) => {
            let (kind, _) = collection_kind(collection)?;
            ok(write().patch(kind, id, &body)?)
        }
        ("DELETE", [collection, id]) => {
            let (kind, _) = collection_kind(collection)?;
            write().remove(kind, id)?;
            done()
        }
        _ => Err(TestApiError::NotFound(format!(
            "no test API route {method} /_emulator/{}",
            segs.join("/")
        ))),
    }
}

/// `students` is `users` with a student role added when missing.
fn collection_kind(segment: &str) -> Result<(Kind, bool), TestApiError> {
    if segment == "students" {
        return Ok((Kind::Users, true));
    }
    match Kind::from_segment(segment) {
        Some(Kind::Districts) | None => Err(TestApiError::NotFound(format!(
            "unknown collection `{segment}`"
        ))),
        Some(kind) => Ok((kind, false)),
    }
}

/// `{"district":{..}?, "schools":[..], "sections":[..], "users":[..], "terms":[..], "courses":[..]}`.
fn replace_dataset(current: &Store, body: Value) -> Result<Store, TestApiError> {
    let mut body = body;
    let district = match body.get_mut("district").map(Value::take) {
        Some(d) if d.is_object() => d,
        _ => current
            .get_value(Kind::Districts, current.district_id())
            .ok_or_else(|| bad("no district given and none in the current dataset"))?,
    };
    let mut rest = Vec::new();
    for kind in [
        Kind::Schools,
        Kind::Sections,
        Kind::Users,
        Kind::Terms,
        Kind::Courses,
    ] {
        let list = match body.get_mut(kind.segment()).map(Value::take) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(bad(format!("`{}` must be an array", kind.segment()))),
        };
        rest.push((kind, list));
    }
    Ok(Store::from_values(district, rest)?)
}

fn reply(status: StatusCode, value: Value) -> Response {
    let body = if status == StatusCode::NO_CONTENT {
        Body::empty()
    } else {
        Body::from(value.to_string())
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}
