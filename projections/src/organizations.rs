//! Organizations, organization roles, memberships, the organization roles each member holds and
//! the roles just-in-time provisioning grants.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::organization::OrganizationEvent;
use domain::organization_role::OrganizationRoleEvent;
use domain::patch::Patch;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rows::{Rows, StreamFold, document, documents, fold_streams, single};
use crate::users::UserRow;
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub custom_data: Value,
    pub is_mfa_required: bool,
    pub color: Value,
    pub branding: Value,
    pub custom_css: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationRoleRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub role_type: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipRow {
    pub organization_id: String,
    pub user_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRoleRow {
    pub organization_id: String,
    pub organization_role_id: String,
    pub user_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JitRoleRow {
    pub organization_id: String,
    pub organization_role_id: String,
    pub created_at: i64,
}

static ORGANIZATIONS: Rows<OrganizationRow> = Rows::new("organizations", "id");
static MEMBERS: Rows<MembershipRow> = Rows::new("organization_user_relations", "organization_id");
static MEMBER_ROLES: Rows<MemberRoleRow> =
    Rows::new("organization_role_user_relations", "organization_id");
static JIT_ROLES: Rows<JitRoleRow> = Rows::new("organization_jit_roles", "organization_id");
static ROLES: Rows<OrganizationRoleRow> = Rows::new("organization_roles", "id");

/// Everything one organization stream owns.
#[derive(Default)]
pub struct State {
    organization: Option<OrganizationRow>,
    members: Vec<MembershipRow>,
    member_roles: Vec<MemberRoleRow>,
    jit_roles: Vec<JitRoleRow>,
}

/// The state of one organization after one of its events. Pure.
fn fold_organization(state: &mut State, event: &RecordedEvent, decoded: OrganizationEvent) {
    let at = event.occurred_at_ms();
    let organization_id = &event.stream_id;
    let member_role = |user_id: &str, organization_role_id: String| MemberRoleRow {
        organization_id: organization_id.clone(),
        organization_role_id,
        user_id: user_id.to_owned(),
        created_at: at,
    };
    match decoded {
        OrganizationEvent::Created(organization) => {
            *state = State {
                organization: Some(OrganizationRow {
                    id: organization.id,
                    name: organization.name,
                    description: organization.description,
                    custom_data: Value::Object(organization.custom_data),
                    is_mfa_required: organization.is_mfa_required,
                    color: Value::Object(organization.color),
                    branding: Value::Object(organization.branding),
                    custom_css: organization.custom_css,
                    created_at: at,
                }),
                ..State::default()
            };
        }
        OrganizationEvent::Updated(patch) => {
            if let Some(row) = &mut state.organization {
                if let Some(name) = patch.name {
                    row.name = name;
                }
                if let Some(description) = patch.description.change() {
                    row.description = description;
                }
                if let Some(custom_data) = patch.custom_data {
                    row.custom_data = Value::Object(custom_data);
                }
                if let Some(is_mfa_required) = patch.is_mfa_required {
                    row.is_mfa_required = is_mfa_required;
                }
                if let Some(color) = patch.color {
                    row.color = Value::Object(color);
                }
                if let Some(branding) = patch.branding {
                    row.branding = Value::Object(branding);
                }
                if let Some(custom_css) = patch.custom_css.change() {
                    row.custom_css = custom_css;
                }
            }
        }
        OrganizationEvent::Deleted {} => *state = State::default(),
        OrganizationEvent::MemberAdded { user_id } => {
            if !state.members.iter().any(|m| m.user_id == user_id) {
                state.members.push(MembershipRow {
                    organization_id: organization_id.clone(),
                    user_id,
                    created_at: at,
                });
            }
        }
        OrganizationEvent::MemberRemoved { user_id } => {
            state.members.retain(|m| m.user_id != user_id);
            state.member_roles.retain(|r| r.user_id != user_id);
        }
        OrganizationEvent::MemberRolesAssigned {
            user_id,
            organization_role_ids,
        } => {
            for role_id in organization_role_ids {
                let held = state
                    .member_roles
                    .iter()
                    .any(|r| r.user_id == user_id && r.organization_role_id == role_id);
                if !held {
                    state.member_roles.push(member_role(&user_id, role_id));
                }
            }
        }
        OrganizationEvent::MemberRoleRemoved {
            user_id,
            organization_role_id,
        } => state
            .member_roles
            .retain(|r| r.user_id != user_id || r.organization_role_id != organization_role_id),
        OrganizationEvent::JitRolesAdded {
            organization_role_ids,
        } => {
            for role_id in organization_role_ids {
                if !state
                    .jit_roles
                    .iter()
                    .any(|r| r.organization_role_id == role_id)
                {
                    state.jit_roles.push(JitRoleRow {
                        organization_id: organization_id.clone(),
                        organization_role_id: role_id,
                        created_at: at,
                    });
                }
            }
        }
        OrganizationEvent::JitRoleRemoved {
            organization_role_id,
        } => state
            .jit_roles
            .retain(|r| r.organization_role_id != organization_role_id),
    }
}

struct OrganizationStreams;

#[async_trait]
impl StreamFold for OrganizationStreams {
    type Event = OrganizationEvent;
    type State = State;
    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "organization")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, State>, ProjectionError> {
        let mut organizations = single(ORGANIZATIONS.load(db, streams).await?);
        let mut members = MEMBERS.load(db, streams).await?;
        let mut member_roles = MEMBER_ROLES.load(db, streams).await?;
        let mut jit_roles = JIT_ROLES.load(db, streams).await?;
        Ok(streams
            .iter()
            .map(|id| {
                let state = State {
                    organization: organizations.remove(id),
                    members: members.remove(id).unwrap_or_default(),
                    member_roles: member_roles.remove(id).unwrap_or_default(),
                    jit_roles: jit_roles.remove(id).unwrap_or_default(),
                };
                (id.clone(), state)
            })
            .collect())
    }

    fn fold(state: &mut State, event: &RecordedEvent, decoded: OrganizationEvent) {
        fold_organization(state, event, decoded);
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, State>,
    ) -> Result<(), ProjectionError> {
        let (mut organizations, mut members, mut member_roles, mut jit_roles) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for state in states.into_values() {
            organizations.extend(state.organization);
            members.extend(state.members);
            member_roles.extend(state.member_roles);
            jit_roles.extend(state.jit_roles);
        }
        ORGANIZATIONS.store(db, streams, &organizations).await?;
        MEMBERS.store(db, streams, &members).await?;
        MEMBER_ROLES.store(db, streams, &member_roles).await?;
        JIT_ROLES.store(db, streams, &jit_roles).await
    }
}

struct RoleStreams;

#[async_trait]
impl StreamFold for RoleStreams {
    type Event = OrganizationRoleEvent;
    type State = Option<OrganizationRoleRow>;
    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "organization_role")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Option<OrganizationRoleRow>>, ProjectionError> {
        let mut roles = single(ROLES.load(db, streams).await?);
        Ok(streams
            .iter()
            .map(|id| (id.clone(), roles.remove(id)))
            .collect())
    }

    fn fold(
        state: &mut Option<OrganizationRoleRow>,
        event: &RecordedEvent,
        decoded: OrganizationRoleEvent,
    ) {
        match decoded {
            OrganizationRoleEvent::Created(role) => {
                *state = Some(OrganizationRoleRow {
                    id: role.id,
                    name: role.name,
                    description: role.description,
                    role_type: role.role_type.as_str().to_owned(),
                    created_at: event.occurred_at_ms(),
                });
            }
            OrganizationRoleEvent::Updated(patch) => {
                if let Some(row) = state {
                    if let Some(name) = patch.name {
                        row.name = name;
                    }
                    match patch.description {
                        Patch::Value(description) => row.description = Some(description),
                        Patch::Null => row.description = None,
                        Patch::Absent => {}
                    }
                    if let Some(role_type) = patch.role_type {
                        row.role_type = role_type.as_str().to_owned();
                    }
                }
            }
            OrganizationRoleEvent::Deleted {} => *state = None,
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Option<OrganizationRoleRow>>,
    ) -> Result<(), ProjectionError> {
        let roles: Vec<OrganizationRoleRow> = states.into_values().flatten().collect();
        ROLES.store(db, streams, &roles).await
    }
}

/// Events of other streams that change rows of many organizations: a deleted user leaves every
/// organization, a deleted organization role is taken from every member and JIT list.
fn cascades(event: &RecordedEvent) -> bool {
    (event.stream_type == "user" && event.event_type == "user.deleted")
        || (event.stream_type == "organization_role"
            && event.event_type == "organization_role.deleted")
}

async fn cascade(db: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ProjectionError> {
    let statements: &[&str] = if event.stream_type == "user" {
        &[
            "DELETE FROM organization_user_relations WHERE user_id = $1",
            "DELETE FROM organization_role_user_relations WHERE user_id = $1",
        ]
    } else {
        &[
            "DELETE FROM organization_role_user_relations WHERE organization_role_id = $1",
            "DELETE FROM organization_jit_roles WHERE organization_role_id = $1",
        ]
    };
    for sql in statements {
        let statement = db.prepare_cached(sql).await?;
        db.execute(&statement, &[&event.stream_id]).await?;
    }
    Ok(())
}

pub struct Organizations;

#[async_trait]
impl Projection for Organizations {
    fn name(&self) -> &'static str {
        "organizations"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "organizations",
            "organization_roles",
            "organization_user_relations",
            "organization_role_user_relations",
            "organization_jit_roles",
        ]
    }

    /// Folds the batch in segments ending at each cascading event, and applies the cascade after
    /// its segment, so the result is the same however the log is chunked.
    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut rest = events;
        loop {
            let split = rest.iter().position(cascades);
            let segment = split.map_or(rest, |at| &rest[..=at]);
            fold_streams(&RoleStreams, db, segment).await?;
            fold_streams(&OrganizationStreams, db, segment).await?;
            let Some(at) = split else {
                return Ok(());
            };
            cascade(db, &rest[at]).await?;
            rest = &rest[at + 1..];
        }
    }
}

