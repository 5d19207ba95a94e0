//! Users, the roles they hold, their upstream identities and their personal access tokens.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::interaction::InteractionEventRecord;
use domain::patch::Patch;
use domain::user::UserEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::rows::{Rows, StreamFold, document, documents, single};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub username: Option<String>,
    pub primary_email: Option<String>,
    pub primary_phone: Option<String>,
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub custom_data: Value,
    /// `target → {userId, details?}`, as Logto returns it.
    pub identities: Value,
    pub profile: Value,
    pub application_id: Option<String>,
    pub is_suspended: bool,
    pub password_digest: Option<String>,
    pub password_algorithm: Option<String>,
    pub last_sign_in_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRoleRow {
    pub user_id: String,
    pub role_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityRow {
    pub user_id: String,
    pub target: String,
    pub identity_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRow {
    pub user_id: String,
    pub name: String,
    pub lookup_hash: String,
    pub vault_ref: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

static USERS: Rows<UserRow> = Rows::new("users", "id");
static ROLES: Rows<UserRoleRow> = Rows::new("users_roles", "user_id");
static IDENTITIES: Rows<IdentityRow> = Rows::new("users_identities", "user_id");
static TOKENS: Rows<TokenRow> = Rows::new("personal_access_tokens", "user_id");
static MFA: Rows<MfaRow> = Rows::new("user_mfa_verifications", "user_id");

/// One second factor of a user (Logto's `mfaVerifications` item). Never the TOTP secret (it is
/// in the vault) nor a backup code (keyed hashes only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MfaRow {
    pub user_id: String,
    pub id: String,
    /// `Totp` or `BackupCode`.
    pub kind: String,
    pub vault_ref: Option<String>,
    /// Keyed hashes of the backup codes not used yet.
    pub unused_code_hashes: Value,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Default)]
pub struct State {
    user: Option<UserRow>,
    roles: Vec<UserRoleRow>,
    identities: Vec<IdentityRow>,
    tokens: Vec<TokenRow>,
    mfa: Vec<MfaRow>,
}

fn set(field: &mut Option<String>, patch: Patch<String>) {
    match patch {
        Patch::Absent => {}
        Patch::Null => *field = None,
        // Logto clears an identifier given as "".
        Patch::Value(value) if value.is_empty() => *field = None,
        Patch::Value(value) => *field = Some(value),
    }
}

fn merge(target: &mut Value, changes: Map<String, Value>) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(object) = target {
        object.extend(changes);
    }
}

