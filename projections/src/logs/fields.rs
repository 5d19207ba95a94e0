//! A log entry's payload: named JSON values, a later insert of a name replacing the earlier
//! value, as in a `serde_json::Map`. Kept as a short list in insertion order, with the names
//! the code writes borrowed rather than allocated: a rebuild builds an entry per event of the
//! log, and the map's tree nodes and key strings were the largest part of that.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(Cow<'static, str>, Value)>);

impl Fields {
    pub fn new() -> Fields {
        Fields(Vec::with_capacity(12))
    }

    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: Value) {
        let name = name.into();
        match self.0.iter_mut().find(|(held, _)| *held == name) {
            Some((_, held)) => *held = value,
            None => self.0.push((name, value)),
        }
    }

    /// Inserts every field of `other`, leaving it empty.
    pub fn append(&mut self, other: &mut Map<String, Value>) {
        self.extend(std::mem::take(other));
    }

    pub fn into_value(self) -> Value {
        Value::Object(
            self.0
                .into_iter()
                .map(|(name, value)| (name.into_owned(), value))
                .collect(),
        )
    }
}

impl Extend<(String, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, fields: I) {
        for (name, value) in fields {
            self.insert(name, value);
        }
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Fields, A::Error> {
                let mut fields = Fields::new();
                while let Some((name, value)) = entries.next_entry::<String, Value>()? {
                    fields.insert(name, value);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_later_insert_replaces_and_the_object_round_trips() {
        let mut fields = Fields::new();
        fields.insert("key", json!("A"));
        fields.insert("result", json!("Success"));
        fields.insert(String::from("key"), json!("B"));
        let mut extra = Map::from_iter([("result".to_owned(), json!("Error"))]);
        fields.append(&mut extra);
        assert!(extra.is_empty());
        let text = serde_json::to_string(&fields).unwrap();
        assert_eq!(text, r#"{"key":"B","result":"Error"}"#);
        let back: Fields = serde_json::from_str(&text).unwrap();
        assert_eq!(back, fields);
        assert_eq!(back.into_value(), json!({"key": "B", "result": "Error"}));
    }
}
