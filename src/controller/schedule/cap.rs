//! The controller's shared view for the cap on concurrent sync Jobs and the slot jitter default:
//! the sync Jobs active in the cluster and the runs waiting for a place. The decision itself is
//! [`super::admission::admit`] (pure); this holds the state it reads, under one lock, so two
//! reconciles running at once cannot both take the last place ([`SyncSlots::claim`]).
//!
//! - Active Jobs: listed once in every watched namespace before the first capped start
//!   ([`SyncSlots::prime`]), then refreshed per namespace by each SyncSchedule reconcile (it lists
//!   its namespace's sync Jobs anyway, and every Job change wakes its schedule), plus the Jobs this
//!   controller created and has not seen listed yet (kept [`RESERVATION_TTL`] at most).
//! - Waiting runs: each queued schedule says so at every reconcile ([`SyncSlots::set_waiting`]);
//!   one not heard of for [`WAITER_TTL`] (deleted, suspended meanwhile) no longer counts.
//!
//! After a restart the waiting runs come back from their schedules' `status.queuedRun`, so the
//! order survives; a standby keeps no state (it rebuilds it when it takes over).
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::admission::{Admit, CapView, admit};
use crate::controller::error::{Error, Result};
use crate::controller::job::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::controller::runs::{JobState, job_state};

/// A Job this controller created counts as active until a list of its namespace shows it, or for
/// this long (a create whose Job never shows up).
pub const RESERVATION_TTL: SignedDuration = SignedDuration::from_secs(120);
/// A waiting run not refreshed for this long is forgotten (queued schedules look again well
/// within it, see [`super::plan::queued_retry`]).
pub const WAITER_TTL: SignedDuration = SignedDuration::from_secs(180);

/// `--slot-jitter-seconds` and `--max-concurrent-syncs`, with the state of the cap.
#[derive(Debug)]
pub struct SyncSlots {
    jitter_seconds: u32,
    cap: u32,
    /// The watched namespaces (empty: all).
    scopes: Vec<String>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    primed: bool,
    /// Active sync Jobs per namespace, as last listed.
    active: HashMap<String, BTreeSet<String>>,
    /// Jobs created and not listed yet: (namespace, name) -> created at.
    reserved: HashMap<(String, String), Timestamp>,
    /// Waiting runs: `namespace/name` -> (due slot, last heard of).
    waiting: HashMap<String, (Timestamp, Timestamp)>,
}

impl State {
    fn view(&self, key: &str, cap: u32) -> CapView {
        let mut active: usize = self.active.values().map(BTreeSet::len).sum();
        active += self
            .reserved
            .keys()
            .filter(|(ns, job)| !self.active.get(ns).is_some_and(|a| a.contains(job)))
            .count();
        CapView {
            cap,
            primed: self.primed,
            active,
            waiting: self
                .waiting
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .map(|(k, (due, _))| (*due, k.clone()))
                .collect(),
        }
    }

    fn expire(&mut self, now: Timestamp) {
        self.reserved
            .retain(|_, at| now.duration_since(*at) < RESERVATION_TTL);
        self.waiting
            .retain(|_, (_, seen)| now.duration_since(*seen) < WAITER_TTL);
    }
}

impl SyncSlots {
    /// `jitter_seconds`: `--slot-jitter-seconds`; `cap`: `--max-concurrent-syncs` (0: no cap);
    /// `scopes`: the watched namespaces (empty: all).
    pub fn new(jitter_seconds: u32, cap: u32, scopes: Vec<String>) -> SyncSlots {
        SyncSlots {
            jitter_seconds: jitter_seconds.min(crate::schedule::MAX_SLOT_JITTER_SECONDS),
            cap,
            scopes,
            state: Mutex::default(),
        }
    }

    /// The operator's default jitter window in seconds.
    pub fn jitter_seconds(&self) -> u32 {
        self.jitter_seconds
    }

