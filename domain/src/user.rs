//! Users: identifiers, profile, password, suspension, social identities, roles and personal
//! access tokens. Every personal field of every user event is sealed under the user's own data
//! key, so erasing the user erases them from the log too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::{Aggregate, Event};
use crate::mfa::{MfaError, MfaVerifications, NewMfaVerification};
use crate::patch::Patch;

/// How a stored password digest is checked; the names are Logto's `passwordAlgorithm` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PasswordAlgorithm {
    Argon2i,
    Argon2id,
    Argon2d,
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "MD5")]
    Md5,
    Bcrypt,
    Legacy,
}

impl PasswordAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            PasswordAlgorithm::Argon2i => "Argon2i",
            PasswordAlgorithm::Argon2id => "Argon2id",
            PasswordAlgorithm::Argon2d => "Argon2d",
            PasswordAlgorithm::Sha1 => "SHA1",
            PasswordAlgorithm::Sha256 => "SHA256",
            PasswordAlgorithm::Md5 => "MD5",
            PasswordAlgorithm::Bcrypt => "Bcrypt",
            PasswordAlgorithm::Legacy => "Legacy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Password {
    #[serde(default)]
    pub password_digest: String,
    pub password_algorithm: PasswordAlgorithm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    pub id: String,
    pub username: Option<String>,
    pub primary_email: Option<String>,
    pub primary_phone: Option<String>,
    pub name: Option<String>,
    pub avatar: Option<String>,
    #[serde(default)]
    pub custom_data: Map<String, Value>,
    #[serde(default)]
    pub profile: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_algorithm: Option<PasswordAlgorithm>,
    /// Roles every new user gets (`isDefault` roles).
    pub role_ids: Vec<String>,
}

/// A replacing update (Logto's `PATCH /users/:id`): `customData` and `profile` are replaced
/// wholesale, identifiers and names set or cleared.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPatch {
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub username: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub primary_email: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub primary_phone: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub name: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub avatar: Patch<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPersonalAccessToken {
    pub name: String,
    pub lookup_hash: String,
    pub vault_ref: String,
    pub expires_at: Option<i64>,
}

/// A person's data sealed under subjects other than their own stream, named by non-personal
/// ids so the erasure can destroy those keys too and every read model that copied the data in
/// the clear can forget it (deterministically: a refold sees the same ids).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Traces {
    /// Interactions they signed in or registered through (what they typed there is sealed
    /// under `interaction:<id>`).
    pub interactions: Vec<String>,
    /// Data subjects of their mail addresses, one key generation each (`email:<hash>[#n]`, a
    /// keyed hash): mail and one-time tokens sent to the address are sealed under them.
    pub addresses: Vec<String>,
    /// One-time tokens sealed under those addresses.
    pub one_time_tokens: Vec<String>,
    /// Webhook deliveries about them (sealed under their own key; the read models keep the
    /// request body in the clear).
    pub hook_deliveries: Vec<String>,
}

