//! Names as label values. Object names may have up to 253 characters, label values 63: a longer
//! name becomes a readable prefix plus a hash of the whole name ([`label_value`]), stable across
//! versions and machines, so a selector built from a name keeps matching. The full names travel
//! in annotations (no length limit) beside the labels, and that is what the controller reads back
//! ([`connection_of`], [`schedule_of`]); the labels are for selection and for people.
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::job::{CONNECTION_LABEL, SCHEDULE_LABEL};

/// The longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: usize = 63;

/// Annotations with the full names the labels may have shortened.
pub const CONNECTION_ANNOTATION: &str = "rostersync.io/connection";
pub const SCHEDULE_ANNOTATION: &str = "rostersync.io/schedule";

/// FNV-1a, 64 bits: stable across Rust versions and machines (std's hashers are not).
pub fn fnv1a64(data: &str) -> u64 {
    data.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// 16 hex characters (64 bits) of a stable hash of `data`.
pub fn hash16(data: &str) -> String {
    format!("{:016x}", fnv1a64(data))
}

/// `value` as a label value: itself when it is a valid one (at most 63 characters of
/// `[A-Za-z0-9._-]`, alphanumeric at both ends, or empty); otherwise a readable prefix of its
/// allowed characters, `-`, and 16 hex characters of a hash of the whole value (63 at most).
pub fn label_value(value: &str) -> String {
    if is_label_value(value) {
        return value.to_string();
    }
    const HASH: usize = 16;
    let keep = MAX_LABEL_VALUE - HASH - 1;
    let head: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(keep)
        .collect();
    let head = head
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if head.is_empty() {
        hash16(value)
    } else {
        format!("{head}-{}", hash16(value))
    }
}

/// Whether `value` is a valid label value as it is.
pub fn is_label_value(value: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.is_empty()
        || (value.len() <= MAX_LABEL_VALUE
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && alnum(value.chars().next())
            && alnum(value.chars().last()))
}

/// The connection a sync Job ran for: its annotation, else (a Job of an older controller) its
/// label.
pub fn connection_of(job: &Job) -> Option<String> {
    full_name(job, CONNECTION_ANNOTATION, CONNECTION_LABEL)
}

/// The SyncSchedule that started a sync Job (annotation, else label).
pub fn schedule_of(job: &Job) -> Option<String> {
    full_name(job, SCHEDULE_ANNOTATION, SCHEDULE_LABEL)
}

fn full_name(job: &Job, annotation: &str, label: &str) -> Option<String> {
    job.annotations()
        .get(annotation)
        .or_else(|| job.labels().get(label))
        .filter(|v| !v.is_empty())
        .cloned()
}

/// Whether `job` carries `name` under `label` (as [`label_value`] writes it).
pub fn has_label_for(job: &Job, label: &str, name: &str) -> bool {
    job.labels().get(label) == Some(&label_value(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_table() {
        let n63 = "a".repeat(63);
        let n64 = "b".repeat(64);
        let n200 = format!("{}.{}", "c".repeat(100), "d".repeat(99));
        let cases: Vec<(&str, bool)> = vec![
            ("springfield", true),
            ("", true),
            (&n63, true),
            (&n64, false),
            (&n200, false),
            ("-leading", false),
            ("trailing.", false),
        ];
        for (value, unchanged) in cases {
            let v = label_value(value);
            assert!(
                is_label_value(&v),
                "{value:?} -> {v:?} is not a label value"
            );
            assert!(v.len() <= MAX_LABEL_VALUE, "{v}");
            assert_eq!(v == value, unchanged, "{value:?} -> {v:?}");
            // Stable: the same value gives the same label.
            assert_eq!(label_value(value), v);
        }
        // Readable prefix, then the hash of the whole value.
        let v = label_value(&n64);
        assert!(v.starts_with(&"b".repeat(46)), "{v}");
        assert_eq!(v.len(), 63);
        // Two long names sharing their first 46 characters stay distinct.
        let (x, y) = (format!("{n63}-x"), format!("{n63}-y"));
        assert_ne!(label_value(&x), label_value(&y));
        // Only separators: the hash alone.
        assert_eq!(label_value(&"-".repeat(70)).len(), 16);
    }

    #[test]
    fn the_hash_is_stable_across_versions() {
        // Fixed values: a change here would orphan the labels of existing Jobs.
        assert_eq!(hash16(""), "cbf29ce484222325");
        assert_eq!(hash16("a"), "af63dc4c8601ec8c");
    }
}
