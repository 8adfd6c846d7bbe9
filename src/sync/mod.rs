//! The sync engine: one run takes a district's Clever roster to Postgres, safely, in one
//! transaction.
//!
//! Pipeline (each step in its own module):
//! 1. [`fetch`]: stream Clever pages, keep the shared sections, normalize records into staged rows
//!    (pure rules in [`plan`]), place each child in one classroom with its grade ([`place`], pure,
//!    decided as the row is staged), and bulk-load them into TEMP staging tables ([`stage`], COPY).
//! 2. [`resolve`]: set-based planning on staging: matching of children (current, archived for
//!    carry-over, manual) and educators, and the placement problems.
//! 3. [`apply`]: set-based writes to the roster tables with counts, then the removal guard.
//! 4. The run's record ([`crate::run::RunRecord`], stored by [`crate::store::runs`]): Running at
//!    start, its outcome and problems at the end, in the same transaction as the roster.
//!
//! [`engine::run_sync`] ties them together under an advisory lock per connection.
//!
//! Semantics chosen (documented here, asserted by tests/sync_engine.rs):
//! - A section without a grade is kept only when its school serves shared grades exclusively
//!   (every grade from `low_grade` to `high_grade` is shared), see [`plan::section_kept`].
//! - Records outside the shared sections (sections of other grades, students and teachers no kept
//!   section lists) are read and parsed but not decoded: a problem in one of them (a malformed
//!   field) is not reported, since nothing of it would be synced.
//! - A child's school is the school of its chosen classroom; matching manual children "within the
//!   same school" uses it.
//! - Matching order for a staged child: a current record by Clever id (update or reactivate), then
//!   (with `autoCarryover`) archived records by Clever id, sis_id, name+dob, then manual records by
//!   sis_id, then name+dob in the same school, else a new child. Among archived candidates only
//!   the most recent school year counts (a child archived in two years matches its newer record).
//!   A match must be unique both ways; otherwise the child is created new and a
//!   `CarryoverAmbiguous`/`ManualMatchAmbiguous` problem is recorded (`rostersync match link`
//!   resolves it by hand; the link lives on the record, so later syncs keep it). A record an admin
//!   unlinked from a Clever id is never matched to it again. Name+dob matching needs shared
//!   demographics (no dob is staged otherwise).
//! - Educators new to the roster are matched to the product's own educators (`source = 'manual'`)
//!   by email (case-insensitive), then SIS id, unique both ways; otherwise created new with an
//!   `EducatorMatchAmbiguous` problem.
//! - With `settings.rolloverDate`, the first (non-dry) run on or after the date rolls the ending
//!   school year over first (`store::rollover`), once.
//! - Removal applies to roster children only (never manual or archived ones); a child's
//!   enrollment is removed with it. Stale records without `allowRemoval` are one
//!   `StaleNotRemoved` problem per entity with the count.
//! - The removal guard weighs deactivated + removed against the records active before the run,
//!   per entity; a dry run reports `Held` (exit 3) when the real run would be held. The writes run in
//!   a savepoint that a hold rolls back, so in `Delete` mode nothing is deleted by a held run.
//! - An approval is bound to the held run (the connection's latest Held run that no success
//!   followed): it lifts the guard only while the plan removes, per entity, no more than that run
//!   reported plus `max(2, 1 %)` ([`plan::approval_lifts_guard`]); otherwise the run is held again
//!   with both figures. With no held run on record the guard applies as usual.
//! - Existing children keep their journey and placement level; their grade follows the roster.
//! - Problems hold ids, codes and counts only. The JSON `problems` is the total; `problemCodes`
//!   breaks it down by code.
pub mod apply;
mod apply_children;
pub mod clever_source;
pub mod cli;
pub mod engine;
pub mod error;
pub mod fetch;
pub mod model;
pub mod place;
pub mod plan;
pub mod resolve;
pub mod session;
pub mod stage;

pub use engine::{RosterSource, StageContext, SyncRequest, run_sync, run_sync_with};
pub use error::SyncError;
pub use model::{Counts, EntityCounts, Problem};
