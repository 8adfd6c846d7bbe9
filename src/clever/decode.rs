//! Pure decoding of list pages: each `data[]` entry is decoded on its own so one bad record is a
//! per-record problem, never a failed page.
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::models::Link;

/// One decoded record, or the problem that kept it from decoding.
pub type Decoded<T> = Result<T, RecordProblem>;

/// A record that could not be decoded. The message names the field and what was expected, never
/// the value (records hold children's personal data).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record {}: {message}", id.as_deref().unwrap_or("(no id)"))]
pub struct RecordProblem {
    /// The record's Clever id, when it has a readable one.
    pub id: Option<String>,
    pub message: String,
}

/// A list page's envelope: `data` is required and must be an array (`{}` or `{"data": null}` is not
/// an empty page, it is a broken response).
#[derive(Deserialize)]
struct RawPage {
    data: Vec<RawItem>,
    #[serde(default)]
    links: Option<Vec<Link>>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default)]
    data: Value,
}

/// A decoded page: its records (in order) and its `links`.
pub struct Page<T> {
    pub records: Vec<Decoded<T>>,
    pub links: Vec<Link>,
    /// Records on the page, decoded or not (the paging rules count them all).
    pub total: usize,
}

/// Which records of a page to decode, from a record's JSON text (read what is needed, e.g. its
/// id with [`record_id`]). A predicate that cannot read what it needs should keep the record, so
/// that the decoder reports its problem.
pub type Keep = std::sync::Arc<dyn Fn(&RawValue) -> bool + Send + Sync>;

/// A record's JSON text, as [`Keep`] sees it.
pub use serde_json::value::RawValue;

/// A record's `id`, read without decoding the rest of it: the record is read up to its `id` and
/// no further (no allocation unless the id holds an escape); `None` when it has no string id.
pub fn record_id(record: &RawValue) -> Option<std::borrow::Cow<'_, str>> {
    match seek_field::<Text>(record.get(), "id") {
        Field::Found(Text(id)) => Some(id),
        Field::Absent | Field::Unreadable => None,
    }
}

/// One field of a record, as [`seek_field`] found it.
#[derive(Debug, PartialEq, Eq)]
pub enum Field<T> {
    Found(T),
    /// The object has no such field.
    Absent,
    /// Not an object, or the field does not decode as asked.
    Unreadable,
}

/// The first top-level field `name` of the JSON object `json`, decoded as `T`, reading the object
/// only up to that field. A page's records were validated as JSON when the page was read; this
/// reads one field of one of them without a second full parse.
pub fn seek_field<'de, T: Deserialize<'de>>(json: &'de str, name: &str) -> Field<T> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(json);
    let read = serde::Deserializer::deserialize_map(
        &mut de,
        FieldSeek {
            name,
            found: &mut found,
        },
    );
    match (read, found) {
        // Stopping at the field leaves the rest of the object unread, which the deserializer
        // reports as an error: the field was read all the same.
        (_, Some(value)) => Field::Found(value),
        (Ok(()), None) => Field::Absent,
        (Err(_), None) => Field::Unreadable,
    }
}

/// Reads an object's keys until `name`, then decodes its value into `found` and stops.
struct FieldSeek<'n, 'f, T> {
    name: &'n str,
    found: &'f mut Option<T>,
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for FieldSeek<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            if key == self.name {
                *self.found = Some(map.next_value::<T>()?);
                return Ok(());
            }
            map.next_value::<serde::de::IgnoredAny>()?;
        }
        Ok(())
    }
}

/// A JSON string, borrowed from the input unless it holds an escape.
struct Text<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The `next` link of a list page read from the page's tail, before the page is parsed: a guess,
/// so that the next page can be requested while this one is parsed. Clever ends a page with its
/// `links`; the last `"links":` key in the body is taken, and its array decoded. `None` when the
/// tail does not read so. The guess is only used when it equals the link the full parse finds
/// (`CleverClient::list`), so a page of another shape costs a wasted request, never a wrong page.
pub fn next_link_from_tail(body: &[u8]) -> Option<String> {
    const TAIL_BYTES: usize = 8 << 10;
    const KEY: &[u8] = b"\"links\"";
    // Links are a few hundred bytes at the end: a body without them is not searched through.
    let tail = &body[body.len().saturating_sub(TAIL_BYTES)..];
    let at = tail.windows(KEY.len()).rposition(|w| w == KEY)?;
    let rest = &tail[at + KEY.len()..];
    let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = rest.get(colon..)?.strip_prefix(b":")?;
    let mut de = serde_json::Deserializer::from_slice(rest);
    let links = Vec::<Link>::deserialize(&mut de).ok()?;
    super::models::next_link(&links).map(str::to_owned)
}

