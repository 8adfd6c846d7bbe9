//! The HTTP shell: one request with retries ([`CleverClient::fetch`]), and the typed list streams
//! built on it. Pure decisions (status classes, rate-limit waits, page decoding) live in `retry` and
//! `decode`.
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;
use serde::de::DeserializeOwned;
use url::Url;

use super::decode::{
    Decoded, Keep, decode_page, decode_page_with, decode_record, next_link_from_tail,
};
use super::error::CleverError;
use super::models::{Course, District, Link, Role, School, Section, Term, User, next_link};
use super::paging::Paging;
use super::transport::{invalid_body, strip_query};

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
    /// Pages one list may have: a cursor that never ends is a protocol error, not a long sync.
    pub max_pages: u32,
    /// The largest response body accepted (a page of 10000 users with demographics is ~20 MB).
    pub max_body_bytes: u64,
    /// CA certificates trusted in addition to the bundled Mozilla roots (`--extra-ca-file`).
    pub extra_ca: Option<crate::tls::ExtraCa>,
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
            max_pages: 10_000,
            max_body_bytes: 256 * 1024 * 1024,
            extra_ca: None,
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
    /// Responses that were 429 Too Many Requests.
    pub rate_limited: u64,
    /// Response body bytes received for successful responses.
    pub bytes: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) rate_limited: AtomicU64,
    pub(super) bytes: AtomicU64,
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
    pub(super) http: reqwest::Client,
    pub(super) cfg: Arc<ClientConfig>,
    pub(super) counters: Arc<Counters>,
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
        if cfg.max_pages == 0 || cfg.max_body_bytes == 0 {
            return Err(CleverError::Config(
                "max_pages and max_body_bytes must be at least 1".into(),
            ));
        }
        if cfg.max_attempts == 0 {
            return Err(CleverError::Config(
                "max_attempts must be at least 1".into(),
            ));
        }
        let mut http = reqwest::Client::builder();
        for der in cfg.extra_ca.iter().flat_map(|ca| ca.certificates()) {
            // Added to the bundled roots, not instead of them.
            let cert = reqwest::Certificate::from_der(der).map_err(|e| {
                CleverError::Config(format!("cannot use a certificate of the CA file: {e}"))
            })?;
            http = http.add_root_certificate(cert);
        }
        let http = http
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .user_agent(concat!("rostersync/", env!("CARGO_PKG_VERSION")))
            // A redirect is an error (see `CleverError::Redirect`), never followed: the token
            // must not travel to another host or over plain http.
            .redirect(reqwest::redirect::Policy::none())
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
            rate_limited: self.counters.rate_limited.load(Ordering::Relaxed),
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
    /// Sections that `keep` accepts: every page is read, but only those records are decoded.
    pub fn sections_where(
        &self,
        keep: Keep,
    ) -> impl Stream<Item = Result<Decoded<Section>, CleverError>> + Send + 'static + use<> {
        self.list_where("/v3.0/sections", &[], Some(keep))
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
    /// Users holding `role` that `keep` accepts: every page is read, but only those records
    /// are decoded (the others are parsed and dropped; see [`crate::clever::decode_page_with`]).
    pub fn users_where(
        &self,
        role: Role,
        keep: Keep,
    ) -> impl Stream<Item = Result<Decoded<User>, CleverError>> + Send + 'static + use<> {
        self.list_where("/v3.0/users", &[("role", role.as_str())], Some(keep))
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

    /// Streams every record of a list endpoint, following `links[rel=next]` verbatim. The next
    /// page is requested as soon as the current page's `links` are read, so the request overlaps
    /// decoding and consuming the current page; a page is decoded once the one before it has been
    /// consumed (at most a page of records, a page being decoded and the next body are held).
    /// After an error the stream ends. A list that breaks the paging rules (see [`Paging`]) ends
    /// with a [`CleverError::Protocol`] error, so a broken list is never mistaken for a short one.
    pub fn list<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> impl Stream<Item = Result<Decoded<T>, CleverError>> + Send + 'static + use<T> {
        self.list_where(path, query, None)
    }

    /// [`Self::list`], decoding only the records `keep` accepts (all with `None`).
    fn list_where<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        keep: Option<Keep>,
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
            paging: Paging::new(&first, self.cfg.max_pages),
            fetching: Some(self.request(first)),
            decoding: None,
            buf: Vec::new().into_iter(),
            keep,
        };
        futures::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.buf.next() {
                    return Some((Ok(item), st));
                }
                if let Some(decoding) = st.decoding.take() {
                    match decoding.finish().await {
                        Ok(records) => {
                            st.buf = records.into_iter();
                            continue;
                        }
                        Err(err) => return Some((Err(err), st)),
                    }
                }
                let fetch = st.fetching.take()?;
                let uri = fetch.uri.clone();
                let body = match fetch.finish().await {
                    Ok(body) => body,
                    Err(err) => return Some((Err(err), st)),
                };
                // The next page is requested while this one is parsed when its link can be read
                // from the page's tail; the guess is kept only if the parse finds the same link.
                let early = next_link_from_tail(&body).map(|next| st.client.request(next));
                let (decoding, envelope) = st.decode(uri.clone(), body);
                let Ok((total, next)) = envelope.await else {
                    // The decoder ended before reading the envelope: it says why.
                    match decoding.finish().await {
                        Err(err) => return Some((Err(err), st)),
                        Ok(_) => return None,
                    }
                };
                if let Err(detail) = st.paging.check(total, next.as_deref()) {
                    let path = strip_query(&uri).to_owned();
                    return Some((Err(CleverError::Protocol { path, detail }), st));
                }
                st.fetching = match (next, early) {
                    (Some(next), Some(early)) if early.uri == next => Some(early),
                    // A wrong guess is dropped, which aborts its request.
                    (next, _) => next.map(|next| st.client.request(next)),
                };
                st.decoding = Some(decoding);
            }
        })
    }

    /// Sends a page request in its own task.
    fn request(&self, uri: String) -> Task<bytes::Bytes> {
        let client = self.clone();
        let task_uri = uri.clone();
        let handle = tokio::spawn(async move { client.fetch(&task_uri, Auth::Bearer).await });
        Task { uri, handle }
    }
}

