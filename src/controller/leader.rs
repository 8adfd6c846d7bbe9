//! Leader election on a Lease (`--leader-elect`), checked rather than assumed.
//!
//! Only the Lease holder acts, and it acts only while it *knows* it still holds the Lease: every
//! write (a Job, a status, an Event, a report in the database, an email) first asks the shared
//! [`Acting`] token, which says yes only until `renew deadline` after the start of the last
//! successful renewal. That instant is measured on this process's monotonic clock, so neither the
//! wall clocks of other nodes nor a frozen process can stretch it: a replica stopped by SIGSTOP
//! and resumed after its Lease expired finds its token expired before anything else runs.
//!
//! Why this is safe without trusting anyone's wall clock: a renewal sent at `t` lands after `t`,
//! and a standby considers the Lease expired only `lease duration` after it *observed* the Lease
//! last change (also on its own monotonic clock, never by comparing `renewTime` with its clock, as
//! client-go does). The holder stops acting at `t + renew deadline`, which is before
//! `t + lease duration`, so the two never act at once (given clocks that run at about the same
//! rate; the difference of the two durations is the margin).
//!
//! A holder whose renewals fail (the API server unreachable, its RBAC revoked, another identity
//! wrote the Lease) stops acting at the renew deadline, says so in a log line, sets
//! `rostersync_leader` to 0 and stops the process with a non-zero exit status, so that Kubernetes
//! restarts it as a candidate. A graceful stop releases the Lease (holder cleared), so that a
//! standby takes it at its next try instead of waiting for the Lease to expire.
//!
//! The Lease is written with JSON merge patches carrying the `resourceVersion` it was read at (the
//! API server rejects a stale one with 409), and created when missing: the chart grants `create`,
//! and `get` and `patch` on the one Lease name.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::error::{Error, Result};

/// The field manager of the Lease writes.
const FIELD_MANAGER: &str = "rostersync-controller-lease";

/// How long a stopping leader waits for the Lease to be released before it exits anyway (the
/// standby then takes over once the Lease expires).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// The timing of leader election (`--lease-duration-seconds`, `--lease-renew-deadline-seconds`,
/// `--lease-retry-period-seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a standby waits, after it last saw the Lease change, before it takes it.
    pub duration: Duration,
    /// How long the holder acts after the start of its last successful renewal.
    pub renew_deadline: Duration,
    /// How often the holder renews, and how often a standby tries to take the Lease.
    pub retry_period: Duration,
}

impl LeaseTiming {
    /// Checks `retry period < renew deadline < lease duration` (a holder must stop acting before
    /// its Lease can expire for others, and must get more than one try at renewing).
    pub fn new(
        duration: u64,
        renew_deadline: u64,
        retry_period: u64,
    ) -> Result<LeaseTiming, String> {
        if retry_period == 0 {
            return Err("--lease-retry-period-seconds must be at least 1".into());
        }
        if renew_deadline >= duration {
            return Err(format!(
                "--lease-renew-deadline-seconds ({renew_deadline}) must be shorter than \
                 --lease-duration-seconds ({duration}): the leader must stop acting before its \
                 Lease can expire for the other replicas"
            ));
        }
        if retry_period >= renew_deadline {
            return Err(format!(
                "--lease-retry-period-seconds ({retry_period}) must be shorter than \
                 --lease-renew-deadline-seconds ({renew_deadline}), so that a failed renewal is \
                 tried again before the deadline"
            ));
        }
        Ok(LeaseTiming {
            duration: Duration::from_secs(duration),
            renew_deadline: Duration::from_secs(renew_deadline),
            retry_period: Duration::from_secs(retry_period),
        })
    }
}

/// The shared "may act" token: every side-effecting path checks it right before its write.
/// Without leader election it always says yes; with it, only until the renew deadline that the
/// last successful renewal set, and never again once leadership was given up.
#[derive(Clone, Debug)]
pub struct Acting(Arc<ActingState>);

#[derive(Debug)]
struct ActingState {
    base: Instant,
    /// Milliseconds after `base` until which this replica may act; `u64::MAX`: always.
    until_ms: AtomicU64,
    lost: AtomicBool,
}

impl Acting {
    /// A replica without leader election: it always acts.
    pub fn always() -> Acting {
        Acting(Arc::new(ActingState {
            base: Instant::now(),
            until_ms: AtomicU64::new(u64::MAX),
            lost: AtomicBool::new(false),
        }))
    }

