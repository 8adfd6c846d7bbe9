//! Writing status (server-side apply on `/status`, one field manager, `apiVersion`/`kind`
//! included), conditions stamped with the controller's clock, and Events.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::error::{Error, Result};
use super::leader::Acting;

/// The one field manager of every status the controller writes.
pub const FIELD_MANAGER: &str = "rostersync-controller";

/// Applies `status` as the object's whole status. An object deleted meanwhile (a reconcile that
/// started from the cache just before, e.g. while `helm uninstall` removes a district) has no status
/// left to write: that is not an error.
///
/// Written only while `acting` says this replica may act (checked right before the write).
pub async fn apply_status<K>(
    acting: &Acting,
    api: &Api<K>,
    name: &str,
    status: &impl Serialize,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    write_status(acting, api, name, None, status)
        .await
        .map(drop)
}

/// Like [`apply_status`], but only over the version of the object that was observed
/// (`resource_version` in the applied object is a precondition): `Ok(false)`, nothing written,
/// when the object changed since. A reconcile that read the object from a cache that had not yet
/// seen the controller's own last status write must not put the older status back.
pub async fn apply_status_over<K>(
    acting: &Acting,
    api: &Api<K>,
    name: &str,
    resource_version: &str,
    status: &impl Serialize,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    write_status(acting, api, name, Some(resource_version), status).await
}

/// The one status write: `Ok(false)` only when `resource_version` is given and no longer current.
async fn write_status<K>(
    acting: &Acting,
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    status: &impl Serialize,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(version) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    acting.check()?;
    // Forcing is right here: the status belongs to the controller alone.
    match api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 && resource_version.is_some() => Ok(false),
        Err(e) => Err(Error::kube("writing status")(e)),
    }
}

/// A condition stamped with `now` (the controller's clock).
pub fn condition_at(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    let mut c = crate::api::condition(type_, status, reason, message, generation);
    c.last_transition_time = Time(now);
    c
}

/// Whether the condition `type_` is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Publishes an Event about `obj`; a failure is logged, never fatal (Events are best effort).
/// Nothing is published when `acting` says this replica may not act.
pub async fn publish<K>(
    recorder: &Recorder,
    acting: &Acting,
    obj: &K,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(truncate(&note, 1000)),
        action: action.into(),
        secondary: None,
    };
    if !acting.may_act() {
        warn!(reason, "not publishing an Event: this replica may not act");
        return;
    }
    if let Err(err) = recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(reason, error = %err, "cannot publish an Event");
    }
}

pub use crate::run::truncate;
