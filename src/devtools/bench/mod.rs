//! `rostersync bench ...`: throughput of the Clever client ([`clever`]) and of a full sync
//! ([`sync`], with the floors of [`floors`]), printed as JSON; K districts syncing at once
//! ([`concurrent`]); many districts on one controller ([`scale`]).
pub mod clever;
pub mod concurrent;
pub mod floors;
pub mod scale;
pub mod sync;
