//! The operator-owned licenses and the missing journeyPolicyRef on the real API server: the
//! controller (real binary, the chart's RBAC) with `--licensed-products`, JourneyPolicies and a
//! RosterConnection in a fresh namespace, Postgres for the licenses table.
mod common;
#[path = "controller/env.rs"]
mod env;

use env::{Env, TIMEOUT};
use kube::Api;
use kube::api::PostParams;
use rostersync::api::{JourneyPolicy, RosterConnection};
use serde_json::json;

/// Waits until JourneyPolicy `name`'s Ready condition is `status`, and returns (reason, message).
async fn policy_ready(api: &Api<JourneyPolicy>, name: &str, status: &str) -> (String, String) {
    common::wait_for(
        &format!("JourneyPolicy {name} Ready={status}"),
        TIMEOUT,
        || {
            let api = api.clone();
            async move {
                let p = api.get(name).await.ok()?;
                p.status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "Ready" && c.status == status)
                    .map(|c| (c.reason, c.message))
            }
        },
    )
    .await
}

#[tokio::test]
async fn policies_are_checked_against_the_operators_licenses_and_a_missing_policy_is_a_condition() {
    let Some(env) = Env::new("admin-e2e", 20).await else {
        return;
    };
    let _controller = env.controller("controller", &["--licensed-products", "Readiness,Literacy"]);
    let policies: Api<JourneyPolicy> = Api::namespaced(env.client.clone(), &env.ns);
    let policy = |name: &str, products: &[&str], journey: &str| -> JourneyPolicy {
        serde_json::from_value(json!({
            "apiVersion": "rostersync.io/v1alpha1", "kind": "JourneyPolicy",
            "metadata": {"name": name},
            "spec": {"licensedProducts": products, "newChildJourney": journey},
        }))
        .expect("policy")
    };
    policies
        .create(
            &PostParams::default(),
            &policy("licensed", &["Readiness"], "Readiness"),
        )
        .await
        .expect("create");
    // The district lists Math as licensed in its own policy: the operator does not hold it.
    policies
        .create(
            &PostParams::default(),
            &policy("self-licensed", &["Readiness", "Math"], "Math"),
        )
        .await
        .expect("create");
    let (reason, _) = policy_ready(&policies, "licensed", "True").await;
    assert_eq!(reason, "Valid");
    let (reason, message) = policy_ready(&policies, "self-licensed", "False").await;
    assert_eq!(reason, "ProductNotLicensed");
    assert!(message.contains("Math"), "{message}");
    assert!(
        !message.contains("Readiness,"),
        "only the unlicensed one is named: {message}"
    );
    let licensed: Vec<String> =
        sqlx::query_scalar("SELECT product FROM product_licenses ORDER BY 1")
            .fetch_all(&env.db.pool)
            .await
            .expect("licenses");
    assert_eq!(licensed, ["Literacy", "Readiness"]);

    // A connection whose journeyPolicyRef names no policy: not Ready, saying which.
    let connection: RosterConnection = serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": "district"},
        "spec": {"districtId": env.district_id(),
                 "apiBaseUrl": env.emulator.base_url().as_str().trim_end_matches('/'),
                 "credentialsSecretRef": {"name": "clever"},
                 "settings": {"sendEmails": true, "emailRecipients": ["admin@district.example"]},
                 "journeyPolicyRef": {"name": "later"}},
    }))
    .expect("connection");
    env.connections()
        .create(&PostParams::default(), &connection)
        .await
        .expect("create connection");
    let message = env
        .connection_reason("district", "JourneyPolicyNotFound")
        .await;
    assert!(message.contains("\"later\""), "{message}");
    // Emailed (queued in the outbox; no SMTP in this test), once.
    let (subject, body): (String, String) = common::wait_for("the email", TIMEOUT, || {
        let pool = env.db.pool.clone();
        async move {
            sqlx::query_as(
                "SELECT subject, body_text FROM email_outbox WHERE kind = 'ConnectionMisconfigured'",
            )
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten()
        }
    })
    .await;
    assert!(subject.contains("connection misconfigured"), "{subject}");
    assert!(body.contains("JourneyPolicyNotFound"), "{body}");
    policies
        .create(
            &PostParams::default(),
            &policy("later", &["Readiness"], "Readiness"),
        )
        .await
        .expect("create");
    env.connection_reason("district", "Verified").await;
    let emails: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM email_outbox WHERE kind = 'ConnectionMisconfigured'",
    )
    .fetch_one(&env.db.pool)
    .await
    .expect("outbox");
    assert_eq!(emails, 1, "repeats are suppressed");
}
