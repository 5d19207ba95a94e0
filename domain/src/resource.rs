//! API resources (audiences of access tokens) and the scopes they define.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

/// Logto's seeded Management API resource; its ids are fixed because clients rely on them.
pub const MANAGEMENT_API_RESOURCE_ID: &str = "management-api";
pub const MANAGEMENT_API_SCOPE_ID: &str = "management-api-all";
pub const MANAGEMENT_API_INDICATOR: &str = "https://default.logto.app/api";
pub const MANAGEMENT_API_SCOPE: &str = "all";
pub const MANAGEMENT_API_ROLE_ID: &str = "management-api-access";
pub const MANAGEMENT_API_ROLE_NAME: &str = "Logto Management API access";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewResource {
    pub id: String,
    pub name: String,
    pub indicator: String,
    pub access_token_ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewScope {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResourceCommand {
    Create(NewResource),
    AddScope(NewScope),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ResourceEvent {
    #[serde(rename = "resource.created")]
    Created(NewResource),
    #[serde(rename = "resource.scope_added")]
    ScopeAdded(NewScope),
}

impl cqrs_es::DomainEvent for ResourceEvent {
    fn event_type(&self) -> String {
        match self {
            ResourceEvent::Created(_) => "resource.created",
            ResourceEvent::ScopeAdded(_) => "resource.scope_added",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            ResourceEvent::Created(_) | ResourceEvent::ScopeAdded(_) => "1",
        }
        .to_owned()
    }
}

impl Event for ResourceEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("the resource does not exist")]
    NotFound,
    #[error("the resource already exists")]
    AlreadyExists,
    #[error("a scope named {name:?} already exists in this resource")]
    ScopeNameExists { name: String },
}

#[derive(Debug, Clone, Default)]
pub enum Resource {
    #[default]
    New,
    Live {
        scope_names: BTreeSet<String>,
    },
}

impl Aggregate for Resource {
    const TYPE: &'static str = "resource";
    type Command = ResourceCommand;
    type Event = ResourceEvent;
    type Error = ResourceError;

    fn decide(&self, command: ResourceCommand) -> Result<Vec<ResourceEvent>, ResourceError> {
        match (self, command) {
            (Resource::New, ResourceCommand::Create(resource)) => {
                Ok(vec![ResourceEvent::Created(resource)])
            }
            (Resource::Live { .. }, ResourceCommand::Create(_)) => {
                Err(ResourceError::AlreadyExists)
            }
            (Resource::New, ResourceCommand::AddScope(_)) => Err(ResourceError::NotFound),
            (Resource::Live { scope_names }, ResourceCommand::AddScope(scope)) => {
                if scope_names.contains(&scope.name) {
                    Err(ResourceError::ScopeNameExists { name: scope.name })
                } else {
                    Ok(vec![ResourceEvent::ScopeAdded(scope)])
                }
            }
        }
    }

    fn apply(&mut self, event: &ResourceEvent) {
        match (self, event) {
            (this @ Resource::New, ResourceEvent::Created(_)) => {
                *this = Resource::Live {
                    scope_names: BTreeSet::new(),
                };
            }
            (Resource::Live { scope_names }, ResourceEvent::ScopeAdded(scope)) => {
                scope_names.insert(scope.name.clone());
            }
            (Resource::Live { .. }, ResourceEvent::Created(_))
            | (Resource::New, ResourceEvent::ScopeAdded(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn scope(name: &str) -> NewScope {
        NewScope {
            id: format!("id-{name}"),
            name: name.into(),
            description: None,
        }
    }

    #[test]
    fn scope_names_are_unique_within_a_resource() {
        Given::<Resource>::with(())
            .given(vec![
                ResourceEvent::Created(NewResource {
                    id: MANAGEMENT_API_RESOURCE_ID.into(),
                    name: "Logto Management API".into(),
                    indicator: MANAGEMENT_API_INDICATOR.into(),
                    access_token_ttl: 3600,
                }),
                ResourceEvent::ScopeAdded(scope(MANAGEMENT_API_SCOPE)),
            ])
            .when(ResourceCommand::AddScope(scope(MANAGEMENT_API_SCOPE)))
            .then_expect_error(ResourceError::ScopeNameExists { name: "all".into() });
    }

    #[test]
    fn a_scope_needs_its_resource() {
        Given::<Resource>::with(())
            .given_no_previous_events()
            .when(ResourceCommand::AddScope(scope("read")))
            .then_expect_error(ResourceError::NotFound);
    }
}
