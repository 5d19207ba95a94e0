//! Organizations (Logto's multi-tenancy unit): their profile, their members, the organization
//! roles each member holds, and the roles just-in-time provisioning grants. Membership lives in
//! the organization's stream, so a member's roles can only change while they are a member.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::{Aggregate, Event};
use crate::patch::Patch;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrganization {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub custom_data: Map<String, Value>,
    pub is_mfa_required: bool,
    pub color: Map<String, Value>,
    pub branding: Map<String, Value>,
    pub custom_css: Option<String>,
}

/// Logto's `PATCH /organizations/:id`: the JSON fields are replaced wholesale.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub description: Patch<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mfa_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branding: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub custom_css: Patch<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrganizationCommand {
    Create(NewOrganization),
    Update(OrganizationPatch),
    Delete,
    AddMembers {
        user_ids: Vec<String>,
    },
    ReplaceMembers {
        user_ids: Vec<String>,
    },
    RemoveMember {
        user_id: String,
    },
    AssignMemberRoles {
        user_id: String,
        organization_role_ids: Vec<String>,
    },
    ReplaceMemberRoles {
        user_id: String,
        organization_role_ids: Vec<String>,
    },
    RemoveMemberRole {
        user_id: String,
        organization_role_id: String,
    },
    AddJitRoles {
        organization_role_ids: Vec<String>,
    },
    ReplaceJitRoles {
        organization_role_ids: Vec<String>,
    },
    RemoveJitRole {
        organization_role_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrganizationEvent {
    #[serde(rename = "organization.created")]
    Created(NewOrganization),
    #[serde(rename = "organization.updated")]
    Updated(OrganizationPatch),
    #[serde(rename = "organization.deleted")]
    Deleted {},
    #[serde(rename = "organization.member_added")]
    #[serde(rename_all = "camelCase")]
    MemberAdded { user_id: String },
    /// The member's organization roles go with the membership.
    #[serde(rename = "organization.member_removed")]
    #[serde(rename_all = "camelCase")]
    MemberRemoved { user_id: String },
    #[serde(rename = "organization.member_roles_assigned")]
    #[serde(rename_all = "camelCase")]
    MemberRolesAssigned {
        user_id: String,
        organization_role_ids: Vec<String>,
    },
    #[serde(rename = "organization.member_role_removed")]
    #[serde(rename_all = "camelCase")]
    MemberRoleRemoved {
        user_id: String,
        organization_role_id: String,
    },
    #[serde(rename = "organization.jit_roles_added")]
    #[serde(rename_all = "camelCase")]
    JitRolesAdded { organization_role_ids: Vec<String> },
    #[serde(rename = "organization.jit_role_removed")]
    #[serde(rename_all = "camelCase")]
    JitRoleRemoved { organization_role_id: String },
}

impl cqrs_es::DomainEvent for OrganizationEvent {
    fn event_type(&self) -> String {
        match self {
            OrganizationEvent::Created(_) => "organization.created",
            OrganizationEvent::Updated(_) => "organization.updated",
            OrganizationEvent::Deleted {} => "organization.deleted",
            OrganizationEvent::MemberAdded { .. } => "organization.member_added",
            OrganizationEvent::MemberRemoved { .. } => "organization.member_removed",
            OrganizationEvent::MemberRolesAssigned { .. } => "organization.member_roles_assigned",
            OrganizationEvent::MemberRoleRemoved { .. } => "organization.member_role_removed",
            OrganizationEvent::JitRolesAdded { .. } => "organization.jit_roles_added",
            OrganizationEvent::JitRoleRemoved { .. } => "organization.jit_role_removed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            OrganizationEvent::Created(_)
            | OrganizationEvent::Updated(_)
            | OrganizationEvent::Deleted {}
            | OrganizationEvent::MemberAdded { .. }
            | OrganizationEvent::MemberRemoved { .. }
            | OrganizationEvent::MemberRolesAssigned { .. }
            | OrganizationEvent::MemberRoleRemoved { .. }
            | OrganizationEvent::JitRolesAdded { .. }
            | OrganizationEvent::JitRoleRemoved { .. } => "1",
        }
        .to_owned()
    }
}

/// Organization names, descriptions and branding describe the organization, not a person, and
/// user ids are pseudonymous keys: nothing here is sealed.
impl Event for OrganizationEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrganizationError {
    #[error("the organization does not exist")]
    NotFound,
    #[error("the organization already exists")]
    AlreadyExists,
    #[error("the update changes nothing")]
    EmptyUpdate,
    #[error("the user {user_id} is not a member of the organization")]
    NotAMember { user_id: String },
    /// Unlike `NotAMember`, removing an absent membership is a missing resource, not a failed
    /// precondition of another change.
    #[error("the user {user_id} is not a member of the organization")]
    MembershipNotFound { user_id: String },
    #[error("the user {user_id} does not hold the organization role {organization_role_id}")]
    RoleNotAssigned {
        user_id: String,
        organization_role_id: String,
    },
    #[error("the organization role {organization_role_id} is not a just-in-time role")]
    JitRoleNotFound { organization_role_id: String },
}

#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Member → the organization roles they hold here.
    members: BTreeMap<String, BTreeSet<String>>,
    jit_roles: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub enum Organization {
    #[default]
    New,
    Live(Live),
    Deleted,
}

/// `ids` without duplicates and without those in `held`, in request order.
fn new_ids(ids: Vec<String>, held: impl Fn(&String) -> bool) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.into_iter()
        .filter(|id| !held(id) && seen.insert(id.clone()))
        .collect()
}

