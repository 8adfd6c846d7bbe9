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
            SyncError::Database { .. } | SyncError::Store(_) => "DatabaseError",
        }
    }

    /// Whether running again later can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            SyncError::Config(_) => false,
            // Another connection's run id: running again cannot change that.
            SyncError::Store(crate::store::StoreError::RunIdTaken { .. }) => false,
            SyncError::Source { retriable, .. } => *retriable,
            SyncError::Locked { .. } | SyncError::Database { .. } | SyncError::Store(_) => true,
        }
    }

    /// The process exit code: 1 retriable, 2 not retriable.
    pub fn exit_code(&self) -> u8 {
        if self.is_retriable() { 1 } else { 2 }
    }
}
