//! Emails about sync events, against real Postgres and a real SMTP server (hack/smtp-sink.py):
//! which events become which emails (recipients, subject, key body lines).
//! Delivery guarantees (outage, restart, concurrent senders) are in tests/notify_delivery.rs.
mod common;
mod notify_support;

use std::time::Duration;

use common::ReceivedMail;
use notify_support::*;
use rostersync::notify::{Counts, Notice, NoticeKind, Source};

fn assert_email(mail: &ReceivedMail, subject: &str, lines: &[&str]) {
    assert_eq!(mail.subject, subject);
    assert_eq!(mail.rcpt_tos, RECIPIENTS, "recipients");
    assert_eq!(mail.mail_from, "rostersync@ops.example.org");
    assert!(
        mail.headers
            .get("Content-Type")
            .is_some_and(|c| c.starts_with("multipart/alternative")),
        "{:?}",
        mail.headers
    );
    let text = mail.text.as_deref().expect("a text/plain part");
    let html = mail.html.as_deref().expect("a text/html part");
    for line in lines {
        assert!(text.contains(line), "text body lacks {line:?}:\n{text}");
    }
    assert!(html.contains("<h3>What to do next</h3>"), "{html}");
    assert_no_personal_data(mail);
}

#[tokio::test]
async fn failed_run_email() {
    let Some(env) = Env::start().await else {
        return;
    };
    let event = failed(&env.connection, "CleverUnavailable");
    assert!(env.enqueue(&on(), &event, t0()).await.is_some());
    let mail = env.deliver(1).await.remove(0);
    assert_email(
        &mail,
        "[rostersync] Springfield USD: sync failed",
        &[
            "The roster sync of Springfield USD failed. The roster was left exactly as it was",
            "Reason:     CleverUnavailable",
            "Run:        run-CleverUnavailable",
            "Details:    Clever answered HTTP 503 three times",
            "schools: 2 unchanged",
            "Clever was unavailable: the next scheduled run retries on its own.",
            &format!("rostersync history --connection {}", env.connection),
        ],
    );
}

#[tokio::test]
async fn held_run_email_says_what_would_be_removed_and_how_to_approve() {
    let Some(env) = Env::start().await else {
        return;
    };
    let event = Notice::RunHeld {
        source: source(&env.connection),
        run_id: "20250301-020000-abc".into(),
        schedule: Some("nightly".into()),
        reason: "RemovalGuard".into(),
        message: "children: 40 of 100 (40%) > 10%".into(),
        counts: Counts::from_json(&serde_json::json!({
            "children": {"created": 1, "deactivated": 38, "removed": 2},
            "enrollments": {"deactivated": 45},
            "schools": {"unchanged": 3}
        })),
    };
    env.enqueue(&on(), &event, t0()).await.expect("queued");
    let mail = env.deliver(1).await.remove(0);
    let ns = env.connection.split('/').next().expect("ns");
    assert_email(
        &mail,
        "[rostersync] Springfield USD: sync held, would remove 85 records",
        &[
            "was held by the removal guard",
            "Nothing was applied.",
            "Would remove (deactivate or delete):",
            "  children:    40\n",
            "  enrollments: 45\n",
            &format!(
                "kubectl -n {ns} annotate ssched nightly \
                 rostersync.io/approve-removals=20250301-020000-abc --overwrite"
            ),
        ],
    );
    assert!(!mail.text.as_deref().unwrap_or("").contains("schools:"));
}