impl Live {
    fn roles_of(&self, user_id: &str) -> Result<&BTreeSet<String>, OrganizationError> {
        self.members
            .get(user_id)
            .ok_or_else(|| OrganizationError::NotAMember {
                user_id: user_id.to_owned(),
            })
    }

    fn decide(
        &self,
        command: OrganizationCommand,
    ) -> Result<Vec<OrganizationEvent>, OrganizationError> {
        let events = match command {
            OrganizationCommand::Create(_) => return Err(OrganizationError::AlreadyExists),
            OrganizationCommand::Update(patch) if patch == OrganizationPatch::default() => {
                return Err(OrganizationError::EmptyUpdate);
            }
            OrganizationCommand::Update(patch) => vec![OrganizationEvent::Updated(patch)],
            OrganizationCommand::Delete => vec![OrganizationEvent::Deleted {}],
            OrganizationCommand::AddMembers { user_ids } => {
                new_ids(user_ids, |id| self.members.contains_key(id))
                    .into_iter()
                    .map(|user_id| OrganizationEvent::MemberAdded { user_id })
                    .collect()
            }
            OrganizationCommand::ReplaceMembers { user_ids } => {
                let wanted: BTreeSet<&String> = user_ids.iter().collect();
                let mut events: Vec<OrganizationEvent> = self
                    .members
                    .keys()
                    .filter(|member| !wanted.contains(member))
                    .map(|user_id| OrganizationEvent::MemberRemoved {
                        user_id: user_id.clone(),
                    })
                    .collect();
                events.extend(
                    new_ids(user_ids, |id| self.members.contains_key(id))
                        .into_iter()
                        .map(|user_id| OrganizationEvent::MemberAdded { user_id }),
                );
                events
            }
            OrganizationCommand::RemoveMember { user_id }
                if self.members.contains_key(&user_id) =>
            {
                vec![OrganizationEvent::MemberRemoved { user_id }]
            }
            OrganizationCommand::RemoveMember { user_id } => {
                return Err(OrganizationError::MembershipNotFound { user_id });
            }
            OrganizationCommand::AssignMemberRoles {
                user_id,
                organization_role_ids,
            } => {
                let held = self.roles_of(&user_id)?;
                let added = new_ids(organization_role_ids, |id| held.contains(id));
                if added.is_empty() {
                    Vec::new()
                } else {
                    vec![OrganizationEvent::MemberRolesAssigned {
                        user_id,
                        organization_role_ids: added,
                    }]
                }
            }
            OrganizationCommand::ReplaceMemberRoles {
                user_id,
                organization_role_ids,
            } => {
                let held = self.roles_of(&user_id)?;
                let wanted: BTreeSet<&String> = organization_role_ids.iter().collect();
                let mut events: Vec<OrganizationEvent> = held
                    .iter()
                    .filter(|role| !wanted.contains(role))
                    .map(|role| OrganizationEvent::MemberRoleRemoved {
                        user_id: user_id.clone(),
                        organization_role_id: role.clone(),
                    })
                    .collect();
                let added = new_ids(organization_role_ids, |id| held.contains(id));
                if !added.is_empty() {
                    events.push(OrganizationEvent::MemberRolesAssigned {
                        user_id,
                        organization_role_ids: added,
                    });
                }
                events
            }
            OrganizationCommand::RemoveMemberRole {
                user_id,
                organization_role_id,
            } => {
                if !self.roles_of(&user_id)?.contains(&organization_role_id) {
                    return Err(OrganizationError::RoleNotAssigned {
                        user_id,
                        organization_role_id,
                    });
                }
                vec![OrganizationEvent::MemberRoleRemoved {
                    user_id,
                    organization_role_id,
                }]
            }
            OrganizationCommand::AddJitRoles {
                organization_role_ids,
            } => {
                let added = new_ids(organization_role_ids, |id| self.jit_roles.contains(id));
                if added.is_empty() {
                    Vec::new()
                } else {
                    vec![OrganizationEvent::JitRolesAdded {
                        organization_role_ids: added,
                    }]
                }
            }
            OrganizationCommand::ReplaceJitRoles {
                organization_role_ids,
            } => {
                let wanted: BTreeSet<&String> = organization_role_ids.iter().collect();
                let mut events: Vec<OrganizationEvent> = self
                    .jit_roles
                    .iter()
                    .filter(|role| !wanted.contains(role))
                    .map(|role| OrganizationEvent::JitRoleRemoved {
                        organization_role_id: role.clone(),
                    })
                    .collect();
                let added = new_ids(organization_role_ids, |id| self.jit_roles.contains(id));
                if !added.is_empty() {
                    events.push(OrganizationEvent::JitRolesAdded {
                        organization_role_ids: added,
                    });
                }
                events
            }
            OrganizationCommand::RemoveJitRole {
                organization_role_id,
            } if self.jit_roles.contains(&organization_role_id) => {
                vec![OrganizationEvent::JitRoleRemoved {
                    organization_role_id,
                }]
            }
            OrganizationCommand::RemoveJitRole {
                organization_role_id,
            } => {
                return Err(OrganizationError::JitRoleNotFound {
                    organization_role_id,
                });
            }
        };
        Ok(events)
    }