/// A list page's envelope with each record left as its JSON text.
#[derive(Deserialize)]
struct LazyPage<'a> {
    #[serde(borrow)]
    data: Vec<LazyItem<'a>>,
    #[serde(default)]
    links: Vec<Link>,
}

#[derive(Deserialize)]
struct LazyItem<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Pages with at least this many records are decoded on two threads.
const PARALLEL_RECORDS: usize = 2_000;

#[derive(Deserialize)]
struct FastPage<T> {
    data: Vec<FastItem<T>>,
    #[serde(default)]
    links: Vec<Link>,
}

#[derive(Deserialize)]
struct FastItem<T> {
    data: T,
}

/// Decodes a list page body. Fails only when the envelope itself is not JSON of the right shape;
/// the caller turns that into an error naming the URL.
///
/// The common case (every record decodes) is parsed straight into `T`; only a page with a bad
/// record is parsed again record by record (through `serde_json::Value`) to find which.
pub fn decode_page<T: DeserializeOwned>(body: &[u8]) -> Result<Page<T>, serde_json::Error> {
    if let Ok(fast) = serde_json::from_slice::<FastPage<T>>(body) {
        let total = fast.data.len();
        let records = fast.data.into_iter().map(|item| Ok(item.data)).collect();
        return Ok(Page {
            records,
            links: fast.links,
            total,
        });
    }
    Ok(decode_values(serde_json::from_slice(body)?, |_| true))
}

/// The slow path: the records `keep` accepts, each decoded from its `serde_json::Value` (to name
/// a bad record's field).
fn decode_values<T: DeserializeOwned>(raw: RawPage, keep: impl Fn(&Value) -> bool) -> Page<T> {
    let total = raw.data.len();
    let records = raw
        .data
        .into_iter()
        .filter(|item| keep(&item.data))
        .map(|item| decode_record(item.data))
        .collect();
    Page {
        records,
        links: raw.links.unwrap_or_default(),
        total,
    }
}

/// Like [`decode_page`], but decodes only the records `keep` accepts; the others are only parsed
/// (about a fifth of the cost of decoding a user into its model, measured), never returned. A
/// sync reads every student of a district but keeps those of the shared sections. `envelope` is
/// told the page's record count and `links` as soon as they are known, before the records are
/// decoded (the client sends the next request then).
pub fn decode_page_with<T: DeserializeOwned + Send>(
    body: &[u8],
    keep: &(dyn Fn(&RawValue) -> bool + Send + Sync),
    envelope: impl FnOnce(usize, &[Link]),
) -> Result<Page<T>, serde_json::Error> {
    // The body is checked as UTF-8 once, whole: parsed from a byte slice, each borrowed record
    // would be checked again on its own (2% of a resync's staging samples).
    let lazy = std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str::<LazyPage>(text).ok());
    let Some(lazy) = lazy else {
        // An envelope of an unusual shape (`links: null`, an item without `data`): the full
        // decoder's slow path, filtered.
        let page = decode_values(serde_json::from_slice(body)?, |value| {
            serde_json::value::to_raw_value(value).map_or(true, |raw| keep(&raw))
        });
        envelope(page.total, &page.links);
        return Ok(page);
    };
    let total = lazy.data.len();
    envelope(total, &lazy.links);
    let decode = |items: &[LazyItem]| -> Vec<Decoded<T>> {
        items
            .iter()
            .filter(|item| keep(item.data))
            .map(|item| {
                serde_json::from_str::<T>(item.data.get()).or_else(|_| {
                    // Decoded again as a value only to say which field is wrong.
                    let value = serde_json::from_str(item.data.get()).unwrap_or(Value::Null);
                    decode_record(value)
                })
            })
            .collect()
    };
    // A large page is decoded in two halves on two threads (records keep their order).
    let records = if total >= PARALLEL_RECORDS {
        let (first, second) = lazy.data.split_at(total / 2);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| decode(second));
            let mut records = decode(first);
            records.extend(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
            records
        })
    } else {
        decode(&lazy.data)
    };
    Ok(Page {
        records,
        links: lazy.links,
        total,
    })
}

/// Decodes one record from its JSON value.
pub fn decode_record<T: DeserializeOwned>(value: Value) -> Decoded<T> {
    let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        RecordProblem {
            id,
            message: describe(&path, &err.into_inner()),
        }
    })
}

