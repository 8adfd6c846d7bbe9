//! SMTP configuration: from a Kubernetes Secret's data (the operator) or from flags/environment
//! (local use), and the lettre transport built from it. The password never appears in `Debug`
//! output, logs or errors.
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::ByteString;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

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

    /// The lettre transport for this configuration.
    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConfigError> {
        let builder = match self.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host)
                .map_err(|source| ConfigError::Transport {
                host: self.host.clone(),
                source,
            })?,
            TlsMode::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host).map_err(|source| {
                    ConfigError::Transport {
                        host: self.host.clone(),
                        source,
                    }
                })?
            }
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

/// SMTP flags for local use (`rostersync controller --smtp-host ...`), each also read from the
/// environment (`ROSTERSYNC_SMTP_HOST`, ...). In a cluster, prefer the Secret.
#[derive(Clone, Default, clap::Args)]
pub struct SmtpArgs {
    /// SMTP server host name.
    #[arg(long, env = "ROSTERSYNC_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port (default: 25 for none, 587 for starttls, 465 for tls).
    #[arg(long, env = "ROSTERSYNC_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// How the connection is secured.
    #[arg(long, env = "ROSTERSYNC_SMTP_TLS", value_enum)]
    pub smtp_tls: Option<TlsMode>,
    /// SMTP user name (AUTH PLAIN/LOGIN).
    #[arg(long, env = "ROSTERSYNC_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// SMTP password; prefer the environment variable to the flag.
    #[arg(long, env = "ROSTERSYNC_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// The From address, e.g. "rostersync <rostersync@example.org>".
    #[arg(long, env = "ROSTERSYNC_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Connect and command timeout in seconds (default 30).
    #[arg(long, env = "ROSTERSYNC_SMTP_TIMEOUT_SECONDS")]
    pub smtp_timeout_seconds: Option<u64>,
}

impl fmt::Debug for SmtpArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpArgs")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_tls", &self.smtp_tls)
            .field("smtp_username", &self.smtp_username)
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| "<redacted>"),
            )
            .field("smtp_from", &self.smtp_from)
            .finish()
    }
}

impl SmtpArgs {
    /// Whether any SMTP flag is set (emails are enabled by configuring at least the host).
    pub fn is_set(&self) -> bool {
        self.smtp_host.is_some()
    }

    pub fn config(&self) -> Result<SmtpConfig, ConfigError> {
        let host = self.smtp_host.clone().ok_or(ConfigError::Missing("host"))?;
        if host.contains(['/', ' ', ':']) && !host.starts_with('[') {
            return Err(ConfigError::Invalid {
                key: "host",
                why: format!("{host:?} must be a host name or IP address, without scheme or port"),
            });
        }
        let tls = self.smtp_tls.unwrap_or(TlsMode::Starttls);
        let port = self.smtp_port.unwrap_or(tls.default_port());
        if port == 0 {
            return Err(ConfigError::Invalid {
                key: "port",
                why: "0 is not a port number (1-65535)".into(),
            });
        }
        let from_text = self.smtp_from.clone().ok_or(ConfigError::Missing("from"))?;
        let from: Mailbox = from_text.parse().map_err(|e| ConfigError::Invalid {
            key: "from",
            why: format!("{from_text:?} is not an email address ({e})"),
        })?;
        if self.smtp_password.is_some() && self.smtp_username.is_none() {
            return Err(ConfigError::Invalid {
                key: "username",
                why: "a password is set without a username".into(),
            });
        }
        Ok(SmtpConfig {
            host,
            port,
            tls,
            username: self.smtp_username.clone(),
            password: self.smtp_password.clone(),
            from,
            timeout: Duration::from_secs(self.smtp_timeout_seconds.unwrap_or(30).max(1)),
        })
    }
}

/// The operator's email options, to flatten into `rostersync controller`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct NotifyArgs {
    /// The Secret (`namespace/name`) with the SMTP settings (keys: host, port, tls, username,
    /// password, from, timeoutSeconds). Takes precedence over the --smtp-* flags.
    #[arg(long, env = "ROSTERSYNC_SMTP_SECRET")]
    pub smtp_secret: Option<String>,
    #[command(flatten)]
    pub smtp: SmtpArgs,
    /// Repeats of the same problem are emailed at most once per this interval (e.g. 24h, 90m).
    #[arg(long, env = "ROSTERSYNC_EMAIL_REPEAT_INTERVAL", default_value = "24h", value_parser = parse_interval)]
    pub email_repeat_interval: chrono::Duration,
}

impl NotifyArgs {
    /// The SMTP configuration, or `None` when none is configured (emails are then not sent:
    /// enqueued ones wait in the outbox).
    pub async fn smtp_config(
        &self,
        client: &kube::Client,
    ) -> Result<Option<SmtpConfig>, ConfigError> {
        if let Some(secret) = &self.smtp_secret {
            let (ns, name) = secret.split_once('/').ok_or_else(|| ConfigError::Invalid {
                key: "smtp-secret",
                why: format!("{secret:?} must be namespace/name"),
            })?;
            return SmtpConfig::from_secret(client, ns, name).await.map(Some);
        }
        if self.smtp.is_set() {
            return self.smtp.config().map(Some);
        }
        Ok(None)
    }
}

/// Parses an interval such as `24h`, `90m`, `1h30m` or `PT24H`.
pub fn parse_interval(s: &str) -> Result<chrono::Duration, String> {
    let d: jiff::SignedDuration = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like 24h or 90m: {e}"))?;
    if d.is_negative() {
        return Err(format!("{s:?} is negative"));
    }
    chrono::Duration::from_std(d.unsigned_abs()).map_err(|e| format!("{s:?}: {e}"))
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
    fn repeat_intervals_parse() {
        assert_eq!(parse_interval("24h"), Ok(chrono::Duration::hours(24)));
        assert_eq!(parse_interval("1h30m"), Ok(chrono::Duration::minutes(90)));
        assert_eq!(parse_interval("PT2H"), Ok(chrono::Duration::hours(2)));
        assert!(parse_interval("soon").is_err());
        assert!(parse_interval("-1h").is_err());
    }

    #[test]
    fn notify_args_from_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            notify: NotifyArgs,
        }
        let cli = Cli::try_parse_from([
            "x",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-tls",
            "none",
            "--smtp-from",
            "a@b.example",
            "--email-repeat-interval",
            "6h",
        ])
        .expect("parses");
        assert_eq!(cli.notify.email_repeat_interval, chrono::Duration::hours(6));
        let c = cli.notify.smtp.config().expect("valid");
        assert_eq!((c.port, c.tls), (25, TlsMode::None));
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
