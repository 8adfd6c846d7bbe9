//! The shipped Argo CD health check (`deploy/argocd/health.lua`) evaluated by Argo CD's Lua engine
//! (gopher-lua, through `luahealth`; see `hack/argocd/build.sh`) on objects in every state the
//! controller writes. The end-to-end tests (tests/controller_e2e.rs) run it on real objects too.
mod common;

use serde_json::{Value, json};

fn object(kind: &str, generation: i64, observed: Option<i64>, conditions: Value) -> Value {
    let mut status = json!({ "conditions": conditions });
    if let Some(o) = observed {
        status["observedGeneration"] = json!(o);
    }
    json!({
        "apiVersion": "rostersync.io/v1alpha1",
        "kind": kind,
        "metadata": { "name": "x", "namespace": "d", "generation": generation },
        "spec": {},
        "status": status,
    })
}

fn cond(type_: &str, status: &str, reason: &str) -> Value {
    json!({ "type": type_, "status": status, "reason": reason, "message": format!("{reason} says why"),
            "lastTransitionTime": "2026-11-30T00:00:00Z" })
}

#[test]
fn health_follows_the_kstatus_conditions() {
    let ready = cond("Ready", "True", "Verified");
    let rows: Vec<(&str, Value, &str, &str)> = vec![
        (
            "no status yet",
            json!({"kind": "RosterConnection", "metadata": {"generation": 1}}),
            "Progressing",
            "Waiting for the rostersync controller",
        ),
        (
            "spec changed, not observed yet",
            object("RosterConnection", 3, Some(2), json!([ready])),
            "Progressing",
            "Waiting for the controller to observe generation 3",
        ),
        (
            "ready",
            object("RosterConnection", 2, Some(2), json!([ready])),
            "Healthy",
            "Verified says why",
        ),
        (
            "credentials invalid",
            object(
                "RosterConnection",
                2,
                Some(2),
                json!([
                    cond("Ready", "False", "CredentialsInvalid"),
                    cond("Stalled", "True", "CredentialsInvalid")
                ]),
            ),
            "Degraded",
            "CredentialsInvalid: CredentialsInvalid says why",
        ),
        (
            "waiting for Clever",
            object(
                "RosterConnection",
                2,
                Some(2),
                json!([
                    cond("Ready", "False", "CleverUnavailable"),
                    cond("Reconciling", "True", "CleverUnavailable")
                ]),
            ),
            "Progressing",
            "CleverUnavailable: CleverUnavailable says why",
        ),
        (
            "schedule failing repeatedly",
            object(
                "SyncSchedule",
                1,
                Some(1),
                json!([
                    cond("Ready", "False", "RepeatedFailures"),
                    cond("Stalled", "True", "RepeatedFailures")
                ]),
            ),
            "Degraded",
            "RepeatedFailures: RepeatedFailures says why",
        ),
        (
            "invalid journey policy",
            object(
                "JourneyPolicy",
                1,
                Some(1),
                json!([
                    cond("Ready", "False", "Invalid"),
                    cond("Stalled", "True", "Invalid")
                ]),
            ),
            "Degraded",
            "Invalid: Invalid says why",
        ),
    ];
    for (what, obj, status, message) in rows {
        let Some((got, got_message)) = common::argocd_health(&obj) else {
            return;
        };
        assert_eq!(
            (got.as_str(), got_message.as_str()),
            (status, message),
            "{what}"
        );
    }
    let mut suspended = object(
        "SyncSchedule",
        1,
        Some(1),
        json!([cond("Ready", "True", "Suspended")]),
    );
    suspended["spec"]["suspend"] = json!(true);
    if let Some((got, _)) = common::argocd_health(&suspended) {
        assert_eq!(got, "Suspended");
    }
}
