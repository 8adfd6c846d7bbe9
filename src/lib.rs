//! rostersync: a Kubernetes operator that keeps an early-learning product's roster in sync with
//! school districts' Clever data.
