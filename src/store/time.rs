//! The one place where timestamps cross into and out of Postgres.
//!
//! The crate uses [`jiff`] for time; sqlx 0.8 has no jiff support, so [`Ts`] wraps a
//! [`jiff::Timestamp`] and implements sqlx's `Type`/`Encode`/`Decode` for `timestamptz`.
//! The rule for queries (see docs/development.md, "SQL"):
//! - a `timestamptz` column read by `query!`/`query_as!` gets an override:
//!   `started_at AS "started_at: Ts"` (`"x!: Ts"` / `"x?: Ts"` for nullability);
//! - a `timestamptz` parameter is bound as `Ts(t) as _`.

use jiff::{SignedDuration, Timestamp};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef, Postgres,
};

/// A `timestamptz` value (microsecond precision in Postgres) as a [`jiff::Timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub Timestamp);

impl From<Ts> for Timestamp {
    fn from(t: Ts) -> Timestamp {
        t.0
    }
}

impl From<Timestamp> for Ts {
    fn from(t: Timestamp) -> Ts {
        Ts(t)
    }
}

/// Oid of `timestamptz` (pg_type.dat) and of `timestamptz[]`.
const TIMESTAMPTZ: Oid = Oid(1184);
const TIMESTAMPTZ_ARRAY: Oid = Oid(1185);

/// Postgres' epoch for binary timestamps: 2000-01-01T00:00:00Z (946 684 800 s after Unix's).
const PG_EPOCH_SECONDS: i64 = 946_684_800;

fn pg_epoch() -> Timestamp {
    Timestamp::from_second(PG_EPOCH_SECONDS).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Microseconds since 2000-01-01 (truncated toward that epoch, as sqlx's chrono encoding did).
pub fn to_pg_micros(t: Timestamp) -> i64 {
    let micros = t.duration_since(pg_epoch()).as_micros();
    // jiff's range (years -9999..=9999) is well inside i64 microseconds.
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The timestamp `micros` microseconds after 2000-01-01; an error for values outside jiff's range
/// (years -9999..=9999), such as Postgres' `infinity`.
pub fn from_pg_micros(micros: i64) -> Result<Timestamp, String> {
    pg_epoch()
        .checked_add(SignedDuration::from_micros(micros))
        .map_err(|e| format!("timestamptz {micros} µs after 2000-01-01 is out of range: {e}"))
}

impl sqlx::Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ)
    }
}

impl PgHasArrayType for Ts {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ_ARRAY)
    }
}

impl sqlx::Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&to_pg_micros(self.0).to_be_bytes());
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        8
    }
}

impl sqlx::Decode<'_, Postgres> for Ts {
    fn decode(value: PgValueRef<'_>) -> Result<Ts, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes: [u8; 8] = value
                    .as_bytes()?
                    .try_into()
                    .map_err(|_| "timestamptz: expected 8 bytes in the binary format")?;
                Ok(Ts(from_pg_micros(i64::from_be_bytes(bytes))?))
            }
            PgValueFormat::Text => {
                let s = value.as_str()?;
                Ok(Ts(s
                    .parse::<Timestamp>()
                    .map_err(|e| format!("timestamptz {s:?}: {e}"))?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_epoch_is_2000_01_01() {
        assert_eq!(pg_epoch().to_string(), "2000-01-01T00:00:00Z");
        assert_eq!(to_pg_micros(pg_epoch()), 0);
    }

    #[test]
    fn micros_round_trip_incl_sub_second_pre_1970_and_far_future() {
        for s in [
            "2025-03-01T02:00:00.123456Z",
            "1969-12-31T23:59:59.999999Z",
            "1900-06-15T12:34:56.000001Z",
            "0001-01-01T00:00:00Z",
            "9999-12-30T21:59:59.999999Z",
            "2000-01-01T00:00:00.000001Z",
            "1999-12-31T23:59:59.999999Z",
        ] {
            let t: Timestamp = s.parse().unwrap();
            let back = from_pg_micros(to_pg_micros(t)).unwrap();
            assert_eq!(back, t, "{s}");
        }
        assert_eq!(
            to_pg_micros("1999-12-31T23:59:59.999999Z".parse().unwrap()),
            -1
        );
        assert_eq!(
            to_pg_micros("1970-01-01T00:00:00Z".parse().unwrap()),
            -946_684_800_000_000
        );
    }

    #[test]
    fn out_of_range_is_an_error_not_a_panic() {
        // Postgres' 'infinity' / '-infinity'.
        assert!(from_pg_micros(i64::MAX).is_err());
        assert!(from_pg_micros(i64::MIN).is_err());
    }

    /// Issue #18: one time library (jiff) and one `rand` of our own choosing. chrono is gone from
    /// the whole dependency graph; other `rand` versions may come with dependencies (sqlx, proptest),
    /// but our Cargo.toml names one, and it is one that Cargo.lock resolves.
    #[test]
    fn cargo_lock_has_no_chrono_and_we_name_one_rand() {
        let root = env!("CARGO_MANIFEST_DIR");
        let lock = std::fs::read_to_string(format!("{root}/Cargo.lock")).unwrap();
        assert!(
            !lock.contains("name = \"chrono\""),
            "chrono is back in Cargo.lock (cargo tree -i chrono says who pulls it)"
        );
        let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
        let ours: Vec<&str> = manifest
            .lines()
            .filter(|l| l.starts_with("rand ") || l.starts_with("rand="))
            .collect();
        assert_eq!(ours.len(), 1, "Cargo.toml should name rand once: {ours:?}");
        assert!(!manifest.lines().any(|l| l.starts_with("chrono")));
        let major = ours[0]
            .split('"')
            .nth(1)
            .expect("rand = { version = \"x.y\", ... }");
        let locked: Vec<&str> = lock
            .split("[[package]]")
            .filter(|p| p.contains("\nname = \"rand\"\n"))
            .filter_map(|p| p.split("version = \"").nth(1)?.split('"').next())
            .collect();
        assert!(
            locked.iter().any(|v| v.starts_with(&format!("{major}."))),
            "rand {major} (Cargo.toml) is not in Cargo.lock: {locked:?}"
        );
    }
}
