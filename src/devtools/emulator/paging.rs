//! Pure paging over an ascending-id list: `limit`, `starting_after`, `ending_before`, and the
//! `self`/`next`/`prev` links, the way Clever pages.
use std::fmt::Write as _;

/// Page size when the request has no `limit` (Clever does not document its default reliably;
/// clients should always pass `limit`).
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` accepted; above it the answer is 413.
pub const MAX_LIMIT: usize = 10_000;

/// The paging parameters of one list request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
    /// `role` for users lists.
    pub role: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum QueryError {
    /// 400.
    Bad(String),
    /// 413.
    TooLarge(usize),
}

impl PageQuery {
    pub fn parse(query: &str) -> Result<PageQuery, QueryError> {
        let mut q = PageQuery::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "limit" => {
                    let n: usize = v
                        .parse()
                        .map_err(|_| QueryError::Bad("limit must be a positive integer".into()))?;
                    if n == 0 {
                        return Err(QueryError::Bad("limit must be a positive integer".into()));
                    }
                    if n > MAX_LIMIT {
                        return Err(QueryError::TooLarge(n));
                    }
                    q.limit = Some(n);
                }
                "starting_after" => q.starting_after = Some(v.into_owned()),
                "ending_before" => q.ending_before = Some(v.into_owned()),
                "role" => q.role = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(q)
    }

    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }
}

/// Selects the page from `items` (ascending by `id`): the records to serve, in order.
/// `keep` filters records (e.g. by role).
pub fn select<'a, T>(
    items: &'a [T],
    id: impl Fn(&T) -> &str,
    q: &PageQuery,
    keep: impl Fn(&T) -> bool,
) -> Vec<&'a T> {
    let limit = q.effective_limit();
    let mut out = Vec::with_capacity(limit.min(items.len()));
    if let Some(before) = &q.ending_before {
        let end = items.partition_point(|e| id(e) < before.as_str());
        out.extend(items[..end].iter().rev().filter(|e| keep(e)).take(limit));
        out.reverse();
    } else {
        let start = q.starting_after.as_ref().map_or(0, |after| {
            items.partition_point(|e| id(e) <= after.as_str())
        });
        out.extend(items[start..].iter().filter(|e| keep(e)).take(limit));
    }
    out
}

/// `{"rel":..,"uri":..}` links for a page: `self` always; `next` when the page is full (so it may
/// lead to an empty page, as Clever's can); `prev` when the page is not empty and was reached by a
/// cursor.
pub fn links(
    path: &str,
    q: &PageQuery,
    first: Option<&str>,
    last: Option<&str>,
    count: usize,
) -> String {
    let base = |extra: Option<(&str, &str)>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if let Some(role) = &q.role {
            s.append_pair("role", role);
        }
        if let Some(limit) = q.limit {
            s.append_pair("limit", &limit.to_string());
        }
        match extra {
            Some((k, v)) => {
                s.append_pair(k, v);
            }
            None => {
                if let Some(a) = &q.starting_after {
                    s.append_pair("starting_after", a);
                }
                if let Some(b) = &q.ending_before {
                    s.append_pair("ending_before", b);
                }
            }
        }
        let query = s.finish();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    };
    let mut out = String::from("[");
    let mut push = |rel: &str, uri: String| {
        if out.len() > 1 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"rel":"{rel}","uri":{}}}"#,
            serde_json::Value::String(uri)
        );
    };
    push("self", base(None));
    if let Some(last) = last.filter(|_| count == q.effective_limit()) {
        push("next", base(Some(("starting_after", last))));
    }
    if let Some(first) = first.filter(|_| q.starting_after.is_some() || q.ending_before.is_some()) {
        push("prev", base(Some(("ending_before", first))));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> PageQuery {
        PageQuery::parse(s).unwrap()
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(q("").effective_limit(), DEFAULT_LIMIT);
        assert_eq!(
            PageQuery::parse("limit=10001"),
            Err(QueryError::TooLarge(10001))
        );
        assert!(matches!(
            PageQuery::parse("limit=0"),
            Err(QueryError::Bad(_))
        ));
        assert!(matches!(
            PageQuery::parse("limit=x"),
            Err(QueryError::Bad(_))
        ));
        assert_eq!(q("limit=10000").effective_limit(), 10000);
    }

    #[test]
    fn cursors_select_the_right_records() {
        let ids = ["a", "b", "c", "d", "e"];
        let sel = |query: &str, keep: fn(&&str) -> bool| -> Vec<&str> {
            select(&ids, |s| s, &q(query), keep)
                .into_iter()
                .copied()
                .collect()
        };
        assert_eq!(sel("limit=2", |_| true), ["a", "b"]);
        assert_eq!(sel("limit=2&starting_after=b", |_| true), ["c", "d"]);
        assert_eq!(sel("limit=2&starting_after=bb", |_| true), ["c", "d"]);
        assert_eq!(sel("limit=2&ending_before=d", |_| true), ["b", "c"]);
        assert!(sel("limit=9&ending_before=a", |_| true).is_empty());
        assert_eq!(sel("limit=2", |s| *s != "b"), ["a", "c"]);
        assert!(sel("limit=2&starting_after=e", |_| true).is_empty());
    }

    #[test]
    fn next_keeps_limit_and_role_and_adds_starting_after() {
        let l = links(
            "/v3.0/users",
            &q("role=student&limit=2"),
            Some("a"),
            Some("b"),
            2,
        );
        assert_eq!(
            l,
            r#"[{"rel":"self","uri":"/v3.0/users?role=student&limit=2"},{"rel":"next","uri":"/v3.0/users?role=student&limit=2&starting_after=b"}]"#
        );
        let l = links(
            "/v3.0/users",
            &q("limit=2&starting_after=b"),
            Some("c"),
            Some("c"),
            1,
        );
        assert_eq!(
            l,
            r#"[{"rel":"self","uri":"/v3.0/users?limit=2&starting_after=b"},{"rel":"prev","uri":"/v3.0/users?limit=2&ending_before=c"}]"#
        );
    }
}