/// The state of one user after one of its events. Pure.
fn fold_user(state: &mut State, event: &RecordedEvent, decoded: UserEvent) {
    let at = event.occurred_at_ms();
    let id = &event.stream_id;
    if let UserEvent::Created(user) = decoded {
        state.roles = user
            .role_ids
            .into_iter()
            .map(|role_id| UserRoleRow {
                user_id: id.clone(),
                role_id,
                created_at: at,
            })
            .collect();
        state.user = Some(UserRow {
            id: user.id,
            username: user.username,
            primary_email: user.primary_email,
            primary_phone: user.primary_phone,
            name: user.name,
            avatar: user.avatar,
            custom_data: Value::Object(user.custom_data),
            identities: json!({}),
            profile: Value::Object(user.profile),
            application_id: None,
            is_suspended: false,
            password_digest: user.password_digest,
            password_algorithm: user.password_algorithm.map(|a| a.as_str().to_owned()),
            last_sign_in_at: None,
            created_at: at,
            updated_at: at,
        });
        return;
    }
    // Erasure deletes the user (if still live) and leaves nothing of them here: the row held
    // nothing but personal data and what hangs off it.
    if let UserEvent::Deleted {} | UserEvent::Erased(_) = decoded {
        *state = State::default();
        return;
    }
    // A refused change changed nothing, not even `updatedAt`.
    if let UserEvent::CustomDataChangeRefused { .. } = decoded {
        return;
    }
    let Some(row) = &mut state.user else {
        return;
    };
    row.updated_at = at;
    match decoded {
        UserEvent::Created(_)
        | UserEvent::Deleted {}
        | UserEvent::Erased(_)
        | UserEvent::CustomDataChangeRefused { .. } => {}
        UserEvent::Updated(patch) => {
            set(&mut row.username, patch.username);
            set(&mut row.primary_email, patch.primary_email);
            set(&mut row.primary_phone, patch.primary_phone);
            set(&mut row.name, patch.name);
            set(&mut row.avatar, patch.avatar);
            if let Some(custom_data) = patch.custom_data {
                row.custom_data = Value::Object(custom_data);
            }
            if let Some(profile) = patch.profile {
                row.profile = Value::Object(profile);
            }
        }
        UserEvent::CustomDataMerged { custom_data } => merge(&mut row.custom_data, custom_data),
        UserEvent::ProfileMerged { profile } => merge(&mut row.profile, profile),
        UserEvent::PasswordSet(password) | UserEvent::PasswordRehashed(password) => {
            row.password_digest = Some(password.password_digest);
            row.password_algorithm = Some(password.password_algorithm.as_str().to_owned());
        }
        UserEvent::Suspended {} => row.is_suspended = true,
        UserEvent::Reactivated {} => row.is_suspended = false,
        UserEvent::IdentityLinked {
            target,
            user_id,
            details,
        } => {
            let mut identity = json!({ "userId": user_id });
            if let Some(details) = details {
                identity["details"] = details;
            }
            merge(
                &mut row.identities,
                Map::from_iter([(target.clone(), identity)]),
            );
            state.identities.retain(|i| i.target != target);
            state.identities.push(IdentityRow {
                user_id: id.clone(),
                target,
                identity_id: user_id,
            });
        }
        UserEvent::IdentityUnlinked { target } => {
            if let Value::Object(identities) = &mut row.identities {
                identities.remove(&target);
            }
            state.identities.retain(|i| i.target != target);
        }
        UserEvent::RolesAssigned { role_ids } => {
            state
                .roles
                .extend(role_ids.into_iter().map(|role_id| UserRoleRow {
                    user_id: id.clone(),
                    role_id,
                    created_at: at,
                }));
        }
        UserEvent::RoleRemoved { role_id } => state.roles.retain(|r| r.role_id != role_id),
        UserEvent::PersonalAccessTokenAdded(token) => state.tokens.push(TokenRow {
            user_id: id.clone(),
            name: token.name,
            lookup_hash: token.lookup_hash,
            vault_ref: token.vault_ref,
            created_at: at,
            expires_at: token.expires_at,
        }),
        UserEvent::PersonalAccessTokenRenamed { name, new_name } => {
            for token in state.tokens.iter_mut().filter(|t| t.name == name) {
                token.name = new_name.clone();
            }
        }
        UserEvent::PersonalAccessTokenDeleted { name, .. } => {
            state.tokens.retain(|t| t.name != name)
        }
        UserEvent::MfaVerificationAdded(new) => {
            let (kind, vault_ref, codes) = match &new {
                domain::mfa::NewMfaVerification::Totp { vault_ref, .. } => {
                    ("Totp", Some(vault_ref.clone()), json!([]))
                }
                domain::mfa::NewMfaVerification::BackupCode { code_hashes, .. } => {
                    ("BackupCode", None, json!(code_hashes))
                }
            };
            state.mfa.push(MfaRow {
                user_id: id.clone(),
                id: new.id().to_owned(),
                kind: kind.to_owned(),
                vault_ref,
                unused_code_hashes: codes,
                created_at: at,
                last_used_at: None,
            });
        }
        UserEvent::MfaVerificationDeleted { id: factor, .. } => {
            state.mfa.retain(|m| m.id != factor)
        }
        UserEvent::TotpUsed { id: factor, .. } => {
            for row in state.mfa.iter_mut().filter(|m| m.id == factor) {
                row.last_used_at = Some(at);
            }
        }
        UserEvent::BackupCodeUsed {
            id: factor,
            code_hash,
        } => {
            for row in state.mfa.iter_mut().filter(|m| m.id == factor) {
                row.last_used_at = Some(at);
                if let Value::Array(codes) = &mut row.unused_code_hashes {
                    codes.retain(|c| c.as_str() != Some(code_hash.as_str()));
                }
            }
        }
    }
}

/// What the users fold reads: the user's own events, and sign-ins recorded by interactions.
pub enum UserFact {
    Own(Box<UserEvent>),
    SignedIn { application_id: String },
}

pub struct Users;