// ---- queries -----------------------------------------------------------------------------------

pub async fn by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<OrganizationRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(o) FROM organizations o WHERE id = $1",
        &[&id],
    )
    .await
}

pub const SEARCH_COLUMNS: &[&str] = &["o.id", "o.name"];

/// Organizations matching `search`, newest first, and how many match in all.
pub async fn list(
    db: &impl GenericClient,
    search: &crate::search::Search,
    window: crate::Window,
) -> Result<(Vec<OrganizationRow>, i64), ProjectionError> {
    let filtered = |select: &str| {
        let mut query = crate::Query::new(select);
        query.push(" WHERE ");
        query.search(search, SEARCH_COLUMNS);
        query
    };
    let mut rows = filtered("SELECT to_jsonb(o) FROM organizations o");
    let limit = rows.bind(window.limit);
    let offset = rows.bind(window.offset);
    rows.push(&format!(
        " ORDER BY o.created_at DESC, o.id DESC LIMIT {limit} OFFSET {offset}"
    ));
    let count = filtered("SELECT count(*) FROM organizations o");
    Ok((rows.documents(db).await?, count.count(db).await?))
}

/// An organization role as listed next to a member or an organization: id and name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRef {
    pub id: String,
    pub name: String,
}

/// The roles `user` holds in `organization`, as `jsonb` `[{id, name}]` ordered by name.
const ROLE_REFS: &str = "coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'name', r.name) \
     ORDER BY r.name, r.id) FROM organization_role_user_relations rr \
     JOIN organization_roles r ON r.id = rr.organization_role_id \
     WHERE rr.organization_id = m.organization_id AND rr.user_id = m.user_id), '[]'::jsonb)";

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Member {
    pub user: UserRow,
    pub organization_roles: Vec<RoleRef>,
}

