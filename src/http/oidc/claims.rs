//! What the ID token and userinfo say about a user, per granted scope (logto-compat §9).

use deadpool_postgres::GenericClient;
use domain::id_token_config::ExtendedClaim;
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

#[derive(Clone, Copy)]
pub enum Audience<'a> {
    /// The ID token, with the extended claims the tenant enabled (`/api/configs/id-token`).
    IdToken(&'a [ExtendedClaim]),
    /// Userinfo shows every claim of the granted scopes.
    UserInfo,
}

impl Audience<'_> {
    fn shows(self, scopes: &[String], claim: ExtendedClaim) -> bool {
        has(scopes, claim.scope())
            && match self {
                Audience::IdToken(enabled) => enabled.contains(&claim),
                Audience::UserInfo => true,
            }
    }
}

/// The ID token's extended claims as recorded; none before any setting is (as in Logto, whose
/// bootstrap seeds one).
pub async fn id_token_claims(
    db: &impl GenericClient,
) -> Result<Vec<ExtendedClaim>, ProjectionError> {
    Ok(projections::id_token_config::current(db)
        .await?
        .map(|config| config.enabled().to_vec())
        .unwrap_or_default())
}

fn has(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

/// Claims for the granted `scopes`. The extended claims (roles, organizations, custom data, …)
/// appear in the ID token only when the tenant enabled them, in userinfo always.
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
    if audience.shows(scopes, ExtendedClaim::Roles) {
        claims.insert("roles".into(), json!(subject.role_names));
    }
    if audience.shows(scopes, ExtendedClaim::Organizations) {
        let ids: Vec<&str> = subject
            .memberships
            .iter()
            .map(|m| m.organization.id.as_str())
            .collect();
        claims.insert("organizations".into(), json!(ids));
    }
    if audience.shows(scopes, ExtendedClaim::OrganizationData) {
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
    if audience.shows(scopes, ExtendedClaim::OrganizationRoles) {
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
    if audience.shows(scopes, ExtendedClaim::CustomData) {
        claims.insert("custom_data".into(), user.custom_data.clone());
    }
    if audience.shows(scopes, ExtendedClaim::Identities) {
        claims.insert("identities".into(), user.identities.clone());
    }
    if audience.shows(scopes, ExtendedClaim::SsoIdentities) {
        claims.insert("sso_identities".into(), json!([]));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        let user: UserRow = serde_json::from_value(json!({
            "id": "u1", "username": "grace", "primary_email": null, "primary_phone": null,
            "name": null, "avatar": null, "custom_data": {"team": "navy"}, "identities": {},
            "profile": {}, "application_id": null, "is_suspended": false,
            "password_digest": null, "password_algorithm": null, "last_sign_in_at": null,
            "created_at": 1, "updated_at": 2
        }))
        .unwrap();
        Subject {
            user,
            role_names: vec!["admiral".into()],
            memberships: Vec::new(),
        }
    }

    fn names(claims: &Map<String, Value>) -> Vec<&str> {
        let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn the_id_token_shows_only_enabled_extended_claims_of_granted_scopes() {
        let scopes: Vec<String> = ["openid", "roles", "custom_data", "identities"]
            .map(String::from)
            .to_vec();
        let subject = subject();
        let none = claims(&subject, &scopes, Audience::IdToken(&[]));
        assert_eq!(names(&none), ["sub"]);
        let some = claims(
            &subject,
            &scopes,
            Audience::IdToken(&[
                ExtendedClaim::Roles,
                ExtendedClaim::SsoIdentities,
                // Enabled, but its scope is not granted.
                ExtendedClaim::Organizations,
            ]),
        );
        assert_eq!(names(&some), ["roles", "sso_identities", "sub"]);
        let all = claims(&subject, &scopes, Audience::UserInfo);
        assert_eq!(
            names(&all),
            [
                "custom_data",
                "identities",
                "roles",
                "sso_identities",
                "sub"
            ]
        );
        assert_eq!(all["custom_data"], json!({"team": "navy"}));
    }
}
