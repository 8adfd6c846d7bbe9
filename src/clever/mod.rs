//! The Clever API v3.0 client: typed models, tolerant per-record decoding, streaming pagination,
//! typed errors with retries, and the district token lookup from app credentials.
//!
//! Facts about the API are in `docs/clever-api.md` of the shared docs; the emulator in
//! [`crate::devtools::emulator`] serves the same models for tests, the demo and the benchmarks.

mod client;
mod credentials;
mod decode;
mod error;
mod grade;
mod hosts;
pub mod models;
mod oauth;
mod paging;
mod retry;
mod transport;
pub mod wire;

pub use client::{CleverClient, ClientConfig, ClientStats, Token, oauth_base_for};
pub use credentials::{CleverCredentials, CredentialKeys, SecretKeysMissing};
pub use decode::{
    Decoded, Field, Keep, RawValue, RecordProblem, decode_page, decode_page_with, record_id,
    seek_field,
};
pub use error::CleverError;
pub use grade::CleverGrade;
pub use hosts::{
    AllowedApiHosts, AllowedHost, CLEVER_API_HOSTS, HostNotAllowed, parse_allowed_host,
};
pub use models::*;
pub use oauth::{AppCredentials, lookup_district_token};
pub use paging::Paging;
pub use retry::parse_rate_limit_reset;
