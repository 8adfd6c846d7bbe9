//! A district's database credential and its offboarding, for a RosterConnection.
//!
//! - **Credential** (`--database-tenancy dedicated`, the default): the connection's own Postgres
//!   login role (see [`crate::store::tenancy`]), its URL in a Secret `<name>-database` in the
//!   district's namespace, owned by the RosterConnection (so it goes when the connection goes).
//!   The Secret carries the password's fingerprint; when it differs from the database's (a Secret
//!   deleted or edited, an interrupted rotation, a restored database), a new password is set and
//!   written. Setting the annotation `rostersync.io/rotate-database-credential` to a new value
//!   rotates the password once. Until the credential is in place the connection is not Ready
//!   (reason `DatabaseCredentialUnavailable`), so no sync Job starts without it.
//! - **Offboarding**: a finalizer holds a deleted RosterConnection until its role is dropped and,
//!   with `spec.deletionPolicy: Delete`, its roster rows are deleted.
//! - **Retention**: [`prune_history_forever`] prunes the history older than
//!   `--history-retention`.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use sqlx::PgPool;
use tracing::{info, warn};

use super::Context;
use super::error::{Error, Result};
use super::status::publish;
use crate::api::{DeletionPolicy, RosterConnection};
use crate::run::ConnectionKey;
use crate::store::tenancy::{self as store, Prepared};

/// Holds a deleted RosterConnection until its database role (and, with `deletionPolicy:
/// Delete`, its roster) is gone.
pub const FINALIZER: &str = "rostersync.io/offboarding";
/// Set (to any new value) on a RosterConnection to rotate its database password once.
pub const ROTATE_ANNOTATION: &str = "rostersync.io/rotate-database-credential";
/// On the credential Secret: the fingerprint of the password it holds.
pub const FINGERPRINT_ANNOTATION: &str = "rostersync.io/credential-fingerprint";
/// On the credential Secret: the rotation request it answers.
pub const ROTATED_FOR_ANNOTATION: &str = "rostersync.io/rotated-for";
/// The key of the URL in the credential Secret.
pub const SECRET_KEY: &str = "url";
/// The Ready reason while the credential cannot be provided.
pub const UNAVAILABLE_REASON: &str = "DatabaseCredentialUnavailable";

const FIELD_MANAGER: &str = "rostersync-controller";
const SUFFIX: &str = "-database";

/// The name of a connection's credential Secret: `<name>-database`, or, when that would exceed
/// the 253 characters of an object name, the name cut with a hash of the whole name (stable).
pub fn secret_name(connection: &str) -> String {
    const MAX: usize = 253;
    if connection.len() + SUFFIX.len() <= MAX {
        return format!("{connection}{SUFFIX}");
    }
    let hash = crate::store::tenancy::role_name("", connection);
    let hash = &hash[hash.len() - 16..];
    let keep = MAX - SUFFIX.len() - hash.len() - 1;
    let cut = connection[..keep].trim_end_matches(['-', '.']);
    format!("{cut}-{hash}{SUFFIX}")
}

/// The database side of dedicated tenancy, prepared at start.
pub struct Tenants {
    pub prepared: Prepared,
    /// The controller's (owner's) URL; a district URL is derived from it.
    pub owner_url: String,
}

/// What [`ensure_credential`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialState {
    /// Shared tenancy: the district chart's Secret is used.
    Shared,
    Ready,
    /// Why it could not be provided (for the Ready condition).
    Unavailable(String),
}

/// Whether the finalizer applies at all: always in dedicated tenancy (the role must go), and for
/// `deletionPolicy: Delete` (the rows must go).
fn wants_finalizer(ctx: &Context, conn: &RosterConnection) -> bool {
    ctx.tenants.is_some() || conn.spec.deletion_policy == DeletionPolicy::Delete
}

