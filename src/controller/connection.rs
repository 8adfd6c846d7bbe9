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
use kube::{Api, ResourceExt};
use tracing::info;

use super::Context;
use super::error::{Error, Result};
use super::status::{apply_status, condition_at, publish};
use crate::api::{
    DistrictStatus, RosterConnection, RosterConnectionStatus, condition as cond, set_condition,
};
use crate::clever::{
    AllowedApiHosts, CleverClient, CleverCredentials, CleverError, ClientConfig, Token,
    lookup_district_token,
};
use crate::run::ConnectionKey;

/// How often an unreachable Clever is tried again (doubled on each further failure of a
/// connection that stays Ready meanwhile, up to [`MAX_DEFERRAL`]).
const UNREACHABLE_RETRY: Duration = Duration::from_secs(60);

/// The longest a deferred verification waits (also the cap on Clever's rate-limit reset).
const MAX_DEFERRAL: Duration = Duration::from_secs(30 * 60);

/// The Ready reason of a connection verified before whose re-verification Clever answered with a
/// 429, a 5xx or not at all: still Ready (the last verified state holds), tried again later.
pub const VERIFICATION_DEFERRED: &str = "VerificationDeferred";

/// What the controller remembers about a connection's last verification (in memory: after a
/// restart every connection is verified once more, after its start-up delay).
#[derive(Clone, Debug)]
pub struct Verified {
    generation: Option<i64>,
    secret_version: Option<String>,
    next_check: Timestamp,
    /// Verifications deferred in a row (Clever unavailable while the connection stays Ready).
    deferrals: u32,
}

