//! A recorded event's payload as JSON text.
//!
//! Readers decode a payload straight from its text into the event type they need
//! (`crate::decode`); building a `serde_json::Value` tree first, and dropping it after, was
//! about a third of what reading the log cost a rebuild, which reads every event once. The few
//! readers that want the tree (summaries, the events API, upcasters) ask for it.

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Payload(Box<str>);

impl Payload {
    /// The text of a `jsonb` or `json` column, which PostgreSQL checked when it was stored; it
    /// is not parsed again until decoded (a damaged text fails there, as a decoding error).
    pub fn stored(text: String) -> Payload {
        Payload(text.into_boxed_str())
    }

    pub fn from_value(value: &Value) -> Payload {
        Payload(value.to_string().into_boxed_str())
    }

    /// `{}`, the payload of an event without fields.
    pub fn empty() -> Payload {
        Payload("{}".into())
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    /// The payload as a tree, for readers that walk it rather than decode it.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// Equal when the JSON is: key order and spacing do not count.
impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.text() == other.text() || self.to_value() == other.to_value()
    }
}

impl From<&Value> for Payload {
    fn from(value: &Value) -> Payload {
        Payload::from_value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::RoleEvent;
    use serde_json::json;

    #[test]
    fn a_payload_keeps_its_text_and_compares_as_json() {
        let read = Payload::stored(r#"{"b": 1, "a": [true]}"#.to_owned());
        assert_eq!(read.text(), r#"{"b": 1, "a": [true]}"#);
        assert_eq!(read, Payload::from_value(&json!({"a": [true], "b": 1})));
        assert_ne!(read, Payload::from_value(&json!({"a": [false], "b": 1})));
        assert_eq!(read.to_value(), json!({"a": [true], "b": 1}));
        assert_eq!(Payload::empty().to_value(), json!({}));
    }

    #[test]
    fn damaged_text_fails_when_decoded() {
        let damaged = Payload::stored("{\"name\": ".to_owned());
        assert!(crate::decode::<RoleEvent>("role.deleted", &damaged).is_err());
        let trailing = Payload::stored("{} {}".to_owned());
        assert!(crate::decode::<RoleEvent>("role.deleted", &trailing).is_err());
    }
}
