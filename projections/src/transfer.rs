//! Users as they travel between instances: each with the names of its roles, its
//! organization memberships (by organization id and name, with the names of the organization
//! roles held) and its second factors, read in pages for export; and, for an import, the users, identities, roles and
//! organizations already here that its records name. Queries only, over the `users`, `roles`
//! and `organizations` read models; no fold of its own.

use deadpool_postgres::GenericClient;
use serde::Deserialize;

use crate::ProjectionError;
use crate::organizations::{OrganizationRoleRow, OrganizationRow};
use crate::roles::RoleRow;
use crate::rows::documents;
use crate::users::{IdentityRow, MfaRow, UserRow};

/// A user with what travels with it, by name: names are what two instances share, ids are not.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TravellingUser {
    pub user: UserRow,
    /// Names of the global roles held, sorted.
    pub roles: Vec<String>,
    /// Memberships, by organization id.
    pub organizations: Vec<Membership>,
    /// Second factors (their TOTP secrets stay in the vault), oldest first.
    pub mfa: Vec<MfaRow>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Membership {
    pub id: String,
    pub name: String,
    /// Names of the organization roles held there, sorted.
    pub roles: Vec<String>,
}

const SELECT: &str = "SELECT jsonb_build_object('user', to_jsonb(u), \
     'roles', COALESCE((SELECT jsonb_agg(r.name ORDER BY r.name) FROM users_roles ur \
        JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id), '[]'::jsonb), \
     'organizations', COALESCE((SELECT jsonb_agg(jsonb_build_object('id', o.id, 'name', o.name, \
        'roles', COALESCE((SELECT jsonb_agg(orl.name ORDER BY orl.name) \
            FROM organization_role_user_relations rr \
            JOIN organization_roles orl ON orl.id = rr.organization_role_id \
            WHERE rr.organization_id = o.id AND rr.user_id = u.id), '[]'::jsonb)) ORDER BY o.id) \
        FROM organization_user_relations m JOIN organizations o ON o.id = m.organization_id \
        WHERE m.user_id = u.id), '[]'::jsonb), \
     'mfa', COALESCE((SELECT jsonb_agg(to_jsonb(f) ORDER BY f.created_at, f.id) \
        FROM user_mfa_verifications f WHERE f.user_id = u.id), '[]'::jsonb)) \
     FROM users u";

pub async fn count(db: &impl GenericClient) -> Result<i64, ProjectionError> {
    Ok(db
        .query_one("SELECT count(*) FROM users", &[])
        .await?
        .try_get(0)?)
}

/// Where a page of users in creation order starts: after the last user of the previous page
/// (keyset, for streaming a whole export), or at an index (App ID's `startIndex`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    Start,
    After { created_at: i64, id: String },
    Index(i64),
}

/// Up to `limit` users in creation order (oldest first, ties by id), from `from`.
pub async fn page(
    db: &impl GenericClient,
    from: &Cursor,
    limit: i64,
) -> Result<Vec<TravellingUser>, ProjectionError> {
    const ORDER: &str = "ORDER BY u.created_at, u.id";
    match from {
        Cursor::Start => documents(db, &format!("{SELECT} {ORDER} LIMIT $1"), &[&limit]).await,
        Cursor::After { created_at, id } => {
            documents(
                db,
                &format!("{SELECT} WHERE (u.created_at, u.id) > ($1, $2) {ORDER} LIMIT $3"),
                &[created_at, id, &limit],
            )
            .await
        }
        Cursor::Index(offset) => {
            documents(
                db,
                &format!("{SELECT} {ORDER} LIMIT $1 OFFSET $2"),
                &[&limit, offset],
            )
            .await
        }
    }
}

/// The user whose primary email is `email`, ignoring case (as its unique index does).
pub async fn by_email(
    db: &impl GenericClient,
    email: &str,
) -> Result<Vec<TravellingUser>, ProjectionError> {
    documents(
        db,
        &format!("{SELECT} WHERE lower(u.primary_email) = lower($1)"),
        &[&email],
    )
    .await
}

pub async fn by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<TravellingUser>, ProjectionError> {
    Ok(documents(db, &format!("{SELECT} WHERE u.id = $1"), &[&id])
        .await?
        .into_iter()
        .next())
}

/// Identifiers an import wants to use; `emails` in lower case.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub ids: Vec<String>,
    pub emails: Vec<String>,
    pub usernames: Vec<String>,
    pub phones: Vec<String>,
}

/// The users here holding any of the claimed ids or identifiers.
pub async fn holders(
    db: &impl GenericClient,
    claimed: &Claimed,
) -> Result<Vec<TravellingUser>, ProjectionError> {
    documents(
        db,
        &format!(
            "{SELECT} WHERE u.id = ANY($1) OR lower(u.primary_email) = ANY($2) \
             OR u.username = ANY($3) OR u.primary_phone = ANY($4)"
        ),
        &[
            &claimed.ids,
            &claimed.emails,
            &claimed.usernames,
            &claimed.phones,
        ],
    )
    .await
}

/// The identities here with any of the `(target, identity id)` pairs, given as two parallel
/// lists.
pub async fn identity_holders(
    db: &impl GenericClient,
    targets: &[String],
    identity_ids: &[String],
) -> Result<Vec<IdentityRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(i) FROM users_identities i \
         WHERE (i.target, i.identity_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        &[&targets, &identity_ids],
    )
    .await
}

/// The user roles (type `User`) with any of `names`.
pub async fn user_roles_named(
    db: &impl GenericClient,
    names: &[String],
) -> Result<Vec<RoleRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(r) FROM roles r WHERE r.type = 'User' AND r.name = ANY($1)",
        &[&names],
    )
    .await
}

/// The organizations with any of `ids` or `names` (names are not unique: the caller decides).
pub async fn organizations(
    db: &impl GenericClient,
    ids: &[String],
    names: &[String],
) -> Result<Vec<OrganizationRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(o) FROM organizations o WHERE o.id = ANY($1) OR o.name = ANY($2)",
        &[&ids, &names],
    )
    .await
}

/// The organization roles with any of `names`.
pub async fn organization_roles_named(
    db: &impl GenericClient,
    names: &[String],
) -> Result<Vec<OrganizationRoleRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(r) FROM organization_roles r WHERE r.name = ANY($1)",
        &[&names],
    )
    .await
}
