//! Applying staged children and their enrollments (see `resolve` for how each staged child was
//! matched: `live`, `carry`, `manual`, or new).
use sqlx::PgConnection;

use super::SyncError;
use super::apply::{ApplySettings, execute};
use super::model::EntityCounts;
use super::resolve::Resolved;

/// Roster-driven columns of a child and their staged values (no parameters). Demographic columns
/// are NULL in staging when demographics are not shared, so stored values are cleared.
const COLUMNS: &[(&str, &str)] = &[
    ("sis_id", "s.sis_id"),
    ("first_name", "s.first_name"),
    ("last_name", "s.last_name"),
    ("school_clever_id", "s.school_clever_id"),
    ("grade", "s.final_grade"),
    ("dob", "s.dob"),
    ("gender", "s.gender"),
    ("ell_status", "s.ell_status"),
    ("hispanic_ethnicity", "s.hispanic_ethnicity"),
    ("race", "s.race"),
    ("home_language", "s.home_language"),
    ("iep_status", "s.iep_status"),
    ("frl_status", "s.frl_status"),
];

/// A matched child's record (`t`) differs from its staged values (`s`) in a roster column.
fn differs() -> String {
    let live = COLUMNS
        .iter()
        .map(|(c, _)| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let wanted = wanted();
    format!("({live}) IS DISTINCT FROM ({wanted})")
}

/// The staged values of the roster columns, in [`COLUMNS`] order.
fn wanted() -> String {
    COLUMNS
        .iter()
        .map(|(_, v)| *v)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A staged child (`s`) placed in a classroom: it has one enrollment.
const PLACED: &str = "s.classroom_clever_id IS NOT NULL";
/// Its enrollment (`e`) is inactive: reactivated.
const ENROLLMENT_INACTIVE: &str = "NOT e.active";
/// Its active enrollment names another classroom: moved.
const ENROLLMENT_MOVED: &str =
    "e.active AND e.classroom_clever_id IS DISTINCT FROM s.classroom_clever_id";

/// A staged child's prefilled record (`t`, `child_id`) is still its current record: same
/// connection and Clever id, not archived. `$1` is the connection.
pub const LIVE_RECORD: &str = "t.id = s.child_id AND t.connection = $1 \
    AND t.clever_id = s.clever_id AND t.archived_school_year IS NULL";

/// What the staged children's current records already hold, counted in one pass over the staged
/// children matched by Clever id, their records and their enrollments. Read when every staged
/// child was written with its current record (a resync, `resolve`): it checks those matches
/// (what `resolve`'s check does row by row) and tells which of apply's statements on children
/// and enrollments would write a row ([`child_statements`]). Each count uses the predicate of the
/// statement it stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveDiff {
    /// Prefilled matches that no longer hold (archived, removed or relinked meanwhile).
    pub broken: u64,
    /// Active records whose roster columns differ from the staged values (updated).
    pub changed: u64,
    /// Inactive records (reactivated).
    pub inactive: u64,
    /// Placed children without an enrollment (enrolled).
    pub unenrolled: u64,
    /// Placed children whose enrollment is inactive (reactivated).
    pub enrollments_inactive: u64,
    /// Placed children whose active enrollment names another classroom (moved).
    pub moved: u64,
    /// Active roster records (kept by the children's removal statement: their Clever id is staged).
    pub kept_children: u64,
    /// Placed children's active enrollments in the connection (kept by the enrollments' removal
    /// statement).
    pub kept_enrollments: u64,
}

impl LiveDiff {
    /// The diff when it describes every staged child: all `staged` were matched by their Clever
    /// id and every such match held (none carried over, linked or new).
    pub fn of(staged: u64, resolved: &Resolved) -> Option<LiveDiff> {
        resolved
            .diff
            .filter(|d| resolved.all_live(staged) && d.broken == 0)
    }
}

/// Reads [`LiveDiff`]; `$1` is the connection.
pub async fn live_diff(conn: &mut PgConnection, connection: &str) -> Result<LiveDiff, SyncError> {
    let differs = differs();
    let sql = format!(
        "SELECT count(*) FILTER (WHERE t.id IS NULL),
                count(*) FILTER (WHERE t.active AND {differs}),
                count(*) FILTER (WHERE NOT t.active),
                count(*) FILTER (WHERE {PLACED} AND e.child_id IS NULL),
                count(*) FILTER (WHERE {PLACED} AND {ENROLLMENT_INACTIVE}),
                count(*) FILTER (WHERE {PLACED} AND {ENROLLMENT_MOVED}),
                count(*) FILTER (WHERE t.active AND t.source = 'roster'),
                count(*) FILTER (WHERE {PLACED} AND e.active AND e.connection = $1)
         FROM stg_children s
         LEFT JOIN children t ON {LIVE_RECORD}
         LEFT JOIN enrollments e ON e.child_id = s.child_id
         WHERE s.match_kind = 'live'"
    );
    let row: (i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(&sql)
        .bind(connection)
        .fetch_one(&mut *conn)
        .await
        .map_err(SyncError::db(
            "comparing the staged children with their records",
        ))?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(LiveDiff {
        broken: n(row.0),
        changed: n(row.1),
        inactive: n(row.2),
        unenrolled: n(row.3),
        enrollments_inactive: n(row.4),
        moved: n(row.5),
        kept_children: n(row.6),
        kept_enrollments: n(row.7),
    })
}

/// Which of apply's statements on children and enrollments can write a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChildStatements {
    pub update: bool,
    pub reactivate: bool,
    pub carry_over: bool,
    pub link: bool,
    pub create: bool,
    pub enroll: bool,
    pub reactivate_enrollments: bool,
    pub move_enrollments: bool,
}

/// The statements to run for `staged` staged children, from what planning found (`resolved`): a
/// statement for a kind of matching that decided no child is skipped, creating children when
/// every staged child has its current record, the matched children's enrollments when none was
/// matched, and, with a [`LiveDiff`] (every staged child matched by its Clever id), each statement
/// whose count is 0.
pub fn child_statements(staged: u64, resolved: &Resolved) -> ChildStatements {
    let diff = LiveDiff::of(staged, resolved);
    let counted = |count: fn(&LiveDiff) -> u64| diff.as_ref().is_none_or(|d| count(d) > 0);
    let matched = resolved.any_matched();
    ChildStatements {
        update: resolved.live > 0 && counted(|d| d.changed),
        reactivate: resolved.live > 0 && counted(|d| d.inactive),
        carry_over: resolved.carry > 0,
        link: resolved.manual > 0,
        create: !resolved.all_live(staged),
        enroll: matched && counted(|d| d.unenrolled),
        reactivate_enrollments: matched && counted(|d| d.enrollments_inactive),
        move_enrollments: matched && counted(|d| d.moved),
    }
}

fn sets() -> String {
    COLUMNS
        .iter()
        .map(|(c, v)| format!("{c} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates, updates, reactivates, carries over and links children, and enrolls the new ones in
/// their classroom (`resolved`: how many staged children each kind of matching decided; a
/// statement for a kind that decided none is skipped). Returns the children's counts and the
/// enrollments created for new children.
pub async fn upsert(
    conn: &mut PgConnection,
    s: &ApplySettings,
    resolved: &Resolved,
    run: &ChildStatements,
) -> Result<(EntityCounts, u64), SyncError> {
    let sets = sets();
    let wanted = wanted();
    let differs = differs();
    let update = format!(
        "UPDATE children t SET {sets}, updated_at = now() FROM stg_children s
         WHERE s.match_kind = 'live' AND t.id = s.child_id AND t.connection = $1 AND t.active
           AND {differs}"
    );
    let reactivate = format!(
        "UPDATE children t SET {sets}, active = true, updated_at = now() FROM stg_children s
         WHERE s.match_kind = 'live' AND t.id = s.child_id AND t.connection = $1 AND NOT t.active"
    );
    // Carried over: restored with their journey, level and progress under the new Clever id.
    let carry_over = format!(
        "UPDATE children t SET {sets}, clever_id = s.clever_id, source = 'roster', active = true,
                archived_school_year = NULL, updated_at = now()
         FROM stg_children s WHERE s.match_kind = 'carry' AND t.id = s.child_id AND t.connection = $1"
    );
    // Manual records linked to the roster keep their journey, level and progress.
    let link = format!(
        "UPDATE children t SET {sets}, clever_id = s.clever_id, source = 'roster', active = true, updated_at = now()
         FROM stg_children s WHERE s.match_kind = 'manual' AND t.id = s.child_id AND t.connection = $1"
    );
    // Each statement writes the staged children one kind of matching decided: skipped when it
    // can write none (`child_statements`).
    let mut affected = [0; 4];
    for (n, (wanted, statement, doing)) in [
        (run.update, &update, "updating children"),
        (run.reactivate, &reactivate, "reactivating children"),
        (
            run.carry_over,
            &carry_over,
            "carrying over archived children",
        ),
        (run.link, &link, "linking manual children"),
    ]
    .into_iter()
    .enumerate()
    {
        if wanted {
            affected[n] = execute(conn, sqlx::query(statement).bind(&s.connection), doing).await?;
        }
    }
    let [updated, reactivated, carried_over, matched] = affected;
    let names = COLUMNS
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ");
    // New children: created with the staged Clever id, and enrolled in their classroom by the
    // same statement, from the ids it returns. Their ids are not written back to staging (a
    // rewrite of every staged row): from here on, the removal statements find each staged
    // child's record by its Clever id, which every staged child's current record now holds
    // (matched ones were given it above).
    // $1 the connection, $2 the new children's journey, $3 and $4 the starting levels' grades and
    // levels.
    let create = format!(
        "WITH created AS (
             INSERT INTO children (connection, clever_id, {names}, placement_level, journey, source)
             SELECT $1, s.clever_id, {wanted}, lv.level, $2, 'roster'
             FROM stg_children s
             LEFT JOIN unnest($3::text[], $4::int[]) AS lv(grade, level) ON lv.grade = s.final_grade
             WHERE s.match_kind IS NULL OR s.match_kind NOT IN ('live', 'carry', 'manual')
             ORDER BY s.clever_id
             RETURNING id, clever_id
         ), enrolled AS (
             INSERT INTO enrollments (child_id, connection, classroom_clever_id)
             SELECT c.id, $1, s.classroom_clever_id
             FROM created c JOIN stg_children s ON s.clever_id = c.clever_id
             WHERE s.classroom_clever_id IS NOT NULL
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM created), (SELECT count(*) FROM enrolled)"
    );
    let (created, enrolled): (i64, i64) = if run.create {
        sqlx::query_as(&create)
            .bind(&s.connection)
            .bind(&s.new_child_journey)
            .bind(&s.level_grades)
            .bind(&s.level_values)
            .fetch_one(&mut *conn)
            .await
            .map_err(SyncError::db("creating children"))?
    } else {
        (0, 0)
    };
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let counts = EntityCounts {
        created: n(created),
        updated,
        reactivated,
        carried_over,
        matched,
        unchanged: resolved.live.saturating_sub(updated + reactivated),
        ..Default::default()
    };
    Ok((counts, n(enrolled)))
}

/// Puts each matched staged child in its one classroom (`staged` staged children were placed in
/// one; `new_enrolled` of them, new children, were enrolled as they were created). Skipped when no
/// staged child holds an existing record.
pub async fn upsert_enrollments(
    conn: &mut PgConnection,
    s: &ApplySettings,
    run: &ChildStatements,
    staged: u64,
    new_enrolled: u64,
) -> Result<EntityCounts, SyncError> {
    let mut counts = EntityCounts {
        created: new_enrolled,
        unchanged: staged.saturating_sub(new_enrolled),
        ..Default::default()
    };
    // A matched staged child's record is `child_id` (resolve), and holds its Clever id now.
    let enroll = format!(
        "INSERT INTO enrollments (child_id, connection, classroom_clever_id)
         SELECT s.child_id, $1, s.classroom_clever_id FROM stg_children s
         WHERE s.child_id IS NOT NULL AND {PLACED}
           AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.child_id = s.child_id)
         ON CONFLICT (child_id) DO NOTHING"
    );
    let reactivate = format!(
        "UPDATE enrollments e SET classroom_clever_id = s.classroom_clever_id, active = true, updated_at = now()
         FROM stg_children s WHERE e.child_id = s.child_id AND {PLACED} AND {ENROLLMENT_INACTIVE}"
    );
    let relocate = format!(
        "UPDATE enrollments e SET classroom_clever_id = s.classroom_clever_id, updated_at = now()
         FROM stg_children s WHERE e.child_id = s.child_id AND {PLACED} AND {ENROLLMENT_MOVED}"
    );
    let created = if run.enroll {
        execute(
            conn,
            sqlx::query(&enroll).bind(&s.connection),
            "creating enrollments",
        )
        .await?
    } else {
        0
    };
    let reactivated = if run.reactivate_enrollments {
        execute(conn, sqlx::query(&reactivate), "reactivating enrollments").await?
    } else {
        0
    };
    let updated = if run.move_enrollments {
        execute(conn, sqlx::query(&relocate), "moving enrollments").await?
    } else {
        0
    };
    counts.created += created;
    counts.updated = updated;
    counts.reactivated = reactivated;
    counts.unchanged = staged.saturating_sub(counts.created + updated + reactivated);
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_that_can_write_no_row_is_skipped() {
        let none = ChildStatements::default();
        let live = |live: u64, diff: Option<LiveDiff>| Resolved {
            live,
            diff,
            ..Resolved::default()
        };
        let same = LiveDiff::default();
        let matched = ChildStatements {
            update: true,
            reactivate: true,
            enroll: true,
            reactivate_enrollments: true,
            move_enrollments: true,
            ..none
        };
        for (staged, resolved, want, why) in [
            (0, Resolved::default(), none, "nothing staged"),
            (
                1000,
                Resolved::default(),
                ChildStatements {
                    create: true,
                    ..none
                },
                "a first sync: only creating",
            ),
            (
                1000,
                live(1000, None),
                matched,
                "all matched, no diff read (some prefilled match was undone): every statement on matched children",
            ),
            (
                1000,
                live(1000, Some(same)),
                none,
                "a no-op resync: nothing to write",
            ),
            (
                1000,
                live(1000, Some(LiveDiff { changed: 3, ..same })),
                ChildStatements {
                    update: true,
                    ..none
                },
                "three renamed children: the update only",
            ),
            (
                1000,
                live(
                    1000,
                    Some(LiveDiff {
                        inactive: 1,
                        unenrolled: 1,
                        ..same
                    }),
                ),
                ChildStatements {
                    reactivate: true,
                    enroll: true,
                    ..none
                },
                "a child deactivated and unenrolled in the product",
            ),
            (
                1000,
                live(
                    1000,
                    Some(LiveDiff {
                        enrollments_inactive: 2,
                        moved: 5,
                        ..same
                    }),
                ),
                ChildStatements {
                    reactivate_enrollments: true,
                    move_enrollments: true,
                    ..none
                },
                "enrollments reactivated and moved",
            ),
            (
                1000,
                live(1000, Some(LiveDiff { broken: 1, ..same })),
                matched,
                "a broken match: the counts are not trusted",
            ),
            (
                1000,
                live(999, Some(same)),
                ChildStatements {
                    create: true,
                    ..matched
                },
                "a new child: the counts describe only some children; everything runs",
            ),
            (
                1000,
                Resolved {
                    live: 990,
                    carry: 10,
                    diff: Some(same),
                    ..Resolved::default()
                },
                ChildStatements {
                    carry_over: true,
                    create: true,
                    ..matched
                },
                "carried over (or ambiguous, created): everything runs",
            ),
            (
                1000,
                Resolved {
                    manual: 1000,
                    ..Resolved::default()
                },
                ChildStatements {
                    link: true,
                    create: true,
                    enroll: true,
                    reactivate_enrollments: true,
                    move_enrollments: true,
                    ..none
                },
                "linked (or ambiguous) manual children",
            ),
        ] {
            assert_eq!(child_statements(staged, &resolved), want, "{why}");
        }
    }
}
