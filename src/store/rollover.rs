//! The school-year rollover: a connection's current roster children are archived under the school
//! year that ends (`archived_school_year`), their enrollments deactivated, once per year. The next
//! sync carries returning children over (with `autoCarryover`), preferring the most recent year.
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::run::ConnectionKey;

/// A school year `YYYY-YYYY` (the second year is the first plus one).
pub fn parse_school_year(s: &str) -> Result<(i16, i16), String> {
    let invalid = || {
        format!(
            "{s:?} is not a school year: expected YYYY-YYYY with consecutive years, e.g. 2025-2026"
        )
    };
    let (a, b) = s.split_once('-').ok_or_else(invalid)?;
    if a.len() != 4 || b.len() != 4 {
        return Err(invalid());
    }
    let (a, b) = (
        a.parse::<i16>().map_err(|_| invalid())?,
        b.parse::<i16>().map_err(|_| invalid())?,
    );
    if b != a + 1 || a < 1900 {
        return Err(invalid());
    }
    Ok((a, b))
}

/// The school year whose rollover is due on `today` with `rolloverDate` `MM-DD`: the year ended by
/// the last rollover date on or before `today` (on or after it in year Y: `(Y-1)-Y`; before it:
/// `(Y-2)-(Y-1)`). A sync runs that rollover once, if it has not run yet.
pub fn due_school_year(rollover_date: (i8, i8), today: jiff::civil::Date) -> String {
    let end = if (today.month(), today.day()) >= rollover_date {
        today.year()
    } else {
        today.year() - 1
    };
    format!("{}-{}", end - 1, end)
}

/// What a rollover did (or, dry, would do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloverOutcome {
    pub connection: String,
    pub school_year: String,
    /// Children archived (or, for a year already rolled over, archived back then).
    pub children: i64,
    /// Enrollments deactivated.
    pub enrollments: i64,
    /// The year had already been rolled over: nothing was changed.
    pub already_done: bool,
    pub dry_run: bool,
}

/// Why a rollover (or another admin change) did not run.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "a sync of {connection} is running: nothing was changed; try again when it has finished \
         (`rostersync history --connection {connection}`)"
    )]
    SyncRunning { connection: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminError {
    pub(crate) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> AdminError {
        move |source| AdminError::Store(StoreError::Query { doing, source })
    }
}

/// Takes the connection's sync lock for the transaction (the key the sync holds for its session):
/// an admin change never interleaves with a run of the same connection.
pub(crate) async fn lock_connection(
    tx: &mut PgConnection,
    connection: &ConnectionKey,
) -> Result<(), AdminError> {
    let locked = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock(hashtextextended('rostersync:sync:' || $1, 0)) AS "locked!""#,
        connection.as_str(),
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(AdminError::db("taking the connection's sync lock"))?;
    if locked {
        Ok(())
    } else {
        Err(AdminError::SyncRunning {
            connection: connection.to_string(),
        })
    }
}

/// Rolls `school_year` over for `connection` (`by` is recorded). Idempotent: a year already rolled
/// over changes nothing and reports what was done then.
pub async fn rollover(
    pool: &PgPool,
    connection: &ConnectionKey,
    school_year: &str,
    by: &str,
    dry_run: bool,
) -> Result<RolloverOutcome, AdminError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(AdminError::db("starting the rollover"))?;
    lock_connection(&mut tx, connection).await?;
    let outcome = rollover_in(&mut tx, connection, school_year, by, dry_run).await?;
    if dry_run {
        tx.rollback()
            .await
            .map_err(AdminError::db("ending the dry run"))?;
    } else {
        tx.commit()
            .await
            .map_err(AdminError::db("committing the rollover"))?;
    }
    Ok(outcome)
}

/// The rollover inside the caller's transaction (the sync's automatic rollover runs it in its own,
/// under its lock).
pub async fn rollover_in(
    tx: &mut PgConnection,
    connection: &ConnectionKey,
    school_year: &str,
    by: &str,
    dry_run: bool,
) -> Result<RolloverOutcome, AdminError> {
    parse_school_year(school_year).map_err(AdminError::Invalid)?;
    let done = sqlx::query!(
        "SELECT children, enrollments FROM school_year_rollovers WHERE connection = $1 AND school_year = $2",
        connection.as_str(),
        school_year,
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(AdminError::db("reading the rollovers"))?;
    if let Some(done) = done {
        return Ok(RolloverOutcome {
            connection: connection.to_string(),
            school_year: school_year.to_string(),
            children: done.children.into(),
            enrollments: done.enrollments.into(),
            already_done: true,
            dry_run,
        });
    }
    let enrollments = sqlx::query!(
        "UPDATE enrollments e SET active = false, updated_at = now() FROM children c
         WHERE e.child_id = c.id AND e.connection = $1 AND c.connection = $1 AND e.active
           AND c.archived_school_year IS NULL AND c.source = 'roster' AND c.clever_id IS NOT NULL",
        connection.as_str(),
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("deactivating enrollments"))?
    .rows_affected();
    let children = sqlx::query!(
        "UPDATE children SET archived_school_year = $2, active = false, updated_at = now()
         WHERE connection = $1 AND archived_school_year IS NULL AND source = 'roster' AND clever_id IS NOT NULL",
        connection.as_str(),
        school_year,
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("archiving children"))?
    .rows_affected();
    let (children, enrollments) = (
        i64::try_from(children).unwrap_or(i64::MAX),
        i64::try_from(enrollments).unwrap_or(i64::MAX),
    );
    sqlx::query!(
        "INSERT INTO school_year_rollovers (connection, school_year, rolled_by, children, enrollments)
         VALUES ($1, $2, $3, $4, $5)",
        connection.as_str(),
        school_year,
        by,
        i32::try_from(children).unwrap_or(i32::MAX),
        i32::try_from(enrollments).unwrap_or(i32::MAX),
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("recording the rollover"))?;
    Ok(RolloverOutcome {
        connection: connection.to_string(),
        school_year: school_year.to_string(),
        children,
        enrollments,
        already_done: false,
        dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn school_years_are_two_consecutive_years() {
        assert_eq!(parse_school_year("2025-2026"), Ok((2025, 2026)));
        for bad in [
            "2025-2027",
            "2025",
            "25-26",
            "2026-2025",
            "abcd-efgh",
            "2025-2026x",
        ] {
            assert!(parse_school_year(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rollover_is_due_from_the_rollover_date() {
        assert_eq!(due_school_year((7, 1), date(2026, 6, 30)), "2024-2025");
        assert_eq!(due_school_year((7, 1), date(2026, 7, 1)), "2025-2026");
        assert_eq!(due_school_year((7, 1), date(2026, 12, 31)), "2025-2026");
    }
}
