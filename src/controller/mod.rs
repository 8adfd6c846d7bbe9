//! `rostersync controller`: the operator.
pub mod job;