    fn apply(&mut self, event: &OrganizationEvent) {
        match event {
            OrganizationEvent::MemberAdded { user_id } => {
                self.members.entry(user_id.clone()).or_default();
            }
            OrganizationEvent::MemberRemoved { user_id } => {
                self.members.remove(user_id);
            }
            OrganizationEvent::MemberRolesAssigned {
                user_id,
                organization_role_ids,
            } => {
                if let Some(roles) = self.members.get_mut(user_id) {
                    roles.extend(organization_role_ids.iter().cloned());
                }
            }
            OrganizationEvent::MemberRoleRemoved {
                user_id,
                organization_role_id,
            } => {
                if let Some(roles) = self.members.get_mut(user_id) {
                    roles.remove(organization_role_id);
                }
            }
            OrganizationEvent::JitRolesAdded {
                organization_role_ids,
            } => self.jit_roles.extend(organization_role_ids.iter().cloned()),
            OrganizationEvent::JitRoleRemoved {
                organization_role_id,
            } => {
                self.jit_roles.remove(organization_role_id);
            }
            OrganizationEvent::Created(_)
            | OrganizationEvent::Updated(_)
            | OrganizationEvent::Deleted {} => {}
        }
    }
}

impl Aggregate for Organization {
    const TYPE: &'static str = "organization";
    type Command = OrganizationCommand;
    type Event = OrganizationEvent;
    type Error = OrganizationError;

    fn decide(
        &self,
        command: OrganizationCommand,
    ) -> Result<Vec<OrganizationEvent>, OrganizationError> {
        match (self, command) {
            (Organization::New, OrganizationCommand::Create(organization)) => {
                Ok(vec![OrganizationEvent::Created(organization)])
            }
            (Organization::New | Organization::Deleted, _) => Err(OrganizationError::NotFound),
            (Organization::Live(live), command) => live.decide(command),
        }
    }

