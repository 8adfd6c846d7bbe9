//! The emulator's `GET /oauth/tokens`: the district token for HTTP Basic app credentials.
use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;

use super::server::{Reply, Shared};

/// `GET /oauth/tokens?owner_type=district[&district=<id>]` with HTTP Basic app credentials.
pub(super) fn tokens(shared: &Shared, headers: &HeaderMap, query: &str) -> Reply {
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        let body = serde_json::json!({ "error": error, "error_description": description });
        Reply::json(status, body.to_string().into_bytes())
    };
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let expected = format!("{}:{}", shared.client_id, shared.client_secret);
    if creds.as_deref() != Some(expected.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if params.get("owner_type").map(String::as_str) != Some("district") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "owner_type must be district",
        );
    }
    let store = shared.store.read().unwrap_or_else(|p| p.into_inner());
    let district = store.district_id().to_owned();
    let data: Vec<serde_json::Value> = if params.get("district").is_none_or(|d| *d == district) {
        vec![serde_json::json!({
            "id": format!("{:0>24}", "70c3e1"),
            "created": "2025-07-01T12:00:00.000Z",
            "owner": { "type": "district", "id": district },
            "access_token": shared.token,
            "scopes": ["read:district_admins_basic", "read:school_admins_basic", "read:sis", "read:students", "read:teachers", "read:user_id"],
        })]
    } else {
        Vec::new()
    };
    let body = serde_json::json!({
        "data": data,
        "links": [{ "rel": "self", "uri": "/oauth/tokens?owner_type=district" }],
    });
    Reply::json(StatusCode::OK, body.to_string().into_bytes())
}
