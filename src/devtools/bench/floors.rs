//! The floors a sync is measured against, on the same emulator and database server as the sync:
//! fetching every page the sync needs with a plain HTTP client (bodies discarded), parsing those
//! bodies, and COPYing the rows the sync wrote into equivalently indexed tables; and, for
//! comparison, a plain per-record importer writing the same rows one statement at a time.
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::PgConnection;

use crate::clever::{School, Section, User, decode_page, next_link};

/// Fetching and parsing every page of the lists a sync reads.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchDecodeFloor {
    /// Wall time of the requests, bodies read in full and discarded (one request at a time).
    pub fetch_seconds: f64,
    /// The parse floor: every body parsed in full, each value validated and none built
    /// (serde_json into `IgnoredAny` records: the fastest full parse measured here, ~1 GB/s;
    /// simd-json to its tape took 3.5x as long on the same 7 MB page of students).
    pub parse_seconds: f64,
    /// For reference, not a floor: every record decoded into the client's models (strings,
    /// dates, grades), as an importer that reads every record would.
    pub decode_seconds: f64,
    pub pages: u64,
    pub bytes: u64,
    pub records: u64,
}

/// The lists a sync reads (`CleverSource::stage`): schools, sections, students, teachers.
const LISTS: [(&str, &str); 4] = [
    ("/v3.0/schools", ""),
    ("/v3.0/sections", ""),
    ("/v3.0/users", "role=student&"),
    ("/v3.0/users", "role=teacher&"),
];

/// Fetches every page of the sync's lists (and the district), one request at a time with a plain
/// reqwest client; each body is parsed after its request is timed, to find the next page.
pub async fn fetch_decode(
    base_url: &url::Url,
    token: &str,
    district_id: &str,
) -> anyhow::Result<FetchDecodeFloor> {
    let http = reqwest::Client::builder()
        .build()
        .context("cannot build an HTTP client")?;
    let base = base_url.as_str().trim_end_matches('/').to_string();
    let mut floor = FetchDecodeFloor::default();
    let (mut fetch, mut parse, mut decode) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let get = |uri: String| {
        let req = http.get(format!("{base}{uri}")).bearer_auth(token);
        async move {
            let resp = req.send().await.context("a floor request failed")?;
            anyhow::ensure!(
                resp.status().is_success(),
                "a floor request answered {}",
                resp.status()
            );
            resp.bytes().await.context("reading a floor body")
        }
    };
    let t = Instant::now();
    let body = get(format!("/v3.0/districts/{district_id}")).await?;
    fetch += t.elapsed();
    floor.pages += 1;
    floor.bytes += body.len() as u64;
    for (path, role) in LISTS {
        let mut next = Some(format!("{path}?{role}limit=10000"));
        while let Some(uri) = next.take() {
            let t = Instant::now();
            let body = get(uri).await?;
            fetch += t.elapsed();
            floor.pages += 1;
            floor.bytes += body.len() as u64;
            let t = Instant::now();
            let parsed: ParsedPage =
                serde_json::from_slice(&body).context("a floor body is not a list page")?;
            parse += t.elapsed();
            let t = Instant::now();
            let (records, link) = match path {
                "/v3.0/schools" => {
                    let page = decode_page::<School>(&body)?;
                    (
                        page.records.len(),
                        next_link(&page.links).map(str::to_owned),
                    )
                }
                "/v3.0/sections" => {
                    let page = decode_page::<Section>(&body)?;
                    (
                        page.records.len(),
                        next_link(&page.links).map(str::to_owned),
                    )
                }
                _ => {
                    let page = decode_page::<User>(&body)?;
                    (
                        page.records.len(),
                        next_link(&page.links).map(str::to_owned),
                    )
                }
            };
            decode += t.elapsed();
            anyhow::ensure!(
                parsed.data.len() == records,
                "the parse and the decoder disagree on a page's records"
            );
            drop(body);
            floor.records += records as u64;
            next = link.filter(|_| records > 0);
        }
    }
    floor.fetch_seconds = fetch.as_secs_f64();
    floor.parse_seconds = parse.as_secs_f64();
    floor.decode_seconds = decode.as_secs_f64();
    Ok(floor)
}

