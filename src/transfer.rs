//! Moving users between instances: the import planner and applier shared by App ID's
//! `POST /management/v4/{tenant}/users/import` and replay's `import-users`, and the audit
//! records of exports and imports. The wire formats (App ID's JSON, idledger's JSON Lines) are
//! the callers'; here a user is a `Record` whose roles, organizations and organization roles
//! are named, because ids differ between instances (users keep theirs, and their identities'
//! provider-side ids).
//!
//! An import is decided before anything is appended. It is turned down whole when it names a
//! role, organization or organization role this instance lacks. Otherwise each user is created,
//! skipped (already here exactly as imported, which makes a re-run change nothing) or refused
//! with a reason (here with other data, or an identifier or identity another user holds, or
//! invalid); then the creations are appended in units of `CHUNK` users, the last unit also
//! recording the run. An import of up to `CHUNK` users is therefore one unit of work; a larger
//! one interrupted by a failure keeps the units before it, and running it again finishes it.
//!
//! Second factors travel in idledger's format: the TOTP secret is re-sealed under this
//! instance's key; backup codes are keyed hashes and come along only when this instance hashes
//! with the same key (`backup_code_key_id`), else the plan names the users left without them.
//! "Already here exactly as imported" compares the identities' provider ids, not the provider's
//! user info, which every sign-in with the provider refreshes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use deadpool_postgres::GenericClient;
use domain::mfa::{MfaFactorKind, NewMfaVerification};
use domain::organization::{Organization, OrganizationCommand};
use domain::user::{NewUser, Password, User, UserCommand};
use domain::user_transfer::{
    Exported, ImportRefusal, Imported, RefusedUser, TransferFormat, UserTransfer,
    UserTransferCommand,
};
use domain::{Actor, Metadata};
use projections::transfer::{self, Claimed, TravellingUser};
use projections::users::MfaRow;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::crypto::{Keyring, ids, password, totp};
use crate::http::management::users::mfa::{backup_code_key_id, totp_vault_ref};
use crate::store::{EventStore, StoreError, Unit};

/// Users created per unit of work.
pub const CHUNK: usize = 200;

/// Claims looked up per query while planning.
const LOOKUP_BATCH: usize = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The provider's id of the person (App ID's identity `id`).
    pub user_id: String,
    /// The provider's raw user info.
    pub details: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Membership {
    /// Matched when no organization here has the record's organization id.
    pub name: String,
    pub roles: BTreeSet<String>,
}

/// A second factor as it travels (idledger's format only).
#[derive(Debug, Clone, PartialEq)]
pub enum SecondFactor {
    /// The base32 secret, taken out of the vault: an export holds credentials.
    Totp { id: String, secret: String },
    /// Keyed hashes of the codes not used yet, and the id of the key that hashed them
    /// (`backup_code_key_id`): they verify only where that key is the same, so elsewhere they
    /// stay behind and the user generates new codes.
    BackupCodes {
        id: String,
        unused_hashes: Vec<String>,
        key_id: String,
    },
}

impl SecondFactor {
    fn kind(&self) -> MfaFactorKind {
        match self {
            SecondFactor::Totp { .. } => MfaFactorKind::Totp,
            SecondFactor::BackupCodes { .. } => MfaFactorKind::BackupCode,
        }
    }

    fn id(&self) -> &str {
        match self {
            SecondFactor::Totp { id, .. } | SecondFactor::BackupCodes { id, .. } => id,
        }
    }

    /// Whether an instance whose backup code key has id `key_id` can take the factor.
    fn fits(&self, key_id: &str) -> bool {
        match self {
            SecondFactor::Totp { .. } => true,
            SecondFactor::BackupCodes { key_id: theirs, .. } => theirs == key_id,
        }
    }
}

fn factor_kind(row: &MfaRow) -> Option<MfaFactorKind> {
    serde_json::from_value(Value::String(row.kind.clone())).ok()
}

fn unused_hashes(row: &MfaRow) -> Vec<String> {
    serde_json::from_value(row.unused_code_hashes.clone()).unwrap_or_default()
}

/// The kinds of second factor a user holds here that an import would compare: a TOTP, and
/// backup codes while some are unused (a spent set is not exported).
fn held_kinds(rows: &[MfaRow]) -> BTreeSet<&'static str> {
    rows.iter()
        .filter_map(|row| match factor_kind(row)? {
            MfaFactorKind::Totp => Some(MfaFactorKind::Totp.as_str()),
            MfaFactorKind::BackupCode => {
                (!unused_hashes(row).is_empty()).then_some(MfaFactorKind::BackupCode.as_str())
            }
        })
        .collect()
}

