//! Which of Logto's extended claims the ID token carries (Logto's `logto_configs` key
//! `idToken`). One stream per tenant; every change records the whole setting. Userinfo is not
//! affected: it always shows every claim of the granted scopes.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

/// The single stream of the tenant.
pub const STREAM_ID: &str = "default";

/// A claim the ID token shows only when the tenant enabled it (Logto's
/// `extendedIdTokenClaims`), and only when its scope was granted as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtendedClaim {
    CustomData,
    Identities,
    SsoIdentities,
    Roles,
    Organizations,
    OrganizationData,
    OrganizationRoles,
}

impl ExtendedClaim {
    /// The scope that must be granted for the claim to appear anywhere (Logto's
    /// `extendedIdTokenClaimsByScope`).
    pub fn scope(self) -> &'static str {
        match self {
            ExtendedClaim::CustomData => "custom_data",
            ExtendedClaim::Identities | ExtendedClaim::SsoIdentities => "identities",
            ExtendedClaim::Roles => "roles",
            ExtendedClaim::Organizations | ExtendedClaim::OrganizationData => {
                "urn:logto:scope:organizations"
            }
            ExtendedClaim::OrganizationRoles => "urn:logto:scope:organization_roles",
        }
    }
}

/// Logto's `IdTokenConfig`. The list is kept as given (order, repeats), because Logto stores the
/// body it accepted and answers with it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdTokenConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_extended_claims: Option<Vec<ExtendedClaim>>,
}

impl IdTokenConfig {
    /// What Logto seeds for a new tenant, so that ID tokens keep their familiar claims.
    pub fn logto_default() -> IdTokenConfig {
        IdTokenConfig {
            enabled_extended_claims: Some(vec![
                ExtendedClaim::Roles,
                ExtendedClaim::Organizations,
                ExtendedClaim::OrganizationRoles,
            ]),
        }
    }

    /// The claims enabled; none when the list is absent.
    pub fn enabled(&self) -> &[ExtendedClaim] {
        self.enabled_extended_claims.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdTokenConfigCommand {
    /// Records `config` only when nothing was ever recorded: every start asks, and neither a
    /// restart nor a second node may undo an administrator's choice.
    Seed(IdTokenConfig),
    Replace(IdTokenConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum IdTokenConfigEvent {
    #[serde(rename = "id_token_config.replaced")]
    Replaced(IdTokenConfig),
}

impl cqrs_es::DomainEvent for IdTokenConfigEvent {
    fn event_type(&self) -> String {
        match self {
            IdTokenConfigEvent::Replaced(_) => "id_token_config.replaced",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            IdTokenConfigEvent::Replaced(_) => "1",
        }
        .to_owned()
    }
}

/// Claim names are configuration, not anybody's personal data.
impl Event for IdTokenConfigEvent {}

#[derive(Debug, Clone, Default)]
pub struct IdTokenConfigs {
    config: Option<IdTokenConfig>,
}

impl Aggregate for IdTokenConfigs {
    const TYPE: &'static str = "id_token_config";
    type Command = IdTokenConfigCommand;
    type Event = IdTokenConfigEvent;
    /// Every well-formed setting is acceptable: unknown claim names cannot be represented.
    type Error = Infallible;

    fn decide(&self, command: IdTokenConfigCommand) -> Result<Vec<IdTokenConfigEvent>, Infallible> {
        Ok(match command {
            IdTokenConfigCommand::Seed(config) => match self.config {
                Some(_) => Vec::new(),
                None => vec![IdTokenConfigEvent::Replaced(config)],
            },
            // Putting the setting in force again is not a change worth a fact.
            IdTokenConfigCommand::Replace(config) if self.config.as_ref() == Some(&config) => {
                Vec::new()
            }
            IdTokenConfigCommand::Replace(config) => vec![IdTokenConfigEvent::Replaced(config)],
        })
    }

    fn apply(&mut self, event: &IdTokenConfigEvent) {
        match event {
            IdTokenConfigEvent::Replaced(config) => self.config = Some(config.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn only(claims: &[ExtendedClaim]) -> IdTokenConfig {
        IdTokenConfig {
            enabled_extended_claims: Some(claims.to_vec()),
        }
    }

    #[test]
    fn the_seed_is_recorded_once_and_never_over_a_choice() {
        Given::<IdTokenConfigs>::with(())
            .given(vec![])
            .when(IdTokenConfigCommand::Seed(IdTokenConfig::logto_default()))
            .then_expect_events(vec![IdTokenConfigEvent::Replaced(
                IdTokenConfig::logto_default(),
            )]);
        Given::<IdTokenConfigs>::with(())
            .given(vec![IdTokenConfigEvent::Replaced(only(&[]))])
            .when(IdTokenConfigCommand::Seed(IdTokenConfig::logto_default()))
            .then_expect_events(vec![]);
    }

    #[test]
    fn replacing_records_a_change_only() {
        Given::<IdTokenConfigs>::with(())
            .given(vec![IdTokenConfigEvent::Replaced(
                IdTokenConfig::logto_default(),
            )])
            .when(IdTokenConfigCommand::Replace(only(&[ExtendedClaim::Roles])))
            .then_expect_events(vec![IdTokenConfigEvent::Replaced(only(&[
                ExtendedClaim::Roles,
            ]))]);
        Given::<IdTokenConfigs>::with(())
            .given(vec![IdTokenConfigEvent::Replaced(only(&[
                ExtendedClaim::Roles,
            ]))])
            .when(IdTokenConfigCommand::Replace(only(&[ExtendedClaim::Roles])))
            .then_expect_events(vec![]);
    }

    #[test]
    fn claim_names_are_logtos() {
        let config: IdTokenConfig = serde_json::from_value(serde_json::json!({
            "enabledExtendedClaims": ["custom_data", "sso_identities", "organization_data"]
        }))
        .unwrap();
        assert_eq!(
            config.enabled(),
            [
                ExtendedClaim::CustomData,
                ExtendedClaim::SsoIdentities,
                ExtendedClaim::OrganizationData
            ]
        );
        assert!(IdTokenConfig::default().enabled().is_empty());
        assert!(
            serde_json::from_value::<IdTokenConfig>(
                serde_json::json!({"enabledExtendedClaims": ["email"]})
            )
            .is_err()
        );
    }
}