/// A spawned step of a list (a page's request or its decoding), aborted when the list is
/// dropped.
struct Task<T> {
    uri: String,
    handle: tokio::task::JoinHandle<Result<T, CleverError>>,
}

impl<T> Task<T> {
    async fn finish(mut self) -> Result<T, CleverError> {
        let handle = &mut self.handle;
        handle.await.map_err(|e| CleverError::InvalidBody {
            path: strip_query(&self.uri).to_owned(),
            detail: format!("reading the page failed: {e}"),
        })?
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

type Envelope = tokio::sync::oneshot::Receiver<(usize, Option<String>)>;

struct ListState<T> {
    client: CleverClient,
    paging: Paging,
    /// The next page's request.
    fetching: Option<Task<bytes::Bytes>>,
    /// The current page's records, being decoded off the async threads.
    decoding: Option<Task<Vec<Decoded<T>>>>,
    buf: std::vec::IntoIter<Decoded<T>>,
    keep: Option<Keep>,
}

impl<T: DeserializeOwned + Send + 'static> ListState<T> {
    /// Decodes a page off the async threads (a 10000-record page is work). The envelope (records
    /// on the page, next link) is sent as soon as it is read; for a filtered list that is before
    /// any record is decoded.
    fn decode(&self, uri: String, body: bytes::Bytes) -> (Task<Vec<Decoded<T>>>, Envelope) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let keep = self.keep.clone();
        let task_uri = uri.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let envelope = |total: usize, links: &[Link]| {
                let _ = tx.send((total, next_link(links).map(str::to_owned)));
            };
            let page = match &keep {
                Some(keep) => decode_page_with::<T>(&body, keep.as_ref(), envelope),
                None => decode_page::<T>(&body).inspect(|p| envelope(p.total, &p.links)),
            };
            page.map(|p| p.records)
                .map_err(|e| invalid_body(&task_uri, &e))
        });
        (Task { uri, handle }, rx)
    }
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
    use crate::clever::transport::{limit_of, strip_query};

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
