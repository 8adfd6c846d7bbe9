//! Matching roster records to the product's existing ones: what is unmatched or ambiguous (with
//! candidates), and the admin's manual links. A link is kept on the record itself (its Clever
//! id), so the next sync finds it like any current record; `roster_links` is the audit trail.
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::rollover::{AdminError, lock_connection};
use crate::run::ConnectionKey;

/// The kind of record matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordKind {
    Child,
    Educator,
}

impl RecordKind {
    fn table(self) -> &'static str {
        match self {
            RecordKind::Child => "children",
            RecordKind::Educator => "educators",
        }
    }
}

/// An unmatched or ambiguous record and its candidates (ids only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRow {
    pub kind: RecordKind,
    /// `ambiguous` (a roster record several product records could be) or `unmatched` (a product
    /// record no roster record is linked to).
    pub status: String,
    /// The roster record's Clever id (`None` for an unmatched product record).
    pub clever_id: Option<String>,
    /// The product record's id (for an ambiguous one: the record the sync created for it).
    pub id: Option<i64>,
    /// Ids of the product records it could be.
    pub candidates: String,
}

/// Candidate product children for the current child with Clever id `$2`: archived children and
/// manual ones, by Clever id, SIS id, or name and birth date.
const CHILD_CANDIDATES: &str = "
SELECT coalesce(string_agg(c.id::text, ' ' ORDER BY c.archived_school_year DESC NULLS LAST, c.id), '')
FROM children r JOIN children c ON c.connection = r.connection AND c.id <> r.id
  AND (c.archived_school_year IS NOT NULL OR (c.source = 'manual' AND c.clever_id IS NULL))
  AND (c.clever_id = r.clever_id OR (r.sis_id IS NOT NULL AND c.sis_id = r.sis_id)
       OR (r.dob IS NOT NULL AND c.dob = r.dob
           AND rs_name_key(c.first_name, c.last_name) = rs_name_key(r.first_name, r.last_name)))
WHERE r.connection = $1 AND r.clever_id = $2 AND r.archived_school_year IS NULL";

/// Candidate manual educators for the roster educator with Clever id `$2`: by email or SIS id.
const EDUCATOR_CANDIDATES: &str = "
SELECT coalesce(string_agg(c.id::text, ' ' ORDER BY c.id), '')
FROM educators r JOIN educators c ON c.connection = r.connection AND c.id <> r.id
  AND c.clever_id IS NULL AND c.source = 'manual'
  AND ((r.email IS NOT NULL AND lower(btrim(c.email)) = lower(btrim(r.email)))
       OR (r.sis_id IS NOT NULL AND c.sis_id = r.sis_id))
WHERE r.connection = $1 AND r.clever_id = $2";

