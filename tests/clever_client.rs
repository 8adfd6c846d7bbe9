//! The Clever client against the emulator over real HTTP (in-process emulator on a random port).
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use rostersync::clever::{
    AppCredentials, CleverClient, CleverError, ClientConfig, Decoded, Role, School, Section, Term,
    Token, User, lookup_district_token,
};
use rostersync::devtools::emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, Fault, FaultKind, Kind,
};
use serde_json::json;

async fn emulator(students: u32) -> EmulatorHandle {
    Emulator::start(EmulatorConfig::generated(42, students))
        .await
        .unwrap()
}

fn config(emu: &EmulatorHandle) -> ClientConfig {
    let mut cfg = ClientConfig::new(emu.base_url().clone(), Token::new(emu.token()));
    cfg.min_backoff = Duration::from_millis(5);
    cfg.max_backoff = Duration::from_millis(20);
    cfg.max_attempts = 4;
    cfg.timeout = Duration::from_secs(10);
    cfg
}

fn client_with(emu: &EmulatorHandle, f: impl FnOnce(&mut ClientConfig)) -> CleverClient {
    let mut cfg = config(emu);
    f(&mut cfg);
    CleverClient::new(cfg).unwrap()
}

async fn collect<T>(
    stream: impl Stream<Item = Result<Decoded<T>, CleverError>>,
) -> Result<Vec<Decoded<T>>, CleverError> {
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item?);
    }
    Ok(out)
}

async fn all_ok<T: std::fmt::Debug>(
    stream: impl Stream<Item = Result<Decoded<T>, CleverError>>,
) -> Vec<T> {
    collect(stream)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test]
async fn full_paging_of_a_multi_page_roster_equals_the_emulator_data() {
    let emu = emulator(303).await;
    let client = client_with(&emu, |c| c.page_limit = 7);
    let got = all_ok(client.users(Role::Student)).await;
    let want: Vec<User> = emu.read(|s| s.users_with_role(Role::Student));
    assert_eq!(want.len(), 303);
    assert_eq!(got, want, "same users, same order, same fields");
    assert!(got.windows(2).all(|w| w[0].id < w[1].id));
    // 303 = 43 * 7 + 2: 44 pages, each request limited to 7, cursors from the previous page.
    let requests = emu.requests();
    assert_eq!(requests.len(), 44);
    assert_eq!(requests[0], "/v3.0/users?role=student&limit=7");
    assert_eq!(
        requests[1],
        format!(
            "/v3.0/users?role=student&limit=7&starting_after={}",
            got[6].id
        )
    );

    let sections = all_ok(client.sections()).await;
    assert_eq!(sections, emu.read(|s| s.all::<Section>(Kind::Sections)));
    assert_eq!(
        all_ok(client.schools()).await,
        emu.read(|s| s.all::<School>(Kind::Schools))
    );
    assert_eq!(
        all_ok(client.terms()).await,
        emu.read(|s| s.all::<Term>(Kind::Terms))
    );
    assert!(!all_ok(client.courses()).await.is_empty());
    let teachers = all_ok(client.users(Role::Teacher)).await;
    assert_eq!(
        teachers,
        emu.read(|s| s.users_with_role::<User>(Role::Teacher))
    );

    // The nested endpoint returns exactly a section's students, ascending by id.
    let section = sections.iter().max_by_key(|s| s.students.len()).unwrap();
    let members = all_ok(client.section_users(&section.id, Role::Student)).await;
    let mut expected = section.students.clone();
    expected.sort();
    assert_eq!(
        members.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
        expected
    );

    let districts = all_ok(client.districts()).await;
    assert_eq!(districts.len(), 1);
    assert_eq!(
        client.district(&emu.district_id()).await.unwrap(),
        districts[0]
    );
}

#[tokio::test]
async fn an_exact_multiple_of_the_limit_ends_after_an_empty_page() {
    let emu = emulator(20).await;
    let client = client_with(&emu, |c| c.page_limit = 5);
    let got = all_ok(client.users(Role::Student)).await;
    assert_eq!(got.len(), 20);
    assert_eq!(
        emu.requests().len(),
        5,
        "four full pages, then the next link leads to an empty page"
    );
}

