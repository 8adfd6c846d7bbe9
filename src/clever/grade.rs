//! Clever's grade enum, carried as a string on the wire.
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A grade as Clever sends it (student grade, section grade, school low/high grade).
///
/// Every documented value has a variant; anything else is kept verbatim in [`CleverGrade::Unknown`] so a
/// new Clever value never fails a record. The empty string is not a grade: fields holding `""`
/// decode to `None`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CleverGrade {
    InfantToddler,
    Preschool,
    PreKindergarten,
    TransitionalKindergarten,
    Kindergarten,
    /// Grades `1` to `13`.
    Numbered(u8),
    PostGraduate,
    Ungraded,
    Other,
    Unknown(String),
}

impl CleverGrade {
    /// The five grades of the recommended early-learning sharing set, youngest first.
    pub const EARLY: [CleverGrade; 5] = [
        CleverGrade::InfantToddler,
        CleverGrade::Preschool,
        CleverGrade::PreKindergarten,
        CleverGrade::TransitionalKindergarten,
        CleverGrade::Kindergarten,
    ];

    /// Parses a Clever grade; `""` (after trimming) is `None`.
    pub fn from_clever(s: &str) -> Option<CleverGrade> {
        let s = s.trim();
        let grade = match s {
            "" => return None,
            "InfantToddler" => CleverGrade::InfantToddler,
            "Preschool" => CleverGrade::Preschool,
            "PreKindergarten" => CleverGrade::PreKindergarten,
            "TransitionalKindergarten" => CleverGrade::TransitionalKindergarten,
            "Kindergarten" => CleverGrade::Kindergarten,
            "PostGraduate" => CleverGrade::PostGraduate,
            "Ungraded" => CleverGrade::Ungraded,
            "Other" => CleverGrade::Other,
            _ => match s.parse::<u8>() {
                Ok(n) if (1..=13).contains(&n) && !s.starts_with('0') => CleverGrade::Numbered(n),
                _ => CleverGrade::Unknown(s.to_owned()),
            },
        };
        Some(grade)
    }

    /// The wire value.
    pub fn as_clever(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            CleverGrade::InfantToddler => Cow::Borrowed("InfantToddler"),
            CleverGrade::Preschool => Cow::Borrowed("Preschool"),
            CleverGrade::PreKindergarten => Cow::Borrowed("PreKindergarten"),
            CleverGrade::TransitionalKindergarten => Cow::Borrowed("TransitionalKindergarten"),
            CleverGrade::Kindergarten => Cow::Borrowed("Kindergarten"),
            CleverGrade::Numbered(n) => Cow::Owned(n.to_string()),
            CleverGrade::PostGraduate => Cow::Borrowed("PostGraduate"),
            CleverGrade::Ungraded => Cow::Borrowed("Ungraded"),
            CleverGrade::Other => Cow::Borrowed("Other"),
            CleverGrade::Unknown(s) => Cow::Borrowed(s.as_str()),
        }
    }

    /// True for the five early-learning grades.
    pub fn is_early(&self) -> bool {
        CleverGrade::EARLY.contains(self)
    }
}

impl fmt::Display for CleverGrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_clever())
    }
}

impl Serialize for CleverGrade {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_clever())
    }
}

impl<'de> Deserialize<'de> for CleverGrade {
    /// A bare `CleverGrade` cannot be empty; use `Option<CleverGrade>` fields (which map `""` to `None`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CleverGrade::from_clever(&s)
            .ok_or_else(|| serde::de::Error::custom("expected a grade, got an empty string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_value_and_keeps_unknown_ones() {
        for s in [
            "InfantToddler",
            "Preschool",
            "PreKindergarten",
            "TransitionalKindergarten",
            "Kindergarten",
            "1",
            "12",
            "13",
            "PostGraduate",
            "Ungraded",
            "Other",
        ] {
            let g = CleverGrade::from_clever(s).unwrap();
            assert!(!matches!(g, CleverGrade::Unknown(_)), "{s}");
            assert_eq!(g.as_clever(), s);
        }
        assert_eq!(CleverGrade::from_clever(""), None);
        assert_eq!(CleverGrade::from_clever("  "), None);
        assert_eq!(
            CleverGrade::from_clever("14"),
            Some(CleverGrade::Unknown("14".into()))
        );
        assert_eq!(
            CleverGrade::from_clever("01"),
            Some(CleverGrade::Unknown("01".into()))
        );
        assert_eq!(
            CleverGrade::from_clever("Pre-K"),
            Some(CleverGrade::Unknown("Pre-K".into()))
        );
        assert!(CleverGrade::Kindergarten.is_early());
        assert!(!CleverGrade::Numbered(1).is_early());
    }
}
