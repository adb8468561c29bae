//! Pagination, the same on every list route: `?limit=` (a default and a maximum per route; over the maximum is a
//! 400 naming it) and `?cursor=` (where the page starts, as the previous page's `X-Next-Cursor` header gave it).
//! The body keeps its shape (the page's items); `X-Next-Cursor` is present while more items follow. Stored lists
//! read only the page (plus one row, to know whether more follow) from the store.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::http::api_error::ApiError;

/// The header a client passes back as `?cursor=` for the next page; absent on the last page.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// Page sizes of the list routes: most lists default to 100 items and take at most 1,000.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;

/// The query parameters, as text so that a bad number is the API's 400 naming the field.
#[derive(Deserialize, Default)]
pub struct Paging {
    limit: Option<String>,
    cursor: Option<String>,
}

/// One page: at most `limit` items from `offset` on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Paging {
    /// The page asked for, with the route's default and maximum `limit`.
    pub fn page(&self, default: usize, max: usize) -> Result<Page, ApiError> {
        let limit = match self.limit.as_deref() {
            None => default,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(0) | Err(_) => {
                    return Err(ApiError::field(
                        "limit",
                        format!("`{text}` is not a page size: give a whole number from 1 to {max}"),
                    ));
                }
                Ok(n) if n > max => {
                    return Err(ApiError::field(
                        "limit",
                        format!(
                            "limit {n} is over the maximum of {max} for this list; follow `X-Next-Cursor` for more"
                        ),
                    ));
                }
                Ok(n) => n,
            },
        };
        let offset = match self.cursor.as_deref() {
            None => 0,
            Some(text) => text.trim().parse::<usize>().map_err(|_| {
                ApiError::field(
                    "cursor",
                    format!("`{text}` is not a cursor: pass back the `X-Next-Cursor` header of the previous page"),
                )
            })?,
        };
        Ok(Page { limit, offset })
    }

    /// The route's standard page ([`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
    pub fn standard(&self) -> Result<Page, ApiError> {
        self.page(DEFAULT_LIMIT, MAX_LIMIT)
    }
}

impl Page {
    /// This page of `items` (every match, in order), and the headers that go with it.
    pub fn cut<T>(&self, items: impl IntoIterator<Item = T>) -> (HeaderMap, Vec<T>) {
        let page: Vec<T> = items
            .into_iter()
            .skip(self.offset)
            .take(self.limit.saturating_add(1))
            .collect();
        self.trim(page)
    }

    /// How many rows to read for this page: one more than it holds, to know whether another follows.
    pub fn rows(&self) -> usize {
        self.limit.saturating_add(1)
    }

    /// A page read with [`Page::rows`] rows from the offset: cut to the limit, with the headers.
    pub fn trim<T>(&self, mut rows: Vec<T>) -> (HeaderMap, Vec<T>) {
        let mut headers = HeaderMap::new();
        if rows.len() > self.limit {
            rows.truncate(self.limit);
            let next = self.offset.saturating_add(self.limit);
            headers.insert(
                HeaderName::from_static(NEXT_CURSOR),
                HeaderValue::from(next),
            );
        }
        (headers, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(limit: Option<&str>, cursor: Option<&str>) -> Paging {
        Paging {
            limit: limit.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
        }
    }

    #[test]
    fn limits_over_the_maximum_or_not_numbers_are_refused_naming_the_field() {
        for bad in ["1001", "0", "-1", "ten"] {
            let refused = paging(Some(bad), None).standard();
            assert!(
                matches!(&refused, Err(ApiError::Invalid { field: Some(f), .. }) if f == "limit"),
                "{bad}: {refused:?}"
            );
        }
        assert!(matches!(
            paging(None, Some("x")).standard(),
            Err(ApiError::Invalid { field: Some(f), .. }) if f == "cursor"
        ));
        assert_eq!(
            paging(None, None).standard().ok(),
            Some(Page {
                limit: DEFAULT_LIMIT,
                offset: 0
            })
        );
    }

    #[test]
    fn a_page_says_where_the_next_starts_until_the_last() {
        let page = Page {
            limit: 2,
            offset: 2,
        };
        let (headers, items) = page.cut(vec![1, 2, 3, 4, 5]);
        assert_eq!(items, [3, 4]);
        assert_eq!(headers[NEXT_CURSOR], "4");
        let (headers, items) = Page {
            limit: 2,
            offset: 4,
        }
        .cut(vec![1, 2, 3, 4, 5]);
        assert_eq!(items, [5]);
        assert!(headers.get(NEXT_CURSOR).is_none());
    }
}