#[async_trait]
impl StreamFold for Users {
    type Event = UserFact;
    type State = State;
    /// The user's own stream, plus each interaction that signed the user in (for
    /// `lastSignInAt` and the first application).
    fn route(event: &RecordedEvent) -> Result<Option<(String, UserFact)>, domain::CodecError> {
        if event.stream_type == "interaction" && event.event_type == "interaction.submitted" {
            let decoded = domain::decode(&event.event_type, &event.payload)?;
            if let InteractionEventRecord::Submitted {
                user_id,
                application_id,
                ..
            } = decoded
            {
                return Ok(Some((user_id, UserFact::SignedIn { application_id })));
            }
            return Ok(None);
        }
        Ok(crate::rows::own_stream::<UserEvent>(event, "user")?
            .map(|(key, event)| (key, UserFact::Own(Box::new(event)))))
    }

    fn begins(key: &str, event: &RecordedEvent) -> bool {
        crate::rows::begins_own_stream(key, event, "user")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, State>, ProjectionError> {
        let mut users = single(USERS.load(db, streams).await?);
        let mut roles = ROLES.load(db, streams).await?;
        let mut identities = IDENTITIES.load(db, streams).await?;
        let mut tokens = TOKENS.load(db, streams).await?;
        let mut mfa = MFA.load(db, streams).await?;
        Ok(streams
            .iter()
            .map(|id| {
                let state = State {
                    user: users.remove(id),
                    roles: roles.remove(id).unwrap_or_default(),
                    identities: identities.remove(id).unwrap_or_default(),
                    tokens: tokens.remove(id).unwrap_or_default(),
                    mfa: mfa.remove(id).unwrap_or_default(),
                };
                (id.clone(), state)
            })
            .collect())
    }

    fn fold(state: &mut State, event: &RecordedEvent, decoded: UserFact) {
        match decoded {
            UserFact::Own(own) => fold_user(state, event, *own),
            UserFact::SignedIn { application_id } => {
                if let Some(row) = &mut state.user {
                    row.last_sign_in_at = Some(event.occurred_at_ms());
                    row.updated_at = event.occurred_at_ms();
                    row.application_id.get_or_insert(application_id);
                }
            }
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, State>,
    ) -> Result<(), ProjectionError> {
        let (mut users, mut roles, mut identities, mut tokens, mut mfa) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for state in states.into_values() {
            users.extend(state.user);
            roles.extend(state.roles);
            identities.extend(state.identities);
            tokens.extend(state.tokens);
            mfa.extend(state.mfa);
        }
        // A batch holds far fewer than 2^63 users: the casts are exact.
        let removed = USERS.delete(db, streams).await? as i64;
        USERS.insert(db, &users).await?;
        let change = users.len() as i64 - removed;
        if change != 0 {
            count_users(db, change).await?;
        }
        ROLES.store(db, streams, &roles).await?;
        IDENTITIES.store(db, streams, &identities).await?;
        TOKENS.store(db, streams, &tokens).await?;
        MFA.store(db, streams, &mfa).await
    }
}

/// Keeps `user_count` equal to the number of rows of `users`, so listing every user needs no
/// count of the table. The single row exists only while there are users: a refold that never
/// saw a user and a live table whose users all left then hold the same (no) row. Appends are
/// serialized by the log's head lock, so the row is updated by one batch at a time.
async fn count_users(db: &Transaction<'_>, change: i64) -> Result<(), ProjectionError> {
    let updated = db
        .query_opt(
            "UPDATE user_count SET users = users + $1 RETURNING users",
            &[&change],
        )
        .await?;
    match updated {
        None => {
            db.execute("INSERT INTO user_count (users) VALUES ($1)", &[&change])
                .await?;
        }
        Some(row) if row.try_get::<_, i64>(0)? == 0 => {
            db.execute("DELETE FROM user_count", &[]).await?;
        }
        Some(_) => {}
    }
    Ok(())
}

#[async_trait]
impl Projection for Users {
    fn name(&self) -> &'static str {
        "users"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "users",
            "user_count",
            "users_roles",
            "users_identities",
            "personal_access_tokens",
            "user_mfa_verifications",
        ]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        crate::roles::fold_dropping_deleted_roles(self, db, events, "users_roles").await
    }
}

/// One user's read-model state folded event by event, in memory, with the projection's own
/// `route` and `fold`: time travel and the audit trail's before/after views then show exactly
/// what the `users` table showed, with no second fold to keep in step.
#[derive(Default)]
pub struct UserHistory {
    state: State,
}

impl UserHistory {
    /// Folds `event` if `route` sends it to `user_id`; whether it did.
    pub fn fold(
        &mut self,
        user_id: &str,
        event: &RecordedEvent,
    ) -> Result<bool, domain::CodecError> {
        match Users::route(event)? {
            Some((key, fact)) if key == user_id => {
                Users::fold(&mut self.state, event, fact);
                Ok(true)
            }
            Some(_) | None => Ok(false),
        }
    }

