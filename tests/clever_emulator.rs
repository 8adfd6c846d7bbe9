//! The emulator's HTTP responses checked against the shapes in clever-api.md, with raw reqwest.
use std::io::BufRead as _;
use std::time::{Duration, Instant};

use rostersync::devtools::emulator::{DataSource, Emulator, EmulatorConfig, EmulatorHandle, Kind};
use serde_json::{Value, json};

async fn emulator(seed: u64, students: u32) -> EmulatorHandle {
    Emulator::start(EmulatorConfig::generated(seed, students))
        .await
        .unwrap()
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(emu: &EmulatorHandle) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: emu.base_url().as_str().trim_end_matches('/').to_owned(),
            token: emu.token().to_owned(),
        }
    }
    async fn get(&self, uri: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{uri}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
    async fn json(&self, uri: &str) -> Value {
        let resp = self.get(uri).await;
        assert_eq!(resp.status(), 200, "{uri}");
        resp.json().await.unwrap()
    }
    async fn test_api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let req = self
            .http
            .request(method, format!("{}/_emulator/{path}", self.base));
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        req.send().await.unwrap()
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["data"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn link(page: &Value, rel: &str) -> Option<String> {
    page["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == rel)
        .map(|l| l["uri"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn list_envelope_links_order_and_cursors() {
    let emu = emulator(1, 23).await;
    let api = Api::new(&emu);
    let page1 = api.json("/v3.0/users?role=student&limit=5").await;
    let items = page1["data"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for item in items {
        let id = item["data"]["id"].as_str().unwrap();
        assert_eq!(item["uri"], format!("/v3.0/users/{id}"));
        assert_eq!(id.len(), 24);
        assert!(item["data"]["roles"]["student"].is_object());
        assert_eq!(
            item.as_object().unwrap().len(),
            2,
            "each item is exactly {{data, uri}}"
        );
    }
    let p1 = ids(&page1);
    assert!(p1.windows(2).all(|w| w[0] < w[1]), "ascending ids");
    assert_eq!(
        link(&page1, "self").unwrap(),
        "/v3.0/users?role=student&limit=5"
    );
    let next = link(&page1, "next").unwrap();
    assert_eq!(
        next,
        format!("/v3.0/users?role=student&limit=5&starting_after={}", p1[4])
    );
    assert_eq!(link(&page1, "prev"), None);

    // Follow next verbatim to the end; prev leads back.
    let page2 = api.json(&next).await;
    let p2 = ids(&page2);
    assert!(p1[4] < p2[0]);
    let prev = link(&page2, "prev").unwrap();
    assert_eq!(
        prev,
        format!("/v3.0/users?role=student&limit=5&ending_before={}", p2[0])
    );
    assert_eq!(ids(&api.json(&prev).await), p1);
    let mut all = p1.clone();
    let mut uri = Some(next);
    let mut pages = 1;
    while let Some(u) = uri {
        let page = api.json(&u).await;
        all.extend(ids(&page));
        uri = link(&page, "next");
        pages += 1;
    }
    assert_eq!(pages, 5, "23 students in pages of 5");
    let want: Vec<String> = emu.read(|s| {
        s.entries(Kind::Users)
            .iter()
            .filter(|e| e.has_role(rostersync::clever::Role::Student))
            .map(|e| e.id.to_string())
            .collect()
    });
    assert_eq!(all, want);

    // Single object.
    let one = api.json(&format!("/v3.0/users/{}", p1[0])).await;
    assert_eq!(one["data"]["id"], p1[0].as_str());
    // A starting_after past the end is an empty page with no next.
    let empty = api
        .json("/v3.0/users?limit=5&starting_after=ffffffffffffffffffffffff")
        .await;
    assert!(empty["data"].as_array().unwrap().is_empty());
    assert_eq!(link(&empty, "next"), None);
}

#[tokio::test]
async fn limit_default_max_and_413() {
    let emu = emulator(2, 250).await;
    let api = Api::new(&emu);
    let page = api.json("/v3.0/users?role=student").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 100, "default limit");
    assert_eq!(
        link(&page, "next").unwrap(),
        format!("/v3.0/users?role=student&starting_after={}", ids(&page)[99])
    );
    let page = api.json("/v3.0/users?role=student&limit=10000").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 250);
    let resp = api.get("/v3.0/users?limit=10001").await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("10000"));
    assert_eq!(api.get("/v3.0/users?limit=0").await.status(), 400);
    assert_eq!(api.get("/v3.0/users?role=principal").await.status(), 400);
}

#[tokio::test]
async fn auth_404_and_rate_limit_headers_on_every_response() {
    let emu = emulator(3, 10).await;
    let api = Api::new(&emu);
    let check_headers = |resp: &reqwest::Response| {
        for h in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-ratelimit-bucket",
        ] {
            assert!(resp.headers().contains_key(h), "{h} on {}", resp.url());
        }
    };
    let resp = api
        .http
        .get(format!("{}/v3.0/schools", api.base))
        .send()
        .await
        .unwrap();
    check_headers(&resp);
    assert_eq!(resp.status(), 401);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    let resp = api
        .http
        .get(format!("{}/v3.0/schools", api.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let district = emu.district_id();
    let resp = api.get(&format!("/v3.0/districts/{district}")).await;
    check_headers(&resp);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["data"]["id"],
        district.as_str()
    );
    let districts = api.json("/v3.0/districts").await;
    assert_eq!(ids(&districts), std::slice::from_ref(&district));
    for uri in [
        "/v3.0/districts/0123456789abcdef01234567",
        "/v3.0/users/0123456789abcdef01234567",
        "/v3.0/sections/x/users",
    ] {
        let resp = api.get(uri).await;
        check_headers(&resp);
        assert_eq!(resp.status(), 404, "{uri}");
        assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    }
}

#[tokio::test]
async fn past_the_rate_limit_answers_429_with_an_empty_body() {
    let emu = emulator(4, 10).await;
    emu.set_rate_limit(5);
    let api = Api::new(&emu);
    let now = jiff::Timestamp::now().as_second();
    for n in 1..=5 {
        let resp = api.get("/v3.0/terms").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-ratelimit-limit"], "5");
        assert_eq!(
            resp.headers()["x-ratelimit-remaining"],
            (5 - n).to_string().as_str()
        );
    }
    let resp = api.get("/v3.0/terms").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    let reset: i64 = resp.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > now && reset <= now + 61, "{reset} vs {now}");
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn oauth_tokens_shape() {
    let emu = emulator(5, 10).await;
    let api = Api::new(&emu);
    let district = emu.district_id();
    let resp = api
        .http
        .get(format!(
            "{}/oauth/tokens?owner_type=district&district={district}",
            api.base
        ))
        .basic_auth(emu.client_id(), Some(emu.client_secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let entry = &body["data"][0];
    assert_eq!(entry["owner"], json!({"type": "district", "id": district}));
    assert_eq!(entry["access_token"], emu.token());
    assert!(entry["scopes"].is_array() && entry["id"].is_string() && entry["created"].is_string());
    assert_eq!(body["links"][0]["rel"], "self");
    let resp = api
        .http
        .get(format!("{}/oauth/tokens?owner_type=district", api.base))
        .basic_auth(emu.client_id(), Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].is_string() && body["error_description"].is_string());
}

#[tokio::test]
async fn generated_data_is_deterministic_for_a_seed() {
    let (a, b, c) = (
        emulator(9, 300).await,
        emulator(9, 300).await,
        emulator(10, 300).await,
    );
    let body = |emu: &EmulatorHandle, uri: &'static str| {
        let api = Api::new(emu);
        async move { api.get(uri).await.text().await.unwrap() }
    };
    for uri in [
        "/v3.0/users?limit=10000",
        "/v3.0/sections?limit=10000",
        "/v3.0/schools",
    ] {
        assert_eq!(body(&a, uri).await, body(&b, uri).await, "{uri}");
    }
    assert_ne!(
        body(&a, "/v3.0/users?limit=10000").await,
        body(&c, "/v3.0/users?limit=10000").await
    );
}

#[tokio::test]
async fn serves_clever_format_files_from_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = "aaaaaaaaaaaaaaaaaaaaaaaa";
    let envelope = |items: Vec<Value>, kind: &str| {
        let data: Vec<Value> =
            items.into_iter().map(|o| json!({"data": o.clone(), "uri": format!("/v3.0/{kind}/{}", o["id"].as_str().unwrap())})).collect();
        json!({"data": data, "links": [{"rel": "self", "uri": format!("/v3.0/{kind}")}]})
            .to_string()
    };
    std::fs::write(
        dir.path().join("districts.json"),
        envelope(vec![json!({"id": d, "name": "File District"})], "districts"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("schools.json"),
        envelope(
            vec![json!({"id": "s1", "district": d, "name": "One"})],
            "schools",
        ),
    )
    .unwrap();
    let users = vec![
        json!({"id": "u3", "district": d, "name": {"first": "C"}, "roles": {"student": {"dob": "1/2/2020", "grade": "PreKindergarten"}}}),
        json!({"id": "u1", "district": d, "name": {"first": "A"}, "roles": {"student": {"grade": ""}}}),
        json!({"id": "t1", "district": d, "name": {"first": "T"}, "roles": {"teacher": {"school": "s1"}}}),
    ];
    std::fs::write(dir.path().join("users.json"), envelope(users, "users")).unwrap();
    std::fs::write(
        dir.path().join("sections.json"),
        envelope(
            vec![
                json!({"id": "x1", "students": ["u3", "u1"], "teachers": ["t1"], "teacher": "t1"}),
            ],
            "sections",
        ),
    )
    .unwrap();
    let mut cfg = EmulatorConfig::generated(0, 0);
    cfg.data = DataSource::Dir(dir.path().to_owned());
    let emu = Emulator::start(cfg).await.unwrap();
    let api = Api::new(&emu);
    assert_eq!(emu.district_id(), d);
    assert_eq!(
        ids(&api.json("/v3.0/users?role=student").await),
        ["u1", "u3"]
    );
    assert_eq!(ids(&api.json("/v3.0/users?role=teacher").await), ["t1"]);
    assert_eq!(
        ids(&api.json("/v3.0/sections/x1/users?role=student").await),
        ["u1", "u3"]
    );
    assert_eq!(
        ids(&api.json("/v3.0/sections/x1/users?role=teacher").await),
        ["t1"]
    );
    let page = api.json("/v3.0/users?role=student").await;
    assert_eq!(
        page["data"][1]["data"]["roles"]["student"]["dob"],
        "1/2/2020"
    );
    assert_eq!(
        api.json("/v3.0/districts").await["data"][0]["data"]["name"],
        "File District"
    );
}

#[tokio::test]
async fn the_test_api_changes_data_and_faults() {
    use reqwest::Method;
    let emu = emulator(6, 40).await;
    let api = Api::new(&emu);
    let sections = api.json("/v3.0/sections?limit=10000").await;
    let homerooms: Vec<&Value> = sections["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["data"])
        .filter(|s| s["subject"] == "homeroom/advisory")
        .collect();
    assert!(homerooms.len() >= 2);
    let (from, to) = (
        homerooms[0]["id"].as_str().unwrap(),
        homerooms[1]["id"].as_str().unwrap(),
    );
    let child = homerooms[0]["students"][0].as_str().unwrap().to_owned();

    // Add a student, then put them in a section.
    let resp = api
        .test_api(Method::POST, "students", Some(json!({"name": {"first": "New", "last": "Kid"}, "roles": {"student": {"grade": "Kindergarten", "dob": "3/4/2020", "sis_id": "999"}}})))
        .await;
    assert_eq!(resp.status(), 201);
    let new_id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = api.json(&format!("/v3.0/users/{new_id}")).await;
    assert_eq!(user["data"]["district"], emu.district_id().as_str());
    assert_eq!(
        api.test_api(
            Method::POST,
            &format!("sections/{to}/students"),
            Some(json!({"id": new_id}))
        )
        .await
        .status(),
        204
    );
    let members = ids(&api
        .json(&format!(
            "/v3.0/sections/{to}/users?role=student&limit=1000"
        ))
        .await);
    assert!(members.contains(&new_id));

    // Rename and change grade with a merge patch.
    let patch = json!({"name": {"first": "Renamed"}, "roles": {"student": {"grade": "1"}}});
    assert_eq!(
        api.test_api(Method::PATCH, &format!("users/{new_id}"), Some(patch))
            .await
            .status(),
        200
    );
    let user = api.json(&format!("/v3.0/users/{new_id}")).await;
    assert_eq!(
        user["data"]["name"],
        json!({"first": "Renamed", "last": "Kid"})
    );
    assert_eq!(user["data"]["roles"]["student"]["grade"], "1");
    assert_eq!(user["data"]["roles"]["student"]["sis_id"], "999");

    // Move a child between sections.
    let mv = json!({"student": child, "from": from, "to": to});
    assert_eq!(
        api.test_api(Method::POST, "move", Some(mv)).await.status(),
        204
    );
    let s_from = api.json(&format!("/v3.0/sections/{from}")).await;
    let s_to = api.json(&format!("/v3.0/sections/{to}")).await;
    assert!(
        !s_from["data"]["students"]
            .as_array()
            .unwrap()
            .contains(&json!(child))
    );
    assert!(
        s_to["data"]["students"]
            .as_array()
            .unwrap()
            .contains(&json!(child))
    );

    // Rename a section, remove a student (also from sections), remove a section.
    api.test_api(
        Method::PATCH,
        &format!("sections/{to}"),
        Some(json!({"name": "Room 7"})),
    )
    .await;
    assert_eq!(
        api.json(&format!("/v3.0/sections/{to}")).await["data"]["name"],
        "Room 7"
    );
    assert_eq!(
        api.test_api(Method::DELETE, &format!("students/{new_id}"), None)
            .await
            .status(),
        204
    );
    assert_eq!(
        api.get(&format!("/v3.0/users/{new_id}")).await.status(),
        404
    );
    assert!(
        !api.json(&format!("/v3.0/sections/{to}")).await["data"]["students"]
            .as_array()
            .unwrap()
            .contains(&json!(new_id))
    );
    assert_eq!(
        api.test_api(Method::DELETE, &format!("sections/{from}"), None)
            .await
            .status(),
        204
    );
    assert_eq!(
        api.get(&format!("/v3.0/sections/{from}")).await.status(),
        404
    );
    assert_eq!(
        api.test_api(Method::DELETE, "users/nope", None)
            .await
            .status(),
        404
    );

    // Faults over HTTP: the 2nd /v3.0/terms request fails with 502, then all is well.
    let fault = json!({"path": "/v3.0/terms", "nth": 2, "fault": "status", "status": 502});
    assert_eq!(
        api.test_api(Method::POST, "faults", Some(fault))
            .await
            .status(),
        204
    );
    let statuses: Vec<u16> = futures_statuses(&api, "/v3.0/terms", 3).await;
    assert_eq!(statuses, [200, 502, 200]);
    assert_eq!(
        api.test_api(Method::POST, "faults", Some(json!({"fault": "html_404"})))
            .await
            .status(),
        204
    );
    let resp = api.get("/v3.0/schools").await;
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("html")
    );
    api.test_api(Method::DELETE, "faults", None).await;

    // Replace the whole dataset.
    let dataset = json!({"users": [{"id": "b", "roles": {"student": {}}}, {"id": "a", "roles": {"student": {}}}], "sections": []});
    assert_eq!(
        api.test_api(Method::PUT, "dataset", Some(dataset))
            .await
            .status(),
        204
    );
    assert_eq!(ids(&api.json("/v3.0/users?role=student").await), ["a", "b"]);
    assert_eq!(ids(&api.json("/v3.0/districts").await), [emu.district_id()]);
    let regen = json!({"seed": 6, "students": 40});
    assert_eq!(
        api.test_api(Method::POST, "dataset/generate", Some(regen))
            .await
            .status(),
        204
    );
    assert_eq!(
        api.json("/v3.0/users?role=student&limit=1000").await["data"]
            .as_array()
            .unwrap()
            .len(),
        40
    );
    let log = api
        .test_api(Method::GET, "requests", None)
        .await
        .json::<Vec<String>>()
        .await
        .unwrap();
    assert!(log.contains(&"/v3.0/terms".to_owned()));
}

async fn futures_statuses(api: &Api, uri: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(api.get(uri).await.status().as_u16());
    }
    out
}

#[tokio::test]
async fn truncated_json_fault_cuts_the_body() {
    let emu = emulator(7, 10).await;
    emu.add_fault(rostersync::devtools::emulator::Fault::new(
        None,
        1,
        1,
        rostersync::devtools::emulator::FaultKind::TruncatedJson,
    ));
    let api = Api::new(&emu);
    let resp = api.get("/v3.0/schools").await;
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert!(
        serde_json::from_slice::<Value>(&api.get("/v3.0/schools").await.bytes().await.unwrap())
            .is_ok()
    );
}

/// The real binary: prints its base URL, serves, obeys fault flags, stops on SIGTERM.
#[test]
fn the_clever_emulator_subcommand_prints_its_base_url_and_serves() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args([
            "clever-emulator",
            "--students",
            "50",
            "--seed",
            "3",
            "--token",
            "tok-123",
        ])
        .args([
            "--fault",
            "fault=status,status=503,path=/v3.0/districts,nth=1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (first, second, students) = rt.block_on(async {
        let http = reqwest::Client::new();
        let get = |uri: &str| {
            http.get(format!("{base}{uri}"))
                .bearer_auth("tok-123")
                .send()
        };
        let first = get("/v3.0/districts").await.unwrap().status().as_u16();
        let second = get("/v3.0/districts").await.unwrap().status().as_u16();
        let page: Value = get("/v3.0/users?role=student&limit=1000")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (first, second, page["data"].as_array().unwrap().len())
    });
    assert_eq!((first, second, students), (503, 200, 50));
    // Graceful stop on SIGTERM, waited for with a deadline.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "emulator did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}
