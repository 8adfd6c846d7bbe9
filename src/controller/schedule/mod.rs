//! SyncSchedule: the reconcile, as observe -> plan -> apply.
//!
//! - [`observe`] reads what the decision needs: the schedule, its connection, the namespace's sync
//!   Jobs, and the record of every finished Job not reported yet (recording a Failed one for a pod
//!   that died without an outcome, so every finished Job has a record).
//! - [`plan()`] is pure: `(Observed, now) -> Plan`. It decides the runs to start (a due slot, a
//!   Sync Now token, an approval), the runs to report, the new status, the Events, the emails, the
//!   Jobs to prune and when to look again. Table tests in `plan_tests.rs` cover every branch.
//! - [`apply`] carries the plan out: emails with the run's `notified` mark in one transaction,
//!   Jobs, Events, status, the reported marks on Jobs, pruning, metrics.
//! - [`admission`] (pure) and [`cap`]: the cluster's cap on concurrent sync Jobs
//!   (`--max-concurrent-syncs`): a scheduled run over the cap waits (`status.queuedRun`) and
//!   starts in order, oldest due first. The slot jitter (`--slot-jitter-seconds`) is in the rule
//!   ([`crate::schedule::ScheduleRule::for_schedule`]).
//!
//! Every run starts as a Job with a deterministic name: if it already exists (a restart, another
//! controller), the request counts as handled and nothing starts twice.
mod admission;
mod apply;
mod cap;
mod model;
mod observe;
mod plan;
#[cfg(test)]
mod plan_tests;
mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;

pub use admission::{Admit, CapView, admit};
pub use cap::{SyncSlots, queued_retry};
pub use model::{Email, Note, Plan, PlanConfig, Report, Requeue};
pub use observe::{FinishedRun, Observed};
pub use plan::plan;

use super::Context;
use super::error::Result;
use crate::api::SyncSchedule;

/// The longest a schedule goes without a reconcile.
const MAX_REQUEUE: Duration = Duration::from_secs(600);

pub async fn reconcile(sched: &SyncSchedule, ctx: &Arc<Context>) -> Result<Action> {
    let observed = observe::observe(sched, ctx).await?;
    let plan = plan(&observed, ctx.clock.now());
    if !apply::apply(ctx, &observed, &plan).await? {
        // Another schedule took the last place under the cap meanwhile: decide again.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(match plan.requeue {
        Requeue::AwaitChange => Action::await_change(),
        Requeue::At(wake) => Action::requeue(
            ctx.clock
                .until(wake)
                .clamp(Duration::from_secs(1), MAX_REQUEUE),
        ),
    })
}
