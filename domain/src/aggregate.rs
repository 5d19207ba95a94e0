//! The vocabulary every aggregate speaks. Event types use cqrs-es's `DomainEvent` (type name and
//! version); decisions use our own synchronous `Aggregate` because cqrs-es's `handle` is async and
//! writes through a sink, while ours must stay a pure function (see ARCHITECTURE.md).

use serde_json::Value;

use crate::Rejection;

/// A stored fact. `event_type()` is the dotted past-tense name (`user.created`) and
/// `event_version()` the integer schema version, as a string because that is cqrs-es's contract.
pub trait Event: cqrs_es::DomainEvent {
    /// Top-level payload keys that hold personal data. The store moves them out of the plain
    /// payload and encrypts them under the data subject's key, so erasure can destroy them.
    fn personal_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// Vault entries (encrypted secrets kept outside the log) this event makes obsolete; the store
    /// deletes them in the same transaction, so a deleted secret is gone for good.
    fn retired_vault_refs(&self) -> Vec<String> {
        Vec::new()
    }
}

/// One consistency boundary: its state is the fold of its own stream.
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The stream type, also the prefix of every event type name of this aggregate.
    const TYPE: &'static str;
    type Command: Send;
    type Event: Event;
    type Error: std::error::Error + Into<Rejection> + Send + Sync + 'static;

    /// Command to events, given the current state. Pure: no clock, no randomness, no I/O; all of
    /// those arrive inside the command.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Event to state.
    fn apply(&mut self, event: &Self::Event);

    /// Whose personal data the new `events` of this stream carry, if a person's, given the
    /// state before them. The store seals their personal fields (and the request's IP and user
    /// agent) under that person's data key.
    fn data_subject(&self, _stream_id: &str, _events: &[Self::Event]) -> Option<String> {
        None
    }

    /// Whose data keys the new `events` destroy (erasure by crypto-shredding). The store
    /// destroys them in the events' transaction, after sealing them.
    fn erased_subjects(&self, _stream_id: &str, _events: &[Self::Event]) -> Vec<String> {
        Vec::new()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("event does not serialize to a tagged object: {0}")]
    Shape(String),
    #[error("event version {0:?} is not an integer")]
    Version(String),
    #[error("cannot decode {event_type}: {source}")]
    Decode {
        event_type: String,
        source: serde_json::Error,
    },
}

/// An event ready to be stored: its type name, version and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub event_type: String,
    pub version: i32,
    pub payload: Value,
    pub personal_fields: &'static [&'static str],
}

/// Events are enums serialized adjacently tagged (`{"type": .., "data": ..}`); the tag becomes the
/// stored type column and the content the payload.
pub fn encode<E: Event>(event: &E) -> Result<Encoded, CodecError> {
    let version = event.event_version();
    let version = version
        .parse::<i32>()
        .map_err(|_| CodecError::Version(version.clone()))?;
    let value = serde_json::to_value(event).map_err(|e| CodecError::Shape(e.to_string()))?;
    let Value::Object(mut tagged) = value else {
        return Err(CodecError::Shape("not an object".into()));
    };
    let payload = tagged
        .remove("data")
        .unwrap_or(Value::Object(Default::default()));
    Ok(Encoded {
        event_type: event.event_type(),
        version,
        payload,
        personal_fields: event.personal_fields(),
    })
}

/// The inverse of `encode`. The payload is read in place: no tagged copy of it is built, and
/// the tag comes before the content, so serde decodes the content straight into the variant
/// (the other way round it buffers the whole payload first; replay decodes every event).
pub fn decode<E: Event>(
    event_type: &str,
    payload: &(impl EventData + ?Sized),
) -> Result<E, CodecError> {
    E::deserialize(Tagged {
        event_type,
        payload,
    })
    .map_err(|source| CodecError::Decode {
        event_type: event_type.to_owned(),
        source,
    })
}

/// What an event's content can be decoded from: a recorded payload's text, or the tree an
/// event was just encoded to.
pub trait EventData {
    fn content<'de, V: serde::de::DeserializeSeed<'de>>(
        &'de self,
        seed: V,
    ) -> Result<V::Value, serde_json::Error>;
}

impl EventData for Value {
    fn content<'de, V: serde::de::DeserializeSeed<'de>>(
        &'de self,
        seed: V,
    ) -> Result<V::Value, serde_json::Error> {
        seed.deserialize(self)
    }
}

impl EventData for crate::Payload {
    fn content<'de, V: serde::de::DeserializeSeed<'de>>(
        &'de self,
        seed: V,
    ) -> Result<V::Value, serde_json::Error> {
        let mut text = serde_json::Deserializer::from_str(self.text());
        let value = seed.deserialize(&mut text)?;
        text.end()?;
        Ok(value)
    }
}

/// `{"type": event_type, "data": payload}` to serde, in that order, without building it.
struct Tagged<'a, P: ?Sized> {
    event_type: &'a str,
    payload: &'a P,
}

impl<'de, P: EventData + ?Sized> serde::Deserializer<'de> for Tagged<'de, P> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(TaggedEntries {
            tagged: self,
            next: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct TaggedEntries<'a, P: ?Sized> {
    tagged: Tagged<'a, P>,
    /// The entry whose key comes next: 0 the tag, 1 the content, 2 none.
    next: u8,
}

impl<'de, P: EventData + ?Sized> serde::de::MapAccess<'de> for TaggedEntries<'de, P> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = match self.next {
            0 => "type",
            1 => "data",
            _ => return Ok(None),
        };
        seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.next += 1;
        if self.next == 1 {
            seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(
                self.tagged.event_type,
            ))
        } else {
            self.tagged.payload.content(seed)
        }
    }
}
