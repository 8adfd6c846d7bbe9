//! The HTTP shell: one request with retries ([`CleverClient::fetch`]), and the typed list streams
//! built on it. Pure decisions (status classes, rate-limit waits, page decoding) live in `retry` and
//! `decode`.
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use bytes::Bytes;
use futures::Stream;
use serde::de::DeserializeOwned;
use url::Url;

use super::decode::{Decoded, decode_page, decode_record};
use super::error::CleverError;
use super::models::{Course, District, Role, School, Section, Term, User, next_link};
use super::retry::{StatusClass, classify, parse_rate_limit_reset};

/// A secret (district token or client secret). `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Client settings; [`ClientConfig::new`] gives production defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://api.clever.com` in production; the emulator's base URL in tests.
    pub base_url: Url,
    pub token: Token,
    /// `limit` for list requests (Clever's maximum, 10000, by default).
    pub page_limit: u32,
    /// Whole-request timeout, body included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per request, the first included, for 5xx, 429, timeouts and connection errors.
    pub max_attempts: u32,
    /// Exponential backoff bounds (jitter is added).
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest a 429 makes us wait before retrying, whatever `X-RateLimit-Reset` says.
    pub max_rate_limit_wait: Duration,
}

impl ClientConfig {
    pub fn new(base_url: Url, token: Token) -> Self {
        ClientConfig {
            base_url,
            token,
            page_limit: 10_000,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 5,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

/// Counters since the client was created (shared by its clones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Retries after a 5xx, 429, timeout or connection error.
    pub retries: u64,
    /// Response body bytes received for successful responses.
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    bytes: AtomicU64,
}

/// How a request authenticates, and so how its error bodies read.
#[derive(Clone, Copy)]
pub(super) enum Auth<'a> {
    /// The Data API with the district token.
    Bearer,
    /// The oauth host with app credentials (`{"error","error_description"}` error bodies).
    Basic {
        client_id: &'a str,
        client_secret: &'a Token,
    },
}

/// A Clever Data API client for one district token. Cheap to clone.
#[derive(Clone)]
pub struct CleverClient {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    counters: Arc<Counters>,
}

impl fmt::Debug for CleverClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CleverClient")
            .field("base_url", &self.cfg.base_url.as_str())
            .finish()
    }
}

