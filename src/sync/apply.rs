//! Applying the staged roster to the roster tables with set-based SQL: one statement per action
//! and entity, never one per record. Runs inside the run's transaction; counts come from the
//! statements' affected rows.
use sqlx::PgConnection;
use sqlx::postgres::{PgArguments, Postgres};

use super::SyncError;
use super::apply_children::LiveDiff;
use super::model::{ActiveBefore, Counts, EntityCounts};
use super::resolve::Resolved;
use super::stage::StagedTotals;
use crate::api::RemovalMode;

/// What apply needs to know about the connection's settings.
#[derive(Clone, Debug)]
pub struct ApplySettings {
    pub connection: String,
    pub allow_removal: bool,
    pub removal_mode: RemovalMode,
    pub allow_classroom_name_overrides: bool,
    /// The journey of new children (`None`: no journey).
    pub new_child_journey: Option<String>,
    /// Starting levels: grades (Clever spelling) and their levels.
    pub level_grades: Vec<String>,
    pub level_values: Vec<i32>,
}

/// A statement built at run time (table names, column lists), its parameters bound by the caller.
pub(super) type Statement<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// Runs `statement`, its parameters bound; returns the affected rows.
pub(super) async fn execute(
    conn: &mut PgConnection,
    statement: Statement<'_>,
    doing: &'static str,
) -> Result<u64, SyncError> {
    Ok(statement
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db(doing))?
        .rows_affected())
}

/// Runs a `SELECT count(*)`, its parameters bound.
async fn count(
    conn: &mut PgConnection,
    statement: sqlx::query::QueryScalar<'_, Postgres, i64, PgArguments>,
    doing: &'static str,
) -> Result<u64, SyncError> {
    let n = statement
        .fetch_one(&mut *conn)
        .await
        .map_err(SyncError::db(doing))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A roster table keyed by (connection, clever_id), mirrored from one staging table.
struct Keyed {
    table: &'static str,
    staging: &'static str,
    /// (column, value on insert, value on update); `s` is the staged row, `t` the live one.
    /// Insert values use no parameters; update values may use `$2` on, bound by `bind_update`.
    columns: &'static [(&'static str, &'static str, &'static str)],
    /// Binds the parameters of the update values (`$2`, ...) after `$1`, the connection.
    bind_update: for<'q> fn(Statement<'q>, &ApplySettings) -> Statement<'q>,
}

/// For tables whose update values use no parameters.
fn no_update_parameters<'q>(statement: Statement<'q>, _: &ApplySettings) -> Statement<'q> {
    statement
}

const SCHOOLS: Keyed = Keyed {
    table: "schools",
    staging: "stg_schools",
    columns: &[
        ("name", "s.name", "s.name"),
        ("sis_id", "s.sis_id", "s.sis_id"),
        ("low_grade", "s.low_grade", "s.low_grade"),
        ("high_grade", "s.high_grade", "s.high_grade"),
    ],
    bind_update: no_update_parameters,
};

const CLASSROOMS: Keyed = Keyed {
    table: "classrooms",
    staging: "stg_classrooms",
    columns: &[
        (
            "school_clever_id",
            "s.school_clever_id",
            "s.school_clever_id",
        ),
        ("roster_name", "s.name", "s.name"),
        // A locally edited name survives only while allowClassroomNameOverrides allows it ($2).
        (
            "display_name",
            "s.name",
            "CASE WHEN $2 AND t.name_edited_locally THEN t.display_name ELSE s.name END",
        ),
        ("grade", "s.grade", "s.grade"),
        ("subject", "s.subject", "s.subject"),
        (
            "teacher_clever_id",
            "s.teacher_clever_id",
            "s.teacher_clever_id",
        ),
    ],
    bind_update: bind_name_overrides,
};

/// `$2` of the classrooms' update values: allowClassroomNameOverrides.
fn bind_name_overrides<'q>(statement: Statement<'q>, s: &ApplySettings) -> Statement<'q> {
    statement.bind(s.allow_classroom_name_overrides)
}