#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    pub search: crate::search::Search,
    /// Only members holding this organization role here.
    pub organization_role_id: Option<String>,
}

pub const MEMBER_SEARCH_COLUMNS: &[&str] = &[
    "u.id",
    "u.primary_email",
    "u.primary_phone",
    "u.username",
    "u.name",
];

/// The members of an organization with their roles there, in joining order, and how many match.
pub async fn members(
    db: &impl GenericClient,
    organization_id: &str,
    filter: &MemberFilter,
    window: crate::Window,
) -> Result<(Vec<Member>, i64), ProjectionError> {
    let filtered = |select: &str| {
        let mut query = crate::Query::new(select);
        let p = query.bind(organization_id.to_owned());
        query.push(&format!(
            " FROM organization_user_relations m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = {p} AND "
        ));
        query.search(&filter.search, MEMBER_SEARCH_COLUMNS);
        if let Some(role_id) = &filter.organization_role_id {
            let p = query.bind(role_id.clone());
            query.push(&format!(
                " AND EXISTS (SELECT 1 FROM organization_role_user_relations rr \
                 WHERE rr.organization_id = m.organization_id AND rr.user_id = m.user_id \
                 AND rr.organization_role_id = {p})"
            ));
        }
        query
    };
    let mut rows = filtered(&format!(
        "SELECT jsonb_build_object('user', to_jsonb(u), 'organization_roles', {ROLE_REFS})"
    ));
    let limit = rows.bind(window.limit);
    let offset = rows.bind(window.offset);
    rows.push(&format!(
        " ORDER BY m.created_at, m.user_id LIMIT {limit} OFFSET {offset}"
    ));
    let count = filtered("SELECT count(*)");
    Ok((rows.documents(db).await?, count.count(db).await?))
}

