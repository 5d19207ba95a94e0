//! The targets, one per parser that takes client input, each with the properties it checks.

use std::sync::OnceLock;

use axum::http::HeaderValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idledger::crypto::signing::{KeySet, generate_es384};
use idledger::http::extract::QueryPairs;
use idledger::http::management::listing::{self, MAX_PAGE_SIZE, MAX_SEARCH_VALUE, Paging};
use idledger::http::management::users::normalize_phone;
use projections::search::{Indexes, Mode, Search, Term};
use serde_json::{Value, json};

use crate::Input;

/// The searchable columns of the target (as a read model would pass them).
const FIELDS: &[&str] = &["id", "name", "primary_email"];
const SEARCH_KEYS: &[&str] = &[
    "search",
    "search.name",
    "search.primaryEmail",
    "search.primary_email",
    "search.id",
    "search.password",
    "mode",
    "mode.name",
    "mode.primaryEmail",
    "joint",
    "jointMode",
    "isCaseSensitive",
];
const SEARCH_VALUES: &[&str] = &[
    "like",
    "exact",
    "similar_to",
    "posix",
    "and",
    "or",
    "true",
    "1",
    "%a%",
    "",
    "'; DROP TABLE users; --",
    "$1",
];

/// Logto's search parameters: refused with a 400, or parsed into terms within the rules whose
/// SQL never contains a value (values only ever travel as parameters) and whose placeholders
/// each name one parameter.
pub fn search_query(data: &[u8]) {
    let mut input = Input::new(data);
    let pairs = input.pairs(SEARCH_KEYS, SEARCH_VALUES);
    let search = match listing::search(&QueryPairs(pairs.clone()), FIELDS) {
        Ok(search) => search,
        Err(error) => {
            assert_eq!(error.status, 400, "{pairs:?}: {error:?}");
            return;
        }
    };
    for term in &search.terms {
        assert!(!term.values.is_empty(), "{pairs:?}");
        assert!(
            term.values
                .iter()
                .all(|v| !v.is_empty() && v.len() <= MAX_SEARCH_VALUE),
            "{pairs:?}"
        );
        if let Some(field) = &term.field {
            assert!(FIELDS.contains(&field.as_str()), "{pairs:?}");
        }
        if term.values.len() > 1 {
            assert_eq!(term.mode, Mode::Exact, "{pairs:?}");
        }
    }
    let first = 3;
    let blank = Search {
        terms: search
            .terms
            .iter()
            .map(|term| Term {
                values: vec!["v".to_owned(); term.values.len()],
                ..term.clone()
            })
            .collect(),
        ..search.clone()
    };
    // The plain form, and the form shaped for trigram and `lower()` indexes (the users').
    let shaped = Indexes {
        trigram: true,
        lowered: &FIELDS[..1],
    };
    for indexes in [Indexes::NONE, shaped] {
        placeholders_only(&pairs, &search, &blank, &indexes, first);
    }
}

/// `search`'s SQL is `blank`'s (the same structure with other values), and each placeholder
/// names one of its parameters.
fn placeholders_only(
    pairs: &[(String, String)],
    search: &Search,
    blank: &Search,
    indexes: &Indexes<'_>,
    first: usize,
) {
    let (sql, params) = search.indexed_condition(FIELDS, indexes, first);
    let (blank_sql, blank_params) = blank.indexed_condition(FIELDS, indexes, first);
    assert_eq!(sql, blank_sql, "a value changed the SQL text: {pairs:?}");
    assert_eq!(params.len(), blank_params.len());
    let mut used = vec![false; params.len()];
    for number in sql.split('$').skip(1).map(|rest| {
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    }) {
        let index: usize = number.parse().expect("a placeholder number");
        assert!(
            (first..first + params.len()).contains(&index),
            "{sql} {params:?}"
        );
        used[index - first] = true;
    }
    assert!(
        used.iter().all(|u| *u),
        "an unused parameter: {sql} {params:?}"
    );
}

/// `page`/`page_size`: refused with a 400, or a page whose offset is computable; its `Link`
/// headers are valid header values with `first` and `last`, pages between 1 and the last (or
/// the one before the requested page, past the last).
pub fn pagination_links(data: &[u8]) {
    let mut input = Input::new(data);
    let pairs = input.pairs(
        &["page", "page_size", "search", "q"],
        &[
            "1",
            "2",
            "0",
            "-1",
            "100",
            "101",
            "9223372036854775807",
            "4611686018427387904",
            "x",
        ],
    );
    let optional = input.byte().is_multiple_of(2);
    let page = match listing::page(&QueryPairs(pairs.clone()), optional) {
        Ok(Some(page)) => page,
        Ok(None) => return,
        Err(error) => {
            assert_eq!(error.status, 400, "{pairs:?}");
            return;
        }
    };
    assert!(page.number >= 1 && (1..=MAX_PAGE_SIZE).contains(&page.size));
    assert!(page.offset() >= 0, "{pairs:?}");
    // A count of rows: far below i64::MAX.
    let total = i64::try_from(input.u64() % (1 << 40)).unwrap_or_default();
    let paging = Paging {
        page,
        total,
        endpoint: "http://localhost:3001".to_owned(),
        // As a handler gets it: the path of a URI hyper accepted.
        path: axum::http::Uri::try_from(format!("/api/{}", input.text()))
            .map(|uri| uri.path().to_owned())
            .unwrap_or_else(|_| "/api/users".to_owned()),
        query: pairs.clone(),
    };
    let last = ((total + page.size - 1) / page.size).max(1);
    let links = paging.links();
    assert!(links.first().is_some_and(|l| l.ends_with("rel=\"first\"")));
    assert!(links.last().is_some_and(|l| l.ends_with("rel=\"last\"")));
    for link in &links {
        assert!(HeaderValue::from_str(link).is_ok(), "not a header: {link}");
        let target = link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel="))
            .map(|(url, _)| url)
            .expect("<url>; rel=...");
        let url = url::Url::parse(target).expect("an absolute URL");
        let pages: Vec<i64> = url
            .query_pairs()
            .filter(|(k, _)| k == "page")
            .map(|(_, v)| v.parse().expect("a page number"))
            .collect();
        assert_eq!(pages.len(), 1, "{link}");
        // As Logto: past the last page, `prev` is still the page before the requested one.
        let highest = last.max(page.number - 1);
        assert!((1..=highest).contains(&pages[0]), "{link} (last {last})");
    }
}

