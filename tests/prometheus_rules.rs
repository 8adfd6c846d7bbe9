//! The operator chart's PrometheusRule (`prometheusRule.enabled`), checked with promtool: the
//! rendered rules load (`promtool check rules`) and behave (`promtool test rules`): a suspended and
//! a Weekly schedule raise no staleness alert, a Daily one without a success for two days does, a
//! run held longer than the threshold does.
//!
//! promtool is built from Go modules by `hack/prometheus/build.sh` (cached); `hack/test.sh` puts it
//! on PATH. Outside hack/test.sh the test is skipped when promtool or helm is missing; under it
//! (`ROSTERSYNC_REQUIRE_SERVERS=1`) a missing tool is a failure.
mod common;

use serde_json::{Value, json};

/// The PrometheusRule the chart renders with `args`, in namespace `ops`.
fn rendered_rule(args: &[&str]) -> Option<Value> {
    let chart = common::repo_path("charts/rostersync");
    let chart = chart.to_string_lossy();
    let mut all = vec!["template", "t", &chart, "--namespace", "ops"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = common::run_tool("helm", &all);
    assert!(ok, "helm template {args:?} failed: {stderr}");
    serde_yaml_ng::Deserializer::from_str(&stdout)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("rendered YAML"))
        .find(|d| d["kind"] == "PrometheusRule")
}

/// Unit tests of the rules (promtool's format); time starts at 0, so timestamps are small.
const RULE_TESTS: &str = r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # A Daily schedule whose last success was at 0.
      - series: 'rostersync_last_successful_sync_timestamp_seconds{namespace="a",schedule="daily",connection="c"}'
        values: '0x2880'
      - series: 'rostersync_schedule_period_seconds{namespace="a",schedule="daily",connection="c"}'
        values: '86400x2880'
      - series: 'rostersync_schedule_suspended{namespace="a",schedule="daily",connection="c"}'
        values: '0x2880'
      # A Weekly schedule, same last success.
      - series: 'rostersync_last_successful_sync_timestamp_seconds{namespace="a",schedule="weekly",connection="c"}'
        values: '0x2880'
      - series: 'rostersync_schedule_period_seconds{namespace="a",schedule="weekly",connection="c"}'
        values: '604800x2880'
      - series: 'rostersync_schedule_suspended{namespace="a",schedule="weekly",connection="c"}'
        values: '0x2880'
      # A suspended Daily schedule (summer), same last success.
      - series: 'rostersync_last_successful_sync_timestamp_seconds{namespace="a",schedule="summer",connection="c"}'
        values: '0x2880'
      - series: 'rostersync_schedule_period_seconds{namespace="a",schedule="summer",connection="c"}'
        values: '86400x2880'
      - series: 'rostersync_schedule_suspended{namespace="a",schedule="summer",connection="c"}'
        values: '1x2880'
      # A run held at 1h, still awaiting approval.
      - series: 'rostersync_schedule_held_since_timestamp_seconds{namespace="b",schedule="guarded",connection="d"}'
        values: '3600x2880'
      - series: 'rostersync_schedule_consecutive_failures{namespace="b",schedule="guarded",connection="d"}'
        values: '1x2880'
      # The controller is up, one replica acts, one stands by.
      - series: 'rostersync_build_info{namespace="ops",pod="p1",version="0.1.0"}'
        values: '1x2880'
      - series: 'rostersync_leader{namespace="ops",pod="p1"}'
        values: '1x2880'
      - series: 'rostersync_leader{namespace="ops",pod="p2"}'
        values: '0x2880'
    alert_rule_test:
      # After 20 h nothing is overdue (a day plus the 6 h grace is 30 h).
      - eval_time: 20h
        alertname: RostersyncNoSuccessfulSync
        exp_alerts: []
      # After two days only the Daily schedule is: not the Weekly, not the suspended one.
      - eval_time: 48h
        alertname: RostersyncNoSuccessfulSync
        exp_alerts:
          - exp_labels: {severity: warning, namespace: a, schedule: daily, connection: c}
            exp_annotations:
              summary: "a/daily has not synced successfully within its period"
              description: "The last successful sync of a/daily (connection c) is older than the schedule's period plus the grace. kubectl roster status -n a"
      # The held run: not after 20 h (19 h held), but after two days (47 h > 24 h).
      - eval_time: 20h
        alertname: RostersyncRunHeldTooLong
        exp_alerts: []
      - eval_time: 48h
        alertname: RostersyncRunHeldTooLong
        exp_alerts:
          - exp_labels: {severity: warning, namespace: b, schedule: guarded, connection: d}
            exp_annotations:
              summary: "b/guarded: a run held by the removal guard awaits approval"
              description: "Review it and approve: kubectl roster approve -n b guarded"
      # One failure is below the threshold (3).
      - eval_time: 48h
        alertname: RostersyncSyncFailing
        exp_alerts: []
      - eval_time: 48h
        alertname: RostersyncControllerDown
        exp_alerts: []
      - eval_time: 48h
        alertname: RostersyncNoLeader
        exp_alerts: []
      - eval_time: 48h
        alertname: RostersyncEmailOutboxStuck
        exp_alerts: []
  # Nothing scraped from the controller: down, and no leader to count.
  - interval: 1m
    input_series:
      - series: 'rostersync_email_outbox_oldest_pending_age_seconds{namespace="a",connection="c",pod="p1"}'
        values: '4000+60x120'
      - series: 'rostersync_email_outbox_oldest_pending_age_seconds{namespace="a",connection="c",pod="p2"}'
        values: '4000+60x120'
    alert_rule_test:
      - eval_time: 30m
        alertname: RostersyncControllerDown
        exp_alerts:
          - exp_labels: {severity: critical, namespace: ops}
            exp_annotations:
              summary: "The rostersync controller in ops exports no metrics: it is down or not scraped"
      # Both replicas report the outbox: one alert per connection.
      - eval_time: 30m
        alertname: RostersyncEmailOutboxStuck
        exp_alerts:
          - exp_labels: {severity: warning, namespace: a, connection: c}
            exp_annotations:
              summary: "Emails of a/c wait in the outbox"
              description: "Check the SMTP settings and the controller's log (email sender)."
