//! Extra CA certificates (`--extra-ca-file`, issue #14) on real components: a private CA and a
//! server certificate for 127.0.0.1 made here (rcgen), a TLS terminator (tokio-rustls) in front
//! of the Clever emulator, `hack/smtp-sink.py` with STARTTLS, the real `rostersync` binary, the
//! real API server and Postgres. Without the CA every connection fails with a clear certificate
//! error; with it they work.
mod common;
#[path = "controller/env.rs"]
mod env;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use env::Env;
use kube::api::PostParams;
use rostersync::api::RosterConnection;
use serde_json::json;
use tokio_rustls::rustls;

/// A private CA, a server certificate it signed for 127.0.0.1, and an unrelated CA; written as
/// PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    server_cert_der: rustls::pki_types::CertificateDer<'static>,
    server_key_der: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().expect("CA key");
    rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate")
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = ca("rostersync test CA");
    let other = ca("some other CA");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    Pki {
        ca: write("ca.pem", issuer.pem()),
        other_ca: write("other-ca.pem", other.pem()),
        server_cert: write("server.pem", cert.pem()),
        server_key: write("server.key", key.serialize_pem()),
        server_cert_der: cert.der().clone(),
        server_key_der: key.serialize_der(),
        _dir: dir,
    }
}

/// A TLS terminator on 127.0.0.1 in front of `upstream` (plain HTTP), with the server
/// certificate of `pki`. Counts the TLS handshakes that succeeded.
struct Terminator {
    port: u16,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Terminator {
    async fn start(upstream: SocketAddr, pki: &Pki) -> Terminator {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.server_cert_der.clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key_der.clone().into()),
            )
            .expect("server TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the terminator");
        let port = listener.local_addr().expect("address").port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counter = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, counter) = (acceptor.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Terminator {
            port,
            handshakes,
            task,
        }
    }

    fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn upstream_of(url: &url::Url) -> SocketAddr {
    format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port_or_known_default().expect("port")
    )
    .parse()
    .expect("a loopback address")
}

async fn sync_binary(db_url: &str, manifest: &Path, token: &str, extra: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["sync", "--migrate", "--output", "json", "--connection-file"])
        .arg(manifest)
        .args(extra)
        .env("DATABASE_URL", db_url)
        .env("CLEVER_TOKEN", token)
        .env_remove("CLEVER_CLIENT_ID")
        .env_remove("ROSTERSYNC_EXTRA_CA_FILE")
        .output()
        .await
        .expect("run rostersync sync");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

#[tokio::test]
async fn sync_over_https_needs_the_private_ca_and_works_with_extra_ca_file() {
    let Some(db) = common::fresh_db().await else {
        return;
    };
    let emu = common::clever_emulator(60).await;
    let pki = pki();
    let tls = Terminator::start(upstream_of(emu.base_url()), &pki).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = common::clever_spec(&emu);
    spec.api_base_url = tls.base_url();
    let manifest = common::write_connection_manifest(dir.path(), &spec);

    // The bundled roots only, or another CA: a certificate error, not retried, nothing written.
    for extra in [
        vec![],
        vec![format!("--extra-ca-file={}", pki.other_ca.display())],
    ] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (code, out) = sync_binary(&db.url, &manifest, emu.token(), &extra).await;
        assert_eq!(code, 2, "not retriable: {out}");
        assert!(out.contains("CleverCertificateUntrusted"), "{out}");
        assert!(
            out.contains(&format!(
                "the TLS certificate of {} is not trusted",
                tls.host()
            )),
            "{out}"
        );
        assert!(out.contains("--extra-ca-file"), "says what to do: {out}");
    }
    assert!(
        common::roster_dump(&db.pool, common::SYNC_CONNECTION)
            .await
            .is_empty()
    );
    assert_eq!(tls.handshakes.load(Ordering::SeqCst), 0);

    // The same run trusting the private CA (from the environment variable this time).
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .args(["sync", "--migrate", "--output", "json", "--connection-file"])
        .arg(&manifest)
        .env("DATABASE_URL", &db.url)
        .env("CLEVER_TOKEN", emu.token())
        .env("ROSTERSYNC_EXTRA_CA_FILE", &pki.ca)
        .output()
        .await
        .expect("run rostersync sync");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_str(text.trim()).expect("json output");
    assert_eq!(run["result"], "Succeeded", "{run}");
    assert!(
        run["counts"]["children"]["created"].as_u64().unwrap_or(0) > 0,
        "{run}"
    );
    assert!(tls.handshakes.load(Ordering::SeqCst) > 0);
    assert!(
        !common::roster_dump(&db.pool, common::SYNC_CONNECTION)
            .await
            .is_empty()
    );

    // A CA file that is missing or is not a certificate fails the start, naming the file.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let missing = dir.path().join("missing.pem");
    for (file, want) in [
        (&junk, "holds no PEM certificate"),
        (&missing, "cannot read"),
    ] {
        let flag = format!("--extra-ca-file={}", file.display());
        let (code, out) = sync_binary(&db.url, &manifest, emu.token(), &[&flag]).await;
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains(want) && out.contains(&file.display().to_string()),
            "{out}"
        );
    }
}

