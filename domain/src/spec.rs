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