#[tokio::test]
async fn recovery_email_after_a_failure_even_without_success_emails() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.enqueue(&on(), &failed(&env.connection, "CleverUnavailable"), t0())
        .await
        .expect("failure queued");
    // The sync job always reports a success; the notifier turns it into a recovery.
    env.enqueue(&on(), &succeeded(&env.connection, "run-ok"), later(1))
        .await
        .expect("recovery queued");
    let mails = env.deliver(2).await;
    assert_eq!(
        mails[0].subject,
        "[rostersync] Springfield USD: sync failed"
    );
    assert_email(
        &mails[1],
        "[rostersync] Springfield USD: sync recovered",
        &[
            "succeeded again after the problem reported earlier",
            "Run:        run-ok",
            "Changes applied:",
            "children: 3 created, 1 updated",
            "Nothing to do.",
        ],
    );
    // The next success is not a recovery and, without success emails, not emailed.
    assert!(
        env.enqueue(&on(), &succeeded(&env.connection, "run-ok2"), later(2))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn credentials_invalid_email() {
    let Some(env) = Env::start().await else {
        return;
    };
    let event = Notice::CredentialsInvalid {
        source: source(&env.connection),
        run_id: None,
        message: "Clever answered 401 to GET /v3.0/me".into(),
    };
    env.enqueue(&on(), &event, t0()).await.expect("queued");
    let mail = env.deliver(1).await.remove(0);
    let (ns, name) = env.connection.split_once('/').expect("ns/name");
    assert_email(
        &mail,
        "[rostersync] Springfield USD: Clever credentials invalid",
        &[
            "Clever rejected the credentials of the connection for Springfield USD.",
            "Details:    Clever answered 401 to GET /v3.0/me",
            &format!(
                "kubectl -n {ns} get rosterconnection {name} -o \
                 jsonpath='{{.spec.credentialsSecretRef.name}}'"
            ),
        ],
    );
    // The sync job failing for the same reason is the same state: not emailed again.
    let same = failed(&env.connection, "CredentialsInvalid");
    assert!(env.enqueue(&on(), &same, later(1)).await.is_none());
}

#[tokio::test]
async fn district_not_found_email() {
    let Some(env) = Env::start().await else {
        return;
    };
    let event = Notice::DistrictNotFound {
        source: Source {
            district_name: None,
            ..source(&env.connection)
        },
        run_id: None,
        message: "Clever answered 404 for the district".into(),
    };
    env.enqueue(&on(), &event, t0()).await.expect("queued");
    let mail = env.deliver(1).await.remove(0);
    assert_email(
        &mail,
        &format!("[rostersync] {DISTRICT_ID}: district not found in Clever"),
        &[
            &format!("Clever does not know the district id {DISTRICT_ID}"),
            &format!("Clever id {DISTRICT_ID}"),
            "Double-check spec.districtId",
        ],
    );
}

#[tokio::test]
async fn schedule_missed_email() {
    let Some(env) = Env::start().await else {
        return;
    };
    let slot = "2025-03-01T02:00:00Z"
        .parse::<jiff::Timestamp>()
        .expect("valid");
    let event = Notice::ScheduleMissed {
        source: source(&env.connection),
        schedule: "nightly".into(),
        slot,
        reason: "StartingDeadlineExceeded".into(),
        message: "the operator was down from 01:50 to 03:10".into(),
    };
    env.enqueue(&on(), &event, t0()).await.expect("queued");
    let mail = env.deliver(1).await.remove(0);
    let ns = env.connection.split('/').next().expect("ns");
    assert_email(
        &mail,
        "[rostersync] Springfield USD: scheduled sync missed",
        &[
            "A scheduled roster sync of Springfield USD did not run.",
            "Schedule:    nightly",
            "Missed slot: 2025-03-01T02:00:00Z",
            "Reason:      StartingDeadlineExceeded",
            &format!("kubectl -n {ns} annotate ssched nightly rostersync.io/sync-now="),
        ],
    );
}

#[tokio::test]
async fn success_emails_only_when_enabled() {
    let Some(env) = Env::start().await else {
        return;
    };
    assert!(
        env.enqueue(&on(), &succeeded(&env.connection, "run-1"), t0())
            .await
            .is_none()
    );
    let with_success = rostersync::notify::NotifySettings {
        send_success_emails: true,
        ..on()
    };
    env.enqueue(
        &with_success,
        &succeeded(&env.connection, "run-2"),
        later(1),
    )
    .await
    .expect("queued");
    env.enqueue(
        &with_success,
        &succeeded(&env.connection, "run-3"),
        later(2),
    )
    .await
    .expect("every success is emailed");
    let mails = env.deliver(2).await;
    assert_email(
        &mails[0],
        "[rostersync] Springfield USD: sync succeeded",
        &[
            "The roster sync of Springfield USD succeeded.",
            "Run:        run-2",
            "children: 3 created, 1 updated",
            "sendSuccessEmails setting is on",
        ],
    );
    assert!(
        mails[1]
            .text
            .as_deref()
            .unwrap_or("")
            .contains("Run:        run-3")
    );
    assert_eq!(env.outbox_count().await, 2);
}

#[tokio::test]
async fn no_email_when_send_emails_is_false() {
    let Some(env) = Env::start().await else {
        return;
    };
    let off = rostersync::notify::NotifySettings {
        send_emails: false,
        send_success_emails: true,
        ..on()
    };
    for event in all_kinds(&env.connection) {
        assert!(
            env.enqueue(&off, &event, t0()).await.is_none(),
            "{:?}",
            event.kind()
        );
    }
    assert_eq!(env.outbox_count().await, 0);
    // A marker to another connection proves the sender ran and sent nothing else.
    let other = format!("{}-other", env.connection);
    env.enqueue(&on(), &failed(&other, "Marker"), t0())
        .await
        .expect("queued");
    let mails = env.deliver(1).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text.as_deref().unwrap_or("").contains("Marker"));
}

