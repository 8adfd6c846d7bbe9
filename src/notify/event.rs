//! The events that can become emails. They carry only what an email may show: the connection,
//! the district's name and Clever id, run ids, counts and stable reasons with one-line messages.
//! Never children's names, birth dates or emails (the callers' reasons and messages are already
//! PII-free by the sync_runs rules; [`scrub`] is a second line of defence).
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which connection and district an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The RosterConnection as `namespace/name`.
    pub connection: String,
    /// The Clever district id.
    pub district_id: String,
    /// The district's name as Clever reports it, when known.
    pub district_name: Option<String>,
}

impl Source {
    /// How emails name the district: its name, else its Clever id.
    pub fn district_label(&self) -> &str {
        match self.district_name.as_deref() {
            Some(name) if !name.trim().is_empty() => name.trim(),
            _ => &self.district_id,
        }
    }

    /// The connection's key, when `connection` is one (`namespace/name`).
    pub fn key(&self) -> Option<crate::run::ConnectionKey> {
        crate::run::ConnectionKey::parse(&self.connection).ok()
    }
}

/// What a run did, per entity: the run record's counts.
pub use crate::run::Counts;

/// A sync event that may be emailed. See `docs/email.md` for when each is sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Event {
    /// A run failed (the roster was left as it was).
    RunFailed {
        source: Source,
        run_id: String,
        /// A stable label such as `CleverUnavailable`; the repeat-suppression fingerprint.
        reason: String,
        message: String,
        counts: Counts,
    },
    /// A run was held by the removal guard: nothing was applied.
    RunHeld {
        source: Source,
        run_id: String,
        /// The SyncSchedule to annotate to approve (same namespace), when the run had one.
        schedule: Option<String>,
        reason: String,
        message: String,
        /// The planned counts: what the run would have done (removals = deactivated + removed).
        counts: Counts,
    },
    /// The first success after a problem that was emailed. A [`Event::RunSucceeded`] is turned
    /// into this automatically when a problem is open, so callers may always send `RunSucceeded`.
    Recovered {
        source: Source,
        run_id: String,
        counts: Counts,
    },
    /// The connection's Clever credentials were rejected.
    CredentialsInvalid {
        source: Source,
        run_id: Option<String>,
        message: String,
    },
    /// Clever doesn't know the district id (or it isn't shared with the app).
    DistrictNotFound {
        source: Source,
        run_id: Option<String>,
        message: String,
    },
    /// A scheduled slot did not run (e.g. the operator was down past the starting deadline).
    ScheduleMissed {
        source: Source,
        schedule: String,
        slot: DateTime<Utc>,
        reason: String,
        message: String,
    },
    /// A run succeeded (emailed only with `sendSuccessEmails`, or as a recovery).
    RunSucceeded {
        source: Source,
        run_id: String,
        counts: Counts,
    },
}

