//! Fixtures of the notification tests (tests/notify.rs, tests/notify_delivery.rs): a fresh database
//! with the migrations, an SMTP sink, a sender, and events without personal data.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use rostersync::notify::{
    Counts, LastNotified, Notice, NotifySettings, Sender, SenderOptions, SmtpConfig, Source,
};

use crate::common::{self, ReceivedMail, SmtpSink, TestDb};

pub const RECIPIENTS: [&str; 2] = ["admin@district.example", "it@district.example"];
pub const DISTRICT_ID: &str = "5f0c0c0c0c0c0c0c0c0c0c0c";

pub struct Env {
    pub db: TestDb,
    pub sink: SmtpSink,
    /// A connection key unique to the test.
    pub connection: String,
}

pub async fn migrate(db: &TestDb) {
    sqlx::migrate!("./migrations")
        .run(&db.pool)
        .await
        .expect("cannot run the migrations");
}

impl Env {
    /// A fresh database with the migrations and an SMTP sink, or `None` (skipped) without Postgres.
    pub async fn start() -> Option<Env> {
        Env::start_with(&[]).await
    }

    /// [`Env::start`] with extra arguments of the SMTP sink (see `common::start_smtp_sink_with`).
    pub async fn start_with(sink_args: &[&str]) -> Option<Env> {
        let db = common::fresh_db().await?;
        migrate(&db).await;
        let sink = common::start_smtp_sink_with(sink_args).await;
        Some(Env::with(db, sink))
    }

    pub fn with(db: TestDb, sink: SmtpSink) -> Env {
        Env {
            db,
            sink,
            connection: format!("district-{}/springfield", common::unique_suffix()),
        }
    }

    /// The SMTP configuration of the sink (plain TCP, no auth).
    pub fn smtp(&self) -> SmtpConfig {
        smtp_config(self.sink.port)
    }

    /// Enqueues `event` in its own committed transaction.
    pub async fn enqueue(
        &self,
        settings: &NotifySettings,
        event: &Notice,
        now: Timestamp,
    ) -> Option<i64> {
        let mut tx = self.db.pool.begin().await.expect("begin");
        let id = rostersync::notify::enqueue(&mut tx, settings, event, now)
            .await
            .expect("enqueue");
        tx.commit().await.expect("commit");
        id
    }

    /// Runs a sender until the outbox is delivered, and returns the received messages, asserting
    /// that exactly `n` arrived. Once every row is marked sent no further message can be sent, so
    /// the count is final (no sleeping).
    pub async fn deliver(&self, n: usize) -> Vec<ReceivedMail> {
        let _sender = spawn_sender(&self.db.pool, &self.smtp());
        self.sink
            .wait_for_messages(n, Duration::from_secs(30))
            .await;
        self.wait_all_sent().await;
        let mails = self.sink.messages();
        assert_eq!(mails.len(), n, "emails received: {:#?}", subjects(&mails));
        mails
    }

    /// Waits until no outbox row is left undelivered.
    pub async fn wait_all_sent(&self) {
        common::wait_for(
            "every outbox row to be sent",
            Duration::from_secs(30),
            || async {
                let pending: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM email_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
                )
                .fetch_one(&self.db.pool)
                .await
                .ok()?;
                (pending == 0).then_some(())
            },
        )
        .await;
    }

    pub async fn outbox_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM email_outbox")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    pub async fn state(&self) -> Option<LastNotified> {
        let mut conn = self.db.pool.acquire().await.expect("acquire");
        rostersync::notify::notification_state(&mut conn, &self.connection)
            .await
            .expect("state")
    }
}

