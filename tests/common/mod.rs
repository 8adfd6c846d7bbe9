//! Test support shared by the integration tests: access to the real servers that `hack/test.sh`
//! starts (Postgres, kube-apiserver + controller manager), fresh databases and namespaces, and
//! waiting for conditions with a timeout (never sleeping as synchronisation).
//!
//! A bare `cargo test` has no servers: tests that need one print a skip message and return. Under
//! `hack/test.sh` (`ROSTERSYNC_REQUIRE_SERVERS=1`) a missing server is a failure, never a skip.
#![allow(dead_code)]

pub mod faultproxy;

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Whether the suite runs under `hack/test.sh`, where every server must be present.
pub fn servers_required() -> bool {
    std::env::var("ROSTERSYNC_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

fn skip(what: &str) {
    assert!(
        !servers_required(),
        "{what} is required under hack/test.sh but is not available"
    );
    eprintln!("skipped: this test needs {what}; run hack/test.sh to run it");
}

/// A fresh, empty database on the test Postgres, or `None` (test skipped) without one.
pub async fn fresh_db() -> Option<TestDb> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        skip("Postgres (DATABASE_URL)");
        return None;
    };
    let admin: PgConnectOptions = url
        .parse()
        .expect("DATABASE_URL is not a valid Postgres URL");
    let name = format!("rs_test_{}", unique_suffix());
    let mut conn = admin
        .connect()
        .await
        .expect("cannot connect to DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("cannot create a test database");
    conn.close().await.ok();
    let options = admin.clone().database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options.clone())
        .await
        .expect("cannot connect to the test database");
    let url = format!("{}", options.to_url_lossy());
    Some(TestDb { pool, name, url })
}

/// A test database: its pool, name and URL (for subprocesses).
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub url: String,
}

/// A kube client for the test control plane, or `None` (test skipped) without one.
pub async fn kube_client() -> Option<kube::Client> {
    if std::env::var("KUBECONFIG").is_err() {
        skip("the test control plane (KUBECONFIG)");
        return None;
    }
    Some(
        kube::Client::try_default()
            .await
            .expect("cannot build a client from KUBECONFIG"),
    )
}

/// Creates a uniquely named namespace for one test and returns its name.
pub async fn fresh_namespace(client: &kube::Client, prefix: &str) -> String {
    use k8s_openapi::api::core::v1::Namespace;
    let name = format!("{prefix}-{}", unique_suffix());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .expect("namespace manifest");
    kube::Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .expect("cannot create a test namespace");
    name
}

/// A short random suffix for names (lowercase, DNS-safe).
pub fn unique_suffix() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Installs (server-side applies) rostersync's CRDs and waits until they are Established. Safe to
/// call from many tests at once.
pub async fn install_crds(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    for crd in rostersync::api::crds() {
        let name = crd.metadata.name.clone().expect("crd name");
        apply(&api, &name, &crd).await;
        wait_for(
            &format!("CRD {name} to be Established"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let established = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    established.then_some(())
                }
            },
        )
        .await;
    }
    // Discovery can lag a moment behind Established: wait until the kinds are served.
    wait_for(
        "the rostersync kinds to be served",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let api: kube::Api<rostersync::api::SyncSchedule> = kube::Api::all(client);
                api.list(&Default::default()).await.ok().map(|_| ())
            }
        },
    )
    .await;
}

/// The path of a file in the repository.
pub fn repo_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `program` (from PATH) to completion and returns (success, stdout, stderr).
pub fn run_tool(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `program version_arg` runs; skips (or fails under hack/test.sh) when it does not.
#[allow(dead_code)]
pub fn tool_available(program: &str, version_arg: &str, built_by: &str) -> bool {
    let ok = std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !servers_required(),
            "{program} is required under hack/test.sh but is not on PATH ({built_by})"
        );
        eprintln!("skipped: this test needs {program} on PATH ({built_by}); run hack/test.sh");
    }
    ok
}

