//! Who is asking and what they may see, the Kubernetes way (as kube-rbac-proxy does): the
//! caller's bearer token is checked with a TokenReview, and each district (RosterConnection) is
//! shown only when a SubjectAccessReview says the caller may `get` it. The controller's own
//! identity makes both reviews; their answers are cached briefly (keyed by a hash of the token,
//! never the token itself) so that a page of many districts costs few API calls.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};

/// How long a review's answer is reused.
pub const REVIEW_TTL: Duration = Duration::from_secs(10);
/// At most this many cached answers (expired ones are dropped first; then all).
const CACHE_MAX: usize = 10_000;

/// An authenticated caller, as the TokenReview described them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
    /// A hash of the token (the cache key of this caller's access reviews).
    token_hash: String,
}

/// Why a request is refused before any data is read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no bearer token: open the page with `kubectl roster dashboard`, or send \
         `Authorization: Bearer <token>` (e.g. through an OAuth2 proxy that passes the user's token)"
    )]
    NoToken,
    #[error("the bearer token is not valid (expired or unknown to the Kubernetes API server){0}")]
    Unauthenticated(String),
    #[error("cannot check the token or the access with the Kubernetes API server: {0}")]
    Unavailable(String),
}

struct Cached<T> {
    value: T,
    expires: Instant,
}

/// Makes the reviews and caches their answers.
pub struct Authorizer {
    client: Client,
    ttl: Duration,
    tokens: Mutex<HashMap<String, Cached<Option<Caller>>>>,
    access: Mutex<HashMap<(String, String, String), Cached<bool>>>,
}

fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn cache_get<K: std::hash::Hash + Eq, T: Clone>(
    map: &Mutex<HashMap<K, Cached<T>>>,
    key: &K,
) -> Option<T> {
    let map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get(key)
        .filter(|c| c.expires > Instant::now())
        .map(|c| c.value.clone())
}

fn cache_put<K: std::hash::Hash + Eq, T>(
    map: &Mutex<HashMap<K, Cached<T>>>,
    key: K,
    value: T,
    ttl: Duration,
) {
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if map.len() >= CACHE_MAX {
        let now = Instant::now();
        map.retain(|_, c| c.expires > now);
        if map.len() >= CACHE_MAX {
            map.clear();
        }
    }
    map.insert(
        key,
        Cached {
            value,
            expires: Instant::now() + ttl,
        },
    );
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Authorizer {
    pub fn new(client: Client) -> Authorizer {
        Authorizer::with_ttl(client, REVIEW_TTL)
    }

    pub fn with_ttl(client: Client, ttl: Duration) -> Authorizer {
        Authorizer {
            client,
            ttl,
            tokens: Mutex::default(),
            access: Mutex::default(),
        }
    }

    /// The caller of a request with this `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = bearer_token(header).ok_or(AuthError::NoToken)?;
        let hash = token_hash(token);
        let caller = match cache_get(&self.tokens, &hash) {
            Some(caller) => caller,
            None => {
                let caller = self.review_token(token, &hash).await?;
                cache_put(&self.tokens, hash, caller.clone(), self.ttl);
                caller
            }
        };
        caller.ok_or_else(|| AuthError::Unauthenticated(String::new()))
    }

    async fn review_token(&self, token: &str, hash: &str) -> Result<Option<Caller>, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Unavailable(format!("TokenReview: {e}")))?;
        let Some(status) = answer.status else {
            return Ok(None);
        };
        if status.authenticated != Some(true) {
            return Ok(None);
        }
        let user = status.user.unwrap_or_default();
        Ok(Some(Caller {
            username: user.username.unwrap_or_default(),
            uid: user.uid,
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
            token_hash: hash.to_string(),
        }))
    }

    /// Whether `caller` may `get` RosterConnection `ns/name`.
    pub async fn may_get(&self, caller: &Caller, ns: &str, name: &str) -> Result<bool, AuthError> {
        let key = (caller.token_hash.clone(), ns.to_string(), name.to_string());
        if let Some(allowed) = cache_get(&self.access, &key) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.username.clone()),
                uid: caller.uid.clone(),
                groups: Some(caller.groups.clone()),
                extra: Some(caller.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.to_string()),
                    verb: Some("get".into()),
                    group: Some(crate::api::GROUP.into()),
                    resource: Some("rosterconnections".into()),
                    name: Some(name.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Unavailable(format!("SubjectAccessReview: {e}")))?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        cache_put(&self.access, key, allowed, self.ttl);
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn the_cache_keeps_answers_until_they_expire() {
        let map: Mutex<HashMap<String, Cached<bool>>> = Mutex::default();
        cache_put(&map, "a".into(), true, Duration::from_secs(60));
        cache_put(&map, "b".into(), true, Duration::ZERO);
        assert_eq!(cache_get(&map, &"a".to_string()), Some(true));
        assert_eq!(cache_get(&map, &"b".to_string()), None);
        assert_ne!(token_hash("x"), token_hash("y"));
        assert_eq!(token_hash("x").len(), 64);
    }
}
