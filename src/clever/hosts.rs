//! The hosts Clever credentials may be sent to: the operator's allowlist (`--allowed-api-host`),
//! never the district's choice. A RosterConnection's `apiBaseUrl` is written by whoever may edit
//! it; before any HTTP client is built, every URL the credentials would go to (the API base, and
//! the oauth tokens host derived from it) is checked here. Pure: no I/O.
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::client::oauth_base_for;

/// The hosts Clever itself uses: the Data API and the oauth tokens host (app credentials).
pub const CLEVER_API_HOSTS: [&str; 2] = ["api.clever.com", "clever.com"];

/// One allowed `HOST[:PORT]`. Without a port it allows the scheme's default port only (443 for
/// https), as a URL without a port (or with its scheme's default port) has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    host: HostName,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostName {
    /// Lowercase, without a trailing dot.
    Domain(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostName::Domain(d) => f.write_str(d),
            HostName::V4(a) => write!(f, "{a}"),
            HostName::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

fn host_name(host: Host<&str>) -> HostName {
    match host {
        Host::Domain(d) => HostName::Domain(d.trim_end_matches('.').to_ascii_lowercase()),
        Host::Ipv4(a) => HostName::V4(a),
        Host::Ipv6(a) => HostName::V6(a),
    }
}

impl AllowedHost {
    /// Parses `HOST[:PORT]`: a DNS name, an IPv4 address or a bracketed IPv6 address
    /// (`[::1]:8080`); no scheme, path or user info.
    pub fn parse(value: &str) -> Result<AllowedHost, String> {
        let bad = |why: &str| {
            format!(
                "{value:?} is not HOST[:PORT] ({why}); e.g. api.clever.com, 127.0.0.1:8080 or \
                 [::1]:8080"
            )
        };
        let value_trimmed = value.trim();
        if value_trimmed.is_empty() {
            return Err(bad("empty"));
        }
        if value_trimmed.contains(['/', '@', '?', '#', ' ']) {
            return Err(bad("only a host and a port: no scheme, path or user info"));
        }
        // Let the URL parser do the host syntax (IDNA, IPv4 forms, IPv6 brackets).
        let url =
            Url::parse(&format!("https://{value_trimmed}/")).map_err(|e| bad(&e.to_string()))?;
        let host = url.host().ok_or_else(|| bad("no host"))?;
        let host = host_name(host);
        if matches!(&host, HostName::Domain(d) if d.is_empty()) {
            return Err(bad("no host"));
        }
        // `url` drops an explicit :443 for https; keep what was written.
        let port = match value_trimmed.rsplit_once(':') {
            Some((head, p)) if !head.ends_with(':') && !p.contains(']') => Some(
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            _ => None,
        };
        Ok(AllowedHost { host, port })
    }

    /// Whether this entry allows `url`'s host and port.
    fn allows(&self, host: &HostName, url: &Url) -> bool {
        if &self.host != host {
            return false;
        }
        match self.port {
            // No port given: the scheme's default only.
            None => url.port().is_none(),
            Some(p) => url.port_or_known_default() == Some(p),
        }
    }
}

/// The operator's list of hosts Clever credentials may go to. Empty means no restriction: only
/// `rostersync sync` run by a person (no `--allowed-api-host`) has an empty list; the controller
/// always has one and passes it to every sync Job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedApiHosts(Vec<AllowedHost>);

/// A URL the credentials would be sent to, outside the allowlist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HostNotAllowed {
    /// The offending host (and port), as the message names it.
    pub host: String,
    pub message: String,
}

impl AllowedApiHosts {
    /// Clever's own hosts ([`CLEVER_API_HOSTS`]), the controller's default.
    pub fn clever() -> AllowedApiHosts {
        AllowedApiHosts(
            CLEVER_API_HOSTS
                .iter()
                .filter_map(|h| AllowedHost::parse(h).ok())
                .collect(),
        )
    }

    pub fn new(hosts: Vec<AllowedHost>) -> AllowedApiHosts {
        AllowedApiHosts(hosts)
    }

    /// Whether any host is allowed (an empty list: a standalone run).
    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries as `HOST[:PORT]`, as the flag takes them.
    pub fn to_args(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Checks every URL credentials would be sent to for this API base: the base itself and the
    /// oauth tokens host derived from it ([`oauth_base_for`]). `Ok` when all are allowed.
    pub fn check_api_base(&self, api_base: &Url) -> Result<(), HostNotAllowed> {
        self.check(api_base, "apiBaseUrl")?;
        let oauth = oauth_base_for(api_base);
        if oauth != *api_base {
            self.check(&oauth, "the oauth tokens URL derived from apiBaseUrl")?;
        }
        Ok(())
    }

    /// Checks one URL (`what` names it in the message).
    pub fn check(&self, url: &Url, what: &str) -> Result<(), HostNotAllowed> {
        let shown = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => "(no host)".to_string(),
        };
        let refuse = |why: String| HostNotAllowed {
            host: shown.clone(),
            message: why,
        };
        // User info would be sent as credentials of its own, and reads like a host to a person
        // (`https://api.clever.com@evil.example`): never allowed, whatever the list says.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(format!(
                "{what} has user info before its host ({shown} is the host it points to): remove \
                 the part before '@'"
            )));
        }
        if self.is_unrestricted() {
            return Ok(());
        }
        let Some(host) = url.host() else {
            return Err(refuse(format!("{what} has no host")));
        };
        let host = host_name(host);
        if self.0.iter().any(|a| a.allows(&host, url)) {
            return Ok(());
        }
        Err(refuse(format!(
            "{what} points to {shown}, which is not an allowed Clever API host (allowed: {}); \
             Clever credentials are only sent to hosts the operator allows. Use Clever's address \
             (https://api.clever.com), or ask the platform team to add {shown} with the \
             controller flag --allowed-api-host={shown} (chart value clever.allowedApiHosts)",
            self.to_args().join(", ")
        )))
    }
}