/// Argo CD's verdict on `object` from the shipped health check (`deploy/argocd/health.lua`),
/// evaluated by `luahealth` (gopher-lua, Argo CD's Lua engine; `hack/argocd/build.sh`, put on PATH by
/// hack/test.sh): `(status, message)`. `None` (skip) when luahealth is missing outside hack/test.sh.
#[allow(dead_code)]
pub fn argocd_health(object: &serde_json::Value) -> Option<(String, String)> {
    use std::io::Write as _;
    let script = repo_path("deploy/argocd/health.lua");
    let child = std::process::Command::new("luahealth")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            assert!(
                !servers_required(),
                "luahealth is required under hack/test.sh but cannot run ({err}): hack/argocd/build.sh builds it"
            );
            eprintln!(
                "skipped the Argo CD health check: luahealth is not on PATH (hack/argocd/build.sh)"
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(object.to_string().as_bytes())
        .expect("write the object");
    let out = child.wait_with_output().expect("luahealth");
    assert!(
        out.status.success(),
        "luahealth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("luahealth JSON");
    Some((
        v["status"].as_str().unwrap_or_default().to_string(),
        v["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Runs `kubectl` (from PATH, as `hack/k8s/up.sh`'s env sets it) and returns (status, stdout, stderr).
pub fn kubectl(args: &[&str]) -> (bool, String, String) {
    run_tool("kubectl", args)
}

/// Server-side applies `object` named `name` as the tests' field manager (forcing conflicts).
pub async fn apply<K, T>(api: &kube::Api<K>, name: &str, object: &T)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    T: serde::Serialize + std::fmt::Debug,
{
    use kube::api::{Patch, PatchParams};
    api.patch(
        name,
        &PatchParams::apply("rostersync-tests").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot apply {name}: {e}"));
}

/// A `rostersync` subprocess (the real binary) that is killed when dropped; its stderr goes to a
/// log file that is printed when the test fails, to show what the process saw.
pub struct Proc {
    pub child: tokio::process::Child,
    pub log: std::path::PathBuf,
    name: String,
}

impl Proc {
    /// Starts `rostersync ARGS` with `env` added to the test's environment.
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::spawn(name, args, env, false)
    }

    /// Starts `rostersync ARGS` with exactly `env` and nothing inherited from the test, as a
    /// container gets only the environment its manifest gives it.
    pub fn start_env_only(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::spawn(name, args, env, true)
    }

    fn spawn(name: &str, args: &[&str], env: &[(&str, &str)], clear: bool) -> Proc {
        let log = std::env::temp_dir().join(format!("rostersync-{name}-{}.log", unique_suffix()));
        let file = std::fs::File::create(&log).expect("cannot create a log file");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
        if clear {
            cmd.env_clear();
        }
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("cannot start rostersync");
        Proc {
            child,
            log,
            name: name.to_string(),
        }
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after 15 s).
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The end of the log (where a failure shows) and whether the process was still
            // running: CI keeps only a part of a long output.
            const TAIL: usize = 80;
            let state = match self.child.try_wait() {
                Ok(Some(status)) => format!("exited: {status}"),
                Ok(None) => "running".to_string(),
                Err(err) => format!("state unknown: {err}"),
            };
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(TAIL);
            eprintln!(
                "----- log of {} ({}; {state}; last {} of {} lines) -----",
                self.name,
                self.log.display(),
                lines.len() - skip,
                lines.len()
            );
            for line in &lines[skip..] {
                eprintln!("{line}");
            }
        }
    }
}

/// Starts `rostersync pod-runner` for one namespace, with `rostersync` mapped to the test binary.
pub fn start_pod_runner(namespace: &str) -> Proc {
    let binary = format!("rostersync={}", env!("CARGO_BIN_EXE_rostersync"));
    let logs = std::env::temp_dir().join(format!("rostersync-pods-{namespace}"));
    let logs = logs.to_string_lossy().into_owned();
    Proc::start(
        &format!("pod-runner-{namespace}"),
        &[
            "pod-runner",
            "--namespace",
            namespace,
            "--binary",
            &binary,
            "--log-dir",
            &logs,
            "--grace-seconds",
            "3",
        ],
        &[],
    )
}

/// A real SMTP server for one test: `hack/smtp-sink.py` (aiosmtpd) on 127.0.0.1, writing each
/// message it accepts as a JSON line. `stop` and `start_again` (same port) simulate an outage.
pub struct SmtpSink {
    pub port: u16,
    out: std::path::PathBuf,
    /// Extra arguments of hack/smtp-sink.py (`--auth`, `--reject-rcpt`).
    args: Vec<String>,
    child: Option<tokio::process::Child>,
    _dir: tempfile::TempDir,
}

/// One message the sink accepted, with its text/plain and text/html parts decoded.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub raw: String,
}

/// The subjects of `mails`, in order (for assertion messages).
pub fn subjects(mails: &[ReceivedMail]) -> Vec<&str> {
    mails.iter().map(|m| m.subject.as_str()).collect()
}

/// Starts an SMTP sink on a free port (installing aiosmtpd with pip first if it is missing).
pub async fn start_smtp_sink() -> SmtpSink {
    start_smtp_sink_with(&[]).await
}

/// Starts an SMTP sink with extra arguments of hack/smtp-sink.py: `--auth USER:PASSWORD` (AUTH
/// required, over plain TCP), `--reject-rcpt TEXT` (550 to matching recipients).
pub async fn start_smtp_sink_with(args: &[&str]) -> SmtpSink {
    ensure_aiosmtpd();
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let out = dir.path().join("mail.jsonl");
    std::fs::write(&out, "").expect("cannot create the sink's output file");
    let mut sink = SmtpSink {
        port: 0,
        out,
        args: args.iter().map(|a| a.to_string()).collect(),
        child: None,
        _dir: dir,
    };
    sink.start_again().await;
    sink
}

fn ensure_aiosmtpd() {
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return;
    }
    let present = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .expect("python3 is required for the SMTP tests (hack/setup.sh installs it)");
    if !present.success() {
        eprintln!("installing aiosmtpd for the SMTP sink (pip install aiosmtpd)");
        let ok = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
            .status()
            .expect("cannot run pip");
        assert!(
            ok.success(),
            "pip install aiosmtpd failed; install it by hand"
        );
    }
    *installed = true;
}

impl SmtpSink {
    /// Starts the server (again), on the same port once it has one.
    pub async fn start_again(&mut self) {
        use tokio::io::AsyncBufReadExt;
        assert!(self.child.is_none(), "the SMTP sink is already running");
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg(repo_path("hack/smtp-sink.py"))
            .args(["--port", &self.port.to_string()])
            .arg("--out")
            .arg(&self.out)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd.args(&self.args);
        let mut child = cmd.spawn().expect("cannot start hack/smtp-sink.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("hack/smtp-sink.py did not start listening within 30s")
            .expect("cannot read hack/smtp-sink.py's output")
            .expect("hack/smtp-sink.py exited before listening (see its stderr)");
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected output from hack/smtp-sink.py: {line:?}"));
        self.port = port;
        self.child = Some(child);
    }

    /// Stops the server (SIGTERM) and waits until it has exited: connections are then refused.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill().await;
            }
        }
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let text = std::fs::read_to_string(&self.out).expect("cannot read the sink's output");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut m: ReceivedMail =
                    serde_json::from_str(l).expect("the sink wrote an invalid JSON line");
                // Bodies travel with CRLF line ends; tests compare with "\n".
                m.text = m.text.map(|t| t.replace("\r\n", "\n"));
                m.html = m.html.map(|t| t.replace("\r\n", "\n"));
                m
            })
            .collect()
    }

    /// Waits until at least `n` messages were accepted and returns all of them.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        wait_for(
            &format!("{n} email(s) at the SMTP sink"),
            timeout,
            || async {
                let m = self.messages();
                (m.len() >= n).then_some(m)
            },
        )
        .await
    }
}

