//! Runs the real binary: `rostersync schedule preview`.
use std::process::{Command, Output};

const SCHEDULE: &str = r#"apiVersion: rostersync.io/v1alpha1
kind: SyncSchedule
metadata:
  name: springfield
  namespace: districts
spec:
  connectionRef:
    name: springfield
  frequency: Daily
  at: "02:30"
  timeZone: America/Chicago
"#;

fn preview(yaml: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("schedule.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["schedule", "preview", "--file"])
        .arg(&file)
        .args(extra)
        .output()
        .expect("run rostersync")
}

#[test]
fn json_lists_the_next_slots_across_spring_forward() {
    let out = preview(
        SCHEDULE,
        &[
            "--from",
            "2026-03-06T12:00:00Z",
            "--count",
            "3",
            "--output",
            "json",
            "--slot-jitter-seconds",
            "0",
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        json,
        serde_json::json!([
            {"utc": "2026-03-07T08:30:00Z", "local": "2026-03-07T02:30:00-06:00", "zone": "America/Chicago"},
            {"utc": "2026-03-08T08:00:00Z", "local": "2026-03-08T03:00:00-05:00", "zone": "America/Chicago"},
            {"utc": "2026-03-09T07:30:00Z", "local": "2026-03-09T02:30:00-05:00", "zone": "America/Chicago"},
        ])
    );
}

#[test]
fn table_is_the_default_and_count_defaults_to_five() {
    let out = preview(
        SCHEDULE,
        &[
            "--from",
            "2026-03-06T12:00:00Z",
            "--slot-jitter-seconds",
            "0",
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2 + 5, "{stdout}");
    assert_eq!(
        lines[0],
        "Daily at 02:30 in America/Chicago, off-peak window 20:00-06:00, starting deadline 120 min"
    );
    assert_eq!(
        lines[1],
        "UTC                    LOCAL                       DAY  NOTE"
    );
    assert_eq!(
        lines[2],
        "2026-03-07T08:30:00Z   2026-03-07T02:30:00-06:00   Sat"
    );
    assert!(
        lines[3].starts_with("2026-03-08T08:00:00Z   2026-03-08T03:00:00-05:00"),
        "{stdout}"
    );
    assert!(lines[3].contains("DST gap"), "{stdout}");
    assert!(!lines[4].contains("DST gap"), "{stdout}");
}

#[test]
fn unknown_time_zone_exits_2_with_a_clear_message() {
    let out = preview(
        &SCHEDULE.replace("America/Chicago", "America/Springfield"),
        &["--output", "json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: "), "{stderr}");
    assert!(
        stderr.contains("unknown time zone \"America/Springfield\""),
        "{stderr}"
    );
}

#[test]
fn invalid_schedule_and_unreadable_file_exit_2() {
    let out = preview(&SCHEDULE.replace("\"02:30\"", "\"14:00\""), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("daily syncs run only in off-peak hours"),
        "{stderr}"
    );

    let out = preview("kind: RosterConnection\nspec: {}\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected SyncSchedule"));

    let out = Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args([
            "schedule",
            "preview",
            "--file",
            "/nonexistent/schedule.yaml",
        ])
        .output()
        .expect("run rostersync");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: cannot read /nonexistent/schedule.yaml"),
        "{stderr}"
    );
}

#[test]
fn jitter_shows_the_effective_time_and_the_offset() {
    // The manifest's own slotJitterSeconds wins over --slot-jitter-seconds.
    let yaml = format!("{SCHEDULE}  slotJitterSeconds: 600\n");
    let offset = rostersync::schedule::jitter_offset("districts/springfield", 600);
    let shown = rostersync::schedule::format_offset(offset);
    let out = preview(
        &yaml,
        &[
            "--from",
            "2026-03-06T12:00:00Z",
            "--count",
            "3",
            "--output",
            "json",
            "--slot-jitter-seconds",
            "0",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let nominal = [
        "2026-03-07T08:30:00Z",
        "2026-03-08T08:00:00Z",
        "2026-03-09T07:30:00Z",
    ];
    for (item, nominal) in json.as_array().expect("array").iter().zip(nominal) {
        let nominal: jiff::Timestamp = nominal.parse().expect("ts");
        let utc: jiff::Timestamp = item["utc"].as_str().expect("utc").parse().expect("ts");
        assert_eq!(utc, nominal + offset, "{item}");
        assert_eq!(item["jitter"], shown.as_str(), "{item}");
    }
    // The table says it next to each slot: "02:30 +Xm Ys".
    let out = preview(&yaml, &["--from", "2026-03-06T12:00:00Z", "--count", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].ends_with(&format!(", jitter {shown}")), "{stdout}");
    assert!(lines[2].ends_with(&format!("02:30 {shown}")), "{stdout}");
    assert!(
        lines[3].contains(&format!("03:00 {shown}; moved by a DST gap")),
        "{stdout}"
    );
}
