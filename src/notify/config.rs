//! SMTP configuration: from a Kubernetes Secret's data (the operator) or from flags/environment
//! (local use), and the lettre transport built from it. The password never appears in `Debug`
//! output, logs or errors.
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::ByteString;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use super::args::SmtpArgs;

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// Plain TCP (only for a relay on localhost or a trusted network).
    None,
    /// Plain TCP upgraded with STARTTLS, which is required (usually port 587).
    Starttls,
    /// TLS from the first byte ("SMTPS", usually port 465).
    Tls,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<TlsMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "plain" => Some(TlsMode::None),
            "starttls" => Some(TlsMode::Starttls),
            "tls" | "smtps" => Some(TlsMode::Tls),
            _ => None,
        }
    }

    /// The port used when none is configured.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// Errors in the SMTP configuration, each saying which key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("SMTP configuration: `{0}` is required")]
    Missing(&'static str),
    #[error("SMTP configuration: `{key}` is invalid: {why}")]
    Invalid { key: &'static str, why: String },
    #[error("SMTP configuration: cannot read the Secret {secret}: {why}")]
    Secret { secret: String, why: String },
    #[error("SMTP configuration: cannot build the transport for host {host}: {source}")]
    Transport {
        host: String,
        source: lettre::transport::smtp::Error,
    },
}

/// Where and how to send email.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From address, e.g. `rostersync <rostersync@example.org>`.
    pub from: Mailbox,
    /// Connect and command timeout.
    pub timeout: Duration,
    /// CA certificates trusted in addition to the bundled roots for `starttls` and `tls`
    /// (`--extra-ca-file`; see [`SmtpConfig::with_extra_ca`]).
    pub extra_ca: Option<crate::tls::ExtraCa>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .field("extra_ca", &self.extra_ca)
            .finish()
    }
}

/// The Secret keys, documented in docs/email.md.
pub const SECRET_KEYS: [&str; 7] = [
    "host",
    "port",
    "tls",
    "username",
    "password",
    "from",
    "timeoutSeconds",
];

impl SmtpConfig {
    /// From a Secret's `data`: `host`, `from` (required), `port`, `tls` (`none`, `starttls`
    /// (default), `tls`), `username`, `password`, `timeoutSeconds`.
    pub fn from_secret_data(
        data: &BTreeMap<String, ByteString>,
    ) -> Result<SmtpConfig, ConfigError> {
        let mut values = BTreeMap::new();
        for (key, value) in data {
            let Ok(text) = std::str::from_utf8(&value.0) else {
                // Name the key only: the value may be the password.
                return Err(ConfigError::Invalid {
                    key: SECRET_KEYS
                        .iter()
                        .find(|k| **k == key.as_str())
                        .copied()
                        .unwrap_or("data"),
                    why: format!("the value of key {key} is not UTF-8"),
                });
            };
            values.insert(key.clone(), text.to_string());
        }
        SmtpConfig::from_map(&values)
    }

