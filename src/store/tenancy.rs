//! A database role per district: the one owner of district credentials in Postgres.
//!
//! In `dedicated` tenancy (the default) the controller, which owns the tables, gives each
//! RosterConnection a login role of its own. Row-level security (migration
//! `20261130040000_tenant_row_security.sql`) limits that role to its connection's rows in every
//! roster table and in the sync history; the role has no DDL rights (it cannot create or alter a
//! table) and runs no migrations. The role's URL lives in a Secret in the district's namespace,
//! written by the controller (`crate::controller::tenancy`). In `shared` tenancy every sync Job
//! uses one URL with the owner's rights, which the district charts copy into each namespace:
//! weaker (whoever reads one district's Secret reads every district), for a database where roles
//! cannot be created.
//!
//! Names here are pure functions ([`role_name`], [`group_role_name`], [`tenant_url`]), so the same
//! connection always maps to the same role; the I/O is in the async functions below.
use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::StoreError;

/// How sync Jobs reach the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Tenancy {
    /// A login role per RosterConnection, limited to its rows (row-level security), in a Secret
    /// the controller writes to the district's namespace.
    #[default]
    Dedicated,
    /// One URL with the owner's rights for every district, from a Secret the district chart
    /// copies (`--database-secret`). Weaker: for databases where roles cannot be created.
    Shared,
}

/// The tables a district role may read and write (its own rows only): every table with
/// row-level security. `tests/db_roles.rs` checks that this list is every table with a
/// `connection` column (or a run's problems), so that a new roster table cannot be forgotten.
pub const TENANT_TABLES: [&str; 7] = [
    "schools",
    "classrooms",
    "educators",
    "children",
    "enrollments",
    "sync_runs",
    "sync_problems",
];

/// Tables of the admin tools (links, journey changes, rollovers) with the same rights, limited
/// to the district's rows by row-level security; a sync reads the links and may roll a school
/// year over (`settings.rolloverDate`). Unlike [`TENANT_TABLES`], a sync does not fill them.
pub const TENANT_ADMIN_TABLES: [&str; 4] = [
    "roster_links",
    "journey_changes",
    "journey_change_items",
    "school_year_rollovers",
];

/// The sequences behind those tables' serial columns.
pub const TENANT_SEQUENCES: [&str; 5] = [
    "children_id_seq",
    "sync_problems_id_seq",
    "educators_id_seq",
    "roster_links_id_seq",
    "journey_changes_id_seq",
];

fn short_hash(parts: &[&str], hex_chars: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let mut out = String::with_capacity(hex_chars);
    for byte in hasher.finalize() {
        if out.len() >= hex_chars {
            break;
        }
        let _ = write!(out, "{byte:02x}");
    }
    out.truncate(hex_chars);
    out
}

/// The role every district role is a member of, which holds the table privileges. Roles are
/// global to a Postgres server, so the name includes a hash of the database's name: two
/// databases on one server (two installations, or parallel tests) never share roles.
pub fn group_role_name(database: &str) -> String {
    format!("rs_{}_districts", short_hash(&[database], 8))
}

/// The login role of one connection (`namespace/name`) in `database`: only `[a-z0-9_]`, well
/// under Postgres' 63-byte limit, stable, with 64 bits of hash per part.
pub fn role_name(database: &str, connection: &str) -> String {
    format!(
        "rs_{}_{}",
        short_hash(&[database], 8),
        short_hash(&[connection], 16)
    )
}

/// A new random password: 32 hex characters (128 bits), so that it needs no quoting anywhere.
pub fn new_password() -> String {
    use rand::RngExt;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The URL a district role connects with: `owner_url` with its user and password replaced.
pub fn tenant_url(owner_url: &str, role: &str, password: &str) -> Result<String, String> {
    let mut url = url::Url::parse(owner_url)
        .map_err(|e| format!("the database URL is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "the database URL has scheme {:?}; expected postgres://",
            url.scheme()
        ));
    }
    url.set_username(role)
        .and_then(|()| url.set_password(Some(password)))
        .map_err(|()| "the database URL has no host".to_string())?;
    Ok(url.into())
}

