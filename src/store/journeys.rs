//! The bulk journey updater: set the journey of a selection of a connection's children (by school,
//! classroom, grade or a list of ids), only to a product the operator holds licenses for, with a
//! change log (who, when, each child's journey before and after) that `revert` restores from.
use crate::store::time::Ts;
use serde::Serialize;
use sqlx::PgPool;

use super::rollover::{AdminError, lock_connection};
use crate::run::ConnectionKey;

/// Which children a change applies to (always current children of one connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    School(String),
    Classroom(String),
    /// A Clever grade value (e.g. `Preschool`).
    Grade(String),
    /// Product child ids and/or Clever ids.
    Ids {
        ids: Vec<i64>,
        clever_ids: Vec<String>,
    },
}

impl Selector {
    /// How the change log describes the selection (ids and grades, never names).
    pub fn describe(&self) -> String {
        match self {
            Selector::School(s) => format!("school={s}"),
            Selector::Classroom(c) => format!("classroom={c}"),
            Selector::Grade(g) => format!("grade={g}"),
            Selector::Ids { ids, clever_ids } => {
                format!("ids={} clever-ids={}", ids.len(), clever_ids.len())
            }
        }
    }
}

/// Parses a CSV of ids: one per line or comma separated; a header line (`id`, `clever_id`, any
/// non-id text in the first line) is skipped. Numbers are product child ids, anything else is a
/// Clever id.
pub fn parse_ids_csv(text: &str) -> Result<(Vec<i64>, Vec<String>), String> {
    let mut ids = Vec::new();
    let mut clever_ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for cell in line.split(',') {
            let cell = cell.trim().trim_matches('"').trim();
            if cell.is_empty() {
                continue;
            }
            if n == 0
                && matches!(
                    cell.to_ascii_lowercase().as_str(),
                    "id" | "clever_id" | "cleverid" | "child_id"
                )
            {
                continue;
            }
            if let Ok(id) = cell.parse::<i64>() {
                ids.push(id);
            } else if cell
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                clever_ids.push(cell.to_string());
            } else {
                return Err(format!(
                    "line {}: {cell:?} is neither a child id nor a Clever id",
                    n + 1
                ));
            }
        }
    }
    if ids.is_empty() && clever_ids.is_empty() {
        return Err("the ids file lists no ids".into());
    }
    Ok((ids, clever_ids))
}

/// The products the operator holds licenses for.
pub async fn licensed_products(
    executor: impl sqlx::PgExecutor<'_>,
) -> Result<Vec<String>, AdminError> {
    sqlx::query_scalar!("SELECT product FROM product_licenses ORDER BY product")
        .fetch_all(executor)
        .await
        .map_err(AdminError::db("reading the licensed products"))
}

/// Replaces the licensed products (the operator's configuration). Returns whether it changed.
pub async fn set_licensed_products(pool: &PgPool, products: &[String]) -> Result<bool, AdminError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(AdminError::db("starting the license update"))?;
    let removed = sqlx::query!(
        "DELETE FROM product_licenses WHERE NOT (product = ANY($1))",
        products
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("removing licenses"))?
    .rows_affected();
    let added = sqlx::query!(
        "INSERT INTO product_licenses (product) SELECT DISTINCT unnest($1::text[]) ON CONFLICT DO NOTHING",
        products,
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("adding licenses"))?
    .rows_affected();
    tx.commit()
        .await
        .map_err(AdminError::db("committing the licenses"))?;
    Ok(removed + added > 0)
}

/// What `journeys set` did (or, dry, would do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JourneyChangeOutcome {
    /// The change's id (`None` for a dry run or when nothing changed).
    pub change_id: Option<i64>,
    pub connection: String,
    pub selector: String,
    pub journey: String,
    /// Children whose journey changes.
    pub children: i64,
    /// Selected children already on the journey (not changed).
    pub unchanged: i64,
    /// Up to 10 of the changed children's ids.
    pub sample_ids: Vec<i64>,
    pub dry_run: bool,
}

/// The children selected, as a SQL condition on `c` ($1 the connection, $2 the selector's value(s),
/// $3 Clever ids for `Ids`).
fn selection(selector: &Selector) -> &'static str {
    match selector {
        Selector::School(_) => "c.school_clever_id = $2",
        Selector::Classroom(_) => {
            "EXISTS (SELECT 1 FROM enrollments e WHERE e.child_id = c.id AND e.active AND e.classroom_clever_id = $2)"
        }
        Selector::Grade(_) => "c.grade = $2",
        Selector::Ids { .. } => "(c.id = ANY($2) OR c.clever_id = ANY($3))",
    }
}

