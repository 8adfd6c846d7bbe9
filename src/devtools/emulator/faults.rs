//! Fault injection: rules that make the Nth matching request (and the next `times - 1`) fail in
//! a chosen way. Pure bookkeeping; the server applies the outcome.
use serde::{Deserialize, Serialize};

/// One fault rule. JSON form (test API): `{"path":"/v3.0/users","nth":2,"times":1,"fault":"status","status":503}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The rule applies to requests whose path starts with this (any API path when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The first matching request affected, counting from 1 (after the rule was added).
    #[serde(default = "one")]
    pub nth: u64,
    /// How many consecutive matching requests are affected (from `nth` on).
    #[serde(default = "one")]
    pub times: u64,
    #[serde(flatten)]
    pub kind: FaultKind,
}

fn one() -> u64 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status (500, 502, 503, ...) and a `{"message"}` body.
    Status { status: u16 },
    /// Answer 429 with an empty body and `X-RateLimit-Reset` `reset_secs` from now.
    RateLimit {
        #[serde(default = "one")]
        reset_secs: u64,
    },
    /// Delay the response by `ms` milliseconds (then answer normally).
    Delay { ms: u64 },
    /// Answer normally but cut the JSON body in half (Content-Length matches the cut body).
    TruncatedJson,
    /// Answer 404 with an HTML page, like a proxy or a wrong base URL.
    #[serde(rename = "html_404")]
    Html404,
    /// Answer 200 with an HTML page (a captive portal, a login page of a proxy).
    #[serde(rename = "html_200")]
    Html200,
    /// Answer 200 with `{}`: JSON, but not a list page.
    EmptyObject,
    /// Answer 200 with `{"data": null}`.
    NullData,
    /// Answer normally, but the page's `next` link points back to the list's first page.
    PagingCycle,
    /// Answer normally, but the `next` link is always a new URL (`drift=N`), even on the last page.
    DriftingCursor,
    /// Answer normally, but without the `next` link (a list that stops mid-roster).
    DropNext,
    /// Answer 302 to `location`.
    Redirect { location: String },
    /// Answer normally, but with `links` before `data`, and the page's last record carrying a
    /// `links` array of its own whose `next` is `/v3.0/decoy` (a page whose tail misleads a
    /// client that reads its next link from the end of the body).
    DecoyNextLink,
}

impl Fault {
    pub fn new(path: Option<&str>, nth: u64, times: u64, kind: FaultKind) -> Fault {
        Fault {
            path: path.map(str::to_owned),
            nth,
            times,
            kind,
        }
    }

    /// Parses the CLI form: `fault=status,status=503,path=/v3.0/users,nth=3,times=2`
    /// (`fault` is one of `status`, `rate_limit`, `delay`, `truncated_json`, `html_404`, `html_200`,
    /// `empty_object`, `null_data`, `paging_cycle`, `drifting_cursor`, `drop_next`, `redirect`,
    /// `decoy_next_link`).
    pub fn parse_spec(spec: &str) -> Result<Fault, String> {
        let mut map = serde_json::Map::new();
        for pair in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            let value = match v.parse::<u64>() {
                Ok(n) if k != "path" => serde_json::Value::from(n),
                _ => serde_json::Value::from(v),
            };
            map.insert(k.to_owned(), value);
        }
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| format!("invalid fault `{spec}`: {e}"))
    }
}

/// What the server does with one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultOutcome {
    pub delay_ms: u64,
    /// The first active non-delay fault.
    pub action: Option<FaultKind>,
}

/// Active rules and how many matching requests each has seen.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<(Fault, u64)>,
}

impl Faults {
    pub fn add(&mut self, fault: Fault) {
        self.rules.push((fault, 0));
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.rules.iter().map(|(f, _)| f.clone()).collect()
    }

    /// Counts the request against every matching rule and returns what to do.
    pub fn on_request(&mut self, path: &str) -> FaultOutcome {
        let mut out = FaultOutcome::default();
        for (fault, seen) in &mut self.rules {
            if !fault.path.as_deref().is_none_or(|p| path.starts_with(p)) {
                continue;
            }
            *seen += 1;
            let active = *seen >= fault.nth && *seen - fault.nth < fault.times;
            if !active {
                continue;
            }
            match &fault.kind {
                FaultKind::Delay { ms } => out.delay_ms += ms,
                other if out.action.is_none() => out.action = Some(other.clone()),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_and_times_select_the_right_requests() {
        let mut f = Faults::default();
        f.add(Fault::new(
            Some("/v3.0/users"),
            2,
            2,
            FaultKind::Status { status: 503 },
        ));
        f.add(Fault::new(None, 1, u64::MAX, FaultKind::Delay { ms: 5 }));
        let got: Vec<Option<FaultKind>> = [
            "/v3.0/users",
            "/v3.0/schools",
            "/v3.0/users",
            "/v3.0/users",
            "/v3.0/users",
        ]
        .iter()
        .map(|p| f.on_request(p).action)
        .collect();
        let e = Some(FaultKind::Status { status: 503 });
        assert_eq!(got, [None, None, e.clone(), e, None]);
        assert_eq!(f.on_request("/x").delay_ms, 5);
    }

    #[test]
    fn parses_the_cli_form_and_json() {
        let f = Fault::parse_spec("fault=status,status=502,path=/v3.0/sections,nth=3").unwrap();
        assert_eq!(
            f,
            Fault::new(
                Some("/v3.0/sections"),
                3,
                1,
                FaultKind::Status { status: 502 }
            )
        );
        let f = Fault::parse_spec("fault=truncated_json").unwrap();
        assert_eq!(f.kind, FaultKind::TruncatedJson);
        assert_eq!(
            Fault::parse_spec("fault=html_404,nth=2").unwrap().kind,
            FaultKind::Html404
        );
        assert_eq!(
            Fault::parse_spec("fault=html_200").unwrap().kind,
            FaultKind::Html200
        );
        assert!(Fault::parse_spec("fault=nope").is_err());
        let j: Fault = serde_json::from_str(r#"{"fault":"rate_limit","times":3}"#).unwrap();
        assert_eq!(j.kind, FaultKind::RateLimit { reset_secs: 1 });
        assert_eq!(j.times, 3);
    }
}
