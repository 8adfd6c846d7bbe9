//! Serde helpers for Clever's loose wire format: `""`, `null` and absent all mean "no value".
use std::fmt::{self, Write as _};

use jiff::Timestamp;
use jiff::civil::Date;
use serde::de::{DeserializeOwned, Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serializer};

use super::grade::CleverGrade;

/// `null` and `""` (or only whitespace) are `None`; other strings are kept as they are.
/// Numbers and booleans are accepted as their text, as some SIS exports send `"sis_id": 1234`.
pub fn blank_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(BlankNone)
}

/// A required text field: `null` and absent become `""`.
pub fn blank_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(blank_none(d)?.unwrap_or_default())
}

/// `null` is the type's default (an empty list, an empty object).
pub fn null_default<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An optional grade: `""`/`null`/absent are `None`, unknown values are kept.
pub fn grade<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CleverGrade>, D::Error> {
    Ok(blank_none(d)?.and_then(|s| CleverGrade::from_clever(&s)))
}

/// An optional RFC 3339 timestamp (`2019-08-23T21:14:24.451Z`).
pub fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    match blank_none(d)? {
        None => Ok(None),
        Some(s) => s
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|_| D::Error::custom("expected an RFC 3339 timestamp")),
    }
}

/// Date of birth as `M/D/YYYY` (Clever does not zero-pad; padded values are accepted too).
pub mod dob {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&format_mdy(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        match blank_none(d)? {
            None => Ok(None),
            // The message names the expected format only: a birth date is personal data.
            Some(s) => parse_mdy(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom("expected a date as M/D/YYYY")),
        }
    }
}

/// Parses `M/D/YYYY` (1-2 digit month and day, 4 digit year) into a valid calendar date.
pub fn parse_mdy(s: &str) -> Option<Date> {
    let mut parts = s.trim().split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || m.is_empty()
        || m.len() > 2
        || d.is_empty()
        || d.len() > 2
        || y.len() != 4
    {
        return None;
    }
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(m) && all_digits(d) && all_digits(y)) {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

/// Formats a date the way Clever does: `M/D/YYYY`, not zero-padded.
pub fn format_mdy(d: Date) -> String {
    let mut s = String::with_capacity(10);
    let _ = write!(s, "{}/{}/{:04}", d.month(), d.day(), d.year());
    s
}

/// Visits a JSON scalar where Clever documents a string (no intermediate buffering: this runs for
/// most fields of every record).
struct BlankNone;

impl<'de> Visitor<'de> for BlankNone {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((!v.trim().is_empty()).then(|| v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok((!v.trim().is_empty()).then_some(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dob_accepts_clever_format_and_rejects_garbage() {
        assert_eq!(parse_mdy("2/11/2007"), Some(jiff::civil::date(2007, 2, 11)));
        assert_eq!(parse_mdy("12/1/2019"), Some(jiff::civil::date(2019, 12, 1)));
        assert_eq!(parse_mdy("02/03/2019"), Some(jiff::civil::date(2019, 2, 3)));
        for bad in [
            "31/31/x",
            "2/30/2019",
            "2007-02-11",
            "2/11/07",
            "2/11",
            "1/2/3/2004",
            "/1/2004",
            "a/1/2004",
        ] {
            assert_eq!(parse_mdy(bad), None, "{bad}");
        }
        assert_eq!(format_mdy(jiff::civil::date(2007, 2, 11)), "2/11/2007");
    }
}