    /// A candidate that does not act until [`Acting::extend_until`].
    fn candidate() -> Acting {
        Acting(Arc::new(ActingState {
            base: Instant::now(),
            until_ms: AtomicU64::new(0),
            lost: AtomicBool::new(false),
        }))
    }

    /// Whether this replica may write now.
    pub fn may_act(&self) -> bool {
        may_act_at(
            self.0.lost.load(Ordering::Acquire),
            self.0.until_ms.load(Ordering::Acquire),
            self.elapsed_ms(Instant::now()),
        )
    }

    /// `Ok` if this replica may write now, else [`Error::NotLeader`]. Call it right before a write.
    pub fn check(&self) -> Result<()> {
        if self.may_act() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    fn elapsed_ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.0.base).as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Acting is allowed until `t` (a later renewal moves it forward; never backwards).
    fn extend_until(&self, t: Instant) {
        let ms = self.elapsed_ms(t);
        self.0.until_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// Leadership is gone for good (lost or released).
    fn revoke(&self) {
        self.0.lost.store(true, Ordering::Release);
    }
}

/// The token's rule: never after a loss, else until the deadline (`u64::MAX` is no deadline).
fn may_act_at(lost: bool, until_ms: u64, now_ms: u64) -> bool {
    !lost && (until_ms == u64::MAX || now_ms < until_ms)
}

/// What a standby knows about the Lease: the holder as last read, and when (on this process's
/// monotonic clock) the Lease was last seen to change. Expiry is judged from that instant, never
/// from the `renewTime` written by another node's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub holder: Option<String>,
    pub lease_duration: Duration,
    /// The Lease's resourceVersion: any write (a renewal) changes it.
    pub version: String,
    pub seen_change_at: Instant,
}

impl Observed {
    /// The observation after reading the Lease at `now`: the change instant moves only when the
    /// Lease changed.
    pub fn update(
        previous: Option<&Observed>,
        holder: Option<String>,
        lease_duration: Duration,
        version: String,
        now: Instant,
    ) -> Observed {
        let seen_change_at = match previous {
            Some(p) if p.version == version => p.seen_change_at,
            _ => now,
        };
        Observed {
            holder,
            lease_duration,
            version,
            seen_change_at,
        }
    }
}

/// What a candidate does with the Lease it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Take it (free, released, expired, or already ours after a restart with the same identity).
    Take,
    /// Someone else holds it: look again after the retry period.
    Wait { holder: String },
}

/// The candidate's rule.
pub fn attempt(observed: &Observed, identity: &str, now: Instant) -> Attempt {
    match observed.holder.as_deref() {
        None | Some("") => Attempt::Take,
        Some(holder) if holder == identity => Attempt::Take,
        Some(holder) => {
            if now.saturating_duration_since(observed.seen_change_at) >= observed.lease_duration {
                Attempt::Take
            } else {
                Attempt::Wait {
                    holder: holder.to_string(),
                }
            }
        }
    }
}

/// What the holder does at `now`, given when its last successful renewal started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Renew, with at most this long for the attempt (what is left until the deadline).
    Renew { budget: Duration },
    /// The renew deadline passed: stop acting.
    Lost,
}

/// The holder's rule.
pub fn renewal(last_renewed: Instant, timing: &LeaseTiming, now: Instant) -> Renewal {
    let deadline = last_renewed + timing.renew_deadline;
    if now >= deadline {
        Renewal::Lost
    } else {
        Renewal::Renew {
            budget: deadline - now,
        }
    }
}

/// Why leadership ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loss {
    /// No successful renewal within the renew deadline; the last error, if any.
    Deadline { last_error: Option<String> },
    /// The Lease names another holder.
    Taken { holder: String },
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loss::Deadline { last_error: None } => f.write_str("no renewal succeeded in time"),
            Loss::Deadline {
                last_error: Some(e),
            } => write!(f, "no renewal succeeded in time; last error: {e}"),
            Loss::Taken { holder } => write!(f, "the Lease is now held by {holder:?}"),
        }
    }
}

/// The Lease API and this replica's identity.
struct LeaseClient {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    timing: LeaseTiming,
}

/// The Lease as read: who holds it, for how long, and its version.
fn read(lease: &Lease) -> (Option<String>, Duration, String, i32) {
    let spec = lease.spec.clone().unwrap_or_default();
    (
        spec.holder_identity.filter(|h| !h.is_empty()),
        Duration::from_secs(
            spec.lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        ),
        lease.metadata.resource_version.clone().unwrap_or_default(),
        spec.lease_transitions.unwrap_or(0),
    )
}

