//! Splits an event's personal data (the fields its type names, plus the request's IP and user
//! agent) from the rest, and seals it under the data subject's key; and the reverse on read.

use domain::Payload;
use serde_json::{Map, Value};

use crate::crypto::{CryptoError, DataKey};

/// The sealed part binds to the event's identity, so a blob cannot be moved to another event.
pub fn aad(stream_id: &str, sequence: i32, event_type: &str) -> Vec<u8> {
    format!("{stream_id}\0{sequence}\0{event_type}").into_bytes()
}

/// What goes into the row: the plain payload, the sealed personal part if any, and the IP and
/// user agent in the clear only when the event has no data subject to seal them for.
#[derive(Debug)]
pub struct Split {
    pub payload: Value,
    pub personal: Option<Vec<u8>>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub struct Request<'a> {
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub fn split(
    mut payload: Value,
    personal_fields: &[&str],
    request: Request<'_>,
    key: Option<&DataKey>,
    aad: &[u8],
) -> Result<Split, CryptoError> {
    let Some(key) = key else {
        return Ok(Split {
            payload,
            personal: None,
            ip: request.ip.map(str::to_owned),
            user_agent: request.user_agent.map(str::to_owned),
        });
    };
    let mut fields = Map::new();
    if let Value::Object(object) = &mut payload {
        for name in personal_fields {
            if let Some(value) = object.remove(*name) {
                fields.insert((*name).to_owned(), value);
            }
        }
    }
    let mut blob = Map::new();
    if !fields.is_empty() {
        blob.insert("fields".into(), Value::Object(fields));
    }
    if let Some(ip) = request.ip {
        blob.insert("ip".into(), Value::String(ip.to_owned()));
    }
    if let Some(ua) = request.user_agent {
        blob.insert("userAgent".into(), Value::String(ua.to_owned()));
    }
    let personal = if blob.is_empty() {
        None
    } else {
        Some(key.seal(aad, Value::Object(blob).to_string().as_bytes())?)
    };
    Ok(Split {
        payload,
        personal,
        ip: None,
        user_agent: None,
    })
}

/// The result of reading a row back.
#[derive(Debug, PartialEq)]
pub struct Joined {
    pub payload: Payload,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The row had a personal part but its key is destroyed: the fields are gone for good.
    pub erased: bool,
}

pub fn join(
    payload: Payload,
    personal: Option<&[u8]>,
    key: Option<&DataKey>,
    aad: &[u8],
    plain_ip: Option<String>,
    plain_user_agent: Option<String>,
) -> Result<Joined, CryptoError> {
    let Some(sealed) = personal else {
        return Ok(Joined {
            payload,
            ip: plain_ip,
            user_agent: plain_user_agent,
            erased: false,
        });
    };
    let Some(key) = key else {
        return Ok(Joined {
            payload,
            ip: None,
            user_agent: None,
            erased: true,
        });
    };
    let opened = key.open(aad, sealed)?;
    let blob: Value = serde_json::from_slice(&opened).map_err(|_| CryptoError::Tampered)?;
    let text = |name: &str| blob.get(name).and_then(Value::as_str).map(str::to_owned);
    // Most sealed parts hold only the request's origin: the payload's text is then kept as is.
    let payload = match blob.get("fields") {
        Some(Value::Object(fields)) if !fields.is_empty() => {
            let mut tree = payload.to_value();
            if let Value::Object(object) = &mut tree {
                for (name, value) in fields {
                    object.insert(name.clone(), value.clone());
                }
            }
            Payload::from_value(&tree)
        }
        _ => payload,
    };
    Ok(Joined {
        ip: text("ip"),
        user_agent: text("userAgent"),
        payload,
        erased: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keyring;
    use serde_json::json;

    #[test]
    fn personal_fields_and_request_origin_leave_the_plain_payload() {
        let ring = Keyring::from_kek(&[3u8; 32]).unwrap();
        let (key, _) = ring.new_data_key("u1").unwrap();
        let aad = aad("u1", 1, "user.created");
        let request = Request {
            ip: Some("10.0.0.1"),
            user_agent: Some("curl/8"),
        };
        let payload = json!({"id": "u1", "primaryEmail": "ada@example.com", "name": "Ada"});
        let split = split(
            payload.clone(),
            &["primaryEmail", "name"],
            request,
            Some(&key),
            &aad,
        )
        .unwrap();
        assert_eq!(split.payload, json!({"id": "u1"}));
        assert_eq!(
            (split.ip.as_deref(), split.user_agent.as_deref()),
            (None, None)
        );
        let sealed = split.personal.unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("ada@"));

        let joined = join(
            Payload::from_value(&split.payload),
            Some(&sealed),
            Some(&key),
            &aad,
            None,
            None,
        )
        .unwrap();
        assert_eq!(joined.payload.to_value(), payload);
        assert_eq!(joined.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(joined.user_agent.as_deref(), Some("curl/8"));

        let erased = join(
            Payload::from_value(&split.payload),
            Some(&sealed),
            None,
            &aad,
            None,
            None,
        )
        .unwrap();
        assert!(erased.erased);
        assert_eq!(erased.payload.to_value(), json!({"id": "u1"}));
        assert_eq!(erased.ip, None);
    }

    #[test]
    fn without_a_subject_the_origin_stays_in_the_clear() {
        let split = split(
            json!({"name": "Billing"}),
            &[],
            Request {
                ip: Some("10.0.0.2"),
                user_agent: None,
            },
            None,
            b"aad",
        )
        .unwrap();
        assert_eq!(split.personal, None);
        assert_eq!(split.ip.as_deref(), Some("10.0.0.2"));
    }
}
