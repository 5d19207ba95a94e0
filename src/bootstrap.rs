//! What a fresh installation needs before anyone can call it, ensured at every start and safe
//! to race between nodes: a signing key, Logto's seed of the ID token's extended claims, Logto's
//! Management API resource with its `all` scope and M2M role, and a machine-to-machine app
//! holding that role (Keycloak's bootstrap admin).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use domain::application::{
    AppType, Application, ApplicationCommand, ApplicationError, ApplicationPatch,
    DEFAULT_SECRET_NAME, NewApplication, NewSecret,
};
use domain::id_token_config::{self, IdTokenConfig, IdTokenConfigCommand, IdTokenConfigs};
use domain::resource::{
    MANAGEMENT_API_INDICATOR, MANAGEMENT_API_RESOURCE_ID, MANAGEMENT_API_ROLE_ID,
    MANAGEMENT_API_ROLE_NAME, MANAGEMENT_API_SCOPE, MANAGEMENT_API_SCOPE_ID, NewResource, NewScope,
    Resource, ResourceCommand,
};
use domain::role::{NewRole, Role, RoleCommand, RoleType};
use domain::signing_key::{self, NewSigningKey, SigningKeyCommand, SigningKeys};
use domain::{Metadata, Rejection};
use serde_json::json;
use time::OffsetDateTime;

use crate::app::AppError;
use crate::crypto::{ids, signing};
use crate::http::oidc::SECRET_HASH_KIND;
use crate::store::{EventStore, StoreError, Unit};

/// The admin console's OIDC client, seeded at every start.
pub const CONSOLE_APP_ID: &str = "idledger-console";
/// Holders of this user role may sign in to the console.
pub const CONSOLE_ADMIN_ROLE_ID: &str = "idledger-console-admin";
const CONSOLE_ADMIN_ROLE_NAME: &str = "idledger Console administrator";

/// Marks the bootstrap app in its custom data, so a restart recognises it.
const BOOTSTRAP_MARK: &str = "idledgerBootstrap";
const CREDENTIALS_FILE: &str = "bootstrap-credentials";

/// A rejection that means "already there" is success for an idempotent seed.
fn already_done(result: Result<crate::store::Committed, StoreError>) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(StoreError::Rejected(
            Rejection::Resource(domain::resource::ResourceError::AlreadyExists)
            | Rejection::Resource(domain::resource::ResourceError::ScopeNameExists { .. })
            | Rejection::Role(domain::role::RoleError::AlreadyExists)
            | Rejection::Application(ApplicationError::AlreadyExists),
        )) => Ok(()),
        Err(other) => Err(other),
    }
}

pub struct BootstrapSettings<'a> {
    /// The public base URL: the console's redirect URIs hang off it.
    pub endpoint: &'a str,
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub data_dir: &'a Path,
}

pub async fn run(store: &EventStore, settings: BootstrapSettings<'_>) -> Result<(), AppError> {
    let metadata = Metadata::system(OffsetDateTime::now_utc());
    ensure_signing_key(store, &metadata).await?;
    ensure_id_token_config(store, &metadata).await?;
    ensure_management_api(store, &metadata).await?;
    ensure_console(store, &metadata, settings.endpoint).await?;
    ensure_bootstrap_app(store, &metadata, settings).await
}

pub fn new_signing_key() -> Result<(NewSigningKey, Vec<u8>), AppError> {
    let key = signing::generate_es384()?;
    let vault_ref = format!("signing-key-{}", key.kid);
    Ok((
        NewSigningKey {
            kid: key.kid,
            algorithm: key.algorithm.to_owned(),
            public_jwk: key.public_jwk,
            vault_ref,
        },
        key.private_pkcs8,
    ))
}

async fn ensure_signing_key(store: &EventStore, metadata: &Metadata) -> Result<(), AppError> {
    let client = store.pool().get().await.map_err(StoreError::from)?;
    if !projections::signing_keys::all(&client)
        .await
        .map_err(StoreError::from)?
        .is_empty()
    {
        return Ok(());
    }
    drop(client);
    let (key, private) = new_signing_key()?;
    let unit = Unit::new()
        .seal(key.vault_ref.clone(), private)
        .then::<SigningKeys>(signing_key::STREAM_ID, SigningKeyCommand::Initialize(key));
    store.run(unit, metadata).await?;
    Ok(())
}