const EDUCATORS: Keyed = Keyed {
    table: "educators",
    staging: "stg_educators",
    columns: &[
        (
            "school_clever_id",
            "s.school_clever_id",
            "s.school_clever_id",
        ),
        ("sis_id", "s.sis_id", "s.sis_id"),
        ("first_name", "s.first_name", "s.first_name"),
        ("last_name", "s.last_name", "s.last_name"),
        ("email", "s.email", "s.email"),
        ("title", "s.title", "s.title"),
    ],
    bind_update: no_update_parameters,
};

impl Keyed {
    async fn upsert(
        &self,
        conn: &mut PgConnection,
        s: &ApplySettings,
    ) -> Result<EntityCounts, SyncError> {
        let (table, staging) = (self.table, self.staging);
        let names = self
            .columns
            .iter()
            .map(|c| c.0)
            .collect::<Vec<_>>()
            .join(", ");
        let inserts = self
            .columns
            .iter()
            .map(|c| c.1)
            .collect::<Vec<_>>()
            .join(", ");
        let sets = self
            .columns
            .iter()
            .map(|c| format!("{} = {}", c.0, c.2))
            .collect::<Vec<_>>()
            .join(", ");
        let live = self
            .columns
            .iter()
            .map(|c| format!("t.{}", c.0))
            .collect::<Vec<_>>()
            .join(", ");
        let wanted = self
            .columns
            .iter()
            .map(|c| c.2)
            .collect::<Vec<_>>()
            .join(", ");
        let count_staged = format!("SELECT count(*) FROM {staging}");
        let staged = count(
            conn,
            sqlx::query_scalar(&count_staged),
            "counting staged rows",
        )
        .await?;
        // The anti-join leaves out the records that exist (a resync: all of them) before any is
        // tried: a conflicting row would still evaluate its defaults (an educator: an id from the
        // sequence) and probe the key, 2.5k times a resync at 100k. ON CONFLICT covers a record
        // committed meanwhile.
        let create = format!(
            "INSERT INTO {table} (connection, clever_id, {names}) SELECT $1, s.clever_id, {inserts} FROM {staging} s
             WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE x.connection = $1 AND x.clever_id = s.clever_id)
             ON CONFLICT (connection, clever_id) DO NOTHING"
        );
        let created = execute(
            conn,
            sqlx::query(&create).bind(&s.connection),
            "creating records",
        )
        .await?;
        if !existing_rows_staged(staged, created) {
            return Ok(EntityCounts {
                created,
                ..Default::default()
            });
        }
        let reactivate = format!(
            "UPDATE {table} t SET {sets}, active = true, updated_at = now() FROM {staging} s
             WHERE t.connection = $1 AND t.clever_id = s.clever_id AND NOT t.active"
        );
        let reactivated = execute(
            conn,
            (self.bind_update)(sqlx::query(&reactivate).bind(&s.connection), s),
            "reactivating records",
        )
        .await?;
        let update = format!(
            "UPDATE {table} t SET {sets}, updated_at = now() FROM {staging} s
             WHERE t.connection = $1 AND t.clever_id = s.clever_id AND t.active
               AND ({live}) IS DISTINCT FROM ({wanted})"
        );
        let updated = execute(
            conn,
            (self.bind_update)(sqlx::query(&update).bind(&s.connection), s),
            "updating changed records",
        )
        .await?;
        Ok(EntityCounts {
            created,
            reactivated,
            updated,
            unchanged: staged.saturating_sub(created + reactivated + updated),
            ..Default::default()
        })
    }

    /// Active records no longer in the roster (`active_before` were active when the run began):
    /// removed when allowed, else only counted (stale).
    async fn remove(
        &self,
        conn: &mut PgConnection,
        s: &ApplySettings,
        c: &mut EntityCounts,
        active_before: u64,
    ) -> Result<u64, SyncError> {
        let (table, staging) = (self.table, self.staging);
        let gone = format!(
            "t.connection = $1 AND t.active AND t.clever_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {staging} s WHERE s.clever_id = t.clever_id)"
        );
        removal(conn, s, c, table, &gone, removal_possible(active_before)).await
    }
}

