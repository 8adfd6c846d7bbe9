//! Emails from `rostersync controller` end to end: the real controller binary with SMTP
//! configured, the pod runner running real sync Jobs, the Clever emulator, Postgres and a real SMTP
//! server (hack/smtp-sink.py). The controller is the one place that emails: run outcomes,
//! verification failures and missed slots, each exactly once.
mod common;
#[path = "controller/env.rs"]
mod env;

use std::time::Duration;

use common::{ReceivedMail, SmtpSink, subjects};
use env::{Env, TIMEOUT};
use rostersync::api::RunResult;
use serde_json::json;

const RECIPIENTS: [&str; 2] = ["admin@district.example", "it@district.example"];
const WRONG_DISTRICT: &str = "0123456789abcdef01234567";

fn email_settings(send: bool) -> serde_json::Value {
    json!({"sendEmails": send, "emailRecipients": RECIPIENTS})
}

/// An environment, an SMTP sink and a controller that sends through it, with connection
/// `springfield` (emails on or off by `send_emails`) and schedule `nightly` Verified.
async fn verified_with_mail(
    prefix: &str,
    students: u32,
    send_emails: bool,
) -> Option<(Env, SmtpSink, common::Proc)> {
    let env = Env::new(prefix, students).await?;
    let sink = common::start_smtp_sink().await;
    let controller = controller(&env, "controller", &sink, &[]);
    env.verified_schedule(email_settings(send_emails)).await;
    Some((env, sink, controller))
}

/// A controller that sends through `sink` (plain SMTP on 127.0.0.1).
fn controller(env: &Env, name: &str, sink: &SmtpSink, extra: &[&str]) -> common::Proc {
    let port = sink.port.to_string();
    let mut args = vec![
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-tls",
        "none",
        "--smtp-from",
        "rostersync@ops.example.org",
    ];
    args.extend_from_slice(extra);
    env.controller(name, &args)
}

/// Starts a Sync Now run with `token` once Sync Now is available, waits until it finished (a run
/// other than `previous`) and checks that it ended with `expected`; returns its id.
async fn run_once(env: &Env, token: &str, previous: &[&str], expected: RunResult) -> String {
    env.wait_sync_now_available("Sync Now available").await;
    let run = env.sync_now_finished(token, previous).await;
    assert_eq!(run.result, Some(expected), "{run:?}");
    run.run_id
}

/// Waits until the controller reported the run (its email decided in the same transaction).
async fn wait_reported(env: &Env, run_id: &str) {
    common::wait_for(&format!("run {run_id} reported"), TIMEOUT, || async {
        let reported: Option<bool> =
            sqlx::query_scalar("SELECT notified_at IS NOT NULL FROM sync_runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&env.db.pool)
                .await
                .ok()?;
        reported.filter(|r| *r)
    })
    .await;
}

fn connection_key(env: &Env) -> String {
    format!("{}/springfield", env.ns)
}

/// (queued, sent) emails of the connection.
async fn outbox(env: &Env) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(sent_at) FROM email_outbox WHERE connection = $1")
        .bind(connection_key(env))
        .fetch_one(&env.db.pool)
        .await
        .expect("outbox")
}

/// Waits until every queued email of the connection is sent: from then on the sink's count is
/// final (nothing else can be sent), so "exactly n" needs no sleeping.
async fn all_sent(env: &Env, n: i64) {
    common::wait_for(&format!("{n} email(s) sent"), TIMEOUT, || async {
        (outbox(env).await == (n, n)).then_some(())
    })
    .await;
}

async fn district_name(env: &Env) -> String {
    common::wait_for("the district's name in status", TIMEOUT, || async {
        let c = env.connections().get("springfield").await.ok()?;
        c.status?.district.map(|d| d.name).filter(|n| !n.is_empty())
    })
    .await
}

/// Checks an email's subject, addressing and bodies, and that its text mentions `mentions`;
/// returns the text.
fn assert_email<'a>(mail: &'a ReceivedMail, subject: &str, mentions: &str) -> &'a str {
    assert_eq!(mail.subject, subject);
    assert_addressed(mail);
    let text = mail.text.as_deref().expect("text part");
    assert!(text.contains(mentions), "{mentions:?} not in:\n{text}");
    text
}

