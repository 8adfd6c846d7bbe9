//! RosterConnection: read the Secret, verify the district against Clever, report conditions,
//! `status.district` and the latest finished run (`status.lastSync`, from Postgres).
//!
//! Verification runs when the spec or the Secret changed and every `recheck_interval`; other
//! reconciles (a sync finished) only refresh `lastSync`. A change of the Secret is noticed from
//! its metadata (resourceVersion); its data is read with a targeted get only to verify.
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::{Api, ResourceExt};
use tracing::info;

use super::Context;
use super::error::{Error, Result};
use super::status::{apply_status, condition_at, publish};
use crate::api::{
    DistrictStatus, RosterConnection, RosterConnectionStatus, condition as cond, set_condition,
};
use crate::clever::{
    CleverClient, CleverCredentials, CleverError, ClientConfig, Token, lookup_district_token,
};
use crate::run::ConnectionKey;

/// How often an unreachable Clever is tried again.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(60);

/// What the controller remembers about a connection's last verification (in memory: after a
/// restart every connection is verified once more).
#[derive(Clone, Debug)]
pub struct Verified {
    generation: Option<i64>,
    secret_version: Option<String>,
    next_check: Timestamp,
}

/// The outcome of a verification, as conditions.
struct Verification {
    credentials: (bool, &'static str, String),
    district: (bool, &'static str, String),
    found: Option<DistrictStatus>,
    retry: Option<Duration>,
}

impl Verification {
    fn both(reason: &'static str, message: String) -> Verification {
        Verification {
            credentials: (false, reason, message.clone()),
            district: (false, reason, message),
            found: None,
            retry: None,
        }
    }
}

async fn verify(conn: &RosterConnection, secret: Option<&Secret>) -> Verification {
    let spec = &conn.spec;
    let secret_name = &spec.credentials_secret_ref.name;
    let Some(secret) = secret else {
        return Verification::both(
            "SecretNotFound",
            format!(
                "Secret {secret_name} does not exist in this namespace: create it with key `token` \
                 (the district token) or keys `client_id` and `client_secret`"
            ),
        );
    };
    let credentials = match CleverCredentials::from_secret(secret) {
        Ok(c) => c,
        Err(err) => return Verification::both("SecretKeyMissing", err.to_string()),
    };
    let base = match url::Url::parse(&spec.api_base_url) {
        Ok(u) => u,
        Err(err) => {
            return Verification::both(
                "InvalidApiBaseUrl",
                format!("apiBaseUrl {:?} is not a URL: {err}", spec.api_base_url),
            );
        }
    };
    let mut cfg = ClientConfig::new(base, Token::new(String::new()));
    cfg.timeout = Duration::from_secs(15);
    cfg.max_attempts = 2;
    cfg.token = match credentials {
        CleverCredentials::Token(token) => token,
        CleverCredentials::App(app) => {
            match lookup_district_token(&cfg, &app, &spec.district_id).await {
                Ok(token) => token,
                Err(err) => return from_error(&spec.district_id, err),
            }
        }
    };
    let client = match CleverClient::new(cfg) {
        Ok(c) => c,
        Err(err) => return from_error(&spec.district_id, err),
    };
    match client.district(&spec.district_id).await {
        Ok(d) => Verification {
            credentials: (true, "Verified", "Clever accepted the credentials".into()),
            district: (
                true,
                "Verified",
                format!("district {:?} found in Clever", d.name),
            ),
            found: Some(DistrictStatus {
                name: d.name,
                state: d.state.unwrap_or_default(),
                last_sync: d.last_sync.map(|t| t.to_string()),
            }),
            retry: None,
        },
        Err(err) => from_error(&spec.district_id, err),
    }
}

fn from_error(district_id: &str, err: CleverError) -> Verification {
    match err.reason() {
        "DistrictNotFound" => Verification {
            credentials: (true, "Verified", "Clever accepted the credentials".into()),
            district: (
                false,
                "DistrictNotFound",
                format!(
                    "Clever has no district {district_id} for these credentials: double-check the \
                     district id from the district's instant login link (the `district=` part), and \
                     that the token belongs to that district"
                ),
            ),
            found: None,
            retry: None,
        },
        "CredentialsInvalid" => Verification::both("CredentialsInvalid", err.to_string()),
        // Clever down, slow or answering nonsense: try again later, keep what is known.
        reason => Verification {
            retry: Some(UNREACHABLE_RETRY),
            ..Verification::both(reason, err.to_string())
        },
    }
}

pub async fn reconcile(conn: &RosterConnection, ctx: &Arc<Context>) -> Result<Action> {
    let ns = conn.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = conn.name_any();
    let key = ConnectionKey::new(&ns, &name).map_err(|e| Error::InvalidObject(e.to_string()))?;
    if let Some(action) = super::tenancy::finalize(conn, &key, ctx).await? {
        return Ok(action);
    }
    let credential = super::tenancy::ensure_credential(conn, &key, ctx).await;
    let now = ctx.clock.now();
    let generation = conn.metadata.generation;
    let secret_name = &conn.spec.credentials_secret_ref.name;
    // Metadata only, to notice a rotation; the data is read below, only to verify.
    let secret_version = Api::<PartialObjectMeta<Secret>>::namespaced(ctx.client.clone(), &ns)
        .get_opt(secret_name)
        .await
        .map_err(Error::kube("reading the credentials Secret's metadata"))?
        .and_then(|s| s.resource_version());
    let old = conn.status.clone().unwrap_or_default();
    let memo = ctx
        .verified
        .lock()
        .ok()
        .and_then(|m| m.get(key.as_str()).cloned());
    // Not Ready for want of a database credential: verify again once it is there.
    let credential_was_missing = old
        .conditions
        .iter()
        .any(|c| c.type_ == cond::READY && c.reason == super::tenancy::UNAVAILABLE_REASON);
    let due = old.conditions.is_empty()
        || credential_was_missing
        || memo.as_ref().is_none_or(|m| {
            m.generation != generation || m.secret_version != secret_version || now >= m.next_check
        });

    let mut status = old.clone();
    let mut next_check = memo.map_or(now, |m| m.next_check);
    if due {
        // A targeted get of the one Secret this connection names; its data lives only for the
        // verification.
        let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(secret_name)
            .await
            .map_err(Error::kube("reading the credentials Secret"))?;
        let secret_version = secret.as_ref().and_then(|s| s.resource_version());
        let v = verify(conn, secret.as_ref()).await;
        drop(secret);
        let wait = v.retry.unwrap_or(ctx.recheck_interval);
        next_check = now + jiff::SignedDuration::try_from(wait).unwrap_or_default();
        record(&mut status, &v, generation, now);
        status.last_check_time = Some(Time(now));
        // Queued before the check is remembered: if this fails, the retry verifies again.
        notify_failure(ctx, conn, &key, &status, now).await?;
        if let Ok(mut m) = ctx.verified.lock() {
            m.insert(
                key.to_string(),
                Verified {
                    generation,
                    secret_version,
                    next_check,
                },
            );
        }
        announce(&ctx.recorder, conn, &old, &status).await;
    }
    let credential_missing = matches!(credential, super::tenancy::CredentialState::Unavailable(_));
    if let super::tenancy::CredentialState::Unavailable(message) = credential {
        // No sync Job may start without it (a SyncSchedule waits for Ready).
        set_condition(
            &mut status.conditions,
            condition_at(
                cond::READY,
                false,
                super::tenancy::UNAVAILABLE_REASON,
                message,
                generation,
                now,
            ),
        );
    }
    status.last_sync = super::runs::last_sync(&ctx.db, &key).await?;
    status.observed_generation = generation;
    if status != old {
        let api: Api<RosterConnection> = Api::namespaced(ctx.client.clone(), &ns);
        apply_status(&api, &name, &status).await?;
    }
    let mut wait = ctx.clock.until(next_check).max(Duration::from_secs(1));
    if credential_missing {
        wait = wait.min(UNREACHABLE_RETRY);
    }
    Ok(Action::requeue(wait))
}

/// Emails invalid credentials or an unknown district (on every failed check: the notifier
/// suppresses repeats within the repeat interval); nothing for other results.
async fn notify_failure(
    ctx: &Context,
    conn: &RosterConnection,
    key: &ConnectionKey,
    status: &RosterConnectionStatus,
    now: Timestamp,
) -> Result<()> {
    let Some(ready) = status.conditions.iter().find(|c| c.type_ == cond::READY) else {
        return Ok(());
    };
    if ready.status == "True" {
        return Ok(());
    }
    // The source names the district as last verified (a wrong id has no name).
    let mut with_status = conn.clone();
    with_status.status = Some(status.clone());
    let source = super::emails::source(&with_status, key);
    if let Some(notice) = super::emails::verification_notice(&ready.reason, &ready.message, source)
    {
        let settings = super::emails::settings(conn, ctx.email_repeat_interval);
        super::emails::enqueue_alone(&ctx.db, &settings, &notice, now).await?;
    }
    Ok(())
}

fn record(
    status: &mut RosterConnectionStatus,
    v: &Verification,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (c_ok, c_reason, c_msg) = v.credentials.clone();
    let (d_ok, d_reason, d_msg) = v.district.clone();
    let (ready, reason, msg) = if !c_ok {
        (false, c_reason, c_msg.clone())
    } else if !d_ok {
        (false, d_reason, d_msg.clone())
    } else {
        (true, "Verified", d_msg.clone())
    };
    let conditions = &mut status.conditions;
    // An unreachable Clever says nothing new about the credentials or the district: keep those.
    let keep = v.retry.is_some() && !conditions.is_empty();
    if !keep {
        set_condition(
            conditions,
            condition_at(
                cond::CREDENTIALS_VALID,
                c_ok,
                c_reason,
                c_msg,
                generation,
                now,
            ),
        );
        set_condition(
            conditions,
            condition_at(
                cond::DISTRICT_VERIFIED,
                d_ok,
                d_reason,
                d_msg,
                generation,
                now,
            ),
        );
    }
    set_condition(
        conditions,
        condition_at(cond::READY, ready, reason, msg, generation, now),
    );
    if v.found.is_some() || !d_ok {
        status.district = v.found.clone();
    }
}

/// An Event when readiness changes (not on every periodic check).
async fn announce(
    recorder: &Recorder,
    conn: &RosterConnection,
    old: &RosterConnectionStatus,
    new: &RosterConnectionStatus,
) {
    let ready = |s: &RosterConnectionStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == cond::READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let (before, after) = (ready(old), ready(new));
    if before == after {
        return;
    }
    let Some((status, reason)) = after else {
        return;
    };
    let message = new
        .conditions
        .iter()
        .find(|c| c.type_ == cond::READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    info!(connection = %conn.name_any(), %reason, "connection verification changed");
    publish(recorder, conn, status != "True", &reason, "Verify", message).await;
}
