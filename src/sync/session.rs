//! The sync's database session as Postgres knows it (backend pid and start time), watched from a
//! second connection while the run works, and ended from one when the run fails on a database
//! error, so that what the run then reads back is final.
//!
//! Why a watch: a frozen database or network path (packets held, not refused) never answers, and
//! TCP keepalives do not notice when something on the path still acknowledges them (a proxy, a
//! half-dead middlebox). The server ends such a session by itself
//! (`idle_in_transaction_session_timeout`, keepalives), but the client would wait forever for its
//! reply. The watch gives the client its own bound ([`crate::store::SessionLimits::client_timeout`]).
use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::store::time::Ts;
use sqlx::{PgConnection, PgPool};

use super::SyncError;

/// A backend: its pid and start time (pids are reused; the pair is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub pid: i32,
    pub backend_start: Timestamp,
}

/// Awaits `fut` for at most `limit`; longer is a lost session (Postgres did not answer).
pub async fn bounded<T>(
    limit: Duration,
    doing: &'static str,
    fut: impl Future<Output = Result<T, SyncError>>,
) -> Result<T, SyncError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(SyncError::SessionLost {
            detail: format!(
                "Postgres did not answer within {}s while {doing} (--db-client-timeout)",
                limit.as_secs_f64()
            ),
        }),
    }
}

impl Session {
    /// The session of `conn`.
    pub async fn of(conn: &mut PgConnection) -> Result<Session, SyncError> {
        let row = sqlx::query!(
            r#"SELECT pid AS "pid!", backend_start AS "backend_start!: Ts" FROM pg_stat_activity
               WHERE pid = pg_backend_pid()"#
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(SyncError::db("reading the session's backend"))?;
        Ok(Session {
            pid: row.pid,
            backend_start: row.backend_start.0,
        })
    }

    /// Whether the backend still exists, asked on another connection.
    pub async fn is_alive(&self, other: &mut PgConnection) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2) AS "alive!""#,
            self.pid,
            Ts(self.backend_start) as _,
        )
        .fetch_one(&mut *other)
        .await
    }

    /// Ends the backend (if it still exists) from another connection and waits up to `wait` for
    /// it to exit: its transaction has then committed or rolled back, and its locks (the advisory
    /// lock, row locks) are released. Returns whether the backend is known to be gone.
    pub async fn end(&self, other: &mut PgConnection, wait: Duration) -> Result<bool, SyncError> {
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let ended = sqlx::query_scalar!(
            r#"SELECT pg_terminate_backend(pid, $3) AS "ended!" FROM pg_stat_activity
               WHERE pid = $1 AND backend_start = $2"#,
            self.pid,
            Ts(self.backend_start) as _,
            wait_ms,
        )
        .fetch_optional(&mut *other)
        .await
        .map_err(SyncError::db("ending the run's database session"))?;
        // No row: it had already exited.
        Ok(ended.unwrap_or(true))
    }

    /// Watches the session from pool connections until it is gone or Postgres stops answering
    /// for `limit`; returns why. Never returns while the session is alive and answering: run it
    /// alongside the run (`select!`), which drops it when the run ends.
    pub async fn watch(&self, pool: &PgPool, limit: Duration) -> SyncError {
        let interval = (limit / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
        let mut answered = Instant::now();
        loop {
            tokio::time::sleep(interval).await;
            let check = tokio::time::timeout(limit, async {
                let mut other = pool.acquire().await?;
                self.is_alive(&mut other).await
            })
            .await;
            match check {
                Ok(Ok(true)) => answered = Instant::now(),
                Ok(Ok(false)) => {
                    return SyncError::SessionLost {
                        detail: format!(
                            "Postgres ended the sync's session (backend {}): terminated by an administrator, \
                             a server timeout or a restart",
                            self.pid
                        ),
                    };
                }
                Ok(Err(err)) if answered.elapsed() < limit => {
                    tracing::warn!("cannot check the sync's database session: {err}");
                }
                Ok(Err(err)) => {
                    return SyncError::SessionLost {
                        detail: format!(
                            "Postgres has not answered for {}s (--db-client-timeout): {err}",
                            answered.elapsed().as_secs()
                        ),
                    };
                }
                Err(_) => {
                    return SyncError::SessionLost {
                        detail: format!(
                            "Postgres has not answered for {}s (--db-client-timeout)",
                            answered.elapsed().as_secs()
                        ),
                    };
                }
            }
        }
    }
}
