//! The sender: delivers the outbox over SMTP with retry and backoff.
//!
//! Each message is claimed in its own transaction with `FOR UPDATE SKIP LOCKED`, sent while the row
//! stays locked, and marked sent in that same transaction: two senders never send one row, and a
//! sender that dies mid-send releases the row (its connection drops, the transaction rolls back)
//! for the next one. The one window for a duplicate is between the SMTP server's 250 and the
//! commit of `sent_at` (one UPDATE and a COMMIT); every attempt of a row carries the same
//! Message-ID, derived from the outbox id, so receivers can also dedupe.
use std::future::Future;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use crate::store::time::Ts;
use futures::FutureExt;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;

use super::config::SmtpConfig;
use super::outbox::{NotifyError, db};

/// Timing of the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderOptions {
    /// How often to look for due messages when idle.
    pub poll_interval: Duration,
    /// The delay after a first failed attempt; doubled after each further one...
    pub backoff_initial: Duration,
    /// ...up to this cap. An outage of any length is ridden out at this pace.
    pub backoff_max: Duration,
    /// A message the SMTP server rejects permanently (5xx) this many times is given up
    /// (`failed_at` set). Connection failures and 4xx never give up.
    pub max_permanent_failures: i32,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            poll_interval: Duration::from_secs(2),
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(30 * 60),
            max_permanent_failures: 5,
        }
    }
}

impl SenderOptions {
    /// The delay before attempt `attempts + 1`, after `attempts` failed ones (at least 1).
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.backoff_initial
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.backoff_max)
    }
}

/// What happened to one claimed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent {
        id: i64,
    },
    Retry {
        id: i64,
        attempts: i32,
        error: String,
    },
    GaveUp {
        id: i64,
        attempts: i32,
        error: String,
    },
}

/// Delivers the outbox. Cheap to clone; run one per controller replica (more are safe).
#[derive(Clone)]
pub struct Sender {
    pool: PgPool,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    options: SenderOptions,
    /// The longest one message's SMTP exchange may take.
    deadline: Duration,
    /// Asked right before each message is claimed and sent: `false` sends nothing (the controller
    /// passes "this replica still holds the leader Lease").
    gate: Option<Gate>,
}

/// See [`Sender::with_gate`].
pub type Gate = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

impl Sender {
    pub fn new(
        pool: PgPool,
        config: &SmtpConfig,
        options: SenderOptions,
    ) -> Result<Sender, NotifyError> {
        Ok(Sender {
            pool,
            transport: config.transport()?,
            from: config.from.clone(),
            options,
            deadline: config.timeout.saturating_mul(2),
            gate: None,
        })
    }

    /// Sends only while `gate` says yes, asked right before each message (the message stays due
    /// otherwise, for whoever may send).
    pub fn with_gate(mut self, gate: Gate) -> Sender {
        self.gate = Some(gate);
        self
    }

