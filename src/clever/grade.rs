//! Clever's grade enum, carried as a string on the wire.
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A grade as Clever sends it (student grade, section grade, school low/high grade).
///
/// Every documented value has a variant; anything else is kept verbatim in [`Grade::Unknown`] so a
/// new Clever value never fails a record. The empty string is not a grade: fields holding `""`
/// decode to `None`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grade {
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

impl Grade {
    /// The five grades of the recommended early-learning sharing set, youngest first.
    pub const EARLY: [Grade; 5] = [
        Grade::InfantToddler,
        Grade::Preschool,
        Grade::PreKindergarten,
        Grade::TransitionalKindergarten,
        Grade::Kindergarten,
    ];

    /// Parses a Clever grade; `""` (after trimming) is `None`.
    pub fn from_clever(s: &str) -> Option<Grade> {
        let s = s.trim();
        let grade = match s {
            "" => return None,
            "InfantToddler" => Grade::InfantToddler,
            "Preschool" => Grade::Preschool,
            "PreKindergarten" => Grade::PreKindergarten,
            "TransitionalKindergarten" => Grade::TransitionalKindergarten,
            "Kindergarten" => Grade::Kindergarten,
            "PostGraduate" => Grade::PostGraduate,
            "Ungraded" => Grade::Ungraded,
            "Other" => Grade::Other,
            _ => match s.parse::<u8>() {
                Ok(n) if (1..=13).contains(&n) && !s.starts_with('0') => Grade::Numbered(n),
                _ => Grade::Unknown(s.to_owned()),
            },
        };
        Some(grade)
    }

    /// The wire value.
    pub fn as_clever(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            Grade::InfantToddler => Cow::Borrowed("InfantToddler"),
            Grade::Preschool => Cow::Borrowed("Preschool"),
            Grade::PreKindergarten => Cow::Borrowed("PreKindergarten"),
            Grade::TransitionalKindergarten => Cow::Borrowed("TransitionalKindergarten"),
            Grade::Kindergarten => Cow::Borrowed("Kindergarten"),
            Grade::Numbered(n) => Cow::Owned(n.to_string()),
            Grade::PostGraduate => Cow::Borrowed("PostGraduate"),
            Grade::Ungraded => Cow::Borrowed("Ungraded"),
            Grade::Other => Cow::Borrowed("Other"),
            Grade::Unknown(s) => Cow::Borrowed(s.as_str()),
        }
    }

    /// True for the five early-learning grades.
    pub fn is_early(&self) -> bool {
        Grade::EARLY.contains(self)
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_clever())
    }
}

impl Serialize for Grade {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_clever())
    }
}

impl<'de> Deserialize<'de> for Grade {
    /// A bare `Grade` cannot be empty; use `Option<Grade>` fields (which map `""` to `None`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Grade::from_clever(&s)
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
            let g = Grade::from_clever(s).unwrap();
            assert!(!matches!(g, Grade::Unknown(_)), "{s}");
            assert_eq!(g.as_clever(), s);
        }
        assert_eq!(Grade::from_clever(""), None);
        assert_eq!(Grade::from_clever("  "), None);
        assert_eq!(Grade::from_clever("14"), Some(Grade::Unknown("14".into())));
        assert_eq!(Grade::from_clever("01"), Some(Grade::Unknown("01".into())));
        assert_eq!(
            Grade::from_clever("Pre-K"),
            Some(Grade::Unknown("Pre-K".into()))
        );
        assert!(Grade::Kindergarten.is_early());
        assert!(!Grade::Numbered(1).is_early());
    }
}