/// The phone normaliser: a 400/422, or E.164 digits that normalise to themselves.
pub fn phone_number(data: &[u8]) {
    let mut input = Input::new(data);
    let phone = if input.byte().is_multiple_of(4) {
        input.rest()
    } else {
        // Mostly digits: valid numbers are rare among random bytes.
        let length = usize::from(input.byte() % 24);
        input
            .bytes(length)
            .iter()
            .map(|b| char::from(b'0' + b % 10))
            .collect()
    };
    match normalize_phone(&phone) {
        Ok(normal) => {
            assert!(
                !normal.is_empty() && normal.bytes().all(|b| b.is_ascii_digit()),
                "{phone:?} -> {normal:?}"
            );
            let again = normalize_phone(&normal).ok();
            assert_eq!(again.as_deref(), Some(normal.as_str()), "{phone:?}");
        }
        Err(error) => assert!(
            error.status == 400 || error.status == 422,
            "{phone:?}: {error:?}"
        ),
    }
}

const ISSUER: &str = "http://localhost:3001/oidc";
const AUDIENCE: &str = "https://default.logto.app/api";

/// One key and one token it signed, made once: key generation costs milliseconds.
fn keys() -> &'static (KeySet, String) {
    static KEYS: OnceLock<(KeySet, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let set = KeySet::of_one(&generate_es384().expect("a key")).expect("a key set");
        let token = set
            .sign(
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "fuzz", "exp": 4_000_000_000_u64}),
                "at+jwt",
            )
            .expect("a token");
        (set, token)
    })
}

/// JWT verification as the Management API and the OIDC endpoints run it: only the token the
/// key signed verifies; arbitrary text, altered bytes, forged headers (`alg: none`, HS384,
/// other key ids) and swapped segments are refused, never a panic.
pub fn jwt(data: &[u8]) {
    let (set, valid) = keys();
    let segments: Vec<&str> = valid.split('.').collect();
    let mut input = Input::new(data);
    let token = match input.byte() % 4 {
        0 => input.rest(),
        1 => {
            let mut bytes = valid.clone().into_bytes();
            while !input.is_empty() {
                let at = usize::try_from(input.u64() % bytes.len() as u64).unwrap_or_default();
                bytes[at] = input.byte();
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        2 => {
            let header = input.word(&[
                r#"{"alg":"none","typ":"at+jwt"}"#,
                r#"{"alg":"HS384"}"#,
                r#"{"alg":"ES384","kid":"other"}"#,
                r#"{"alg":"ES256"}"#,
                r#"{"alg":"ES384","kid":null}"#,
                "[]",
                "{}",
            ]);
            let header = match serde_json::from_str::<Value>(&header) {
                // Keep the real key id on most forged headers, to reach signature checking.
                Ok(Value::Object(mut object)) if !object.contains_key("kid") => {
                    let kid = jsonwebtoken_kid(valid);
                    object.insert("kid".into(), Value::String(kid));
                    Value::Object(object).to_string()
                }
                _ => header,
            };
            let signature = if input.byte().is_multiple_of(2) {
                segments[2].to_owned()
            } else {
                input.rest()
            };
            format!(
                "{}.{}.{signature}",
                URL_SAFE_NO_PAD.encode(header),
                segments[1]
            )
        }
        _ => {
            let mut parts: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
            let which = usize::from(input.byte()) % (parts.len() + 1);
            let replacement = URL_SAFE_NO_PAD.encode(input.rest());
            match parts.get_mut(which) {
                Some(part) => *part = replacement,
                None => parts.push(replacement),
            }
            parts.join(".")
        }
    };
    let validation = idledger::http::auth::validation(ISSUER, AUDIENCE);
    let verdict = set.verify::<Value>(&token, &validation);
    if token == *valid {
        assert!(verdict.is_ok(), "{verdict:?}");
    } else {
        assert!(verdict.is_err(), "accepted {token}");
    }
}

fn jsonwebtoken_kid(token: &str) -> String {
    let header = token.split('.').next().unwrap_or_default();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap_or_default())
        .unwrap_or_default();
    header["kid"].as_str().unwrap_or_default().to_owned()
}