    /// The `users` row; `None` before the user was created and after it was deleted.
    pub fn user(&self) -> Option<&UserRow> {
        self.state.user.as_ref()
    }

    /// The roles the user's own stream gave it, in the order given. (A deleted role leaves
    /// `users_roles` through the roles fold, which a single user's events do not show.)
    pub fn role_ids(&self) -> Vec<String> {
        self.state.roles.iter().map(|r| r.role_id.clone()).collect()
    }

    /// Names of the user's personal access tokens (never their values or hashes).
    pub fn token_names(&self) -> Vec<String> {
        self.state.tokens.iter().map(|t| t.name.clone()).collect()
    }
}

/// The `users` row of `user_id` after `events`, given in position order: what `route` reads for
/// one user (its own stream and the `interaction.submitted` facts naming it); others are
/// skipped. `None` if the user did not exist at that point.
pub fn fold_history(
    user_id: &str,
    events: &[RecordedEvent],
) -> Result<Option<UserRow>, domain::CodecError> {
    let mut history = UserHistory::default();
    for event in events {
        history.fold(user_id, event)?;
    }
    Ok(history.state.user)
}

pub async fn by_id(db: &impl GenericClient, id: &str) -> Result<Option<UserRow>, ProjectionError> {
    document(db, "SELECT to_jsonb(u) FROM users u WHERE id = $1", &[&id]).await
}

/// The user a sign-in identifier names, matched as Logto matches them: a username exactly (or
/// ignoring case under a case-insensitive username policy), an email ignoring case (as its
/// unique index does), a phone as stored (the caller normalizes it first).
pub async fn by_identifier(
    db: &impl GenericClient,
    kind: domain::interaction::IdentifierType,
    value: &str,
    username_case_sensitive: bool,
) -> Result<Option<UserRow>, ProjectionError> {
    use domain::interaction::IdentifierType;
    let sql = match (kind, username_case_sensitive) {
        (IdentifierType::Username, true) => "SELECT to_jsonb(u) FROM users u WHERE username = $1",
        // Ordered so a case-insensitive policy adopted over case-variant usernames still picks
        // one user deterministically.
        (IdentifierType::Username, false) => {
            "SELECT to_jsonb(u) FROM users u WHERE lower(username) = lower($1) \
             ORDER BY username = $1 DESC, created_at, id LIMIT 1"
        }
        (IdentifierType::Email, _) => {
            "SELECT to_jsonb(u) FROM users u WHERE lower(primary_email) = lower($1)"
        }
        (IdentifierType::Phone, _) => "SELECT to_jsonb(u) FROM users u WHERE primary_phone = $1",
    };
    document(db, sql, &[&value]).await
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub search: crate::search::Search,
    pub exclude_role_id: Option<String>,
    /// Only users holding this role.
    pub role_id: Option<String>,
    /// Leave out the members of this organization.
    pub exclude_organization_id: Option<String>,
}

pub const SEARCH_COLUMNS: &[&str] = &["id", "primary_email", "primary_phone", "username", "name"];

/// The user table's search indexes (migrations 0006 and 0034): a trigram index on every
/// searchable column, and B-trees on the lowered email (its unique index) and username.
const SEARCH_INDEXES: crate::search::Indexes<'static> = crate::search::Indexes {
    trigram: true,
    lowered: &["primary_email", "username"],
};

impl UserFilter {
    fn is_empty(&self) -> bool {
        self.search.is_empty()
            && self.exclude_role_id.is_none()
            && self.role_id.is_none()
            && self.exclude_organization_id.is_none()
    }
}

fn filtered(select: &str, filter: &UserFilter) -> crate::Query {
    let mut query = crate::Query::new(select);
    query.push(" WHERE ");
    query.indexed_search(&filter.search, SEARCH_COLUMNS, &SEARCH_INDEXES);
    if let Some(role_id) = &filter.exclude_role_id {
        let p = query.bind(role_id.clone());
        query.push(&format!(
            " AND NOT EXISTS (SELECT 1 FROM users_roles ur WHERE ur.user_id = u.id AND ur.role_id = {p})"
        ));
    }
    if let Some(role_id) = &filter.role_id {
        let p = query.bind(role_id.clone());
        query.push(&format!(
            " AND EXISTS (SELECT 1 FROM users_roles ur WHERE ur.user_id = u.id AND ur.role_id = {p})"
        ));
    }
    if let Some(organization_id) = &filter.exclude_organization_id {
        let p = query.bind(organization_id.clone());
        query.push(&format!(
            " AND NOT EXISTS (SELECT 1 FROM organization_user_relations m \
             WHERE m.user_id = u.id AND m.organization_id = {p})"
        ));
    }
    query
}