/// Whether a role name is one this module made (so that it is safe to splice into SQL).
fn is_plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn plain(name: &str) -> Result<&str, StoreError> {
    if is_plain_identifier(name) {
        Ok(name)
    } else {
        Err(StoreError::InvalidRole(name.to_string()))
    }
}

/// What [`prepare`] found: the database and its group role.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub database: String,
    /// The schema of the tables (the owner's `current_schema()`): district roles get it as their
    /// search path.
    pub schema: String,
    pub group_role: String,
}

/// Makes the database ready for district roles, idempotently (the controller runs it at every
/// start, after the migrations): the group role exists and holds exactly the privileges a sync
/// needs on the tables of [`TENANT_TABLES`] (their rows filtered by row-level security), their
/// sequences, the schema, and read access to the migration record (a sync checks the schema
/// version). Needs the CREATEROLE attribute (or a superuser) and ownership of the tables.
/// CONNECT and TEMPORARY on the database come from PUBLIC (Postgres' default); where those were
/// revoked, grant them to the group role (docs/operations.md).
pub async fn prepare(pool: &PgPool) -> Result<Prepared, StoreError> {
    let (database, schema) =
        sqlx::query!(r#"SELECT current_database() AS "database!", current_schema() AS "schema!""#)
            .fetch_one(pool)
            .await
            .map(|r| (r.database, r.schema))
            .map_err(StoreError::query("reading the database name"))?;
    let group = group_role_name(&database);
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::query("starting the role setup"))?;
    lock_roles(&mut tx).await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS "exists!""#,
        group
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::query("looking up the district group role"))?;
    if !exists {
        sqlx::query(&format!("CREATE ROLE {} NOLOGIN", plain(&group)?))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::roles("creating the district group role"))?;
    }
    let statements = [
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {group}",
            TENANT_TABLES.join(", ")
        ),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {group}",
            TENANT_ADMIN_TABLES.join(", ")
        ),
        // The operator's licensed products: read only.
        format!("GRANT SELECT ON product_licenses TO {group}"),
        format!(
            "GRANT USAGE, SELECT ON SEQUENCE {} TO {group}",
            TENANT_SEQUENCES.join(", ")
        ),
        format!("GRANT SELECT ON _sqlx_migrations TO {group}"),
        // The post-commit statistics refresh of a first sync (owner's rights, roster tables only).
        format!("GRANT EXECUTE ON FUNCTION rs_analyze_roster_table(text, text[]) TO {group}"),
        format!("GRANT USAGE ON SCHEMA {} TO {group}", quote_ident(&schema)),
    ];
    for statement in &statements {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::roles(
                "granting the district group role its rights",
            ))?;
    }
    tx.commit()
        .await
        .map_err(StoreError::query("committing the role setup"))?;
    Ok(Prepared {
        database,
        schema,
        group_role: group,
    })
}

/// Role changes one at a time (until the transaction ends): replicas starting together (leader
/// election comes later) would race on CREATE ROLE and GRANT (a unique violation, "tuple
/// concurrently updated").
async fn lock_roles(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), StoreError> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended('rostersync:roles', 0))")
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("waiting for the role setup lock"))?;
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A district role's credential, as the controller stores it in the district's Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub role: String,
    pub url: String,
    pub fingerprint: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("role", &self.role)
            .field("url", &"<redacted>")
            .finish()
    }
}

/// The fingerprint of the connection's current password, when its role exists, may log in and is
/// mapped to it (`None`: the role needs provisioning).
pub async fn current_fingerprint(
    pool: &PgPool,
    prepared: &Prepared,
    connection: &str,
) -> Result<Option<String>, StoreError> {
    let role = role_name(&prepared.database, connection);
    sqlx::query_scalar!(
        "SELECT t.fingerprint FROM rs_tenants t JOIN pg_roles r ON r.rolname = t.role_name
         WHERE t.role_name = $1 AND t.connection = $2 AND r.rolcanlogin",
        role,
        connection
    )
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("looking up a district role"))
}