/// Builds a message from serde's error that keeps its shape ("expected ...", "missing field ...")
/// and drops any quoted input value.
fn describe(path: &str, err: &serde_json::Error) -> String {
    let text = err.to_string();
    // serde_json appends " at line L column C"; drop it, positions are meaningless on a Value.
    let text = text.split(" at line ").next().unwrap_or_default();
    let reason = if let Some(pos) = text.find("expected") {
        text[pos..].to_owned()
    } else if text.starts_with("missing field") {
        text.to_owned()
    } else {
        "invalid value".to_owned()
    };
    if path.is_empty() || path == "." {
        format!("record is invalid: {reason}")
    } else {
        format!("field `{path}` is invalid: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clever::models::User;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("json")
    }

    #[test]
    fn a_record_id_is_its_top_level_id_read_up_to_there() {
        for (json, want) in [
            (r#"{"id":"a1","roles":{"student":{}}}"#, Some("a1")),
            (r#"{"name":{"id":"inner"},"id":"outer"}"#, Some("outer")),
            (r#"{"name":{"id":"inner"}}"#, None),
            (r#"{"id":"a\u0031"}"#, Some("a1")),
            (r#"{"id":7}"#, None),
            (r#"{"id":null}"#, None),
            (r#"["id","a1"]"#, None),
            (r#""a1""#, None),
            (r#"{}"#, None),
            (r#"{"i\u0064":"escaped key"}"#, Some("escaped key")),
        ] {
            assert_eq!(record_id(&raw(json)).as_deref(), want, "{json}");
        }
        // Read up to the id only: what follows it is never looked at.
        let mut de = serde_json::Deserializer::from_str(r#"{"id":"a1", "x": [1, 2"#);
        let mut found: Option<Text> = None;
        let _ = serde::Deserializer::deserialize_map(
            &mut de,
            FieldSeek {
                name: "id",
                found: &mut found,
            },
        );
        assert_eq!(found.map(|t| t.0.into_owned()).as_deref(), Some("a1"));
    }

    #[test]
    fn the_next_link_is_read_from_the_tail_of_a_page() {
        let page =
            |links: &str| format!(r#"{{"data":[{{"data":{{"id":"a","links":"x"}}}}],{links}}}"#);
        for (body, want) in [
            (
                page(r#""links":[{"rel":"self","uri":"/v3.0/users?limit=2"},{"rel":"next","uri":"/v3.0/users?starting_after=a"}]"#),
                Some("/v3.0/users?starting_after=a"),
            ),
            (page(r#""links" : [ {"rel":"next","uri":"/n"} ] "#), Some("/n")),
            (page(r#""links":[{"rel":"self","uri":"/s"}]"#), None),
            (page(r#""links":[]"#), None),
            (page(r#""links":null"#), None),
            (page(r#""other":1"#), None),
            // A record's own "links" after the envelope's: the last one is read (a wrong guess,
            // which the client drops once the page is parsed).
            (
                r#"{"links":[{"rel":"next","uri":"/real"}],"data":[{"data":{"links":[{"rel":"next","uri":"/inner"}]}}]}"#.to_string(),
                Some("/inner"),
            ),
            ("".to_string(), None),
            (r#""links""#.to_string(), None),
        ] {
            assert_eq!(next_link_from_tail(body.as_bytes()).as_deref(), want, "{body}");
        }
    }

    #[test]
    fn a_field_that_is_absent_or_unreadable_is_told_apart() {
        assert_eq!(seek_field::<u32>(r#"{"a":1,"n":2}"#, "n"), Field::Found(2));
        assert_eq!(seek_field::<u32>(r#"{"a":1}"#, "n"), Field::Absent);
        assert_eq!(seek_field::<u32>(r#"{"n":"two"}"#, "n"), Field::Unreadable);
        assert_eq!(seek_field::<u32>(r#"[1]"#, "n"), Field::Unreadable);
    }

    #[test]
    fn a_body_that_is_not_a_list_page_is_an_error_not_an_empty_page() {
        for body in [
            &b"{}"[..],
            br#"{"data": null}"#,
            br#"{"data": {}}"#,
            br#"{"links": []}"#,
            b"[]",
            b"null",
        ] {
            assert!(
                decode_page::<User>(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let empty = decode_page::<User>(br#"{"data": [], "links": []}"#).expect("empty page");
        assert!(empty.records.is_empty());
        // The filtered decoder too, and a body that is not UTF-8 is an error, not a page.
        let keep_all = |_: &RawValue| true;
        for body in [
            &b"{}"[..],
            br#"{"data": null}"#,
            b"{\"data\": [{\"data\": {\"id\": \"\xff\"}}]}",
        ] {
            assert!(
                decode_page_with::<User>(body, &keep_all, |_, _| {}).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let page = decode_page_with::<User>(
            br#"{"data": [{"data": {"id": "a1"}}], "links": []}"#,
            &keep_all,
            |_, _| {},
        )
        .expect("a page");
        assert_eq!(page.total, 1);
    }

    #[test]
    fn one_bad_record_does_not_fail_the_page_and_its_value_is_not_echoed() {
        let body = br#"{"data":[
            {"data":{"id":"a1","name":{"first":"Ann"},"roles":{"student":{"dob":"2/11/2019"}}},"uri":"/v3.0/users/a1"},
            {"data":{"id":"b2","name":{"first":"Secretname"},"roles":{"student":{"dob":"31/31/x"}}}},
            {"data":{"id":"c3","name":12345}},
            {"data":{"id":"d4","roles":{"student":{"grade":"","gender":null,"ell_status":""}},"extra":{"x":1}}}
        ],"links":[{"rel":"self","uri":"/v3.0/users"},{"rel":"next","uri":"/v3.0/users?starting_after=d4"}]}"#;
        let page = decode_page::<User>(body).unwrap();
        assert_eq!(page.records.len(), 4);
        assert_eq!(page.records[0].as_ref().unwrap().id, "a1");
        let p = page.records[1].as_ref().unwrap_err();
        assert_eq!(p.id.as_deref(), Some("b2"));
        assert!(p.message.contains("roles.student.dob"), "{}", p.message);
        assert!(
            !p.message.contains("31/31") && !p.message.contains("Secretname"),
            "{}",
            p.message
        );
        let p = page.records[2].as_ref().unwrap_err();
        assert!(p.message.contains("`name`"), "{}", p.message);
        assert!(!p.message.contains("12345"), "{}", p.message);
        let d4 = page.records[3].as_ref().unwrap();
        let s = d4.roles.student.as_ref().unwrap();
        assert_eq!(
            (s.grade.clone(), s.gender.clone(), s.ell_status.clone()),
            (None, None, None)
        );
        assert_eq!(
            crate::clever::models::next_link(&page.links),
            Some("/v3.0/users?starting_after=d4")
        );
    }

    #[test]
    fn a_filtered_page_decodes_only_kept_records_and_counts_all() {
        let keep: &(dyn Fn(&RawValue) -> bool + Send + Sync) =
            &|r| record_id(r).is_none_or(|id| id != "skip");
        let body = br#"{"data":[
            {"data":{"id":"a1","roles":{"student":{"grade":"1"}}}},
            {"data":{"id":"skip","roles":{"student":{"dob":"31/31/x"}}}},
            {"data":{"id":"b2","roles":{"student":{"dob":"31/31/x"}}}},
            {"data":{"roles":{}}},
            {"data":{"id":"c\u0033","name":{"first":"C"}}}
        ],"links":[{"rel":"next","uri":"/v3.0/users?starting_after=c3"}]}"#;
        let page = decode_page_with::<User>(body, keep, |_, _| {}).unwrap();
        assert_eq!(page.total, 5, "the paging rules count every record");
        let got: Vec<_> = page
            .records
            .iter()
            .map(|r| match r {
                Ok(u) => format!("ok {}", u.id),
                Err(p) => format!("problem {:?}", p.id),
            })
            .collect();
        assert_eq!(
            got,
            ["ok a1", "problem Some(\"b2\")", "problem None", "ok c3"]
        );
        assert_eq!(
            crate::clever::models::next_link(&page.links),
            Some("/v3.0/users?starting_after=c3")
        );
        // An envelope of an unusual shape goes through the full decoder and is filtered the same.
        let odd =
            br#"{"data":[{"data":{"id":"a1"}},{"data":{"id":"skip"}},{"uri":"/x"}],"links":null}"#;
        let page = decode_page_with::<User>(odd, keep, |_, _| {}).unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(page.records.len(), 2, "a1 and the record without data");
        assert!(decode_page_with::<User>(b"{}", keep, |_, _| {}).is_err());
        assert!(decode_page_with::<User>(br#"{"data":null}"#, keep, |_, _| {}).is_err());
    }

    #[test]
    fn envelope_errors_fail_the_page() {
        assert!(decode_page::<User>(b"<html>Not Found</html>").is_err());
        assert!(decode_page::<User>(br#"{"data":[{"data":{"id":"a"}}"#).is_err());
    }
}
