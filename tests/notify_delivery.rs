//! Delivery of the email outbox against real Postgres and a real SMTP server: an SMTP outage, a
//! restarted sender and concurrent senders each deliver every email exactly once; permanent
//! rejections are given up, not retried forever. Counts are final once every row is marked sent
//! (a row is only ever sent while unsent), so no test sleeps.
mod common;
mod notify_support;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use notify_support::*;
use rostersync::notify::{Delivery, Sender, message_id};
use sqlx::Row;

/// (attempts, last_error, sent) of an outbox row.
async fn row(env: &Env, id: i64) -> (i32, Option<String>, bool) {
    let r = sqlx::query(
        "SELECT attempts, last_error, sent_at IS NOT NULL AS sent FROM email_outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&env.db.pool)
    .await
    .expect("outbox row");
    (r.get("attempts"), r.get("last_error"), r.get("sent"))
}

async fn created_at(env: &Env, id: i64) -> Timestamp {
    sqlx::query_scalar::<_, rostersync::store::time::Ts>(
        "SELECT created_at FROM email_outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&env.db.pool)
    .await
    .expect("created_at")
    .0
}

/// Waits until every given row has been attempted at least `n` times.
async fn wait_attempts(env: &Env, ids: &[i64], n: i32) {
    common::wait_for(
        &format!("{n} failed attempt(s) of each email"),
        Duration::from_secs(30),
        || async {
            for id in ids {
                let (attempts, error, sent) = row(env, *id).await;
                assert!(!sent, "sent while the SMTP server was down");
                if attempts < n || error.is_none() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

fn count_by_message_id(mails: &[common::ReceivedMail]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in mails {
        *counts.entry(m.message_id.clone()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn smtp_down_during_the_event_then_up_delivers_exactly_once() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    env.sink.stop().await;
    let _sender = spawn_sender(&env.db.pool, &env.smtp());
    let id = env
        .enqueue(&on(), &failed(&env.connection, "CleverUnavailable"), t0())
        .await
        .expect("queued");
    // The sender keeps trying, with backoff, while the server is down.
    wait_attempts(&env, &[id], 3).await;
    let (_, error, _) = row(&env, id).await;
    assert!(error.is_some_and(|e| !e.is_empty()));

    env.sink.start_again().await;
    let mails = env.deliver(1).await;
    assert_eq!(
        mails[0].subject,
        "[rostersync] Springfield USD: sync failed"
    );
    assert_eq!(mails[0].rcpt_tos, RECIPIENTS);
    // Every attempt carried the same Message-ID, derived from the outbox row.
    let smtp = env.smtp();
    assert_eq!(
        mails[0].message_id,
        message_id(id, created_at(&env, id).await, &smtp.from)
    );
    let (attempts, error, sent) = row(&env, id).await;
    assert!(
        sent && error.is_none() && attempts >= 4,
        "{attempts} {error:?}"
    );
}

#[tokio::test]
async fn sender_restarted_with_undelivered_mail_delivers_exactly_once() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    env.sink.stop().await;
    // Mail queued while no sender runs (the controller is down)...
    let mut ids = vec![];
    for reason in ["A", "B", "C"] {
        let connection = format!("{}-{reason}", env.connection);
        ids.push(
            env.enqueue(&on(), &failed(&connection, reason), t0())
                .await
                .expect("queued"),
        );
    }
    // ...a sender starts, fails against the down server, and is killed.
    let first = spawn_sender(&env.db.pool, &env.smtp());
    wait_attempts(&env, &ids, 1).await;
    first.kill().await;

    env.sink.start_again().await;
    let mails = env.deliver(3).await;
    let counts = count_by_message_id(&mails);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let mut reasons: Vec<String> = mails
        .iter()
        .filter_map(|m| {
            m.text
                .as_deref()?
                .lines()
                .find_map(|l| l.strip_prefix("Reason:"))
                .map(|r| r.trim().to_string())
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["A", "B", "C"]);
}

#[tokio::test]
async fn concurrent_senders_send_each_email_once() {
    let Some(env) = Env::start().await else {
        return;
    };
    let n = 24;
    for i in 0..n {
        let connection = format!("{}-{i}", env.connection);
        env.enqueue(&on(), &failed(&connection, "X"), t0())
            .await
            .expect("queued");
    }
    // Three senders, as three controller replicas would run, each with its own pool.
    let mut senders = vec![];
    for _ in 0..3 {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&env.db.url)
            .await
            .expect("pool");
        senders.push(spawn_sender(&pool, &env.smtp()));
    }
    env.sink.wait_for_messages(n, Duration::from_secs(60)).await;
    env.wait_all_sent().await;
    let mails = env.sink.messages();
    assert_eq!(mails.len(), n);
    let counts = count_by_message_id(&mails);
    assert_eq!(counts.len(), n, "{counts:?}");
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM email_outbox")
        .fetch_all(&env.db.pool)
        .await
        .expect("attempts");
    assert!(attempts.iter().all(|a| *a == 1), "{attempts:?}");
}

#[tokio::test]
async fn a_permanently_rejected_email_is_given_up_and_does_not_block_others() {
    let Some(env) = Env::start_with(&["--reject-rcpt", "nobody@"]).await else {
        return;
    };
    let bad = rostersync::notify::NotifySettings {
        recipients: vec!["nobody@district.example".into()],
        ..on()
    };
    let rejected = env
        .enqueue(&bad, &failed(&env.connection, "X"), t0())
        .await
        .expect("queued");
    let other = format!("{}-ok", env.connection);
    env.enqueue(&on(), &failed(&other, "Y"), t0())
        .await
        .expect("queued");

    let _sender = spawn_sender(&env.db.pool, &env.smtp());
    env.sink.wait_for_messages(1, Duration::from_secs(30)).await;
    common::wait_for(
        "the rejected email to be given up",
        Duration::from_secs(30),
        || async {
            let failed: bool =
                sqlx::query_scalar("SELECT failed_at IS NOT NULL FROM email_outbox WHERE id = $1")
                    .bind(rejected)
                    .fetch_one(&env.db.pool)
                    .await
                    .ok()?;
            failed.then_some(())
        },
    )
    .await;
    let (attempts, error, sent) = row(&env, rejected).await;
    assert!(!sent);
    assert_eq!(attempts, fast().max_permanent_failures);
    assert!(error.is_some_and(|e| e.contains("550")));
    env.wait_all_sent().await;
    let mails = env.sink.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, RECIPIENTS);
}

#[tokio::test]
async fn sender_stops_on_shutdown_and_send_one_reports_nothing_due() {
    let Some(env) = Env::start().await else {
        return;
    };
    let sender = Sender::new(env.db.pool.clone(), &env.smtp(), fast()).expect("sender");
    assert_eq!(sender.send_one().await.expect("db"), None);
    let id = env
        .enqueue(&on(), &failed(&env.connection, "X"), t0())
        .await
        .expect("queued");
    assert_eq!(
        sender.send_one().await.expect("db"),
        Some(Delivery::Sent { id })
    );
    assert_eq!(sender.send_one().await.expect("db"), None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sender.run(async {
        let _ = stopped.await;
    }));
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the sender stopped on shutdown")
        .expect("task");
    assert_eq!(env.sink.messages().len(), 1);
}

#[tokio::test]
async fn a_row_being_sent_is_skipped_by_other_senders_and_released_by_a_crash() {
    let Some(env) = Env::start().await else {
        return;
    };
    let id = env
        .enqueue(&on(), &failed(&env.connection, "X"), t0())
        .await
        .expect("queued");
    // Another sender is in the middle of sending this row: it holds the row lock.
    let mut busy = env.db.pool.begin().await.expect("begin");
    let claimed: i64 = sqlx::query_scalar(
        "SELECT id FROM email_outbox WHERE sent_at IS NULL FOR UPDATE SKIP LOCKED LIMIT 1",
    )
    .fetch_one(&mut *busy)
    .await
    .expect("claim");
    assert_eq!(claimed, id);
    let sender = Sender::new(env.db.pool.clone(), &env.smtp(), fast()).expect("sender");
    assert_eq!(
        sender.send_one().await.expect("db"),
        None,
        "sent a row locked by another sender"
    );
    // That sender dies before marking it sent: its transaction rolls back, the row is due again.
    busy.rollback().await.expect("rollback");
    assert_eq!(
        sender.send_one().await.expect("db"),
        Some(Delivery::Sent { id })
    );
    assert_eq!(env.sink.messages().len(), 1);
    assert_eq!(sender.send_one().await.expect("db"), None);
}

#[tokio::test]
async fn a_gated_sender_sends_nothing_while_its_gate_says_no() {
    let Some(env) = Env::start().await else {
        return;
    };
    let id = env
        .enqueue(&on(), &failed(&env.connection, "CleverUnavailable"), t0())
        .await
        .expect("queued");
    // The controller's gate: "this replica still holds the leader Lease".
    let acting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = acting.clone();
    let sender = Sender::new(env.db.pool.clone(), &env.smtp(), fast())
        .expect("sender")
        .with_gate(std::sync::Arc::new(move || {
            gate.load(std::sync::atomic::Ordering::SeqCst)
        }));
    assert_eq!(sender.send_one().await.expect("send_one"), None);
    assert_eq!(
        row(&env, id).await,
        (0, None, false),
        "untouched, still due"
    );
    assert!(env.sink.messages().is_empty());

    acting.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        sender.send_one().await.expect("send_one"),
        Some(Delivery::Sent { id })
    );
    assert_eq!(
        env.sink
            .wait_for_messages(1, Duration::from_secs(30))
            .await
            .len(),
        1
    );
}
