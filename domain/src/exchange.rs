//! One call to the token endpoint, as the audit log remembers it (Logto's `ExchangeTokenBy.*`
//! log entries): which client, which grant, what was issued or why it was refused. Each call is
//! its own one-event stream; token *state* (codes, refresh tokens) lives in grant streams.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantType {
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    /// RFC 8693, for subject tokens and personal access tokens.
    #[serde(rename = "token_exchange")]
    TokenExchange,
    /// A grant type we do not support, or none at all.
    #[serde(rename = "unknown")]
    Unknown,
}

impl GrantType {
    /// The suffix of Logto's log key, `ExchangeTokenBy.<suffix>`.
    pub fn log_name(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "ClientCredentials",
            GrantType::AuthorizationCode => "AuthorizationCode",
            GrantType::RefreshToken => "RefreshToken",
            GrantType::TokenExchange => "TokenExchange",
            GrantType::Unknown => "Unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    pub grant_type: GrantType,
    pub application_id: String,
    /// The application secret that authenticated the client, by name.
    pub secret_name: Option<String>,
    /// The end user the tokens are about; `None` for machine-to-machine tokens.
    pub user_id: Option<String>,
    pub audience: Option<String>,
    pub scope: String,
    /// `AccessToken`, `RefreshToken`, `IdToken`.
    pub token_types: Vec<String>,
    /// `jti` of the access token.
    pub token_id: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    pub grant_type: GrantType,
    pub application_id: Option<String>,
    pub user_id: Option<String>,
    pub error: String,
    pub error_description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExchangeCommand {
    RecordIssued(Issued),
    RecordRefused(Refused),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ExchangeEvent {
    #[serde(rename = "exchange.issued")]
    Issued(Issued),
    #[serde(rename = "exchange.refused")]
    Refused(Refused),
}

impl cqrs_es::DomainEvent for ExchangeEvent {
    fn event_type(&self) -> String {
        match self {
            ExchangeEvent::Issued(_) => "exchange.issued",
            ExchangeEvent::Refused(_) => "exchange.refused",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            ExchangeEvent::Issued(_) | ExchangeEvent::Refused(_) => "1",
        }
        .to_owned()
    }
}

impl Event for ExchangeEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("this token request is already recorded")]
    AlreadyRecorded,
}

#[derive(Debug, Clone, Default)]
pub struct Exchange {
    recorded: bool,
}

impl Aggregate for Exchange {
    const TYPE: &'static str = "exchange";
    type Command = ExchangeCommand;
    type Event = ExchangeEvent;
    type Error = ExchangeError;

    fn decide(&self, command: ExchangeCommand) -> Result<Vec<ExchangeEvent>, ExchangeError> {
        if self.recorded {
            return Err(ExchangeError::AlreadyRecorded);
        }
        Ok(vec![match command {
            ExchangeCommand::RecordIssued(issued) => ExchangeEvent::Issued(issued),
            ExchangeCommand::RecordRefused(refused) => ExchangeEvent::Refused(refused),
        }])
    }

    fn apply(&mut self, event: &ExchangeEvent) {
        match event {
            ExchangeEvent::Issued(_) | ExchangeEvent::Refused(_) => self.recorded = true,
        }
    }

    /// A user's sign-in origin is their personal data; a machine's is not.
    fn data_subject(&self, _stream_id: &str, events: &[ExchangeEvent]) -> Option<String> {
        events.iter().find_map(|event| match event {
            ExchangeEvent::Issued(issued) => issued.user_id.clone(),
            ExchangeEvent::Refused(refused) => refused.user_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn refused() -> Refused {
        Refused {
            grant_type: GrantType::ClientCredentials,
            application_id: Some("app".into()),
            user_id: None,
            error: "invalid_client".into(),
            error_description: "client authentication failed".into(),
        }
    }

    #[test]
    fn an_exchange_is_recorded_once() {
        Given::<Exchange>::with(())
            .given(vec![ExchangeEvent::Refused(refused())])
            .when(ExchangeCommand::RecordRefused(refused()))
            .then_expect_error(ExchangeError::AlreadyRecorded);
    }

    #[test]
    fn user_exchanges_have_the_user_as_data_subject() {
        let mut by_user = refused();
        by_user.user_id = Some("u1".into());
        assert_eq!(
            Exchange::default().data_subject("x", &[ExchangeEvent::Refused(by_user)]),
            Some("u1".into())
        );
        assert_eq!(
            Exchange::default().data_subject("x", &[ExchangeEvent::Refused(refused())]),
            None
        );
    }
}
