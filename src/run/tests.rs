use super::*;

fn record(result: RunResult) -> RunRecord {
    RunRecord {
        run_id: "r-1".into(),
        connection: ConnectionKey::parse("district-a/springfield").expect("key"),
        schedule: Some("nightly".into()),
        trigger: Trigger::Scheduled,
        job: Some("nightly-abc".into()),
        dry_run: false,
        started_at: "2026-01-01T04:00:00Z".parse().expect("ts"),
        finished_at: Some("2026-01-01T04:01:30Z".parse().expect("ts")),
        result,
        retriable: false,
        counts: Counts::default(),
        problems: 0,
        problem_codes: ProblemCodes::new(),
        reason: None,
        message: None,
        timings: serde_json::json!({}),
        clever: Default::default(),
        duration_ms: Some(90_000),
        notified: false,
        attempts: 1,
    }
}

#[test]
fn exit_codes_by_result_and_retriable() {
    let cases = [
        (RunResult::Succeeded, false, 0),
        (RunResult::Succeeded, true, 0),
        (RunResult::Held, false, 3),
        (RunResult::Failed, true, 1),
        (RunResult::Failed, false, 2),
        (RunResult::Running, true, 1),
        (RunResult::Running, false, 2),
    ];
    for (result, retriable, code) in cases {
        let r = RunRecord {
            retriable,
            ..record(result)
        };
        assert_eq!(r.exit_code(), code, "{result:?} retriable={retriable}");
    }
}

#[test]
fn one_summary_per_outcome() {
    let mut ok = record(RunResult::Succeeded);
    ok.counts.children.created = 7;
    ok.counts.children.unchanged = 2;
    ok.counts.classrooms.deactivated = 1;
    assert_eq!(
        ok.summary(),
        "classrooms: 1 deactivated; children: 7 created, 2 unchanged"
    );
    ok.problems = 2;
    assert_eq!(
        ok.summary(),
        "classrooms: 1 deactivated; children: 7 created, 2 unchanged (2 problems)"
    );
    let dry = RunRecord {
        dry_run: true,
        problems: 0,
        ..ok.clone()
    };
    assert!(
        dry.summary()
            .starts_with("dry run, nothing applied: classrooms")
    );
    assert_eq!(record(RunResult::Succeeded).summary(), "no changes");

    let mut held = record(RunResult::Held);
    held.reason = Some("RemovalGuard".into());
    held.message = Some("children: 40 of 100 (40%)\n > 10%".into());
    assert_eq!(
        held.summary(),
        "RemovalGuard: children: 40 of 100 (40%) > 10%"
    );

    let mut failed = record(RunResult::Failed);
    assert_eq!(failed.summary(), "Unknown");
    failed.reason = Some("CleverUnavailable".into());
    failed.message = Some("x".repeat(1000));
    let s = failed.summary();
    assert!(s.starts_with("CleverUnavailable: xxx"), "{s}");
    assert!(s.len() <= SUMMARY_MAX + '…'.len_utf8(), "{}", s.len());

    assert_eq!(record(RunResult::Running).summary(), "running");
}

#[test]
fn status_entry_and_last_sync_carry_the_same_summary() {
    let mut r = record(RunResult::Failed);
    r.reason = Some("Interrupted".into());
    let entry = r.status_entry("nightly-abc");
    let last = r.last_sync();
    assert_eq!(entry.summary, r.summary());
    assert_eq!(last.summary, r.summary());
    assert_eq!(entry.result, Some(RunResult::Failed));
    assert_eq!(entry.trigger, Some(Trigger::Scheduled));
    assert_eq!(last.finished_at.map(|t| t.0), r.finished_at);
}

#[test]
fn stored_results_and_triggers_parse() {
    assert_eq!(parse_result("Held"), RunResult::Held);
    assert_eq!(parse_result("garbage"), RunResult::Failed);
    assert_eq!(parse_trigger("CatchUp"), Ok(Trigger::CatchUp));
    assert_eq!(parse_trigger("catch-up"), Ok(Trigger::CatchUp));
    assert_eq!(parse_trigger("Scheduled"), Ok(Trigger::Scheduled));
    assert!(parse_trigger("Nightly").is_err());
}

#[test]
fn serializes_for_history_json() {
    let mut r = record(RunResult::Succeeded);
    r.counts.children.carried_over = 1;
    let v = serde_json::to_value(&r).expect("json");
    for key in [
        "runId",
        "connection",
        "result",
        "counts",
        "problems",
        "durationMs",
    ] {
        assert!(v.get(key).is_some(), "{key} in {v}");
    }
    assert_eq!(v["connection"], "district-a/springfield");
    assert_eq!(v["counts"]["children"]["carriedOver"], 1);
}

#[test]
fn only_a_retriable_failure_runs_again_and_attempts_show_in_the_summary() {
    let cases = [
        (RunResult::Failed, true, true),
        (RunResult::Failed, false, false),
        (RunResult::Succeeded, false, false),
        (RunResult::Held, false, false),
        (RunResult::Running, true, false),
    ];
    for (result, retriable, again) in cases {
        let r = RunRecord {
            retriable,
            ..record(result)
        };
        assert_eq!(r.runs_again(), again, "{result:?} retriable={retriable}");
    }
    let mut second = record(RunResult::Succeeded);
    second.attempts = 2;
    second.counts.children.created = 1;
    assert_eq!(second.summary(), "children: 1 created (attempt 2)");
    let mut failed = record(RunResult::Failed);
    failed.attempts = 3;
    failed.reason = Some("CleverUnavailable".into());
    failed.message = Some("503".into());
    assert_eq!(failed.summary(), "CleverUnavailable (attempt 3): 503");
}