/// The unmatched and ambiguous records of `connection`: the ambiguous ones of its latest run (still
/// not linked), then the product's own records no roster record is linked to.
pub async fn list(pool: &PgPool, connection: &ConnectionKey) -> Result<Vec<MatchRow>, AdminError> {
    let latest = super::runs::list(pool, Some(connection), 1)
        .await?
        .into_iter()
        .next();
    let mut rows = Vec::new();
    if let Some(run) = latest {
        let ambiguous: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT p.code, p.clever_id FROM sync_problems p
             WHERE p.run_id = $1 AND p.clever_id IS NOT NULL
               AND p.code IN ('CarryoverAmbiguous', 'ManualMatchAmbiguous', 'EducatorMatchAmbiguous')
               AND NOT EXISTS (SELECT 1 FROM roster_links l WHERE l.connection = $2
                   AND l.clever_id = p.clever_id AND l.unlinked_at IS NULL
                   AND l.record_kind = CASE WHEN p.code = 'EducatorMatchAmbiguous' THEN 'educators' ELSE 'children' END)
             ORDER BY 1, 2",
        )
        .bind(&run.run_id)
        .bind(connection.as_str())
        .fetch_all(pool)
        .await
        .map_err(AdminError::db("reading the matching problems"))?;
        for (code, clever_id) in ambiguous {
            let kind = if code == "EducatorMatchAmbiguous" {
                RecordKind::Educator
            } else {
                RecordKind::Child
            };
            let (id_sql, candidates_sql) = match kind {
                RecordKind::Child => (
                    "SELECT id FROM children WHERE connection = $1 AND clever_id = $2 AND archived_school_year IS NULL",
                    CHILD_CANDIDATES,
                ),
                RecordKind::Educator => (
                    "SELECT id FROM educators WHERE connection = $1 AND clever_id = $2",
                    EDUCATOR_CANDIDATES,
                ),
            };
            let id: Option<i64> = sqlx::query_scalar(id_sql)
                .bind(connection.as_str())
                .bind(&clever_id)
                .fetch_optional(pool)
                .await
                .map_err(AdminError::db("reading a roster record"))?;
            let candidates: String = sqlx::query_scalar(candidates_sql)
                .bind(connection.as_str())
                .bind(&clever_id)
                .fetch_one(pool)
                .await
                .map_err(AdminError::db("reading the candidates"))?;
            rows.push(MatchRow {
                kind,
                status: "ambiguous".into(),
                clever_id: Some(clever_id),
                id,
                candidates,
            });
        }
    }
    let unmatched: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'child', id FROM children WHERE connection = $1 AND source = 'manual' AND clever_id IS NULL
             AND archived_school_year IS NULL AND active
         UNION ALL
         SELECT 'educator', id FROM educators WHERE connection = $1 AND source = 'manual' AND clever_id IS NULL AND active
         ORDER BY 1, 2",
    )
    .bind(connection.as_str())
    .fetch_all(pool)
    .await
    .map_err(AdminError::db("reading unmatched records"))?;
    rows.extend(unmatched.into_iter().map(|(kind, id)| MatchRow {
        kind: if kind == "educator" {
            RecordKind::Educator
        } else {
            RecordKind::Child
        },
        status: "unmatched".into(),
        clever_id: None,
        id: Some(id),
        candidates: String::new(),
    }));
    Ok(rows)
}

/// What a link or an unlink did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkOutcome {
    pub connection: String,
    pub kind: RecordKind,
    pub clever_id: String,
    /// The product record now carrying the Clever id (for an unlink: the one that carried it).
    pub id: i64,
    /// The duplicate the sync had created for the Clever id, merged into `id` and removed.
    pub merged_duplicate: Option<i64>,
    pub action: String,
    pub dry_run: bool,
}

/// Links the roster record with `clever_id` to the product record `to`: `to` takes the Clever id
/// (and the roster's data at the next sync) and keeps its own journey, level and progress; a
/// record the sync created for that Clever id meanwhile is merged into it (its enrollment moves)
/// and removed.
pub async fn link(
    pool: &PgPool,
    connection: &ConnectionKey,
    kind: RecordKind,
    clever_id: &str,
    to: i64,
    by: &str,
    dry_run: bool,
) -> Result<LinkOutcome, AdminError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(AdminError::db("starting the link"))?;
    lock_connection(&mut tx, connection).await?;
    let merged = match kind {
        RecordKind::Child => link_child(&mut tx, connection, clever_id, to).await?,
        RecordKind::Educator => link_educator(&mut tx, connection, clever_id, to).await?,
    };
    sqlx::query!(
        "UPDATE roster_links SET unlinked_at = now(), unlinked_by = $4
         WHERE connection = $1 AND record_kind = $2 AND clever_id = $3 AND unlinked_at IS NULL",
        connection.as_str(),
        kind.table(),
        clever_id,
        by,
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("closing the previous link"))?;
    sqlx::query!(
        "INSERT INTO roster_links (connection, record_kind, clever_id, target_id, linked_by)
         VALUES ($1, $2, $3, $4, $5)",
        connection.as_str(),
        kind.table(),
        clever_id,
        to,
        by,
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("recording the link"))?;
    finish(tx, dry_run).await?;
    Ok(LinkOutcome {
        connection: connection.to_string(),
        kind,
        clever_id: clever_id.to_string(),
        id: to,
        merged_duplicate: merged,
        action: "linked".into(),
        dry_run,
    })
}