/// Sets the journey of the selected current, active children of `connection` to `journey`.
pub async fn set(
    pool: &PgPool,
    connection: &ConnectionKey,
    selector: &Selector,
    journey: &str,
    by: &str,
    dry_run: bool,
) -> Result<JourneyChangeOutcome, AdminError> {
    let licensed = licensed_products(pool).await?;
    if !licensed.iter().any(|p| p == journey) {
        return Err(AdminError::Invalid(if licensed.is_empty() {
            format!(
                "{journey:?} is not a licensed product: the operator has configured no licensed products \
                 (ProductLicense / the operator chart's licensedProducts); nothing was changed"
            )
        } else {
            format!(
                "{journey:?} is not a licensed product (licensed: {}); nothing was changed",
                licensed.join(", ")
            )
        }));
    }
    if let Selector::Ids { ids, clever_ids } = selector {
        let known = sqlx::query_scalar!(
            r#"SELECT count(*) AS "known!" FROM children c WHERE c.connection = $1 AND c.archived_school_year IS NULL
               AND (c.id = ANY($2) OR c.clever_id = ANY($3))"#,
            connection.as_str(),
            ids,
            clever_ids,
        )
        .fetch_one(pool)
        .await
        .map_err(AdminError::db("checking the ids"))?;
        let given = i64::try_from(ids.len() + clever_ids.len()).unwrap_or(i64::MAX);
        if known < given {
            return Err(AdminError::Invalid(format!(
                "{} of the {given} ids are not current children of {connection}; nothing was changed",
                given - known
            )));
        }
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(AdminError::db("starting the journey change"))?;
    lock_connection(&mut tx, connection).await?;
    let cond = selection(selector);
    let base = format!(
        "FROM children c WHERE c.connection = $1 AND c.archived_school_year IS NULL AND c.active AND {cond}"
    );
    let select = format!("SELECT c.id, c.journey {base} ORDER BY c.id FOR UPDATE");
    let mut query = sqlx::query_as::<_, (i64, Option<String>)>(&select).bind(connection.as_str());
    query = match selector {
        Selector::School(v) | Selector::Classroom(v) | Selector::Grade(v) => {
            query.bind(v.as_str()).bind(Vec::<String>::new())
        }
        Selector::Ids { ids, clever_ids } => query.bind(ids.clone()).bind(clever_ids.clone()),
    };
    let selected: Vec<(i64, Option<String>)> = query
        .fetch_all(&mut *tx)
        .await
        .map_err(AdminError::db("selecting children"))?;
    let (changing, unchanged): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .partition(|(_, from)| from.as_deref() != Some(journey));
    let ids: Vec<i64> = changing.iter().map(|(id, _)| *id).collect();
    let froms: Vec<Option<String>> = changing.into_iter().map(|(_, from)| from).collect();
    let mut outcome = JourneyChangeOutcome {
        change_id: None,
        connection: connection.to_string(),
        selector: selector.describe(),
        journey: journey.to_string(),
        children: i64::try_from(ids.len()).unwrap_or(i64::MAX),
        unchanged: i64::try_from(unchanged.len()).unwrap_or(i64::MAX),
        sample_ids: ids.iter().take(10).copied().collect(),
        dry_run,
    };
    if dry_run || ids.is_empty() {
        tx.rollback()
            .await
            .map_err(AdminError::db("ending the dry run"))?;
        return Ok(outcome);
    }
    let change_id = sqlx::query_scalar!(
        "INSERT INTO journey_changes (connection, selector, journey, children, changed_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        connection.as_str(),
        outcome.selector,
        journey,
        i32::try_from(ids.len()).unwrap_or(i32::MAX),
        by,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(AdminError::db("recording the journey change"))?;
    sqlx::query!(
        "INSERT INTO journey_change_items (change_id, child_id, from_journey, to_journey)
         SELECT $1, u.id, u.from_journey, $4 FROM unnest($2::bigint[], $3::text[]) AS u(id, from_journey)",
        change_id,
        &ids,
        &froms as &[Option<String>],
        journey,
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("recording each child's journey"))?;
    sqlx::query!(
        "UPDATE children SET journey = $3, updated_at = now() WHERE connection = $1 AND id = ANY($2)",
        connection.as_str(),
        &ids,
        journey,
    )
    .execute(&mut *tx)
        .await
        .map_err(AdminError::db("changing journeys"))?;
    tx.commit()
        .await
        .map_err(AdminError::db("committing the journey change"))?;
    outcome.change_id = Some(change_id);
    Ok(outcome)
}

/// One change of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JourneyChangeRow {
    pub id: i64,
    pub changed_at: jiff::Timestamp,
    pub changed_by: String,
    pub selector: String,
    pub journey: Option<String>,
    pub children: i32,
    pub reverted_at: Option<jiff::Timestamp>,
    pub reverted_by: Option<String>,
}

/// The journey changes of `connection`, newest first.
pub async fn list(
    pool: &PgPool,
    connection: &ConnectionKey,
    limit: i64,
) -> Result<Vec<JourneyChangeRow>, AdminError> {
    let rows = sqlx::query!(
        r#"SELECT id, changed_at AS "changed_at: Ts", changed_by, selector, journey, children,
                reverted_at AS "reverted_at: Ts", reverted_by
         FROM journey_changes WHERE connection = $1 ORDER BY id DESC LIMIT $2"#,
        connection.as_str(),
        limit.max(0),
    )
    .fetch_all(pool)
    .await
    .map_err(AdminError::db("reading the journey changes"))?;
    Ok(rows
        .into_iter()
        .map(|r| JourneyChangeRow {
            id: r.id,
            changed_at: r.changed_at.0,
            changed_by: r.changed_by,
            selector: r.selector,
            journey: r.journey,
            children: r.children,
            reverted_at: r.reverted_at.map(|t| t.0),
            reverted_by: r.reverted_by,
        })
        .collect())
}

/// What a revert did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevertOutcome {
    pub change_id: i64,
    pub connection: String,
    /// Children restored to their journey before the change.
    pub restored: i64,
    /// Children whose journey changed again since (left as they are).
    pub skipped: i64,
    pub dry_run: bool,
}