/// A short, non-reversible tag of a password (the first 64 bits of its SHA-256; the password
/// has 128 random bits, so the tag reveals nothing usable).
pub fn fingerprint(password: &str) -> String {
    short_hash(&[password], 16)
}

/// Creates the connection's login role (or sets a new password on it), makes it a member of the
/// group role and maps it to the connection, in one transaction; returns its credential (a new
/// password each time: the caller stores it in the district's Secret).
pub async fn provision(
    pool: &PgPool,
    prepared: &Prepared,
    connection: &str,
    owner_url: &str,
) -> Result<Credential, StoreError> {
    let role = role_name(&prepared.database, connection);
    let password = new_password();
    let url = tenant_url(owner_url, &role, &password).map_err(StoreError::InvalidOwnerUrl)?;
    let (role_sql, group_sql) = (plain(&role)?, plain(&prepared.group_role)?);
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::query("starting the district role setup"))?;
    lock_roles(&mut tx).await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS "exists!""#,
        role
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::query("looking up a district role"))?;
    // The password is 32 hex characters and the names are [a-z0-9_]: nothing to escape.
    let verb = if exists { "ALTER" } else { "CREATE" };
    sqlx::query(&format!(
        "{verb} ROLE {role_sql} LOGIN INHERIT NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
    ))
    .execute(&mut *tx)
    .await
    .map_err(StoreError::roles("creating a district role"))?;
    sqlx::query(&format!(
        "ALTER ROLE {role_sql} IN DATABASE {} SET search_path = {}",
        quote_ident(&prepared.database),
        quote_ident(&prepared.schema)
    ))
    .execute(&mut *tx)
    .await
    .map_err(StoreError::roles("setting a district role's search path"))?;
    sqlx::query(&format!("GRANT {group_sql} TO {role_sql}"))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::roles("granting a district role its group"))?;
    sqlx::query!(
        "INSERT INTO rs_tenants (role_name, connection, fingerprint) VALUES ($1, $2, $3)
         ON CONFLICT (role_name) DO UPDATE
         SET connection = EXCLUDED.connection, fingerprint = EXCLUDED.fingerprint, rotated_at = now()",
        role,
        connection,
        fingerprint(&password)
    )
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("mapping a district role to its connection"))?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing the district role setup"))?;
    Ok(Credential {
        role,
        url,
        fingerprint: fingerprint(&password),
    })
}

/// Removes the connection's role and its mapping (offboarding). A role that is gone already is
/// fine. Sessions still open with it keep running until they end, but with no row visible.
pub async fn deprovision(
    pool: &PgPool,
    prepared: &Prepared,
    connection: &str,
) -> Result<(), StoreError> {
    let role = role_name(&prepared.database, connection);
    let role_sql = plain(&role)?;
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::query("starting the district role removal"))?;
    lock_roles(&mut tx).await?;
    sqlx::query!("DELETE FROM rs_tenants WHERE connection = $1", connection)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("unmapping a district role"))?;
    sqlx::query(&format!("DROP ROLE IF EXISTS {role_sql}"))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::roles("dropping a district role"))?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing the district role removal"))
}

/// Rows deleted from each roster table by [`delete_roster`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeletedRoster {
    pub enrollments: u64,
    pub children: u64,
    pub classrooms: u64,
    pub educators: u64,
    pub schools: u64,
}

/// Deletes every roster row of a connection (its children, enrollments, classrooms, educators and
/// schools) in one transaction, for `deletionPolicy: Delete`. Its run history stays until the
/// history retention prunes it.
pub async fn delete_roster(pool: &PgPool, connection: &str) -> Result<DeletedRoster, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::query("starting the roster deletion"))?;
    let what = "deleting a connection's roster";
    let enrollments = sqlx::query!("DELETE FROM enrollments WHERE connection = $1", connection)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(what))?
        .rows_affected();
    let children = sqlx::query!("DELETE FROM children WHERE connection = $1", connection)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(what))?
        .rows_affected();
    let classrooms = sqlx::query!("DELETE FROM classrooms WHERE connection = $1", connection)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(what))?
        .rows_affected();
    let educators = sqlx::query!("DELETE FROM educators WHERE connection = $1", connection)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(what))?
        .rows_affected();
    let schools = sqlx::query!("DELETE FROM schools WHERE connection = $1", connection)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(what))?
        .rows_affected();
    tx.commit()
        .await
        .map_err(StoreError::query("committing the roster deletion"))?;
    Ok(DeletedRoster {
        enrollments,
        children,
        classrooms,
        educators,
        schools,
    })
}