/// Handles a deleted RosterConnection (returns the action to take instead of reconciling) and
/// adds the finalizer to one that does not have it yet.
pub async fn finalize(
    conn: &RosterConnection,
    key: &ConnectionKey,
    ctx: &Arc<Context>,
) -> Result<Option<Action>> {
    let has = conn.finalizers().iter().any(|f| f == FINALIZER);
    let api: Api<RosterConnection> = Api::namespaced(ctx.client.clone(), key.namespace());
    if conn.meta().deletion_timestamp.is_some() {
        if !has {
            return Ok(Some(Action::await_change()));
        }
        let mut done = Vec::new();
        ctx.acting.check()?;
        if conn.spec.deletion_policy == DeletionPolicy::Delete {
            let deleted = store::delete_roster(&ctx.db, key.as_str()).await?;
            done.push(format!(
                "deleted its roster ({} children, {} enrollments, {} classrooms, {} educators, {} \
                 schools)",
                deleted.children,
                deleted.enrollments,
                deleted.classrooms,
                deleted.educators,
                deleted.schools
            ));
        }
        if let Some(t) = &ctx.tenants {
            store::deprovision(&ctx.db, &t.prepared, key.as_str()).await?;
            done.push("dropped its database role".into());
        }
        let note = if done.is_empty() {
            "offboarded: nothing to remove".to_string()
        } else {
            format!("offboarded: {}", done.join("; "))
        };
        info!(connection = %key, "{note}");
        ctx.acting.check()?;
        publish(
            &ctx.recorder,
            &ctx.acting,
            conn,
            false,
            "Offboarded",
            "Delete",
            note,
        )
        .await;
        remove_finalizer(&api, conn).await?;
        return Ok(Some(Action::await_change()));
    }
    if !has && wants_finalizer(ctx, conn) {
        let mut finalizers = conn.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        ctx.acting.check()?;
        set_finalizers(&api, conn, finalizers, "adding the offboarding finalizer").await?;
    }
    Ok(None)
}

async fn remove_finalizer(api: &Api<RosterConnection>, conn: &RosterConnection) -> Result<()> {
    let finalizers = conn
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(api, conn, finalizers, "removing the offboarding finalizer").await
}

/// Replaces the finalizers, only if the object is still at the version read (a merge patch with
/// `resourceVersion` is refused with 409 otherwise; the next event reconciles again).
async fn set_finalizers(
    api: &Api<RosterConnection>,
    conn: &RosterConnection,
    finalizers: Vec<String>,
    doing: &'static str,
) -> Result<()> {
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": conn.resource_version()}
    });
    match api
        .patch(
            &conn.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(doing)(e)),
    }
}

/// Makes sure the connection's credential Secret holds a working URL of its own role.
pub async fn ensure_credential(
    conn: &RosterConnection,
    key: &ConnectionKey,
    ctx: &Arc<Context>,
) -> CredentialState {
    let Some(tenants) = &ctx.tenants else {
        return CredentialState::Shared;
    };
    match ensure(conn, key, ctx, tenants).await {
        Ok(()) => CredentialState::Ready,
        Err(err) => {
            warn!(connection = %key, "database credential not provided: {err}");
            CredentialState::Unavailable(format!(
                "the controller cannot provide this district's database credential (Secret {}): \
                 {err}",
                secret_name(key.name())
            ))
        }
    }
}

async fn ensure(
    conn: &RosterConnection,
    key: &ConnectionKey,
    ctx: &Arc<Context>,
    tenants: &Tenants,
) -> Result<()> {
    let name = secret_name(key.name());
    let rotate = conn.annotations().get(ROTATE_ANNOTATION).cloned();
    let current = store::current_fingerprint(&ctx.db, &tenants.prepared, key.as_str()).await?;
    // (a rotation is due, the Secret is up to date) for the Secret's metadata.
    let check = |existing: Option<&PartialObjectMeta<Secret>>| {
        let annotation = |k: &str| existing.and_then(|s| s.annotations().get(k).cloned());
        let rotation_due = rotate.is_some() && rotate != annotation(ROTATED_FOR_ANNOTATION);
        let up_to_date =
            !rotation_due && current.is_some() && current == annotation(FINGERPRINT_ANNOTATION);
        (rotation_due, up_to_date)
    };
    // Up to date as the Secret watch saw it: no request. Anything else is confirmed with the API
    // before a new password is issued (the store may not have seen the latest write yet).
    if let Some(meta) = ctx.secret_meta(key.namespace(), &name)
        && check(Some(&meta)).1
    {
        return Ok(());
    }
    let secrets: Api<PartialObjectMeta<Secret>> =
        Api::namespaced(ctx.client.clone(), key.namespace());
    let existing = secrets.get_opt(&name).await.map_err(Error::kube(
        "reading the database credential Secret's metadata",
    ))?;
    let (rotation_due, up_to_date) = check(existing.as_ref());
    if up_to_date {
        return Ok(());
    }
    ctx.acting.check()?;
    let credential =
        store::provision(&ctx.db, &tenants.prepared, key.as_str(), &tenants.owner_url).await?;
    let secret = credential_secret(conn, &name, &credential, rotate.as_deref())?;
    ctx.acting.check()?;
    Api::<Secret>::namespaced(ctx.client.clone(), key.namespace())
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(Error::kube("writing the database credential Secret"))?;
    let (reason, note) = match (&current, rotation_due) {
        (_, true) => ("DatabaseCredentialRotated", "rotated on request"),
        (None, false) => ("DatabaseCredentialIssued", "issued"),
        (Some(_), false) => (
            "DatabaseCredentialRenewed",
            "renewed (its Secret did not match the database)",
        ),
    };
    info!(connection = %key, secret = %name, "database credential {note}");
    publish(
        &ctx.recorder,
        &ctx.acting,
        conn,
        false,
        reason,
        "Provision",
        format!(
            "database credential {note}: Secret {name}, role {}",
            credential.role
        ),
    )
    .await;
    Ok(())
}

