//! What a social connector does (Logto's `getAuthorizationUri` and `getUserInfo`, plus the
//! refresh of a stored token set), and the values that pass between the connector, the
//! Experience API and the token vault.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What the server keeps, sealed and bound to the interaction, between sending the browser to
/// the provider and its return: the values the return must match, and the PKCE verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocialSession {
    pub connector_id: String,
    pub state: String,
    pub nonce: String,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
}

/// The person the provider vouches for (Logto's `SocialUserInfo`). `email` and `phone` are set
/// only when the provider says it verified them (or the connector trusts unverified emails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocialUser {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Every claim of the ID token.
    pub raw_data: Map<String, Value>,
}

impl SocialUser {
    /// `identities.<target>.details`, as Logto stores it.
    pub fn details(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The provider's token set, as sealed in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenSet {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Milliseconds since the epoch, from `expires_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Why a social sign-in failed, in Logto's `connector.*` vocabulary. `reason` names the failed
/// check for the page, the log and the tests (`issuer`, `audience`, `nonce`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SocialError {
    pub kind: SocialErrorKind,
    pub code: &'static str,
    pub message: String,
    pub reason: &'static str,
}

/// Logto's status classes of connector errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocialErrorKind {
    /// The connector's configuration cannot work (400).
    Config,
    /// The provider refused the person or answered something unacceptable (401).
    Authentication,
    /// The provider could not be reached or answered nonsense (400 `connector.general`).
    Provider,
}

impl SocialError {
    pub fn config(message: impl Into<String>) -> SocialError {
        SocialError {
            kind: SocialErrorKind::Config,
            code: "connector.invalid_config",
            message: message.into(),
            reason: "config",
        }
    }

    pub fn id_token(reason: &'static str, message: impl Into<String>) -> SocialError {
        SocialError {
            kind: SocialErrorKind::Authentication,
            code: "connector.social_invalid_id_token",
            message: message.into(),
            reason,
        }
    }

    pub fn auth_code(message: impl Into<String>) -> SocialError {
        SocialError {
            kind: SocialErrorKind::Authentication,
            code: "connector.social_auth_code_invalid",
            message: message.into(),
            reason: "token_endpoint",
        }
    }

    pub fn authorization(reason: &'static str, message: impl Into<String>) -> SocialError {
        SocialError {
            kind: SocialErrorKind::Authentication,
            code: "connector.authorization_failed",
            message: message.into(),
            reason,
        }
    }

    pub fn provider(reason: &'static str, message: impl Into<String>) -> SocialError {
        SocialError {
            kind: SocialErrorKind::Provider,
            code: "connector.general",
            message: message.into(),
            reason,
        }
    }
}

#[async_trait]
pub trait SocialFactory: Sync {
    /// Where to send the browser, and what to keep until it returns. `state` and
    /// `redirect_uri` are the caller's; the nonce and the PKCE verifier are drawn here.
    async fn authorization_uri(
        &self,
        connector_id: &str,
        config: &Value,
        state: &str,
        redirect_uri: &str,
    ) -> Result<(String, SocialSession), SocialError>;

    /// The browser's return (`connectorData`: `code`, `state`, ...): checks it against the
    /// session, redeems the code and verifies the ID token at `now_ms`.
    async fn user_info(
        &self,
        config: &Value,
        session: &SocialSession,
        data: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<(SocialUser, TokenSet), SocialError>;

    /// A fresh token set from a stored refresh token (the new set keeps the old refresh token
    /// when the provider does not rotate it).
    async fn refresh(
        &self,
        config: &Value,
        refresh_token: &str,
        now_ms: i64,
    ) -> Result<TokenSet, SocialError>;
}

/// A configured social connector, ready to use: its row, its factory's social half, its whole
/// configuration (secrets back in place) and its effective target and name.
pub struct SocialConnector {
    pub row: projections::connectors::ConnectorRow,
    pub social: &'static dyn SocialFactory,
    pub config: Value,
    pub target: String,
    /// The button's name: the connector's own, else the factory's (English first).
    pub name: String,
}

/// The connector's metadata overrides over its factory's (standard connectors only).
fn effective(row: &projections::connectors::ConnectorRow, key: &str) -> Option<Value> {
    let own = row.metadata.get(key).filter(|v| !v.is_null()).cloned();
    own.or_else(|| {
        super::factory(&row.connector_id)?
            .metadata()
            .get(key)
            .cloned()
    })
}

fn display_name(name: Option<Value>) -> Option<String> {
    match name? {
        Value::String(name) => Some(name),
        Value::Object(names) => names
            .get("en")
            .or_else(|| names.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

async fn ready(
    store: &crate::store::EventStore,
    row: projections::connectors::ConnectorRow,
) -> Result<Option<SocialConnector>, crate::store::StoreError> {
    let Some(social) = super::factory(&row.connector_id).and_then(|f| f.social()) else {
        return Ok(None);
    };
    let Some(target) = effective(&row, "target").and_then(|t| t.as_str().map(str::to_owned)) else {
        return Ok(None);
    };
    let config = super::full_config(store, &row).await?;
    let name = display_name(effective(&row, "name")).unwrap_or_else(|| target.clone());
    Ok(Some(SocialConnector {
        row,
        social,
        config,
        target,
        name,
    }))
}

/// The social connector with this id, if there is one.
pub async fn connector(
    store: &crate::store::EventStore,
    id: &str,
) -> Result<Option<SocialConnector>, crate::store::StoreError> {
    let row = {
        let db = store.pool().get().await?;
        projections::connectors::by_id(&db, id).await?
    };
    match row {
        Some(row) => ready(store, row).await,
        None => Ok(None),
    }
}

/// Every social connector, oldest first.
pub async fn connectors(
    store: &crate::store::EventStore,
) -> Result<Vec<SocialConnector>, crate::store::StoreError> {
    let rows = {
        let db = store.pool().get().await?;
        projections::connectors::of_type(&db, domain::connector::ConnectorType::Social.as_str())
            .await?
    };
    let mut ready_ones = Vec::new();
    for row in rows {
        if let Some(connector) = ready(store, row).await? {
            ready_ones.push(connector);
        }
    }
    Ok(ready_ones)
}