/// Members of an organization: how many, and the three who joined last (Logto's `featuredUsers`).
pub async fn featured_members(
    db: &impl GenericClient,
    organization_id: &str,
) -> Result<(i64, Vec<UserRow>), ProjectionError> {
    let count: i64 = db
        .query_one(
            "SELECT count(*) FROM organization_user_relations m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = $1",
            &[&organization_id],
        )
        .await?
        .try_get(0)?;
    let featured = documents(
        db,
        "SELECT to_jsonb(u) FROM organization_user_relations m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 ORDER BY m.created_at DESC, u.id LIMIT 3",
        &[&organization_id],
    )
    .await?;
    Ok((count, featured))
}

/// Which of `user_ids` are members of the organization.
pub async fn member_ids_among(
    db: &impl GenericClient,
    organization_id: &str,
    user_ids: &[String],
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(user_id) FROM organization_user_relations \
         WHERE organization_id = $1 AND user_id = ANY($2)",
        &[&organization_id, &user_ids],
    )
    .await
}

/// Which of `user_ids` name existing users.
pub async fn existing_user_ids(
    db: &impl GenericClient,
    user_ids: &[String],
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(id) FROM users WHERE id = ANY($1)",
        &[&user_ids],
    )
    .await
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Membership {
    pub organization: OrganizationRow,
    pub organization_roles: Vec<RoleRef>,
}

/// Every organization `user_id` belongs to, with the roles held in each, oldest membership first.
pub async fn memberships(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<Membership>, ProjectionError> {
    documents(
        db,
        &format!(
            "SELECT jsonb_build_object('organization', to_jsonb(o), 'organization_roles', \
             {ROLE_REFS}) FROM organization_user_relations m \
             JOIN organizations o ON o.id = m.organization_id \
             WHERE m.user_id = $1 ORDER BY m.created_at, o.id"
        ),
        &[&user_id],
    )
    .await
}

/// The roles a member holds in an organization, by name, and how many.
pub async fn member_roles(
    db: &impl GenericClient,
    organization_id: &str,
    user_id: &str,
    window: Option<crate::Window>,
) -> Result<(Vec<OrganizationRoleRow>, i64), ProjectionError> {
    let filtered = |select: &str| {
        let mut query = crate::Query::new(select);
        let organization = query.bind(organization_id.to_owned());
        let user = query.bind(user_id.to_owned());
        query.push(&format!(
            " FROM organization_role_user_relations rr \
             JOIN organization_roles r ON r.id = rr.organization_role_id \
             WHERE rr.organization_id = {organization} AND rr.user_id = {user}"
        ));
        query
    };
    roles_page(filtered, window, db).await
}

/// The roles just-in-time provisioning grants in an organization, by name, and how many.
pub async fn jit_roles(
    db: &impl GenericClient,
    organization_id: &str,
    window: Option<crate::Window>,
) -> Result<(Vec<OrganizationRoleRow>, i64), ProjectionError> {
    let filtered = |select: &str| {
        let mut query = crate::Query::new(select);
        let organization = query.bind(organization_id.to_owned());
        query.push(&format!(
            " FROM organization_jit_roles j \
             JOIN organization_roles r ON r.id = j.organization_role_id \
             WHERE j.organization_id = {organization}"
        ));
        query
    };
    roles_page(filtered, window, db).await
}

async fn roles_page(
    filtered: impl Fn(&str) -> crate::Query,
    window: Option<crate::Window>,
    db: &impl GenericClient,
) -> Result<(Vec<OrganizationRoleRow>, i64), ProjectionError> {
    let mut rows = filtered("SELECT to_jsonb(r)");
    rows.push(" ORDER BY r.name, r.id");
    if let Some(window) = window {
        let limit = rows.bind(window.limit);
        let offset = rows.bind(window.offset);
        rows.push(&format!(" LIMIT {limit} OFFSET {offset}"));
    }
    let count = filtered("SELECT count(*)");
    Ok((rows.documents(db).await?, count.count(db).await?))
}

pub async fn role_by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<OrganizationRoleRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(r) FROM organization_roles r WHERE id = $1",
        &[&id],
    )
    .await
}

