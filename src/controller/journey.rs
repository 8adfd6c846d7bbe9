//! JourneyPolicy: validate (admission already checks most of it; this catches what it cannot, and
//! objects stored before a rule existed) and report `Ready`.
use std::collections::HashSet;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::Context;
use super::error::{Error, Result};
use super::status::{apply_status, condition_at};
use crate::api::{JourneyPolicy, JourneyPolicySpec, condition as cond, set_condition};

/// Why a policy cannot be used, as a message a person can act on.
pub fn validate(spec: &JourneyPolicySpec) -> Result<(), String> {
    if !spec.licensed_products.contains(&spec.new_child_journey) {
        return Err(format!(
            "newChildJourney {:?} is not one of licensedProducts {:?}: assign a product you hold \
             licenses for",
            spec.new_child_journey, spec.licensed_products
        ));
    }
    let mut seen = HashSet::new();
    for level in &spec.grade_placement.levels {
        if !seen.insert(level.grade) {
            return Err(format!(
                "gradePlacement.levels lists grade {} twice: keep one starting level per grade",
                level.grade
            ));
        }
        if level.starting_level < 1 {
            return Err(format!(
                "gradePlacement.levels gives grade {} level {}: levels start at 1",
                level.grade, level.starting_level
            ));
        }
    }
    Ok(())
}

/// The products of `spec` the operator holds no license for (`licensed`: the operator's list;
/// empty = not configured, nothing is refused).
pub fn unlicensed(spec: &JourneyPolicySpec, licensed: &[String]) -> Vec<String> {
    if licensed.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = spec
        .licensed_products
        .iter()
        .chain(std::iter::once(&spec.new_child_journey))
        .filter(|p| !licensed.contains(p))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

pub async fn reconcile(policy: &JourneyPolicy, ctx: &Arc<Context>) -> Result<Action> {
    let ns = policy.namespace().ok_or(Error::MissingField("namespace"))?;
    let generation = policy.metadata.generation;
    let now = ctx.clock.now();
    let old = policy.status.clone().unwrap_or_default();
    let mut status = old.clone();
    // The operator's licenses; unreadable (the database down) counts as not configured for now,
    // and the policy is checked again at the next resync.
    let licensed = match crate::store::journeys::licensed_products(&ctx.db).await {
        Ok(l) => l,
        Err(err) => {
            tracing::warn!(policy = %policy.name_any(), "cannot read the licensed products: {err}");
            Vec::new()
        }
    };
    let not_licensed = unlicensed(&policy.spec, &licensed);
    let ready = match validate(&policy.spec) {
        Ok(()) if !not_licensed.is_empty() => condition_at(
            cond::READY,
            false,
            "ProductNotLicensed",
            format!(
                "the operator holds no license for {}: licensed products are {}; ask the platform \
                 team, or name only licensed products",
                not_licensed.join(", "),
                licensed.join(", ")
            ),
            generation,
            now,
        ),
        Ok(()) => condition_at(
            cond::READY,
            true,
            "Valid",
            format!("new children get journey {}", policy.spec.new_child_journey),
            generation,
            now,
        ),
        Err(msg) => condition_at(cond::READY, false, "Invalid", msg, generation, now),
    };
    set_condition(&mut status.conditions, ready);
    super::kstatus::derive(&mut status.conditions);
    status.observed_generation = generation;
    if status != old {
        let api: Api<JourneyPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        apply_status(&ctx.acting, &api, &policy.name_any(), &status).await?;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(journey: &str) -> JourneyPolicySpec {
        serde_json::from_value(serde_json::json!({
            "licensedProducts": ["Readiness", "Literacy"], "newChildJourney": journey
        }))
        .expect("spec")
    }

    #[test]
    fn products_the_operator_does_not_license_are_named() {
        let s = spec("Literacy");
        assert!(
            unlicensed(&s, &[]).is_empty(),
            "not configured: nothing refused"
        );
        assert!(unlicensed(&s, &["Readiness".into(), "Literacy".into(), "Math".into()]).is_empty());
        assert_eq!(
            unlicensed(&s, &["Literacy".into()]),
            vec!["Readiness".to_string()]
        );
    }

    #[test]
    fn journey_must_be_licensed_and_levels_unique() {
        assert!(validate(&spec("Literacy")).is_ok());
        let err = validate(&spec("Math")).err().unwrap_or_default();
        assert!(err.contains("licensedProducts"), "{err}");
        let mut s = spec("Literacy");
        let first = s.grade_placement.levels[0].clone();
        s.grade_placement.levels.push(first);
        assert!(validate(&s).is_err());
    }
}