    /// From string values under the Secret's keys (the Secret's `stringData`, or tests).
    pub fn from_map(values: &BTreeMap<String, String>) -> Result<SmtpConfig, ConfigError> {
        let get = |key: &str| {
            values
                .get(key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        SmtpArgs {
            smtp_host: get("host"),
            smtp_port: match get("port") {
                Some(p) => Some(p.parse().map_err(|_| ConfigError::Invalid {
                    key: "port",
                    why: format!("{p:?} is not a port number (1-65535)"),
                })?),
                None => None,
            },
            smtp_tls: match get("tls") {
                Some(t) => Some(TlsMode::parse(&t).ok_or_else(|| ConfigError::Invalid {
                    key: "tls",
                    why: format!("{t:?} is not one of none, starttls, tls"),
                })?),
                None => None,
            },
            smtp_username: get("username"),
            // Passwords may legitimately have surrounding spaces: keep them verbatim.
            smtp_password: values.get("password").filter(|p| !p.is_empty()).cloned(),
            smtp_from: get("from"),
            smtp_timeout_seconds: match get("timeoutSeconds") {
                Some(t) => Some(t.parse().map_err(|_| ConfigError::Invalid {
                    key: "timeoutSeconds",
                    why: format!("{t:?} is not a whole number of seconds"),
                })?),
                None => None,
            },
        }
        .config()
    }

    /// Reads the Secret `namespace/name` (the operator's `--smtp-secret`) and parses it.
    pub async fn from_secret(
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<SmtpConfig, ConfigError> {
        use k8s_openapi::api::core::v1::Secret;
        let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
        let secret = api.get(name).await.map_err(|e| ConfigError::Secret {
            secret: format!("{namespace}/{name}"),
            why: e.to_string(),
        })?;
        let mut data = secret.data.unwrap_or_default();
        // stringData is write-only in the API, but accept it from manifests read elsewhere.
        for (k, v) in secret.string_data.unwrap_or_default() {
            data.entry(k).or_insert(ByteString(v.into_bytes()));
        }
        SmtpConfig::from_secret_data(&data)
    }

    /// The same configuration, trusting `extra_ca` too (for a relay with a private CA).
    pub fn with_extra_ca(mut self, extra_ca: Option<crate::tls::ExtraCa>) -> SmtpConfig {
        self.extra_ca = extra_ca;
        self
    }

    /// The TLS parameters of `starttls` and `tls`: the bundled roots, plus the extra CA
    /// certificates when configured; the certificate must name [`SmtpConfig::host`].
    fn tls_parameters(&self) -> Result<TlsParameters, ConfigError> {
        let transport = |source| ConfigError::Transport {
            host: self.host.clone(),
            source,
        };
        let mut params = TlsParameters::builder(self.host.clone());
        for der in self.extra_ca.iter().flat_map(|ca| ca.certificates()) {
            params = params
                .add_root_certificate(Certificate::from_der(der.to_vec()).map_err(transport)?);
        }
        params.build().map_err(transport)
    }

    /// The lettre transport for this configuration.
    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConfigError> {
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host);
        let builder = match self.tls {
            TlsMode::None => builder,
            // STARTTLS is required: no credentials or mail before the upgrade.
            TlsMode::Starttls => builder.tls(Tls::Required(self.tls_parameters()?)),
            TlsMode::Tls => builder.tls(Tls::Wrapper(self.tls_parameters()?)),
        };
        let mut builder = builder.port(self.port).timeout(Some(self.timeout));
        if let Some(user) = &self.username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                self.password.clone().unwrap_or_default(),
            ));
        }
        Ok(builder.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn secret_with_defaults() {
        let c = SmtpConfig::from_secret_data(&data(&[
            ("host", "smtp.example.org"),
            ("from", "rostersync <noreply@example.org>"),
        ]))
        .expect("valid");
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("smtp.example.org", 587, TlsMode::Starttls)
        );
        assert_eq!(c.from.email.to_string(), "noreply@example.org");
        assert_eq!(c.username, None);
        assert!(c.transport().is_ok());
    }

    #[test]
    fn secret_with_everything_and_a_redacted_password() {
        let c = SmtpConfig::from_secret_data(&data(&[
            ("host", "mail.example.org"),
            ("port", "2465"),
            ("tls", "TLS"),
            ("username", "bot"),
            ("password", " s3cr3t "),
            ("from", "noreply@example.org"),
            ("timeoutSeconds", "5"),
        ]))
        .expect("valid");
        assert_eq!((c.port, c.tls), (2465, TlsMode::Tls));
        assert_eq!(c.password.as_deref(), Some(" s3cr3t "));
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(c.transport().is_ok());
    }

