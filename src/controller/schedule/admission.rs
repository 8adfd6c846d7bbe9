//! The cluster's cap on concurrent sync Jobs (`--max-concurrent-syncs`): who may start, pure.
//!
//! A scheduled run (a slot, on time or caught up) may start when fewer than `cap` sync Jobs are
//! active in the cluster and no run that waits ahead of it would take the free place: runs wait in
//! order of their due slot, oldest first (ties by `namespace/name`, so the order is total and the
//! same on every replica). A run that may not start waits (`status.queuedRun`, Ready reason
//! `Queued`, an Event) and is looked at again until it may. Sync Now and approvals are never
//! queued (a person is waiting for them) but count as active. `cap == 0`: no cap.
use jiff::Timestamp;

/// What the cap decision needs, as seen by one reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapView {
    /// `--max-concurrent-syncs` (0: unlimited).
    pub cap: u32,
    /// Whether the active sync Jobs of every watched namespace were listed since the start (until
    /// then nothing capped starts: the count could be too low).
    pub primed: bool,
    /// Sync Jobs active in the cluster (running, or created and not yet seen running).
    pub active: usize,
    /// The other runs waiting for a place: `(due slot, namespace/name)`.
    pub waiting: Vec<(Timestamp, String)>,
}

/// The decision for one due run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Start the Job now.
    Start,
    /// Wait: `ahead` runs wait before this one, `active` of `cap` places are taken.
    Wait { ahead: usize },
}

/// Whether the run of `key` (`namespace/name`) due at `due` may start now.
pub fn admit(view: &CapView, key: &str, due: Timestamp) -> Admit {
    if view.cap == 0 {
        return Admit::Start;
    }
    let ahead = view
        .waiting
        .iter()
        .filter(|(t, k)| k != key && (*t, k.as_str()) < (due, key))
        .count();
    if !view.primed {
        return Admit::Wait { ahead };
    }
    let cap = usize::try_from(view.cap).unwrap_or(usize::MAX);
    let free = cap.saturating_sub(view.active);
    if ahead < free {
        Admit::Start
    } else {
        Admit::Wait { ahead }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minute: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minute * 60).expect("ts")
    }

    fn view(cap: u32, active: usize, waiting: &[(i64, &str)]) -> CapView {
        CapView {
            cap,
            primed: true,
            active,
            waiting: waiting
                .iter()
                .map(|(m, k)| (t(*m), k.to_string()))
                .collect(),
        }
    }

    #[test]
    fn admission_table() {
        use Admit::*;
        let me = "ns-b/sched";
        for (name, v, due, want) in [
            ("no cap: always", view(0, 100, &[(0, "ns-a/x")]), 5, Start),
            ("below the cap, nobody waits", view(2, 1, &[]), 0, Start),
            ("at the cap", view(2, 2, &[]), 0, Wait { ahead: 0 }),
            (
                "above the cap (Sync Now runs)",
                view(2, 5, &[]),
                0,
                Wait { ahead: 0 },
            ),
            ("cap 1, idle", view(1, 0, &[]), 0, Start),
            (
                "an older waiting run takes the one free place",
                view(2, 1, &[(0, "ns-a/x")]),
                1,
                Wait { ahead: 1 },
            ),
            (
                "two free places: the second oldest starts too",
                view(3, 1, &[(0, "ns-a/x")]),
                1,
                Start,
            ),
            (
                "younger waiting runs do not count",
                view(2, 1, &[(5, "ns-a/x"), (9, "ns-c/y")]),
                1,
                Start,
            ),
            (
                "same due slot: ordered by namespace/name",
                view(2, 1, &[(1, "ns-a/x")]),
                1,
                Wait { ahead: 1 },
            ),
            (
                "same due slot, a later name waits behind",
                view(2, 1, &[(1, "ns-c/x")]),
                1,
                Start,
            ),
            (
                "its own entry does not count",
                view(1, 0, &[(1, "ns-b/sched")]),
                1,
                Start,
            ),
            (
                "several ahead",
                view(2, 2, &[(0, "a/1"), (0, "a/2"), (3, "a/3")]),
                2,
                Wait { ahead: 2 },
            ),
        ] {
            assert_eq!(admit(&v, me, t(due)), want, "{name}");
        }
    }

    #[test]
    fn nothing_capped_starts_before_every_namespace_was_listed() {
        let mut v = view(5, 0, &[(0, "ns-a/x")]);
        v.primed = false;
        assert_eq!(admit(&v, "ns-b/s", t(1)), Admit::Wait { ahead: 1 });
        v.cap = 0;
        assert_eq!(admit(&v, "ns-b/s", t(1)), Admit::Start);
    }

    #[test]
    fn a_queue_drains_in_due_order() {
        // Cap 2, five runs due at different times, all waiting; each round the places that free
        // go to the oldest.
        let runs = [(3, "d/e"), (0, "a/b"), (2, "c/d"), (0, "a/a"), (1, "b/c")];
        let mut waiting: Vec<(Timestamp, String)> =
            runs.iter().map(|(m, k)| (t(*m), k.to_string())).collect();
        let mut started = Vec::new();
        while !waiting.is_empty() {
            let v = CapView {
                cap: 2,
                primed: true,
                active: 0,
                waiting: waiting.clone(),
            };
            let mut round: Vec<String> = waiting
                .iter()
                .filter(|(due, key)| admit(&v, key, *due) == Admit::Start)
                .map(|(_, k)| k.clone())
                .collect();
            assert_eq!(round.len(), 2.min(waiting.len()), "{round:?}");
            round.sort();
            waiting.retain(|(_, k)| !round.contains(k));
            started.extend(round);
        }
        assert_eq!(started, ["a/a", "a/b", "b/c", "c/d", "d/e"]);
    }
}
