use super::*;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Demo {
    name: String,
    health: String,
    last_sync: Option<Timestamp>,
    note: String,
}

impl TableRow for Demo {
    const KIND: &'static str = "Demo";
    const COLUMNS: &'static [Column] = &[
        Column::new("NAME"),
        Column::new("HEALTH"),
        Column::new("LAST SYNC"),
        Column::wide("NOTE"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::text(&self.name),
            Cell::status(&self.health, tone_of(&self.health)),
            Cell::time(self.last_sync),
            Cell::text(&self.note),
        ]
    }
}

fn now() -> Timestamp {
    "2026-01-05T10:00:00Z".parse().expect("ts")
}

fn rows() -> Vec<Demo> {
    vec![
        Demo {
            name: "springfield".into(),
            health: "Ready".into(),
            last_sync: Some("2026-01-05T09:55:00Z".parse().expect("ts")),
            note: "a, \"quoted\" note".into(),
        },
        Demo {
            name: "shelbyville-long-name".into(),
            health: "DistrictNotFound".into(),
            last_sync: None,
            note: "=cmd".into(),
        },
    ]
}

fn printer(format: OutputFormat) -> Printer {
    Printer::plain(format, TimePolicy::utc_at(now()))
}

#[test]
fn table_is_kubectl_style_with_relative_times() {
    let out = printer(OutputFormat::Table)
        .render(&rows())
        .expect("render");
    assert_eq!(
        out,
        "NAME                    HEALTH             LAST SYNC\n\
         springfield             Ready              5m ago\n\
         shelbyville-long-name   DistrictNotFound   -\n"
    );
    assert!(!out.contains('\x1b'), "no colour unless asked");
}

#[test]
fn wide_adds_columns_and_absolute_times_in_the_zone() {
    let out = printer(OutputFormat::Wide).render(&rows()).expect("render");
    let first = out.lines().nth(1).expect("row");
    assert!(first.contains("2026-01-05T09:55:00Z"), "{out}");
    assert!(out.starts_with("NAME") && out.lines().next().unwrap_or("").ends_with("NOTE"));
    let chicago = Printer::plain(
        OutputFormat::Wide,
        TimePolicy {
            zone: jiff::tz::TimeZone::get("America/Chicago").expect("tz"),
            now: now(),
        },
    );
    let out = chicago.render(&rows()).expect("render");
    assert!(out.contains("2026-01-05T03:55:00-06:00"), "{out}");
}

#[test]
fn json_and_yaml_are_list_documents_with_utc_times() {
    let out = printer(OutputFormat::Json).render(&rows()).expect("render");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["apiVersion"], API_VERSION);
    assert_eq!(doc["kind"], "DemoList");
    assert_eq!(doc["items"][0]["lastSync"], "2026-01-05T09:55:00Z");
    assert_eq!(doc["items"][1]["lastSync"], serde_json::Value::Null);
    let out = printer(OutputFormat::Yaml).render(&rows()).expect("render");
    let yaml: serde_json::Value = serde_yaml_ng::from_str(&out).expect("yaml");
    assert_eq!(yaml, doc);
    // An empty list is still a document.
    let empty: Vec<Demo> = Vec::new();
    let out = printer(OutputFormat::Json).render(&empty).expect("render");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["items"], serde_json::json!([]));
}

#[test]
fn csv_quotes_and_defuses_formulas() {
    let out = printer(OutputFormat::Csv).render(&rows()).expect("render");
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines[0], "NAME,HEALTH,LAST SYNC,NOTE");
    assert_eq!(
        lines[1],
        "springfield,Ready,2026-01-05T09:55:00Z,\"a, \"\"quoted\"\" note\""
    );
    assert_eq!(lines[2], "shelbyville-long-name,DistrictNotFound,,'=cmd");
}