/// The outcome of a verification, as conditions.
struct Verification {
    credentials: (bool, &'static str, String),
    district: (bool, &'static str, String),
    found: Option<DistrictStatus>,
    /// Set when Clever was unavailable (nothing learned): try again later.
    retry: Option<Duration>,
    /// How long Clever asked us to wait (a 429's rate-limit reset).
    retry_after: Option<Duration>,
    /// Clever was unavailable (429, 5xx, timeout, no connection): a re-verification of a Ready
    /// connection is deferred rather than flipping it to not Ready.
    unavailable: bool,
}

impl Verification {
    fn both(reason: &'static str, message: String) -> Verification {
        Verification {
            credentials: (false, reason, message.clone()),
            district: (false, reason, message),
            found: None,
            retry: None,
            retry_after: None,
            unavailable: false,
        }
    }
}

/// The delay of a connection's first verification after a start, within `window`: fixed per
/// connection (a stable hash of `ns/name`), so a restart spreads the calls to Clever evenly over
/// the window, and the same connection always gets the same slot.
pub fn startup_delay(key: &str, window: Duration) -> Duration {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if window_ms == 0 {
        return Duration::ZERO;
    }
    // FNV-1a, then a final mix (FNV's low bits vary little for keys that differ at the end).
    let mut h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    Duration::from_millis(h % window_ms)
}

/// When a connection seen for the first time since the start is verified: at once when it was
/// never verified or its spec changed since (a person is waiting for the answer), else after its
/// [`startup_delay`] counted from the start.
pub fn first_check_at(
    status: &RosterConnectionStatus,
    generation: Option<i64>,
    key: &str,
    started: Timestamp,
    window: Duration,
) -> Option<Timestamp> {
    let verified_before = !status.conditions.is_empty() && status.observed_generation == generation;
    if !verified_before {
        return None;
    }
    let delay = jiff::SignedDuration::try_from(startup_delay(key, window)).ok()?;
    started.checked_add(delay).ok()
}

/// How long to wait after the `deferrals`-th verification in a row that Clever could not answer:
/// doubling from [`UNREACHABLE_RETRY`], at least what Clever asked for (its rate-limit reset),
/// at most [`MAX_DEFERRAL`].
pub fn deferral_delay(deferrals: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = UNREACHABLE_RETRY
        .saturating_mul(2u32.saturating_pow(deferrals.saturating_sub(1).min(16)))
        .min(MAX_DEFERRAL);
    backoff.max(retry_after.unwrap_or_default().min(MAX_DEFERRAL))
}

/// Whether the connection's Ready condition is True.
fn is_ready(status: &RosterConnectionStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == cond::READY && c.status == "True")
}

async fn verify(
    conn: &RosterConnection,
    secret: Option<&Secret>,
    allowed: &AllowedApiHosts,
    extra_ca: Option<&crate::tls::ExtraCa>,
) -> Verification {
    let spec = &conn.spec;
    let base = match url::Url::parse(&spec.api_base_url) {
        Ok(u) => u,
        Err(err) => {
            return Verification::both(
                "InvalidApiBaseUrl",
                format!("apiBaseUrl {:?} is not a URL: {err}", spec.api_base_url),
            );
        }
    };
    // Before anything else, and before any HTTP client exists: credentials go only to hosts the
    // operator allows, whatever the connection says.
    if let Err(err) = allowed.check_api_base(&base) {
        return Verification::both("ApiHostNotAllowed", err.message);
    }
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
    let mut cfg = ClientConfig::new(base, Token::new(String::new()));
    cfg.extra_ca = extra_ca.cloned();
    cfg.timeout = Duration::from_secs(15);
    // One request: a 429 or a 5xx is not waited out here (holding a reconcile slot), but
    // deferred with the reconcile's own backoff, honouring Clever's rate-limit reset.
    cfg.max_attempts = 1;
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
            retry_after: None,
            unavailable: false,
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
                     district id from the district's instant login link (the `district_id=` part), and \
                     that the token belongs to that district"
                ),
            ),
            found: None,
            retry: None,
            retry_after: None,
            unavailable: false,
        },
        "CredentialsInvalid" => Verification::both("CredentialsInvalid", err.to_string()),
        // Clever down, slow or rate-limiting: try again later, keep what is known.
        reason if err.is_retriable() => Verification {
            retry: Some(UNREACHABLE_RETRY),
            unavailable: true,
            retry_after: match &err {
                CleverError::RateLimited { wait, .. } if !wait.is_zero() => Some(*wait),
                _ => None,
            },
            ..Verification::both(reason, err.to_string())
        },
        // Answering nonsense: said at once, and tried again like an unreachable Clever.
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
    let old = conn.status.clone().unwrap_or_default();
    let known = ctx
        .verified
        .lock()
        .ok()
        .and_then(|m| m.get(key.as_str()).cloned());
    // Not Ready for want of a database credential: verify again once it is there.
    let credential_was_missing = old
        .conditions
        .iter()
        .any(|c| c.type_ == cond::READY && c.reason == super::tenancy::UNAVAILABLE_REASON);
    // Not Ready for want of its JourneyPolicy: verify again (Ready from Clever) once it exists.
    let missing_policy = missing_journey_policy(conn, &ns, ctx).await?;
    let policy_was_missing = old
        .conditions
        .iter()
        .any(|c| c.type_ == cond::READY && c.reason == JOURNEY_POLICY_NOT_FOUND);
    // Not seen since the start: when its first check is due (`None`: at once).
    let first_check = match &known {
        Some(_) => None,
        None => first_check_at(
            &old,
            generation,
            key.as_str(),
            ctx.started,
            ctx.verify_jitter,
        ),
    };
    // A verification due whatever the Secret's version (the periodic one, a new spec, the first
    // after a start once its delay passed): the Secret is read in full below anyway.
    let due_anyway = old.conditions.is_empty()
        || credential_was_missing
        || (policy_was_missing && missing_policy.is_none())
        || match &known {
            Some(m) => m.generation != generation || now >= m.next_check,
            None => first_check.is_none_or(|at| now >= at),
        };
    // Otherwise its version, to notice a rotation: from the Secret watch's store (no request),
    // or its metadata from the API when the store has none (not listed yet, or no such Secret).
    let secret_version = if due_anyway {
        None
    } else if let Some(meta) = ctx.secret_meta(&ns, secret_name) {
        meta.resource_version()
    } else {
        Api::<PartialObjectMeta<Secret>>::namespaced(ctx.client.clone(), &ns)
            .get_opt(secret_name)
            .await
            .map_err(Error::kube("reading the credentials Secret's metadata"))?
            .and_then(|s| s.resource_version())
    };
    // First seen since the start: a connection verified before waits for its start-up delay, so
    // that a restart does not call Clever for every connection at once.
    let memo = match known {
        Some(m) => Some(m),
        None if due_anyway => None,
        None => first_check.map(|next_check| {
            let m = Verified {
                generation,
                secret_version: secret_version.clone(),
                next_check,
                deferrals: 0,
            };
            if let Ok(mut memo) = ctx.verified.lock() {
                memo.insert(key.to_string(), m.clone());
            }
            m
        }),
    };
    let due = due_anyway
        || memo.as_ref().is_none_or(|m| {
            m.generation != generation || m.secret_version != secret_version || now >= m.next_check
        });

    let mut status = old.clone();
    let mut next_check = memo.as_ref().map_or(now, |m| m.next_check);
    if due {
        // A targeted get of the one Secret this connection names; its data lives only for the
        // verification.
        let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(secret_name)
            .await
            .map_err(Error::kube("reading the credentials Secret"))?;
        let secret_version = secret.as_ref().and_then(|s| s.resource_version());
        // Its turn under `--verify-rate-per-second`.
        ctx.verify_pacer.turn().await;
        let v = verify(
            conn,
            secret.as_ref(),
            &ctx.job_config.allowed_api_hosts,
            ctx.extra_ca.as_ref(),
        )
        .await;
        drop(secret);
        // Clever could not answer a re-verification of a Ready connection: it stays Ready (the
        // last verified state), says the check is deferred, and tries again with backoff.
        let same_spec = memo
            .as_ref()
            .is_some_and(|m| m.generation == generation && m.secret_version == secret_version)
            || old.observed_generation == generation;
        let deferrals = if v.unavailable && is_ready(&old) && same_spec {
            memo.as_ref().map_or(0, |m| m.deferrals).saturating_add(1)
        } else {
            0
        };
        let wait = if deferrals > 0 {
            let wait = deferral_delay(deferrals, v.retry_after);
            defer(&mut status, &v, generation, now, wait);
            info!(connection = %key, retry_in = ?wait, "Clever unavailable: verification deferred, the connection stays Ready");
            wait
        } else {
            record(&mut status, &v, generation, now);
            status.last_check_time = Some(Time(now));
            v.retry.unwrap_or(ctx.recheck_interval)
        };
        next_check = now + jiff::SignedDuration::try_from(wait).unwrap_or_default();
        // Queued before the check is remembered: if this fails, the retry verifies again.
        notify_failure(ctx, conn, &key, &status, now).await?;
        if let Ok(mut m) = ctx.verified.lock() {
            m.insert(
                key.to_string(),
                Verified {
                    generation,
                    secret_version,
                    next_check,
                    deferrals,
                },
            );
        }
        announce(ctx, conn, &old, &status).await;
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
    if let Some(policy) = &missing_policy {
        // Every sync Job would fail on it: not Ready instead (a SyncSchedule waits for Ready).
        set_condition(
            &mut status.conditions,
            condition_at(
                cond::READY,
                false,
                JOURNEY_POLICY_NOT_FOUND,
                format!(
                    "journeyPolicyRef names JourneyPolicy {policy:?}, which does not exist in namespace \
                     {ns}: create it (or fix journeyPolicyRef); syncs wait until it exists"
                ),
                generation,
                now,
            ),
        );
    }
    if missing_policy.is_some() {
        // Emailed like an invalid credential (repeats suppressed by the notifier).
        notify_failure(ctx, conn, &key, &status, now).await?;
    }
    status.last_sync = super::runs::last_sync(&ctx.db, &key).await?;
    super::kstatus::derive(&mut status.conditions);
    status.observed_generation = generation;
    if status != old {
        let api: Api<RosterConnection> = Api::namespaced(ctx.client.clone(), &ns);
        apply_status(&ctx.acting, &api, &name, &status).await?;
    }
    let mut wait = ctx.clock.until(next_check).max(Duration::from_secs(1));
    if credential_missing || missing_policy.is_some() {
        wait = wait.min(UNREACHABLE_RETRY);
    }
    Ok(Action::requeue(wait))
}