/// The Clever emulator with a generated district of `students` (seed 7).
pub async fn clever_emulator(students: u32) -> rostersync::devtools::emulator::EmulatorHandle {
    use rostersync::devtools::emulator::{Emulator, EmulatorConfig};
    Emulator::start(EmulatorConfig::generated(7, students))
        .await
        .expect("emulator starts")
}

/// A RosterConnection spec for the emulator's district.
pub fn clever_spec(
    emu: &rostersync::devtools::emulator::EmulatorHandle,
) -> rostersync::api::RosterConnectionSpec {
    serde_json::from_value(serde_json::json!({
        "districtId": emu.district_id(),
        "apiBaseUrl": emu.base_url().as_str().trim_end_matches('/'),
        "credentialsSecretRef": {"name": "clever"},
    }))
    .expect("spec")
}

/// A Clever source for the emulator: `page_limit` records a page, quick retries.
pub fn clever_source(
    emu: &rostersync::devtools::emulator::EmulatorHandle,
    page_limit: u32,
) -> rostersync::sync::clever_source::CleverSource {
    use rostersync::clever::{CleverCredentials, Token};
    let mut s = rostersync::sync::clever_source::CleverSource::new(
        emu.base_url().clone(),
        CleverCredentials::Token(Token::new(emu.token())),
    );
    s.config.page_limit = page_limit;
    s.config.max_attempts = 2;
    s.config.min_backoff = Duration::from_millis(5);
    s.config.max_backoff = Duration::from_millis(20);
    s
}

