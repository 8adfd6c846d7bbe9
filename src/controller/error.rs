//! The controller's errors. Each names what it was doing and has a stable `metric_label`.
use crate::schedule::ScheduleError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error while {doing}: {source}")]
    Kube {
        doing: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("database error: {0}")]
    Store(#[from] StoreError),
    #[error("the object cannot be read: {0}")]
    InvalidObject(String),
    #[error("the schedule is invalid: {0}")]
    Schedule(#[from] ScheduleError),
    #[error("the object has no {0} (it did not come from the API server)")]
    MissingField(&'static str),
    #[error("{0}")]
    Notify(#[from] crate::notify::NotifyError),
    #[error(
        "this replica may not act: it does not hold the leader Lease, or could not renew it within \
         the renew deadline"
    )]
    NotLeader,
}

impl Error {
    /// A closure for `map_err` that records what was being done.
    pub fn kube(doing: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube { doing, source }
    }

    /// A short, stable label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.code == 403 => "forbidden",
                kube::Error::Api(status) if status.code == 409 => "conflict",
                kube::Error::Api(_) => "api",
                _ => "kube",
            },
            Error::Store(_) => "database",
            Error::InvalidObject(_) => "invalid_object",
            Error::Schedule(_) => "invalid_schedule",
            Error::MissingField(_) => "missing_field",
            Error::Notify(_) => "notify",
            Error::NotLeader => "not_leader",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
