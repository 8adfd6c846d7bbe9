//! `rostersync bench ...`: throughput of the Clever client ([`clever`]) and of a full sync
//! ([`sync`]), printed as JSON; many districts on one controller ([`scale`]).
pub mod clever;
pub mod scale;
pub mod sync;
