//! Lets cqrs-es's given/when/then `TestFramework` drive our synchronous aggregates.

use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::Aggregate;

/// Wraps an aggregate so it satisfies cqrs-es's (async, serializable) `Aggregate` trait; the
/// state itself is never serialized in tests, hence the skipped field.
#[derive(Default, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Spec<A: Aggregate> {
    #[serde(skip)]
    state: A,
}

impl<A> cqrs_es::Aggregate for Spec<A>
where
    A: Aggregate,
    A::Command: Send,
{
    const TYPE: &'static str = A::TYPE;
    type Command = A::Command;
    type Event = A::Event;
    type Error = A::Error;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.state.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.state.apply(&event);
    }
}

pub type Given<A> = cqrs_es::test::TestFramework<Spec<A>>;

/// Once a subject's key is destroyed its events are read without their personal fields: each
/// of `events` must still decode (to blanks), or no fold could replay the log after an erasure.
pub fn assert_decodes_without_personal_fields<E: crate::Event>(events: &[E]) {
    for event in events {
        let encoded = crate::encode(event).unwrap();
        let mut payload = encoded.payload.clone();
        if let serde_json::Value::Object(object) = &mut payload {
            for field in encoded.personal_fields {
                object.remove(*field);
            }
        }
        let decoded: E = crate::decode(&encoded.event_type, &payload)
            .unwrap_or_else(|e| panic!("{} without its personal fields: {e}", encoded.event_type));
        assert_eq!(
            cqrs_es::DomainEvent::event_type(&decoded),
            encoded.event_type
        );
    }
}