/// A list page parsed in full without building its records.
#[derive(serde::Deserialize)]
struct ParsedPage {
    data: Vec<serde::de::IgnoredAny>,
}

/// COPYing the rows a sync wrote.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyFloor {
    pub seconds: f64,
    pub rows: u64,
    pub bytes: u64,
}

/// The tables a sync writes, and how to select one connection's (one run's) rows of each.
const WRITTEN: [(&str, &str); 6] = [
    ("schools", "connection = $1"),
    ("classrooms", "connection = $1"),
    ("educators", "connection = $1"),
    ("children", "connection = $1"),
    ("enrollments", "connection = $1"),
    ("sync_problems", "run_id = $2"),
];

/// Creates the scratch schema `rs_floor` with copies of the written tables (same indexes and
/// constraints; foreign keys between the copies only with `json`, for the per-record importer)
/// and returns, per table, the rows `connection`'s run `run_id` wrote, read back in COPY text
/// format, or with `json` as one JSON object per line.
async fn scratch_tables(
    conn: &mut PgConnection,
    connection: &str,
    run_id: &str,
    json: bool,
) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    sqlx::raw_sql("DROP SCHEMA IF EXISTS rs_floor CASCADE; CREATE SCHEMA rs_floor")
        .execute(&mut *conn)
        .await
        .context("creating the scratch schema")?;
    let mut data = Vec::new();
    for (table, filter) in WRITTEN {
        sqlx::query(&format!(
            "CREATE TABLE rs_floor.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("creating rs_floor.{table}"))?;
        // COPY (query) cannot take parameters: the values are inlined as literals.
        let filter = filter
            .replace("$1", &quote_literal(connection))
            .replace("$2", &quote_literal(run_id));
        let select = if json {
            // One line per row; COPY text escapes backslashes, so the JSON is decoded below.
            format!("SELECT row_to_json(t) FROM public.{table} t WHERE {filter}")
        } else {
            format!("SELECT * FROM public.{table} WHERE {filter}")
        };
        let mut out = conn
            .copy_out_raw(&format!("COPY ({select}) TO STDOUT"))
            .await
            .with_context(|| format!("reading {table}"))?;
        let mut bytes = Vec::new();
        use futures::TryStreamExt as _;
        while let Some(chunk) = out.try_next().await? {
            bytes.extend_from_slice(&chunk);
        }
        data.push((table, bytes));
    }
    if json {
        copy_foreign_keys(conn).await?;
    }
    Ok(data)
}

/// References between the written tables that the product's tables check with statement-level
/// triggers instead of a foreign key (migration `20261201020000_enrollment_classrooms_checked_per_statement`):
/// on the copies they are foreign keys, the cheapest form of the same check for a writer of one
/// row per statement.
const CHECKED_BY_TRIGGERS: &[(&str, &str)] = &[(
    "enrollments",
    "FOREIGN KEY (connection, classroom_clever_id) REFERENCES rs_floor.classrooms (connection, clever_id) ON DELETE CASCADE",
)];

/// Gives the scratch copies the references between the written tables (an enrollment's child
/// and classroom): a per-record importer writes into the product's tables, so it pays the same
/// checks per row as the sync does. (The COPY floor stays without them: a floor.)
async fn copy_foreign_keys(conn: &mut PgConnection) -> anyhow::Result<()> {
    let tables: Vec<String> = WRITTEN.iter().map(|(t, _)| format!("public.{t}")).collect();
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, pg_get_constraintdef(c.oid)
         FROM pg_constraint c
         WHERE c.contype = 'f'
           AND c.conrelid = ANY (SELECT t::regclass FROM unnest($1::text[]) t)
           AND c.confrelid = ANY (SELECT t::regclass FROM unnest($1::text[]) t)
         ORDER BY c.conname",
    )
    .bind(&tables)
    .fetch_all(&mut *conn)
    .await
    .context("reading the written tables' foreign keys")?;
    for (table, referenced, definition) in keys {
        let definition = definition.replacen(
            &format!("REFERENCES {referenced}("),
            &format!("REFERENCES rs_floor.{referenced}("),
            1,
        );
        anyhow::ensure!(
            definition.contains("REFERENCES rs_floor."),
            "unexpected foreign key definition on {table}: {definition}"
        );
        sqlx::query(&format!("ALTER TABLE rs_floor.{table} ADD {definition}"))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("copying a foreign key of {table}"))?;
    }
    for (table, definition) in CHECKED_BY_TRIGGERS {
        sqlx::query(&format!("ALTER TABLE rs_floor.{table} ADD {definition}"))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("adding a trigger-checked reference of {table}"))?;
    }
    Ok(())
}