/// A user's second factors with their TOTP secrets out of the vault, for idledger's export.
pub async fn second_factors(
    store: &EventStore,
    rows: &[MfaRow],
) -> Result<Vec<SecondFactor>, StoreError> {
    let key_id = backup_code_key_id(store.keyring());
    let mut factors = Vec::new();
    for row in rows {
        let broken = |what: &str| StoreError::Internal(format!("MFA factor {}: {what}", row.id));
        match factor_kind(row).ok_or_else(|| broken("unknown kind"))? {
            MfaFactorKind::Totp => {
                let vault_ref = row
                    .vault_ref
                    .as_deref()
                    .ok_or_else(|| broken("no vault entry"))?;
                let secret = store
                    .open_vault(vault_ref)
                    .await?
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| broken("secret missing from the vault"))?;
                factors.push(SecondFactor::Totp {
                    id: row.id.clone(),
                    secret,
                });
            }
            MfaFactorKind::BackupCode => {
                let unused = unused_hashes(row);
                if !unused.is_empty() {
                    factors.push(SecondFactor::BackupCodes {
                        id: row.id.clone(),
                        unused_hashes: unused,
                        key_id: key_id.clone(),
                    });
                }
            }
        }
    }
    Ok(factors)
}

/// One user as it travels: everything either format can carry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub id: String,
    pub username: Option<String>,
    pub primary_email: Option<String>,
    pub primary_phone: Option<String>,
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub custom_data: Map<String, Value>,
    pub profile: Map<String, Value>,
    /// Provider (Logto's identity target) → identity.
    pub identities: BTreeMap<String, Identity>,
    pub password: Option<Password>,
    /// Read from the vault by `second_factors`, not by `from_travelling`.
    pub mfa: Vec<SecondFactor>,
    pub suspended: bool,
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Organization id (in the exporting instance) → membership.
    pub organizations: BTreeMap<String, Membership>,
}

fn as_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        _ => Map::new(),
    }
}

