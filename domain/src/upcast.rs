//! The only place where old event versions exist. Stored events are never rewritten; on read,
//! every event passes through here and leaves at the version the current code understands.

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster, SerializedEvent};
use serde_json::Value;

use crate::Payload;

/// An event as stored, before it is decoded into a domain type.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredForm {
    pub stream_type: String,
    pub event_type: String,
    pub version: i32,
    pub payload: Payload,
}

/// The chain of upcasters, one per (event type, target version). Empty until an event type
/// first changes shape; each entry is added with the version bump that needs it.
fn upcasters() -> Vec<SemanticVersionEventUpcaster> {
    Vec::new()
}

pub fn upcast(form: StoredForm) -> StoredForm {
    upcast_with(&upcasters(), form)
}

fn upcast_with(chain: &[SemanticVersionEventUpcaster], form: StoredForm) -> StoredForm {
    // Almost every event is at its current version: its payload is left as text.
    if chain.is_empty() {
        return form;
    }
    let version = form.version.to_string();
    if !chain
        .iter()
        .any(|upcaster| upcaster.can_upcast(&form.event_type, &version))
    {
        return form;
    }
    let mut event = SerializedEvent {
        aggregate_id: String::new(),
        sequence: 0,
        aggregate_type: form.stream_type.clone(),
        event_type: form.event_type,
        event_version: version,
        payload: form.payload.to_value(),
        metadata: Value::Null,
    };
    for upcaster in chain {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            event = upcaster.upcast(event);
        }
    }
    let version = event
        .event_version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(form.version);
    StoredForm {
        stream_type: form.stream_type,
        event_type: event.event_type,
        version,
        payload: Payload::from_value(&event.payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_display_name() -> SemanticVersionEventUpcaster {
        SemanticVersionEventUpcaster::new(
            "user.created",
            "2",
            Box::new(|mut payload: Value| {
                if let Some(object) = payload.as_object_mut()
                    && let Some(name) = object.remove("displayName")
                {
                    object.insert("name".into(), name);
                }
                payload
            }),
        )
    }

    fn stored(version: i32, payload: Value) -> StoredForm {
        StoredForm {
            stream_type: "user".into(),
            event_type: "user.created".into(),
            version,
            payload: Payload::from_value(&payload),
        }
    }

    #[test]
    fn an_old_version_is_upcast_to_the_current_shape() {
        let chain = [rename_display_name()];
        let out = upcast_with(&chain, stored(1, json!({"displayName": "Ada"})));
        assert_eq!(out.version, 2);
        assert_eq!(out.payload.to_value(), json!({"name": "Ada"}));
    }

    #[test]
    fn a_current_version_passes_untouched() {
        let chain = [rename_display_name()];
        let out = upcast_with(&chain, stored(2, json!({"displayName": "kept"})));
        assert_eq!(out, stored(2, json!({"displayName": "kept"})));
    }

    #[test]
    fn other_event_types_are_not_touched() {
        let chain = [rename_display_name()];
        let mut form = stored(1, json!({"displayName": "x"}));
        form.event_type = "user.profile_updated".into();
        assert_eq!(upcast_with(&chain, form.clone()), form);
    }
}