impl Traces {
    /// Every data key the erasure destroys besides the person's own.
    pub fn subjects(&self) -> impl Iterator<Item = String> + '_ {
        self.interactions
            .iter()
            .map(|id| crate::interaction::subject(id))
            .chain(self.addresses.iter().cloned())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Create(NewUser),
    Update(UserPatch),
    MergeCustomData(Map<String, Value>),
    /// The user merging into their own custom data (the Account API). `writable` holds the keys
    /// the tenant's custom data policy lets users write, as read at the edge: a change naming
    /// any other key is refused and recorded, never merged.
    MergeOwnCustomData {
        custom_data: Map<String, Value>,
        writable: BTreeSet<String>,
    },
    MergeProfile(Map<String, Value>),
    SetPassword(Password),
    /// A successful sign-in re-encodes an imported digest as argon2id.
    RehashPassword(Password),
    SetSuspended(bool),
    Delete,
    /// Erasure (GDPR art. 17): the user is deleted if still live, and their data key destroyed,
    /// with the keys of the traces the edge found.
    Erase(Traces),
    LinkIdentity {
        target: String,
        user_id: String,
        details: Option<Value>,
    },
    UnlinkIdentity {
        target: String,
    },
    AssignRoles {
        role_ids: Vec<String>,
    },
    ReplaceRoles {
        role_ids: Vec<String>,
    },
    RemoveRole {
        role_id: String,
    },
    AddPersonalAccessToken(NewPersonalAccessToken),
    RenamePersonalAccessToken {
        name: String,
        new_name: String,
    },
    DeletePersonalAccessToken {
        name: String,
    },
    AddMfaVerification(NewMfaVerification),
    DeleteMfaVerification {
        id: String,
    },
    /// A TOTP code of this time step was verified at the edge; it counts once.
    UseTotp {
        id: String,
        step: i64,
    },
    /// A backup code with this keyed hash was presented; it counts once.
    UseBackupCode {
        id: String,
        code_hash: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    #[serde(rename = "user.created")]
    Created(NewUser),
    #[serde(rename = "user.updated")]
    Updated(UserPatch),
    #[serde(rename = "user.custom_data_merged")]
    #[serde(rename_all = "camelCase")]
    CustomDataMerged {
        #[serde(default)]
        custom_data: Map<String, Value>,
    },
    /// A user tried to write custom data keys the policy keeps read-only for them (e.g. their
    /// own `role`). `attempted` is the whole change, sealed with the person's data.
    #[serde(rename = "user.custom_data_change_refused")]
    CustomDataChangeRefused {
        keys: Vec<String>,
        #[serde(default)]
        attempted: Map<String, Value>,
    },
    #[serde(rename = "user.profile_merged")]
    ProfileMerged {
        #[serde(default)]
        profile: Map<String, Value>,
    },
    #[serde(rename = "user.password_set")]
    PasswordSet(Password),
    #[serde(rename = "user.password_rehashed")]
    PasswordRehashed(Password),
    #[serde(rename = "user.suspended")]
    Suspended {},
    #[serde(rename = "user.reactivated")]
    Reactivated {},
    #[serde(rename = "user.deleted")]
    Deleted {},
    /// The user's data key was destroyed with this event: every personal field of every event
    /// sealed for them is unreadable from now on. So are the traces it names, sealed under
    /// subjects of their own (erasures recorded before traces existed decode to none).
    #[serde(rename = "user.erased")]
    Erased(Traces),
    #[serde(rename = "user.identity_linked")]
    #[serde(rename_all = "camelCase")]
    IdentityLinked {
        target: String,
        #[serde(default)]
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<Value>,
    },
    #[serde(rename = "user.identity_unlinked")]
    IdentityUnlinked { target: String },
    #[serde(rename = "user.roles_assigned")]
    #[serde(rename_all = "camelCase")]
    RolesAssigned { role_ids: Vec<String> },
    #[serde(rename = "user.role_removed")]
    #[serde(rename_all = "camelCase")]
    RoleRemoved { role_id: String },
    #[serde(rename = "user.personal_access_token_added")]
    PersonalAccessTokenAdded(NewPersonalAccessToken),
    #[serde(rename = "user.personal_access_token_renamed")]
    #[serde(rename_all = "camelCase")]
    PersonalAccessTokenRenamed { name: String, new_name: String },
    #[serde(rename = "user.personal_access_token_deleted")]
    #[serde(rename_all = "camelCase")]
    PersonalAccessTokenDeleted { name: String, vault_ref: String },
    #[serde(rename = "user.mfa_verification_added")]
    MfaVerificationAdded(NewMfaVerification),
    /// `vault_ref` is the TOTP secret's vault entry, retired with the factor.
    #[serde(rename = "user.mfa_verification_deleted")]
    #[serde(rename_all = "camelCase")]
    MfaVerificationDeleted {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vault_ref: Option<String>,
    },
    #[serde(rename = "user.totp_used")]
    TotpUsed { id: String, step: i64 },
    #[serde(rename = "user.backup_code_used")]
    #[serde(rename_all = "camelCase")]
    BackupCodeUsed { id: String, code_hash: String },
}

impl cqrs_es::DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::Created(_) => "user.created",
            UserEvent::Updated(_) => "user.updated",
            UserEvent::CustomDataMerged { .. } => "user.custom_data_merged",
            UserEvent::CustomDataChangeRefused { .. } => "user.custom_data_change_refused",
            UserEvent::ProfileMerged { .. } => "user.profile_merged",
            UserEvent::PasswordSet(_) => "user.password_set",
            UserEvent::PasswordRehashed(_) => "user.password_rehashed",
            UserEvent::Suspended {} => "user.suspended",
            UserEvent::Reactivated {} => "user.reactivated",
            UserEvent::Deleted {} => "user.deleted",
            UserEvent::Erased(_) => "user.erased",
            UserEvent::IdentityLinked { .. } => "user.identity_linked",
            UserEvent::IdentityUnlinked { .. } => "user.identity_unlinked",
            UserEvent::RolesAssigned { .. } => "user.roles_assigned",
            UserEvent::RoleRemoved { .. } => "user.role_removed",
            UserEvent::PersonalAccessTokenAdded(_) => "user.personal_access_token_added",
            UserEvent::PersonalAccessTokenRenamed { .. } => "user.personal_access_token_renamed",
            UserEvent::PersonalAccessTokenDeleted { .. } => "user.personal_access_token_deleted",
            UserEvent::MfaVerificationAdded(_) => "user.mfa_verification_added",
            UserEvent::MfaVerificationDeleted { .. } => "user.mfa_verification_deleted",
            UserEvent::TotpUsed { .. } => "user.totp_used",
            UserEvent::BackupCodeUsed { .. } => "user.backup_code_used",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            UserEvent::Created(_)
            | UserEvent::Updated(_)
            | UserEvent::CustomDataMerged { .. }
            | UserEvent::CustomDataChangeRefused { .. }
            | UserEvent::ProfileMerged { .. }
            | UserEvent::PasswordSet(_)
            | UserEvent::PasswordRehashed(_)
            | UserEvent::Suspended {}
            | UserEvent::Reactivated {}
            | UserEvent::Deleted {}
            | UserEvent::Erased(_)
            | UserEvent::IdentityLinked { .. }
            | UserEvent::IdentityUnlinked { .. }
            | UserEvent::RolesAssigned { .. }
            | UserEvent::RoleRemoved { .. }
            | UserEvent::PersonalAccessTokenAdded(_)
            | UserEvent::PersonalAccessTokenRenamed { .. }
            | UserEvent::PersonalAccessTokenDeleted { .. }
            | UserEvent::MfaVerificationAdded(_)
            | UserEvent::MfaVerificationDeleted { .. }
            | UserEvent::TotpUsed { .. }
            | UserEvent::BackupCodeUsed { .. } => "1",
        }
        .to_owned()
    }
}

