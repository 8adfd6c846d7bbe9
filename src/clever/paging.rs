//! The paging rules of a Clever list, checked page by page (pure): what makes a broken list an
//! error instead of a short roster.
use std::collections::HashSet;

use super::transport::limit_of;

/// The paging rules a list must keep, checked page by page (pure): no page is visited twice (a
/// cycle of any length), at most `max_pages` pages (a cursor that never ends), and a full page
/// has a `next` link (Clever adds one to every full page, even when the next page is empty; a
/// full page without one would end the roster early).
#[derive(Clone, Debug)]
pub struct Paging {
    seen: HashSet<String>,
    pages: u32,
    max_pages: u32,
    limit: usize,
}

impl Paging {
    /// Rules for the list whose first page is `first` (its `limit` is the page size).
    pub fn new(first: &str, max_pages: u32) -> Paging {
        Paging {
            seen: HashSet::from([first.to_owned()]),
            pages: 0,
            max_pages,
            limit: usize::try_from(limit_of(first)).unwrap_or(usize::MAX),
        }
    }

    /// Checks one page (its record count and `next` link); the error says what broke.
    pub fn check(&mut self, records: usize, next: Option<&str>) -> Result<(), String> {
        self.pages += 1;
        match next {
            Some(next) if !self.seen.insert(next.to_owned()) => Err(format!(
                "page {} links back to an earlier page (a paging cycle)",
                self.pages
            )),
            Some(_) if self.pages >= self.max_pages => Err(format!(
                "more than {} pages (a cursor that never ends; the limit is --clever-max-pages)",
                self.max_pages
            )),
            None if records >= self.limit && self.limit > 0 => Err(format!(
                "page {} is full ({records} records) but has no next link, so the list would end \
                 early",
                self.pages
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_rules_table() {
        let first = "/v3.0/users?limit=2";
        // (pages as (records, next)), the page that breaks (1-based) or None.
        type Pages<'a> = &'a [(usize, Option<&'a str>)];
        let cases: &[(Pages, Option<usize>)] = &[
            (&[(2, Some("/p2")), (1, None)], None),
            (&[(2, Some("/p2")), (2, Some("/p3")), (0, None)], None),
            (&[(0, None)], None),
            // The first page links to itself, or a 2-cycle returns to page 2.
            (&[(2, Some(first))], Some(1)),
            (
                &[(2, Some("/p2")), (2, Some("/p3")), (2, Some("/p2"))],
                Some(3),
            ),
            // A full page that ends the list.
            (&[(2, Some("/p2")), (2, None)], Some(2)),
            // A cursor that drifts forever hits the page limit (5 here).
            (
                &[
                    (2, Some("/d1")),
                    (2, Some("/d2")),
                    (2, Some("/d3")),
                    (2, Some("/d4")),
                    (2, Some("/d5")),
                ],
                Some(5),
            ),
        ];
        for (pages, breaks) in cases {
            let mut paging = Paging::new(first, 5);
            let broke = pages
                .iter()
                .position(|(n, next)| paging.check(*n, *next).is_err())
                .map(|i| i + 1);
            assert_eq!(broke, *breaks, "{pages:?}");
        }
    }
}
