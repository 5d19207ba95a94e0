//! Organization roles: the roles of Logto's organization template, which members hold per
//! organization (and which organizations grant on just-in-time provisioning).

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};
use crate::patch::Patch;
use crate::role::RoleType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrganizationRole {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub role_type: RoleType,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationRolePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub description: Patch<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub role_type: Option<RoleType>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrganizationRoleCommand {
    Create(NewOrganizationRole),
    Update(OrganizationRolePatch),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrganizationRoleEvent {
    #[serde(rename = "organization_role.created")]
    Created(NewOrganizationRole),
    #[serde(rename = "organization_role.updated")]
    Updated(OrganizationRolePatch),
    #[serde(rename = "organization_role.deleted")]
    Deleted {},
}

impl cqrs_es::DomainEvent for OrganizationRoleEvent {
    fn event_type(&self) -> String {
        match self {
            OrganizationRoleEvent::Created(_) => "organization_role.created",
            OrganizationRoleEvent::Updated(_) => "organization_role.updated",
            OrganizationRoleEvent::Deleted {} => "organization_role.deleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            OrganizationRoleEvent::Created(_)
            | OrganizationRoleEvent::Updated(_)
            | OrganizationRoleEvent::Deleted {} => "1",
        }
        .to_owned()
    }
}

impl Event for OrganizationRoleEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrganizationRoleError {
    #[error("the organization role does not exist")]
    NotFound,
    #[error("the organization role already exists")]
    AlreadyExists,
    #[error("the update changes nothing")]
    EmptyUpdate,
}

#[derive(Debug, Clone, Default)]
pub enum OrganizationRole {
    #[default]
    New,
    Live,
    Deleted,
}

impl Aggregate for OrganizationRole {
    const TYPE: &'static str = "organization_role";
    type Command = OrganizationRoleCommand;
    type Event = OrganizationRoleEvent;
    type Error = OrganizationRoleError;

    fn decide(
        &self,
        command: OrganizationRoleCommand,
    ) -> Result<Vec<OrganizationRoleEvent>, OrganizationRoleError> {
        match (self, command) {
            (OrganizationRole::New, OrganizationRoleCommand::Create(role)) => {
                Ok(vec![OrganizationRoleEvent::Created(role)])
            }
            (OrganizationRole::Live, OrganizationRoleCommand::Create(_)) => {
                Err(OrganizationRoleError::AlreadyExists)
            }
            (OrganizationRole::New | OrganizationRole::Deleted, _) => {
                Err(OrganizationRoleError::NotFound)
            }
            (OrganizationRole::Live, OrganizationRoleCommand::Update(patch))
                if patch == OrganizationRolePatch::default() =>
            {
                Err(OrganizationRoleError::EmptyUpdate)
            }
            (OrganizationRole::Live, OrganizationRoleCommand::Update(patch)) => {
                Ok(vec![OrganizationRoleEvent::Updated(patch)])
            }
            (OrganizationRole::Live, OrganizationRoleCommand::Delete) => {
                Ok(vec![OrganizationRoleEvent::Deleted {}])
            }
        }
    }

    fn apply(&mut self, event: &OrganizationRoleEvent) {
        match (&*self, event) {
            (OrganizationRole::New, OrganizationRoleEvent::Created(_)) => {
                *self = OrganizationRole::Live;
            }
            (OrganizationRole::Live, OrganizationRoleEvent::Deleted {}) => {
                *self = OrganizationRole::Deleted;
            }
            (
                OrganizationRole::Live,
                OrganizationRoleEvent::Created(_) | OrganizationRoleEvent::Updated(_),
            )
            | (OrganizationRole::New | OrganizationRole::Deleted, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn created() -> OrganizationRoleEvent {
        OrganizationRoleEvent::Created(NewOrganizationRole {
            id: "or1".into(),
            name: "admin".into(),
            description: None,
            role_type: RoleType::User,
        })
    }

    #[test]
    fn a_role_is_created_once() {
        Given::<OrganizationRole>::with(())
            .given_no_previous_events()
            .when(OrganizationRoleCommand::Create(NewOrganizationRole {
                id: "or1".into(),
                name: "admin".into(),
                description: None,
                role_type: RoleType::User,
            }))
            .then_expect_events(vec![created()]);
        Given::<OrganizationRole>::with(())
            .given(vec![created()])
            .when(OrganizationRoleCommand::Create(NewOrganizationRole {
                id: "or1".into(),
                name: "again".into(),
                description: None,
                role_type: RoleType::User,
            }))
            .then_expect_error(OrganizationRoleError::AlreadyExists);
    }

    #[test]
    fn an_empty_update_is_refused() {
        Given::<OrganizationRole>::with(())
            .given(vec![created()])
            .when(OrganizationRoleCommand::Update(
                OrganizationRolePatch::default(),
            ))
            .then_expect_error(OrganizationRoleError::EmptyUpdate);
    }

    #[test]
    fn a_deleted_role_is_gone() {
        Given::<OrganizationRole>::with(())
            .given(vec![created(), OrganizationRoleEvent::Deleted {}])
            .when(OrganizationRoleCommand::Update(OrganizationRolePatch {
                description: Patch::Null,
                ..OrganizationRolePatch::default()
            }))
            .then_expect_error(OrganizationRoleError::NotFound);
        Given::<OrganizationRole>::with(())
            .given(vec![created(), OrganizationRoleEvent::Deleted {}])
            .when(OrganizationRoleCommand::Delete)
            .then_expect_error(OrganizationRoleError::NotFound);
    }
}
