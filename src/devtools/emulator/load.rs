//! `--data DIR`: Clever-format list files (`{"data":[{"data":{..},"uri":..}],"links":[..]}`).
use std::path::Path;

use serde_json::Value;

use super::record::Kind;
use super::store::Store;

/// Reads `districts.json` (required; its first district is served), and `schools.json`,
/// `sections.json`, `users.json`, `terms.json`, `courses.json` when present. Each file is a list
/// envelope as Clever returns it (a bare array of objects is accepted too).
pub fn load_dir(dir: &Path) -> Result<Store, String> {
    let read = |name: &str| -> Result<Option<Vec<Value>>, String> {
        let path = dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let items = match value {
            Value::Array(items) => items,
            Value::Object(mut obj) => match obj.remove("data") {
                Some(Value::Array(items)) => items,
                _ => return Err(format!("{} has no `data` array", path.display())),
            },
            _ => return Err(format!("{} is not a list", path.display())),
        };
        // Unwrap `{"data":{...},"uri":..}` items; accept bare objects too.
        Ok(Some(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(mut o) if o.get("data").is_some_and(Value::is_object) => {
                        o.remove("data").unwrap_or_default()
                    }
                    other => other,
                })
                .collect(),
        ))
    };
    let district = read("districts.json")?
        .and_then(|d| d.into_iter().next())
        .ok_or_else(|| {
            format!(
                "{} must contain districts.json with one district",
                dir.display()
            )
        })?;
    let mut rest = Vec::new();
    for kind in [
        Kind::Schools,
        Kind::Sections,
        Kind::Users,
        Kind::Terms,
        Kind::Courses,
    ] {
        rest.push((
            kind,
            read(&format!("{}.json", kind.segment()))?.unwrap_or_default(),
        ));
    }
    Store::from_values(district, rest).map_err(|e| e.to_string())
}