/// The kind of an event, as stored in the outbox and the notification state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    RunFailed,
    RunHeld,
    Recovered,
    CredentialsInvalid,
    DistrictNotFound,
    ScheduleMissed,
    RunSucceeded,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::RunFailed,
        EventKind::RunHeld,
        EventKind::Recovered,
        EventKind::CredentialsInvalid,
        EventKind::DistrictNotFound,
        EventKind::ScheduleMissed,
        EventKind::RunSucceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunFailed => "RunFailed",
            EventKind::RunHeld => "RunHeld",
            EventKind::Recovered => "Recovered",
            EventKind::CredentialsInvalid => "CredentialsInvalid",
            EventKind::DistrictNotFound => "DistrictNotFound",
            EventKind::ScheduleMissed => "ScheduleMissed",
            EventKind::RunSucceeded => "RunSucceeded",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A state that needs someone's attention and that a later success resolves ("recovered").
    /// A missed schedule is reported but isn't one: the next run on time resolves it silently.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            EventKind::RunFailed
                | EventKind::RunHeld
                | EventKind::CredentialsInvalid
                | EventKind::DistrictNotFound
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::RunFailed { .. } => EventKind::RunFailed,
            Event::RunHeld { .. } => EventKind::RunHeld,
            Event::Recovered { .. } => EventKind::Recovered,
            Event::CredentialsInvalid { .. } => EventKind::CredentialsInvalid,
            Event::DistrictNotFound { .. } => EventKind::DistrictNotFound,
            Event::ScheduleMissed { .. } => EventKind::ScheduleMissed,
            Event::RunSucceeded { .. } => EventKind::RunSucceeded,
        }
    }

    pub fn source(&self) -> &Source {
        match self {
            Event::RunFailed { source, .. }
            | Event::RunHeld { source, .. }
            | Event::Recovered { source, .. }
            | Event::CredentialsInvalid { source, .. }
            | Event::DistrictNotFound { source, .. }
            | Event::ScheduleMissed { source, .. }
            | Event::RunSucceeded { source, .. } => source,
        }
    }

    pub fn run_id(&self) -> Option<&str> {
        match self {
            Event::RunFailed { run_id, .. }
            | Event::RunHeld { run_id, .. }
            | Event::Recovered { run_id, .. }
            | Event::RunSucceeded { run_id, .. } => Some(run_id),
            Event::CredentialsInvalid { run_id, .. } | Event::DistrictNotFound { run_id, .. } => {
                run_id.as_deref()
            }
            Event::ScheduleMissed { .. } => None,
        }
    }

    /// What makes two events "the same state" for repeat suppression. A failed run whose reason is
    /// `CredentialsInvalid` or `DistrictNotFound` is the same state as the controller's verification
    /// event of that name, so a failed run and a failed verification don't both email it. Successes are
    /// per run (never suppressed as repeats).
    pub fn fingerprint(&self) -> String {
        match self {
            Event::RunFailed { reason, source, .. } => match reason.as_str() {
                "CredentialsInvalid" => "CredentialsInvalid".to_string(),
                "DistrictNotFound" => format!("DistrictNotFound:{}", source.district_id),
                _ => format!("RunFailed:{}", label(reason)),
            },
            Event::RunHeld { reason, .. } => format!("RunHeld:{}", label(reason)),
            Event::CredentialsInvalid { .. } => "CredentialsInvalid".to_string(),
            Event::DistrictNotFound { source, .. } => {
                format!("DistrictNotFound:{}", source.district_id)
            }
            Event::ScheduleMissed {
                schedule, reason, ..
            } => format!("ScheduleMissed:{schedule}:{}", label(reason)),
            Event::Recovered { run_id, .. } => format!("Recovered:{run_id}"),
            Event::RunSucceeded { run_id, .. } => format!("RunSucceeded:{run_id}"),
        }
    }

    /// This event as a recovery (a success), or `None` for a problem event.
    pub fn as_recovered(&self) -> Option<Event> {
        match self {
            Event::RunSucceeded {
                source,
                run_id,
                counts,
            }
            | Event::Recovered {
                source,
                run_id,
                counts,
            } => Some(Event::Recovered {
                source: source.clone(),
                run_id: run_id.clone(),
                counts: *counts,
            }),
            _ => None,
        }
    }

    /// This event as a plain success, or `None` for a problem event.
    pub fn as_succeeded(&self) -> Option<Event> {
        match self.as_recovered()? {
            Event::Recovered {
                source,
                run_id,
                counts,
            } => Some(Event::RunSucceeded {
                source,
                run_id,
                counts,
            }),
            _ => None,
        }
    }
}

fn label(reason: &str) -> &str {
    let r = reason.trim();
    if r.is_empty() { "Unknown" } else { r }
}

/// Makes a caller's one-line text safe to put in an email: one line, at most 500 characters, and
/// anything that looks like an email address or a Clever birth date (`M/D/YYYY`) replaced.
pub fn scrub(text: &str) -> String {
    let one_line: String = text
        .split_whitespace()
        .map(|word| {
            if looks_like_email(word) {
                "[redacted email]"
            } else if looks_like_date(word) {
                "[redacted date]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    match one_line.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

fn looks_like_email(word: &str) -> bool {
    word.split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
}

fn looks_like_date(word: &str) -> bool {
    let word = word.trim_matches(|c: char| !c.is_ascii_digit());
    let parts: Vec<&str> = word.split(['/', '-']).collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && (parts[2].len() == 4 || parts[0].len() == 4)
        && word.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_emails_and_clever_dates_and_newlines() {
        assert_eq!(
            scrub("child a.b@school.org born 3/7/2019\nfailed"),
            "child [redacted email] born [redacted date] failed"
        );
        assert_eq!(
            scrub("slot 2025-01-02T03:00:00Z missed"),
            "slot 2025-01-02T03:00:00Z missed"
        );
        assert_eq!(scrub(&"x".repeat(600)).chars().count(), 501);
    }

    #[test]
    fn failures_of_credentials_match_the_verification_event() {
        let source = Source {
            connection: "ns/a".into(),
            district_id: "d1".into(),
            district_name: None,
        };
        let failed = Event::RunFailed {
            source: source.clone(),
            run_id: "r1".into(),
            reason: "CredentialsInvalid".into(),
            message: String::new(),
            counts: Counts::default(),
        };
        let verified = Event::CredentialsInvalid {
            source,
            run_id: None,
            message: String::new(),
        };
        assert_eq!(failed.fingerprint(), verified.fingerprint());
    }
}