impl Record {
    /// The user as this instance holds it.
    pub fn from_travelling(travelling: TravellingUser) -> Record {
        let user = travelling.user;
        let identities = as_object(user.identities)
            .into_iter()
            .filter_map(|(target, identity)| {
                let user_id = identity.get("userId")?.as_str()?.to_owned();
                let details = identity.get("details").filter(|d| !d.is_null()).cloned();
                Some((target, Identity { user_id, details }))
            })
            .collect();
        let password = match (user.password_digest, user.password_algorithm) {
            (Some(digest), Some(algorithm)) => serde_json::from_value(Value::String(algorithm))
                .ok()
                .map(|password_algorithm| Password {
                    password_digest: digest,
                    password_algorithm,
                }),
            _ => None,
        };
        Record {
            id: user.id,
            username: user.username,
            primary_email: user.primary_email,
            primary_phone: user.primary_phone,
            name: user.name,
            avatar: user.avatar,
            custom_data: as_object(user.custom_data),
            profile: as_object(user.profile),
            identities,
            password,
            mfa: Vec::new(),
            suspended: user.is_suspended,
            roles: travelling.roles.into_iter().collect(),
            organizations: travelling
                .organizations
                .into_iter()
                .map(|m| {
                    (
                        m.id,
                        Membership {
                            name: m.name,
                            roles: m.roles.into_iter().collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// What `format` carries of the user, for telling an identical user from a changed one.
    /// Organizations are keyed by their id here (`resolved`), and second factors are the kinds
    /// the user holds or would hold here, as the import would make them.
    fn comparable(
        &self,
        format: TransferFormat,
        organizations: BTreeMap<String, BTreeSet<String>>,
        second_factors: BTreeSet<&'static str>,
    ) -> Comparable {
        let full = format == TransferFormat::Idledger;
        Comparable {
            name: self.name.clone(),
            primary_email: self.primary_email.clone(),
            avatar: self.avatar.clone(),
            custom_data: self.custom_data.clone(),
            // The provider's user info is refreshed at every sign-in with it: which provider
            // account the identity is, is what an import decides on.
            identities: self
                .identities
                .iter()
                .map(|(target, identity)| (target.clone(), identity.user_id.clone()))
                .collect(),
            roles: self.roles.clone(),
            username: self.username.clone().filter(|_| full),
            primary_phone: self.primary_phone.clone().filter(|_| full),
            profile: if full {
                self.profile.clone()
            } else {
                Map::new()
            },
            // A digest imported from elsewhere is re-encoded at the first sign-in here: the same
            // password, another digest. Whether there is one is what can be compared.
            has_password: full && self.password.is_some(),
            suspended: full && self.suspended,
            organizations: if full { organizations } else { BTreeMap::new() },
            second_factors: if full {
                second_factors
            } else {
                BTreeSet::new()
            },
        }
    }
}

#[derive(Debug, PartialEq)]
struct Comparable {
    name: Option<String>,
    primary_email: Option<String>,
    avatar: Option<String>,
    custom_data: Map<String, Value>,
    /// Provider → the provider's id of the person.
    identities: BTreeMap<String, String>,
    roles: BTreeSet<String>,
    username: Option<String>,
    primary_phone: Option<String>,
    profile: Map<String, Value>,
    has_password: bool,
    suspended: bool,
    organizations: BTreeMap<String, BTreeSet<String>>,
    second_factors: BTreeSet<&'static str>,
}

/// What an import names that this instance lacks; any of it turns the import down whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    pub roles: Vec<String>,
    /// `name (id)` of each organization matched neither by id nor by a unique name.
    pub organizations: Vec<String>,
    pub organization_roles: Vec<String>,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.organizations.is_empty() && self.organization_roles.is_empty()
    }
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (noun, names) in [
            ("roles", &self.roles),
            ("organizations", &self.organizations),
            ("organization roles", &self.organization_roles),
        ] {
            if !names.is_empty() {
                parts.push(format!("{noun} {}", names.join(", ")));
            }
        }
        write!(
            f,
            "The import names {} that do not exist here; create them with the same names \
             first. Nothing was imported.",
            parts.join("; ")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Missing(Missing),
    #[error(
        "{created} user(s) were created before the import failed; run it again to finish \
         (users already imported are skipped): {source}"
    )]
    Interrupted { created: usize, source: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<projections::ProjectionError> for TransferError {
    fn from(error: projections::ProjectionError) -> TransferError {
        TransferError::Store(error.into())
    }
}

impl From<tokio_postgres::Error> for TransferError {
    fn from(error: tokio_postgres::Error) -> TransferError {
        TransferError::Store(error.into())
    }
}

/// A user the import will not create, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub id: String,
    /// Stable, for programs: `exists_with_different_data`, `email_in_use`, ...
    pub code: &'static str,
    /// For people; names fields, never their values.
    pub reason: String,
}

struct Creation {
    record: Record,
    role_ids: Vec<String>,
    /// Organization id here → organization role ids.
    organizations: Vec<(String, Vec<String>)>,
    /// The record's second factors this instance can take, TOTP first.
    second_factors: Vec<SecondFactor>,
}

/// What an import will do, decided before anything is appended.
pub struct Plan {
    format: TransferFormat,
    creations: Vec<Creation>,
    pub skipped: Vec<String>,
    pub refused: Vec<Refused>,
    /// Users created without the backup codes they had: hashed with another key.
    pub backup_codes_left: Vec<String>,
    /// This instance's backup code key (`backup_code_key_id`).
    key_id: String,
}

impl Plan {
    pub fn to_create(&self) -> usize {
        self.creations.len()
    }
}

/// The outcome of an import.
#[derive(Debug, Clone)]
pub struct Summary {
    pub transfer_id: String,
    pub created: Vec<String>,
    pub skipped: Vec<String>,
    pub refused: Vec<Refused>,
    pub backup_codes_left: Vec<String>,
}

fn refused(id: &str, code: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        id: id.to_owned(),
        code,
        reason: reason.into(),
    }
}

/// Ids end up in URLs and stream ids: App ID's UUIDs and Logto's ids both fit.
fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The first rule of the read models' the record breaks, if any (checked here so that one
/// user's bad value refuses that user instead of failing a whole unit).
fn invalid(record: &Record) -> Option<Refused> {
    let id = &record.id;
    if !valid_id(id) {
        return Some(refused(
            id,
            "invalid_id",
            "The id must be 1 to 128 letters, digits, '-', '_' or '.'.",
        ));
    }
    let limits = [
        ("username", &record.username, 128),
        ("primaryEmail", &record.primary_email, 128),
        ("primaryPhone", &record.primary_phone, 128),
        ("name", &record.name, 128),
        ("avatar", &record.avatar, 2048),
    ];
    for (field, value, max) in limits {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Some(refused(
                id,
                "value_too_long",
                format!("{field} is longer than {max} characters."),
            ));
        }
    }
    if record
        .identities
        .iter()
        .any(|(target, identity)| target.is_empty() || identity.user_id.is_empty())
    {
        return Some(refused(
            id,
            "invalid_identity",
            "Every identity needs a provider and the provider's id.",
        ));
    }
    if let Some(digest) = &record.password
        && password::validate(digest).is_err()
    {
        return Some(refused(
            id,
            "invalid_password_digest",
            format!(
                "The password digest is not a valid {} digest.",
                digest.password_algorithm.as_str()
            ),
        ));
    }
    let mut kinds = BTreeSet::new();
    for factor in &record.mfa {
        if !kinds.insert(factor.kind().as_str()) || !valid_id(factor.id()) {
            return Some(refused(
                id,
                "invalid_second_factor",
                "A user has at most one TOTP and one set of backup codes, each with a valid id.",
            ));
        }
        if let SecondFactor::Totp { secret, .. } = factor
            && !totp::valid_secret(secret)
        {
            return Some(refused(
                id,
                "invalid_second_factor",
                "The TOTP secret is not a valid base32 secret.",
            ));
        }
    }
    if kinds.contains(MfaFactorKind::BackupCode.as_str())
        && !kinds.contains(MfaFactorKind::Totp.as_str())
    {
        return Some(refused(
            id,
            "invalid_second_factor",
            "Backup codes cannot be the only second factor.",
        ));
    }
    None
}

/// A record's claims on unique values, as the read models compare them.
struct Claims {
    email: Option<String>,
    username: Option<String>,
    phone: Option<String>,
    identities: Vec<(String, String)>,
}

impl Claims {
    fn of(record: &Record) -> Claims {
        Claims {
            email: record.primary_email.as_ref().map(|e| e.to_lowercase()),
            username: record.username.clone(),
            phone: record.primary_phone.clone(),
            identities: record
                .identities
                .iter()
                .map(|(target, identity)| (target.clone(), identity.user_id.clone()))
                .collect(),
        }
    }
}

/// The ids among `ids` of users deleted here: their streams exist, so a new user cannot take
/// the id.
async fn deleted_ids(
    db: &impl GenericClient,
    ids: &[String],
) -> Result<HashSet<String>, TransferError> {
    let rows = db
        .query(
            "SELECT DISTINCT e.stream_id FROM events e \
             WHERE e.stream_type = 'user' AND e.stream_id = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e.stream_id)",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|row| row.try_get::<_, String>(0).map_err(TransferError::from))
        .collect()
}

/// Role, organization and organization role names resolved to ids here.
struct References {
    roles: HashMap<String, String>,
    /// Organization id in the record → id here.
    organizations: HashMap<String, String>,
    organization_roles: HashMap<String, String>,
}

async fn resolve(db: &impl GenericClient, records: &[Record]) -> Result<References, TransferError> {
    let role_names: BTreeSet<String> = records.iter().flat_map(|r| r.roles.clone()).collect();
    let organizations: BTreeMap<String, String> = records
        .iter()
        .flat_map(|r| r.organizations.iter())
        .map(|(id, m)| (id.clone(), m.name.clone()))
        .collect();
    let organization_role_names: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r.organizations.values())
        .flat_map(|m| m.roles.clone())
        .collect();
    let role_names: Vec<String> = role_names.into_iter().collect();
    let roles: HashMap<String, String> = transfer::user_roles_named(db, &role_names)
        .await?
        .into_iter()
        .map(|role| (role.name, role.id))
        .collect();
    let here = transfer::organizations(
        db,
        &organizations.keys().cloned().collect::<Vec<_>>(),
        &organizations.values().cloned().collect::<Vec<_>>(),
    )
    .await?;
    let organization_role_names: Vec<String> = organization_role_names.into_iter().collect();
    let organization_roles: HashMap<String, String> =
        transfer::organization_roles_named(db, &organization_role_names)
            .await?
            .into_iter()
            .map(|role| (role.name, role.id))
            .collect();
    let mut missing = Missing {
        roles: role_names
            .iter()
            .filter(|name| !roles.contains_key(*name))
            .cloned()
            .collect(),
        organizations: Vec::new(),
        organization_roles: organization_role_names
            .iter()
            .filter(|name| !organization_roles.contains_key(*name))
            .cloned()
            .collect(),
    };
    let mut resolved = HashMap::new();
    for (id, name) in &organizations {
        let by_id = here.iter().find(|o| &o.id == id);
        let mut by_name = here.iter().filter(|o| &o.name == name);
        let matched = match (by_id, by_name.next(), by_name.next()) {
            (Some(organization), _, _) | (None, Some(organization), None) => organization,
            // Names are not unique; two namesakes here are a guess this import will not make.
            (None, None, _) | (None, Some(_), Some(_)) => {
                missing.organizations.push(format!("{name} ({id})"));
                continue;
            }
        };
        resolved.insert(id.clone(), matched.id.clone());
    }
    if !missing.is_empty() {
        return Err(TransferError::Missing(missing));
    }
    Ok(References {
        roles,
        organizations: resolved,
        organization_roles,
    })
}

/// Decides what importing `records` would do, appending nothing.
/// `keyring` is this instance's: whether backup code hashes can move here depends on it.
pub async fn plan(
    db: &impl GenericClient,
    keyring: &Keyring,
    records: Vec<Record>,
    format: TransferFormat,
) -> Result<Plan, TransferError> {
    let references = resolve(db, &records).await?;
    let mut plan = Plan {
        format,
        creations: Vec::new(),
        skipped: Vec::new(),
        refused: Vec::new(),
        backup_codes_left: Vec::new(),
        key_id: backup_code_key_id(keyring),
    };
    // Within the import itself: each id, identifier and identity once.
    let mut candidates = Vec::new();
    let mut seen = HashSet::new();
    for record in records {
        if let Some(refusal) = invalid(&record) {
            plan.refused.push(refusal);
            continue;
        }
        let claims = Claims::of(&record);
        let mut keys = vec![format!("id\0{}", record.id)];
        keys.extend(claims.email.iter().map(|e| format!("email\0{e}")));
        keys.extend(claims.username.iter().map(|u| format!("username\0{u}")));
        keys.extend(claims.phone.iter().map(|p| format!("phone\0{p}")));
        keys.extend(
            claims
                .identities
                .iter()
                .map(|(t, i)| format!("identity\0{t}\0{i}")),
        );
        if keys.iter().any(|key| seen.contains(key)) {
            plan.refused.push(refused(
                &record.id,
                "duplicate_in_import",
                "An earlier user of this import has the same id, email, username, phone or \
                 identity.",
            ));
            continue;
        }
        seen.extend(keys);
        candidates.push((record, claims));
    }
    for batch in candidates.chunks(LOOKUP_BATCH) {
        decide_batch(db, batch, &references, &mut plan).await?;
    }
    Ok(plan)
}

async fn decide_batch(
    db: &impl GenericClient,
    batch: &[(Record, Claims)],
    references: &References,
    plan: &mut Plan,
) -> Result<(), TransferError> {
    let claimed = Claimed {
        ids: batch.iter().map(|(r, _)| r.id.clone()).collect(),
        emails: batch.iter().filter_map(|(_, c)| c.email.clone()).collect(),
        usernames: batch
            .iter()
            .filter_map(|(_, c)| c.username.clone())
            .collect(),
        phones: batch.iter().filter_map(|(_, c)| c.phone.clone()).collect(),
    };
    let holders = transfer::holders(db, &claimed).await?;
    let (targets, identity_ids): (Vec<String>, Vec<String>) = batch
        .iter()
        .flat_map(|(_, c)| c.identities.iter().cloned())
        .unzip();
    let identity_holders = transfer::identity_holders(db, &targets, &identity_ids).await?;
    let deleted = deleted_ids(db, &claimed.ids).await?;
    for (record, claims) in batch {
        let id = record.id.as_str();
        let resolved_organizations: BTreeMap<String, BTreeSet<String>> = record
            .organizations
            .iter()
            .filter_map(|(source, m)| {
                references
                    .organizations
                    .get(source)
                    .map(|here| (here.clone(), m.roles.clone()))
            })
            .collect();
        let second_factors: Vec<SecondFactor> = record
            .mfa
            .iter()
            .filter(|factor| factor.fits(&plan.key_id))
            .cloned()
            .collect();
        if let Some(existing) = holders.iter().find(|h| h.user.id == id) {
            let held = held_kinds(&existing.mfa);
            let existing = Record::from_travelling(existing.clone());
            let theirs = existing.comparable(plan.format, organizations_of(&existing), held);
            let kinds = second_factors.iter().map(|f| f.kind().as_str()).collect();
            if theirs == record.comparable(plan.format, resolved_organizations, kinds) {
                plan.skipped.push(record.id.clone());
            } else {
                plan.refused.push(refused(
                    id,
                    "exists_with_different_data",
                    "A user with this id exists here with other data; it was left unchanged.",
                ));
            }
            continue;
        }
        if deleted.contains(id) {
            plan.refused.push(refused(
                id,
                "id_of_deleted_user",
                "A user with this id was deleted here; ids are never reused.",
            ));
            continue;
        }
        let others = |matches: &dyn Fn(&TravellingUser) -> bool| {
            holders.iter().any(|h| h.user.id != id && matches(h))
        };
        let conflict = if claims.email.as_ref().is_some_and(|email| {
            others(&|h| {
                h.user.primary_email.as_ref().map(|e| e.to_lowercase()) == Some(email.clone())
            })
        }) {
            Some(("email_in_use", "primaryEmail"))
        } else if claims
            .username
            .as_ref()
            .is_some_and(|username| others(&|h| h.user.username.as_ref() == Some(username)))
        {
            Some(("username_in_use", "username"))
        } else if claims
            .phone
            .as_ref()
            .is_some_and(|phone| others(&|h| h.user.primary_phone.as_ref() == Some(phone)))
        {
            Some(("phone_in_use", "primaryPhone"))
        } else if claims.identities.iter().any(|(target, identity_id)| {
            identity_holders.iter().any(|held| {
                &held.target == target && &held.identity_id == identity_id && held.user_id != id
            })
        }) {
            Some(("identity_in_use", "identities"))
        } else {
            None
        };
        if let Some((code, field)) = conflict {
            plan.refused.push(refused(
                id,
                code,
                format!("Another user here holds this {field}."),
            ));
            continue;
        }
        if second_factors.len() < record.mfa.len() {
            plan.backup_codes_left.push(record.id.clone());
        }
        let mut second_factors = second_factors;
        // Backup codes are only accepted beside a TOTP already there.
        second_factors.sort_by_key(|factor| factor.kind() != MfaFactorKind::Totp);
        plan.creations.push(Creation {
            second_factors,
            record: record.clone(),
            role_ids: record
                .roles
                .iter()
                .filter_map(|name| references.roles.get(name).cloned())
                .collect(),
            organizations: record
                .organizations
                .iter()
                .filter_map(|(source, m)| {
                    let here = references.organizations.get(source)?;
                    let roles = m
                        .roles
                        .iter()
                        .filter_map(|name| references.organization_roles.get(name).cloned())
                        .collect();
                    Some((here.clone(), roles))
                })
                .collect(),
        });
    }
    Ok(())
}

fn organizations_of(record: &Record) -> BTreeMap<String, BTreeSet<String>> {
    record
        .organizations
        .iter()
        .map(|(id, m)| (id.clone(), m.roles.clone()))
        .collect()
}

/// The steps creating one chunk of users, with their identities, suspension and memberships.
fn creation_unit(chunk: &[Creation]) -> Unit {
    let mut unit = Unit::new();
    let mut members: BTreeMap<&str, Vec<(&str, &[String])>> = BTreeMap::new();
    for creation in chunk {
        let record = &creation.record;
        unit = unit.then::<User>(
            &record.id,
            UserCommand::Create(NewUser {
                id: record.id.clone(),
                username: record.username.clone(),
                primary_email: record.primary_email.clone(),
                primary_phone: record.primary_phone.clone(),
                name: record.name.clone(),
                avatar: record.avatar.clone(),
                custom_data: record.custom_data.clone(),
                profile: record.profile.clone(),
                password_digest: record.password.as_ref().map(|p| p.password_digest.clone()),
                password_algorithm: record.password.as_ref().map(|p| p.password_algorithm),
                role_ids: creation.role_ids.clone(),
            }),
        );
        for (target, identity) in &record.identities {
            unit = unit.then::<User>(
                &record.id,
                UserCommand::LinkIdentity {
                    target: target.clone(),
                    user_id: identity.user_id.clone(),
                    details: identity.details.clone(),
                },
            );
        }
        for factor in &creation.second_factors {
            let new = match factor {
                SecondFactor::Totp { id, secret } => {
                    let vault_ref = totp_vault_ref(id);
                    unit = unit.seal(vault_ref.clone(), secret.clone().into_bytes());
                    NewMfaVerification::Totp {
                        id: id.clone(),
                        vault_ref,
                    }
                }
                SecondFactor::BackupCodes {
                    id, unused_hashes, ..
                } => NewMfaVerification::BackupCode {
                    id: id.clone(),
                    code_hashes: unused_hashes.clone(),
                },
            };
            unit = unit.then::<User>(&record.id, UserCommand::AddMfaVerification(new));
        }
        if record.suspended {
            unit = unit.then::<User>(&record.id, UserCommand::SetSuspended(true));
        }
        for (organization_id, role_ids) in &creation.organizations {
            members
                .entry(organization_id.as_str())
                .or_default()
                .push((record.id.as_str(), role_ids.as_slice()));
        }
    }
    for (organization_id, users) in members {
        unit = unit.then::<Organization>(
            organization_id,
            OrganizationCommand::AddMembers {
                user_ids: users.iter().map(|(id, _)| (*id).to_owned()).collect(),
            },
        );
        for (user_id, role_ids) in users.into_iter().filter(|(_, r)| !r.is_empty()) {
            unit = unit.then::<Organization>(
                organization_id,
                OrganizationCommand::AssignMemberRoles {
                    user_id: user_id.to_owned(),
                    organization_role_ids: role_ids.to_vec(),
                },
            );
        }
    }
    unit
}

fn new_transfer_id() -> Result<String, StoreError> {
    ids::standard_id().map_err(|e| StoreError::Internal(e.to_string()))
}

/// Appends what `plan` decided, as `metadata`'s actor; `progress(done, total)` after each unit.
pub async fn apply(
    store: &EventStore,
    plan: Plan,
    metadata: &Metadata,
    mut progress: impl FnMut(usize, usize),
) -> Result<Summary, TransferError> {
    let transfer_id = new_transfer_id()?;
    let total = plan.creations.len();
    let record = UserTransferCommand::RecordImport(Imported {
        format: plan.format,
        created: u64::try_from(total).unwrap_or(u64::MAX),
        skipped: u64::try_from(plan.skipped.len()).unwrap_or(u64::MAX),
        refused: plan
            .refused
            .iter()
            .map(|r| RefusedUser {
                id: r.id.clone(),
                code: r.code.to_owned(),
            })
            .collect(),
    });
    let chunks: Vec<&[Creation]> = plan.creations.chunks(CHUNK).collect();
    let last = chunks.len().saturating_sub(1);
    let mut done = 0;
    // With nothing to create, the record of the run is the whole unit.
    let mut units: Vec<(Unit, usize)> = if chunks.is_empty() {
        vec![(Unit::new(), 0)]
    } else {
        chunks
            .iter()
            .map(|chunk| (creation_unit(chunk), chunk.len()))
            .collect()
    };
    if let Some((unit, _)) = units.get_mut(last) {
        *unit = std::mem::take(unit).then_fresh::<UserTransfer>(&transfer_id, record.clone());
    }
    for (unit, size) in units {
        store.run(unit, metadata).await.map_err(|source| {
            if done == 0 {
                TransferError::Store(source)
            } else {
                TransferError::Interrupted {
                    created: done,
                    source,
                }
            }
        })?;
        done += size;
        progress(done, total);
    }
    Ok(Summary {
        transfer_id,
        created: plan.creations.into_iter().map(|c| c.record.id).collect(),
        skipped: plan.skipped,
        refused: plan.refused,
        backup_codes_left: plan.backup_codes_left,
    })
}

/// Records that an import was turned down whole, and why.
pub async fn record_refusal(
    store: &EventStore,
    format: TransferFormat,
    users: usize,
    missing: &Missing,
    metadata: &Metadata,
) -> Result<(), StoreError> {
    let refusal = ImportRefusal {
        format,
        users: u64::try_from(users).unwrap_or(u64::MAX),
        missing_roles: missing.roles.clone(),
        missing_organizations: missing.organizations.clone(),
        missing_organization_roles: missing.organization_roles.clone(),
    };
    store
        .run(
            Unit::new().then_fresh::<UserTransfer>(
                new_transfer_id()?,
                UserTransferCommand::RecordRefusedImport(refusal),
            ),
            metadata,
        )
        .await?;
    Ok(())
}

/// Records that `count` users are being handed out; returns the run's id.
pub async fn record_export(
    store: &EventStore,
    exported: Exported,
    metadata: &Metadata,
) -> Result<String, StoreError> {
    let transfer_id = new_transfer_id()?;
    store
        .run(
            Unit::new().then_fresh::<UserTransfer>(
                &transfer_id,
                UserTransferCommand::RecordExport(exported),
            ),
            metadata,
        )
        .await?;
    Ok(transfer_id)
}

/// The actor and context of a transfer run from the command line: the operator's name as they
/// give it (the CLI has the database's keys, so it cannot authenticate anyone more strongly).
pub fn operator_metadata(operator: &str) -> Metadata {
    Metadata {
        actor: Actor::Admin(format!("replay:{operator}")),
        ip: None,
        user_agent: Some(format!("idledger-replay/{}", env!("CARGO_PKG_VERSION"))),
        request_id: None,
        occurred_at: OffsetDateTime::now_utc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            primary_email: Some("Ada@Example.com".into()),
            ..Record::default()
        }
    }

