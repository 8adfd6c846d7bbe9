//! The client's typed errors. Messages name the request path (never the host's credentials or the
//! token) and say what a person can do about it.
use std::time::Duration;

use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum CleverError {
    #[error(
        "Clever rejected the district token (401 on {path}): the token is invalid or was revoked; \
         reconnect the district or look its token up again from the app credentials"
    )]
    CredentialsInvalid { path: String },

    #[error(
        "district {district_id} is not visible with this token (404): double-check the district id \
         from the district's instant login link, and that the token belongs to that district"
    )]
    DistrictNotFound { district_id: String },

    #[error("Clever returned 404 for {path}{}", html_hint(*.html))]
    NotFound { path: String, html: bool },

    #[error(
        "Clever refused page size limit={limit} on {path} (413): lower the page limit (10000 at most)"
    )]
    PageTooLarge { path: String, limit: u32 },

    #[error(
        "Clever kept rate-limiting {path} (429) after {attempts} attempts; next reset in {wait:?}"
    )]
    RateLimited {
        path: String,
        attempts: u32,
        wait: Duration,
    },

    #[error("Clever failed on {path} with {status} after {attempts} attempts")]
    Server {
        path: String,
        status: StatusCode,
        attempts: u32,
    },

    #[error("Clever rejected the request {path} with {status}: {message}")]
    Rejected {
        path: String,
        status: StatusCode,
        message: String,
    },

    #[error("request to {path} timed out after {timeout:?} ({attempts} attempts)")]
    Timeout {
        path: String,
        timeout: Duration,
        attempts: u32,
    },

    #[error("cannot reach Clever for {path} after {attempts} attempts: {detail}")]
    Connection {
        path: String,
        attempts: u32,
        detail: String,
    },

    /// The host's TLS certificate is not trusted (unknown issuer, expired, wrong name): not
    /// retried, another attempt meets the same certificate.
    #[error(
        "the TLS certificate of {host} is not trusted ({detail}) on {path}: if that host (or a \
         TLS-intercepting proxy on the way) uses a private CA, give the CA's certificate with \
         --extra-ca-file (Helm: caBundle); otherwise check apiBaseUrl"
    )]
    Certificate {
        host: String,
        path: String,
        detail: String,
    },

    #[error("Clever's response to {path} is not valid JSON of the expected shape: {detail}")]
    InvalidBody { path: String, detail: String },

    /// A list that breaks Clever's paging rules: a cycle, a cursor that never ends, a full page
    /// without a `next` link, a body over the size limit. Nothing of the list is used.
    #[error("Clever's list {path} breaks the paging protocol: {detail}")]
    Protocol { path: String, detail: String },

    /// Redirects are never followed: the token must not reach another host or a plain-http URL.
    #[error(
        "Clever answered {path} with a redirect ({status}) to {target}; redirects are not followed \
         (credentials go to apiBaseUrl only): check that apiBaseUrl is Clever's API address"
    )]
    Redirect {
        path: String,
        status: StatusCode,
        target: String,
    },

    #[error("the app credentials were refused by {path} ({status}): {error}: {description}")]
    AppCredentials {
        path: String,
        status: StatusCode,
        error: String,
        description: String,
    },

    #[error(
        "no district token for district {district_id}: the app is not connected to that district"
    )]
    NoDistrictToken { district_id: String },

    #[error("invalid Clever client configuration: {0}")]
    Config(String),
}

fn html_hint(html: bool) -> &'static str {
    if html {
        " (an HTML page, not Clever JSON: check the API base URL)"
    } else {
        ""
    }
}

impl CleverError {
    /// Whether trying the same thing again later can help (the client has already retried within
    /// its bounds; this is for the caller's own schedule).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            CleverError::RateLimited { .. }
                | CleverError::Server { .. }
                | CleverError::Timeout { .. }
                | CleverError::Connection { .. }
        )
    }

    /// The reason a run (`sync_runs.reason`) and a connection's conditions give for this error:
    /// `CredentialsInvalid`, `DistrictNotFound`, `CleverUnavailable` (retriable: Clever is down,
    /// slow or rate-limiting), `CleverProtocolError` (a body or a list that breaks the API's rules:
    /// not a list page, a paging cycle, a redirect, over a size limit) or `CleverError` (any other
    /// answer that is not usable).
    pub fn reason(&self) -> &'static str {
        match self {
            CleverError::CredentialsInvalid { .. } | CleverError::AppCredentials { .. } => {
                "CredentialsInvalid"
            }
            CleverError::DistrictNotFound { .. } | CleverError::NoDistrictToken { .. } => {
                "DistrictNotFound"
            }
            CleverError::InvalidBody { .. }
            | CleverError::Protocol { .. }
            | CleverError::Redirect { .. } => "CleverProtocolError",
            CleverError::Certificate { .. } => "CleverCertificateUntrusted",
            e if e.is_retriable() => "CleverUnavailable",
            _ => "CleverError",
        }
    }

    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            CleverError::CredentialsInvalid { .. } => "credentials_invalid",
            CleverError::DistrictNotFound { .. } => "district_not_found",
            CleverError::NotFound { .. } => "not_found",
            CleverError::PageTooLarge { .. } => "page_too_large",
            CleverError::RateLimited { .. } => "rate_limited",
            CleverError::Server { .. } => "server_error",
            CleverError::Rejected { .. } => "rejected",
            CleverError::Timeout { .. } => "timeout",
            CleverError::Connection { .. } => "connection",
            CleverError::Certificate { .. } => "certificate",
            CleverError::InvalidBody { .. } => "invalid_body",
            CleverError::Protocol { .. } => "protocol",
            CleverError::Redirect { .. } => "redirect",
            CleverError::AppCredentials { .. } => "app_credentials",
            CleverError::NoDistrictToken { .. } => "no_district_token",
            CleverError::Config(_) => "config",
        }
    }
}