/// Logto's seed for the ID token's extended claims; the aggregate records it only on a log
/// that never had a setting, so an administrator's choice survives every restart.
async fn ensure_id_token_config(store: &EventStore, metadata: &Metadata) -> Result<(), AppError> {
    store
        .execute::<IdTokenConfigs>(
            id_token_config::STREAM_ID,
            IdTokenConfigCommand::Seed(IdTokenConfig::logto_default()),
            metadata,
        )
        .await?;
    Ok(())
}

async fn ensure_management_api(store: &EventStore, metadata: &Metadata) -> Result<(), AppError> {
    already_done(
        store
            .execute::<Resource>(
                MANAGEMENT_API_RESOURCE_ID,
                ResourceCommand::Create(NewResource {
                    id: MANAGEMENT_API_RESOURCE_ID.to_owned(),
                    name: "Logto Management API".to_owned(),
                    indicator: MANAGEMENT_API_INDICATOR.to_owned(),
                    access_token_ttl: 3600,
                }),
                metadata,
            )
            .await,
    )?;
    already_done(
        store
            .execute::<Resource>(
                MANAGEMENT_API_RESOURCE_ID,
                ResourceCommand::AddScope(NewScope {
                    id: MANAGEMENT_API_SCOPE_ID.to_owned(),
                    name: MANAGEMENT_API_SCOPE.to_owned(),
                    description: Some(
                        "Default scope for Management API, allows all permissions.".to_owned(),
                    ),
                }),
                metadata,
            )
            .await,
    )?;
    already_done(
        store
            .execute::<Role>(
                MANAGEMENT_API_ROLE_ID,
                RoleCommand::Create(NewRole {
                    id: MANAGEMENT_API_ROLE_ID.to_owned(),
                    name: MANAGEMENT_API_ROLE_NAME.to_owned(),
                    description: "Access the Logto Management API.".to_owned(),
                    role_type: RoleType::MachineToMachine,
                    is_default: false,
                    scope_ids: vec![MANAGEMENT_API_SCOPE_ID.to_owned()],
                }),
                metadata,
            )
            .await,
    )?;
    Ok(())
}

/// The admin console's first-party public client (PKCE) and the user role whose holders may
/// sign in to it: the role grants the Management API's `all` scope, which is what the console's
/// calls need. The redirect URIs follow `ENDPOINT`, so a start with a new endpoint updates them.
async fn ensure_console(
    store: &EventStore,
    metadata: &Metadata,
    endpoint: &str,
) -> Result<(), AppError> {
    already_done(
        store
            .execute::<Role>(
                CONSOLE_ADMIN_ROLE_ID,
                RoleCommand::Create(NewRole {
                    id: CONSOLE_ADMIN_ROLE_ID.to_owned(),
                    name: CONSOLE_ADMIN_ROLE_NAME.to_owned(),
                    description:
                        "Signs in to the admin console at /console (Management API access)."
                            .to_owned(),
                    role_type: RoleType::User,
                    is_default: false,
                    scope_ids: vec![MANAGEMENT_API_SCOPE_ID.to_owned()],
                }),
                metadata,
            )
            .await,
    )?;
    let metadata_json = console_client_metadata(endpoint);
    already_done(
        store
            .execute::<Application>(
                CONSOLE_APP_ID,
                ApplicationCommand::Create {
                    application: NewApplication {
                        id: CONSOLE_APP_ID.to_owned(),
                        name: "idledger Console".to_owned(),
                        description: Some("The admin console at /console.".to_owned()),
                        app_type: AppType::Spa,
                        oidc_client_metadata: metadata_json.clone(),
                        custom_client_metadata: json!({}),
                        custom_data: json!({}),
                        is_third_party: false,
                    },
                    default_secret: None,
                },
                metadata,
            )
            .await,
    )?;
    let client = store.pool().get().await.map_err(StoreError::from)?;
    let current = projections::applications::by_id(&client, CONSOLE_APP_ID)
        .await
        .map_err(StoreError::from)?;
    drop(client);
    let stale = |app: &projections::applications::ApplicationRow| {
        ["redirectUris", "postLogoutRedirectUris"]
            .iter()
            .any(|key| app.oidc_client_metadata[key] != metadata_json[key])
    };
    if current.as_ref().is_some_and(stale) {
        store
            .execute::<Application>(
                CONSOLE_APP_ID,
                ApplicationCommand::Update(ApplicationPatch {
                    oidc_client_metadata: Some(metadata_json),
                    ..ApplicationPatch::default()
                }),
                metadata,
            )
            .await?;
    }
    Ok(())
}

