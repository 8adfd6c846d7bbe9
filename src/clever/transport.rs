//! One request with retries: 5xx, timeouts and connection errors back off exponentially with
//! jitter, 429 waits for `X-RateLimit-Reset` (capped); statuses become typed errors.
use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::BackoffBuilder;
use bytes::Bytes;
use url::Url;

use super::client::{Auth, CleverClient};
use super::error::CleverError;
use super::retry::{StatusClass, classify, parse_rate_limit_reset};

impl CleverClient {
    /// Builds the absolute URL for a path+query (or a same-origin absolute link).
    fn url_for(&self, uri: &str) -> Result<Url, CleverError> {
        let url = if uri.starts_with("http://") || uri.starts_with("https://") {
            let url = Url::parse(uri).map_err(|e| CleverError::InvalidBody {
                path: uri.into(),
                detail: e.to_string(),
            })?;
            if url.origin() != self.cfg.base_url.origin() {
                // Never send the token to another host.
                let detail = "a link points to another host".to_owned();
                return Err(CleverError::InvalidBody {
                    path: url.path().to_owned(),
                    detail,
                });
            }
            url
        } else {
            let base = self.cfg.base_url.as_str().trim_end_matches('/');
            let sep = if uri.starts_with('/') { "" } else { "/" };
            Url::parse(&format!("{base}{sep}{uri}"))
                .map_err(|e| CleverError::Config(format!("bad URL for {uri}: {e}")))?
        };
        Ok(url)
    }

    /// Sends a GET with retries: 5xx, timeouts and connection errors back off exponentially with
    /// jitter; 429 waits for `X-RateLimit-Reset` (capped). Returns the body of a 2xx response.
    pub(super) async fn fetch(&self, uri: &str, auth: Auth<'_>) -> Result<Bytes, CleverError> {
        let url = self.url_for(uri)?;
        let path = url[url::Position::BeforePath..].to_owned();
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.cfg.min_backoff)
            .with_max_delay(self.cfg.max_backoff)
            .with_jitter()
            .without_max_times()
            .build();
        let max = self.cfg.max_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let req = self.http.get(url.clone());
            let req = match auth {
                Auth::Bearer => req.bearer_auth(self.cfg.token.expose()),
                Auth::Basic {
                    client_id,
                    client_secret,
                } => req.basic_auth(client_id, Some(client_secret.expose())),
            };
            let outcome = match req.send().await {
                Ok(resp) => self.handle(resp, &path, attempt, auth).await,
                Err(err) => match crate::tls::untrusted_certificate(&err) {
                    Some(detail) => Err(Failure::Final(CleverError::Certificate {
                        host: host_port(&url),
                        path: strip_query(&path).to_owned(),
                        detail,
                    })),
                    None => Err(Failure::Retry(
                        transport_error(&err, &path, attempt, self.cfg.timeout),
                        None,
                    )),
                },
            };
            let (err, wait) = match outcome {
                Ok(body) => return Ok(body),
                Err(Failure::Final(err)) => return Err(err),
                Err(Failure::Retry(err, wait)) => (err, wait),
            };
            if attempt >= max {
                return Err(err);
            }
            let wait = wait.unwrap_or_else(|| backoff.next().unwrap_or(self.cfg.max_backoff));
            tracing::debug!(path = %strip_query(&path), attempt, ?wait, error = %err, "retrying Clever request");
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    async fn handle(
        &self,
        resp: reqwest::Response,
        path: &str,
        attempt: u32,
        auth: Auth<'_>,
    ) -> Result<Bytes, Failure> {
        let status = resp.status();
        let path_owned = path.to_owned();
        if status.is_redirection() {
            let target = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| "(no Location)".to_owned(), redirect_target);
            return Err(Failure::Final(CleverError::Redirect {
                path: strip_query(path).to_owned(),
                status,
                target,
            }));
        }
        match classify(status.as_u16()) {
            StatusClass::Success => match read_capped(resp, self.cfg.max_body_bytes).await {
                Ok(Some(body)) => {
                    self.counters
                        .bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    Ok(body)
                }
                Ok(None) => Err(Failure::Final(CleverError::Protocol {
                    path: strip_query(path).to_owned(),
                    detail: format!(
                        "the response is larger than {} bytes (the limit is --clever-max-body-bytes)",
                        self.cfg.max_body_bytes
                    ),
                })),
                Err(err) => Err(Failure::Retry(
                    transport_error(&err, path, attempt, self.cfg.timeout),
                    None,
                )),
            },
            StatusClass::RateLimited => {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let now = jiff::Timestamp::now().as_second();
                let wait = header("x-ratelimit-reset")
                    .and_then(|reset| {
                        parse_rate_limit_reset(
                            &reset,
                            header("x-ratelimit-remaining").as_deref(),
                            now,
                        )
                    })
                    .map(|w| w.min(self.cfg.max_rate_limit_wait));
                let err = CleverError::RateLimited {
                    path: path_owned,
                    attempts: attempt,
                    wait: wait.unwrap_or_default(),
                };
                Err(Failure::Retry(err, wait))
            }
            StatusClass::Transient => Err(Failure::Retry(
                CleverError::Server {
                    path: path_owned,
                    status,
                    attempts: attempt,
                },
                None,
            )),
            class => {
                let is_html = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|ct| ct.contains("html"));
                // An error body is read for its message only: a few KiB are plenty.
                let body = read_capped(resp, ERROR_BODY_MAX)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let msg = ErrorBody::parse(&body);
                let err = match (class, auth) {
                    (StatusClass::Unauthorized | StatusClass::Permanent, Auth::Basic { .. }) => {
                        CleverError::AppCredentials {
                            path: strip_query(path).to_owned(),
                            status,
                            error: msg.error.unwrap_or_else(|| "error".into()),
                            description: msg.description.or(msg.message).unwrap_or_default(),
                        }
                    }
                    (StatusClass::Unauthorized, Auth::Bearer) => {
                        CleverError::CredentialsInvalid { path: path_owned }
                    }
                    (StatusClass::NotFound, _) => CleverError::NotFound {
                        path: path_owned,
                        html: is_html || body.starts_with(b"<"),
                    },
                    (StatusClass::TooLarge, _) => CleverError::PageTooLarge {
                        limit: limit_of(path),
                        path: path_owned,
                    },
                    _ => CleverError::Rejected {
                        path: path_owned,
                        status,
                        message: msg
                            .message
                            .or(msg.error)
                            .unwrap_or_else(|| "(no message)".into()),
                    },
                };
                Err(Failure::Final(err))
            }
        }
    }
}

