//! `?limit=&cursor=` pagination with opaque cursors.
//!
//! A list answers `{"items": […], "next_cursor": "…"}`; the client sends
//! `next_cursor` back as `cursor` for the next page, until it is `null`.
//! The cursor is keyset pagination under the hood (the last id seen,
//! UUIDv7, so "after it" is "newer"): pages stay stable while rows are
//! added, and a page costs an index seek, not an `OFFSET` scan. A listing
//! is not a change feed: an id is taken just before its insert, so a row
//! whose insert commits after a newer one's (a wait for a connection or
//! the write lock) can land behind a page a client already read. It is
//! opaque (base64url of a tag and the id) so that clients do not build
//! cursors themselves and the format can change.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use opsready::problem::extract::ValidationErrors;
use opsready::problem::{FieldError, Problem, codes};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{Limit, LimitError};

/// Which list a cursor belongs to: a cursor of one list is refused by
/// another rather than silently skipping to a random place.
#[derive(Debug, Clone, Copy)]
pub(crate) enum List {
    Users,
    Invoices,
}

impl List {
    fn tag(self) -> u8 {
        match self {
            Self::Users => b'u',
            Self::Invoices => b'i',
        }
    }
}

/// The query parameters of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// 1 to 100; 20 when absent.
    // Text, read by `parse`: a limit that is no number is then reported
    // with the other parameters' problems, not alone before them.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub(crate) limit: Option<String>,
    /// `next_cursor` of the previous page; the first page when absent.
    pub(crate) cursor: Option<String>,
}

/// A page request, parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRequest {
    pub(crate) after: Option<Uuid>,
    pub(crate) limit: Limit,
}

impl PageQuery {
    /// Parses both parameters, reporting both when both are wrong.
    pub(crate) fn parse(&self, list: List) -> Result<PageRequest, Problem> {
        let mut errors = ValidationErrors::new();
        match self.parse_into(list, &mut errors) {
            Some(page) => Ok(page),
            None => Err(invalid_query(&errors)),
        }
    }

    /// Parses both parameters, adding the problems of each to `errors`,
    /// where a list's own parameters may have added theirs.
    pub(crate) fn parse_into(
        &self,
        list: List,
        errors: &mut ValidationErrors,
    ) -> Option<PageRequest> {
        let requested = match self.limit.as_deref().map(str::trim) {
            None => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| LimitError),
        };
        let limit = requested.and_then(Limit::parse).map_err(|error| {
            errors.push(FieldError::parameter(
                "limit",
                "INVALID_LIMIT",
                error.to_string(),
            ));
        });
        let after = match self.cursor.as_deref() {
            None => Ok(None),
            Some(cursor) => decode(list, cursor).map(Some).ok_or_else(|| {
                errors.push(FieldError::parameter(
                    "cursor",
                    "INVALID_CURSOR",
                    "is not a cursor of this list; send `next_cursor` of the previous page as it was",
                ));
            }),
        };
        match (limit, after) {
            (Ok(limit), Ok(after)) if errors.is_empty() => Some(PageRequest { after, limit }),
            _ => None,
        }
    }
}

/// The 400 of a list whose query parameters are invalid, naming each.
pub(crate) fn invalid_query(errors: &ValidationErrors) -> Problem {
    Problem::new(codes::INVALID_QUERY_PARAMETER)
        .detail("The query parameters are invalid.")
        .errors(errors.iter().cloned())
}

/// The cursor that continues after `last`.
pub(crate) fn encode(list: List, last: Uuid) -> String {
    let mut bytes = Vec::with_capacity(17);
    bytes.push(list.tag());
    bytes.extend_from_slice(last.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode(list: List, cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let (tag, id) = bytes.split_first()?;
    if *tag != list.tag() {
        return None;
    }
    Uuid::from_slice(id).ok()
}

/// One page of a list.
// Closed in the contract, as `UserBody` in `users.rs` says why.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// The `cursor` of the next page; `null` on the last page.
    #[schema(required = true)]
    pub(crate) next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of `slice` in `list`: its items as answered, and a cursor
    /// after the last one when more follow.
    pub(crate) fn of<R>(
        list: List,
        slice: crate::data::Slice<R>,
        id: impl Fn(&R) -> Uuid,
        body: impl Fn(R) -> T,
    ) -> Self {
        let next_cursor = slice
            .has_more
            .then(|| slice.items.last())
            .flatten()
            .map(|last| encode(list, id(last)));
        Self {
            items: slice.items.into_iter().map(body).collect(),
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_to_the_id_it_was_made_from() {
        let id = Uuid::now_v7();
        assert_eq!(decode(List::Users, &encode(List::Users, id)), Some(id));
    }

    #[test]
    fn a_cursor_of_another_list_is_refused() {
        let cursor = encode(List::Invoices, Uuid::now_v7());
        assert_eq!(decode(List::Users, &cursor), None);
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        assert_eq!(decode(List::Users, "not a cursor"), None);
        assert_eq!(decode(List::Users, ""), None);
        assert_eq!(decode(List::Users, &URL_SAFE_NO_PAD.encode(b"u123")), None);
    }

    #[test]
    fn a_bad_limit_and_a_bad_cursor_are_reported_together() {
        let query = PageQuery {
            limit: Some("0".to_owned()),
            cursor: Some("nope".to_owned()),
        };
        let problem = query.parse(List::Users).unwrap_err();
        assert_eq!(problem.status(), 400);
        let names: Vec<_> = problem
            .field_errors()
            .iter()
            .filter_map(FieldError::parameter_name)
            .collect();
        assert_eq!(names, ["limit", "cursor"]);
    }
}
