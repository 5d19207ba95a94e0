//! Global roles (RBAC): a named set of API-resource scopes, held by users or by
//! machine-to-machine applications depending on its type.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};
use crate::patch::Patch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoleType {
    User,
    MachineToMachine,
}

impl RoleType {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleType::User => "User",
            RoleType::MachineToMachine => "MachineToMachine",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRole {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub role_type: RoleType,
    pub is_default: bool,
    pub scope_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub is_default: Patch<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoleCommand {
    Create(NewRole),
    Update(RolePatch),
    Delete,
    AddScopes { scope_ids: Vec<String> },
    RemoveScope { scope_id: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum RoleEvent {
    #[serde(rename = "role.created")]
    Created(NewRole),
    #[serde(rename = "role.updated")]
    Updated(RolePatch),
    #[serde(rename = "role.deleted")]
    Deleted {},
    #[serde(rename = "role.scopes_added")]
    #[serde(rename_all = "camelCase")]
    ScopesAdded { scope_ids: Vec<String> },
    #[serde(rename = "role.scope_removed")]
    #[serde(rename_all = "camelCase")]
    ScopeRemoved { scope_id: String },
}

impl cqrs_es::DomainEvent for RoleEvent {
    fn event_type(&self) -> String {
        match self {
            RoleEvent::Created(_) => "role.created",
            RoleEvent::Updated(_) => "role.updated",
            RoleEvent::Deleted {} => "role.deleted",
            RoleEvent::ScopesAdded { .. } => "role.scopes_added",
            RoleEvent::ScopeRemoved { .. } => "role.scope_removed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            RoleEvent::Created(_)
            | RoleEvent::Updated(_)
            | RoleEvent::Deleted {}
            | RoleEvent::ScopesAdded { .. }
            | RoleEvent::ScopeRemoved { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for RoleEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("the role does not exist")]
    NotFound,
    #[error("the role already exists")]
    AlreadyExists,
    #[error("the scope {scope_id} is not part of this role")]
    ScopeNotInRole { scope_id: String },
    #[error("the update changes nothing")]
    EmptyUpdate,
}

#[derive(Debug, Clone, Default)]
pub enum Role {
    #[default]
    New,
    Live {
        scopes: BTreeSet<String>,
    },
    Deleted,
}

impl Aggregate for Role {
    const TYPE: &'static str = "role";
    type Command = RoleCommand;
    type Event = RoleEvent;
    type Error = RoleError;

    fn decide(&self, command: RoleCommand) -> Result<Vec<RoleEvent>, RoleError> {
        let scopes = match (self, command) {
            (Role::New, RoleCommand::Create(role)) => return Ok(vec![RoleEvent::Created(role)]),
            (Role::Live { .. }, RoleCommand::Create(_)) => return Err(RoleError::AlreadyExists),
            (Role::New | Role::Deleted, _) => return Err(RoleError::NotFound),
            (Role::Live { scopes }, command) => (scopes, command),
        };
        match scopes {
            (_, RoleCommand::Create(_)) => Err(RoleError::AlreadyExists),
            (_, RoleCommand::Update(patch)) if patch == RolePatch::default() => {
                Err(RoleError::EmptyUpdate)
            }
            (_, RoleCommand::Update(patch)) => Ok(vec![RoleEvent::Updated(patch)]),
            (_, RoleCommand::Delete) => Ok(vec![RoleEvent::Deleted {}]),
            (held, RoleCommand::AddScopes { scope_ids }) => {
                let mut seen = BTreeSet::new();
                let scope_ids: Vec<String> = scope_ids
                    .into_iter()
                    .filter(|id| !held.contains(id) && seen.insert(id.clone()))
                    .collect();
                Ok(if scope_ids.is_empty() {
                    Vec::new()
                } else {
                    vec![RoleEvent::ScopesAdded { scope_ids }]
                })
            }
            (held, RoleCommand::RemoveScope { scope_id }) if held.contains(&scope_id) => {
                Ok(vec![RoleEvent::ScopeRemoved { scope_id }])
            }
            (_, RoleCommand::RemoveScope { scope_id }) => {
                Err(RoleError::ScopeNotInRole { scope_id })
            }
        }
    }

    fn apply(&mut self, event: &RoleEvent) {
        match (self, event) {
            (this @ Role::New, RoleEvent::Created(role)) => {
                *this = Role::Live {
                    scopes: role.scope_ids.iter().cloned().collect(),
                };
            }
            (this @ Role::Live { .. }, RoleEvent::Deleted {}) => *this = Role::Deleted,
            (Role::Live { scopes }, RoleEvent::ScopesAdded { scope_ids }) => {
                scopes.extend(scope_ids.iter().cloned());
            }
            (Role::Live { scopes }, RoleEvent::ScopeRemoved { scope_id }) => {
                scopes.remove(scope_id);
            }
            (Role::Live { .. }, RoleEvent::Created(_) | RoleEvent::Updated(_))
            | (Role::New | Role::Deleted, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn created() -> RoleEvent {
        RoleEvent::Created(NewRole {
            id: "r1".into(),
            name: "admin".into(),
            description: "Administrators".into(),
            role_type: RoleType::User,
            is_default: false,
            scope_ids: vec!["s1".into()],
        })
    }

    #[test]
    fn adding_scopes_skips_those_already_held() {
        Given::<Role>::with(())
            .given(vec![created()])
            .when(RoleCommand::AddScopes {
                scope_ids: vec!["s1".into(), "s2".into()],
            })
            .then_expect_events(vec![RoleEvent::ScopesAdded {
                scope_ids: vec!["s2".into()],
            }]);
    }

    #[test]
    fn removing_a_scope_the_role_lacks_is_refused() {
        Given::<Role>::with(())
            .given(vec![created()])
            .when(RoleCommand::RemoveScope {
                scope_id: "s9".into(),
            })
            .then_expect_error(RoleError::ScopeNotInRole {
                scope_id: "s9".into(),
            });
    }

    #[test]
    fn a_deleted_role_cannot_be_updated() {
        Given::<Role>::with(())
            .given(vec![created(), RoleEvent::Deleted {}])
            .when(RoleCommand::Update(RolePatch {
                name: Some("x".into()),
                ..RolePatch::default()
            }))
            .then_expect_error(RoleError::NotFound);
    }
}