/// Users matching `filter`, newest first, and how many match in all (exactly, as Logto counts).
pub async fn list(
    db: &impl GenericClient,
    filter: &UserFilter,
    window: crate::Window,
) -> Result<(Vec<UserRow>, i64), ProjectionError> {
    if filter.is_empty() {
        // Every user: the page walks the creation-time index, the total is the projection's
        // own count instead of a count of the whole table.
        let mut rows = crate::Query::new("SELECT to_jsonb(u) FROM users u");
        let limit = rows.bind(window.limit);
        let offset = rows.bind(window.offset);
        rows.push(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT {limit} OFFSET {offset}"
        ));
        let total = crate::Query::new("SELECT coalesce((SELECT users FROM user_count), 0)");
        return Ok((rows.documents(db).await?, total.count(db).await?));
    }
    // One pass over the matches gives the page and the total. Counting needs every match
    // anyway, so the planner takes them from the search's indexes and sorts the page out of
    // them; asked for the page alone, it would walk the creation-time index filtering rows,
    // which reads the whole table when matches are rare (it cannot foresee that from a
    // pattern).
    let mut page = filtered(
        "SELECT to_jsonb(u), p.total FROM (SELECT u.id, u.created_at, count(*) OVER () AS total \
         FROM users u",
        filter,
    );
    let limit = page.bind(window.limit);
    let offset = page.bind(window.offset);
    page.push(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT {limit} OFFSET {offset}) p \
         JOIN users u ON u.id = p.id ORDER BY p.created_at DESC, p.id DESC"
    ));
    let mut rows = Vec::new();
    let mut total = 0;
    for row in page.rows(db).await? {
        rows.push(serde_json::from_value(row.try_get::<_, Value>(0)?)?);
        total = row.try_get(1)?;
    }
    if rows.is_empty() && window.offset > 0 {
        // A page past the last match carries no total.
        total = filtered("SELECT count(*) FROM users u", filter)
            .count(db)
            .await?;
    }
    Ok((rows, total))
}

pub async fn role_ids(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(role_id) FROM users_roles WHERE user_id = $1 ORDER BY created_at, role_id",
        &[&user_id],
    )
    .await
}

/// The owner of an upstream identity, if any user has it.
pub async fn identity_owner(
    db: &impl GenericClient,
    target: &str,
    identity_id: &str,
) -> Result<Option<String>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(user_id) FROM users_identities WHERE target = $1 AND identity_id = $2",
        &[&target, &identity_id],
    )
    .await
}

pub async fn tokens(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<TokenRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(t) FROM personal_access_tokens t WHERE user_id = $1 ORDER BY created_at, name",
        &[&user_id],
    )
    .await
}

/// The personal access token with this keyed hash, whoever holds it (token exchange).
pub async fn token_by_hash(
    db: &impl GenericClient,
    lookup_hash: &str,
) -> Result<Option<TokenRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(t) FROM personal_access_tokens t WHERE lookup_hash = $1",
        &[&lookup_hash],
    )
    .await
}

/// A user's second factors, oldest first.
pub async fn mfa_verifications(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<MfaRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(m) FROM user_mfa_verifications m WHERE user_id = $1 \
         ORDER BY created_at, id",
        &[&user_id],
    )
    .await
}

/// Users holding a role: how many, and the three most recently given it.
pub async fn holders_of(
    db: &impl GenericClient,
    role_id: &str,
) -> Result<(i64, Vec<UserRow>), ProjectionError> {
    let count: i64 = db
        .query_one(
            "SELECT count(*) FROM users_roles WHERE role_id = $1",
            &[&role_id],
        )
        .await?
        .try_get(0)?;
    let featured = documents(
        db,
        "SELECT to_jsonb(u) FROM users_roles ur JOIN users u ON u.id = ur.user_id \
         WHERE ur.role_id = $1 ORDER BY ur.created_at DESC, u.id LIMIT 3",
        &[&role_id],
    )
    .await?;
    Ok((count, featured))
}

