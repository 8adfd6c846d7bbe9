//! rostersync: a Kubernetes operator that keeps an early-learning product's roster in sync with
//! school districts' Clever data.
//!
//! Modules mirror the architecture: `api` (the CRDs), `clever` (the Clever API client),
//! `emulator` (a Clever emulator for tests, the demo and benchmarks), `schedule` (pure schedule
//! math), `run` (a sync run as a typed value), `store` + `sync` (the roster in Postgres and the sync
//! engine), `controller`, `notify`. `docs/architecture.md` has the module map and the data path.
pub mod api;
pub mod clever;
pub mod cli;
pub mod controller;
pub mod emulator;
pub mod notify;
pub mod plugin;
pub mod podrunner;
pub mod run;
pub mod schedule;
pub mod store;
pub mod sync;
pub mod telemetry;