#[tokio::test]
async fn a_page_whose_tail_misleads_is_still_followed_by_its_real_next_link() {
    // The client requests the next page while parsing the current one, from the link it reads at
    // the end of the body. A page written links-first with a record holding its own `links`
    // misleads that read: the guess must be dropped and the real next link followed.
    let emu = emulator(23).await;
    let client = client_with(&emu, |c| c.page_limit = 5);
    let want = all_ok(client.users(Role::Student)).await;
    let plain = emu.requests();
    assert_eq!(plain.len(), 5, "pages of 5, 5, 5, 5, 3");
    emu.clear_requests();
    emu.add_fault(Fault::new(
        Some("/v3.0/users"),
        1,
        u64::MAX,
        FaultKind::DecoyNextLink,
    ));
    let got = all_ok(client.users(Role::Student)).await;
    assert_eq!(got, want, "same users, same order");
    let requests = emu.requests();
    let real: Vec<&String> = requests
        .iter()
        .filter(|r| !r.starts_with("/v3.0/decoy"))
        .collect();
    assert_eq!(
        real,
        plain.iter().collect::<Vec<_>>(),
        "the real pages, in order"
    );
}

#[tokio::test]
async fn transient_5xx_are_retried_then_succeed() {
    let emu = emulator(30).await;
    emu.add_fault(Fault::new(
        Some("/v3.0/users"),
        1,
        1,
        FaultKind::Status { status: 500 },
    ));
    emu.add_fault(Fault::new(
        Some("/v3.0/users"),
        3,
        1,
        FaultKind::Status { status: 502 },
    ));
    emu.add_fault(Fault::new(
        Some("/v3.0/users"),
        5,
        1,
        FaultKind::Status { status: 503 },
    ));
    let client = client_with(&emu, |c| c.page_limit = 10);
    let got = all_ok(client.users(Role::Student)).await;
    assert_eq!(got.len(), 30);
    let stats = client.stats();
    assert_eq!(stats.retries, 3);
    assert_eq!(
        stats.requests,
        4 + 3,
        "4 pages (the last one empty) plus 3 retries"
    );
}