/// Parses one `--allowed-api-host` value (clap value parser).
pub fn parse_allowed_host(value: &str) -> Result<AllowedHost, String> {
    AllowedHost::parse(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(hosts: &[&str]) -> AllowedApiHosts {
        AllowedApiHosts::new(
            hosts
                .iter()
                .map(|h| AllowedHost::parse(h).unwrap_or_else(|e| panic!("{e}")))
                .collect(),
        )
    }

    #[test]
    fn urls_against_the_allowlist() {
        let clever = AllowedApiHosts::clever();
        let emulator = list(&["127.0.0.1:8080", "[::1]:9090", "LocalHost:7000"]);
        let cases: &[(&AllowedApiHosts, &str, bool)] = &[
            (&clever, "https://api.clever.com", true),
            (&clever, "https://api.clever.com/", true),
            (&clever, "https://api.clever.com:443", true),
            (&clever, "https://API.Clever.COM", true),
            (&clever, "https://api.clever.com.", true),
            (&clever, "https://api.clever.com./v3.0", true),
            (&clever, "https://api.clever.com:8443", false),
            (&clever, "http://api.clever.com", true),
            (&clever, "https://api.clever.com.evil.example", false),
            (&clever, "https://evil.example/api.clever.com", false),
            (&clever, "https://api.clever.com@evil.example:443", false),
            (&clever, "https://api.clever.com:443@evil.example", false),
            (&clever, "https://user:pw@api.clever.com", false),
            (&clever, "https://evil.example#@api.clever.com", false),
            (&clever, "https://evil.example\\@api.clever.com", false),
            (&clever, "https://api-clever.com", false),
            (&clever, "https://apI.clever.com.:443/", true),
            (&clever, "https://127.0.0.1", false),
            (&clever, "https://clever.com", true),
            (&clever, "https://www.clever.com", false),
            (&emulator, "http://127.0.0.1:8080", true),
            (&emulator, "http://127.0.0.1:8081", false),
            (&emulator, "http://127.0.0.1", false),
            (&emulator, "http://127.1:8080", true),
            (&emulator, "http://[::1]:9090/base", true),
            (&emulator, "http://[0:0::1]:9090", true),
            (&emulator, "http://[::1]:8080", false),
            (&emulator, "http://[::ffff:127.0.0.1]:8080", false),
            (&emulator, "http://localhost:7000", true),
            (&emulator, "http://localhost.:7000", true),
            (&emulator, "http://localhost:8080", false),
            (&emulator, "https://api.clever.com", false),
        ];
        for (allowed, url, want) in cases {
            let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            let got = allowed.check_api_base(&parsed);
            assert_eq!(got.is_ok(), *want, "{url}: {got:?}");
        }
        // No list: any host (a person's standalone run), but never user info.
        let any = AllowedApiHosts::default();
        assert!(
            any.check_api_base(&Url::parse("https://anything.example").unwrap())
                .is_ok()
        );
        assert!(
            any.check_api_base(&Url::parse("https://a@anything.example").unwrap())
                .is_err()
        );
    }

    #[test]
    fn the_oauth_host_is_checked_too() {
        // api.clever.com's tokens live on clever.com: allowing only the API host is not enough
        // for app credentials.
        let only_api = list(&["api.clever.com"]);
        let err = only_api
            .check_api_base(&Url::parse("https://api.clever.com").unwrap())
            .expect_err("clever.com is not allowed");
        assert!(err.message.contains("oauth tokens URL"), "{err}");
        assert_eq!(err.host, "clever.com");
    }

    #[test]
    fn the_message_names_the_host_the_flag_and_the_chart_value() {
        let err = AllowedApiHosts::clever()
            .check_api_base(&Url::parse("http://127.0.0.1:4321/x").unwrap())
            .expect_err("not allowed");
        assert_eq!(err.host, "127.0.0.1:4321");
        for part in [
            "127.0.0.1:4321",
            "--allowed-api-host=127.0.0.1:4321",
            "clever.allowedApiHosts",
            "api.clever.com, clever.com",
        ] {
            assert!(err.message.contains(part), "{part} missing: {err}");
        }
        let err = AllowedApiHosts::clever()
            .check_api_base(&Url::parse("https://api.clever.com@evil.example").unwrap())
            .expect_err("user info");
        assert!(err.message.contains("evil.example"), "{err}");
    }

    #[test]
    fn flag_values() {
        let ok: &[(&str, &str)] = &[
            ("api.clever.com", "api.clever.com"),
            ("API.clever.com.", "api.clever.com"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("[::1]:8080", "[::1]:8080"),
            ("[::1]", "[::1]"),
            ("api.clever.com:443", "api.clever.com:443"),
            (" clever.com ", "clever.com"),
        ];
        for (value, shown) in ok {
            let h = AllowedHost::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(h.to_string(), *shown, "{value}");
        }
        for bad in [
            "",
            "https://api.clever.com",
            "api.clever.com/v3.0",
            "user@api.clever.com",
            "api.clever.com:port",
            "api.clever.com:70000",
            "::1",
            "[::1",
            "a b",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad:?} was accepted");
        }
        // An explicit default port still matches a URL without one.
        let explicit = list(&["api.clever.com:443", "clever.com:443"]);
        assert!(
            explicit
                .check_api_base(&Url::parse("https://api.clever.com").unwrap())
                .is_ok()
        );
    }
}
