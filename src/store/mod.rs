//! The roster store in Postgres: connecting, the embedded migrations, and the sync history
//! (`sync_runs`, `sync_problems`, all in [`runs`]). The roster tables themselves are written only by [`crate::sync`].
pub mod cli;
pub mod journeys;
pub mod matching;
pub mod problems;
pub mod rollover;
pub mod runs;
pub mod tenancy;
pub mod time;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

/// The embedded migrations (`migrations/*.sql`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Errors of the store, with what to check.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database URL is invalid: {0} (expected postgres://user@host:port/database)")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("cannot connect to Postgres: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("sync_runs row {run_id} has an invalid {column}: {detail}")]
    InvalidRow {
        run_id: String,
        column: &'static str,
        detail: String,
    },
    #[error("run {0} is not in sync_runs (was the history pruned or the database reset?)")]
    RunMissing(String),
    /// A run id of another connection: run ids are checked with their connection, never trusted
    /// alone.
    #[error(
        "run id {run_id} already belongs to another connection than {connection}: nothing was \
         recorded; start the run with a new run id"
    )]
    RunIdTaken { run_id: String, connection: String },
    #[error("database error while {doing}: {source}")]
    Query {
        doing: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "database error while {doing}: {source} (dedicated tenancy needs an owner credential with \
         the CREATEROLE attribute; where roles cannot be created, run the controller with \
         --database-tenancy shared, which is weaker: see docs/security.md)"
    )]
    Roles {
        doing: &'static str,
        source: sqlx::Error,
    },
    #[error("{0:?} is not a role name rostersync makes")]
    InvalidRole(String),
    #[error("cannot derive a district's database URL from the controller's: {0}")]
    InvalidOwnerUrl(String),
    #[error(
        "the database schema is behind this rostersync: migration {missing} is not applied (the \
         controller applies migrations at start: upgrade or restart it, or run `rostersync \
         migrate` with the owner's URL)"
    )]
    SchemaBehind { missing: i64 },
}

impl StoreError {
    pub(crate) fn query(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { doing, source }
    }

    pub(crate) fn roles(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Roles { doing, source }
    }
}

/// Server-side limits set on every connection, so one stuck run cannot block every district: a
/// statement that runs too long, a lock that cannot be had, a transaction left idle (a frozen
/// client) and a dead client's TCP connection (keepalives) all end, and with them the session's
/// locks, advisory lock included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
    /// TCP keepalive idle time; a dead peer is dropped after it plus 3 probes 10 s apart.
    pub keepalive_idle: Duration,
    /// The client's own bound (not a session parameter): the longest the sync waits for Postgres
    /// to answer. A run whose database stops answering (a frozen server or network path, where TCP
    /// keepalives are still acknowledged) gives up after about this long, instead of waiting for
    /// a reply that never comes: its session is watched from a second connection, and every wait
    /// for a fresh connection is bounded by it.
    pub client_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            statement_timeout: Duration::from_secs(600),
            lock_timeout: Duration::from_secs(60),
            idle_in_transaction_timeout: Duration::from_secs(120),
            keepalive_idle: Duration::from_secs(30),
            client_timeout: Duration::from_secs(60),
        }
    }
}

impl SessionLimits {
    /// The session parameters (milliseconds for timeouts, seconds for keepalives).
    pub fn parameters(&self) -> [(&'static str, String); 6] {
        let ms = |d: Duration| d.as_millis().to_string();
        [
            ("statement_timeout", ms(self.statement_timeout)),
            ("lock_timeout", ms(self.lock_timeout)),
            (
                "idle_in_transaction_session_timeout",
                ms(self.idle_in_transaction_timeout),
            ),
            (
                "tcp_keepalives_idle",
                self.keepalive_idle.as_secs().max(1).to_string(),
            ),
            ("tcp_keepalives_interval", "10".to_string()),
            ("tcp_keepalives_count", "3".to_string()),
        ]
    }
}

/// Connects a pool to `url` (a `postgres://` URL) with the default [`SessionLimits`].
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    connect_with(url, max_connections, &SessionLimits::default()).await
}

/// Connects a pool to `url` with `limits` on every connection.
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    limits: &SessionLimits,
) -> Result<PgPool, StoreError> {
    connect_with_ca(url, max_connections, limits, None).await
}

