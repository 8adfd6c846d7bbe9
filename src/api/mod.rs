//! The `rostersync.io/v1alpha1` API: [`RosterConnection`], [`SyncSchedule`] and [`JourneyPolicy`].
//!
//! These types are the product's public contract. Every field's doc comment becomes `kubectl explain`
//! text, and admission rules (OpenAPI bounds, patterns and CEL `x-kubernetes-validations`) are declared
//! beside the fields they guard, so the API server rejects mistakes before anything runs. The CRD YAML in
//! `crds/` is generated from these types (`rostersync crds`) and a test fails when it drifts.
mod common;
mod connection;
mod journey;
mod schedule;

pub use common::*;
pub use connection::*;
pub use journey::*;
pub use schedule::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every rostersync kind.
pub const GROUP: &str = "rostersync.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// Annotation on a SyncSchedule that asks for one immediate sync; a new value is a new request.
pub const SYNC_NOW_ANNOTATION: &str = "rostersync.io/sync-now";
/// Annotation on a SyncSchedule that approves one run held by the removal guard (value: its run id).
pub const APPROVE_REMOVALS_ANNOTATION: &str = "rostersync.io/approve-removals";

/// All CRDs, in a stable order (file names in `crds/` follow it).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        RosterConnection::crd(),
        SyncSchedule::crd(),
        JourneyPolicy::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream (what `rostersync crds` prints).
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}

/// The file name of a CRD in `crds/` (its plural name).
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.plural)
}