/// The connection the session's credential is limited to (`None` for the owner or any role that
/// is not a district role, e.g. in `shared` tenancy).
pub async fn credential_connection(pool: &PgPool) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar!("SELECT rs_tenant_connection()")
        .fetch_one(pool)
        .await
        .map_err(StoreError::query(
            "reading which connection the credential is for",
        ))
}

/// Rows removed by [`prune_history`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub emails: u64,
}

/// Deletes the history older than `retention`: finished runs (their problems go with them) and
/// sent or abandoned emails. Running runs and pending emails are never pruned.
pub async fn prune_history(
    pool: &PgPool,
    retention: std::time::Duration,
) -> Result<Pruned, StoreError> {
    let seconds = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let runs = sqlx::query!(
        "DELETE FROM sync_runs WHERE result <> 'Running'
           AND coalesce(finished_at, started_at) < now() - make_interval(secs => $1::bigint)",
        seconds
    )
    .execute(pool)
    .await
    .map_err(StoreError::query("pruning old sync runs"))?
    .rows_affected();
    let emails = sqlx::query!(
        "DELETE FROM email_outbox WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL)
           AND created_at < now() - make_interval(secs => $1::bigint)",
        seconds
    )
    .execute(pool)
    .await
    .map_err(StoreError::query("pruning old emails"))?
    .rows_affected();
    Ok(Pruned { runs, emails })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_stable_plain_and_distinct() {
        let a = role_name("rostersync", "district-a/clever");
        assert_eq!(a, role_name("rostersync", "district-a/clever"));
        assert!(is_plain_identifier(&a), "{a}");
        assert_eq!(a.len(), 3 + 8 + 1 + 16);
        assert_ne!(a, role_name("rostersync", "district-b/clever"));
        assert_ne!(a, role_name("other", "district-a/clever"));
        // The separator keeps ("a/b", "c") and ("a", "b/c")-style inputs apart.
        assert_ne!(short_hash(&["ab", "c"], 16), short_hash(&["a", "bc"], 16));
        let long = format!("ns/{}", "x".repeat(253));
        assert!(is_plain_identifier(&role_name("db", &long)));
        let group = group_role_name("rostersync");
        assert!(is_plain_identifier(&group) && group.ends_with("_districts"));
    }

    #[test]
    fn passwords_are_hex_and_new_each_time() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn tenant_urls_replace_only_the_user() {
        let cases = [
            (
                "postgres://postgres:secret@db.example:5432/roster?sslmode=require",
                Ok("postgres://rs_x:pw@db.example:5432/roster?sslmode=require"),
            ),
            (
                "postgresql://127.0.0.1:5433/roster",
                Ok("postgresql://rs_x:pw@127.0.0.1:5433/roster"),
            ),
            ("mysql://db/roster", Err("scheme")),
            ("not a url", Err("not a valid URL")),
        ];
        for (owner, want) in cases {
            match (tenant_url(owner, "rs_x", "pw"), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{owner}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{owner}: {got}"),
                (got, want) => panic!("{owner}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn only_plain_identifiers_reach_sql() {
        for bad in ["", "Rs", "a;drop role x", "a b", "a\"b", &"a".repeat(64)] {
            assert!(!is_plain_identifier(bad), "{bad:?}");
        }
        assert!(is_plain_identifier("rs_0123abcd_districts"));
    }

    #[test]
    fn credentials_never_print_their_url() {
        let c = Credential {
            role: "rs_x".into(),
            url: "postgres://rs_x:hunter2@h/db".into(),
            fingerprint: fingerprint("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
