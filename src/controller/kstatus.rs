//! kstatus-compatible conditions, derived in one place from `Ready` for all three kinds.
//!
//! Flux, Argo CD and `kubectl wait` read the conventions of
//! [kstatus](https://github.com/kubernetes-sigs/cli-utils/blob/master/pkg/kstatus/README.md):
//! `Ready=True` with `status.observedGeneration == metadata.generation` is *Current*; a
//! `Reconciling=True` condition is *InProgress*; a `Stalled=True` condition is *Failed*. Both are
//! "abnormal-true" conditions: present while True, removed otherwise (as Flux's own objects do).
//!
//! Whether a `Ready=False` reason is something the controller resolves by itself (waiting for a
//! dependency, a retried Clever outage) or needs a person (a wrong token, an unknown district, an
//! invalid spec) is one table, [`STALLED_REASONS`]: a new reason that needs a person is a new row.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::condition as cond;

/// The kstatus condition saying the controller is still working towards `Ready`.
pub const RECONCILING: &str = "Reconciling";
/// The kstatus condition saying no progress is possible until a person acts.
pub const STALLED: &str = "Stalled";

/// `Ready=False` reasons that need a person: the controller will not get to `Ready` by retrying.
/// Every other `Ready=False` reason means *in progress* (waiting for the connection, the database
/// credential, the credentials Secret, a Clever that is down or rate-limiting).
pub const STALLED_REASONS: &[&str] = &[
    // RosterConnection
    "CredentialsInvalid",
    "DistrictNotFound",
    "ApiHostNotAllowed",
    "InvalidApiBaseUrl",
    "SecretKeyMissing",
    "CleverCertificateUntrusted",
    "JourneyPolicyNotFound",
    // SyncSchedule
    "InvalidSchedule",
    "InvalidJobTemplate",
    REPEATED_FAILURES,
    // JourneyPolicy
    "Invalid",
    "ProductNotLicensed",
];

/// A SyncSchedule's `Ready=False` reason after `--failures-before-not-ready` failed runs in a row.
pub const REPEATED_FAILURES: &str = "RepeatedFailures";

/// What kstatus makes of the conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// `Ready=True`.
    Current,
    /// `Ready=False` (or missing) for a reason the controller resolves by itself.
    InProgress,
    /// `Ready=False` for a reason in [`STALLED_REASONS`].
    Stalled,
}

/// Classifies the `Ready` condition.
pub fn progress(conditions: &[Condition]) -> Progress {
    match conditions.iter().find(|c| c.type_ == cond::READY) {
        Some(c) if c.status == "True" => Progress::Current,
        Some(c) if STALLED_REASONS.contains(&c.reason.as_str()) => Progress::Stalled,
        _ => Progress::InProgress,
    }
}

/// Sets `Reconciling` / `Stalled` from `Ready` (copying its reason, message, generation and time),
/// removing the one that is not True. Call it after `Ready` is final, before the status is written.
pub fn derive(conditions: &mut Vec<Condition>) {
    let Some(ready) = conditions.iter().find(|c| c.type_ == cond::READY).cloned() else {
        return;
    };
    let keep = match progress(conditions) {
        Progress::Current => None,
        Progress::InProgress => Some(RECONCILING),
        Progress::Stalled => Some(STALLED),
    };
    conditions.retain(|c| {
        !((c.type_ == RECONCILING || c.type_ == STALLED) && Some(c.type_.as_str()) != keep)
    });
    if let Some(type_) = keep {
        let derived = Condition {
            type_: type_.to_string(),
            status: "True".into(),
            ..ready
        };
        // Keeps the transition time of a condition that was already True.
        crate::api::set_condition(conditions, derived);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::condition;

    fn with_ready(status: bool, reason: &str) -> Vec<Condition> {
        vec![condition(cond::READY, status, reason, "m", Some(4))]
    }

    fn types(conditions: &[Condition]) -> Vec<(String, String, String)> {
        conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    /// One row per case: Ready's status and reason, and the kstatus condition expected.
    #[test]
    fn ready_reasons_map_to_kstatus() {
        let rows: &[(bool, &str, Option<&str>)] = &[
            (true, "Verified", None),
            (true, "VerificationDeferred", None),
            (true, "Scheduled", None),
            (true, "Suspended", None),
            (false, "CredentialsInvalid", Some(STALLED)),
            (false, "DistrictNotFound", Some(STALLED)),
            (false, "ApiHostNotAllowed", Some(STALLED)),
            (false, "SecretKeyMissing", Some(STALLED)),
            (false, "CleverCertificateUntrusted", Some(STALLED)),
            (false, "InvalidSchedule", Some(STALLED)),
            (false, "InvalidJobTemplate", Some(STALLED)),
            (false, REPEATED_FAILURES, Some(STALLED)),
            (false, "Invalid", Some(STALLED)),
            (false, "SecretNotFound", Some(RECONCILING)),
            (false, "CleverUnavailable", Some(RECONCILING)),
            (false, "CleverProtocolError", Some(RECONCILING)),
            (false, "DatabaseCredentialUnavailable", Some(RECONCILING)),
            (false, "ConnectionNotReady", Some(RECONCILING)),
            (false, "ConnectionNotFound", Some(RECONCILING)),
        ];
        for (status, reason, expected) in rows {
            let mut conds = with_ready(*status, reason);
            derive(&mut conds);
            let extra: Vec<_> = types(&conds)
                .into_iter()
                .filter(|(t, _, _)| t != cond::READY)
                .collect();
            match expected {
                None => assert!(extra.is_empty(), "{reason}: {extra:?}"),
                Some(t) => assert_eq!(
                    extra,
                    vec![(t.to_string(), "True".to_string(), reason.to_string())],
                    "{reason}"
                ),
            }
            let derived = conds.iter().find(|c| c.type_ != cond::READY);
            assert!(derived.is_none_or(|c| c.observed_generation == Some(4) && c.message == "m"));
        }
    }

    #[test]
    fn a_recovered_object_loses_stalled_and_reconciling_and_other_conditions_stay() {
        let mut conds = with_ready(false, "CredentialsInvalid");
        conds.push(condition(
            "CredentialsValid",
            false,
            "CredentialsInvalid",
            "m",
            Some(4),
        ));
        derive(&mut conds);
        assert_eq!(conds.len(), 3);
        crate::api::set_condition(
            &mut conds,
            condition(cond::READY, false, "CleverUnavailable", "m", Some(4)),
        );
        derive(&mut conds);
        let t: Vec<_> = types(&conds).into_iter().map(|(t, _, _)| t).collect();
        assert_eq!(t, ["Ready", "CredentialsValid", RECONCILING]);
        crate::api::set_condition(
            &mut conds,
            condition(cond::READY, true, "Verified", "m", Some(4)),
        );
        derive(&mut conds);
        let t: Vec<_> = types(&conds).into_iter().map(|(t, _, _)| t).collect();
        assert_eq!(t, ["Ready", "CredentialsValid"]);
    }

    #[test]
    fn no_ready_condition_changes_nothing() {
        let mut conds = Vec::new();
        derive(&mut conds);
        assert!(conds.is_empty());
        assert_eq!(progress(&conds), Progress::InProgress);
    }
}