/// Whether any staged row can have an existing record to reactivate or update, after the create
/// (`ON CONFLICT DO NOTHING`) made `created` of the `staged` rows: not when it made them all.
pub fn existing_rows_staged(staged: u64, created: u64) -> bool {
    created < staged
}

/// Whether any record can have left the roster: only one that was active when the run began
/// (`active_before`); every record the run itself made or kept active is staged.
pub fn removal_possible(active_before: u64) -> bool {
    active_before > 0
}

/// Whether the children's removal statement can find a record that left the roster: one was
/// active when the run began, and, when the run read a [`LiveDiff`] (every staged child matched
/// by its Clever id), its kept records are not all of those: the active roster records it holds
/// (all of which are staged) differ in number from those active before the run, or apply
/// reactivated some (which changes what is active). The two counts are read at two moments of
/// the transaction (READ COMMITTED): a record the product activates in between is looked for by
/// the next run, as one activated just after the removal statement would be.
pub fn stale_children_possible(active_before: u64, diff: Option<&LiveDiff>) -> bool {
    removal_possible(active_before)
        && diff.is_none_or(|d| d.inactive > 0 || d.kept_children != active_before)
}

/// [`stale_children_possible`] for enrollments: the placed children's active enrollments in the
/// connection (all kept) are not all of those active before the run, or apply enrolled or
/// reactivated some.
pub fn stale_enrollments_possible(active_before: u64, diff: Option<&LiveDiff>) -> bool {
    removal_possible(active_before)
        && diff.is_none_or(|d| {
            d.unenrolled + d.enrollments_inactive > 0 || d.kept_enrollments != active_before
        })
}

/// Deactivates or deletes the rows of `table` (alias `t`) matching `gone`, or counts them. `gone`
/// uses one parameter, `$1`: the connection. Returns the stale count (rows kept because removal is
/// not allowed). Runs nothing unless `possible` (some record can have left the roster:
/// [`removal_possible`] and the like).
async fn removal(
    conn: &mut PgConnection,
    s: &ApplySettings,
    c: &mut EntityCounts,
    table: &str,
    gone: &str,
    possible: bool,
) -> Result<u64, SyncError> {
    if !possible {
        return Ok(0);
    }
    let connection = s.connection.as_str();
    if !s.allow_removal {
        let stale = format!("SELECT count(*) FROM {table} t WHERE {gone}");
        return count(
            conn,
            sqlx::query_scalar(&stale).bind(connection),
            "counting stale records",
        )
        .await;
    }
    match s.removal_mode {
        RemovalMode::Deactivate => {
            let deactivate =
                format!("UPDATE {table} t SET active = false, updated_at = now() WHERE {gone}");
            c.deactivated += execute(
                conn,
                sqlx::query(&deactivate).bind(connection),
                "deactivating records",
            )
            .await?;
        }
        RemovalMode::Delete if table == "children" => {
            // Children with progress are never deleted.
            let deactivate = format!(
                "UPDATE {table} t SET active = false, updated_at = now() WHERE {gone} AND t.has_progress"
            );
            c.deactivated += execute(
                conn,
                sqlx::query(&deactivate).bind(connection),
                "deactivating children with progress",
            )
            .await?;
            let delete = format!("DELETE FROM {table} t WHERE {gone} AND NOT t.has_progress");
            c.removed += execute(
                conn,
                sqlx::query(&delete).bind(connection),
                "deleting children",
            )
            .await?;
        }
        RemovalMode::Delete => {
            let delete = format!("DELETE FROM {table} t WHERE {gone}");
            c.removed += execute(
                conn,
                sqlx::query(&delete).bind(connection),
                "deleting records",
            )
            .await?;
        }
    }
    Ok(0)
}