#[tokio::test]
async fn the_controller_verifies_over_https_only_with_the_ca() {
    let Some(env) = Env::new("extra-ca", 20).await else {
        return;
    };
    let pki = pki();
    let tls = Terminator::start(upstream_of(env.emulator.base_url()), &pki).await;
    let allowed = format!("--allowed-api-host={}", tls.host());
    let c: RosterConnection = serde_json::from_value(json!({
        "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
        "metadata": {"name": "springfield"},
        "spec": {"districtId": env.district_id(), "apiBaseUrl": tls.base_url(),
                 "credentialsSecretRef": {"name": "clever"}}
    }))
    .expect("connection");
    env.connections()
        .create(&PostParams::default(), &c)
        .await
        .expect("create connection");

    let mut without = env.controller("controller-without-ca", &[&allowed]);
    let message = env
        .connection_reason("springfield", "CleverCertificateUntrusted")
        .await;
    assert!(
        message.contains(&format!(
            "the TLS certificate of {} is not trusted",
            tls.host()
        )) && message.contains("--extra-ca-file"),
        "{message}"
    );
    without.stop().await;

    let ca = format!("--extra-ca-file={}", pki.ca.display());
    let mut with = env.controller("controller-with-ca", &[&allowed, &ca]);
    env.connection_reason("springfield", "Verified").await;
    assert!(tls.handshakes.load(Ordering::SeqCst) > 0);
    with.stop().await;

    // A broken file stops the controller at start, naming the file.
    let junk = format!("--extra-ca-file={}", pki.server_key.display());
    let mut broken = env.controller("controller-broken-ca", &[&allowed, &junk]);
    let status = tokio::time::timeout(env::TIMEOUT, broken.child.wait())
        .await
        .expect("the controller exits")
        .expect("exit status");
    assert!(!status.success());
    let log = broken.log_text();
    assert!(
        log.contains(&pki.server_key.display().to_string()) && log.contains("--extra-ca-file"),
        "{log}"
    );
}

#[tokio::test]
async fn smtp_starttls_with_a_private_ca() {
    use lettre::AsyncTransport as _;
    let pki = pki();
    let cert = pki.server_cert.display().to_string();
    let key = pki.server_key.display().to_string();
    let sink = common::start_smtp_sink_with(&["--tls-cert", &cert, "--tls-key", &key]).await;
    let config = |ca: Option<&Path>| {
        let values = [
            ("host", "127.0.0.1".to_string()),
            ("port", sink.port.to_string()),
            ("tls", "starttls".to_string()),
            ("from", "rostersync <noreply@example.org>".to_string()),
            ("timeoutSeconds", "10".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let ca = ca.map(|p| rostersync::tls::ExtraCa::from_file(p).expect("valid CA"));
        rostersync::notify::SmtpConfig::from_map(&values)
            .expect("valid SMTP settings")
            .with_extra_ca(ca)
    };
    let message = |subject: &str| {
        lettre::Message::builder()
            .from("noreply@example.org".parse().expect("from"))
            .to("admin@example.org".parse().expect("to"))
            .subject(subject)
            .body("hello".to_string())
            .expect("message")
    };

    let err = config(None)
        .transport()
        .expect("transport")
        .send(message("untrusted"))
        .await
        .expect_err("the relay's certificate is not trusted");
    let chain = format!("{err} / {err:?}");
    assert!(chain.contains("UnknownIssuer"), "{chain}");
    assert!(sink.messages().is_empty());

    config(Some(&pki.ca))
        .transport()
        .expect("transport")
        .send(message("trusted"))
        .await
        .expect("sent over STARTTLS with the private CA");
    let mails = sink.wait_for_messages(1, env::TIMEOUT).await;
    assert_eq!(common::subjects(&mails), ["trusted"]);
}
