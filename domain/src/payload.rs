//! A recorded event's payload as JSON text.
//!
//! Readers decode a payload straight from its text into the event type they need
//! (`crate::decode`); building a `serde_json::Value` tree first, and dropping it after, was
//! about a third of what reading the log cost a rebuild, which reads every event once. The few
//! readers that want the tree (summaries, the events API, upcasters) ask for it.

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

#[derive(Debug, Clone)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload as the store read it, checked to be JSON.
    pub fn parse(text: String) -> Result<Payload, serde_json::Error> {
        RawValue::from_string(text).map(Payload)
    }

    pub fn from_value(value: &Value) -> Payload {
        // A `Value` always serializes (its keys are strings); the default (`null`) is never
        // reached.
        Payload(serde_json::value::to_raw_value(value).unwrap_or_default())
    }

    /// `{}`, the payload of an event without fields.
    pub fn empty() -> Payload {
        Payload::from_value(&Value::Object(serde_json::Map::new()))
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The payload as a tree, for readers that walk it rather than decode it.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

/// Equal when the JSON is: key order and spacing do not count.
impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.text() == other.text() || self.to_value() == other.to_value()
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
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
    use serde_json::json;

    #[test]
    fn a_payload_keeps_its_text_and_compares_as_json() {
        let read = Payload::parse(r#"{"b": 1, "a": [true]}"#.to_owned()).unwrap();
        assert_eq!(read.text(), r#"{"b": 1, "a": [true]}"#);
        assert_eq!(read, Payload::from_value(&json!({"a": [true], "b": 1})));
        assert_ne!(read, Payload::from_value(&json!({"a": [false], "b": 1})));
        assert_eq!(read.to_value(), json!({"a": [true], "b": 1}));
        assert!(Payload::parse("{\"a\": ".to_owned()).is_err());
        assert_eq!(Payload::empty().to_value(), json!({}));
    }
}
