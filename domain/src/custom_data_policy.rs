//! Which custom data keys end users may write themselves (through `/api/my-account`), and the
//! JSON Schema each such value must satisfy. One stream per tenant; every change records the
//! whole policy, so a reader never merges history. A key the policy does not name is read-only
//! for its user: with no policy recorded, users write nothing (App ID's "custom attributes are
//! writable with any access token" is exactly the hole this closes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};

/// The single stream of the tenant.
pub const STREAM_ID: &str = "default";

/// Longest key name a policy may declare (custom data keys are JSON object keys; this only keeps
/// the policy and the log entries naming keys bounded).
pub const MAX_KEY_CHARS: usize = 256;

/// What a user may write under one key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPolicy {
    /// A JSON Schema the value must satisfy; any JSON value when absent. Compiled and checked
    /// at the edge: the domain only keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Key → what the user may write there. Ordered, so the same policy always records the same
    /// payload.
    #[serde(default)]
    pub user_writable: BTreeMap<String, KeyPolicy>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomDataPolicyCommand {
    Replace(Policy),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CustomDataPolicyEvent {
    #[serde(rename = "custom_data_policy.replaced")]
    Replaced(Policy),
}

impl cqrs_es::DomainEvent for CustomDataPolicyEvent {
    fn event_type(&self) -> String {
        match self {
            CustomDataPolicyEvent::Replaced(_) => "custom_data_policy.replaced",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            CustomDataPolicyEvent::Replaced(_) => "1",
        }
        .to_owned()
    }
}

/// Key names and schemas are configuration, not anybody's personal data.
impl Event for CustomDataPolicyEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomDataPolicyError {
    #[error("a user-writable key must have a name")]
    EmptyKey,
    #[error("the user-writable key {key:?} is longer than {MAX_KEY_CHARS} characters")]
    KeyTooLong { key: String },
}

#[derive(Debug, Clone, Default)]
pub struct CustomDataPolicy {
    policy: Policy,
}

impl Aggregate for CustomDataPolicy {
    const TYPE: &'static str = "custom_data_policy";
    type Command = CustomDataPolicyCommand;
    type Event = CustomDataPolicyEvent;
    type Error = CustomDataPolicyError;

    fn decide(
        &self,
        command: CustomDataPolicyCommand,
    ) -> Result<Vec<CustomDataPolicyEvent>, CustomDataPolicyError> {
        match command {
            CustomDataPolicyCommand::Replace(policy) => {
                for key in policy.user_writable.keys() {
                    if key.is_empty() {
                        return Err(CustomDataPolicyError::EmptyKey);
                    }
                    if key.chars().count() > MAX_KEY_CHARS {
                        return Err(CustomDataPolicyError::KeyTooLong { key: key.clone() });
                    }
                }
                // Putting the policy in force again is not a change worth a fact.
                if policy == self.policy {
                    return Ok(Vec::new());
                }
                Ok(vec![CustomDataPolicyEvent::Replaced(policy)])
            }
        }
    }

    fn apply(&mut self, event: &CustomDataPolicyEvent) {
        match event {
            CustomDataPolicyEvent::Replaced(policy) => self.policy = policy.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn policy(keys: &[&str]) -> Policy {
        Policy {
            user_writable: keys
                .iter()
                .map(|k| ((*k).to_owned(), KeyPolicy::default()))
                .collect(),
        }
    }

    #[test]
    fn replacing_records_the_whole_policy_once() {
        Given::<CustomDataPolicy>::with(())
            .given(vec![])
            .when(CustomDataPolicyCommand::Replace(policy(&["nickname"])))
            .then_expect_events(vec![CustomDataPolicyEvent::Replaced(policy(&["nickname"]))]);
        Given::<CustomDataPolicy>::with(())
            .given(vec![CustomDataPolicyEvent::Replaced(policy(&["nickname"]))])
            .when(CustomDataPolicyCommand::Replace(policy(&["nickname"])))
            .then_expect_events(vec![]);
    }

    #[test]
    fn keys_must_be_named_and_bounded() {
        Given::<CustomDataPolicy>::with(())
            .given(vec![])
            .when(CustomDataPolicyCommand::Replace(policy(&[""])))
            .then_expect_error(CustomDataPolicyError::EmptyKey);
        let long = "k".repeat(MAX_KEY_CHARS + 1);
        Given::<CustomDataPolicy>::with(())
            .given(vec![])
            .when(CustomDataPolicyCommand::Replace(policy(&[&long])))
            .then_expect_error(CustomDataPolicyError::KeyTooLong { key: long.clone() });
    }
}