async fn finish(
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    dry_run: bool,
) -> Result<(), AdminError> {
    if dry_run {
        tx.rollback()
            .await
            .map_err(AdminError::db("ending the dry run"))
    } else {
        tx.commit().await.map_err(AdminError::db("committing"))
    }
}

async fn link_child(
    tx: &mut PgConnection,
    connection: &ConnectionKey,
    clever_id: &str,
    to: i64,
) -> Result<Option<i64>, AdminError> {
    let target: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT clever_id, archived_school_year FROM children WHERE connection = $1 AND id = $2 FOR UPDATE",
    )
    .bind(connection.as_str())
    .bind(to)
    .fetch_optional(&mut *tx)
    .await
    .map_err(AdminError::db("reading the target child"))?;
    let Some((target_clever, target_archived)) = target else {
        return Err(AdminError::Invalid(format!(
            "connection {connection} has no child with id {to} (see `rostersync match list {connection}`)"
        )));
    };
    let current: Option<(i64, bool)> = sqlx::query_as(
        "SELECT id, has_progress FROM children
         WHERE connection = $1 AND clever_id = $2 AND archived_school_year IS NULL FOR UPDATE",
    )
    .bind(connection.as_str())
    .bind(clever_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(AdminError::db("reading the roster child"))?;
    if current.is_some_and(|(id, _)| id == to) {
        return Err(AdminError::Invalid(format!(
            "child {to} already carries Clever id {clever_id}: nothing to link"
        )));
    }
    if let Some(other) = target_clever
        .as_deref()
        .filter(|c| target_archived.is_none() && *c != clever_id)
    {
        return Err(AdminError::Invalid(format!(
            "child {to} is the current record of Clever id {other}: unlink it first \
             (`rostersync match unlink {connection} --clever-id {other}`)"
        )));
    }
    let mut merged = None;
    if let Some((dup, has_progress)) = current {
        if has_progress {
            return Err(AdminError::Invalid(format!(
                "child {dup}, created for Clever id {clever_id}, already has progress: merging it into \
                 child {to} would lose it; nothing was changed"
            )));
        }
        // The duplicate's enrollment (the roster's classroom) moves to the linked child.
        sqlx::query!("DELETE FROM enrollments WHERE child_id = $1", to,)
            .execute(&mut *tx)
            .await
            .map_err(AdminError::db("replacing the linked child's enrollment"))?;
        sqlx::query!(
            "UPDATE enrollments SET child_id = $2, updated_at = now() WHERE child_id = $1",
            dup,
            to,
        )
        .execute(&mut *tx)
        .await
        .map_err(AdminError::db("moving the enrollment"))?;
        // Roster data comes from the duplicate; journey, level and progress stay the target's.
        sqlx::query!(
        "UPDATE children t SET sis_id = d.sis_id, first_name = d.first_name,
                 last_name = d.last_name, school_clever_id = d.school_clever_id, grade = d.grade, dob = d.dob,
                 gender = d.gender, ell_status = d.ell_status, hispanic_ethnicity = d.hispanic_ethnicity,
                 race = d.race, home_language = d.home_language, iep_status = d.iep_status,
                 frl_status = d.frl_status, source = 'roster', active = d.active,
                 archived_school_year = NULL, clever_id = NULL, updated_at = now()
             FROM children d WHERE d.id = $1 AND t.id = $2",
        dup,
        to,
    )
        .execute(&mut *tx)
        .await
        .map_err(AdminError::db("merging the duplicate child"))?;
        sqlx::query!("DELETE FROM children WHERE id = $1", dup,)
            .execute(&mut *tx)
            .await
            .map_err(AdminError::db("removing the duplicate child"))?;
        sqlx::query!(
            "UPDATE children SET clever_id = $2 WHERE id = $1",
            to,
            clever_id,
        )
        .execute(&mut *tx)
        .await
        .map_err(AdminError::db("linking the child"))?;
        merged = Some(dup);
    } else {
        sqlx::query!(
            "UPDATE children SET clever_id = $3, source = 'roster', active = true,
                 archived_school_year = NULL, updated_at = now()
             WHERE connection = $1 AND id = $2",
            connection.as_str(),
            to,
            clever_id,
        )
        .execute(&mut *tx)
        .await
        .map_err(AdminError::db("linking the child"))?;
    }
    Ok(merged)
}