#[tokio::test]
async fn persistent_5xx_is_a_typed_error_after_bounded_attempts() {
    let emu = emulator(10).await;
    emu.add_fault(Fault::new(
        Some("/v3.0/sections"),
        1,
        u64::MAX,
        FaultKind::Status { status: 503 },
    ));
    let client = client_with(&emu, |c| c.max_attempts = 3);
    let err = collect(client.sections()).await.unwrap_err();
    match &err {
        CleverError::Server {
            status,
            attempts,
            path,
        } => {
            assert_eq!(status.as_u16(), 503);
            assert_eq!(*attempts, 3);
            assert!(path.starts_with("/v3.0/sections"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_retriable());
    assert_eq!(emu.requests().len(), 3);
}

#[tokio::test]
async fn rate_limited_requests_wait_for_the_reset_then_succeed() {
    let emu = emulator(10).await;
    emu.add_fault(Fault::new(
        None,
        1,
        2,
        FaultKind::RateLimit { reset_secs: 2 },
    ));
    let client = client_with(&emu, |c| c.max_rate_limit_wait = Duration::from_secs(5));
    let started = Instant::now();
    let got = all_ok(client.users(Role::Student)).await;
    assert_eq!(got.len(), 10);
    assert_eq!(client.stats().retries, 2);
    // Reset is 2 s after the server's current second: at least ~1 s of waiting in total.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn rate_limit_wait_is_capped() {
    let emu = emulator(10).await;
    emu.add_fault(Fault::new(
        None,
        1,
        1,
        FaultKind::RateLimit { reset_secs: 3600 },
    ));
    let client = client_with(&emu, |c| c.max_rate_limit_wait = Duration::from_millis(100));
    let started = Instant::now();
    assert_eq!(all_ok(client.users(Role::Student)).await.len(), 10);
    assert!(started.elapsed() < Duration::from_secs(5));
    // And a persistent 429 ends as a typed, retriable error.
    emu.add_fault(Fault::new(
        None,
        1,
        u64::MAX,
        FaultKind::RateLimit { reset_secs: 3600 },
    ));
    let err = collect(client.schools()).await.unwrap_err();
    assert!(
        matches!(err, CleverError::RateLimited { attempts: 4, .. }),
        "{err:?}"
    );
    assert!(err.is_retriable());
}

#[tokio::test]
async fn bad_token_is_credentials_invalid_and_not_retried() {
    let emu = emulator(10).await;
    let client = client_with(&emu, |c| c.token = Token::new("wrong-token-value"));
    let err = collect(client.users(Role::Student)).await.unwrap_err();
    assert!(
        matches!(err, CleverError::CredentialsInvalid { .. }),
        "{err:?}"
    );
    assert!(!err.is_retriable());
    assert!(!err.to_string().contains("wrong-token-value"));
    assert_eq!(emu.requests().len(), 1);
}

#[tokio::test]
async fn another_districts_id_is_district_not_found() {
    let emu = emulator(10).await;
    let client = client_with(&emu, |_| {});
    let err = client
        .district("0123456789abcdef01234567")
        .await
        .unwrap_err();
    assert!(
        matches!(err, CleverError::DistrictNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("double-check the district id"));
    assert!(!err.is_retriable());
    assert_eq!(
        client.district(&emu.district_id()).await.unwrap().id,
        emu.district_id()
    );
    // Other 404s stay NotFound.
    let err = client
        .get::<User>("/v3.0/users/ffffffffffffffffffffffff")
        .await
        .unwrap_err();
    assert!(
        matches!(err, CleverError::NotFound { html: false, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_limit_above_10000_is_a_clear_error() {
    let emu = emulator(10).await;
    let client = client_with(&emu, |_| {});
    let err = collect(client.list::<User>("/v3.0/users", &[("limit", "20000")]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CleverError::PageTooLarge { limit: 20000, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("lower the page limit"));
    assert_eq!(emu.requests().len(), 1);
    let mut cfg = config(&emu);
    cfg.page_limit = 10_001;
    assert!(matches!(
        CleverClient::new(cfg),
        Err(CleverError::Config(_))
    ));
}

#[tokio::test]
async fn truncated_json_and_html_pages_are_clear_errors_without_the_token() {
    let emu = emulator(10).await;
    let client = client_with(&emu, |_| {});
    emu.add_fault(Fault::new(
        Some("/v3.0/schools"),
        1,
        1,
        FaultKind::TruncatedJson,
    ));
    let err = collect(client.schools()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CleverError::InvalidBody { .. }), "{err:?}");
    assert!(
        text.contains("/v3.0/schools") && text.contains("truncated"),
        "{text}"
    );
    assert!(!text.contains(emu.token()));

    emu.add_fault(Fault::new(Some("/v3.0/sections"), 1, 1, FaultKind::Html404));
    let err = collect(client.sections()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, CleverError::NotFound { html: true, .. }),
        "{err:?}"
    );
    assert!(
        text.contains("/v3.0/sections") && text.contains("HTML"),
        "{text}"
    );
    assert!(!text.contains(emu.token()));
}

#[tokio::test]
async fn slow_responses_time_out_after_bounded_attempts() {
    let emu = emulator(10).await;
    emu.add_fault(Fault::new(
        None,
        1,
        u64::MAX,
        FaultKind::Delay { ms: 2_000 },
    ));
    let client = client_with(&emu, |c| {
        c.timeout = Duration::from_millis(150);
        c.max_attempts = 2;
    });
    let started = Instant::now();
    let err = collect(client.terms()).await.unwrap_err();
    assert!(
        matches!(err, CleverError::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = ClientConfig::new(
        format!("http://127.0.0.1:{port}").parse().unwrap(),
        Token::new("t"),
    );
    cfg.min_backoff = Duration::from_millis(1);
    cfg.max_backoff = Duration::from_millis(5);
    cfg.max_attempts = 3;
    let client = CleverClient::new(cfg).unwrap();
    let err = collect(client.schools()).await.unwrap_err();
    assert!(
        matches!(err, CleverError::Connection { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(client.stats().requests, 3);
}

#[tokio::test]
async fn a_malformed_record_is_a_per_record_problem_and_the_page_still_decodes() {
    let emu = emulator(12).await;
    emu.update(|s| {
        s.put_value(Kind::Users, json!({"id": "000000000000000000000001", "name": {"first": "Zed"}, "roles": {"student": {"dob": "31/31/x"}}}))
            .unwrap();
        s.put_value(Kind::Users, json!({"id": "000000000000000000000002", "name": 42, "roles": {"student": {}}})).unwrap();
    });
    let client = client_with(&emu, |c| c.page_limit = 5);
    let items = collect(client.users(Role::Student)).await.unwrap();
    assert_eq!(items.len(), 14);
    let problems: Vec<_> = items.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(problems.len(), 2);
    assert_eq!(problems[0].id.as_deref(), Some("000000000000000000000001"));
    assert!(
        problems[0].message.contains("roles.student.dob") && !problems[0].message.contains("31/31")
    );
    assert_eq!(problems[1].id.as_deref(), Some("000000000000000000000002"));
    assert!(problems[1].message.contains("name") && !problems[1].message.contains("42"));
    assert_eq!(items.iter().filter(|r| r.is_ok()).count(), 12);
}

#[test]
fn tolerant_decoding_of_blank_null_and_absent_fields() {
    let user: User = serde_json::from_str(
        r#"{"id":"u1","district":"d","name":{"first":"A","middle":"","last":null},"email":"",
            "created":"2019-08-23T21:14:24.451Z","last_modified":null,"unknown":{"x":[1,2]},
            "roles":{"teacher":null,"student":{"dob":"2/3/2020","grade":"","gender":null,"race":"",
            "sis_id":12345,"schools":null,"ell_status":"Y","new_field":true}}}"#,
    )
    .unwrap();
    assert_eq!(user.name.middle, None);
    assert_eq!(user.name.last, None);
    assert_eq!(user.email, None);
    assert!(user.created.is_some() && user.last_modified.is_none());
    assert!(user.roles.teacher.is_none());
    let s = user.roles.student.unwrap();
    assert_eq!(s.dob, Some(jiff::civil::date(2020, 2, 3)));
    assert_eq!((s.grade, s.gender, s.race), (None, None, None));
    assert_eq!(s.sis_id.as_deref(), Some("12345"));
    assert!(s.schools.is_empty());
    assert_eq!(s.ell_status.as_deref(), Some("Y"));
    let section: Section = serde_json::from_str(
        r#"{"id":"s","students":null,"grade":"PreKindergarten","teacher":""}"#,
    )
    .unwrap();
    assert!(section.students.is_empty() && section.teacher.is_none());
    assert_eq!(
        section.grade,
        Some(rostersync::clever::CleverGrade::PreKindergarten)
    );
    let school: School =
        serde_json::from_str(r#"{"id":"x","low_grade":"Weird","high_grade":"13"}"#).unwrap();
    assert_eq!(
        school.low_grade,
        Some(rostersync::clever::CleverGrade::Unknown("Weird".into()))
    );
}

#[tokio::test]
async fn generated_blank_and_null_demographics_decode_without_problems() {
    let emu = emulator(400).await;
    let client = client_with(&emu, |_| {});
    let items = collect(client.users(Role::Student)).await.unwrap();
    assert_eq!(items.len(), 400);
    assert!(items.iter().all(|r| r.is_ok()));
    let users: Vec<User> = items.into_iter().map(|r| r.unwrap()).collect();
    assert!(
        users
            .iter()
            .any(|u| u.roles.student.as_ref().unwrap().race.is_none())
    );
    assert!(
        users
            .iter()
            .all(|u| u.roles.student.as_ref().unwrap().dob.is_some())
    );
}

#[tokio::test]
async fn district_token_lookup_with_app_credentials() {
    let emu = emulator(10).await;
    let cfg = config(&emu);
    let app = AppCredentials {
        client_id: emu.client_id().into(),
        client_secret: Token::new(emu.client_secret()),
    };
    let token = lookup_district_token(&cfg, &app, &emu.district_id())
        .await
        .unwrap();
    assert_eq!(token.expose(), emu.token());
    let err = lookup_district_token(&cfg, &app, "0123456789abcdef01234567")
        .await
        .unwrap_err();
    assert!(
        matches!(err, CleverError::NoDistrictToken { .. }),
        "{err:?}"
    );
    let bad = AppCredentials {
        client_id: emu.client_id().into(),
        client_secret: Token::new("not-the-secret"),
    };
    let err = lookup_district_token(&cfg, &bad, &emu.district_id())
        .await
        .unwrap_err();
    match &err {
        CleverError::AppCredentials { status, error, .. } => {
            assert_eq!(status.as_u16(), 401);
            assert_eq!(error, "invalid_client");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.to_string().contains("not-the-secret"));
    assert!(!err.is_retriable());
}

/// Runs the probe below in a child process, so that no other test's allocations count.
#[test]
fn memory_stays_bounded_while_streaming_100k_students() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "memory_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ROSTERSYNC_MEMORY_PROBE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PROBE "))
        .expect("probe output")
        .1;
    let nums: Vec<u64> = line
        .split_whitespace()
        .map(|kv| kv.split('=').nth(1).unwrap().parse().unwrap())
        .collect();
    let (records, body_bytes, streaming_kb, collect_kb) = (nums[0], nums[1], nums[2], nums[3]);
    eprintln!("PROBE {line}");
    assert_eq!(records, 100_000);
    // Streaming page by page (1000 records) must stay far below the response bytes (~70 MB) and
    // far below what holding the decoded roster costs (measured in the same process afterwards).
    assert!(
        streaming_kb * 1024 < body_bytes / 3,
        "peak RSS grew {streaming_kb} KB for {body_bytes} bytes streamed"
    );
    assert!(
        streaming_kb * 4 < collect_kb,
        "streaming grew {streaming_kb} KB, collecting {collect_kb} KB"
    );
}

fn vm_hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore = "run by memory_stays_bounded_while_streaming_100k_students in its own process"]
fn memory_probe() {
    if std::env::var_os("ROSTERSYNC_MEMORY_PROBE").is_none() {
        return;
    }
    // The emulator runs as its own process so only the client's memory is measured here.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["clever-emulator", "--students", "100000", "--seed", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = line.trim().to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async move {
        let mut cfg = ClientConfig::new(
            base.parse().unwrap(),
            Token::new(rostersync::devtools::emulator::DEFAULT_TOKEN),
        );
        cfg.page_limit = 1000;
        let client = CleverClient::new(cfg).unwrap();
        // Warm up allocator and connection with one small request.
        let _ = collect(client.terms()).await.unwrap();
        let before = vm_hwm_kb();
        let before_bytes = client.stats().bytes;
        let mut stream = std::pin::pin!(client.users(Role::Student));
        let mut records = 0u64;
        while let Some(item) = stream.next().await {
            item.unwrap().unwrap();
            records += 1;
            // Bounded read-ahead: the page after the one being consumed is requested (as soon
            // as its link is known), never more.
            let pages_requested = client.stats().requests - 1;
            assert!(
                pages_requested <= records.div_ceil(1000) + 1,
                "{pages_requested} pages for {records} records"
            );
        }
        let streaming = vm_hwm_kb().saturating_sub(before);
        let bytes = client.stats().bytes - before_bytes;
        // For comparison: the same roster held in memory.
        let all = all_ok(client.users(Role::Student)).await;
        let collecting = vm_hwm_kb().saturating_sub(before);
        assert_eq!(all.len() as u64, records);
        (records, bytes, streaming, collecting)
    });
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "PROBE records={} bytes={} streaming_kb={} collect_kb={}",
        result.0, result.1, result.2, result.3
    );
}
