use super::*;
use crate::notify::notice::{Counts, Source};

fn source() -> Source {
    Source {
        connection: "district-a/springfield".into(),
        district_id: "5f0c0c0c0c0c0c0c0c0c0c0c".into(),
        district_name: Some("Springfield USD".into()),
    }
}

fn event(kind: NoticeKind, variant: &str) -> Notice {
    let source = source();
    let run_id = format!("run-{variant}");
    match kind {
        NoticeKind::RunFailed => Notice::RunFailed {
            source,
            run_id,
            reason: variant.into(),
            message: "m".into(),
            counts: Counts::default(),
        },
        NoticeKind::RunHeld => Notice::RunHeld {
            source,
            run_id,
            schedule: Some("nightly".into()),
            reason: variant.into(),
            message: "m".into(),
            counts: Counts::default(),
        },
        NoticeKind::Recovered => Notice::Recovered {
            source,
            run_id,
            counts: Counts::default(),
        },
        NoticeKind::CredentialsInvalid => Notice::CredentialsInvalid {
            source,
            run_id: None,
            message: variant.into(),
        },
        NoticeKind::DistrictNotFound => Notice::DistrictNotFound {
            source: Source {
                district_id: variant.into(),
                ..source
            },
            run_id: None,
            message: "m".into(),
        },
        NoticeKind::ScheduleMissed => Notice::ScheduleMissed {
            source,
            schedule: "nightly".into(),
            slot: t0(),
            reason: variant.into(),
            message: "m".into(),
        },
        NoticeKind::RunSucceeded => Notice::RunSucceeded {
            source,
            run_id,
            counts: Counts::default(),
        },
        NoticeKind::ConnectionMisconfigured => Notice::ConnectionMisconfigured {
            source,
            reason: variant.into(),
            message: "m".into(),
        },
    }
}

fn t0() -> Timestamp {
    "2025-03-01T02:00:00Z".parse::<Timestamp>().expect("valid")
}

fn on(success: bool) -> NotifySettings {
    NotifySettings {
        send_emails: true,
        send_success_emails: success,
        recipients: vec!["admin@district.example".into()],
        repeat_interval: DEFAULT_REPEAT_INTERVAL,
    }
}

fn last_for(e: &Notice, at: Timestamp) -> LastNotified {
    next_state(e, None, at)
}

const PROBLEMS: [NoticeKind; 5] = [
    NoticeKind::RunFailed,
    NoticeKind::RunHeld,
    NoticeKind::CredentialsInvalid,
    NoticeKind::DistrictNotFound,
    NoticeKind::ScheduleMissed,
];

#[test]
fn nothing_when_emails_are_off_or_without_recipients() {
    for kind in NoticeKind::ALL {
        for success in [false, true] {
            let off = NotifySettings {
                send_emails: false,
                ..on(success)
            };
            assert_eq!(
                decide(&off, &event(kind, "A"), None, t0()),
                EmailDecision::Skip(SkipReason::EmailsDisabled),
                "{kind}"
            );
            let nobody = NotifySettings {
                recipients: vec![" ".into()],
                ..on(success)
            };
            assert_eq!(
                decide(&nobody, &event(kind, "A"), None, t0()),
                EmailDecision::Skip(SkipReason::NoRecipients),
                "{kind}"
            );
        }
    }
}

#[test]
fn the_first_event_of_every_problem_kind_is_sent() {
    for kind in PROBLEMS {
        let e = event(kind, "A");
        assert_eq!(
            decide(&on(false), &e, None, t0()),
            EmailDecision::Send(e.clone())
        );
    }
}

#[test]
fn a_repeat_within_the_interval_is_suppressed_and_resent_after_it() {
    for kind in PROBLEMS {
        let e = event(kind, "A");
        let last = last_for(&e, t0());
        for later in [
            SignedDuration::ZERO,
            SignedDuration::from_hours(1),
            SignedDuration::from_hours(23) + SignedDuration::from_mins(59),
        ] {
            assert_eq!(
                decide(&on(false), &e, Some(&last), t0() + later),
                EmailDecision::Skip(SkipReason::Repeat),
                "{kind} after {later}"
            );
        }
        // A clock behind the one that recorded the state still sees a repeat.
        assert_eq!(
            decide(
                &on(false),
                &e,
                Some(&last),
                t0() - SignedDuration::from_mins(5)
            ),
            EmailDecision::Skip(SkipReason::Repeat)
        );
        for later in [
            SignedDuration::from_hours(24),
            SignedDuration::from_hours(72),
        ] {
            assert_eq!(
                decide(&on(false), &e, Some(&last), t0() + later),
                EmailDecision::Send(e.clone()),
                "{kind} after {later}"
            );
        }
    }
}

#[test]
fn a_different_problem_is_sent_at_once() {
    for first in PROBLEMS {
        for second in PROBLEMS {
            if first == second && first == NoticeKind::CredentialsInvalid {
                continue; // one state, whatever the message (tested below)
            }
            let a = event(first, "A");
            let b = event(second, "B");
            let last = last_for(&a, t0());
            assert_eq!(
                decide(
                    &on(false),
                    &b,
                    Some(&last),
                    t0() + SignedDuration::from_mins(1)
                ),
                EmailDecision::Send(b.clone()),
                "{first} then {second}"
            );
        }
    }
}

