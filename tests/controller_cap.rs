//! The cluster's cap on concurrent sync Jobs (`--max-concurrent-syncs`) end to end, on the real
//! control plane: the controller (real binary), the pod runner running real `rostersync sync`
//! Jobs, an in-process Clever emulator and Postgres.
mod common;
#[path = "controller/env.rs"]
mod env;

use env::{Env, slot_ahead};
use kube::ResourceExt;
use rostersync::api::{RunResult, SyncSchedule, Trigger};
use serde_json::json;

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
    // Same slot, same due time: whichever reconciles first takes the one place, the other waits.
    env.create_schedule("nightly", "springfield", Some(slot), false)
        .await;
    env.create_schedule("other", "shelbyville", Some(slot), false)
        .await;
    env.connection_reason("springfield", "Verified").await;
    env.connection_reason("shelbyville", "Verified").await;

    // One of them is queued, visibly: status, Ready reason, Event, Sync Now reason.
    let schedules = env.schedules();
    let queued = common::wait_for("one of the two schedules queued", env::TIMEOUT, || {
        let schedules = schedules.clone();
        async move {
            let list = schedules.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|s| {
                s.status.as_ref().is_some_and(|st| st.queued_run.is_some())
                    && ready_reason(s).as_deref() == Some("Queued")
            })
        }
    })
    .await;
    let second = queued.name_any();
    let first = if second == "nightly" {
        "other"
    } else {
        "nightly"
    };
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
    let note = env.event(&second, "SyncQueued").await;
    assert!(note.contains("--max-concurrent-syncs"), "{note}");
    // Exactly one Job while the other waits: the first schedule's.
    let jobs = env.job_names().await;
    assert_eq!(
        jobs,
        vec![format!("{first}-{}", slot.as_second() / 60)],
        "one Job under cap 1, the first schedule's"
    );

    // The first finishes, then the queued one starts as the scheduled run of its slot.
    env.schedule_until(first, "the first run to succeed", |s| {
        env::last_result(s).is_some_and(|(_, r)| r == RunResult::Succeeded)
    })
    .await;
    let done = env
        .schedule_until(&second, "the queued run to succeed", |s| {
            env::last_result(s).is_some_and(|(_, r)| r == RunResult::Succeeded)
        })
        .await;
    let st = done.status.clone().expect("status");
    let run = st.last_run.clone().expect("last run");
    assert_eq!(run.trigger, Some(Trigger::Scheduled));
    assert_eq!(run.job, format!("{second}-{}", slot.as_second() / 60));
    assert!(st.queued_run.is_none());
    assert_eq!(st.missed_slots, 0);
    env.event(&second, "QueuedRunStarted").await;
    // The two runs never overlapped: the second started after the first finished.
    let first = env
        .schedules()
        .get(first)
        .await
        .expect("first schedule")
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