    fn apply(&mut self, event: &OrganizationEvent) {
        match (self, event) {
            (this @ Organization::New, OrganizationEvent::Created(_)) => {
                *this = Organization::Live(Live::default());
            }
            (this @ Organization::Live(_), OrganizationEvent::Deleted {}) => {
                *this = Organization::Deleted;
            }
            (Organization::Live(live), event) => live.apply(event),
            (Organization::New | Organization::Deleted, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn created() -> OrganizationEvent {
        OrganizationEvent::Created(NewOrganization {
            id: "o1".into(),
            name: "Acme".into(),
            description: None,
            custom_data: Map::new(),
            is_mfa_required: false,
            color: Map::new(),
            branding: Map::new(),
            custom_css: None,
        })
    }

    fn member(user_id: &str) -> OrganizationEvent {
        OrganizationEvent::MemberAdded {
            user_id: user_id.into(),
        }
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn adding_members_skips_those_already_in() {
        Given::<Organization>::with(())
            .given(vec![created(), member("u1")])
            .when(OrganizationCommand::AddMembers {
                user_ids: ids(&["u1", "u2", "u2", "u3"]),
            })
            .then_expect_events(vec![member("u2"), member("u3")]);
    }

    #[test]
    fn replacing_members_removes_the_others_and_adds_the_new() {
        Given::<Organization>::with(())
            .given(vec![created(), member("u1"), member("u2")])
            .when(OrganizationCommand::ReplaceMembers {
                user_ids: ids(&["u2", "u3"]),
            })
            .then_expect_events(vec![
                OrganizationEvent::MemberRemoved {
                    user_id: "u1".into(),
                },
                member("u3"),
            ]);
    }

    #[test]
    fn removing_a_non_member_is_refused() {
        Given::<Organization>::with(())
            .given(vec![created(), member("u1")])
            .when(OrganizationCommand::RemoveMember {
                user_id: "u2".into(),
            })
            .then_expect_error(OrganizationError::MembershipNotFound {
                user_id: "u2".into(),
            });
    }

    #[test]
    fn roles_require_membership() {
        Given::<Organization>::with(())
            .given(vec![created(), member("u1")])
            .when(OrganizationCommand::AssignMemberRoles {
                user_id: "u9".into(),
                organization_role_ids: ids(&["r1"]),
            })
            .then_expect_error(OrganizationError::NotAMember {
                user_id: "u9".into(),
            });
        Given::<Organization>::with(())
            .given(vec![
                created(),
                member("u1"),
                OrganizationEvent::MemberRemoved {
                    user_id: "u1".into(),
                },
            ])
            .when(OrganizationCommand::ReplaceMemberRoles {
                user_id: "u1".into(),
                organization_role_ids: ids(&["r1"]),
            })
            .then_expect_error(OrganizationError::NotAMember {
                user_id: "u1".into(),
            });
    }

    #[test]
    fn a_member_holds_each_role_once_and_replacing_diffs_them() {
        let assigned = OrganizationEvent::MemberRolesAssigned {
            user_id: "u1".into(),
            organization_role_ids: ids(&["r1", "r2"]),
        };
        Given::<Organization>::with(())
            .given(vec![created(), member("u1"), assigned.clone()])
            .when(OrganizationCommand::AssignMemberRoles {
                user_id: "u1".into(),
                organization_role_ids: ids(&["r2", "r3", "r3"]),
            })
            .then_expect_events(vec![OrganizationEvent::MemberRolesAssigned {
                user_id: "u1".into(),
                organization_role_ids: ids(&["r3"]),
            }]);
        Given::<Organization>::with(())
            .given(vec![created(), member("u1"), assigned])
            .when(OrganizationCommand::ReplaceMemberRoles {
                user_id: "u1".into(),
                organization_role_ids: ids(&["r2", "r4"]),
            })
            .then_expect_events(vec![
                OrganizationEvent::MemberRoleRemoved {
                    user_id: "u1".into(),
                    organization_role_id: "r1".into(),
                },
                OrganizationEvent::MemberRolesAssigned {
                    user_id: "u1".into(),
                    organization_role_ids: ids(&["r4"]),
                },
            ]);
    }

    #[test]
    fn leaving_drops_the_roles_held_there() {
        Given::<Organization>::with(())
            .given(vec![
                created(),
                member("u1"),
                OrganizationEvent::MemberRolesAssigned {
                    user_id: "u1".into(),
                    organization_role_ids: ids(&["r1"]),
                },
                OrganizationEvent::MemberRemoved {
                    user_id: "u1".into(),
                },
                member("u1"),
            ])
            .when(OrganizationCommand::RemoveMemberRole {
                user_id: "u1".into(),
                organization_role_id: "r1".into(),
            })
            .then_expect_error(OrganizationError::RoleNotAssigned {
                user_id: "u1".into(),
                organization_role_id: "r1".into(),
            });
    }

    #[test]
    fn jit_roles_add_replace_and_remove() {
        let added = OrganizationEvent::JitRolesAdded {
            organization_role_ids: ids(&["r1"]),
        };
        Given::<Organization>::with(())
            .given(vec![created(), added.clone()])
            .when(OrganizationCommand::AddJitRoles {
                organization_role_ids: ids(&["r1"]),
            })
            .then_expect_events(vec![]);
        Given::<Organization>::with(())
            .given(vec![created(), added.clone()])
            .when(OrganizationCommand::ReplaceJitRoles {
                organization_role_ids: ids(&["r2"]),
            })
            .then_expect_events(vec![
                OrganizationEvent::JitRoleRemoved {
                    organization_role_id: "r1".into(),
                },
                OrganizationEvent::JitRolesAdded {
                    organization_role_ids: ids(&["r2"]),
                },
            ]);
        Given::<Organization>::with(())
            .given(vec![created(), added])
            .when(OrganizationCommand::RemoveJitRole {
                organization_role_id: "r2".into(),
            })
            .then_expect_error(OrganizationError::JitRoleNotFound {
                organization_role_id: "r2".into(),
            });
    }

    #[test]
    fn a_deleted_organization_is_gone() {
        Given::<Organization>::with(())
            .given(vec![created(), OrganizationEvent::Deleted {}])
            .when(OrganizationCommand::AddMembers {
                user_ids: ids(&["u1"]),
            })
            .then_expect_error(OrganizationError::NotFound);
        Given::<Organization>::with(())
            .given(vec![created()])
            .when(OrganizationCommand::Update(OrganizationPatch::default()))
            .then_expect_error(OrganizationError::EmptyUpdate);
    }
}
