//! Applying staged children and their enrollments (see `resolve` for how each staged child was
//! matched: `live`, `carry`, `manual`, or new).
use sqlx::PgConnection;

use super::SyncError;
use super::apply::{ApplySettings, execute};
use super::model::EntityCounts;

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

/// Creates, updates, reactivates, carries over and links children; `live_staged` staged children
/// were matched to their current record (`resolve`).
pub async fn upsert(
    conn: &mut PgConnection,
    s: &ApplySettings,
    live_staged: u64,
) -> Result<EntityCounts, SyncError> {
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
    let updated = execute(
        conn,
        sqlx::query(&update).bind(&s.connection),
        "updating children",
    )
    .await?;
    let reactivate = format!(
        "UPDATE children t SET {sets}, active = true, updated_at = now() FROM stg_children s
         WHERE s.match_kind = 'live' AND t.id = s.child_id AND t.connection = $1 AND NOT t.active"
    );
    let reactivated = execute(
        conn,
        sqlx::query(&reactivate).bind(&s.connection),
        "reactivating children",
    )
    .await?;
    // Carried over: restored with their journey, level and progress under the new Clever id.
    let carry_over = format!(
        "UPDATE children t SET {sets}, clever_id = s.clever_id, source = 'roster', active = true,
                archived_school_year = NULL, updated_at = now()
         FROM stg_children s WHERE s.match_kind = 'carry' AND t.id = s.child_id AND t.connection = $1"
    );
    let carried_over = execute(
        conn,
        sqlx::query(&carry_over).bind(&s.connection),
        "carrying over archived children",
    )
    .await?;
    // Manual records linked to the roster keep their journey, level and progress.
    let link = format!(
        "UPDATE children t SET {sets}, clever_id = s.clever_id, source = 'roster', active = true, updated_at = now()
         FROM stg_children s WHERE s.match_kind = 'manual' AND t.id = s.child_id AND t.connection = $1"
    );
    let matched = execute(
        conn,
        sqlx::query(&link).bind(&s.connection),
        "linking manual children",
    )
    .await?;
    let names = COLUMNS
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ");
    // New children: created with the staged Clever id. Their ids are not written back to
    // staging (a rewrite of every staged row): from here on, the enrollments and the removal
    // statements find each staged child's record by its Clever id, which every staged child's
    // current record now holds (matched ones were given it above).
    // $1 the connection, $2 the new children's journey, $3 and $4 the starting levels' grades and
    // levels.
    let create = format!(
        "INSERT INTO children (connection, clever_id, {names}, placement_level, journey, source)
         SELECT $1, s.clever_id, {wanted}, lv.level, $2, 'roster'
         FROM stg_children s
         LEFT JOIN unnest($3::text[], $4::int[]) AS lv(grade, level) ON lv.grade = s.final_grade
         WHERE s.match_kind IS NULL OR s.match_kind NOT IN ('live', 'carry', 'manual')
         ORDER BY s.clever_id"
    );
    let created = execute(
        conn,
        sqlx::query(&create)
            .bind(&s.connection)
            .bind(&s.new_child_journey)
            .bind(&s.level_grades)
            .bind(&s.level_values),
        "creating children",
    )
    .await?;
    Ok(EntityCounts {
        created,
        updated,
        reactivated,
        carried_over,
        matched,
        unchanged: live_staged.saturating_sub(updated + reactivated),
        ..Default::default()
    })
}

/// Puts each staged child in its one classroom (`staged` of them were placed in one).
pub async fn upsert_enrollments(
    conn: &mut PgConnection,
    s: &ApplySettings,
    staged: u64,
) -> Result<EntityCounts, SyncError> {
    let created = execute(
        conn,
        sqlx::query(
            "INSERT INTO enrollments (child_id, connection, classroom_clever_id)
             SELECT c.id, $1, s.classroom_clever_id FROM stg_children s
             JOIN children c ON c.connection = $1 AND c.clever_id = s.clever_id
                  AND c.archived_school_year IS NULL
             WHERE s.classroom_clever_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.child_id = c.id)
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
    Ok(EntityCounts {
        created,
        updated,
        reactivated,
        unchanged: staged.saturating_sub(created + updated + reactivated),
        ..Default::default()
    })
}