"#;

#[test]
fn prometheus_rule_is_off_by_default_and_passes_promtool_check_and_unit_tests() {
    if !common::tool_available("helm", "version", "hack/k8s/build.sh")
        || !common::tool_available("promtool", "--version", "hack/prometheus/build.sh")
    {
        return;
    }
    assert!(rendered_rule(&[]).is_none(), "rendered while disabled");
    let rule = rendered_rule(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=prom",
    ])
    .expect("a PrometheusRule when enabled");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let groups = &rule["spec"]["groups"];
    let alerts: Vec<&str> = groups[0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(
        alerts,
        [
            "RostersyncNoSuccessfulSync",
            "RostersyncSyncFailing",
            "RostersyncRunHeldTooLong",
            "RostersyncControllerDown",
            "RostersyncNoLeader",
            "RostersyncEmailOutboxStuck"
        ]
    );

    // promtool reads the rule file format: the spec's groups (JSON is YAML).
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, json!({"groups": groups}).to_string()).expect("write rules");
    let tests = dir.path().join("tests.yaml");
    std::fs::write(&tests, RULE_TESTS).expect("write rule tests");

    let rules = rules.to_string_lossy();
    let (ok, out, err) = common::run_tool("promtool", &["check", "rules", &rules]);
    assert!(ok, "promtool check rules:\n{out}\n{err}");
    let tests = tests.to_string_lossy();
    let (ok, out, err) = common::run_tool("promtool", &["test", "rules", &tests]);
    assert!(ok, "promtool test rules:\n{out}\n{err}");
    eprintln!("{out}");

    // The thresholds are values.
    let rule = rendered_rule(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.heldHours=48",
        "--set",
        "prometheusRule.staleGraceHours=0",
    ])
    .expect("a PrometheusRule");
    let text = rule["spec"].to_string();
    assert!(text.contains("> 172800"), "{text}");
    assert!(
        text.contains("rostersync_schedule_period_seconds + 0)"),
        "{text}"
    );
}