/// Names of the scopes of `resource_id` that the user's roles grant.
pub async fn granted_scopes(
    db: &impl GenericClient,
    user_id: &str,
    resource_id: &str,
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT DISTINCT to_jsonb(s.name) FROM users_roles ur \
         JOIN roles_scopes rs ON rs.role_id = ur.role_id \
         JOIN scopes s ON s.id = rs.scope_id \
         WHERE ur.user_id = $1 AND s.resource_id = $2",
        &[&user_id, &resource_id],
    )
    .await
}

/// Names of the global roles the user holds.
pub async fn role_names(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(r.name) FROM users_roles ur JOIN roles r ON r.id = ur.role_id \
         WHERE ur.user_id = $1 ORDER BY r.name",
        &[&user_id],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::user::{NewUser, UserPatch};
    use domain::{Actor, Metadata};

    fn at(ms: i64, event: &UserEvent) -> RecordedEvent {
        let encoded = domain::encode(event).unwrap();
        RecordedEvent {
            position: ms,
            stream_id: "u1".into(),
            stream_type: "user".into(),
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
        }
    }

    fn fold(state: &mut State, ms: i64, event: UserEvent) {
        let recorded = at(ms, &event);
        fold_user(state, &recorded, event);
    }

    #[test]
    fn updates_replace_json_while_merges_extend_it_and_empty_identifiers_clear() {
        let mut state = State::default();
        fold(
            &mut state,
            1_000,
            UserEvent::Created(NewUser {
                id: "u1".into(),
                username: Some("ada".into()),
                primary_email: None,
                primary_phone: None,
                name: None,
                avatar: None,
                custom_data: Map::from_iter([("a".into(), json!(1))]),
                profile: Map::new(),
                password_digest: None,
                password_algorithm: None,
                role_ids: vec![],
            }),
        );
        fold(
            &mut state,
            2_000,
            UserEvent::CustomDataMerged {
                custom_data: Map::from_iter([("b".into(), json!(2))]),
            },
        );
        assert_eq!(
            state.user.as_ref().unwrap().custom_data,
            json!({"a": 1, "b": 2})
        );
        fold(
            &mut state,
            3_000,
            UserEvent::Updated(UserPatch {
                username: Patch::Value(String::new()),
                custom_data: Some(Map::from_iter([("c".into(), json!(3))])),
                ..UserPatch::default()
            }),
        );
        let row = state.user.as_ref().unwrap();
        assert_eq!(row.custom_data, json!({"c": 3}));
        assert_eq!(row.username, None);
        assert_eq!((row.created_at, row.updated_at), (1_000, 3_000));
    }

    #[test]
    fn history_folds_one_users_own_events_and_sign_ins_and_ends_at_deletion() {
        let sign_in = |ms: i64, user_id: &str| {
            let encoded = domain::encode(&InteractionEventRecord::Submitted {
                user_id: user_id.into(),
                event: domain::interaction::InteractionEvent::SignIn,
                application_id: "app1".into(),
            })
            .unwrap();
            RecordedEvent {
                stream_id: format!("i{ms}"),
                stream_type: "interaction".into(),
                event_type: encoded.event_type,
                payload: (&encoded.payload).into(),
                ..at(ms, &UserEvent::Suspended {})
            }
        };
        let created = UserEvent::Created(NewUser {
            id: "u1".into(),
            username: Some("ada".into()),
            primary_email: None,
            primary_phone: None,
            name: None,
            avatar: None,
            custom_data: Map::new(),
            profile: Map::new(),
            password_digest: None,
            password_algorithm: None,
            role_ids: vec!["r1".into()],
        });
        let events = vec![
            at(1_000, &created),
            sign_in(2_000, "someone-else"),
            sign_in(3_000, "u1"),
        ];
        let row = fold_history("u1", &events).unwrap().unwrap();
        assert_eq!(row.last_sign_in_at, Some(3_000));
        assert_eq!(row.application_id.as_deref(), Some("app1"));
        let mut history = UserHistory::default();
        for event in &events {
            history.fold("u1", event).unwrap();
        }
        assert_eq!(history.role_ids(), vec!["r1".to_owned()]);
        let mut deleted = events.clone();
        deleted.push(at(4_000, &UserEvent::Deleted {}));
        assert_eq!(fold_history("u1", &deleted).unwrap(), None);
        assert_eq!(fold_history("u2", &events).unwrap(), None);
    }
}