#[tokio::test]
async fn repeat_suppression() {
    let Some(env) = Env::start().await else {
        return;
    };
    let c = &env.connection;
    let sent = [
        env.enqueue(&on(), &failed(c, "CleverUnavailable"), t0())
            .await,
        // The same failure an hour later: suppressed.
        env.enqueue(&on(), &failed(c, "CleverUnavailable"), later(1))
            .await,
        // A different reason: sent.
        env.enqueue(&on(), &failed(c, "CleverRateLimited"), later(2))
            .await,
        // And repeated: suppressed.
        env.enqueue(&on(), &failed(c, "CleverRateLimited"), later(3))
            .await,
        // Still failing the next day: a reminder.
        env.enqueue(&on(), &failed(c, "CleverRateLimited"), later(27))
            .await,
        // Recovery: sent.
        env.enqueue(&on(), &succeeded(c, "run-ok"), later(28)).await,
        // The first failure again after the recovery: news again.
        env.enqueue(&on(), &failed(c, "CleverUnavailable"), later(29))
            .await,
    ];
    let pattern: Vec<bool> = sent.iter().map(Option::is_some).collect();
    assert_eq!(pattern, [true, false, true, false, true, true, true]);
    let mails = env.deliver(5).await;
    let reasons: Vec<String> = mails
        .iter()
        .map(|m| {
            let text = m.text.as_deref().unwrap_or("");
            text.lines()
                .find_map(|l| l.strip_prefix("Reason:"))
                .map_or_else(|| m.subject.clone(), |r| r.trim().to_string())
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "CleverUnavailable",
            "CleverRateLimited",
            "CleverRateLimited",
            "[rostersync] Springfield USD: sync recovered",
            "CleverUnavailable",
        ]
    );
    let state = env.state().await.expect("state");
    assert_eq!(state.kind, NoticeKind::RunFailed);
    assert!(state.problem_open);
}

#[tokio::test]
async fn rolled_back_outcome_sends_nothing() {
    let Some(env) = Env::start().await else {
        return;
    };
    let mut tx = env.db.pool.begin().await.expect("begin");
    let id = rostersync::notify::enqueue(&mut tx, &on(), &failed(&env.connection, "X"), t0())
        .await
        .expect("enqueue");
    assert!(id.is_some());
    tx.rollback().await.expect("rollback");
    assert_eq!(env.outbox_count().await, 0);
    assert_eq!(env.state().await, None);
    // ...so the same failure, committed this time, is emailed (not suppressed as a repeat).
    assert!(
        env.enqueue(&on(), &failed(&env.connection, "X"), t0())
            .await
            .is_some()
    );
}

