//! The sync engine: one run takes a district's Clever roster to Postgres, safely, in one
//! transaction.
//!
//! Pipeline (each step in its own module):
//! 1. [`fetch`]: stream Clever pages, keep the shared sections, normalize records into staged rows
//!    (pure rules in [`plan`]), and bulk-load them into TEMP staging tables ([`stage`], COPY).
//! 2. [`resolve`]: set-based planning on staging: one classroom per child, grade, matching of
//!    children (current, archived for carry-over, manual).
//! 3. [`apply`]: set-based writes to the roster tables with counts, then the removal guard.
//! 4. [`runs`]: the run's `sync_runs` row (Running at start, outcome at the end) and problems.
//!
//! [`engine::run_sync`] ties them together under an advisory lock per connection.
pub mod apply;
mod apply_children;
pub mod bench;
pub mod clever_source;
pub mod cli;
pub mod engine;
pub mod error;
pub mod fetch;
pub mod model;
pub mod plan;
pub mod resolve;
pub mod runs;
pub mod stage;

pub use engine::{RosterSource, StageContext, SyncOutcome, SyncRequest, run_sync};
pub use error::SyncError;
pub use model::{Counts, EntityCounts, Problem};
