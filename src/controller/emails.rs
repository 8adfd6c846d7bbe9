//! The controller is the one place that emails, because it observes every
//! outcome (runs written by the sync Job, Failed rows it writes itself for pods that died,
//! verification results, missed slots). This module turns those outcomes into
//! [`crate::notify::Notice`]s and queues them with [`crate::notify::enqueue`]; the sender
//! ([`crate::notify::Sender`], started by [`super::run`]) delivers them.
//!
//! Exactly once per run: [`crate::store::runs::mark_notified`] sets `sync_runs.notified_at` in the same
//! transaction as the run's email, so a restart (or a second replica) never queues it twice.
use jiff::Timestamp;
use sqlx::PgConnection;

use super::error::Result;
use crate::api::RosterConnection;
use crate::notify::{Notice, NotifySettings, Source};
use crate::run::{ConnectionKey, RunRecord, RunResult};
use crate::store::StoreError;

/// The reason of [`Notice::ScheduleMissed`]: a slot is recorded as missed once it can no longer
/// start within `startingDeadlineMinutes` (the connection was not Ready, a run was active, or the
/// controller was down).
pub const MISSED_REASON: &str = "StartingDeadlineExceeded";

/// The connection's notification settings with the operator's repeat interval.
pub fn settings(conn: &RosterConnection, repeat_interval: jiff::SignedDuration) -> NotifySettings {
    NotifySettings::from_sync_settings(&conn.spec.settings, repeat_interval)
}

/// Which connection and district a notice is about.
pub fn source(conn: &RosterConnection, key: &ConnectionKey) -> Source {
    Source {
        connection: key.to_string(),
        district_id: conn.spec.district_id.clone(),
        district_name: conn
            .status
            .as_ref()
            .and_then(|s| s.district.as_ref())
            .map(|d| d.name.clone())
            .filter(|n| !n.trim().is_empty()),
    }
}

/// The notice of a finished run: `None` while it is still running. Successes are always reported
/// as [`Notice::RunSucceeded`]; the notifier decides whether that is a recovery.
pub fn run_notice(row: &RunRecord, source: Source, schedule: Option<&str>) -> Option<Notice> {
    let counts = row.counts;
    let reason = row.reason.clone().unwrap_or_else(|| "Unknown".into());
    let message = row.message.clone().unwrap_or_default();
    let run_id = row.run_id.clone();
    match row.result {
        RunResult::Running => None,
        RunResult::Succeeded => Some(Notice::RunSucceeded {
            source,
            run_id,
            counts,
        }),
        RunResult::Held => Some(Notice::RunHeld {
            source,
            run_id,
            schedule: schedule
                .or(row.schedule.as_deref())
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            reason,
            message,
            counts,
        }),
        RunResult::Failed => Some(Notice::RunFailed {
            source,
            run_id,
            reason,
            message,
            counts,
        }),
    }
}

/// The notice of a failed verification (`reason` is the Ready condition's reason): only invalid
/// credentials and an unknown district are emailed; `Verified`, an unreachable Clever (transient)
/// and Secret problems (reported on the object) are not.
pub fn verification_notice(reason: &str, message: &str, source: Source) -> Option<Notice> {
    let message = message.to_string();
    match reason {
        "CredentialsInvalid" => Some(Notice::CredentialsInvalid {
            source,
            run_id: None,
            message,
        }),
        "DistrictNotFound" => Some(Notice::DistrictNotFound {
            source,
            run_id: None,
            message,
        }),
        super::connection::JOURNEY_POLICY_NOT_FOUND => Some(Notice::ConnectionMisconfigured {
            source,
            reason: reason.to_string(),
            message,
        }),
        _ => None,
    }
}

/// Queues `notice` on `tx` (the caller's transaction). Returns the outbox id, if an email is sent.
pub async fn enqueue_in(
    tx: &mut PgConnection,
    settings: &NotifySettings,
    notice: &Notice,
    now: Timestamp,
) -> Result<Option<i64>> {
    Ok(crate::notify::enqueue(tx, settings, notice, now).await?)
}

/// Queues `notice` in its own transaction (verification results, missed slots).
pub async fn enqueue_alone(
    pool: &sqlx::PgPool,
    settings: &NotifySettings,
    notice: &Notice,
    now: Timestamp,
) -> Result<Option<i64>> {
    if !settings.send_emails {
        return Ok(None);
    }
    let mut tx = pool.begin().await.map_err(StoreError::query(
        "starting a transaction to queue an email",
    ))?;
    let id = enqueue_in(&mut tx, settings, notice, now).await?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing a queued email"))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NoticeKind;

    fn row(result: &str, reason: Option<&str>) -> RunRecord {
        RunRecord {
            run_id: "r1".into(),
            connection: ConnectionKey::new("ns", "springfield").expect("key"),
            schedule: Some("nightly".into()),
            trigger: crate::run::Trigger::Manual,
            job: Some("nightly-now-1".into()),
            dry_run: false,
            started_at: Timestamp::now(),
            finished_at: Some(Timestamp::now()),
            result: crate::run::parse_result(result),
            retriable: false,
            counts: crate::run::Counts::from_json(
                &serde_json::json!({"children": {"created": 2, "deactivated": 1}}),
            ),
            problems: 0,
            problem_codes: Default::default(),
            reason: reason.map(str::to_string),
            message: reason.map(|_| "one line".to_string()),
            timings: serde_json::json!({}),
            clever: Default::default(),
            duration_ms: None,
            notified: false,
            attempts: 1,
        }
    }

    fn src() -> Source {
        Source {
            connection: "ns/springfield".into(),
            district_id: "d1".into(),
            district_name: Some("Springfield USD".into()),
        }
    }

    #[test]
    fn runs_become_their_notices() {
        assert_eq!(run_notice(&row("Running", None), src(), None), None);
        let ok = run_notice(&row("Succeeded", None), src(), Some("nightly")).expect("notice");
        assert_eq!(ok.kind(), NoticeKind::RunSucceeded);
        assert_eq!(ok.run_id(), Some("r1"));
        let failed =
            run_notice(&row("Failed", Some("CleverUnavailable")), src(), None).expect("notice");
        assert_eq!(failed.fingerprint(), "RunFailed:CleverUnavailable");
        match run_notice(&row("Held", Some("RemovalGuard")), src(), Some("weekly")) {
            Some(Notice::RunHeld {
                schedule, counts, ..
            }) => {
                assert_eq!(schedule.as_deref(), Some("weekly"));
                assert_eq!(counts.removals(), vec![("children", 1)]);
            }
            other => panic!("not a held run: {other:?}"),
        }
        // Without a schedule from the caller, the row's is used.
        match run_notice(&row("Held", Some("RemovalGuard")), src(), None) {
            Some(Notice::RunHeld { schedule, .. }) => {
                assert_eq!(schedule.as_deref(), Some("nightly"))
            }
            other => panic!("not a held run: {other:?}"),
        }
    }

    #[test]
    fn only_credential_and_district_failures_are_emailed() {
        let kind = |r: &str| verification_notice(r, "m", src()).map(|e| e.kind());
        assert_eq!(
            kind("CredentialsInvalid"),
            Some(NoticeKind::CredentialsInvalid)
        );
        assert_eq!(kind("DistrictNotFound"), Some(NoticeKind::DistrictNotFound));
        for r in [
            "Verified",
            "CleverUnavailable",
            "CleverError",
            "SecretNotFound",
            "SecretKeyMissing",
        ] {
            assert_eq!(kind(r), None, "{r}");
        }
    }
}
