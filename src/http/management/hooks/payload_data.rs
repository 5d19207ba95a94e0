//! Hook payloads of roles, scopes, organizations and organization roles (see `payload.rs`):
//! `data` is the object as the read model holds it when the delivery is built, or what the
//! event says when the object is gone.

use deadpool_postgres::GenericClient;
use domain::RecordedEvent;
use domain::organization::OrganizationEvent;
use domain::organization_role::OrganizationRoleEvent;
use domain::resource::ResourceEvent;
use domain::role::RoleEvent;
use serde_json::{Value, json};

use super::payload::{Built, data_body};
use crate::http::management::organization_roles::OrganizationRoleResponse;
use crate::http::management::organizations::OrganizationResponse;
use crate::http::management::roles::RoleResponse;
use crate::store::StoreError;

fn to_json(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_default()
}

async fn role(db: &impl GenericClient, id: &str, fallback: Value) -> Result<Value, StoreError> {
    Ok(projections::roles::by_id(db, id)
        .await?
        .map_or(fallback, |row| to_json(RoleResponse::from(row))))
}

async fn organization(
    db: &impl GenericClient,
    id: &str,
    fallback: Value,
) -> Result<Value, StoreError> {
    Ok(projections::organizations::by_id(db, id)
        .await?
        .map_or(fallback, |row| to_json(OrganizationResponse::from(row))))
}

async fn organization_role(
    db: &impl GenericClient,
    id: &str,
    fallback: Value,
) -> Result<Value, StoreError> {
    Ok(projections::organizations::role_by_id(db, id)
        .await?
        .map_or(fallback, |row| to_json(OrganizationRoleResponse::from(row))))
}

pub async fn build(
    db: &impl GenericClient,
    event: &RecordedEvent,
) -> Result<Option<Built>, StoreError> {
    let id = event.stream_id.as_str();
    let by_id = json!({ "id": id });
    let deleted = || json!({ "id": id });
    Ok(Some(match event.stream_type.as_str() {
        "role" => match domain::decode::<RoleEvent>(&event.event_type, &event.payload)? {
            RoleEvent::Created(new) => {
                let data = role(db, id, to_json(&new)).await?;
                data_body(
                    event,
                    "Role.Created",
                    ("POST", "/roles", 200, json!({})),
                    data,
                )
            }
            RoleEvent::Updated(_) => {
                let data = role(db, id, deleted()).await?;
                data_body(
                    event,
                    "Role.Data.Updated",
                    ("PATCH", "/roles/:id", 200, by_id),
                    data,
                )
            }
            RoleEvent::Deleted {} => data_body(
                event,
                "Role.Deleted",
                ("DELETE", "/roles/:id", 204, by_id),
                Value::Null,
            ),
            RoleEvent::ScopesAdded { scope_ids } => data_body(
                event,
                "Role.Scopes.Updated",
                ("POST", "/roles/:id/scopes", 201, by_id),
                json!({ "roleId": id, "addedScopeIds": scope_ids }),
            ),
            RoleEvent::ScopeRemoved { scope_id } => data_body(
                event,
                "Role.Scopes.Updated",
                (
                    "DELETE",
                    "/roles/:id/scopes/:scopeId",
                    204,
                    json!({ "id": id, "scopeId": scope_id }),
                ),
                json!({ "roleId": id, "removedScopeIds": [scope_id] }),
            ),
        },
        "resource" => match domain::decode::<ResourceEvent>(&event.event_type, &event.payload)? {
            ResourceEvent::ScopeAdded(scope) => data_body(
                event,
                "Scope.Created",
                (
                    "POST",
                    "/resources/:resourceId/scopes",
                    201,
                    json!({ "resourceId": id }),
                ),
                json!({"tenantId": "default", "id": scope.id, "resourceId": id,
                       "name": scope.name, "description": scope.description}),
            ),
            ResourceEvent::Created(_) => return Ok(None),
        },
        "organization" => {
            match domain::decode::<OrganizationEvent>(&event.event_type, &event.payload)? {
                OrganizationEvent::Created(new) => {
                    let data = organization(db, id, to_json(&new)).await?;
                    data_body(
                        event,
                        "Organization.Created",
                        ("POST", "/organizations", 201, json!({})),
                        data,
                    )
                }
                OrganizationEvent::Updated(_) => {
                    let data = organization(db, id, deleted()).await?;
                    data_body(
                        event,
                        "Organization.Data.Updated",
                        ("PATCH", "/organizations/:id", 200, by_id),
                        data,
                    )
                }
                OrganizationEvent::Deleted {} => data_body(
                    event,
                    "Organization.Deleted",
                    ("DELETE", "/organizations/:id", 204, by_id),
                    Value::Null,
                ),
                OrganizationEvent::MemberAdded { user_id } => {
                    let mut built = data_body(
                        event,
                        "Organization.Membership.Updated",
                        ("POST", "/organizations/:id/users", 201, by_id),
                        Value::Null,
                    );
                    built.body.remove("data");
                    built.body.insert("organizationId".into(), json!(id));
                    built.body.insert("addedUserIds".into(), json!([user_id]));
                    built
                }
                OrganizationEvent::MemberRemoved { user_id } => {
                    let mut built = data_body(
                        event,
                        "Organization.Membership.Updated",
                        (
                            "DELETE",
                            "/organizations/:id/users/:userId",
                            204,
                            json!({ "id": id, "userId": user_id }),
                        ),
                        Value::Null,
                    );
                    built.body.remove("data");
                    built.body.insert("organizationId".into(), json!(id));
                    built.body.insert("removedUserIds".into(), json!([user_id]));
                    built
                }
                OrganizationEvent::MemberRolesAssigned { .. }
                | OrganizationEvent::MemberRoleRemoved { .. }
                | OrganizationEvent::JitRolesAdded { .. }
                | OrganizationEvent::JitRoleRemoved { .. } => return Ok(None),
            }
        }
        "organization_role" => {
            match domain::decode::<OrganizationRoleEvent>(&event.event_type, &event.payload)? {
                OrganizationRoleEvent::Created(new) => {
                    let data = organization_role(db, id, to_json(&new)).await?;
                    data_body(
                        event,
                        "OrganizationRole.Created",
                        ("POST", "/organization-roles", 201, json!({})),
                        data,
                    )
                }
                OrganizationRoleEvent::Updated(_) => {
                    let data = organization_role(db, id, deleted()).await?;
                    data_body(
                        event,
                        "OrganizationRole.Data.Updated",
                        ("PATCH", "/organization-roles/:id", 200, by_id),
                        data,
                    )
                }
                OrganizationRoleEvent::Deleted {} => data_body(
                    event,
                    "OrganizationRole.Deleted",
                    ("DELETE", "/organization-roles/:id", 204, by_id),
                    Value::Null,
                ),
            }
        }
        _ => return Ok(None),
    }))
}