#[test]
fn colour_only_when_enabled_and_never_with_no_color() {
    let mut p = printer(OutputFormat::Table);
    p.color = true;
    let out = p.render(&rows()).expect("render");
    assert!(out.contains("\x1b["), "colour codes expected: {out:?}");
    assert!(!color_enabled(false), "never off a TTY");
    use std::ffi::OsStr;
    let xterm = Some(OsStr::new("xterm-256color"));
    assert!(color_for(true, None, xterm));
    assert!(
        color_for(true, Some(OsStr::new("")), xterm),
        "an empty NO_COLOR does not count"
    );
    assert!(
        !color_for(true, Some(OsStr::new("1")), xterm),
        "NO_COLOR wins over a TTY"
    );
    assert!(!color_for(true, None, Some(OsStr::new("dumb"))));
    assert!(!color_for(false, None, xterm));
}

#[test]
fn tones_of_well_known_words() {
    assert_eq!(tone_of("Ready"), Tone::Good);
    assert_eq!(tone_of("Succeeded"), Tone::Good);
    assert_eq!(tone_of("Held"), Tone::Warn);
    assert_eq!(tone_of("Failed"), Tone::Bad);
    assert_eq!(tone_of("DistrictNotFound"), Tone::Bad);
    assert_eq!(tone_of("-"), Tone::Plain);
}

#[test]
fn run_rows_from_status_render_in_every_format() {
    let status: crate::api::RunStatus = serde_json::from_value(serde_json::json!({
        "job": "j", "runId": "r-1", "trigger": "Manual", "result": "Failed",
        "startedAt": "2026-01-05T09:00:00Z", "finishedAt": "2026-01-05T09:02:30Z",
        "summary": "CredentialsInvalid: revoked"
    }))
    .expect("status");
    let row = runs::RunRow::from_status("ns/springfield", &status);
    assert_eq!(row.duration_seconds, Some(150));
    let table = printer(OutputFormat::Table)
        .render(std::slice::from_ref(&row))
        .expect("render");
    assert!(table.starts_with("RUN ID"), "{table}");
    assert!(
        table.contains("r-1") && table.contains("1h ago") && table.contains("2m"),
        "{table}"
    );
    let json = printer(OutputFormat::Json).render(&[row]).expect("render");
    let doc: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(doc["kind"], "RunList");
    assert_eq!(doc["items"][0]["finishedAt"], "2026-01-05T09:02:30Z");
    assert_eq!(doc["items"][0]["source"], "status.recentRuns");
}

#[test]
fn progress_lines_carry_the_elapsed_time() {
    assert_eq!(
        progress::Progress::line(std::time::Duration::from_millis(4200), "Job created"),
        "[  4.2s] Job created"
    );
}

/// `rostersync sync` follows the contract: a run's and a sync error's exit codes are the
/// contract's codes (0 ok, 1 failed but retriable, 2 not retriable, 3 held).
#[test]
fn the_sync_exit_codes_are_the_contract() {
    use crate::run::{ConnectionKey, Counts, ProblemCodes, RunRecord, RunResult, Trigger};
    for result in [
        RunResult::Succeeded,
        RunResult::Held,
        RunResult::Failed,
        RunResult::Running,
    ] {
        for retriable in [false, true] {
            let r = RunRecord {
                run_id: "r-1".into(),
                connection: ConnectionKey::parse("ns/a").expect("key"),
                schedule: None,
                trigger: Trigger::Manual,
                job: None,
                dry_run: false,
                started_at: now(),
                finished_at: None,
                result,
                retriable,
                counts: Counts::default(),
                problems: 0,
                problem_codes: ProblemCodes::new(),
                reason: None,
                message: None,
                timings: serde_json::json!({}),
                clever: Default::default(),
                duration_ms: None,
                notified: false,
                attempts: 1,
            };
            assert_eq!(
                r.exit_code(),
                exit::for_run(result, retriable),
                "{result:?} {retriable}"
            );
        }
    }
    let permanent = crate::sync::SyncError::Config("bad".into());
    assert_eq!(permanent.exit_code(), exit::USAGE);
    let transient = crate::sync::SyncError::Source {
        reason: "CleverUnavailable",
        message: "503".into(),
        retriable: true,
    };
    assert_eq!(transient.exit_code(), exit::FAILED);
    assert_eq!(exit::for_run(RunResult::Held, false), exit::HELD);
}
