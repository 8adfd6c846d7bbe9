//! rostersync: a Kubernetes operator that keeps an early-learning product's roster in sync with
//! school districts' Clever data.
//!
//! Modules mirror the architecture: `api` (the CRDs), `clever` (the Clever API client), `schedule`
//! (pure schedule math), `run` (a sync run as a typed value), `store` + `sync` (the roster in
//! Postgres and the sync engine), `controller`, `notify`, `plugin` (`kubectl roster`), and
//! `devtools` (the Clever emulator, the pod runner and the benchmarks, for tests, the demo and
//! measurements). `docs/architecture.md` has the module map and the data path.
pub mod admin;
pub mod api;
pub mod clever;
pub mod cli;
pub mod controller;
pub mod devtools;
pub mod notify;
pub mod output;
pub mod plugin;
pub mod run;
pub mod schedule;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls;
pub mod ui;
