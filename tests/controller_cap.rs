//! The cluster's cap on concurrent sync Jobs (`--max-concurrent-syncs`) end to end, on the real
//! control plane: the controller (real binary), the pod runner running real `rostersync sync`
//! Jobs, an in-process Clever emulator and Postgres.
mod common;
#[path = "controller/env.rs"]
mod env;

use env::Env;
use rostersync::api::{RunResult, SyncSchedule, Trigger};
use serde_json::json;

/// The controller's clock is shifted (the hidden test flag) so that a weekly slot two days away
/// is `lead` seconds away.
fn slot_ahead(lead: i64) -> (jiff::Timestamp, String) {
    let real = jiff::Timestamp::now();
    let slot_s = (real.as_second() + 2 * 86_400) / 60 * 60;
    let slot = jiff::Timestamp::from_second(slot_s).expect("slot");
    let offset = slot_s - real.as_second() - lead;
    (slot, offset.to_string())
}

fn ready_reason(s: &SyncSchedule) -> Option<String> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
}

#[tokio::test]
async fn cap_one_two_districts_due_at_once_one_job_the_other_queued_then_started() {
    let Some(env) = Env::new("cap", 40).await else {
        return;
    };
    // Slow Clever down so that the first run is still running when the second is looked at.
    env.slow_clever(None, 400);
    let (slot, offset) = slot_ahead(25);
    let _controller = env.controller(
        "controller",
        &[
            "--clock-offset-seconds",
            &offset,
            "--max-concurrent-syncs",
            "1",
        ],
    );
    env.create_connection("springfield", &env.district_id(), json!({}))
        .await;
    env.create_connection("shelbyville", &env.district_id(), json!({}))
        .await;
    // Same slot; same due time, so the order is by namespace/name: "nightly" before "other".
    env.create_schedule("nightly", "springfield", Some(slot), false)
        .await;
    env.create_schedule("other", "shelbyville", Some(slot), false)
        .await;
    env.connection_reason("springfield", "Verified").await;
    env.connection_reason("shelbyville", "Verified").await;

    // The second is queued, visibly: status, Ready reason, Event, Sync Now reason.
    let queued = env
        .schedule_until("other", "the second schedule queued", |s| {
            s.status.as_ref().is_some_and(|st| st.queued_run.is_some())
                && ready_reason(s).as_deref() == Some("Queued")
        })
        .await;
    let st = queued.status.clone().expect("status");
    let q = st.queued_run.clone().expect("queued run");
    assert_eq!((q.slot.0, q.trigger), (slot, Trigger::Scheduled));
    assert_eq!(
        st.sync_now.as_ref().map(|s| s.reason.as_str()),
        Some("RunQueued")
    );
    // Handled (not missed) and counted as this slot's run.
    assert_eq!(st.last_schedule_time.map(|t| t.0), Some(slot));
    assert_eq!(st.missed_slots, 0);
    let note = env.event("other", "SyncQueued").await;
    assert!(note.contains("--max-concurrent-syncs"), "{note}");
    // Exactly one Job while the other waits: the first schedule's.
    let jobs = env.job_names().await;
    assert_eq!(
        jobs,
        vec![format!("nightly-{}", slot.as_second() / 60)],
        "one Job under cap 1"
    );

    // The first finishes, then the queued one starts as the scheduled run of its slot.
    env.schedule_until("nightly", "the first run to succeed", |s| {
        env::last_result(s).is_some_and(|(_, r)| r == RunResult::Succeeded)
    })
    .await;
    let done = env
        .schedule_until("other", "the queued run to succeed", |s| {
            env::last_result(s).is_some_and(|(_, r)| r == RunResult::Succeeded)
        })
        .await;
    let st = done.status.clone().expect("status");
    let run = st.last_run.clone().expect("last run");
    assert_eq!(run.trigger, Some(Trigger::Scheduled));
    assert_eq!(run.job, format!("other-{}", slot.as_second() / 60));
    assert!(st.queued_run.is_none());
    assert_eq!(st.missed_slots, 0);
    env.event("other", "QueuedRunStarted").await;
    // The two runs never overlapped: the second started after the first finished.
    let first = env
        .schedules()
        .get("nightly")
        .await
        .expect("nightly")
        .status
        .and_then(|s| s.last_run)
        .expect("first run");
    let first_end = first.finished_at.expect("finished").0;
    let second_start = run.started_at.expect("started").0;
    assert!(
        second_start >= first_end,
        "second started {second_start}, first finished {first_end}"
    );
    let runs = env
        .count("SELECT count(*) FROM sync_runs WHERE trigger = 'Scheduled'")
        .await;
    assert_eq!(runs, 2);
}