/// Restores each child's journey from before change `change_id` of `connection`; a child whose
/// journey changed again since is left alone (and counted).
pub async fn revert(
    pool: &PgPool,
    connection: &ConnectionKey,
    change_id: i64,
    by: &str,
    dry_run: bool,
) -> Result<RevertOutcome, AdminError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(AdminError::db("starting the revert"))?;
    lock_connection(&mut tx, connection).await?;
    let change = sqlx::query_scalar!(
        "SELECT to_char(reverted_at, 'YYYY-MM-DD HH24:MI') FROM journey_changes
         WHERE id = $1 AND connection = $2 FOR UPDATE",
        change_id,
        connection.as_str(),
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(AdminError::db("reading the journey change"))?;
    match change {
        None => {
            return Err(AdminError::Invalid(format!(
                "connection {connection} has no journey change {change_id} (see `rostersync journeys list {connection}`)"
            )));
        }
        Some(Some(at)) => {
            return Err(AdminError::Invalid(format!(
                "journey change {change_id} was already reverted ({at} UTC); nothing was changed"
            )));
        }
        Some(None) => {}
    }
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM journey_change_items WHERE change_id = $1"#,
        change_id
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(AdminError::db("counting the change's children"))?;
    let restored = sqlx::query!(
        "UPDATE children c SET journey = i.from_journey, updated_at = now()
         FROM journey_change_items i
         WHERE i.change_id = $1 AND c.id = i.child_id AND c.connection = $2
           AND c.journey IS NOT DISTINCT FROM i.to_journey",
        change_id,
        connection.as_str(),
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("restoring journeys"))?
    .rows_affected();
    let restored = i64::try_from(restored).unwrap_or(i64::MAX);
    sqlx::query!(
        "UPDATE journey_changes SET reverted_at = now(), reverted_by = $2 WHERE id = $1",
        change_id,
        by,
    )
    .execute(&mut *tx)
    .await
    .map_err(AdminError::db("recording the revert"))?;
    if dry_run {
        tx.rollback()
            .await
            .map_err(AdminError::db("ending the dry run"))?;
    } else {
        tx.commit()
            .await
            .map_err(AdminError::db("committing the revert"))?;
    }
    Ok(RevertOutcome {
        change_id,
        connection: connection.to_string(),
        restored,
        skipped: total - restored,
        dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_files_take_child_ids_and_clever_ids_with_or_without_a_header() {
        assert_eq!(
            parse_ids_csv("id\n12\n13, 5f0c\n\n"),
            Ok((vec![12, 13], vec!["5f0c".to_string()]))
        );
        assert_eq!(parse_ids_csv("7"), Ok((vec![7], vec![])));
        assert!(parse_ids_csv("id\n").is_err());
        assert!(parse_ids_csv("1\nAnn Doe").is_err());
    }
}
