//! The controller's notion of "now". Production reads the system clock; tests shift it (hidden
//! flag `--clock-offset-seconds`) so that a slot hours away is a few seconds away, through the same
//! code path.
use jiff::{SignedDuration, Timestamp};

#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset: SignedDuration,
}

impl Clock {
    /// The system clock shifted by `offset` (zero in production).
    pub fn with_offset(offset: SignedDuration) -> Clock {
        Clock { offset }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// How long until `t` on this clock (zero if it passed).
    pub fn until(&self, t: Timestamp) -> std::time::Duration {
        let d = t.duration_since(self.now());
        std::time::Duration::try_from(d).unwrap_or_default()
    }
}