/// `host:port` of a URL, for messages.
fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("(no host)");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// How much of an error response's body is read.
const ERROR_BODY_MAX: u64 = 64 * 1024;

/// The body, or `None` when it is over `max` bytes (read no further than that).
async fn read_capped(
    mut resp: reqwest::Response,
    max: u64,
) -> Result<Option<Bytes>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Ok(None);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// Where a redirect points, for the error: scheme, host and port only (a Location's path or query
/// could carry anything); a relative Location stays on the same host.
fn redirect_target(location: &str) -> String {
    match Url::parse(location) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}",
                url.scheme(),
                url.host_str().unwrap_or("(no host)")
            )
        }
        Err(_) => "a path on the same host".to_owned(),
    }
}

#[cfg(test)]
mod redirect_tests {
    use super::redirect_target;

    #[test]
    fn a_redirect_names_the_target_host_and_port_only() {
        let cases = [
            (
                "https://evil.example/steal?token=abc",
                "https://evil.example",
            ),
            ("http://127.0.0.1:9999/v3.0/users", "http://127.0.0.1:9999"),
            (
                "https://user:pw@evil.example:8443/x",
                "https://evil.example:8443",
            ),
            ("/v3.0/users?page=2", "a path on the same host"),
        ];
        for (location, want) in cases {
            assert_eq!(redirect_target(location), want, "{location}");
        }
    }
}

/// A failed attempt: give up now, or retry (after the given wait, else after the backoff delay).
enum Failure {
    Final(CleverError),
    Retry(CleverError, Option<Duration>),
}

/// Clever error bodies: `{"message"}`, older `{"error"}`, oauth `{"error","error_description"}`.
#[derive(Default, serde::Deserialize)]
struct ErrorBody {
    message: Option<String>,
    error: Option<String>,
    #[serde(rename = "error_description")]
    description: Option<String>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> ErrorBody {
        let mut b: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        let cut = |s: Option<String>| s.map(|s| s.chars().take(300).collect::<String>());
        b.message = cut(b.message);
        b.error = cut(b.error);
        b.description = cut(b.description);
        b
    }
}

fn transport_error(
    err: &reqwest::Error,
    path: &str,
    attempts: u32,
    timeout: Duration,
) -> CleverError {
    if err.is_timeout() {
        return CleverError::Timeout {
            path: path.to_owned(),
            timeout,
            attempts,
        };
    }
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        if !detail.is_empty() {
            detail.push_str(": ");
        }
        detail.push_str(&e.to_string());
        source = e.source();
    }
    CleverError::Connection {
        path: path.to_owned(),
        attempts,
        detail,
    }
}

pub(super) fn invalid_body(path: &str, err: &serde_json::Error) -> CleverError {
    let detail = match err.classify() {
        serde_json::error::Category::Eof => "the JSON ends early (truncated body)".to_owned(),
        serde_json::error::Category::Syntax if err.line() == 1 && err.column() <= 1 => {
            "not JSON (an HTML page or a proxy error?)".to_owned()
        }
        _ => format!(
            "{} at line {} column {}",
            category(err),
            err.line(),
            err.column()
        ),
    };
    CleverError::InvalidBody {
        path: strip_query(path).to_owned(),
        detail,
    }
}

fn category(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated",
        serde_json::error::Category::Io => "read error",
    }
}

pub(super) fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

pub(super) fn limit_of(path: &str) -> u32 {
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