/// The Ready reason of a connection whose journeyPolicyRef names no JourneyPolicy.
pub const JOURNEY_POLICY_NOT_FOUND: &str = "JourneyPolicyNotFound";

/// The name in `journeyPolicyRef` when no such JourneyPolicy exists (a list by name: the
/// controller lists and watches policies, it has no `get` on them).
async fn missing_journey_policy(
    conn: &RosterConnection,
    ns: &str,
    ctx: &Context,
) -> Result<Option<String>> {
    let Some(r) = &conn.spec.journey_policy_ref else {
        return Ok(None);
    };
    // Known to the policies' watch: no request. Not known (or not listed yet): the API decides.
    if ctx.policy_known(ns, &r.name) {
        return Ok(None);
    }
    let found = Api::<crate::api::JourneyPolicy>::namespaced(ctx.client.clone(), ns)
        .list_metadata(
            &kube::api::ListParams::default()
                .fields(&format!("metadata.name={}", r.name))
                .limit(1),
        )
        .await
        .map_err(Error::kube("looking up the JourneyPolicy"))?;
    Ok(found.items.is_empty().then(|| r.name.clone()))
}

/// Emails invalid credentials, an unknown district or a missing JourneyPolicy (on every failed
/// check: the notifier suppresses repeats within the repeat interval); nothing for other results.
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
        ctx.acting.check()?;
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