fn assert_addressed(mail: &ReceivedMail) {
    assert_eq!(mail.rcpt_tos, RECIPIENTS, "recipients");
    assert_eq!(mail.mail_from, "rostersync@ops.example.org");
    assert!(mail.html.is_some(), "an HTML part");
    for body in [mail.text.as_deref(), mail.html.as_deref()]
        .into_iter()
        .flatten()
    {
        assert!(!body.contains('@'), "an email address in a body:\n{body}");
    }
}

#[tokio::test]
async fn failed_run_is_emailed_once_and_the_recovery_once() {
    let Some((env, sink, _controller)) = verified_with_mail("mail-run", 40, true).await else {
        return;
    };
    let district = district_name(&env).await;

    // 1. A failed run: one "sync failed" email.
    env.fail_sections(100_000);
    let first = run_once(&env, "t1", &[], RunResult::Failed).await;
    let mails = sink.wait_for_messages(1, TIMEOUT).await;
    let subject = format!("[rostersync] {district}: sync failed");
    let text = assert_email(&mails[0], &subject, &first);
    assert!(text.contains(&connection_key(&env)), "{text}");

    // 2. The same failure again, within the repeat interval: reported, but no second email.
    let second = run_once(&env, "t2", &[&first], RunResult::Failed).await;
    wait_reported(&env, &second).await;
    all_sent(&env, 1).await;
    assert_eq!(sink.messages().len(), 1, "{:?}", subjects(&sink.messages()));

    // 3. A success after the failure: one "recovered" email.
    env.emulator.clear_faults();
    let third = run_once(&env, "t3", &[&first, &second], RunResult::Succeeded).await;
    wait_reported(&env, &third).await;
    all_sent(&env, 2).await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "{:?}", subjects(&mails));
    let subject = format!("[rostersync] {district}: sync recovered");
    assert_email(&mails[1], &subject, &third);

    // No child's name in any email (the roster is loaded now).
    let names: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT first_name, last_name FROM children")
            .fetch_all(&env.db.pool)
            .await
            .expect("children");
    assert!(!names.is_empty());
    for mail in &mails {
        for (first, last) in &names {
            let (Some(first), Some(last)) = (first, last) else {
                continue;
            };
            let full = format!("{first} {last}");
            assert!(
                !mail.raw.contains(&full),
                "a child's name in {}",
                mail.subject
            );
        }
    }
    // Each run reported exactly once.
    let unreported = env
        .count("SELECT count(*) FROM sync_runs WHERE notified_at IS NULL")
        .await;
    assert_eq!(unreported, 0);
}

#[tokio::test]
async fn wrong_district_is_emailed_once_however_often_it_is_checked() {
    let Some(env) = Env::new("mail-district", 10).await else {
        return;
    };
    let sink = common::start_smtp_sink().await;
    // Re-verified every second: every failed check calls the notifier, which suppresses repeats.
    let _controller = controller(
        &env,
        "controller",
        &sink,
        &["--recheck-interval-seconds", "1"],
    );
    env.create_connection("springfield", WRONG_DISTRICT, email_settings(true))
        .await;
    env.connection_reason("springfield", "DistrictNotFound")
        .await;
    let mails = sink.wait_for_messages(1, TIMEOUT).await;
    let subject = format!("[rostersync] {WRONG_DISTRICT}: district not found in Clever");
    assert_email(&mails[0], &subject, WRONG_DISTRICT);

    // Three more checks later, still one email.
    let checked = |c: &rostersync::api::RosterConnection| {
        c.status.as_ref().and_then(|s| s.last_check_time.clone())
    };
    let seen = std::cell::RefCell::new(Vec::new());
    common::wait_for("three more verifications", TIMEOUT, || async {
        let c = env.connections().get("springfield").await.ok()?;
        let t = checked(&c)?;
        let mut seen = seen.borrow_mut();
        if !seen.contains(&t) {
            seen.push(t);
        }
        (seen.len() >= 4).then_some(())
    })
    .await;
    all_sent(&env, 1).await;
    assert_eq!(sink.messages().len(), 1, "{:?}", subjects(&sink.messages()));
}