async fn link_educator(
    tx: &mut PgConnection,
    connection: &ConnectionKey,
    clever_id: &str,
    to: i64,
) -> Result<Option<i64>, AdminError> {
    let target: Option<Option<String>> = sqlx::query_scalar!(
        "SELECT clever_id FROM educators WHERE connection = $1 AND id = $2 FOR UPDATE",
        connection.as_str(),
        to,
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(AdminError::db("reading the target educator"))?;
    let Some(target_clever) = target else {
        return Err(AdminError::Invalid(format!(
            "connection {connection} has no educator with id {to} (see `rostersync match list {connection}`)"
        )));
    };
    if let Some(other) = target_clever {
        return Err(AdminError::Invalid(format!(
            "educator {to} already carries Clever id {other}: unlink it first \
             (`rostersync match unlink {connection} --kind educator --clever-id {other}`)"
        )));
    }
    let dup: Option<i64> = sqlx::query_scalar!(
        "DELETE FROM educators WHERE connection = $1 AND clever_id = $2 RETURNING id",
        connection.as_str(),
        clever_id,
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(AdminError::db("removing the duplicate educator"))?;
    sqlx::query!(
        "UPDATE educators SET clever_id = $3, source = 'roster', active = true, updated_at = now()
         WHERE connection = $1 AND id = $2",
        connection.as_str(),
        to,
        clever_id,
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("linking the educator"))?;
    Ok(dup)
}

/// Unlinks the record carrying `clever_id`: it becomes a manual record again (keeping everything
/// it has), and the sync no longer matches it to that Clever id by itself.
pub async fn unlink(
    pool: &PgPool,
    connection: &ConnectionKey,
    kind: RecordKind,
    clever_id: &str,
    by: &str,
    dry_run: bool,
) -> Result<LinkOutcome, AdminError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(AdminError::db("starting the unlink"))?;
    lock_connection(&mut tx, connection).await?;
    let sql = match kind {
        RecordKind::Child => {
            "UPDATE children SET clever_id = NULL, source = 'manual', updated_at = now()
             WHERE connection = $1 AND clever_id = $2 AND archived_school_year IS NULL RETURNING id"
        }
        RecordKind::Educator => {
            "UPDATE educators SET clever_id = NULL, source = 'manual', updated_at = now()
             WHERE connection = $1 AND clever_id = $2 RETURNING id"
        }
    };
    let id: Option<i64> = sqlx::query_scalar(sql)
        .bind(connection.as_str())
        .bind(clever_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(AdminError::db("unlinking"))?;
    let Some(id) = id else {
        return Err(AdminError::Invalid(format!(
            "connection {connection} has no current {} with Clever id {clever_id}",
            match kind {
                RecordKind::Child => "child",
                RecordKind::Educator => "educator",
            }
        )));
    };
    let closed = sqlx::query!(
        "UPDATE roster_links SET unlinked_at = now(), unlinked_by = $4
         WHERE connection = $1 AND record_kind = $2 AND clever_id = $3 AND unlinked_at IS NULL",
        connection.as_str(),
        kind.table(),
        clever_id,
        by,
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("closing the link"))?
    .rows_affected();
    if closed == 0 {
        // Matched by the sync, never linked by hand: record the unlink so it is not matched again.
        sqlx::query!(
        "INSERT INTO roster_links (connection, record_kind, clever_id, target_id, linked_by, unlinked_by, unlinked_at)
             VALUES ($1, $2, $3, $4, 'sync', $5, now())",
        connection.as_str(),
        kind.table(),
        clever_id,
        id,
        by,
    )
        .execute(&mut *tx)
        .await
        .map_err(AdminError::db("recording the unlink"))?;
    }
    finish(tx, dry_run).await?;
    Ok(LinkOutcome {
        connection: connection.to_string(),
        kind,
        clever_id: clever_id.to_string(),
        id,
        merged_duplicate: None,
        action: "unlinked".into(),
        dry_run,
    })
}
