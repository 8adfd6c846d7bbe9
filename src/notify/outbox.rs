//! The outbox in Postgres (`migrations/90000000000000_email_outbox.sql`): `enqueue` writes an
//! email in the caller's transaction, so it exists if and only if the caller's outcome commits.
use jiff::Timestamp;

use crate::store::time::Ts;
use sqlx::PgConnection;

use super::decide::{EmailDecision, LastNotified, NotifySettings, SkipReason, decide, next_state};
use super::notice::{Notice, NoticeKind};
use super::render::render;

/// Errors of the outbox and the sender.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("email outbox: {action}: {source}")]
    Database {
        action: &'static str,
        source: sqlx::Error,
    },
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
}

pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> NotifyError {
    move |source| NotifyError::Database { action, source }
}

/// Decides whether `event` is emailed and, if so, renders it into the outbox and records the new
/// notification state, all on `tx`, the caller's open transaction (the one that records the run's
/// outcome or the verification result). Returns the outbox id, or `None` when nothing is sent
/// (emails off, success emails off, or a repeat within the interval).
///
/// Locks the connection's `notification_state` row until the caller commits, which serialises
/// concurrent events of one connection (run outcomes, verifications and missed slots, possibly from
/// two controller replicas during a Lease handover); keep the transaction short.
/// `now` drives the decision (repeat interval); the outbox row's timestamps use the database clock.
pub async fn enqueue(
    tx: &mut PgConnection,
    settings: &NotifySettings,
    event: &Notice,
    now: Timestamp,
) -> Result<Option<i64>, NotifyError> {
    let connection = event.source().connection.as_str();
    if !settings.send_emails {
        // No state change: don't even take the lock.
        tracing::debug!(connection, kind = %event.kind(), "email not sent: sendEmails is false");
        return Ok(None);
    }
    sqlx::query!(
        "INSERT INTO notification_state (connection) VALUES ($1) ON CONFLICT DO NOTHING",
        connection,
    )
    .execute(&mut *tx)
    .await
    .map_err(db("creating the notification state"))?;
    let stored = sqlx::query_as!(
        StateRow,
        "SELECT kind, fingerprint, last_sent_at AS \"last_sent_at: Ts\", problem_open FROM notification_state \
         WHERE connection = $1 FOR UPDATE",
        connection,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db("locking the notification state"))?;
    let last = stored.last_notified();

    let recipients = valid_recipients(&settings.recipients, connection);
    let settings = NotifySettings {
        recipients: recipients.clone(),
        ..settings.clone()
    };
    let sent = match decide(&settings, event, last.as_ref(), now) {
        EmailDecision::Send(sent) => sent,
        EmailDecision::Skip(reason) => {
            log_skip(connection, event, reason);
            return Ok(None);
        }
    };
    let email = render(&sent);
    let state = next_state(&sent, last.as_ref(), now);
    let id = sqlx::query_scalar!(
        "INSERT INTO email_outbox (connection, kind, fingerprint, run_id, recipients, subject, \
         body_text, body_html) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        connection,
        sent.kind().as_str(),
        state.fingerprint,
        sent.run_id(),
        &recipients,
        email.subject,
        email.text,
        email.html,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db("inserting into the outbox"))?;
    sqlx::query!(
        "UPDATE notification_state SET kind = $2, fingerprint = $3, last_sent_at = $4, \
         last_outbox_id = $5, problem_open = $6, \
         problem_since = CASE WHEN $6 THEN coalesce(CASE WHEN problem_open THEN problem_since END, $4) END, \
         updated_at = now() WHERE connection = $1",
        connection,
        state.kind.as_str(),
        state.fingerprint,
        Ts(state.sent_at) as _,
        id,
        state.problem_open,
    )
    .execute(&mut *tx)
    .await
    .map_err(db("updating the notification state"))?;
    tracing::info!(
        connection,
        kind = %sent.kind(),
        run_id = sent.run_id(),
        outbox_id = id,
        recipients = recipients.len(),
        "email queued"
    );
    Ok(Some(id))
}

/// A `notification_state` row as read back.
struct StateRow {
    kind: Option<String>,
    fingerprint: Option<String>,
    last_sent_at: Option<Ts>,
    problem_open: bool,
}

impl StateRow {
    /// What the recipients were last told, if anything (and if its kind is still known).
    fn last_notified(self) -> Option<LastNotified> {
        Some(LastNotified {
            kind: NoticeKind::parse(&self.kind?)?,
            fingerprint: self.fingerprint?,
            sent_at: self.last_sent_at?.0,
            problem_open: self.problem_open,
        })
    }
}

/// The recipients lettre can address; invalid ones are logged (admins' addresses, not children's)
/// and dropped so that one typo doesn't block the others.
fn valid_recipients(recipients: &[String], connection: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in recipients {
        let r = r.trim();
        if r.is_empty() {
            continue;
        }
        if r.parse::<lettre::Address>().is_ok() {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
                out.push(r.to_string());
            }
        } else {
            tracing::warn!(
                connection,
                recipient = r,
                "ignoring an invalid address in emailRecipients"
            );
        }
    }
    out
}

fn log_skip(connection: &str, event: &Notice, reason: SkipReason) {
    tracing::debug!(connection, kind = %event.kind(), run_id = event.run_id(), ?reason, "email not sent");
}

/// The stored notification state of a connection (for status, the CLI and tests).
pub async fn notification_state(
    conn: &mut PgConnection,
    connection: &str,
) -> Result<Option<LastNotified>, NotifyError> {
    let row = sqlx::query_as!(
        StateRow,
        "SELECT kind, fingerprint, last_sent_at AS \"last_sent_at: Ts\", problem_open FROM notification_state \
         WHERE connection = $1",
        connection,
    )
    .fetch_optional(conn)
    .await
    .map_err(db("reading the notification state"))?;
    Ok(row.and_then(StateRow::last_notified))
}
