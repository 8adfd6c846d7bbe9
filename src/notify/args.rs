//! The email flags of `rostersync controller`: SMTP settings for local use (each also read from the
//! environment; a Secret's keys are read into the same [`SmtpArgs`]) and how often a repeated
//! problem is emailed.
use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;

use super::config::{ConfigError, SmtpConfig, TlsMode};

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
        if tls == TlsMode::None
            && (self.smtp_username.is_some() || self.smtp_password.is_some())
            && !is_loopback_host(&host)
        {
            return Err(ConfigError::Invalid {
                key: "tls",
                why: format!(
                    "`none` would send the SMTP username and password to {host} in clear text; \
                     use `starttls` (port 587) or `tls` (port 465), or remove the credentials \
                     (plain SMTP with credentials is allowed only to a loopback host: localhost, \
                     127.0.0.0/8, [::1])"
                ),
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
            extra_ca: None,
        })
    }
}

/// Whether `host` (an SMTP host setting) is this machine: `localhost`, 127.0.0.0/8 or `::1`
/// (bracketed or not). Only there may credentials travel over plain SMTP.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_end_matches('.');
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    pub email_repeat_interval: jiff::SignedDuration,
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
pub fn parse_interval(s: &str) -> Result<jiff::SignedDuration, String> {
    let d: jiff::SignedDuration = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like 24h or 90m: {e}"))?;
    if d.is_negative() {
        return Err(format!("{s:?} is negative"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_intervals_parse() {
        assert_eq!(
            parse_interval("24h"),
            Ok(jiff::SignedDuration::from_hours(24))
        );
        assert_eq!(
            parse_interval("1h30m"),
            Ok(jiff::SignedDuration::from_mins(90))
        );
        assert_eq!(
            parse_interval("PT2H"),
            Ok(jiff::SignedDuration::from_hours(2))
        );
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
        assert_eq!(
            cli.notify.email_repeat_interval,
            jiff::SignedDuration::from_hours(6)
        );
        let c = cli.notify.smtp.config().expect("valid");
        assert_eq!((c.port, c.tls), (25, TlsMode::None));
    }
}
