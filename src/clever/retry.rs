//! Pure retry decisions: how to classify a response status and how long a 429 asks us to wait.
use std::time::Duration;

/// Reads `X-RateLimit-Reset` (Unix seconds) and returns how long to wait from `now_unix`.
///
/// Clever may send several buckets as comma-separated lists (`X-RateLimit-Reset: 1700000060, 1700000120`
/// with `X-RateLimit-Remaining: 5, 0`). When `Remaining` lists as many values as `Reset`, only the
/// exhausted buckets (remaining 0) count; otherwise every bucket counts. Of those, the latest reset
/// wins: waiting for it is the only wait that is sure to help. `None` when no value parses.
pub fn parse_rate_limit_reset(
    reset: &str,
    remaining: Option<&str>,
    now_unix: i64,
) -> Option<Duration> {
    let resets: Vec<Option<i64>> = reset
        .split(',')
        .map(|v| v.trim().parse::<i64>().ok())
        .collect();
    let remaining: Option<Vec<Option<i64>>> =
        remaining.map(|r| r.split(',').map(|v| v.trim().parse::<i64>().ok()).collect());
    let exhausted: Vec<i64> = match &remaining {
        Some(rem) if rem.len() == resets.len() && rem.contains(&Some(0)) => resets
            .iter()
            .zip(rem)
            .filter(|(_, r)| **r == Some(0))
            .filter_map(|(reset, _)| *reset)
            .collect(),
        _ => resets.iter().flatten().copied().collect(),
    };
    let latest = exhausted.into_iter().max()?;
    // Clever's value is a Unix time; tolerate a relative seconds value too (small numbers).
    let secs = if latest < 1_000_000_000 {
        latest
    } else {
        latest - now_unix
    };
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// What the client does with a response status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    /// 401.
    Unauthorized,
    NotFound,
    /// 413: the page limit is too large.
    TooLarge,
    RateLimited,
    /// 500, 502, 503 (and 504): retry with backoff.
    Transient,
    /// 400, 501 and any other status: retrying cannot help.
    Permanent,
}

pub fn classify(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        401 => StatusClass::Unauthorized,
        404 => StatusClass::NotFound,
        413 => StatusClass::TooLarge,
        429 => StatusClass::RateLimited,
        500 | 502 | 503 | 504 => StatusClass::Transient,
        _ => StatusClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn single_reset_is_relative_to_now() {
        assert_eq!(
            parse_rate_limit_reset("1700000007", None, NOW),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_rate_limit_reset("1699999990", None, NOW),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_rate_limit_reset("", None, NOW), None);
        assert_eq!(parse_rate_limit_reset("soon", None, NOW), None);
    }

    #[test]
    fn several_buckets_wait_for_the_exhausted_one() {
        let d = parse_rate_limit_reset("1700000030, 1700000005", Some("0, 12"), NOW);
        assert_eq!(d, Some(Duration::from_secs(30)));
        let d = parse_rate_limit_reset("1700000030,1700000005", Some("12,0"), NOW);
        assert_eq!(d, Some(Duration::from_secs(5)));
        // No usable remaining list: the latest reset wins.
        let d = parse_rate_limit_reset("1700000030,1700000005", Some("x"), NOW);
        assert_eq!(d, Some(Duration::from_secs(30)));
        let d = parse_rate_limit_reset("1700000030, bad", None, NOW);
        assert_eq!(d, Some(Duration::from_secs(30)));
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(200), StatusClass::Success);
        assert_eq!(classify(401), StatusClass::Unauthorized);
        assert_eq!(classify(413), StatusClass::TooLarge);
        assert_eq!(classify(429), StatusClass::RateLimited);
        for s in [500, 502, 503] {
            assert_eq!(classify(s), StatusClass::Transient);
        }
        for s in [400, 403, 501] {
            assert_eq!(classify(s), StatusClass::Permanent);
        }
    }
}
