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
) -> Result<(EntityCounts, u64), SyncError> {
    let sets = sets();
    let live = COLUMNS
        .iter()
        .map(|(c, _)| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let wanted = COLUMNS
        .iter()
        .map(|(_, v)| *v)
        .collect::<Vec<_>>()
        .join(", ");
    let update = format!(
        "UPDATE children t SET {sets}, updated_at = now() FROM stg_children s
         WHERE s.match_kind = 'live' AND t.id = s.child_id AND t.connection = $1 AND t.active
           AND ({live}) IS DISTINCT FROM ({wanted})"
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
    // Each statement writes the staged children one kind of matching decided: skipped when that
    // kind decided none.
    let mut affected = [0; 4];
    for (n, (decided, statement, doing)) in [
        (resolved.live, &update, "updating children"),
        (resolved.live, &reactivate, "reactivating children"),
        (
            resolved.carry,
            &carry_over,
            "carrying over archived children",
        ),
        (resolved.manual, &link, "linking manual children"),
    ]
    .into_iter()
    .enumerate()
    {
        if decided > 0 {
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
    let (created, enrolled): (i64, i64) = sqlx::query_as(&create)
        .bind(&s.connection)
        .bind(&s.new_child_journey)
        .bind(&s.level_grades)
        .bind(&s.level_values)
        .fetch_one(&mut *conn)
        .await
        .map_err(SyncError::db("creating children"))?;
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
    resolved: &Resolved,
    staged: u64,
    new_enrolled: u64,
) -> Result<EntityCounts, SyncError> {
    let mut counts = EntityCounts {
        created: new_enrolled,
        unchanged: staged.saturating_sub(new_enrolled),
        ..Default::default()
    };
    if !resolved.any_matched() {
        return Ok(counts);
    }
    // A matched staged child's record is `child_id` (resolve), and holds its Clever id now.
    let created = execute(
        conn,
        sqlx::query(
            "INSERT INTO enrollments (child_id, connection, classroom_clever_id)
             SELECT s.child_id, $1, s.classroom_clever_id FROM stg_children s
             WHERE s.child_id IS NOT NULL AND s.classroom_clever_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.child_id = s.child_id)
             ON CONFLICT (child_id) DO NOTHING",
        )
        .bind(&s.connection),
        "creating enrollments",
    )
    .await?;
    let reactivated = execute(
        conn,
        sqlx::query(
            "UPDATE enrollments e SET classroom_clever_id = s.classroom_clever_id, active = true, updated_at = now()
             FROM stg_children s WHERE e.child_id = s.child_id AND s.classroom_clever_id IS NOT NULL AND NOT e.active",
        ),
        "reactivating enrollments",
    )
    .await?;
    let updated = execute(
        conn,
        sqlx::query(
            "UPDATE enrollments e SET classroom_clever_id = s.classroom_clever_id, updated_at = now()
             FROM stg_children s WHERE e.child_id = s.child_id AND s.classroom_clever_id IS NOT NULL AND e.active
               AND e.classroom_clever_id IS DISTINCT FROM s.classroom_clever_id",
        ),
        "moving enrollments",
    )
    .await?;
    counts.created += created;
    counts.updated = updated;
    counts.reactivated = reactivated;
    counts.unchanged = staged.saturating_sub(counts.created + updated + reactivated);
    Ok(counts)
}