    #[test]
    fn ids_and_values_are_checked_against_the_read_models_rules() {
        assert_eq!(
            invalid(&record("7ae804f3-0ed3-45f0-bc6b-1c6af868e6d6")),
            None
        );
        assert_eq!(invalid(&record("a/b")).map(|r| r.code), Some("invalid_id"));
        let long = Record {
            name: Some("n".repeat(129)),
            ..record("u1")
        };
        assert_eq!(invalid(&long).map(|r| r.code), Some("value_too_long"));
        let bad_digest = Record {
            password: Some(Password {
                password_digest: "nope".into(),
                password_algorithm: domain::user::PasswordAlgorithm::Argon2id,
            }),
            ..record("u1")
        };
        assert_eq!(
            invalid(&bad_digest).map(|r| r.code),
            Some("invalid_password_digest")
        );
    }

    #[test]
    fn app_id_compares_only_what_app_id_carries() {
        let ours = Record {
            username: Some("ada".into()),
            suspended: true,
            ..record("u1")
        };
        let theirs = record("u1");
        let totp = BTreeSet::from([MfaFactorKind::Totp.as_str()]);
        assert_eq!(
            ours.comparable(TransferFormat::AppId, BTreeMap::new(), totp.clone()),
            theirs.comparable(TransferFormat::AppId, BTreeMap::new(), BTreeSet::new())
        );
        assert_ne!(
            ours.comparable(TransferFormat::Idledger, BTreeMap::new(), BTreeSet::new()),
            theirs.comparable(TransferFormat::Idledger, BTreeMap::new(), BTreeSet::new())
        );
        assert_ne!(
            theirs.comparable(TransferFormat::Idledger, BTreeMap::new(), totp),
            theirs.comparable(TransferFormat::Idledger, BTreeMap::new(), BTreeSet::new())
        );
    }

