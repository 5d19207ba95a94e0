//! How Logto lists: `page`/`page_size` with `Total-Number` and one `Link` header per relation,
//! and the search syntax of `search`, `search.<field>`, `mode`, `joint`, `isCaseSensitive`.

use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use projections::search::{Mode, Search, Term};
use serde::Serialize;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::QueryPairs;

pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;
/// Longest accepted search value (issue 14's limit on search input).
pub const MAX_SEARCH_VALUE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: i64,
    pub size: i64,
}

impl Page {
    pub fn offset(&self) -> i64 {
        (self.number - 1) * self.size
    }

    /// The rows of this page, as the projections' list queries take them.
    pub fn window(self) -> projections::Window {
        projections::Window {
            limit: self.size,
            offset: self.offset(),
        }
    }
}

fn invalid_pagination() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "guard.invalid_pagination",
        "The request pagination value is invalid.",
    )
}

fn positive(value: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(invalid_pagination),
    }
}

/// The requested page. For routes where pagination is optional, `None` when neither `page` nor
/// `page_size` is given (then every row is returned and no headers are sent).
pub fn page(query: &QueryPairs, optional: bool) -> Result<Option<Page>, ApiError> {
    let (page, size) = (query.get("page"), query.get("page_size"));
    if optional && page.is_none() && size.is_none() {
        return Ok(None);
    }
    let size = positive(size, DEFAULT_PAGE_SIZE)?;
    if size > MAX_PAGE_SIZE {
        return Err(invalid_pagination());
    }
    let number = positive(page, 1)?;
    // A page whose first row lies past i64's range has no rows; its offset would overflow.
    if (number - 1).checked_mul(size).is_none() {
        return Err(invalid_pagination());
    }
    Ok(Some(Page { number, size }))
}

/// The requested page where Logto always paginates (page 1 of 20 rows when not asked).
pub fn required_page(query: &QueryPairs) -> Result<Page, ApiError> {
    Ok(page(query, false)?.unwrap_or(Page {
        number: 1,
        size: DEFAULT_PAGE_SIZE,
    }))
}

/// A list response: the rows, plus `Total-Number` and `Link` headers when paginated.
pub struct Listing<T> {
    pub rows: Vec<T>,
    pub paging: Option<Paging>,
}

pub struct Paging {
    pub page: Page,
    pub total: i64,
    /// The base URL (endpoint) and the request's path and query, to build `Link` targets.
    pub endpoint: String,
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl Paging {
    /// The paging of `page` of a listing of `total` rows served at the request's `uri`.
    pub fn new(state: &AppState, uri: &Uri, query: &QueryPairs, page: Page, total: i64) -> Paging {
        Paging {
            page,
            total,
            endpoint: state.endpoint.clone(),
            path: uri.path().to_owned(),
            query: query.0.clone(),
        }
    }

    /// One `Link` value per relation, as a running Logto sends them: absolute URLs with the path
    /// relative to the `/api` mount and the original query with `page` replaced.
    pub fn links(&self) -> Vec<String> {
        let last = ((self.total + self.page.size - 1) / self.page.size).max(1);
        let path = self.path.strip_prefix("/api").unwrap_or(&self.path);
        let target = |page: i64| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            let mut replaced = false;
            for (key, value) in &self.query {
                if key == "page" {
                    if !replaced {
                        query.append_pair("page", &page.to_string());
                        replaced = true;
                    }
                } else {
                    query.append_pair(key, value);
                }
            }
            if !replaced {
                query.append_pair("page", &page.to_string());
            }
            format!("{}{path}?{}", self.endpoint, query.finish())
        };
        let mut links = vec![format!("<{}>; rel=\"first\"", target(1))];
        if self.page.number > 1 {
            links.push(format!("<{}>; rel=\"prev\"", target(self.page.number - 1)));
        }
        if self.page.number < last {
            links.push(format!("<{}>; rel=\"next\"", target(self.page.number + 1)));
        }
        links.push(format!("<{}>; rel=\"last\"", target(last)));
        links
    }
}

impl<T: Serialize> IntoResponse for Listing<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.rows).into_response();
        if let Some(paging) = self.paging {
            let headers = response.headers_mut();
            if let Ok(total) = HeaderValue::from_str(&paging.total.to_string()) {
                headers.insert(HeaderName::from_static("total-number"), total);
            }
            for link in paging.links() {
                if let Ok(value) = HeaderValue::from_str(&link) {
                    headers.append(HeaderName::from_static("link"), value);
                }
            }
        }
        response
    }
}

fn search_error(details: &str) -> ApiError {
    ApiError::bad_request(details)
}