/// The connection key of [`sync_request`]'s runs (and of [`write_connection_manifest`]'s).
pub const SYNC_CONNECTION: &str = "default/district";

/// A manual run of `spec` for [`SYNC_CONNECTION`], with a fresh run id.
pub fn sync_request(spec: rostersync::api::RosterConnectionSpec) -> rostersync::sync::SyncRequest {
    rostersync::sync::SyncRequest {
        connection: SYNC_CONNECTION.parse().expect("connection key"),
        spec,
        policy: None,
        run_id: format!("run-{}", unique_suffix()),
        trigger: rostersync::api::Trigger::Manual,
        schedule: None,
        job: None,
        dry_run: false,
        approve_removals: false,
        today: jiff::civil::date(2025, 10, 1),
    }
}

/// Writes `spec` as the RosterConnection manifest `default/district` for `rostersync sync
/// --connection-file`.
pub fn write_connection_manifest(
    dir: &std::path::Path,
    spec: &rostersync::api::RosterConnectionSpec,
) -> std::path::PathBuf {
    let doc = serde_json::json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": "district"}, "spec": spec,
    });
    let path = dir.join("connection.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&doc).expect("yaml")).expect("write");
    path
}

/// Every roster row of `connection`, whole (every column, as JSON), sorted: equal dumps mean the
/// roster is byte-for-byte the same.
pub async fn roster_dump(pool: &PgPool, connection: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT v FROM (
            SELECT 'schools ' || row_to_json(t)::text v FROM schools t WHERE connection = $1 UNION ALL
            SELECT 'classrooms ' || row_to_json(t)::text FROM classrooms t WHERE connection = $1 UNION ALL
            SELECT 'educators ' || row_to_json(t)::text FROM educators t WHERE connection = $1 UNION ALL
            SELECT 'children ' || row_to_json(t)::text FROM children t WHERE connection = $1 UNION ALL
            SELECT 'enrollments ' || row_to_json(t)::text FROM enrollments t WHERE connection = $1) x
         ORDER BY v",
    )
    .bind(connection)
    .fetch_all(pool)
    .await
    .expect("roster dump")
}