pub fn smtp_config(port: u16) -> SmtpConfig {
    let values: BTreeMap<String, String> = [
        ("host", "127.0.0.1".to_string()),
        ("port", port.to_string()),
        ("tls", "none".to_string()),
        (
            "from",
            "rostersync <rostersync@ops.example.org>".to_string(),
        ),
        ("timeoutSeconds", "5".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    SmtpConfig::from_map(&values).expect("valid SMTP configuration")
}

/// Short backoff for tests.
pub fn fast() -> SenderOptions {
    SenderOptions {
        poll_interval: Duration::from_millis(50),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        max_permanent_failures: 3,
    }
}

/// A running sender task, aborted on drop (like a killed controller).
pub struct SenderTask(pub Option<tokio::task::JoinHandle<()>>);

impl SenderTask {
    /// Aborts the task and waits until it is gone (its claimed row, if any, is released).
    pub async fn kill(mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
            let _ = handle.await;
        }
    }
}

impl Drop for SenderTask {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

pub fn spawn_sender(pool: &sqlx::PgPool, smtp: &SmtpConfig) -> SenderTask {
    let sender = Sender::new(pool.clone(), smtp, fast()).expect("sender");
    SenderTask(Some(tokio::spawn(sender.run(std::future::pending()))))
}

pub use crate::common::subjects;

pub fn on() -> NotifySettings {
    NotifySettings {
        send_emails: true,
        send_success_emails: false,
        recipients: RECIPIENTS.iter().map(|r| r.to_string()).collect(),
        repeat_interval: rostersync::notify::DEFAULT_REPEAT_INTERVAL,
    }
}

pub fn t0() -> Timestamp {
    "2025-03-01T02:00:00Z".parse::<Timestamp>().expect("valid")
}

pub fn later(hours: i64) -> Timestamp {
    t0() + jiff::SignedDuration::from_hours(hours)
}

pub fn source(connection: &str) -> Source {
    Source {
        connection: connection.to_string(),
        district_id: DISTRICT_ID.to_string(),
        district_name: Some("Springfield USD".to_string()),
    }
}

pub fn failed(connection: &str, reason: &str) -> Notice {
    Notice::RunFailed {
        source: source(connection),
        run_id: format!("run-{reason}"),
        reason: reason.to_string(),
        message: format!("Clever answered HTTP 503 three times ({reason})"),
        counts: Counts::from_json(&serde_json::json!({"schools": {"unchanged": 2}})),
    }
}

pub fn succeeded(connection: &str, run_id: &str) -> Notice {
    Notice::RunSucceeded {
        source: source(connection),
        run_id: run_id.to_string(),
        counts: Counts::from_json(&serde_json::json!({
            "children": {"created": 3, "updated": 1, "unchanged": 0}
        })),
    }
}

/// One event of each kind.
pub fn all_kinds(connection: &str) -> Vec<Notice> {
    let s = source(connection);
    vec![
        failed(connection, "CleverUnavailable"),
        Notice::RunHeld {
            source: s.clone(),
            run_id: "run-held".into(),
            schedule: Some("nightly".into()),
            reason: "RemovalGuard".into(),
            message: "children: 40 of 100 (40%) > 10%".into(),
            counts: Counts::from_json(&serde_json::json!({"children": {"deactivated": 40}})),
        },
        Notice::Recovered {
            source: s.clone(),
            run_id: "run-rec".into(),
            counts: Counts::default(),
        },
        Notice::CredentialsInvalid {
            source: s.clone(),
            run_id: None,
            message: "401".into(),
        },
        Notice::DistrictNotFound {
            source: s.clone(),
            run_id: Some("run-dnf".into()),
            message: "404".into(),
        },
        Notice::ScheduleMissed {
            source: s,
            schedule: "nightly".into(),
            slot: t0(),
            reason: "StartingDeadlineExceeded".into(),
            message: "m".into(),
        },
        succeeded(connection, "run-ok"),
    ]
}

/// No email address or Clever-style birth date (M/D/YYYY) in either body.
pub fn assert_no_personal_data(mail: &ReceivedMail) {
    for body in [mail.text.as_deref(), mail.html.as_deref()]
        .into_iter()
        .flatten()
    {
        assert!(!body.contains('@'), "an email address in a body:\n{body}");
        for word in body.split(|c: char| c.is_whitespace() || c == '<' || c == '>') {
            let parts: Vec<&str> = word.split('/').collect();
            let date_like = parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            assert!(!date_like, "a date-like value {word:?} in a body:\n{body}");
        }
    }
}
