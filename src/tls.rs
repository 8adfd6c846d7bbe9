//! Extra CA certificates (`--extra-ca-file`, `ROSTERSYNC_EXTRA_CA_FILE`): a PEM file of one or
//! more certificates that the Clever client, the SMTP transport and Postgres connections (that ask
//! for verification and name no `sslrootcert` of their own) trust *in addition to* the bundled
//! Mozilla roots. For a TLS-intercepting egress proxy, a private SMTP relay, a database with a
//! private CA. The file is read and checked once, at start; a missing or invalid file fails the
//! start with an error naming the path.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// The flag, shared by `rostersync controller` and `rostersync sync`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ExtraCaArgs {
    /// A PEM file of CA certificates (one or more) trusted in addition to the bundled Mozilla
    /// roots by the Clever client, the SMTP transport and Postgres connections whose URL asks for
    /// verification (`sslmode=verify-ca|verify-full`) without an `sslrootcert` of its own. Read
    /// once at start: a missing or invalid file fails the start.
    #[arg(
        long = "extra-ca-file",
        env = "ROSTERSYNC_EXTRA_CA_FILE",
        value_name = "PEM"
    )]
    pub extra_ca_file: Option<PathBuf>,
}

impl ExtraCaArgs {
    /// Reads and checks the file, if one is given.
    pub fn load(&self) -> Result<Option<ExtraCa>, ExtraCaError> {
        self.extra_ca_file
            .as_deref()
            .map(ExtraCa::from_file)
            .transpose()
    }
}

/// Why the CA file cannot be used; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ExtraCaError {
    #[error("cannot read the CA file {path} (--extra-ca-file): {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the CA file {path} (--extra-ca-file) holds no PEM certificate (expected one or more \
         `-----BEGIN CERTIFICATE-----` blocks)"
    )]
    Empty { path: String },
    #[error("the CA file {path} (--extra-ca-file) is not valid PEM: {detail}")]
    Pem { path: String, detail: String },
    #[error(
        "certificate {index} of the CA file {path} (--extra-ca-file) is not a usable CA \
         certificate: {detail}"
    )]
    Certificate {
        path: String,
        index: usize,
        detail: String,
    },
}

/// Checked extra CA certificates. Cheap to clone.
#[derive(Clone)]
pub struct ExtraCa {
    path: PathBuf,
    pem: Arc<[u8]>,
    certs: Arc<[CertificateDer<'static>]>,
}

impl PartialEq for ExtraCa {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.pem == other.pem
    }
}

impl Eq for ExtraCa {}

impl fmt::Debug for ExtraCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtraCa")
            .field("path", &self.path)
            .field("certificates", &self.certs.len())
            .finish()
    }
}

impl ExtraCa {
    /// Reads `path` and checks it ([`ExtraCa::from_pem`]).
    pub fn from_file(path: &Path) -> Result<ExtraCa, ExtraCaError> {
        let pem = std::fs::read(path).map_err(|source| ExtraCaError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ExtraCa::from_pem(path, pem)
    }

    /// Checks PEM text: at least one certificate, each one usable as a trust anchor. `path` names
    /// it in errors.
    pub fn from_pem(path: &Path, pem: Vec<u8>) -> Result<ExtraCa, ExtraCaError> {
        let shown = || path.display().to_string();
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExtraCaError::Pem {
                path: shown(),
                detail: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(ExtraCaError::Empty { path: shown() });
        }
        let mut store = rustls::RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store
                .add(cert.clone())
                .map_err(|e| ExtraCaError::Certificate {
                    path: shown(),
                    index: i + 1,
                    detail: e.to_string(),
                })?;
        }
        Ok(ExtraCa {
            path: path.to_path_buf(),
            pem: pem.into(),
            certs: certs.into(),
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's PEM text, as read at start.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The certificates (DER), in file order.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }
}

/// When `err` (or an error it wraps) is a TLS certificate the peer presented and we do not trust
/// (unknown issuer, expired, wrong name, ...), rustls' description of it.
pub fn untrusted_certificate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(found) = as_certificate_error(e) {
            return Some(found);
        }
        // io::Error's source() skips the error it wraps (an io::Error wrapping an io::Error
        // wrapping the rustls error, from reqwest): look inside, as deep as it goes.
        let mut io = e.downcast_ref::<std::io::Error>();
        while let Some(inner) = io.and_then(|io| io.get_ref()) {
            if let Some(found) = as_certificate_error(inner) {
                return Some(found);
            }
            io = inner.downcast_ref::<std::io::Error>();
        }
        next = e.source();
    }
    None
}

fn as_certificate_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    match e.downcast_ref::<rustls::Error>()? {
        err @ (rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::UnsupportedNameType) => Some(err.to_string()),
        _ => None,
    }
}

/// A CA certificate made for unit tests (rcgen).
#[cfg(test)]
pub(crate) fn test_ca() -> ExtraCa {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rostersync unit test CA");
    let cert = params.self_signed(&key).expect("self-signed");
    ExtraCa::from_pem(Path::new("/test/ca.pem"), cert.pem().into_bytes()).expect("valid CA")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_of_two_is_read_with_both_certificates() {
        let (a, b) = (test_ca(), test_ca());
        let mut pem = a.pem().to_vec();
        pem.extend_from_slice(b"\n# a comment between certificates\n");
        pem.extend_from_slice(b.pem());
        let both = ExtraCa::from_pem(Path::new("/x/bundle.pem"), pem).expect("valid bundle");
        assert_eq!(both.certificates().len(), 2);
        assert_eq!(both.certificates()[1], b.certificates()[0]);
        assert_eq!(
            format!("{both:?}"),
            "ExtraCa { path: \"/x/bundle.pem\", certificates: 2 }"
        );
    }

    #[test]
    fn bad_files_are_refused_naming_the_path() {
        let p = Path::new("/etc/rostersync/ca/ca.crt");
        let cases: [(&str, &[u8], &str); 4] = [
            ("empty", b"", "holds no PEM certificate"),
            ("not PEM", b"just some text\n", "holds no PEM certificate"),
            (
                "broken base64",
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "is not valid PEM",
            ),
            (
                "not a certificate",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate 1 of the CA file",
            ),
        ];
        for (what, pem, want) in cases {
            let err = ExtraCa::from_pem(p, pem.to_vec()).expect_err(what);
            let msg = err.to_string();
            assert!(msg.contains(want), "{what}: {msg}");
            assert!(msg.contains("/etc/rostersync/ca/ca.crt"), "{what}: {msg}");
        }
        let missing = ExtraCa::from_file(Path::new("/nonexistent/ca.pem")).expect_err("missing");
        assert!(
            missing
                .to_string()
                .contains("cannot read the CA file /nonexistent/ca.pem"),
            "{missing}"
        );
    }

    #[test]
    fn no_flag_is_no_ca() {
        assert!(ExtraCaArgs::default().load().expect("no file").is_none());
    }
}

#[cfg(test)]
mod chain_tests {
    /// A reqwest error from a TLS server whose certificate is not trusted is recognised.
    #[tokio::test]
    async fn an_untrusted_server_certificate_is_recognised_in_a_reqwest_error() {
        use std::sync::Arc;
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = acceptor.accept(stream).await;
            }
        });
        let err = reqwest::Client::new()
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .expect_err("untrusted");
        let mut chain = Vec::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = next {
            chain.push(format!("{e:?}"));
            next = e.source();
        }
        let found = super::untrusted_certificate(&err);
        assert_eq!(
            found.as_deref(),
            Some("invalid peer certificate: UnknownIssuer"),
            "{chain:#?}"
        );
    }
}