pub fn console_client_metadata(endpoint: &str) -> serde_json::Value {
    json!({
        "redirectUris": [format!("{endpoint}/console/callback")],
        "postLogoutRedirectUris": [format!("{endpoint}/console")],
    })
}

/// A secret ready for the log: its keyed hash, a vault reference, and the value to seal.
pub fn new_secret(
    store: &EventStore,
    name: &str,
    value: &str,
    expires_at: Option<i64>,
) -> Result<NewSecret, AppError> {
    Ok(NewSecret {
        name: name.to_owned(),
        lookup_hash: store.keyring().lookup_hash(SECRET_HASH_KIND, value),
        vault_ref: format!("app-secret-{}", ids::standard_id()?),
        expires_at,
    })
}

async fn ensure_bootstrap_app(
    store: &EventStore,
    metadata: &Metadata,
    settings: BootstrapSettings<'_>,
) -> Result<(), AppError> {
    let client = store.pool().get().await.map_err(StoreError::from)?;
    let existing = client
        .query_opt(
            "SELECT id FROM applications WHERE custom_data ? $1 LIMIT 1",
            &[&BOOTSTRAP_MARK],
        )
        .await
        .map_err(StoreError::from)?
        .map(|row| row.try_get::<_, String>(0))
        .transpose()
        .map_err(StoreError::from)?;
    drop(client);
    let chosen_id = settings.client_id.map(str::to_owned);
    if existing.is_some() && (chosen_id.is_none() || chosen_id == existing) {
        return Ok(());
    }
    let generated = settings.client_secret.is_none();
    let client_id = match chosen_id {
        Some(id) => id,
        None => ids::standard_id()?,
    };
    let client_secret = match settings.client_secret {
        Some(secret) => secret.to_owned(),
        None => ids::secret()?,
    };
    let secret = new_secret(store, DEFAULT_SECRET_NAME, &client_secret, None)?;
    let unit = Unit::new()
        .seal(secret.vault_ref.clone(), client_secret.as_bytes().to_vec())
        .then::<Application>(
            &client_id,
            ApplicationCommand::Create {
                application: NewApplication {
                    id: client_id.clone(),
                    name: "Bootstrap admin (idledger)".to_owned(),
                    description: Some(
                        "Machine-to-machine app with Management API access, created at first start."
                            .to_owned(),
                    ),
                    app_type: AppType::MachineToMachine,
                    oidc_client_metadata: json!({"redirectUris": [], "postLogoutRedirectUris": []}),
                    custom_client_metadata: json!({}),
                    custom_data: json!({ BOOTSTRAP_MARK: true }),
                    is_third_party: false,
                },
                default_secret: Some(secret),
            },
        )
        .then::<Application>(
            &client_id,
            ApplicationCommand::AssignRoles {
                role_ids: vec![MANAGEMENT_API_ROLE_ID.to_owned()],
            },
        );
    already_done(store.run(unit, metadata).await)?;
    if generated {
        announce(settings.data_dir, &client_id, &client_secret)?;
    }
    Ok(())
}

/// Prints generated credentials once and keeps them in a 0600 file in the data folder.
fn announce(data_dir: &Path, client_id: &str, client_secret: &str) -> Result<(), AppError> {
    fs::create_dir_all(data_dir)
        .map_err(|e| AppError::Io(format!("creating {}: {e}", data_dir.display())))?;
    let path = data_dir.join(CREDENTIALS_FILE);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| AppError::Io(format!("writing {}: {e}", path.display())))?;
    writeln!(
        file,
        "IDLEDGER_BOOTSTRAP_CLIENT_ID={client_id}\nIDLEDGER_BOOTSTRAP_CLIENT_SECRET={client_secret}"
    )
    .map_err(|e| AppError::Io(format!("writing {}: {e}", path.display())))?;
    eprintln!(
        "\nidledger: created the bootstrap machine-to-machine app (Management API access).\n  \
         client id:     {client_id}\n  client secret: {client_secret}\n  \
         (shown once; also saved to {})\n",
        path.display()
    );
    tracing::warn!(path = %path.display(), client_id, "bootstrap credentials generated");
    Ok(())
}
