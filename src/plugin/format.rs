//! Pure formatting for `kubectl roster`: tables, durations, counts.
use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{JourneyPolicy, RosterConnection, SyncSchedule, condition};

/// Parses `30s`, `10m`, `1h30m`, `2h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: use e.g. 30s, 10m or 1h30m"
                ));
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: a number must precede {c:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(format!(
            "invalid duration {s:?}: use e.g. 30s, 10m or 1h30m"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// A compact duration: `45s`, `12m`, `3h5m`, `2d4h`.
pub fn format_duration(secs: i64) -> String {
    let secs = secs.abs();
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => {
            let m = (s % 3600) / 60;
            if m == 0 {
                format!("{}h", s / 3600)
            } else {
                format!("{}h{m}m", s / 3600)
            }
        }
        s => {
            let h = (s % 86_400) / 3600;
            if h == 0 {
                format!("{}d", s / 86_400)
            } else {
                format!("{}d{h}h", s / 86_400)
            }
        }
    }
}

/// `5m ago` or `in 3h` relative to `now`.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    if secs >= 0 {
        format!("in {}", format_duration(secs))
    } else {
        format!("{} ago", format_duration(secs))
    }
}

fn ready(conds: &[Condition]) -> Option<&Condition> {
    conds.iter().find(|c| c.type_ == condition::READY)
}

/// `Ready`, the reason of a not-ready object, or `Pending` before the controller reported.
fn health(conds: &[Condition]) -> String {
    match ready(conds) {
        Some(c) if c.status == "True" => "Ready".to_string(),
        Some(c) if !c.reason.is_empty() => c.reason.clone(),
        Some(_) => "NotReady".to_string(),
        None => "Pending".to_string(),
    }
}

fn when(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map(|t| relative(t, now))
        .unwrap_or_else(|| "-".to_string())
}

struct Row {
    namespace: String,
    kind: &'static str,
    name: String,
    health: String,
    last_result: String,
    last_sync: String,
    next_sync: String,
    sync_now: String,
    problem: Option<String>,
}

/// The `status` table, rows grouped by connection: each RosterConnection, then its schedules, then
/// the rest. `all_namespaces` adds a NAMESPACE column. Objects that are not Ready are explained
/// below the table with their condition message.
pub fn status_table(
    connections: &[RosterConnection],
    schedules: &[SyncSchedule],
    policies: &[JourneyPolicy],
    all_namespaces: bool,
    now: Timestamp,
) -> String {
    let mut rows = Vec::new();
    for c in connections {
        let status = c.status.clone().unwrap_or_default();
        let last = status.last_sync.as_ref();
        let problem = ready(&status.conditions)
            .filter(|r| r.status != "True")
            .map(|r| format!("{}: {}", r.reason, r.message));
        rows.push(Row {
            namespace: c.metadata.namespace.clone().unwrap_or_default(),
            kind: "RosterConnection",
            name: c.metadata.name.clone().unwrap_or_default(),
            health: health(&status.conditions),
            last_result: last
                .and_then(|l| l.result)
                .map(|r| r.as_str().to_string())
                .unwrap_or_else(|| "-".into()),
            last_sync: when(last.and_then(|l| l.finished_at.as_ref()).map(|t| t.0), now),
            next_sync: "-".into(),
            sync_now: "-".into(),
            problem,
        });
    }
    for s in schedules {
        let status = s.status.clone().unwrap_or_default();
        let mut health = health(&status.conditions);
        if s.spec.suspend {
            health = format!("{health},Suspended");
        }
        let last = status.last_run.as_ref();
        let last_result = last
            .and_then(|l| l.result)
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| "-".into());
        let next_sync = if s.spec.suspend {
            "suspended".to_string()
        } else {
            when(status.next_sync_time.as_ref().map(|t| t.0), now)
        };
        let sync_now = match &status.sync_now {
            None => "-".to_string(),
            Some(sn) if sn.available => "available".to_string(),
            Some(sn) => match &sn.available_after {
                Some(t) => format!("no: {} (available {})", sn.reason, relative(t.0, now)),
                None => format!("no: {}", sn.reason),
            },
        };
        let problem = ready(&status.conditions)
            .filter(|r| r.status != "True")
            .map(|r| format!("{}: {}", r.reason, r.message));
        rows.push(Row {
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            kind: "SyncSchedule",
            name: s.metadata.name.clone().unwrap_or_default(),
            health,
            last_result,
            last_sync: when(
                last.and_then(|l| l.finished_at.as_ref().or(l.started_at.as_ref()))
                    .map(|t| t.0),
                now,
            ),
            next_sync,
            sync_now,
            problem,
        });
    }
    for p in policies {
        let status = p.status.clone().unwrap_or_default();
        let problem = ready(&status.conditions)
            .filter(|r| r.status != "True")
            .map(|r| format!("{}: {}", r.reason, r.message));
        rows.push(Row {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            kind: "JourneyPolicy",
            name: p.metadata.name.clone().unwrap_or_default(),
            health: health(&status.conditions),
            last_result: "-".into(),
            last_sync: "-".into(),
            next_sync: "-".into(),
            sync_now: "-".into(),
            problem,
        });
    }
    if rows.is_empty() {
        return "No rostersync objects found.\n".to_string();
    }
    rows.sort_by(|a, b| {
        (&a.namespace, &a.name, kind_order(a.kind)).cmp(&(
            &b.namespace,
            &b.name,
            kind_order(b.kind),
        ))
    });

    let mut header = vec![
        "KIND",
        "NAME",
        "HEALTH",
        "LAST RESULT",
        "LAST SYNC",
        "NEXT SYNC",
        "SYNC NOW",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.kind.to_string(),
                r.name.clone(),
                r.health.clone(),
                r.last_result.clone(),
                r.last_sync.clone(),
                r.next_sync.clone(),
                r.sync_now.clone(),
            ];
            if all_namespaces {
                cells.insert(0, r.namespace.clone());
            }
            cells
        })
        .collect();
    let mut out = render_columns(&header, &table);
    let problems: Vec<&Row> = rows.iter().filter(|r| r.problem.is_some()).collect();
    if !problems.is_empty() {
        out.push_str("\nNot ready:\n");
        for r in problems {
            let _ = writeln!(
                out,
                "  {}/{} {}: {}",
                r.namespace,
                r.name,
                r.kind,
                r.problem.as_deref().unwrap_or_default()
            );
        }
    }
    out
}

fn kind_order(kind: &str) -> u8 {
    match kind {
        "RosterConnection" => 0,
        "SyncSchedule" => 1,
        _ => 2,
    }
}

/// Left-aligned columns separated by three spaces, kubectl style.
pub fn render_columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}   ", width = widths[i]);
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_ok());
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(600), "10m");
        assert_eq!(format_duration(3600 + 300), "1h5m");
        assert_eq!(format_duration(86_400 * 2 + 3600 * 4), "2d4h");
        let now = Timestamp::from_second(1_000_000).unwrap_or_default();
        let later = Timestamp::from_second(1_000_000 + 7200).unwrap_or_default();
        assert_eq!(relative(later, now), "in 2h");
        assert_eq!(relative(now, later), "2h ago");
    }
}