#[tokio::test]
async fn nothing_is_emailed_when_send_emails_is_false() {
    let Some((env, sink, _controller)) = verified_with_mail("mail-off", 10, false).await else {
        return;
    };
    env.fail_sections(100_000);
    let run = run_once(&env, "t1", &[], RunResult::Failed).await;
    env.event("nightly", "SyncFailed").await;
    wait_reported(&env, &run).await;
    assert_eq!(outbox(&env).await, (0, 0), "an email was queued");
    let state: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notification_state WHERE connection = $1")
            .bind(connection_key(&env))
            .fetch_one(&env.db.pool)
            .await
            .expect("state");
    assert_eq!(state, 0);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn undelivered_email_survives_a_controller_restart_and_is_delivered_once() {
    let Some(env) = Env::new("mail-restart", 10).await else {
        return;
    };
    // The SMTP server is down when the event happens.
    let mut sink = common::start_smtp_sink().await;
    sink.stop().await;
    let mut first = controller(&env, "controller", &sink, &[]);
    env.create_connection("springfield", WRONG_DISTRICT, email_settings(true))
        .await;
    env.connection_reason("springfield", "DistrictNotFound")
        .await;
    // Queued, and a delivery attempted and failed.
    common::wait_for("a failed delivery attempt", TIMEOUT, || async {
        let (attempts, sent): (i32, Option<rostersync::store::time::Ts>) =
            sqlx::query_as("SELECT attempts, sent_at FROM email_outbox WHERE connection = $1")
                .bind(connection_key(&env))
                .fetch_optional(&env.db.pool)
                .await
                .ok()??;
        (attempts >= 1 && sent.is_none()).then_some(())
    })
    .await;
    let checked_before = env
        .connections()
        .get("springfield")
        .await
        .expect("connection")
        .status
        .and_then(|s| s.last_check_time)
        .expect("checked");

    // The controller dies with the email undelivered; SMTP comes back; a new controller starts.
    first.child.kill().await.expect("kill the controller");
    sink.start_again().await;
    let _second = controller(&env, "controller-2", &sink, &[]);
    let mails = sink.wait_for_messages(1, Duration::from_secs(180)).await;
    assert_eq!(
        mails[0].subject,
        format!("[rostersync] {WRONG_DISTRICT}: district not found in Clever")
    );
    assert_addressed(&mails[0]);
    // The new controller verified again (same problem: not queued again) and everything is sent.
    common::wait_for("the new controller's verification", TIMEOUT, || async {
        let c = env.connections().get("springfield").await.ok()?;
        let t = c.status?.last_check_time?;
        (t.0 > checked_before.0).then_some(())
    })
    .await;
    all_sent(&env, 1).await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{:?}", subjects(&mails));
}

#[tokio::test]
async fn a_missed_slot_is_emailed_once() {
    let Some(env) = Env::new("mail-missed", 10).await else {
        return;
    };
    let sink = common::start_smtp_sink().await;
    // A weekly slot two days ahead; the controller's clock (the hidden test flag, read by the
    // production path) is 3 h past it: later than startingDeadlineMinutes (120), so it is missed.
    let (slot, offset) = env::slot_ahead(-3 * 3600);
    env.create_connection("springfield", &env.district_id(), email_settings(true))
        .await;
    env.create_schedule("nightly", "springfield", Some(slot), false)
        .await;
    let _controller = controller(
        &env,
        "controller",
        &sink,
        &["--clock-offset-seconds", &offset],
    );
    env.event("nightly", "SyncMissed").await;
    let mails = sink.wait_for_messages(1, TIMEOUT).await;
    // The slot may be recorded before the first verification: then the district has no name yet
    // and the email names it by its Clever id.
    let district = district_name(&env).await;
    let subjects =
        [district, env.district_id()].map(|d| format!("[rostersync] {d}: scheduled sync missed"));
    assert!(subjects.contains(&mails[0].subject), "{}", mails[0].subject);
    assert_addressed(&mails[0]);
    let text = mails[0].text.as_deref().expect("text part");
    assert!(text.contains("nightly"), "{text}");
    // Recorded once: a later reconcile (a Sync Now request handled) records nothing again.
    env.sync_now_handled("later").await;
    let missed = env
        .schedules()
        .get("nightly")
        .await
        .expect("schedule")
        .status
        .expect("status")
        .missed_slots;
    assert_eq!(missed, 1);
    // The Sync Now run may email nothing (success emails are off); only the missed slot is queued.
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM email_outbox WHERE connection = $1")
            .bind(connection_key(&env))
            .fetch_all(&env.db.pool)
            .await
            .expect("outbox");
    assert_eq!(kinds, vec!["ScheduleMissed".to_string()]);
}
