//! Pacing of the controller's Clever verifications (`--verify-rate-per-second`): calls are spaced
//! at least `1 / rate` apart, in the order they asked, so Clever never sees more than the
//! configured rate from this controller, however many connections are due at once (a restart, a
//! mass creation, a Secret rotated for many districts). The start-up jitter spreads the due
//! times; this bounds the rate whatever they are.
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces calls `1 / rate` apart (no burst). A rate of 0 lets every call through at once.
#[derive(Debug)]
pub struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(per_second: u32) -> Pacer {
        Pacer {
            interval: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: Mutex::new(None),
        }
    }

    /// Waits for this call's turn: the first at once, each next one `1 / rate` after the one
    /// before (or at once, if that time has passed).
    pub async fn turn(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            // Plain data behind the lock: a panic elsewhere leaves it usable.
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time (tokio's paused clock needs its `test-util` feature, which would rebuild tokio
    // for the test builds): only lower bounds are asserted, which a slow machine cannot break.

    #[tokio::test]
    async fn calls_are_spaced_by_the_rate_and_never_burst() {
        let pacer = std::sync::Arc::new(Pacer::new(50));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let pacer = pacer.clone();
            tasks.push(tokio::spawn(async move {
                pacer.turn().await;
                start.elapsed()
            }));
        }
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.expect("task"));
        }
        at.sort();
        // 50 a second: the i-th call's turn comes no earlier than i * 20 ms after the start, so
        // never more than 50 in any second. (The gaps between observed wake-ups are no bound: a
        // task woken late by a busy machine shortens its gap to the next one, which is on time.)
        for (i, t) in at.iter().enumerate() {
            let turn = Duration::from_millis(20) * u32::try_from(i).expect("ten calls");
            assert!(*t + Duration::from_millis(1) >= turn, "call {i}: {at:?}");
        }
    }

    #[tokio::test]
    async fn an_idle_pacer_lets_the_next_call_through_and_spaces_the_one_after() {
        let pacer = Pacer::new(10);
        pacer.turn().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let t = Instant::now();
        pacer.turn().await;
        pacer.turn().await;
        assert!(
            t.elapsed() >= Duration::from_millis(99),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn zero_is_no_pacing() {
        let pacer = Pacer::new(0);
        assert!(pacer.interval.is_none());
        for _ in 0..1000 {
            pacer.turn().await;
        }
        assert!(pacer.next.lock().expect("lock").is_none());
    }
}