/// Identifiers, names, profile, custom data, password digests and upstream identities are the
/// person's data; which roles they hold and when they were suspended are not.
const PROFILE_FIELDS: &[&str] = &[
    "username",
    "primaryEmail",
    "primaryPhone",
    "name",
    "avatar",
    "customData",
    "profile",
    "passwordDigest",
];

impl Event for UserEvent {
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            UserEvent::Created(_) | UserEvent::Updated(_) => PROFILE_FIELDS,
            UserEvent::CustomDataMerged { .. } => &["customData"],
            UserEvent::CustomDataChangeRefused { .. } => &["attempted"],
            UserEvent::ProfileMerged { .. } => &["profile"],
            UserEvent::PasswordSet(_) | UserEvent::PasswordRehashed(_) => &["passwordDigest"],
            UserEvent::IdentityLinked { .. } => &["userId", "details"],
            UserEvent::Suspended {}
            | UserEvent::Reactivated {}
            | UserEvent::Deleted {}
            | UserEvent::Erased(_)
            | UserEvent::IdentityUnlinked { .. }
            | UserEvent::RolesAssigned { .. }
            | UserEvent::RoleRemoved { .. }
            | UserEvent::PersonalAccessTokenAdded(_)
            | UserEvent::PersonalAccessTokenRenamed { .. }
            | UserEvent::PersonalAccessTokenDeleted { .. }
            | UserEvent::MfaVerificationAdded(_)
            | UserEvent::MfaVerificationDeleted { .. }
            | UserEvent::TotpUsed { .. }
            | UserEvent::BackupCodeUsed { .. } => &[],
        }
    }

    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            UserEvent::PersonalAccessTokenDeleted { vault_ref, .. } => vec![vault_ref.clone()],
            UserEvent::MfaVerificationDeleted { vault_ref, .. } => {
                vault_ref.iter().cloned().collect()
            }
            UserEvent::Created(_)
            | UserEvent::Updated(_)
            | UserEvent::CustomDataMerged { .. }
            | UserEvent::CustomDataChangeRefused { .. }
            | UserEvent::ProfileMerged { .. }
            | UserEvent::PasswordSet(_)
            | UserEvent::PasswordRehashed(_)
            | UserEvent::Suspended {}
            | UserEvent::Reactivated {}
            | UserEvent::Deleted {}
            | UserEvent::Erased(_)
            | UserEvent::IdentityLinked { .. }
            | UserEvent::IdentityUnlinked { .. }
            | UserEvent::RolesAssigned { .. }
            | UserEvent::RoleRemoved { .. }
            | UserEvent::PersonalAccessTokenAdded(_)
            | UserEvent::PersonalAccessTokenRenamed { .. }
            | UserEvent::MfaVerificationAdded(_)
            | UserEvent::TotpUsed { .. }
            | UserEvent::BackupCodeUsed { .. } => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the user does not exist")]
    NotFound,
    #[error("the user already exists")]
    AlreadyExists,
    #[error("the update changes nothing")]
    EmptyUpdate,
    #[error("the user has no identity from {target}")]
    IdentityNotFound { target: String },
    #[error("the role {role_id} is not assigned to this user")]
    RoleNotAssigned { role_id: String },
    #[error("a personal access token named {name:?} already exists")]
    TokenNameExists { name: String },
    #[error("no personal access token named {name:?}")]
    TokenNotFound { name: String },
    #[error(transparent)]
    Mfa(#[from] MfaError),
}

