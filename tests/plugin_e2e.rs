//! `kubectl roster sync-now --wait` against the real controller: the pod runner runs the real
//! `rostersync sync` Job against the Clever emulator and Postgres; the plugin prints each step.
mod common;
#[path = "controller/env.rs"]
mod env;

use env::Env;

#[tokio::test]
async fn sync_now_wait_streams_each_step_of_a_real_run_in_order() {
    let Some((env, _controller)) = Env::ready("plugin-e2e", 40).await else {
        return;
    };
    // Slow Clever down a little so that the pod is seen running, not only finished.
    env.slow_clever(None, 200);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
        .args([
            "sync-now",
            "nightly",
            "-n",
            &env.ns,
            "--wait",
            "--timeout",
            "3m",
        ])
        .env("DATABASE_URL", &env.db.url)
        .output()
        .await
        .expect("run kubectl-roster");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let steps = [
        "Sync Now requested for syncschedule/nightly",
        "token handled: the controller accepted the request",
        "Job created: ",
        "pod running: ",
        "fetching: ",
        "result: Sync Succeeded: run ",
        "children: ",
    ];
    println!("{stdout}");
    let mut at = 0;
    for step in steps {
        let found = stdout[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing (in order) in:\n{stdout}"));
        at += found + step.len();
    }
    for line in stdout.lines() {
        assert!(
            line.starts_with('['),
            "a step line without its elapsed time: {line:?}"
        );
    }

    // --quiet: the outcome only; -o json: the result document with the run's record.
    let doc: serde_json::Value = {
        // Sync Now is available again only after the next scheduled run: this one is rejected.
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
            .args([
                "sync-now",
                "nightly",
                "-n",
                &env.ns,
                "--wait",
                "--timeout",
                "2m",
                "-o",
                "json",
            ])
            .env("DATABASE_URL", &env.db.url)
            .output()
            .await
            .expect("run kubectl-roster");
        assert_eq!(
            out.status.code(),
            Some(5),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    assert_eq!(doc["kind"], "SyncNowResult");
    assert_eq!(doc["outcome"], "Rejected");
    assert_eq!(doc["reason"], "UsedSinceLastScheduledRun");
    assert_eq!(doc["exitCode"], 5);

    // The run reads the same in history -o json (from sync_runs).
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-roster"))
        .args(["history", "nightly", "-n", &env.ns, "-o", "json"])
        .env("DATABASE_URL", &env.db.url)
        .output()
        .await
        .expect("run kubectl-roster");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["items"][0]["source"], "sync_runs");
    assert_eq!(doc["items"][0]["result"], "Succeeded");
    assert!(
        doc["items"][0]["counts"]["children"]["created"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{doc:#}"
    );
}