    /// The cap (0: none).
    pub fn cap(&self) -> u32 {
        self.cap
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lists the active sync Jobs of every watched namespace once (with a cap only).
    pub async fn prime(&self, client: &Client) -> Result<()> {
        if self.cap == 0 || self.lock().primed {
            return Ok(());
        }
        let lp = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let mut jobs = Vec::new();
        if self.scopes.is_empty() {
            jobs = Api::<Job>::all(client.clone())
                .list(&lp)
                .await
                .map_err(Error::kube(
                    "listing the sync Jobs of the cluster (for --max-concurrent-syncs)",
                ))?
                .items;
        } else {
            for ns in &self.scopes {
                jobs.extend(
                    Api::<Job>::namespaced(client.clone(), ns)
                        .list(&lp)
                        .await
                        .map_err(Error::kube("listing the sync Jobs of a watched namespace (for --max-concurrent-syncs)"))?
                        .items,
                );
            }
        }
        let mut state = self.lock();
        if !state.primed {
            for job in jobs.iter().filter(|j| job_state(j) == JobState::Active) {
                state
                    .active
                    .entry(job.namespace().unwrap_or_default())
                    .or_default()
                    .insert(job.name_any());
            }
            state.primed = true;
        }
        Ok(())
    }

    /// Records the sync Jobs of `ns` just listed (all of them, any state) and returns the view
    /// of the cap for the schedule `key` (`namespace/name`).
    pub fn observe(&self, ns: &str, jobs: &[Job], key: &str, now: Timestamp) -> CapView {
        let mut state = self.lock();
        state.expire(now);
        if self.cap == 0 {
            return state.view(key, 0);
        }
        let listed: BTreeSet<String> = jobs.iter().map(|j| j.name_any()).collect();
        let active: BTreeSet<String> = jobs
            .iter()
            .filter(|j| job_state(j) == JobState::Active)
            .map(|j| j.name_any())
            .collect();
        state
            .reserved
            .retain(|(n, job), _| n != ns || !listed.contains(job));
        if state.primed {
            state.active.insert(ns.to_string(), active);
        }
        state.view(key, self.cap)
    }

    /// Takes a place for the run of `key` due at `due`, whose Job `job` in `ns` is about to be
    /// created: decided again under the lock with the current state, so that of two reconciles
    /// racing for the last place only one gets it. `false`: it must wait (look again).
    pub fn claim(&self, key: &str, due: Timestamp, ns: &str, job: &str, now: Timestamp) -> bool {
        let mut state = self.lock();
        state.expire(now);
        if admit(&state.view(key, self.cap), key, due) != Admit::Start {
            return false;
        }
        state.waiting.remove(key);
        state
            .reserved
            .insert((ns.to_string(), job.to_string()), now);
        true
    }

    /// Counts a Job just created outside the cap (Sync Now, an approval) until it is listed.
    pub fn reserve(&self, ns: &str, job: &str, now: Timestamp) {
        if self.cap > 0 {
            self.lock()
                .reserved
                .insert((ns.to_string(), job.to_string()), now);
        }
    }

    /// Gives back a place taken by [`Self::claim`] whose Job could not be created.
    pub fn release(&self, ns: &str, job: &str) {
        self.lock()
            .reserved
            .remove(&(ns.to_string(), job.to_string()));
    }

    /// Whether the schedule `key` has a run waiting (`Some(due slot)`) or not.
    pub fn set_waiting(&self, key: &str, due: Option<Timestamp>, now: Timestamp) {
        let mut state = self.lock();
        match due {
            Some(due) => {
                state.waiting.insert(key.to_string(), (due, now));
            }
            None => {
                state.waiting.remove(key);
            }
        }
    }

    /// How many runs wait for a place (for logs and metrics).
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// How long a queued run waits before it is looked at again: soon when it is at the head of the
/// queue, later the further back it is (so that a thousand queued schedules do not all poll
/// every few seconds), never more than a minute.
pub fn queued_retry(ahead: usize, cap: u32) -> Duration {
    let cap = usize::try_from(cap.max(1)).unwrap_or(1);
    let rounds = u64::try_from(ahead / cap).unwrap_or(u64::MAX);
    Duration::from_secs(2u64.saturating_add(rounds.saturating_mul(2)).min(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("ts")
    }

    fn job(ns: &str, name: &str, active: bool) -> Job {
        let mut v = serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "status": {"active": 1}
        });
        if !active {
            v["status"] = serde_json::json!({"succeeded": 1, "conditions": [
                {"type": "Complete", "status": "True"}
            ]});
        }
        serde_json::from_value(v).expect("job")
    }

    fn primed(cap: u32) -> SyncSlots {
        let s = SyncSlots::new(300, cap, vec![]);
        s.lock().primed = true;
        s
    }

    #[test]
    fn two_racing_reconciles_cannot_both_take_the_last_place() {
        let s = primed(1);
        let a = s.observe("ns-a", &[], "ns-a/s", t(0));
        let b = s.observe("ns-b", &[], "ns-b/s", t(0));
        // Both saw a free place...
        assert_eq!(admit(&a, "ns-a/s", t(0)), Admit::Start);
        assert_eq!(admit(&b, "ns-b/s", t(0)), Admit::Start);
        // ...only the first claim gets it.
        assert!(s.claim("ns-a/s", t(0), "ns-a", "s-1", t(1)));
        assert!(!s.claim("ns-b/s", t(0), "ns-b", "s-1", t(1)));
        // ns-a's list now shows the Job active: still one place taken, not two.
        let v = s.observe("ns-a", &[job("ns-a", "s-1", true)], "ns-b/s", t(2));
        assert_eq!(v.active, 1);
        // It finished: the place is free again.
        let v = s.observe("ns-a", &[job("ns-a", "s-1", false)], "ns-b/s", t(3));
        assert_eq!(v.active, 0);
        assert!(s.claim("ns-b/s", t(0), "ns-b", "s-1", t(3)));
    }

    #[test]
    fn waiting_runs_keep_their_place_and_are_forgotten_when_silent() {
        let s = primed(1);
        assert!(s.claim("ns-x/s", t(0), "ns-x", "busy", t(0)));
        s.set_waiting("ns-b/s", Some(t(10)), t(10));
        s.set_waiting("ns-a/s", Some(t(20)), t(20));
        // The Job finished: ns-b (due first) goes before ns-a.
        let _ = s.observe("ns-x", &[job("ns-x", "busy", false)], "", t(30));
        assert!(!s.claim("ns-a/s", t(20), "ns-a", "j", t(30)));
        assert!(s.claim("ns-b/s", t(10), "ns-b", "j", t(30)));
        // ns-b's schedule was deleted before it was listed; its reservation and ns-a's waiting
        // entry expire.
        let later = t(30) + WAITER_TTL + SignedDuration::from_secs(1);
        let v = s.observe("ns-z", &[], "ns-q/s", later);
        assert_eq!((v.active, v.waiting.len()), (0, 0));
    }

    #[test]
    fn unprimed_and_uncapped() {
        let s = SyncSlots::new(300, 1, vec![]);
        assert!(
            !s.claim("a/b", t(0), "a", "j", t(0)),
            "not primed: nothing starts"
        );
        let s = SyncSlots::new(300, 0, vec![]);
        assert!(s.claim("a/b", t(0), "a", "j", t(0)));
        assert!(s.claim("a/c", t(0), "a", "k", t(0)));
        assert_eq!(SyncSlots::new(99_999, 0, vec![]).jitter_seconds(), 3600);
    }

    #[test]
    fn queued_retry_table() {
        for (ahead, cap, secs) in [
            (0, 1, 2),
            (0, 10, 2),
            (9, 10, 2),
            (10, 10, 4),
            (5, 1, 12),
            (1000, 1, 60),
            (3, 0, 8),
        ] {
            assert_eq!(
                queued_retry(ahead, cap),
                Duration::from_secs(secs),
                "{ahead} {cap}"
            );
        }
    }
}