/// Turns nested-loop joins off (`SET LOCAL`, this transaction only) or back to the default.
async fn set_nestloop(conn: &mut PgConnection, on: bool) -> Result<(), SyncError> {
    let sql = if on {
        "RESET enable_nestloop"
    } else {
        "SET LOCAL enable_nestloop = off"
    };
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db(
            "setting the planner for the removal statements",
        ))?;
    Ok(())
}

/// Educators of the product matched to roster teachers (`resolve::match_educators`) take their
/// Clever id; the upsert then updates them from the roster like any current record.
async fn link_matched_educators(
    conn: &mut PgConnection,
    s: &ApplySettings,
) -> Result<u64, SyncError> {
    execute(
        conn,
        sqlx::query(
            "UPDATE educators t SET clever_id = s.clever_id, source = 'roster', active = true, updated_at = now()
             FROM stg_educators s
             WHERE s.match_kind IN ('email', 'sis') AND t.id = s.match_id AND t.connection = $1 AND t.clever_id IS NULL",
        )
        .bind(&s.connection),
        "linking matched educators",
    )
    .await
}

/// Active records per entity before the run.
pub async fn active_before(
    conn: &mut PgConnection,
    connection: &str,
) -> Result<ActiveBefore, SyncError> {
    let row = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM schools WHERE connection = $1 AND active) AS "schools!",
                (SELECT count(*) FROM classrooms WHERE connection = $1 AND active) AS "classrooms!",
                (SELECT count(*) FROM educators WHERE connection = $1 AND active AND clever_id IS NOT NULL) AS "educators!",
                (SELECT count(*) FROM children WHERE connection = $1 AND active AND source = 'roster'
                    AND archived_school_year IS NULL) AS "children!",
                (SELECT count(*) FROM enrollments WHERE connection = $1 AND active) AS "enrollments!""#,
        connection,
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(SyncError::db("counting active records"))?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(ActiveBefore {
        schools: n(row.schools),
        classrooms: n(row.classrooms),
        educators: n(row.educators),
        children: n(row.children),
        enrollments: n(row.enrollments),
    })
}