    #[test]
    fn second_factors_follow_logtos_rules_and_backup_codes_need_their_key() {
        let totp = SecondFactor::Totp {
            id: "t1".into(),
            secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
        };
        let codes = SecondFactor::BackupCodes {
            id: "b1".into(),
            unused_hashes: vec!["h".into()],
            key_id: "k1".into(),
        };
        let with = |mfa: Vec<SecondFactor>| Record {
            mfa,
            ..record("u1")
        };
        assert_eq!(invalid(&with(vec![totp.clone(), codes.clone()])), None);
        let code_of = |mfa| invalid(&with(mfa)).map(|r| r.code);
        assert_eq!(code_of(vec![codes.clone()]), Some("invalid_second_factor"));
        assert_eq!(
            code_of(vec![totp.clone(), totp.clone()]),
            Some("invalid_second_factor")
        );
        let bad_secret = SecondFactor::Totp {
            id: "t1".into(),
            secret: "not base32!".into(),
        };
        assert_eq!(code_of(vec![bad_secret]), Some("invalid_second_factor"));
        assert!(totp.fits("k2"));
        assert!(codes.fits("k1"));
        assert!(!codes.fits("k2"));
    }

    #[test]
    fn missing_references_are_named() {
        let missing = Missing {
            roles: vec!["admin".into(), "auditor".into()],
            organizations: Vec::new(),
            organization_roles: vec!["owner".into()],
        };
        assert_eq!(
            missing.to_string(),
            "The import names roles admin, auditor; organization roles owner that do not exist \
             here; create them with the same names first. Nothing was imported."
        );
    }
}
