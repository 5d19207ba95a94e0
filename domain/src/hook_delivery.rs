//! One webhook delivery: one event of the log (by its position) for one hook, as the webhook
//! follower attempted it. Stream id `<hook id>:<position>`. Every attempt is an event with the
//! request and the response (Logto's `TriggerHook.<event>` log entries), so the retries and
//! their back-off survive restarts, and a delivery recorded as done is never sent again.
//!
//! The request body and the response can hold personal data (the user object of `User.*`
//! events, whatever the receiver echoes): they are sealed under the delivery's subject, the
//! person the source event was about (or the delivery itself).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};

/// One attempt as sent and answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub hook_id: String,
    /// Logto's hook event name, e.g. `PostSignIn`.
    pub event: String,
    /// Position of the log event delivered.
    pub position: i64,
    /// Whose personal data the request carries (fixed by the first attempt).
    pub subject: String,
    /// `{body}` as sent. Personal: null once the subject's key is destroyed (erasure).
    #[serde(default)]
    pub request: Value,
    /// `{statusCode, body}` when the endpoint answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// Why the attempt failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub success: bool,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HookDeliveryCommand {
    RecordAttempt(Attempt),
    Abandon { reason: String, at: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum HookDeliveryEvent {
    #[serde(rename = "hook_delivery.attempted")]
    Attempted(Attempt),
    /// Given up after the retry period.
    #[serde(rename = "hook_delivery.abandoned")]
    Abandoned { reason: String, at: i64 },
}

impl cqrs_es::DomainEvent for HookDeliveryEvent {
    fn event_type(&self) -> String {
        match self {
            HookDeliveryEvent::Attempted(_) => "hook_delivery.attempted",
            HookDeliveryEvent::Abandoned { .. } => "hook_delivery.abandoned",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            HookDeliveryEvent::Attempted(_) | HookDeliveryEvent::Abandoned { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for HookDeliveryEvent {
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            HookDeliveryEvent::Attempted(_) => &["request", "response", "error"],
            HookDeliveryEvent::Abandoned { .. } => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookDeliveryError {
    #[error("the delivery has no attempt to abandon")]
    NotStarted,
}

#[derive(Debug, Clone, Default)]
pub enum HookDelivery {
    #[default]
    New,
    Pending {
        subject: String,
    },
    /// Delivered or abandoned: nothing more happens to it.
    Done {
        subject: String,
    },
}

impl Aggregate for HookDelivery {
    const TYPE: &'static str = "hook_delivery";
    type Command = HookDeliveryCommand;
    type Event = HookDeliveryEvent;
    type Error = HookDeliveryError;

    /// Outcomes reported for a finished delivery change nothing: another node, or a batch
    /// replayed after a crash, may report what is already recorded.
    fn decide(&self, command: HookDeliveryCommand) -> Result<Vec<HookDeliveryEvent>, Self::Error> {
        match (self, command) {
            (HookDelivery::Done { .. }, _) => Ok(Vec::new()),
            (HookDelivery::New, HookDeliveryCommand::Abandon { .. }) => {
                Err(HookDeliveryError::NotStarted)
            }
            (
                HookDelivery::New | HookDelivery::Pending { .. },
                HookDeliveryCommand::RecordAttempt(attempt),
            ) => Ok(vec![HookDeliveryEvent::Attempted(attempt)]),
            (HookDelivery::Pending { .. }, HookDeliveryCommand::Abandon { reason, at }) => {
                Ok(vec![HookDeliveryEvent::Abandoned { reason, at }])
            }
        }
    }

    fn apply(&mut self, event: &HookDeliveryEvent) {
        let subject = match self {
            HookDelivery::New => None,
            HookDelivery::Pending { subject } | HookDelivery::Done { subject } => {
                Some(subject.clone())
            }
        };
        *self = match (event, subject) {
            (HookDeliveryEvent::Attempted(attempt), subject) => {
                let subject = subject.unwrap_or_else(|| attempt.subject.clone());
                if attempt.success {
                    HookDelivery::Done { subject }
                } else {
                    HookDelivery::Pending { subject }
                }
            }
            (HookDeliveryEvent::Abandoned { .. }, subject) => HookDelivery::Done {
                subject: subject.unwrap_or_default(),
            },
        };
    }

    fn data_subject(&self, _stream_id: &str, events: &[HookDeliveryEvent]) -> Option<String> {
        match self {
            HookDelivery::Pending { subject } | HookDelivery::Done { subject } => {
                Some(subject.clone())
            }
            HookDelivery::New => events.iter().find_map(|event| match event {
                HookDeliveryEvent::Attempted(attempt) => Some(attempt.subject.clone()),
                HookDeliveryEvent::Abandoned { .. } => None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;
    use serde_json::json;

    fn attempt(success: bool) -> Attempt {
        Attempt {
            hook_id: "h".into(),
            event: "User.Created".into(),
            position: 7,
            subject: "u1".into(),
            request: json!({"body": {}}),
            response: None,
            error: None,
            success,
            at: 1,
        }
    }

    /// Erasing the person a delivery was about destroys the key its request is sealed under.
    #[test]
    fn every_event_decodes_without_its_personal_fields() {
        crate::spec::assert_decodes_without_personal_fields(&[
            HookDeliveryEvent::Attempted(Attempt {
                response: Some(json!({"statusCode": 500, "body": "ada"})),
                error: Some("the endpoint answered 500".into()),
                ..attempt(false)
            }),
            HookDeliveryEvent::Abandoned {
                reason: "retry period over".into(),
                at: 2,
            },
        ]);
    }

    #[test]
    fn a_delivered_event_is_never_recorded_again() {
        Given::<HookDelivery>::with(())
            .given(vec![HookDeliveryEvent::Attempted(attempt(false))])
            .when(HookDeliveryCommand::RecordAttempt(attempt(true)))
            .then_expect_events(vec![HookDeliveryEvent::Attempted(attempt(true))]);
        Given::<HookDelivery>::with(())
            .given(vec![HookDeliveryEvent::Attempted(attempt(true))])
            .when(HookDeliveryCommand::RecordAttempt(attempt(true)))
            .then_expect_events(vec![]);
        assert_eq!(
            HookDelivery::default()
                .data_subject("h:7", &[HookDeliveryEvent::Attempted(attempt(false))]),
            Some("u1".into())
        );
    }
}