    #[test]
    fn an_extra_ca_is_added_to_the_tls_transports() {
        let ca = crate::tls::test_ca();
        for tls in ["starttls", "tls", "none"] {
            let c = SmtpConfig::from_secret_data(&data(&[
                ("host", "127.0.0.1"),
                ("tls", tls),
                ("from", "noreply@example.org"),
            ]))
            .expect("valid")
            .with_extra_ca(Some(ca.clone()));
            assert_eq!(c.extra_ca.as_ref(), Some(&ca));
            assert!(c.transport().is_ok(), "{tls}");
            if tls != "none" {
                assert!(c.tls_parameters().is_ok(), "{tls}");
            }
            assert!(format!("{c:?}").contains("/test/ca.pem"), "{c:?}");
        }
    }

    #[test]
    fn credentials_over_plain_smtp_only_to_loopback() {
        // (host, tls, username, password, accepted)
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, bool);
        let cases: &[Case] = &[
            ("smtp.example.org", "none", Some("bot"), Some("pw"), false),
            ("smtp.example.org", "none", Some("bot"), None, false),
            ("smtp.example.org", "none", None, None, true),
            (
                "smtp.example.org",
                "starttls",
                Some("bot"),
                Some("pw"),
                true,
            ),
            ("smtp.example.org", "tls", Some("bot"), Some("pw"), true),
            ("10.0.0.5", "none", Some("bot"), Some("pw"), false),
            ("127.0.0.1", "none", Some("bot"), Some("pw"), true),
            ("127.8.9.10", "none", Some("bot"), Some("pw"), true),
            ("localhost", "none", Some("bot"), Some("pw"), true),
            ("LocalHost.", "none", Some("bot"), Some("pw"), true),
            ("[::1]", "none", Some("bot"), Some("pw"), true),
            (
                "localhost.evil.example",
                "none",
                Some("bot"),
                Some("pw"),
                false,
            ),
            ("127.0.0.1.nip.io", "none", Some("bot"), Some("pw"), false),
            ("[::ffff:10.0.0.1]", "none", Some("bot"), Some("pw"), false),
            ("0.0.0.0", "none", Some("bot"), Some("pw"), false),
        ];
        for (host, tls, user, password, accepted) in cases {
            let mut values: BTreeMap<String, String> = [
                ("host", *host),
                ("tls", *tls),
                ("from", "noreply@example.org"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            if let Some(u) = user {
                values.insert("username".into(), u.to_string());
            }
            if let Some(p) = password {
                values.insert("password".into(), p.to_string());
            }
            let got = SmtpConfig::from_map(&values);
            assert_eq!(got.is_ok(), *accepted, "{host} {tls} {user:?}: {got:?}");
            if let Err(e) = got {
                let e = e.to_string();
                assert!(
                    e.contains("`tls`") && e.contains("starttls") && e.contains(host),
                    "{e}"
                );
                assert!(!e.contains("pw"), "the password leaked: {e}");
            }
        }
    }

    #[test]
    fn errors_name_the_key_and_never_the_password() {
        let err = |pairs: &[(&str, &str)]| {
            SmtpConfig::from_map(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
            .expect_err("invalid")
            .to_string()
        };
        assert!(err(&[("from", "a@b.c")]).contains("`host` is required"));
        assert!(err(&[("host", "h")]).contains("`from` is required"));
        assert!(err(&[("host", "h"), ("from", "a@b.c"), ("port", "x")]).contains("`port`"));
        assert!(err(&[("host", "h"), ("from", "a@b.c"), ("tls", "ssl3")]).contains("`tls`"));
        assert!(err(&[("host", "h"), ("from", "not an address")]).contains("`from`"));
        assert!(err(&[("host", "smtp://h:25"), ("from", "a@b.c")]).contains("`host`"));
        let e = err(&[("host", "h"), ("from", "a@b.c"), ("password", "hunter2")]);
        assert!(e.contains("`username`") && !e.contains("hunter2"), "{e}");
        let bad = SmtpConfig::from_secret_data(
            &[("password".to_string(), ByteString(vec![0xff, 0xfe]))]
                .into_iter()
                .collect(),
        )
        .expect_err("not utf-8")
        .to_string();
        assert!(bad.contains("password") && bad.contains("UTF-8"), "{bad}");
    }
}