pub async fn roles_by_ids(
    db: &impl GenericClient,
    ids: &[String],
) -> Result<Vec<OrganizationRoleRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(r) FROM organization_roles r WHERE id = ANY($1)",
        &[&ids],
    )
    .await
}

pub async fn roles_by_names(
    db: &impl GenericClient,
    names: &[String],
) -> Result<Vec<OrganizationRoleRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(r) FROM organization_roles r WHERE name = ANY($1)",
        &[&names],
    )
    .await
}

pub const ROLE_SEARCH_COLUMNS: &[&str] = &["r.id", "r.name", "r.description"];

/// Organization roles matching `search`, by name, and how many match in all.
pub async fn list_roles(
    db: &impl GenericClient,
    search: &crate::search::Search,
    window: crate::Window,
) -> Result<(Vec<OrganizationRoleRow>, i64), ProjectionError> {
    let filtered = |select: &str| {
        let mut query = crate::Query::new(select);
        query.push(" FROM organization_roles r WHERE ");
        query.search(search, ROLE_SEARCH_COLUMNS);
        query
    };
    roles_page(filtered, Some(window), db).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::organization::{NewOrganization, OrganizationPatch};
    use domain::{Actor, Metadata};
    use serde_json::{Map, json};

    fn fold(state: &mut State, ms: i64, event: OrganizationEvent) {
        let encoded = domain::encode(&event).unwrap();
        let recorded = RecordedEvent {
            position: ms,
            stream_id: "o1".into(),
            stream_type: "organization".into(),
            sequence: 1,
            event_type: encoded.event_type,
            event_version: 1,
            payload: (&encoded.payload).into(),
            metadata: Metadata {
                actor: Actor::System,
                ip: None,
                user_agent: None,
                request_id: None,
                occurred_at: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(ms) * 1_000_000,
                )
                .unwrap(),
            },
            erased: false,
        };
        fold_organization(state, &recorded, event);
    }

    #[test]
    fn leaving_drops_the_member_roles_and_patches_replace_json() {
        let mut state = State::default();
        fold(
            &mut state,
            1_000,
            OrganizationEvent::Created(NewOrganization {
                id: "o1".into(),
                name: "Acme".into(),
                description: Some("d".into()),
                custom_data: Map::from_iter([("a".into(), json!(1))]),
                is_mfa_required: false,
                color: Map::new(),
                branding: Map::new(),
                custom_css: None,
            }),
        );
        for user_id in ["u1", "u2"] {
            fold(
                &mut state,
                2_000,
                OrganizationEvent::MemberAdded {
                    user_id: user_id.into(),
                },
            );
            fold(
                &mut state,
                3_000,
                OrganizationEvent::MemberRolesAssigned {
                    user_id: user_id.into(),
                    organization_role_ids: vec!["r1".into()],
                },
            );
        }
        fold(
            &mut state,
            4_000,
            OrganizationEvent::MemberRemoved {
                user_id: "u1".into(),
            },
        );
        assert_eq!(state.members.len(), 1);
        assert_eq!(state.member_roles.len(), 1);
        assert_eq!(state.member_roles[0].user_id, "u2");
        fold(
            &mut state,
            5_000,
            OrganizationEvent::Updated(OrganizationPatch {
                description: Patch::Null,
                custom_data: Some(Map::from_iter([("b".into(), json!(2))])),
                ..OrganizationPatch::default()
            }),
        );
        let row = state.organization.as_ref().unwrap();
        assert_eq!(row.description, None);
        assert_eq!(row.custom_data, json!({"b": 2}));
        assert_eq!(row.created_at, 1_000);
    }
}
