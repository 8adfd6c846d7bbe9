//! Emails about sync events, delivered exactly once (docs/email.md).
//!
//! - [`notice`]: the notices, i.e. emailable sync events (failed, held, recovered, credentials
//!   invalid, district not found, missed schedule, succeeded), carrying no personal data.
//! - [`decide`]: the pure decision: emails go out on changes of state, not on every run.
//! - [`render`]: subject, plain-text and HTML bodies.
//! - [`outbox`]: [`enqueue`], called inside the transaction that records the outcome.
//! - [`sender`]: delivers the outbox over SMTP with retry and backoff.
//! - [`config`]: the SMTP configuration (Secret or flags) and the lettre transport.
//! - [`args`]: the controller's email flags (SMTP for local use, the repeat interval).
pub mod args;
pub mod config;
pub mod decide;
pub mod notice;
pub mod outbox;
pub mod render;
pub mod sender;

pub use args::{NotifyArgs, SmtpArgs};
pub use config::{ConfigError, SmtpConfig, TlsMode};
pub use decide::{
    DEFAULT_REPEAT_INTERVAL, EmailDecision, LastNotified, NotifySettings, SkipReason, decide,
};
pub use notice::{Counts, Notice, NoticeKind, Source};
pub use outbox::{NotifyError, enqueue, notification_state};
pub use render::{Rendered, render};
pub use sender::{Delivery, Sender, SenderOptions, message_id};