/// Whether the extra CA certificates (`--extra-ca-file`) are the roots of a connection: only when
/// it verifies the server (`sslmode=verify-ca` or `verify-full`) and names no CA of its own (the
/// URL's `sslrootcert`, or `PGSSLROOTCERT` in the environment), which then wins, as in libpq.
/// Like `sslrootcert` in sqlx, they are trusted in addition to the bundled Mozilla roots.
pub fn extra_ca_applies(url: &str, ssl_mode: PgSslMode, env_root_cert: bool) -> bool {
    let verifies = matches!(ssl_mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
    let url_root_cert = url::Url::parse(url).is_ok_and(|u| {
        u.query_pairs()
            .any(|(k, _)| matches!(k.as_ref(), "sslrootcert" | "ssl-root-cert" | "ssl-ca"))
    });
    verifies && !url_root_cert && !env_root_cert
}

/// The connect options of `url`: `limits` on every session, and `extra_ca` as the CA when
/// [`extra_ca_applies`].
pub fn connect_options(
    url: &str,
    limits: &SessionLimits,
    extra_ca: Option<&crate::tls::ExtraCa>,
) -> Result<PgConnectOptions, StoreError> {
    let mut options: PgConnectOptions = url.parse().map_err(StoreError::InvalidUrl)?;
    if let Some(ca) = extra_ca {
        let env_root_cert = std::env::var_os("PGSSLROOTCERT").is_some();
        if extra_ca_applies(url, options.get_ssl_mode(), env_root_cert) {
            options = options.ssl_root_cert_from_pem(ca.pem().to_vec());
        }
    }
    let parameters = limits.parameters();
    Ok(options.options(parameters.iter().map(|(k, v)| (*k, v.as_str()))))
}

/// [`connect_with`], trusting `extra_ca` too (see [`connect_options`]).
pub async fn connect_with_ca(
    url: &str,
    max_connections: u32,
    limits: &SessionLimits,
    extra_ca: Option<&crate::tls::ExtraCa>,
) -> Result<PgPool, StoreError> {
    let options = connect_options(url, limits, extra_ca)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(StoreError::Connect)
}

/// Applies the pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Checks, without changing anything, that every migration this binary knows is applied (a sync
/// never runs DDL: the controller migrates at start). A database ahead of the binary is fine.
pub async fn check_schema(pool: &PgPool) -> Result<(), StoreError> {
    let applied: Vec<i64> =
        sqlx::query_scalar!("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(|source| match &source {
                sqlx::Error::Database(e) if e.code().as_deref() == Some("42P01") => {
                    StoreError::SchemaBehind {
                        missing: MIGRATOR.iter().next().map_or(0, |m| m.version),
                    }
                }
                _ => StoreError::Query {
                    doing: "reading the applied migrations",
                    source,
                },
            })?;
    match MIGRATOR
        .iter()
        .find(|m| applied.binary_search(&m.version).is_err())
    {
        Some(m) => Err(StoreError::SchemaBehind { missing: m.version }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_ca_is_used_only_when_verifying_without_a_ca_of_its_own() {
        use PgSslMode::*;
        let base = "postgres://app@db.example.org/roster";
        let own = "postgres://app@db.example.org/roster?sslmode=verify-full&sslrootcert=/ca/db.crt";
        let cases = [
            (base, VerifyFull, false, true),
            (base, VerifyCa, false, true),
            (base, Require, false, false),
            (base, Prefer, false, false),
            (base, Disable, false, false),
            (own, VerifyFull, false, false),
            (base, VerifyFull, true, false),
        ];
        for (url, mode, env, want) in cases {
            assert_eq!(
                extra_ca_applies(url, mode, env),
                want,
                "{url} {mode:?} env={env}"
            );
        }
    }

    #[test]
    fn the_extra_ca_reaches_the_connect_options() {
        let ca = crate::tls::test_ca();
        let limits = SessionLimits::default();
        let debug = |url: &str, ca: Option<&crate::tls::ExtraCa>| {
            format!(
                "{:?}",
                connect_options(url, &limits, ca).expect("valid URL")
            )
        };
        let none = "ssl_root_cert: None";
        let inline = format!("ssl_root_cert: Some(Inline({:?}))", ca.pem().to_vec());
        let verify = "postgres://app@127.0.0.1/roster?sslmode=verify-full";
        if std::env::var_os("PGSSLROOTCERT").is_none() {
            assert!(debug(verify, None).contains(none));
            assert!(debug(verify, Some(&ca)).contains(&inline));
            let require = debug("postgres://app@127.0.0.1/roster?sslmode=require", Some(&ca));
            assert!(require.contains(none), "no verification asked: {require}");
        }
        let own = debug(
            "postgres://app@127.0.0.1/roster?sslmode=verify-full&sslrootcert=/ca/db.crt",
            Some(&ca),
        );
        assert!(
            own.contains("ssl_root_cert: Some(File(\"/ca/db.crt\"))"),
            "the URL's CA wins: {own}"
        );
    }
}