#[derive(Debug, Clone, Default)]
pub struct Live {
    suspended: bool,
    identities: BTreeSet<String>,
    roles: BTreeSet<String>,
    /// Token name → vault entry of its value.
    tokens: BTreeMap<String, String>,
    mfa: MfaVerifications,
}

#[derive(Debug, Clone, Default)]
pub enum User {
    #[default]
    New,
    Live(Live),
    Deleted,
    /// Deleted, and the data key destroyed.
    Erased,
}

impl Live {
    fn not_held(&self, role_ids: Vec<String>) -> Vec<String> {
        let mut seen = BTreeSet::new();
        role_ids
            .into_iter()
            .filter(|id| !self.roles.contains(id) && seen.insert(id.clone()))
            .collect()
    }

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        let events = match command {
            UserCommand::Create(_) => return Err(UserError::AlreadyExists),
            UserCommand::Update(patch) if patch == UserPatch::default() => {
                return Err(UserError::EmptyUpdate);
            }
            UserCommand::Update(patch) => vec![UserEvent::Updated(patch)],
            UserCommand::MergeCustomData(custom_data) => {
                vec![UserEvent::CustomDataMerged { custom_data }]
            }
            UserCommand::MergeOwnCustomData { custom_data, .. } if custom_data.is_empty() => {
                Vec::new()
            }
            UserCommand::MergeOwnCustomData {
                custom_data,
                writable,
            } => {
                let keys: Vec<String> = custom_data
                    .keys()
                    .filter(|key| !writable.contains(*key))
                    .cloned()
                    .collect();
                if keys.is_empty() {
                    vec![UserEvent::CustomDataMerged { custom_data }]
                } else {
                    vec![UserEvent::CustomDataChangeRefused {
                        keys,
                        attempted: custom_data,
                    }]
                }
            }
            UserCommand::MergeProfile(profile) => vec![UserEvent::ProfileMerged { profile }],
            UserCommand::SetPassword(password) => vec![UserEvent::PasswordSet(password)],
            UserCommand::RehashPassword(password) => vec![UserEvent::PasswordRehashed(password)],
            UserCommand::SetSuspended(suspend) if suspend == self.suspended => Vec::new(),
            UserCommand::SetSuspended(true) => vec![UserEvent::Suspended {}],
            UserCommand::SetSuspended(false) => vec![UserEvent::Reactivated {}],
            UserCommand::Delete | UserCommand::Erase(_) => {
                // Token values go with the user; nothing of them outlives it.
                let mut events: Vec<UserEvent> = self
                    .tokens
                    .iter()
                    .map(|(name, vault_ref)| UserEvent::PersonalAccessTokenDeleted {
                        name: name.clone(),
                        vault_ref: vault_ref.clone(),
                    })
                    .collect();
                // So do TOTP secrets.
                events.extend(self.mfa.vault_refs().into_iter().map(|(id, vault_ref)| {
                    UserEvent::MfaVerificationDeleted {
                        id,
                        vault_ref: Some(vault_ref),
                    }
                }));
                events.push(UserEvent::Deleted {});
                if let UserCommand::Erase(traces) = command {
                    events.push(UserEvent::Erased(traces));
                }
                events
            }
            UserCommand::LinkIdentity {
                target,
                user_id,
                details,
            } => vec![UserEvent::IdentityLinked {
                target,
                user_id,
                details,
            }],
            UserCommand::UnlinkIdentity { target } if self.identities.contains(&target) => {
                vec![UserEvent::IdentityUnlinked { target }]
            }
            UserCommand::UnlinkIdentity { target } => {
                return Err(UserError::IdentityNotFound { target });
            }
            UserCommand::AssignRoles { role_ids } => {
                let added = self.not_held(role_ids);
                if added.is_empty() {
                    Vec::new()
                } else {
                    vec![UserEvent::RolesAssigned { role_ids: added }]
                }
            }
            UserCommand::ReplaceRoles { role_ids } => {
                let wanted: BTreeSet<&String> = role_ids.iter().collect();
                let mut events: Vec<UserEvent> = self
                    .roles
                    .iter()
                    .filter(|held| !wanted.contains(held))
                    .map(|role_id| UserEvent::RoleRemoved {
                        role_id: role_id.clone(),
                    })
                    .collect();
                let added = self.not_held(role_ids);
                if !added.is_empty() {
                    events.push(UserEvent::RolesAssigned { role_ids: added });
                }
                events
            }
            UserCommand::RemoveRole { role_id } if self.roles.contains(&role_id) => {
                vec![UserEvent::RoleRemoved { role_id }]
            }
            UserCommand::RemoveRole { role_id } => {
                return Err(UserError::RoleNotAssigned { role_id });
            }
            UserCommand::AddPersonalAccessToken(token) if self.tokens.contains_key(&token.name) => {
                return Err(UserError::TokenNameExists { name: token.name });
            }
            UserCommand::AddPersonalAccessToken(token) => {
                vec![UserEvent::PersonalAccessTokenAdded(token)]
            }
            UserCommand::RenamePersonalAccessToken { name, .. }
                if !self.tokens.contains_key(&name) =>
            {
                return Err(UserError::TokenNotFound { name });
            }
            UserCommand::RenamePersonalAccessToken { name, new_name } if name == new_name => {
                Vec::new()
            }
            UserCommand::RenamePersonalAccessToken { new_name, .. }
                if self.tokens.contains_key(&new_name) =>
            {
                return Err(UserError::TokenNameExists { name: new_name });
            }
            UserCommand::RenamePersonalAccessToken { name, new_name } => {
                vec![UserEvent::PersonalAccessTokenRenamed { name, new_name }]
            }
            UserCommand::DeletePersonalAccessToken { name } => match self.tokens.get(&name) {
                Some(vault_ref) => vec![UserEvent::PersonalAccessTokenDeleted {
                    vault_ref: vault_ref.clone(),
                    name,
                }],
                None => return Err(UserError::TokenNotFound { name }),
            },
            UserCommand::AddMfaVerification(new) => {
                self.mfa.check_add(&new)?;
                vec![UserEvent::MfaVerificationAdded(new)]
            }
            UserCommand::DeleteMfaVerification { id } => {
                let vault_ref = self.mfa.check_delete(&id)?;
                vec![UserEvent::MfaVerificationDeleted { id, vault_ref }]
            }
            UserCommand::UseTotp { id, step } => {
                self.mfa.check_totp(&id, step)?;
                vec![UserEvent::TotpUsed { id, step }]
            }
            UserCommand::UseBackupCode { id, code_hash } => {
                self.mfa.check_backup_code(&id, &code_hash)?;
                vec![UserEvent::BackupCodeUsed { id, code_hash }]
            }
        };
        Ok(events)
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::Suspended {} => self.suspended = true,
            UserEvent::Reactivated {} => self.suspended = false,
            UserEvent::IdentityLinked { target, .. } => {
                self.identities.insert(target.clone());
            }
            UserEvent::IdentityUnlinked { target } => {
                self.identities.remove(target);
            }
            UserEvent::RolesAssigned { role_ids } => self.roles.extend(role_ids.iter().cloned()),
            UserEvent::RoleRemoved { role_id } => {
                self.roles.remove(role_id);
            }
            UserEvent::PersonalAccessTokenAdded(token) => {
                self.tokens
                    .insert(token.name.clone(), token.vault_ref.clone());
            }
            UserEvent::PersonalAccessTokenRenamed { name, new_name } => {
                if let Some(vault_ref) = self.tokens.remove(name) {
                    self.tokens.insert(new_name.clone(), vault_ref);
                }
            }
            UserEvent::PersonalAccessTokenDeleted { name, .. } => {
                self.tokens.remove(name);
            }
            UserEvent::MfaVerificationAdded(new) => self.mfa.added(new),
            UserEvent::MfaVerificationDeleted { id, .. } => self.mfa.deleted(id),
            UserEvent::TotpUsed { id, step } => self.mfa.totp_used(id, *step),
            UserEvent::BackupCodeUsed { id, code_hash } => self.mfa.backup_code_used(id, code_hash),
            UserEvent::Created(_)
            | UserEvent::Updated(_)
            | UserEvent::CustomDataMerged { .. }
            | UserEvent::CustomDataChangeRefused { .. }
            | UserEvent::ProfileMerged { .. }
            | UserEvent::PasswordSet(_)
            | UserEvent::PasswordRehashed(_)
            | UserEvent::Deleted {}
            | UserEvent::Erased(_) => {}
        }
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match (self, command) {
            (User::New, UserCommand::Create(user)) => Ok(vec![UserEvent::Created(user)]),
            // A deleted user can still be erased (a request that came after the deletion).
            (User::Deleted, UserCommand::Erase(traces)) => Ok(vec![UserEvent::Erased(traces)]),
            (User::New | User::Deleted | User::Erased, _) => Err(UserError::NotFound),
            (User::Live(live), command) => live.decide(command),
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match (self, event) {
            (this @ User::New, UserEvent::Created(user)) => {
                *this = User::Live(Live {
                    roles: user.role_ids.iter().cloned().collect(),
                    ..Live::default()
                });
            }
            (this @ User::Live(_), UserEvent::Deleted {}) => *this = User::Deleted,
            (this, UserEvent::Erased(_)) => *this = User::Erased,
            (User::Live(live), event) => live.apply(event),
            (User::New | User::Deleted | User::Erased, _) => {}
        }
    }

    /// The stream is the person. An erasure carries nothing personal, and the request's IP and
    /// user agent are the eraser's: they stay readable with it, not sealed under the key it
    /// destroys.
    fn data_subject(&self, stream_id: &str, events: &[UserEvent]) -> Option<String> {
        if erasure(events).is_some() {
            return None;
        }
        Some(stream_id.to_owned())
    }

    /// The person's own key, and the keys of the traces the erasure names.
    fn erased_subjects(&self, stream_id: &str, events: &[UserEvent]) -> Vec<String> {
        match erasure(events) {
            Some(traces) => std::iter::once(stream_id.to_owned())
                .chain(traces.subjects())
                .collect(),
            None => Vec::new(),
        }
    }
}

