//! Notices: the sync events that can become emails (not the Kubernetes Events the controller
//! publishes). They carry only what an email may show: the connection, the district's name and
//! Clever id, run ids, counts and stable reasons with one-line messages. Never children's names,
//! birth dates or emails (the callers' reasons and messages are already PII-free by the sync_runs
//! rules; [`scrub`] is a second line of defence).
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Which connection and district a notice is about.
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

/// A sync event that may be emailed (a notice). See `docs/email.md` for when each is sent. The
/// serialized form (`kind` tag, variant names) is stored in the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Notice {
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
    /// The first success after a problem that was emailed. A [`Notice::RunSucceeded`] is turned
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
    /// The connection's configuration keeps every sync from running (e.g. its journeyPolicyRef
    /// names no JourneyPolicy): `reason` is the connection's Ready reason.
    ConnectionMisconfigured {
        source: Source,
        reason: String,
        message: String,
    },
    /// A scheduled slot did not run (e.g. the operator was down past the starting deadline).
    ScheduleMissed {
        source: Source,
        schedule: String,
        slot: Timestamp,
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

/// The kind of a notice, as stored in the outbox and the notification state (the variant name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoticeKind {
    RunFailed,
    RunHeld,
    Recovered,
    CredentialsInvalid,
    DistrictNotFound,
    ScheduleMissed,
    RunSucceeded,
    ConnectionMisconfigured,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 8] = [
        NoticeKind::RunFailed,
        NoticeKind::RunHeld,
        NoticeKind::Recovered,
        NoticeKind::CredentialsInvalid,
        NoticeKind::DistrictNotFound,
        NoticeKind::ScheduleMissed,
        NoticeKind::RunSucceeded,
        NoticeKind::ConnectionMisconfigured,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::RunFailed => "RunFailed",
            NoticeKind::RunHeld => "RunHeld",
            NoticeKind::Recovered => "Recovered",
            NoticeKind::CredentialsInvalid => "CredentialsInvalid",
            NoticeKind::DistrictNotFound => "DistrictNotFound",
            NoticeKind::ScheduleMissed => "ScheduleMissed",
            NoticeKind::RunSucceeded => "RunSucceeded",
            NoticeKind::ConnectionMisconfigured => "ConnectionMisconfigured",
        }
    }

    pub fn parse(s: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A state that needs someone's attention and that a later success resolves ("recovered").
    /// A missed schedule is reported but isn't one: the next run on time resolves it silently.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            NoticeKind::RunFailed
                | NoticeKind::RunHeld
                | NoticeKind::CredentialsInvalid
                | NoticeKind::DistrictNotFound
                | NoticeKind::ConnectionMisconfigured
        )
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Notice {
    pub fn kind(&self) -> NoticeKind {
        match self {
            Notice::RunFailed { .. } => NoticeKind::RunFailed,
            Notice::RunHeld { .. } => NoticeKind::RunHeld,
            Notice::Recovered { .. } => NoticeKind::Recovered,
            Notice::CredentialsInvalid { .. } => NoticeKind::CredentialsInvalid,
            Notice::DistrictNotFound { .. } => NoticeKind::DistrictNotFound,
            Notice::ScheduleMissed { .. } => NoticeKind::ScheduleMissed,
            Notice::RunSucceeded { .. } => NoticeKind::RunSucceeded,
            Notice::ConnectionMisconfigured { .. } => NoticeKind::ConnectionMisconfigured,
        }
    }

    pub fn source(&self) -> &Source {
        match self {
            Notice::RunFailed { source, .. }
            | Notice::RunHeld { source, .. }
            | Notice::Recovered { source, .. }
            | Notice::CredentialsInvalid { source, .. }
            | Notice::DistrictNotFound { source, .. }
            | Notice::ScheduleMissed { source, .. }
            | Notice::RunSucceeded { source, .. }
            | Notice::ConnectionMisconfigured { source, .. } => source,
        }
    }

    pub fn run_id(&self) -> Option<&str> {
        match self {
            Notice::RunFailed { run_id, .. }
            | Notice::RunHeld { run_id, .. }
            | Notice::Recovered { run_id, .. }
            | Notice::RunSucceeded { run_id, .. } => Some(run_id),
            Notice::CredentialsInvalid { run_id, .. } | Notice::DistrictNotFound { run_id, .. } => {
                run_id.as_deref()
            }
            Notice::ScheduleMissed { .. } | Notice::ConnectionMisconfigured { .. } => None,
        }
    }

    /// What makes two events "the same state" for repeat suppression. A failed run whose reason is
    /// `CredentialsInvalid` or `DistrictNotFound` is the same state as the controller's verification
    /// event of that name, so a failed run and a failed verification don't both email it. Successes are
    /// per run (never suppressed as repeats).
    pub fn fingerprint(&self) -> String {
        match self {
            Notice::RunFailed { reason, source, .. } => match reason.as_str() {
                "CredentialsInvalid" => "CredentialsInvalid".to_string(),
                "DistrictNotFound" => format!("DistrictNotFound:{}", source.district_id),
                _ => format!("RunFailed:{}", label(reason)),
            },
            Notice::RunHeld { reason, .. } => format!("RunHeld:{}", label(reason)),
            Notice::CredentialsInvalid { .. } => "CredentialsInvalid".to_string(),
            Notice::DistrictNotFound { source, .. } => {
                format!("DistrictNotFound:{}", source.district_id)
            }
            Notice::ScheduleMissed {
                schedule, reason, ..
            } => format!("ScheduleMissed:{schedule}:{}", label(reason)),
            Notice::Recovered { run_id, .. } => format!("Recovered:{run_id}"),
            Notice::RunSucceeded { run_id, .. } => format!("RunSucceeded:{run_id}"),
            Notice::ConnectionMisconfigured { reason, .. } => {
                format!("ConnectionMisconfigured:{}", label(reason))
            }
        }
    }

    /// This event as a recovery (a success), or `None` for a problem event.
    pub fn as_recovered(&self) -> Option<Notice> {
        match self {
            Notice::RunSucceeded {
                source,
                run_id,
                counts,
            }
            | Notice::Recovered {
                source,
                run_id,
                counts,
            } => Some(Notice::Recovered {
                source: source.clone(),
                run_id: run_id.clone(),
                counts: *counts,
            }),
            _ => None,
        }
    }

    /// This event as a plain success, or `None` for a problem event.
    pub fn as_succeeded(&self) -> Option<Notice> {
        match self.as_recovered()? {
            Notice::Recovered {
                source,
                run_id,
                counts,
            } => Some(Notice::RunSucceeded {
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
        let failed = Notice::RunFailed {
            source: source.clone(),
            run_id: "r1".into(),
            reason: "CredentialsInvalid".into(),
            message: String::new(),
            counts: Counts::default(),
        };
        let verified = Notice::CredentialsInvalid {
            source,
            run_id: None,
            message: String::new(),
        };
        assert_eq!(failed.fingerprint(), verified.fingerprint());
    }
}
