//! The pure decision: does this event become an email? Emails go out on changes of state, not on
//! every run: a repeat of the state last emailed (same fingerprint) within the repeat interval is
//! suppressed; a different problem, a recovery, or the same problem after the interval is sent.
use jiff::{SignedDuration, Timestamp};

use super::notice::{Notice, NoticeKind};
use crate::api::SyncSettings;

/// Repeats of the same problem are re-sent at most once per this interval by default.
pub const DEFAULT_REPEAT_INTERVAL: SignedDuration = SignedDuration::from_hours(24);

/// A connection's notification settings (from its `spec.settings`) plus the operator's repeat
/// interval (an operator option, not an API field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySettings {
    pub send_emails: bool,
    pub send_success_emails: bool,
    pub recipients: Vec<String>,
    pub repeat_interval: SignedDuration,
}

impl NotifySettings {
    pub fn from_sync_settings(settings: &SyncSettings, repeat_interval: SignedDuration) -> Self {
        NotifySettings {
            send_emails: settings.send_emails,
            send_success_emails: settings.send_success_emails,
            recipients: settings.email_recipients.clone(),
            repeat_interval,
        }
    }
}

/// What the connection's recipients were last told (a row of `notification_state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastNotified {
    pub kind: NoticeKind,
    pub fingerprint: String,
    pub sent_at: Timestamp,
    /// A problem was emailed and no recovery since.
    pub problem_open: bool,
}

/// Why an event is not emailed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// `sendEmails` is false.
    EmailsDisabled,
    /// `sendEmails` but no recipients.
    NoRecipients,
    /// A success, no problem open, and `sendSuccessEmails` is false.
    SuccessEmailsDisabled,
    /// The same state was emailed less than the repeat interval ago.
    Repeat,
}

/// The decision for one event.
#[derive(Clone, Debug, PartialEq)]
// One decision per email, never held in bulk: boxing the event would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum EmailDecision {
    /// Email this event (a success may have become a [`Notice::Recovered`], a recovery without an
    /// open problem a [`Notice::RunSucceeded`]).
    Send(Notice),
    Skip(SkipReason),
}

/// Decides whether `event` is emailed, given the last notified state of its connection.
pub fn decide(
    settings: &NotifySettings,
    event: &Notice,
    last: Option<&LastNotified>,
    now: Timestamp,
) -> EmailDecision {
    if !settings.send_emails {
        return EmailDecision::Skip(SkipReason::EmailsDisabled);
    }
    if settings.recipients.iter().all(|r| r.trim().is_empty()) {
        return EmailDecision::Skip(SkipReason::NoRecipients);
    }
    let problem_open = last.is_some_and(|l| l.problem_open);
    match event.kind() {
        NoticeKind::RunSucceeded | NoticeKind::Recovered => {
            if problem_open {
                // as_recovered is Some for both success kinds.
                return event.as_recovered().map_or(
                    EmailDecision::Skip(SkipReason::SuccessEmailsDisabled),
                    EmailDecision::Send,
                );
            }
            if settings.send_success_emails {
                return event.as_succeeded().map_or(
                    EmailDecision::Skip(SkipReason::SuccessEmailsDisabled),
                    EmailDecision::Send,
                );
            }
            EmailDecision::Skip(SkipReason::SuccessEmailsDisabled)
        }
        _ => {
            let fingerprint = event.fingerprint();
            let repeat = last.is_some_and(|l| {
                // abs: a writer whose clock runs behind still sees a repeat.
                l.fingerprint == fingerprint
                    && now.duration_since(l.sent_at).abs() < settings.repeat_interval
            });
            if repeat {
                EmailDecision::Skip(SkipReason::Repeat)
            } else {
                EmailDecision::Send(event.clone())
            }
        }
    }
}

/// The notification state after `sent` was emailed at `now` (`problem_since` kept while a problem
/// stays open).
pub fn next_state(sent: &Notice, previous: Option<&LastNotified>, now: Timestamp) -> LastNotified {
    let kind = sent.kind();
    let problem_open = if kind.is_problem() {
        true
    } else if matches!(kind, NoticeKind::Recovered | NoticeKind::RunSucceeded) {
        false
    } else {
        previous.is_some_and(|p| p.problem_open)
    };
    LastNotified {
        kind,
        fingerprint: sent.fingerprint(),
        sent_at: now,
        problem_open,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
