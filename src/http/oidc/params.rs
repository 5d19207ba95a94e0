//! OAuth request parameters from a form body, a JSON body (Logto accepts both at `/token`) or
//! the query string, kept as ordered pairs because repeated parameters must be detected.

use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::error::OidcError;

#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_query(query: &str) -> Result<Params, OidcError> {
        Params(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
        .checked()
    }

    pub fn from_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, OidcError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            let value: Value = serde_json::from_slice(body)
                .map_err(|_| OidcError::invalid_request("the request body is not valid JSON"))?;
            let Value::Object(object) = value else {
                return Err(OidcError::invalid_request(
                    "the request body must be an object",
                ));
            };
            let mut pairs = Vec::new();
            for (key, value) in object {
                match value {
                    Value::String(s) => pairs.push((key, s)),
                    Value::Array(items) => {
                        for item in items {
                            let Value::String(s) = item else {
                                return Err(OidcError::invalid_request(format!(
                                    "{key} must be a string"
                                )));
                            };
                            pairs.push((key.clone(), s));
                        }
                    }
                    Value::Number(n) => pairs.push((key, n.to_string())),
                    Value::Bool(b) => pairs.push((key, b.to_string())),
                    Value::Null | Value::Object(_) => {
                        return Err(OidcError::invalid_request(format!(
                            "{key} must be a string"
                        )));
                    }
                }
            }
            return Params(pairs).checked();
        }
        if content_type.is_empty() || content_type.starts_with("application/x-www-form-urlencoded")
        {
            let text = std::str::from_utf8(body)
                .map_err(|_| OidcError::invalid_request("the request body is not UTF-8"))?;
            return Params::from_query(text);
        }
        Err(OidcError::invalid_request(
            "only application/x-www-form-urlencoded or application/json content is accepted",
        ))
    }

    /// Refuses NUL characters, which no parameter legitimately carries and the log cannot store.
    fn checked(self) -> Result<Params, OidcError> {
        if self
            .0
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(OidcError::invalid_request(
                "parameters must not contain NUL characters",
            ));
        }
        Ok(self)
    }

    /// A parameter that may appear at most once (RFC 6749 §3.1).
    pub fn single(&self, name: &str) -> Result<Option<&str>, OidcError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next();
        if values.next().is_some() {
            return Err(OidcError::invalid_request(format!(
                "'{name}' parameter must not be provided twice"
            )));
        }
        Ok(first.map(String::as_str).filter(|v| !v.is_empty()))
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
