//! The per-record problems of a run, for people: each with its code, the record's Clever id and
//! what to do about it. Ids and codes only (the stored messages never hold names, birth dates or
//! emails). Shared by `rostersync problems`, `kubectl roster problems` and the UI.
use serde::Serialize;
use sqlx::PgPool;

use super::StoreError;
use crate::run::ConnectionKey;

/// One problem of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemRow {
    pub run_id: String,
    pub code: String,
    pub record_kind: String,
    /// The record's Clever id (`None` for a problem about the run as a whole).
    pub clever_id: Option<String>,
    pub message: String,
    pub what_to_do: String,
}

/// The problems of one run of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunProblems {
    pub connection: String,
    pub run_id: String,
    pub problems: Vec<ProblemRow>,
}

/// What a person does about a problem with `code` (`connection` is named in the commands).
pub fn what_to_do(code: &str, connection: &str) -> String {
    match code {
        "InvalidRecord" => {
            "fix the record in the SIS (it is skipped until Clever returns it complete)".into()
        }
        "MultipleSections" => {
            "nothing if the chosen classroom is right; otherwise mark the child's \
             homeroom section in the SIS"
                .into()
        }
        "StudentNotFound" => {
            "share the student with the app in Clever, or take it off the section".into()
        }
        "TeacherNotFound" => "share the teacher with the app in Clever".into(),
        "SchoolNotFound" => {
            "share the school with the app in Clever (its sections are skipped)".into()
        }
        "CarryoverAmbiguous" | "ManualMatchAmbiguous" => format!(
            "see the candidates with `rostersync match list {connection}`, then link the right one: \
             `rostersync match link {connection} --clever-id ID --to CHILD_ID`"
        ),
        "EducatorMatchAmbiguous" => format!(
            "see the candidates with `rostersync match list {connection}`, then link the right one: \
             `rostersync match link {connection} --kind educator --clever-id ID --to EDUCATOR_ID`"
        ),
        "JourneyNotLicensed" => format!(
            "set newChildJourney to a licensed product, then give those children a journey: \
             `rostersync journeys set {connection} --journey PRODUCT ...`"
        ),
        "StaleNotRemoved" => {
            "turn on settings.allowRemoval to remove them, or share them again in Clever".into()
        }
        "DuplicateRecord" => "ask the SIS team: Clever lists the same id twice".into(),
        "ClassroomOverCapacity" => "split the section in the SIS (at most 32 children)".into(),
        _ => "see the message".into(),
    }
}

/// Why problems cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum ProblemsError {
    #[error("connection {connection} has no sync runs yet (see `rostersync history`)")]
    NoRuns { connection: String },
    #[error(
        "connection {connection} has no run {run_id} (see `rostersync history --connection {connection}`)"
    )]
    UnknownRun { connection: String, run_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The problems of run `run_id` of `connection` (default: its most recent run), by code, then
/// record kind and Clever id.
pub async fn for_run(
    pool: &PgPool,
    connection: &ConnectionKey,
    run_id: Option<&str>,
) -> Result<RunProblems, ProblemsError> {
    let run_id = match run_id {
        Some(id) => {
            let exists = super::runs::by_id(pool, connection, id).await?.is_some();
            if !exists {
                return Err(ProblemsError::UnknownRun {
                    connection: connection.to_string(),
                    run_id: id.to_string(),
                });
            }
            id.to_string()
        }
        None => super::runs::list(pool, Some(connection), 1)
            .await?
            .into_iter()
            .next()
            .map(|r| r.run_id)
            .ok_or_else(|| ProblemsError::NoRuns {
                connection: connection.to_string(),
            })?,
    };
    let rows = sqlx::query!(
        "SELECT p.run_id, p.code, p.record_kind, p.clever_id, p.message FROM sync_problems p
         JOIN sync_runs r ON r.run_id = p.run_id
         WHERE p.run_id = $1 AND r.connection = $2
         ORDER BY p.code, p.record_kind, p.clever_id NULLS FIRST, p.id",
        run_id,
        connection.as_str(),
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading sync_problems"))?;
    let problems = rows
        .into_iter()
        .map(|p| ProblemRow {
            what_to_do: what_to_do(&p.code, connection.as_str()),
            run_id: p.run_id,
            code: p.code,
            record_kind: p.record_kind,
            clever_id: p.clever_id,
            message: p.message,
        })
        .collect();
    Ok(RunProblems {
        connection: connection.to_string(),
        run_id,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_says_what_to_do() {
        for code in [
            "InvalidRecord",
            "MultipleSections",
            "StudentNotFound",
            "TeacherNotFound",
            "SchoolNotFound",
            "CarryoverAmbiguous",
            "ManualMatchAmbiguous",
            "EducatorMatchAmbiguous",
            "JourneyNotLicensed",
            "StaleNotRemoved",
            "DuplicateRecord",
            "ClassroomOverCapacity",
        ] {
            assert_ne!(what_to_do(code, "ns/a"), "see the message", "{code}");
        }
        assert!(what_to_do("CarryoverAmbiguous", "ns/a").contains("match link ns/a"));
    }
}
