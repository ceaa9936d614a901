//! Keyset pagination: ids are UUIDv7, so ordering by id is creation order and a page continues after
//! the last id of the previous one, without OFFSET scans.

use flashcards_bootstrap::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1–200, default 50).
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
}

/// A `limit` query parameter: `default` when absent, otherwise 1 to `max`.
pub fn check_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        )),
    }
}

impl PageQuery {
    pub fn limit(&self) -> Result<u32, ApiError> {
        check_limit(self.limit, DEFAULT_LIMIT, MAX_LIMIT)
    }

    /// The id to continue after; the empty string sorts before every id.
    pub fn after(&self) -> &str {
        self.after.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id order: the extra row only says that
    /// another page exists.
    pub fn from_rows(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> &str) -> Self {
        let limit = limit as usize;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| id(last).to_owned())
        } else {
            None
        };
        Self { items, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_row_means_there_is_a_next_page() {
        let rows = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let page = Page::from_rows(rows, 2, |s| s.as_str());
        assert_eq!(page.items, ["a", "b"]);
        assert_eq!(page.next.as_deref(), Some("b"));
        let last = Page::from_rows(vec!["c".to_owned()], 2, |s| s.as_str());
        assert_eq!(last.next, None);
    }

    #[test]
    fn limits_outside_the_range_are_rejected() {
        let query = |limit| PageQuery {
            limit: Some(limit),
            after: None,
        };
        assert!(query(0).limit().is_err());
        assert!(query(MAX_LIMIT + 1).limit().is_err());
        assert_eq!(query(MAX_LIMIT).limit().ok(), Some(MAX_LIMIT));
        assert_eq!(PageQuery::default().limit().ok(), Some(DEFAULT_LIMIT));
    }
}
