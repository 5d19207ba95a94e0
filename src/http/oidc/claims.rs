//! What the ID token and userinfo say about a user, per granted scope (logto-compat §9).

use deadpool_postgres::GenericClient;
use projections::ProjectionError;
use projections::organizations::Membership;
use projections::users::UserRow;
use serde_json::{Map, Value, json};

/// Everything claims are built from, loaded once per exchange.
pub struct Subject {
    pub user: UserRow,
    pub role_names: Vec<String>,
    pub memberships: Vec<Membership>,
}

pub async fn load(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Option<Subject>, ProjectionError> {
    let Some(user) = projections::users::by_id(db, user_id).await? else {
        return Ok(None);
    };
    Ok(Some(subject(db, user, None).await?))
}

/// The subject of `user` for claims of `scopes` (all, when `None`): roles and organization
/// memberships are read only when a granted scope shows them, which spares userinfo two
/// queries for most tokens.
pub async fn subject(
    db: &impl GenericClient,
    user: UserRow,
    scopes: Option<&[String]>,
) -> Result<Subject, ProjectionError> {
    let wants = |scope: &str| scopes.is_none_or(|granted| has(granted, scope));
    let role_names = if wants("roles") {
        projections::users::role_names(db, &user.id).await?
    } else {
        Vec::new()
    };
    let memberships =
        if wants("urn:logto:scope:organizations") || wants("urn:logto:scope:organization_roles") {
            projections::organizations::memberships(db, &user.id).await?
        } else {
            Vec::new()
        };
    Ok(Subject {
        user,
        role_names,
        memberships,
    })
}

/// Standard claims the `profile` scope takes from `profile.*`, omitted when unset.
const PROFILE_CLAIMS: &[(&str, &str)] = &[
    ("family_name", "familyName"),
    ("given_name", "givenName"),
    ("middle_name", "middleName"),
    ("nickname", "nickname"),
    ("profile", "profile"),
    ("website", "website"),
    ("gender", "gender"),
    ("birthdate", "birthdate"),
    ("zoneinfo", "zoneinfo"),
    ("locale", "locale"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    IdToken,
    UserInfo,
}

fn has(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

/// Claims for the granted `scopes`. The ID token carries Logto's default extended claims
/// (roles, organizations, organization roles); userinfo adds custom data, identities and
/// organization data.
pub fn claims(subject: &Subject, scopes: &[String], audience: Audience) -> Map<String, Value> {
    let user = &subject.user;
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    if has(scopes, "profile") {
        claims.insert("name".into(), json!(user.name));
        claims.insert("picture".into(), json!(user.avatar));
        claims.insert("username".into(), json!(user.username));
        let preferred = user.profile["preferredUsername"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| user.username.clone());
        claims.insert("preferred_username".into(), json!(preferred));
        for (claim, key) in PROFILE_CLAIMS {
            if let Some(value) = user.profile.get(*key).filter(|v| !v.is_null()) {
                claims.insert((*claim).into(), value.clone());
            }
        }
        // Logto sends these in milliseconds, not OIDC's seconds.
        claims.insert("created_at".into(), json!(user.created_at));
        claims.insert("updated_at".into(), json!(user.updated_at));
    }
    if has(scopes, "email") {
        claims.insert("email".into(), json!(user.primary_email));
        claims.insert("email_verified".into(), json!(user.primary_email.is_some()));
    }
    if has(scopes, "phone") {
        claims.insert("phone_number".into(), json!(user.primary_phone));
        claims.insert(
            "phone_number_verified".into(),
            json!(user.primary_phone.is_some()),
        );
    }
    if has(scopes, "address")
        && let Some(address) = user.profile.get("address")
    {
        claims.insert("address".into(), address.clone());
    }
    if has(scopes, "roles") {
        claims.insert("roles".into(), json!(subject.role_names));
    }
    if has(scopes, "urn:logto:scope:organizations") {
        let ids: Vec<&str> = subject
            .memberships
            .iter()
            .map(|m| m.organization.id.as_str())
            .collect();
        claims.insert("organizations".into(), json!(ids));
        if audience == Audience::UserInfo {
            let data: Vec<Value> = subject
                .memberships
                .iter()
                .map(|m| {
                    json!({
                        "id": m.organization.id,
                        "name": m.organization.name,
                        "description": m.organization.description,
                    })
                })
                .collect();
            claims.insert("organization_data".into(), json!(data));
        }
    }
    if has(scopes, "urn:logto:scope:organization_roles") {
        let roles: Vec<String> = subject
            .memberships
            .iter()
            .flat_map(|m| {
                m.organization_roles
                    .iter()
                    .map(move |r| format!("{}:{}", m.organization.id, r.name))
            })
            .collect();
        claims.insert("organization_roles".into(), json!(roles));
    }
    if audience == Audience::UserInfo {
        if has(scopes, "custom_data") {
            claims.insert("custom_data".into(), user.custom_data.clone());
        }
        if has(scopes, "identities") {
            claims.insert("identities".into(), user.identities.clone());
            claims.insert("sso_identities".into(), json!([]));
        }
    }
    claims
}
