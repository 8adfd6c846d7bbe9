//! Errors of a sync run, each with its stable reason label and whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The connection or policy cannot be used as given (not retriable).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Another run of the same connection holds the lock.
    #[error(
        "another sync of connection {connection} is running (advisory lock held); nothing was changed: \
         wait for it to finish and try again"
    )]
    Locked { connection: String },
    /// The roster source (Clever) failed.
    #[error("{message}")]
    Source {
        reason: &'static str,
        message: String,
        retriable: bool,
    },
    #[error("database error while {doing}: {source}")]
    Database {
        doing: &'static str,
        source: sqlx::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The sync's database session is gone or Postgres stopped answering (a cut connection, a
    /// terminated backend, a frozen server or network path).
    #[error("lost the database session: {detail}")]
    SessionLost { detail: String },
    /// Another party (the controller recording a lost pod) finished the run's row while it ran:
    /// the run rolled its roster changes back rather than overwrite that outcome.
    #[error(
        "run {run_id} was already recorded as {result} by another party while it ran (the controller \
         decided its pod was lost?); this run's roster changes were rolled back and that record was left \
         as it is: see `rostersync history`"
    )]
    FinishedElsewhere { run_id: String, result: String },
}

impl SyncError {
    pub(crate) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> SyncError {
        move |source| SyncError::Database { doing, source }
    }

    /// A stable label for `sync_runs.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            SyncError::Config(_) => "InvalidConfig",
            SyncError::Locked { .. } => "RunInProgress",
            SyncError::Source { reason, .. } => reason,
            SyncError::Database { .. } | SyncError::Store(_) | SyncError::SessionLost { .. } => {
                "DatabaseError"
            }
            SyncError::FinishedElsewhere { .. } => "FinishedElsewhere",
        }
    }

    /// Whether running again later can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            SyncError::Config(_) => false,
            // Another connection's run id: running again cannot change that.
            SyncError::Store(crate::store::StoreError::RunIdTaken { .. }) => false,
            SyncError::Source { retriable, .. } => *retriable,
            SyncError::Locked { .. }
            | SyncError::Database { .. }
            | SyncError::Store(_)
            | SyncError::SessionLost { .. }
            | SyncError::FinishedElsewhere { .. } => true,
        }
    }

    /// Whether the failure may have left the run's database session unusable or its transaction
    /// in an unknown state (any database error): the session is then ended, never reused.
    pub fn is_session_fault(&self) -> bool {
        matches!(
            self,
            SyncError::Database { .. } | SyncError::Store(_) | SyncError::SessionLost { .. }
        )
    }

    /// The process exit code: 1 retriable, 2 not retriable.
    pub fn exit_code(&self) -> u8 {
        if self.is_retriable() { 1 } else { 2 }
    }
}
