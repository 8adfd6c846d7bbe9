//! The roster store in Postgres: connecting, the embedded migrations, and the sync history
//! (`sync_runs`, `sync_problems`, all in [`runs`]). The roster tables themselves are written only by [`crate::sync`].
pub mod cli;
pub mod runs;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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
    #[error("database error while {doing}: {source}")]
    Query {
        doing: &'static str,
        source: sqlx::Error,
    },
}

impl StoreError {
    pub(crate) fn query(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { doing, source }
    }
}

/// Connects a pool to `url` (a `postgres://` URL).
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(StoreError::InvalidUrl)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(StoreError::Connect)
}

/// Applies the pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