fn micro_now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl LeaseClient {
    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.timing.duration.as_secs()).unwrap_or(i32::MAX)
    }

    async fn get(&self) -> kube::Result<Option<Lease>> {
        self.api.get_opt(&self.name).await
    }

    /// Creates the Lease held by this replica. `Ok(false)`: someone created it first.
    async fn create(&self) -> kube::Result<bool> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(micro_now()),
                renew_time: Some(micro_now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match self.api.create(&pp, &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes `spec` if the Lease is still at `version`. `Ok(false)`: it changed meanwhile.
    async fn write(&self, version: &str, spec: serde_json::Value) -> kube::Result<bool> {
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": version},
            "spec": spec,
        });
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match self.api.patch(&self.name, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes the Lease read at `version` (held by `previous`, with `transitions`).
    async fn take(
        &self,
        version: &str,
        previous: Option<&str>,
        transitions: i32,
    ) -> kube::Result<bool> {
        let transitions = if previous == Some(self.identity.as_str()) {
            transitions
        } else {
            transitions.saturating_add(1)
        };
        self.write(
            version,
            serde_json::json!({
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration_seconds(),
                "acquireTime": micro_now(),
                "renewTime": micro_now(),
                "leaseTransitions": transitions,
            }),
        )
        .await
    }

    /// One renewal: read, check the holder, write `renewTime`.
    async fn renew(&self) -> std::result::Result<(), RenewError> {
        let lease = self
            .get()
            .await
            .map_err(|e| RenewError::Failed(e.to_string()))?
            .ok_or_else(|| RenewError::Failed("the Lease was deleted".into()))?;
        let (holder, _, version, _) = read(&lease);
        match holder {
            Some(h) if h == self.identity => {}
            Some(h) => return Err(RenewError::Taken(h)),
            None => return Err(RenewError::Taken(String::new())),
        }
        let spec = serde_json::json!({
            "renewTime": micro_now(),
            "leaseDurationSeconds": self.duration_seconds(),
        });
        match self.write(&version, spec).await {
            Ok(true) => Ok(()),
            // Changed since the read: whoever wrote it, the next try reads it again.
            Ok(false) => Err(RenewError::Failed(
                "the Lease changed while renewing it (409)".into(),
            )),
            Err(e) => Err(RenewError::Failed(e.to_string())),
        }
    }

    /// Clears the holder if it is still this replica.
    async fn release(&self) -> anyhow::Result<bool> {
        let Some(lease) = self.get().await? else {
            return Ok(false);
        };
        let (holder, _, version, _) = read(&lease);
        if holder.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        // A duration of 1 s, like client-go: a standby that does not read the holder as empty
        // still takes it almost at once.
        Ok(self
            .write(
                &version,
                serde_json::json!({"holderIdentity": null, "leaseDurationSeconds": 1}),
            )
            .await?)
    }
}

enum RenewError {
    Failed(String),
    Taken(String),
}

/// This replica holds the Lease; the background task renews it.
pub struct Leadership {
    acting: Acting,
    lost: watch::Receiver<Option<Loss>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    client: Arc<LeaseClient>,
}

impl Leadership {
    /// The token every write checks.
    pub fn acting(&self) -> Acting {
        self.acting.clone()
    }

    /// A receiver that turns `Some(loss)` when leadership is lost.
    pub fn subscribe(&self) -> watch::Receiver<Option<Loss>> {
        self.lost.clone()
    }

    /// Stops renewing and releases the Lease (when still held), bounded.
    pub async fn release(self) {
        let Leadership {
            acting,
            stop,
            task,
            client,
            ..
        } = self;
        acting.revoke();
        let _ = stop.send(true);
        let _ = task.await;
        let lease = format!("{}/{}", client.namespace, client.name);
        match tokio::time::timeout(RELEASE_TIMEOUT, client.release()).await {
            Ok(Ok(true)) => info!(%lease, "released the leader Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(err)) => {
                warn!(%lease, error = %err, "cannot release the leader Lease; it expires on its own")
            }
            Err(_) => warn!(
                %lease,
                timeout = ?RELEASE_TIMEOUT,
                "releasing the leader Lease takes too long; it expires on its own"
            ),
        }
    }
}

/// Waits until this replica holds the Lease. Returns `None` if shutdown was requested while
/// waiting.
pub async fn acquire(
    client: &Client,
    name: &str,
    namespace: &str,
    identity: &str,
    timing: LeaseTiming,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<Leadership>> {
    let lc = Arc::new(LeaseClient {
        api: Api::namespaced(client.clone(), namespace),
        name: name.to_string(),
        namespace: namespace.to_string(),
        identity: identity.to_string(),
        timing,
    });
    info!(lease = %name, %namespace, %identity, "waiting for the leader Lease");
    let mut observed: Option<Observed> = None;
    let mut announced: Option<String> = None;
    let mut first_error = true;
    let acquired_at = loop {
        let started = Instant::now();
        match try_acquire(&lc, &mut observed, started).await {
            Ok(None) => break started,
            Ok(Some(holder)) => {
                if announced.as_ref() != Some(&holder) {
                    info!(
                        lease = %name,
                        %holder,
                        "standing by: Ready to take over, not acting while another replica holds \
                         the Lease"
                    );
                    announced = Some(holder);
                }
            }
            Err(err) => {
                if first_error {
                    // Most likely RBAC: say what is needed once, then keep trying.
                    warn!(
                        lease = %name,
                        error = %err,
                        "cannot read or write the leader Lease (the controller needs create, and \
                         get and patch on it); retrying"
                    );
                    first_error = false;
                } else {
                    warn!(lease = %name, error = %err, "cannot read or write the leader Lease; retrying");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(timing.retry_period) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(None),
        }
    };
    let acting = Acting::candidate();
    acting.extend_until(acquired_at + timing.renew_deadline);
    info!(lease = %name, %identity, "acquired the leader Lease: this replica acts");
    let (lost_tx, lost) = watch::channel(None);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(renew_loop(
        lc.clone(),
        acting.clone(),
        acquired_at,
        lost_tx,
        stop_rx,
    ));
    Ok(Some(Leadership {
        acting,
        lost,
        stop,
        task,
        client: lc,
    }))
}

/// One try to take the Lease. `Ok(None)`: taken; `Ok(Some(holder))`: someone else holds it.
async fn try_acquire(
    lc: &LeaseClient,
    observed: &mut Option<Observed>,
    now: Instant,
) -> anyhow::Result<Option<String>> {
    let Some(lease) = lc.get().await.context("reading the Lease")? else {
        return if lc.create().await.context("creating the Lease")? {
            Ok(None)
        } else {
            Ok(Some("another replica (it created the Lease first)".into()))
        };
    };
    let (holder, duration, version, transitions) = read(&lease);
    let seen = Observed::update(
        observed.as_ref(),
        holder.clone(),
        duration,
        version.clone(),
        now,
    );
    let decision = attempt(&seen, &lc.identity, now);
    *observed = Some(seen);
    match decision {
        Attempt::Wait { holder } => Ok(Some(holder)),
        Attempt::Take => {
            if lc
                .take(&version, holder.as_deref(), transitions)
                .await
                .context("taking the Lease")?
            {
                Ok(None)
            } else {
                Ok(Some(holder.unwrap_or_else(|| {
                    "another replica (it took the Lease first)".into()
                })))
            }
        }
    }
}

/// Renews every retry period until stopped; on a loss, revokes the token and says why.
async fn renew_loop(
    lc: Arc<LeaseClient>,
    acting: Acting,
    mut last_renewed: Instant,
    lost: watch::Sender<Option<Loss>>,
    mut stop: watch::Receiver<bool>,
) {
    let timing = lc.timing;
    let mut last_error: Option<String> = None;
    loop {
        // Every retry period, and at the deadline itself, so that a loss is said when it happens.
        let deadline = last_renewed + timing.renew_deadline;
        let pause = timing
            .retry_period
            .min(deadline.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let started = Instant::now();
        let loss = match renewal(last_renewed, &timing, started) {
            Renewal::Lost => Some(Loss::Deadline {
                last_error: last_error.clone(),
            }),
            Renewal::Renew { budget } => match tokio::time::timeout(budget, lc.renew()).await {
                Ok(Ok(())) => {
                    last_renewed = started;
                    acting.extend_until(started + timing.renew_deadline);
                    last_error = None;
                    None
                }
                Ok(Err(RenewError::Taken(holder))) => Some(Loss::Taken { holder }),
                Ok(Err(RenewError::Failed(e))) => {
                    warn!(lease = %lc.name, error = %e, "cannot renew the leader Lease; retrying until the renew deadline");
                    last_error = Some(e);
                    None
                }
                Err(_) => {
                    last_error = Some(format!("the renewal took longer than the {budget:?} left"));
                    None
                }
            },
        };
        if let Some(loss) = loss {
            acting.revoke();
            error!(
                lease = %lc.name,
                identity = %lc.identity,
                renew_deadline = ?timing.renew_deadline,
                reason = %loss,
                "lost the leader Lease: stopped acting (no Jobs, status writes, Events or emails) \
                 and stopping so that Kubernetes restarts this replica as a standby"
            );
            let _ = lost.send(Some(loss));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn timing_must_leave_the_leader_time_to_stop_before_expiry() {
        assert!(LeaseTiming::new(15, 10, 2).is_ok());
        for (d, r, p, needle) in [
            (15, 15, 2, "must be shorter than --lease-duration"),
            (10, 15, 2, "must be shorter than --lease-duration"),
            (15, 10, 10, "must be shorter than --lease-renew-deadline"),
            (15, 10, 0, "at least 1"),
        ] {
            let err = LeaseTiming::new(d, r, p).expect_err("invalid");
            assert!(err.contains(needle), "{d} {r} {p}: {err}");
        }
    }

    #[test]
    fn the_token_holds_until_the_deadline_and_never_after_a_loss() {
        // (lost, until, now, may act)
        for (lost, until, now, expected) in [
            (false, u64::MAX, 1_000_000, true),
            (false, 10_000, 9_999, true),
            (false, 10_000, 10_000, false),
            (false, 10_000, 20_000, false),
            (false, 0, 0, false),
            (true, u64::MAX, 0, false),
            (true, 10_000, 1, false),
        ] {
            assert_eq!(
                may_act_at(lost, until, now),
                expected,
                "{lost} {until} {now}"
            );
        }
        let a = Acting::always();
        assert!(a.may_act() && a.check().is_ok());
        a.revoke();
        assert!(matches!(a.check(), Err(Error::NotLeader)));

        let c = Acting::candidate();
        assert!(
            !c.may_act(),
            "a candidate does not act before it holds the Lease"
        );
        c.extend_until(Instant::now() + secs(60));
        assert!(c.may_act());
        // A late renewal result never moves the deadline backwards.
        c.extend_until(Instant::now());
        assert!(c.may_act());
        let expired = Acting::candidate();
        expired.extend_until(Instant::now());
        assert!(!expired.may_act());
    }

    #[test]
    fn a_standby_takes_the_lease_only_a_full_duration_after_it_last_changed() {
        let t0 = Instant::now();
        let seen = |holder: Option<&str>, version: &str, prev: Option<&Observed>, at: Duration| {
            Observed::update(
                prev,
                holder.map(str::to_string),
                secs(15),
                version.into(),
                t0 + at,
            )
        };
        let first = seen(Some("a"), "1", None, secs(0));
        // (observation, now, expected)
        let same_later = seen(Some("a"), "1", Some(&first), secs(14));
        assert_eq!(
            same_later.seen_change_at, t0,
            "unchanged: the instant stays"
        );
        let renewed = seen(Some("a"), "2", Some(&same_later), secs(14));
        assert_eq!(renewed.seen_change_at, t0 + secs(14), "renewed: it moves");
        let cases = [
            (&first, secs(14), Attempt::Wait { holder: "a".into() }),
            (&first, secs(15), Attempt::Take),
            (&renewed, secs(20), Attempt::Wait { holder: "a".into() }),
            (&renewed, secs(29), Attempt::Take),
        ];
        for (o, at, expected) in cases {
            assert_eq!(attempt(o, "b", t0 + at), expected, "{o:?} at {at:?}");
        }
        // Free, released, or ours already (a restart with the same identity): take it at once.
        for holder in [None, Some(""), Some("b")] {
            let o = seen(holder, "3", None, secs(0));
            assert_eq!(attempt(&o, "b", t0), Attempt::Take, "{holder:?}");
        }
        // The Lease's own duration counts (a released Lease says 1 s).
        let mut short = seen(Some("a"), "4", None, secs(0));
        short.lease_duration = secs(1);
        assert_eq!(attempt(&short, "b", t0 + secs(1)), Attempt::Take);
    }

    #[test]
    fn the_holder_stops_at_the_renew_deadline() {
        let timing = LeaseTiming::new(15, 10, 2).expect("timing");
        let t0 = Instant::now();
        for (at, expected) in [
            (secs(0), Renewal::Renew { budget: secs(10) }),
            (secs(2), Renewal::Renew { budget: secs(8) }),
            (secs(9), Renewal::Renew { budget: secs(1) }),
            (secs(10), Renewal::Lost),
            (secs(60), Renewal::Lost),
        ] {
            assert_eq!(renewal(t0, &timing, t0 + at), expected, "{at:?}");
        }
    }
}