/// A deferred re-verification: every condition keeps its verified state; Ready stays True with
/// reason [`VERIFICATION_DEFERRED`] and a message saying why and when it is tried again.
fn defer(
    status: &mut RosterConnectionStatus,
    v: &Verification,
    generation: Option<i64>,
    now: Timestamp,
    wait: Duration,
) {
    let since = status
        .last_check_time
        .as_ref()
        .map(|t| format!(" (last verified at {})", t.0))
        .unwrap_or_default();
    let message = format!(
        "still Ready as last verified{since}; re-verification deferred, Clever could not answer: \
         {}; next try in {}s",
        v.district.2,
        wait.as_secs()
    );
    set_condition(
        &mut status.conditions,
        condition_at(
            cond::READY,
            true,
            VERIFICATION_DEFERRED,
            message,
            generation,
            now,
        ),
    );
}

/// An Event when readiness changes (not on every periodic check).
async fn announce(
    ctx: &Context,
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
    publish(
        &ctx.recorder,
        &ctx.acting,
        conn,
        status != "True",
        &reason,
        "Verify",
        message,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn startup_delays_are_fixed_per_connection_and_spread_over_the_window() {
        let window = secs(120);
        assert_eq!(startup_delay("ns/a", window), startup_delay("ns/a", window));
        assert_eq!(startup_delay("ns/a", Duration::ZERO), Duration::ZERO);
        // 1,000 connections named alike: every delay inside the window, and no second of it
        // holds more than a few (an even spread is 8.3 per second).
        let mut per_second = [0u32; 120];
        for i in 0..1000 {
            let d = startup_delay(&format!("district-{i}/springfield"), window);
            assert!(d < window, "{d:?}");
            per_second[d.as_secs() as usize] += 1;
        }
        let peak = per_second.iter().max().copied().unwrap_or(0);
        let empty = per_second.iter().filter(|n| **n == 0).count();
        assert!(peak <= 20, "peak {peak} per second: {per_second:?}");
        assert!(empty <= 2, "{empty} empty seconds: {per_second:?}");
    }

    #[test]
    fn only_connections_verified_before_wait_for_their_delay() {
        let started: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        let window = secs(120);
        let verified = RosterConnectionStatus {
            conditions: vec![crate::api::condition(
                cond::READY,
                true,
                "Verified",
                "ok",
                Some(3),
            )],
            observed_generation: Some(3),
            ..Default::default()
        };
        let delay = startup_delay("ns/a", window);
        // (status, generation, expected)
        let cases = [
            (
                verified.clone(),
                Some(3),
                Some(started + jiff::SignedDuration::try_from(delay).expect("delay")),
            ),
            // The spec changed while the controller was down: at once.
            (verified.clone(), Some(4), None),
            // Never verified: at once.
            (RosterConnectionStatus::default(), Some(1), None),
        ];
        for (status, generation, expected) in cases {
            assert_eq!(
                first_check_at(&status, generation, "ns/a", started, window),
                expected,
                "{generation:?}"
            );
        }
        // No window: at the start.
        assert_eq!(
            first_check_at(&verified, Some(3), "ns/a", started, Duration::ZERO),
            Some(started)
        );
    }

    #[test]
    fn deferred_verifications_back_off_and_honour_the_rate_limit_reset() {
        for (deferrals, retry_after, expected) in [
            (1, None, secs(60)),
            (2, None, secs(120)),
            (3, None, secs(240)),
            (6, None, secs(1800)),
            (40, None, secs(1800)),
            (1, Some(secs(5)), secs(60)),
            (1, Some(secs(300)), secs(300)),
            (2, Some(secs(90)), secs(120)),
            (1, Some(secs(7200)), secs(1800)),
        ] {
            assert_eq!(
                deferral_delay(deferrals, retry_after),
                expected,
                "{deferrals} {retry_after:?}"
            );
        }
    }
}