    fn may_send(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g())
    }

    /// Delivers due messages until `shutdown` completes. A message being sent when shutdown is
    /// asked for is finished first; aborting the task instead is safe too (the row is retried).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(from = %self.from, "email sender started");
        loop {
            loop {
                if shutdown.as_mut().now_or_never().is_some() {
                    tracing::info!("email sender stopped");
                    return;
                }
                match self.send_one().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "email sender: database error; retrying");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.as_mut() => {
                    tracing::info!("email sender stopped");
                    return;
                }
                _ = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }

    /// Claims one due message, tries to send it and records the result. `None`: nothing due.
    pub async fn send_one(&self) -> Result<Option<Delivery>, NotifyError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a transaction"))?;
        let Some(row) = sqlx::query_as!(
            OutboxRow,
            "SELECT id, connection, kind, recipients, subject, body_text, body_html, \
             created_at AS \"created_at: Ts\", \
             attempts FROM email_outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= clock_timestamp() \
             ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("claiming a due email"))?
        else {
            return Ok(None);
        };
        if !self.may_send() {
            // Not ours to send any more (the transaction rolls back: the row stays due).
            return Ok(None);
        }
        let (id, connection, kind) = (row.id, row.connection.as_str(), row.kind.as_str());
        let attempts = row.attempts + 1;

        let result = match self.message(&row) {
            // lettre's timeout bounds connecting; this bounds the whole exchange, so a stalled
            // server can't hold the row (and this sender) forever.
            Ok(message) => {
                match tokio::time::timeout(self.deadline, self.transport.send(message)).await {
                    Ok(sent) => sent.map(|_| ()).map_err(|e| {
                        let permanent = e.is_permanent();
                        (e.to_string(), permanent)
                    }),
                    Err(_) => Err((
                        format!("the SMTP exchange took longer than {:?}", self.deadline),
                        false,
                    )),
                }
            }
            // A message that cannot be built never will be: give up at once.
            Err(why) => Err((why, true)),
        };
        let delivery = match result {
            Ok(()) => {
                sqlx::query!(
                    "UPDATE email_outbox SET sent_at = clock_timestamp(), attempts = $2, \
                     last_error = NULL WHERE id = $1",
                    id,
                    attempts,
                )
                .execute(&mut *tx)
                .await
                .map_err(db("marking an email sent"))?;
                Delivery::Sent { id }
            }
            Err((error, permanent)) => {
                let give_up = permanent && attempts >= self.options.max_permanent_failures;
                let delay = self.options.backoff(attempts);
                sqlx::query!(
                    "UPDATE email_outbox SET attempts = $2, last_error = $3, \
                     next_attempt_at = clock_timestamp() + make_interval(secs => $4), \
                     failed_at = CASE WHEN $5 THEN clock_timestamp() END WHERE id = $1",
                    id,
                    attempts,
                    error,
                    delay.as_secs_f64(),
                    give_up,
                )
                .execute(&mut *tx)
                .await
                .map_err(db("recording a failed email attempt"))?;
                if give_up {
                    Delivery::GaveUp {
                        id,
                        attempts,
                        error,
                    }
                } else {
                    Delivery::Retry {
                        id,
                        attempts,
                        error,
                    }
                }
            }
        };
        tx.commit()
            .await
            .map_err(db("committing an email's delivery"))?;
        match &delivery {
            Delivery::Sent { id } => {
                tracing::info!(outbox_id = id, connection, kind, attempts, "email sent")
            }
            Delivery::Retry {
                id,
                attempts,
                error,
            } => tracing::warn!(
                outbox_id = id,
                connection,
                kind,
                attempts,
                %error,
                retry_in_seconds = self.options.backoff(*attempts).as_secs_f64(),
                "email not sent; will retry"
            ),
            Delivery::GaveUp {
                id,
                attempts,
                error,
            } => tracing::error!(
                outbox_id = id,
                connection,
                kind,
                attempts,
                %error,
                "email rejected permanently; giving up (check emailRecipients and the SMTP relay)"
            ),
        }
        Ok(Some(delivery))
    }

    fn message(&self, row: &OutboxRow) -> Result<Message, String> {
        let (id, created_at) = (row.id, row.created_at.0);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(row.subject.clone())
            .date(SystemTime::from(created_at))
            .message_id(Some(message_id(id, created_at, &self.from)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_string(),
            ));
        for r in &row.recipients {
            let to: Mailbox = r
                .parse()
                .map_err(|e| format!("invalid recipient {r:?}: {e}"))?;
            builder = builder.to(to);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                row.body_text.clone(),
                row.body_html.clone(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))
    }
}

/// A due `email_outbox` row, as claimed by the sender.
struct OutboxRow {
    id: i64,
    connection: String,
    kind: String,
    recipients: Vec<String>,
    subject: String,
    body_text: String,
    body_html: String,
    created_at: Ts,
    attempts: i32,
}

/// The Message-ID of an outbox row: the same on every attempt, unique per database row.
pub fn message_id(id: i64, created_at: Timestamp, from: &Mailbox) -> String {
    format!(
        "<rostersync.{id}.{}@{}>",
        created_at.as_microsecond(),
        from.email.domain()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = SenderOptions {
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(600),
            ..SenderOptions::default()
        };
        let secs: Vec<u64> = (1..=7).map(|a| o.backoff(a).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(o.backoff(0).as_secs(), 30);
        assert_eq!(o.backoff(i32::MAX).as_secs(), 600);
    }
}