impl CleverClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, CleverError> {
        if !(1..=10_000).contains(&cfg.page_limit) {
            return Err(CleverError::Config(format!(
                "page_limit must be 1..=10000, got {}",
                cfg.page_limit
            )));
        }
        if cfg.max_attempts == 0 {
            return Err(CleverError::Config(
                "max_attempts must be at least 1".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .user_agent(concat!("rostersync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CleverError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(CleverClient {
            http,
            cfg: Arc::new(cfg),
            counters: Arc::default(),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    /// The district this token sees; a 404 is [`CleverError::DistrictNotFound`].
    pub async fn district(&self, id: &str) -> Result<District, CleverError> {
        match self.get::<District>(&format!("/v3.0/districts/{id}")).await {
            Err(CleverError::NotFound { .. }) => Err(CleverError::DistrictNotFound {
                district_id: id.to_owned(),
            }),
            other => other,
        }
    }

    pub fn districts(
        &self,
    ) -> impl Stream<Item = Result<Decoded<District>, CleverError>> + Send + 'static + use<> {
        self.list("/v3.0/districts", &[])
    }
    pub fn schools(
        &self,
    ) -> impl Stream<Item = Result<Decoded<School>, CleverError>> + Send + 'static + use<> {
        self.list("/v3.0/schools", &[])
    }
    pub fn sections(
        &self,
    ) -> impl Stream<Item = Result<Decoded<Section>, CleverError>> + Send + 'static + use<> {
        self.list("/v3.0/sections", &[])
    }
    pub fn terms(
        &self,
    ) -> impl Stream<Item = Result<Decoded<Term>, CleverError>> + Send + 'static + use<> {
        self.list("/v3.0/terms", &[])
    }
    pub fn courses(
        &self,
    ) -> impl Stream<Item = Result<Decoded<Course>, CleverError>> + Send + 'static + use<> {
        self.list("/v3.0/courses", &[])
    }
    /// Users holding `role` (a user with several roles appears in each role's list).
    pub fn users(
        &self,
        role: Role,
    ) -> impl Stream<Item = Result<Decoded<User>, CleverError>> + Send + 'static + use<> {
        self.list("/v3.0/users", &[("role", role.as_str())])
    }
    /// The students or teachers of one section.
    pub fn section_users(
        &self,
        section_id: &str,
        role: Role,
    ) -> impl Stream<Item = Result<Decoded<User>, CleverError>> + Send + 'static + use<> {
        self.list(
            &format!("/v3.0/sections/{section_id}/users"),
            &[("role", role.as_str())],
        )
    }

    /// One object (`{"data":{...}}`) at `path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CleverError> {
        #[derive(serde::Deserialize)]
        struct One {
            data: serde_json::Value,
        }
        let body = self.fetch(path, Auth::Bearer).await?;
        let one: One = serde_json::from_slice(&body).map_err(|e| invalid_body(path, &e))?;
        decode_record(one.data).map_err(|p| CleverError::InvalidBody {
            path: strip_query(path).to_owned(),
            detail: p.message,
        })
    }

    /// Streams every record of a list endpoint, following `links[rel=next]` verbatim. Only one page
    /// is held at a time: the next request is sent once the current page has been consumed. After
    /// an error the stream ends.
    pub fn list<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> impl Stream<Item = Result<Decoded<T>, CleverError>> + Send + 'static + use<T> {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query {
            q.append_pair(k, v);
        }
        if !query.iter().any(|(k, _)| *k == "limit") {
            q.append_pair("limit", &self.cfg.page_limit.to_string());
        }
        let first = format!("{path}?{}", q.finish());
        let state = ListState::<T> {
            client: self.clone(),
            next: Some(first),
            buf: Vec::new().into_iter(),
        };
        futures::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.buf.next() {
                    return Some((Ok(item), st));
                }
                let uri = st.next.take()?;
                match st.client.page::<T>(&uri).await {
                    Ok((records, next)) => {
                        if next.as_deref() == Some(uri.as_str()) {
                            let detail = "its next link repeats the current page".to_owned();
                            return Some((Err(CleverError::InvalidBody { path: uri, detail }), st));
                        }
                        st.next = next;
                        st.buf = records.into_iter();
                    }
                    Err(err) => return Some((Err(err), st)),
                }
            }
        })
    }

    /// Fetches and decodes one page (decoding off the async threads: a 10000-record page is work).
    async fn page<T: DeserializeOwned + Send + 'static>(
        &self,
        uri: &str,
    ) -> Result<(Vec<Decoded<T>>, Option<String>), CleverError> {
        let body = self.fetch(uri, Auth::Bearer).await?;
        let path = uri.to_owned();
        let decoded = tokio::task::spawn_blocking(move || {
            decode_page::<T>(&body).map_err(|e| invalid_body(&path, &e))
        })
        .await
        .map_err(|e| CleverError::InvalidBody {
            path: uri.to_owned(),
            detail: format!("decoder failed: {e}"),
        })??;
        let next = next_link(&decoded.links).map(str::to_owned);
        Ok((decoded.records, next))
    }

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
                Err(err) => Err(Failure::Retry(
                    transport_error(&err, &path, attempt, self.cfg.timeout),
                    None,
                )),
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
        match classify(status.as_u16()) {
            StatusClass::Success => match resp.bytes().await {
                Ok(body) => {
                    self.counters
                        .bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    Ok(body)
                }
                Err(err) => Err(Failure::Retry(
                    transport_error(&err, path, attempt, self.cfg.timeout),
                    None,
                )),
            },
            StatusClass::RateLimited => {
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
                let body = resp.bytes().await.unwrap_or_default();
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

/// A failed attempt: give up now, or retry (after the given wait, else after the backoff delay).
enum Failure {
    Final(CleverError),
    Retry(CleverError, Option<Duration>),
}

struct ListState<T> {
    client: CleverClient,
    next: Option<String>,
    buf: std::vec::IntoIter<Decoded<T>>,
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

fn invalid_body(path: &str, err: &serde_json::Error) -> CleverError {
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

fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

fn limit_of(path: &str) -> u32 {
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Where the oauth tokens endpoint lives: `https://clever.com` for the production API, otherwise
/// the API base itself (the emulator serves both).
pub fn oauth_base_for(api_base: &Url) -> Url {
    if api_base.host_str() == Some("api.clever.com") {
        Url::parse("https://clever.com").unwrap_or_else(|_| api_base.clone())
    } else {
        api_base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints() {
        let t = Token::new("0123456789abcdef");
        assert_eq!(format!("{t:?} {t}"), "*** ***");
        let cfg = ClientConfig::new(Url::parse("http://127.0.0.1:1").unwrap(), t);
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn oauth_base_and_limit() {
        let prod = oauth_base_for(&Url::parse("https://api.clever.com").unwrap());
        assert_eq!(prod.as_str(), "https://clever.com/");
        let emu = Url::parse("http://127.0.0.1:9999").unwrap();
        assert_eq!(oauth_base_for(&emu), emu);
        assert_eq!(limit_of("/v3.0/users?role=student&limit=20000"), 20000);
        assert_eq!(strip_query("/v3.0/users?role=student"), "/v3.0/users");
    }
}