#[tokio::test]
async fn concurrent_identical_events_queue_one_email() {
    let Some(env) = Env::start().await else {
        return;
    };
    // The sync job and the controller report the same failure at once: the state row lock
    // serialises them, and the second sees the first's state.
    let mut tx1 = env.db.pool.begin().await.expect("begin");
    let first = rostersync::notify::enqueue(&mut tx1, &on(), &failed(&env.connection, "X"), t0())
        .await
        .expect("enqueue");
    let pool = env.db.pool.clone();
    let connection = env.connection.clone();
    let second = tokio::spawn(async move {
        let mut tx2 = pool.begin().await.expect("begin");
        let id = rostersync::notify::enqueue(&mut tx2, &on(), &failed(&connection, "X"), t0())
            .await
            .expect("enqueue");
        tx2.commit().await.expect("commit");
        id
    });
    tx1.commit().await.expect("commit");
    let second = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second enqueue finished")
        .expect("task");
    assert!(first.is_some());
    assert_eq!(second, None);
    assert_eq!(env.outbox_count().await, 1);
}

#[tokio::test]
async fn smtp_auth_with_username_and_password() {
    let Some(env) = Env::start_with(&["--auth", "mailer:s3cret-pw"]).await else {
        return;
    };
    env.enqueue(&on(), &failed(&env.connection, "X"), t0())
        .await
        .expect("queued");

    // A wrong password: not delivered, the error recorded without the password.
    let mut wrong = env.smtp();
    wrong.username = Some("mailer".into());
    wrong.password = Some("wrong-pw".into());
    let sender =
        rostersync::notify::Sender::new(env.db.pool.clone(), &wrong, fast()).expect("sender");
    let delivery = sender.send_one().await.expect("db").expect("a due email");
    let rostersync::notify::Delivery::Retry { error, .. } = delivery else {
        panic!("delivered with a wrong password: {delivery:?}");
    };
    assert!(!error.contains("wrong-pw"), "{error}");
    assert!(env.sink.messages().is_empty());

    let mut right = env.smtp();
    right.username = Some("mailer".into());
    right.password = Some("s3cret-pw".into());
    let _sender = spawn_sender(&env.db.pool, &right);
    let mails = env.sink.wait_for_messages(1, Duration::from_secs(30)).await;
    assert_eq!(mails[0].rcpt_tos, RECIPIENTS);
}

#[test]
fn events_carry_no_personal_data_fields() {
    // Whitelist of every field an event can carry: adding one (e.g. a child's name) fails here.
    let allowed = [
        "kind",
        "source",
        "connection",
        "district_id",
        "district_name",
        "run_id",
        "reason",
        "message",
        "counts",
        "schedule",
        "slot",
    ];
    for event in all_kinds("ns/conn") {
        let json = serde_json::to_value(&event).expect("serialise");
        let mut keys = vec![];
        collect_keys(&json, &mut keys, false);
        for key in keys {
            assert!(
                allowed.contains(&key.as_str()),
                "unexpected field {key:?} in {json}"
            );
        }
    }
}

fn collect_keys(v: &serde_json::Value, out: &mut Vec<String>, in_counts: bool) {
    if let Some(map) = v.as_object() {
        for (k, v) in map {
            if !in_counts {
                out.push(k.clone());
            }
            // Inside counts, keys are entity and action labels with numbers only.
            if k == "counts" {
                assert!(
                    v.as_object().is_some_and(|e| e.values().all(|a| a
                        .as_object()
                        .is_some_and(|a| a.values().all(serde_json::Value::is_u64)))),
                    "counts must hold numbers only: {v}"
                );
                continue;
            }
            collect_keys(v, out, in_counts);
        }
    }
}
