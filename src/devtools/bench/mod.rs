//! `rostersync bench ...`: throughput of the Clever client ([`clever`]) and of a full sync
//! ([`sync`]), printed as JSON.
pub mod clever;
pub mod concurrent;
pub mod floors;
pub mod sync;