fn erasure(events: &[UserEvent]) -> Option<&Traces> {
    events.iter().find_map(|e| {
        if let UserEvent::Erased(traces) = e {
            Some(traces)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    #[test]
    fn erasing_deletes_a_live_user_then_shreds_and_only_once() {
        let traces = Traces {
            interactions: vec!["i1".into()],
            addresses: vec!["email:h#1".into()],
            one_time_tokens: vec!["t1".into()],
            hook_deliveries: vec!["h1:7".into()],
        };
        Given::<User>::with(())
            .given(vec![created()])
            .when(UserCommand::Erase(traces.clone()))
            .then_expect_events(vec![
                UserEvent::Deleted {},
                UserEvent::Erased(traces.clone()),
            ]);
        Given::<User>::with(())
            .given(vec![created(), UserEvent::Deleted {}])
            .when(UserCommand::Erase(Traces::default()))
            .then_expect_events(vec![UserEvent::Erased(Traces::default())]);
        Given::<User>::with(())
            .given(vec![
                created(),
                UserEvent::Deleted {},
                UserEvent::Erased(Traces::default()),
            ])
            .when(UserCommand::Erase(Traces::default()))
            .then_expect_error(UserError::NotFound);
        let user = User::Live(Live::default());
        let events = [UserEvent::Deleted {}, UserEvent::Erased(traces)];
        assert_eq!(user.data_subject("u1", &events), None);
        // The person's key, the interaction's and the address's; the token and the delivery
        // are sealed under the address's and the person's.
        assert_eq!(
            user.erased_subjects("u1", &events),
            vec!["u1", "interaction:i1", "email:h#1"]
        );
        assert!(user.erased_subjects("u1", &events[..1]).is_empty());
    }

    /// An erasure recorded before it named traces still decodes, to none.
    #[test]
    fn an_erasure_without_traces_decodes_to_none() {
        let decoded: UserEvent = crate::decode("user.erased", &serde_json::json!({})).unwrap();
        assert_eq!(decoded, UserEvent::Erased(Traces::default()));
    }

    /// After erasure the personal fields are missing from every stored payload: each event
    /// must still decode (to blanks), or no fold could replay the log.
    #[test]
    fn every_event_decodes_without_its_personal_fields() {
        let events = vec![
            created(),
            UserEvent::Updated(UserPatch {
                name: Patch::Value("x".into()),
                ..UserPatch::default()
            }),
            UserEvent::CustomDataMerged {
                custom_data: Map::new(),
            },
            UserEvent::CustomDataChangeRefused {
                keys: vec!["role".into()],
                attempted: Map::new(),
            },
            UserEvent::ProfileMerged {
                profile: Map::new(),
            },
            UserEvent::PasswordSet(Password {
                password_digest: "d".into(),
                password_algorithm: PasswordAlgorithm::Argon2id,
            }),
            UserEvent::IdentityLinked {
                target: "github".into(),
                user_id: "gh1".into(),
                details: Some(serde_json::json!({"email": "a@b.c"})),
            },
        ];
        crate::spec::assert_decodes_without_personal_fields(&events);
    }

    fn created() -> UserEvent {
        UserEvent::Created(NewUser {
            id: "u1".into(),
            username: Some("ada".into()),
            primary_email: Some("ada@example.com".into()),
            primary_phone: None,
            name: Some("Ada".into()),
            avatar: None,
            custom_data: Map::new(),
            profile: Map::new(),
            password_digest: None,
            password_algorithm: None,
            role_ids: vec!["default-role".into()],
        })
    }

    fn token(name: &str) -> NewPersonalAccessToken {
        NewPersonalAccessToken {
            name: name.into(),
            lookup_hash: format!("h-{name}"),
            vault_ref: format!("v-{name}"),
            expires_at: None,
        }
    }

    #[test]
    fn suspending_twice_records_it_once() {
        Given::<User>::with(())
            .given(vec![created(), UserEvent::Suspended {}])
            .when(UserCommand::SetSuspended(true))
            .then_expect_events(vec![]);
        Given::<User>::with(())
            .given(vec![created(), UserEvent::Suspended {}])
            .when(UserCommand::SetSuspended(false))
            .then_expect_events(vec![UserEvent::Reactivated {}]);
    }

    #[test]
    fn default_roles_are_held_from_creation() {
        Given::<User>::with(())
            .given(vec![created()])
            .when(UserCommand::AssignRoles {
                role_ids: vec!["default-role".into(), "extra".into()],
            })
            .then_expect_events(vec![UserEvent::RolesAssigned {
                role_ids: vec!["extra".into()],
            }]);
    }

    #[test]
    fn removing_an_identity_the_user_lacks_is_refused() {
        Given::<User>::with(())
            .given(vec![created()])
            .when(UserCommand::UnlinkIdentity {
                target: "github".into(),
            })
            .then_expect_error(UserError::IdentityNotFound {
                target: "github".into(),
            });
    }

    #[test]
    fn token_names_are_unique_and_deletion_retires_the_value() {
        Given::<User>::with(())
            .given(vec![
                created(),
                UserEvent::PersonalAccessTokenAdded(token("ci")),
            ])
            .when(UserCommand::AddPersonalAccessToken(token("ci")))
            .then_expect_error(UserError::TokenNameExists { name: "ci".into() });
        let events = Given::<User>::with(())
            .given(vec![
                created(),
                UserEvent::PersonalAccessTokenAdded(token("ci")),
            ])
            .when(UserCommand::Delete)
            .inspect_result()
            .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].retired_vault_refs(), vec!["v-ci".to_owned()]);
        assert_eq!(events[1], UserEvent::Deleted {});
    }

    #[test]
    fn a_totp_code_counts_once_and_its_secret_goes_with_the_user() {
        let totp = NewMfaVerification::Totp {
            id: "m1".into(),
            vault_ref: "mfa-v".into(),
        };
        let given = vec![created(), UserEvent::MfaVerificationAdded(totp)];
        Given::<User>::with(())
            .given(given.clone())
            .when(UserCommand::UseTotp {
                id: "m1".into(),
                step: 7,
            })
            .then_expect_events(vec![UserEvent::TotpUsed {
                id: "m1".into(),
                step: 7,
            }]);
        let mut used = given.clone();
        used.push(UserEvent::TotpUsed {
            id: "m1".into(),
            step: 7,
        });
        Given::<User>::with(())
            .given(used)
            .when(UserCommand::UseTotp {
                id: "m1".into(),
                step: 7,
            })
            .then_expect_error(UserError::Mfa(MfaError::TotpCodeReused));
        let events = Given::<User>::with(())
            .given(given)
            .when(UserCommand::Delete)
            .inspect_result()
            .unwrap();
        assert_eq!(events[0].retired_vault_refs(), vec!["mfa-v".to_owned()]);
    }

    #[test]
    fn a_deleted_user_is_gone() {
        Given::<User>::with(())
            .given(vec![created(), UserEvent::Deleted {}])
            .when(UserCommand::SetSuspended(true))
            .then_expect_error(UserError::NotFound);
    }

    #[test]
    fn personal_fields_cover_every_identifier() {
        let event = created();
        let encoded = crate::encode(&event).unwrap();
        for field in ["username", "primaryEmail", "name"] {
            assert!(encoded.payload.get(field).is_some());
            assert!(event.personal_fields().contains(&field));
        }
        assert!(!event.personal_fields().contains(&"roleIds"));
        assert_eq!(User::default().data_subject("u1", &[]), Some("u1".into()));
    }

    #[test]
    fn users_write_only_the_keys_the_policy_declares_and_refusals_are_recorded() {
        let writable = BTreeSet::from(["nickname".to_owned()]);
        let change = |key: &str| Map::from_iter([(key.to_owned(), Value::from("admin"))]);
        Given::<User>::with(())
            .given(vec![created()])
            .when(UserCommand::MergeOwnCustomData {
                custom_data: change("nickname"),
                writable: writable.clone(),
            })
            .then_expect_events(vec![UserEvent::CustomDataMerged {
                custom_data: change("nickname"),
            }]);
        let mut both = change("role");
        both.insert("nickname".into(), Value::from("ada"));
        Given::<User>::with(())
            .given(vec![created()])
            .when(UserCommand::MergeOwnCustomData {
                custom_data: both.clone(),
                writable,
            })
            .then_expect_events(vec![UserEvent::CustomDataChangeRefused {
                keys: vec!["role".into()],
                attempted: both,
            }]);
        let refused = UserEvent::CustomDataChangeRefused {
            keys: vec!["role".into()],
            attempted: change("role"),
        };
        assert_eq!(refused.personal_fields(), &["attempted"]);
    }
}
