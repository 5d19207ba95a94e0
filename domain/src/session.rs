//! A sign-in session: what the session cookie stands for. One per browser sign-in, shared by
//! every application the user authorizes from it; ending it signs the browser out. The stream id
//! is the keyed hash of the cookie value, so the cookie itself is never stored.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

#[derive(Debug, Clone, PartialEq)]
pub enum SessionCommand {
    Start {
        user_id: String,
        interaction_id: String,
        auth_time: i64,
        expires_at: i64,
    },
    /// A further sign-in within the same browser session (e.g. `prompt=login`).
    Reauthenticate {
        interaction_id: String,
        auth_time: i64,
    },
    AddClient {
        client_id: String,
        grant_id: String,
    },
    End {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SessionEvent {
    #[serde(rename = "session.started")]
    #[serde(rename_all = "camelCase")]
    Started {
        user_id: String,
        interaction_id: String,
        auth_time: i64,
        expires_at: i64,
    },
    #[serde(rename = "session.reauthenticated")]
    #[serde(rename_all = "camelCase")]
    Reauthenticated {
        interaction_id: String,
        auth_time: i64,
    },
    #[serde(rename = "session.client_added")]
    #[serde(rename_all = "camelCase")]
    ClientAdded { client_id: String, grant_id: String },
    #[serde(rename = "session.ended")]
    Ended { reason: String },
}

impl cqrs_es::DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        match self {
            SessionEvent::Started { .. } => "session.started",
            SessionEvent::Reauthenticated { .. } => "session.reauthenticated",
            SessionEvent::ClientAdded { .. } => "session.client_added",
            SessionEvent::Ended { .. } => "session.ended",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            SessionEvent::Started { .. }
            | SessionEvent::Reauthenticated { .. }
            | SessionEvent::ClientAdded { .. }
            | SessionEvent::Ended { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for SessionEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session does not exist")]
    NotFound,
    #[error("the session already exists")]
    AlreadyStarted,
    #[error("the session has ended")]
    Ended,
}

#[derive(Debug, Clone, Default)]
pub enum Session {
    #[default]
    New,
    Live {
        user_id: String,
        clients: Vec<String>,
    },
    Ended {
        user_id: String,
    },
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;

    fn decide(&self, command: SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        match (self, command) {
            (
                Session::New,
                SessionCommand::Start {
                    user_id,
                    interaction_id,
                    auth_time,
                    expires_at,
                },
            ) => Ok(vec![SessionEvent::Started {
                user_id,
                interaction_id,
                auth_time,
                expires_at,
            }]),
            (Session::New, _) => Err(SessionError::NotFound),
            (Session::Live { .. } | Session::Ended { .. }, SessionCommand::Start { .. }) => {
                Err(SessionError::AlreadyStarted)
            }
            (Session::Ended { .. }, SessionCommand::End { .. }) => Ok(Vec::new()),
            (Session::Ended { .. }, _) => Err(SessionError::Ended),
            (
                Session::Live { .. },
                SessionCommand::Reauthenticate {
                    interaction_id,
                    auth_time,
                },
            ) => Ok(vec![SessionEvent::Reauthenticated {
                interaction_id,
                auth_time,
            }]),
            (
                Session::Live { clients, .. },
                SessionCommand::AddClient {
                    client_id,
                    grant_id,
                },
            ) => Ok(if clients.contains(&client_id) {
                Vec::new()
            } else {
                vec![SessionEvent::ClientAdded {
                    client_id,
                    grant_id,
                }]
            }),
            (Session::Live { .. }, SessionCommand::End { reason }) => {
                Ok(vec![SessionEvent::Ended { reason }])
            }
        }
    }

    fn apply(&mut self, event: &SessionEvent) {
        match (&mut *self, event) {
            (Session::New, SessionEvent::Started { user_id, .. }) => {
                *self = Session::Live {
                    user_id: user_id.clone(),
                    clients: Vec::new(),
                };
            }
            (Session::Live { clients, .. }, SessionEvent::ClientAdded { client_id, .. }) => {
                clients.push(client_id.clone());
            }
            (Session::Live { user_id, .. }, SessionEvent::Ended { .. }) => {
                *self = Session::Ended {
                    user_id: user_id.clone(),
                };
            }
            (
                Session::Live { .. },
                SessionEvent::Started { .. } | SessionEvent::Reauthenticated { .. },
            )
            | (Session::New, _)
            | (Session::Ended { .. }, _) => {}
        }
    }

    /// A session is its user's.
    fn data_subject(&self, _stream_id: &str, events: &[SessionEvent]) -> Option<String> {
        match self {
            Session::Live { user_id, .. } | Session::Ended { user_id } => Some(user_id.clone()),
            Session::New => events.iter().find_map(|event| match event {
                SessionEvent::Started { user_id, .. } => Some(user_id.clone()),
                SessionEvent::Reauthenticated { .. }
                | SessionEvent::ClientAdded { .. }
                | SessionEvent::Ended { .. } => None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn started() -> SessionEvent {
        SessionEvent::Started {
            user_id: "u1".into(),
            interaction_id: "i1".into(),
            auth_time: 1,
            expires_at: 100,
        }
    }

    #[test]
    fn each_client_is_recorded_once() {
        Given::<Session>::with(())
            .given(vec![
                started(),
                SessionEvent::ClientAdded {
                    client_id: "app".into(),
                    grant_id: "g1".into(),
                },
            ])
            .when(SessionCommand::AddClient {
                client_id: "app".into(),
                grant_id: "g2".into(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_ended_session_ends_once_and_accepts_nothing_else() {
        let ended = vec![
            started(),
            SessionEvent::Ended {
                reason: "logout".into(),
            },
        ];
        Given::<Session>::with(())
            .given(ended.clone())
            .when(SessionCommand::End {
                reason: "again".into(),
            })
            .then_expect_events(vec![]);
        Given::<Session>::with(())
            .given(ended)
            .when(SessionCommand::AddClient {
                client_id: "app".into(),
                grant_id: "g".into(),
            })
            .then_expect_error(SessionError::Ended);
    }

    #[test]
    fn the_user_owns_the_session_data() {
        let mut session = Session::default();
        assert_eq!(session.data_subject("s", &[started()]), Some("u1".into()));
        session.apply(&started());
        assert_eq!(
            session.data_subject("s", &[SessionEvent::Ended { reason: "x".into() }]),
            Some("u1".into())
        );
    }
}