/// Stale records per entity (left the roster, kept because removal is not allowed).
pub type Stale = [(&'static str, u64); 5];

/// Applies the staged roster. Returns the counts and the stale records per entity.
pub async fn apply(
    conn: &mut PgConnection,
    s: &ApplySettings,
    staged: &StagedTotals,
    resolved: &Resolved,
    before: &ActiveBefore,
) -> Result<(Counts, Stale), SyncError> {
    let mut counts = Counts {
        schools: SCHOOLS.upsert(conn, s).await?,
        classrooms: CLASSROOMS.upsert(conn, s).await?,
        ..Default::default()
    };
    let matched = link_matched_educators(conn, s).await?;
    counts.educators = EDUCATORS.upsert(conn, s).await?;
    counts.educators.matched = matched;
    counts.educators.unchanged = counts.educators.unchanged.saturating_sub(matched);
    let run = super::apply_children::child_statements(staged.children, resolved);
    let diff = LiveDiff::of(staged.children, resolved);
    let (children, new_enrolled) = super::apply_children::upsert(conn, s, resolved, &run).await?;
    counts.children = children;
    counts.enrollments =
        super::apply_children::upsert_enrollments(conn, s, &run, staged.placed, new_enrolled)
            .await?;

    // The removal statements are anti-joins of one connection's rows against the staged roster,
    // by Clever id: after the upserts, every staged child's current record holds its Clever id
    // (a current record's id is unique in its connection).
    // The planner's estimate of the connection's rows comes from statistics taken before this
    // transaction wrote them (a first sync: none), so it can pick a nested loop that rescans
    // staging per row: minutes at 1M students (measured). A hash or merge anti-join is linear
    // at every size, so nested loops are off for these statements only.
    set_nestloop(conn, false).await?;
    let stale_enrollments = removal(
        conn,
        s,
        &mut counts.enrollments,
        "enrollments",
        "t.connection = $1 AND t.active AND NOT EXISTS (SELECT 1 FROM children c \
         JOIN stg_children s ON s.clever_id = c.clever_id \
         WHERE c.id = t.child_id AND c.connection = $1 AND c.archived_school_year IS NULL \
         AND s.classroom_clever_id IS NOT NULL)",
        stale_enrollments_possible(before.enrollments, diff.as_ref()),
    )
    .await?;
    let stale_children = removal(
        conn,
        s,
        &mut counts.children,
        "children",
        "t.connection = $1 AND t.active AND t.source = 'roster' AND t.archived_school_year IS NULL \
         AND NOT EXISTS (SELECT 1 FROM stg_children s WHERE s.clever_id = t.clever_id)",
        stale_children_possible(before.children, diff.as_ref()),
    )
    .await?;
    let stale_classrooms = CLASSROOMS
        .remove(conn, s, &mut counts.classrooms, before.classrooms)
        .await?;
    let stale_educators = EDUCATORS
        .remove(conn, s, &mut counts.educators, before.educators)
        .await?;
    let stale_schools = SCHOOLS
        .remove(conn, s, &mut counts.schools, before.schools)
        .await?;
    set_nestloop(conn, true).await?;
    Ok((
        counts,
        [
            ("schools", stale_schools),
            ("classrooms", stale_classrooms),
            ("educators", stale_educators),
            ("children", stale_children),
            ("enrollments", stale_enrollments),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_that_can_change_nothing_are_skipped() {
        for (staged, created, want, why) in [
            (0, 0, false, "nothing staged"),
            (
                2081,
                2081,
                false,
                "a first sync: every staged row was created",
            ),
            (2081, 0, true, "a resync: every staged row exists"),
            (2081, 2080, true, "one existed (maybe inactive)"),
        ] {
            assert_eq!(existing_rows_staged(staged, created), want, "{why}");
        }
        for (before, want, why) in [
            (
                0,
                false,
                "nothing was active: whatever is active now is staged",
            ),
            (1, true, "one active record may have left the roster"),
        ] {
            assert_eq!(removal_possible(before), want, "{why}");
        }
    }

    #[test]
    fn children_and_enrollments_are_looked_for_only_when_some_may_have_left() {
        let kept = LiveDiff {
            kept_children: 100,
            kept_enrollments: 90,
            ..LiveDiff::default()
        };
        let with = |f: fn(&mut LiveDiff)| {
            let mut d = kept;
            f(&mut d);
            Some(d)
        };
        // (active before: children, enrollments), the diff, (children, enrollments) possible
        for (before, diff, want, why) in [
            ((0, 0), None, (false, false), "nothing active before"),
            ((100, 90), None, (true, true), "no diff read: looked for"),
            (
                (100, 90),
                Some(kept),
                (false, false),
                "every active record kept: nothing left",
            ),
            (
                (101, 91),
                Some(kept),
                (true, true),
                "one active record more than kept: it left",
            ),
            (
                (99, 89),
                Some(kept),
                (true, true),
                "more kept than were active (written meanwhile): looked for",
            ),
            (
                (100, 90),
                with(|d| d.inactive = 1),
                (true, false),
                "a child reactivated: what is active changed",
            ),
            (
                (100, 90),
                with(|d| d.unenrolled = 1),
                (false, true),
                "an enrollment created",
            ),
            (
                (100, 90),
                with(|d| d.enrollments_inactive = 1),
                (false, true),
                "an enrollment reactivated",
            ),
            (
                (100, 90),
                with(|d| {
                    d.changed = 5;
                    d.moved = 5;
                }),
                (false, false),
                "updates and moves change nothing that is active",
            ),
        ] {
            let got = (
                stale_children_possible(before.0, diff.as_ref()),
                stale_enrollments_possible(before.1, diff.as_ref()),
            );
            assert_eq!(got, want, "{why}");
        }
    }
}