#[test]
fn the_repeat_interval_is_configurable() {
    let e = event(NoticeKind::RunFailed, "A");
    let last = last_for(&e, t0());
    let hourly = NotifySettings {
        repeat_interval: SignedDuration::from_hours(1),
        ..on(false)
    };
    assert_eq!(
        decide(
            &hourly,
            &e,
            Some(&last),
            t0() + SignedDuration::from_mins(59)
        ),
        EmailDecision::Skip(SkipReason::Repeat)
    );
    assert_eq!(
        decide(
            &hourly,
            &e,
            Some(&last),
            t0() + SignedDuration::from_mins(61)
        ),
        EmailDecision::Send(e.clone())
    );
    let always = NotifySettings {
        repeat_interval: SignedDuration::ZERO,
        ..on(false)
    };
    assert_eq!(
        decide(&always, &e, Some(&last), t0()),
        EmailDecision::Send(e)
    );
}

#[test]
fn a_success_after_an_emailed_problem_is_a_recovery_whatever_the_success_setting() {
    for problem in [
        NoticeKind::RunFailed,
        NoticeKind::RunHeld,
        NoticeKind::CredentialsInvalid,
        NoticeKind::DistrictNotFound,
    ] {
        let last = last_for(&event(problem, "A"), t0());
        assert!(last.problem_open);
        for success_kind in [NoticeKind::RunSucceeded, NoticeKind::Recovered] {
            for success_emails in [false, true] {
                let decision = decide(
                    &on(success_emails),
                    &event(success_kind, "ok"),
                    Some(&last),
                    t0() + SignedDuration::from_mins(5),
                );
                let EmailDecision::Send(sent) = decision else {
                    panic!("{problem} then {success_kind}: {decision:?}");
                };
                assert_eq!(sent.kind(), NoticeKind::Recovered);
                assert_eq!(sent.run_id(), Some("run-ok"));
            }
        }
    }
}

#[test]
fn successes_without_an_open_problem_follow_send_success_emails() {
    let recovered_before = last_for(&event(NoticeKind::Recovered, "r"), t0());
    let missed_before = last_for(&event(NoticeKind::ScheduleMissed, "m"), t0());
    for last in [None, Some(&recovered_before), Some(&missed_before)] {
        for kind in [NoticeKind::RunSucceeded, NoticeKind::Recovered] {
            let e = event(kind, "ok");
            assert_eq!(
                decide(&on(false), &e, last, t0() + SignedDuration::from_mins(1)),
                EmailDecision::Skip(SkipReason::SuccessEmailsDisabled)
            );
            let EmailDecision::Send(sent) =
                decide(&on(true), &e, last, t0() + SignedDuration::from_mins(1))
            else {
                panic!("success emails on: {kind} not sent");
            };
            assert_eq!(sent.kind(), NoticeKind::RunSucceeded);
        }
    }
    // Every success is its own email when enabled (never a "repeat").
    let first = event(NoticeKind::RunSucceeded, "1");
    let after_first = last_for(&first, t0());
    let second = event(NoticeKind::RunSucceeded, "2");
    assert_eq!(
        decide(&on(true), &second, Some(&after_first), t0()),
        EmailDecision::Send(second.clone())
    );
}

#[test]
fn state_transitions_keep_track_of_open_problems() {
    let failed = last_for(&event(NoticeKind::RunFailed, "A"), t0());
    assert!(failed.problem_open);
    // A missed schedule while a failure is open keeps it open: the next success is a recovery.
    let missed = next_state(&event(NoticeKind::ScheduleMissed, "m"), Some(&failed), t0());
    assert!(missed.problem_open);
    assert_eq!(missed.kind, NoticeKind::ScheduleMissed);
    let EmailDecision::Send(sent) = decide(
        &on(false),
        &event(NoticeKind::RunSucceeded, "ok"),
        Some(&missed),
        t0(),
    ) else {
        panic!("no recovery");
    };
    assert_eq!(sent.kind(), NoticeKind::Recovered);
    let recovered = next_state(&sent, Some(&missed), t0());
    assert!(!recovered.problem_open);
    // After the recovery the same failure is news again, even within the interval.
    let again = event(NoticeKind::RunFailed, "A");
    assert_eq!(
        decide(
            &on(false),
            &again,
            Some(&recovered),
            t0() + SignedDuration::from_mins(1)
        ),
        EmailDecision::Send(again.clone())
    );
}

#[test]
fn invalid_credentials_are_one_state_whatever_the_message() {
    let a = event(NoticeKind::CredentialsInvalid, "401 from /me");
    let b = event(NoticeKind::CredentialsInvalid, "token revoked");
    let last = last_for(&a, t0());
    assert_eq!(
        decide(
            &on(false),
            &b,
            Some(&last),
            t0() + SignedDuration::from_hours(2)
        ),
        EmailDecision::Skip(SkipReason::Repeat)
    );
}

#[test]
fn fingerprints_tell_problems_apart() {
    let all: Vec<String> = PROBLEMS
        .iter()
        .flat_map(|k| {
            let mut v = vec![event(*k, "A").fingerprint()];
            if *k != NoticeKind::CredentialsInvalid {
                v.push(event(*k, "B").fingerprint());
            }
            v
        })
        .collect();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "{all:?}");
}