async fn drop_scratch(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::raw_sql("DROP SCHEMA rs_floor CASCADE")
        .execute(&mut *conn)
        .await
        .context("dropping the scratch schema")?;
    Ok(())
}

/// COPYs the rows `connection`'s run `run_id` wrote (read back in COPY text format beforehand)
/// into copies of the tables in a scratch schema, with the same indexes and constraints (foreign
/// keys excepted), in one transaction that is committed; the schema is dropped afterwards.
pub async fn copy(
    conn: &mut PgConnection,
    connection: &str,
    run_id: &str,
) -> anyhow::Result<CopyFloor> {
    let data = scratch_tables(conn, connection, run_id, false).await?;
    let mut floor = CopyFloor::default();
    let t = Instant::now();
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    for (table, bytes) in &data {
        let mut copy = conn
            .copy_in_raw(&format!("COPY rs_floor.{table} FROM STDIN"))
            .await
            .with_context(|| format!("COPY into rs_floor.{table}"))?;
        for chunk in bytes.chunks(1 << 20) {
            copy.send(chunk).await?;
        }
        floor.rows += copy.finish().await?;
        floor.bytes += bytes.len() as u64;
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    floor.seconds = t.elapsed().as_secs_f64();
    drop_scratch(conn).await?;
    Ok(floor)
}

/// A plain per-record importer writing the same rows: one `INSERT` statement (one round trip)
/// per row, in one transaction, into copies of the tables with their foreign keys. A lower bound
/// for such an importer: a real one also reads each record before it writes it, and updates and
/// deactivates row by row on later runs.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerRecord {
    pub seconds: f64,
    pub rows: u64,
}

/// Inserts the rows `connection`'s run `run_id` wrote one statement per row into the scratch
/// copies of the tables (see [`copy`]).
pub async fn per_record(
    conn: &mut PgConnection,
    connection: &str,
    run_id: &str,
) -> anyhow::Result<PerRecord> {
    let data = scratch_tables(conn, connection, run_id, true).await?;
    let mut rows: Vec<(&str, Vec<serde_json::Value>)> = Vec::new();
    for (table, bytes) in data {
        let text = String::from_utf8(bytes).context("the rows read back are not UTF-8")?;
        let mut values = Vec::new();
        for line in text.lines() {
            // COPY text format doubles backslashes (the only escape JSON text can need here).
            let line = line.replace("\\\\", "\\");
            values.push(serde_json::from_str(&line).context("a row read back is not JSON")?);
        }
        rows.push((table, values));
    }
    let mut floor = PerRecord::default();
    let t = Instant::now();
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    for (table, values) in &rows {
        let insert = format!(
            "INSERT INTO rs_floor.{table} SELECT * FROM jsonb_populate_record(NULL::rs_floor.{table}, $1)"
        );
        for v in values {
            sqlx::query(&insert)
                .bind(v)
                .execute(&mut *conn)
                .await
                .with_context(|| format!("inserting a row into rs_floor.{table}"))?;
            floor.rows += 1;
        }
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    floor.seconds = t.elapsed().as_secs_f64();
    drop_scratch(conn).await?;
    Ok(floor)
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