fn credential_secret(
    conn: &RosterConnection,
    name: &str,
    credential: &store::Credential,
    rotated_for: Option<&str>,
) -> Result<Secret> {
    let owner = OwnerReference {
        api_version: RosterConnection::api_version(&()).into_owned(),
        kind: RosterConnection::kind(&()).into_owned(),
        name: conn.name_any(),
        uid: conn.uid().ok_or(Error::MissingField("metadata.uid"))?,
        controller: Some(true),
        block_owner_deletion: None,
    };
    let mut annotations = BTreeMap::from([(
        FINGERPRINT_ANNOTATION.to_string(),
        credential.fingerprint.clone(),
    )]);
    if let Some(r) = rotated_for {
        annotations.insert(ROTATED_FOR_ANNOTATION.into(), r.into());
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: conn.namespace(),
            labels: Some(BTreeMap::from([
                (
                    super::job::MANAGED_BY_LABEL.to_string(),
                    super::job::MANAGED_BY.to_string(),
                ),
                (
                    "app.kubernetes.io/component".to_string(),
                    "database-credential".to_string(),
                ),
            ])),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            SECRET_KEY.to_string(),
            ByteString(credential.url.clone().into_bytes()),
        )])),
        ..Default::default()
    })
}

/// Prunes the history older than `retention` now and then every hour (while this replica may
/// act), until `stop` is set.
pub async fn prune_history_forever(
    db: PgPool,
    retention: Duration,
    acting: super::leader::Acting,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if acting.may_act() {
            match store::prune_history(&db, retention).await {
                Ok(p) if p.runs + p.emails > 0 => {
                    info!(
                        runs = p.runs,
                        emails = p.emails,
                        "pruned history past the retention"
                    )
                }
                Ok(_) => {}
                Err(err) => warn!("cannot prune the history: {err}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Parses `--history-retention`: a whole number with a unit, `d` (days), `h`, `m` or `s`
/// (e.g. `400d`, the default).
pub fn parse_retention(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{value:?} has no unit: write e.g. 400d, 72h, 30m or 600s"))?;
    let (number, unit) = value.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} does not start with a whole number (e.g. 400d)"))?;
    let seconds = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        "s" => Some(n),
        _ => {
            return Err(format!(
                "{value:?}: the unit must be d, h, m or s (e.g. 400d)"
            ));
        }
    }
    .ok_or_else(|| format!("{value:?} is too long"))?;
    if seconds == 0 {
        return Err("the history retention must be longer than zero".into());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_fit_and_stay_distinct() {
        assert_eq!(secret_name("clever"), "clever-database");
        let at_limit = "a".repeat(253 - SUFFIX.len());
        assert_eq!(secret_name(&at_limit), format!("{at_limit}{SUFFIX}"));
        for len in [253 - SUFFIX.len() + 1, 200 + 53] {
            let long = "b".repeat(len);
            let name = secret_name(&long);
            assert!(name.len() <= 253, "{len}: {}", name.len());
            assert!(name.ends_with(SUFFIX) && name.starts_with('b'));
            assert_eq!(name, secret_name(&long));
            let other = format!("{}c", &long[..len - 1]);
            assert_ne!(name, secret_name(&other));
        }
        let dotted = format!("{}.{}", "d".repeat(240), "e".repeat(12));
        let name = secret_name(&dotted);
        assert!(name.len() <= 253 && !name.contains(".-"));
    }

    #[test]
    fn retention_values() {
        let ok = [
            ("400d", 400 * 86_400),
            ("72h", 72 * 3600),
            ("30m", 1800),
            ("600s", 600),
            (" 1d ", 86_400),
        ];
        for (text, secs) in ok {
            assert_eq!(
                parse_retention(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in [
            "",
            "400",
            "d",
            "-1d",
            "1w",
            "0d",
            "1.5d",
            "99999999999999999999d",
        ] {
            assert!(parse_retention(bad).is_err(), "{bad:?}");
        }
    }
}
