use super::*;

fn source(name: Option<&str>) -> Source {
    Source {
        connection: "district-a/springfield".into(),
        district_id: "5f0c0c0c0c0c0c0c0c0c0c0c".into(),
        district_name: name.map(Into::into),
    }
}

fn counts() -> Counts {
    Counts::from_json(&serde_json::json!({
        "children": {"created": 3, "updated": 0, "deactivated": 40, "removed": 2},
        "schools": {"unchanged": 1}
    }))
}

#[test]
fn subjects_name_the_district_and_the_outcome() {
    let failed = render(&Notice::RunFailed {
        source: source(Some("Springfield USD")),
        run_id: "r1".into(),
        reason: "CleverUnavailable".into(),
        message: "HTTP 503".into(),
        counts: Counts::default(),
    });
    assert_eq!(failed.subject, "[rostersync] Springfield USD: sync failed");
    let held = render(&Notice::RunHeld {
        source: source(None),
        run_id: "r2".into(),
        schedule: Some("nightly".into()),
        reason: "RemovalGuard".into(),
        message: "children: 42 of 100 (42%) > 10%".into(),
        counts: counts(),
    });
    assert_eq!(
        held.subject,
        "[rostersync] 5f0c0c0c0c0c0c0c0c0c0c0c: sync held, would remove 42 records"
    );
    assert!(held.text.contains("  children: 42\n"), "{}", held.text);
    assert!(held.text.contains(
        "kubectl -n district-a annotate ssched nightly rostersync.io/approve-removals=r2"
    ));
}

#[test]
fn values_are_html_escaped_and_subjects_are_one_line() {
    let e = Notice::RunFailed {
        source: source(Some("A & B <script>\r\nBcc: x")),
        run_id: "r\"1".into(),
        reason: "Other".into(),
        message: "<b>boom</b>".into(),
        counts: Counts::default(),
    };
    let r = render(&e);
    assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
    assert!(!r.html.contains("<script>") && !r.html.contains("<b>boom"));
    assert!(r.html.contains("A &amp; B &lt;script&gt;"));
    assert!(r.html.contains("&lt;b&gt;boom&lt;/b&gt;"));
    assert!(r.html.contains("r&quot;1"));
}

#[test]
fn every_kind_has_a_headline_facts_and_next_steps() {
    let s = source(Some("Springfield USD"));
    let slot = "2025-03-01T02:00:00Z"
        .parse::<jiff::Timestamp>()
        .expect("valid");
    let events = [
        Notice::RunFailed {
            source: s.clone(),
            run_id: "r".into(),
            reason: "X".into(),
            message: "m".into(),
            counts: counts(),
        },
        Notice::RunHeld {
            source: s.clone(),
            run_id: "r".into(),
            schedule: None,
            reason: "RemovalGuard".into(),
            message: "m".into(),
            counts: counts(),
        },
        Notice::Recovered {
            source: s.clone(),
            run_id: "r".into(),
            counts: counts(),
        },
        Notice::CredentialsInvalid {
            source: s.clone(),
            run_id: None,
            message: "m".into(),
        },
        Notice::DistrictNotFound {
            source: s.clone(),
            run_id: None,
            message: "m".into(),
        },
        Notice::ScheduleMissed {
            source: s.clone(),
            schedule: "nightly".into(),
            slot,
            reason: "OperatorDown".into(),
            message: "m".into(),
        },
        Notice::RunSucceeded {
            source: s.clone(),
            run_id: "r".into(),
            counts: counts(),
        },
        Notice::ConnectionMisconfigured {
            source: s,
            reason: "JourneyPolicyNotFound".into(),
            message: "m".into(),
        },
    ];
    for e in &events {
        let r = render(e);
        assert!(
            r.subject.starts_with("[rostersync] Springfield USD: "),
            "{}",
            r.subject
        );
        assert!(
            r.text
                .lines()
                .any(|l| l.starts_with("Connection:") && l.ends_with(" district-a/springfield")),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("Springfield USD (Clever id 5f0c0c0c0c0c0c0c0c0c0c0c)")
        );
        assert!(r.text.contains("\nWhat to do next:\n  1. "), "{}", r.text);
        assert!(r.html.contains("<h3>What to do next</h3>"));
        assert!(r.html.starts_with("<!DOCTYPE html>"));
    }
    let missed = render(&events[5]);
    assert!(missed.text.contains("2025-03-01T02:00:00Z"));
}

#[test]
fn run_emails_point_at_the_runs_problems() {
    let failed = render(&Notice::RunFailed {
        source: source(Some("Springfield USD")),
        run_id: "run-7".into(),
        reason: "CleverError".into(),
        message: "m".into(),
        counts: counts(),
    });
    assert!(
        failed
            .text
            .contains("rostersync problems district-a/springfield run-7"),
        "{}",
        failed.text
    );
    let unknown = render(&Notice::CredentialsInvalid {
        source: source(None),
        run_id: None,
        message: "m".into(),
    });
    assert!(!unknown.text.contains("rostersync problems"));
}