fn mode(name: &str) -> Result<Mode, ApiError> {
    match name {
        "like" => Ok(Mode::Like),
        "exact" => Ok(Mode::Exact),
        "similar_to" => Ok(Mode::SimilarTo),
        "posix" => Ok(Mode::Posix),
        other => Err(search_error(&format!("Unknown search mode `{other}`."))),
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses Logto's search parameters; `fields` are the searchable columns (snake_case).
pub fn search(query: &QueryPairs, fields: &[&str]) -> Result<Search, ApiError> {
    let case_sensitive = query.truthy("isCaseSensitive");
    let all_terms = matches!(query.get("joint").or(query.get("jointMode")), Some("and"));
    let default_mode = query
        .get("mode")
        .map(mode)
        .transpose()?
        .unwrap_or(Mode::Like);
    // Terms in the order their field first appears.
    let mut terms: Vec<Term> = Vec::new();
    for (key, value) in &query.0 {
        let field = match key.as_str() {
            "search" => None,
            other => match other.strip_prefix("search.") {
                Some(field) => {
                    let column = snake_case(field);
                    if !fields.contains(&column.as_str()) {
                        return Err(search_error(&format!(
                            "Search field `{field}` is not supported."
                        )));
                    }
                    Some(column)
                }
                None => continue,
            },
        };
        if value.is_empty() {
            return Err(search_error("Search value cannot be empty."));
        }
        if value.len() > MAX_SEARCH_VALUE {
            return Err(search_error("Search value is too long."));
        }
        match terms.iter_mut().find(|t| t.field == field) {
            Some(term) => term.values.push(value.clone()),
            None => {
                let mode = match &field {
                    Some(column) => {
                        let camel = key.trim_start_matches("search.");
                        query
                            .get(&format!("mode.{camel}"))
                            .or(query.get(&format!("mode.{column}")))
                            .map(mode)
                            .transpose()?
                            .unwrap_or(default_mode)
                    }
                    None => default_mode,
                };
                terms.push(Term {
                    field,
                    mode,
                    values: vec![value.clone()],
                });
            }
        }
    }
    for term in &terms {
        if term.values.len() > 1 && term.mode != Mode::Exact {
            return Err(search_error(
                "Only one search value is allowed when search mode is not `exact`.",
            ));
        }
        if term.mode == Mode::SimilarTo && !case_sensitive {
            return Err(search_error(
                "Cannot use case-insensitive match for `similar to`.",
            ));
        }
    }
    Ok(Search {
        terms,
        all_terms,
        case_sensitive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn pagination_defaults_limits_and_optionality() {
        assert_eq!(
            page(&query(&[]), false).unwrap(),
            Some(Page {
                number: 1,
                size: 20
            })
        );
        assert_eq!(page(&query(&[]), true).unwrap(), None);
        assert_eq!(
            required_page(&query(&[("page", "3")])).unwrap(),
            Page {
                number: 3,
                size: 20
            }
        );
        assert!(required_page(&query(&[("page_size", "0")])).is_err());
        assert!(page(&query(&[("page_size", "101")]), false).is_err());
        assert!(page(&query(&[("page", "0")]), false).is_err());
        assert!(page(&query(&[("page", "x")]), true).is_err());
        // Found by the pagination fuzz target: the offset of this page overflowed.
        let far = query(&[("page", "9223372036854775807"), ("page_size", "2")]);
        assert_eq!(
            page(&far, false).unwrap_err().code,
            "guard.invalid_pagination"
        );
    }

    #[test]
    fn links_replace_the_page_and_drop_the_api_prefix() {
        let paging = Paging {
            page: Page {
                number: 2,
                size: 10,
            },
            total: 35,
            endpoint: "http://localhost:3001".into(),
            path: "/api/users".into(),
            query: vec![
                ("search".into(), "%a%".into()),
                ("page".into(), "2".into()),
                ("page_size".into(), "10".into()),
            ],
        };
        assert_eq!(
            paging.links(),
            vec![
                "<http://localhost:3001/users?search=%25a%25&page=1&page_size=10>; rel=\"first\"",
                "<http://localhost:3001/users?search=%25a%25&page=1&page_size=10>; rel=\"prev\"",
                "<http://localhost:3001/users?search=%25a%25&page=3&page_size=10>; rel=\"next\"",
                "<http://localhost:3001/users?search=%25a%25&page=4&page_size=10>; rel=\"last\"",
            ]
        );
    }

    #[test]
    fn search_terms_modes_and_errors() {
        let fields = ["id", "name", "primary_email"];
        let parsed = search(
            &query(&[
                ("search.primaryEmail", "a@x.io"),
                ("search.primaryEmail", "b@x.io"),
                ("mode.primaryEmail", "exact"),
                ("search", "%z%"),
                ("joint", "and"),
            ]),
            &fields,
        )
        .unwrap();
        assert!(parsed.all_terms);
        assert_eq!(parsed.terms[0].field.as_deref(), Some("primary_email"));
        assert_eq!(parsed.terms[0].mode, Mode::Exact);
        assert_eq!(parsed.terms[0].values.len(), 2);
        assert_eq!(parsed.terms[1].field, None);

        let repeated_like = search(
            &query(&[("search.name", "a"), ("search.name", "b")]),
            &fields,
        );
        assert_eq!(repeated_like.unwrap_err().code, "request.invalid_input");
        assert!(search(&query(&[("search.secret", "a")]), &fields).is_err());
        assert!(search(&query(&[("search", "")]), &fields).is_err());
        assert!(search(&query(&[("search", "a"), ("mode", "similar_to")]), &fields).is_err());
        assert!(
            search(
                &query(&[
                    ("search", "a"),
                    ("mode", "similar_to"),
                    ("isCaseSensitive", "true")
                ]),
                &fields
            )
            .is_ok()
        );
    }
}
