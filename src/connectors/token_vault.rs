//! The token vault of social identities (`enableTokenStorage`): sealing a provider's token set
//! for a user, erasing stored sets, and what of a set may be shown. The `token_set` aggregate
//! records the facts; the tokens stay in the vault.

use domain::token_set::{ErasureReason, TokenMetadata, TokenSet, TokenSetCommand, stream_id};
use domain::user::{User, UserCommand};
use projections::ProjectionError;
use projections::token_sets::{self, TokenSetRow};
use serde_json::{Value, json};

use super::social;
use crate::crypto::{CryptoError, ids};
use crate::store::Unit;

pub fn metadata(tokens: &social::TokenSet) -> TokenMetadata {
    TokenMetadata {
        token_type: tokens.token_type.clone(),
        scope: tokens.scope.clone(),
        expires_at: tokens.expires_at,
        has_refresh_token: tokens.refresh_token.is_some(),
    }
}

/// A new vault entry for `user_id`'s tokens from `target`, sealed with `unit`.
fn sealed(
    unit: Unit,
    user_id: &str,
    target: &str,
    tokens: &social::TokenSet,
) -> Result<(Unit, String), CryptoError> {
    let vault_ref = format!("token_set/{user_id}/{target}/{}", ids::standard_id()?);
    let plaintext = serde_json::to_vec(tokens).map_err(|_| CryptoError::Random)?;
    Ok((unit.seal(vault_ref.clone(), plaintext), vault_ref))
}

/// Stores a sign-in's (or a link's) token set, replacing the one stored before.
pub fn store(
    unit: Unit,
    user_id: &str,
    target: &str,
    connector_id: &str,
    tokens: &social::TokenSet,
) -> Result<Unit, CryptoError> {
    let (unit, vault_ref) = sealed(unit, user_id, target, tokens)?;
    Ok(unit.then::<TokenSet>(
        stream_id(user_id, target),
        TokenSetCommand::Store {
            user_id: user_id.to_owned(),
            target: target.to_owned(),
            connector_id: connector_id.to_owned(),
            vault_ref,
            metadata: metadata(tokens),
        },
    ))
}

/// Records a refreshed set in place of the stored `row`.
pub fn refreshed(
    unit: Unit,
    row: &TokenSetRow,
    tokens: &social::TokenSet,
) -> Result<Unit, CryptoError> {
    let (unit, vault_ref) = sealed(unit, &row.user_id, &row.target, tokens)?;
    Ok(unit.then::<TokenSet>(
        row.stream_id.clone(),
        TokenSetCommand::Refresh {
            replaces: row.vault_ref.clone(),
            vault_ref,
            metadata: metadata(tokens),
        },
    ))
}

/// Erases the set `user_id` holds from `target`, if any.
pub fn erase(unit: Unit, user_id: &str, target: &str, reason: ErasureReason) -> Unit {
    unit.then::<TokenSet>(
        stream_id(user_id, target),
        TokenSetCommand::Erase { reason },
    )
}

/// Unlinks `user_id`'s identity from `target`; the identity's stored tokens go with it.
pub fn unlink(user_id: &str, target: &str) -> Unit {
    let unit = Unit::new().then::<User>(
        user_id.to_owned(),
        UserCommand::UnlinkIdentity {
            target: target.to_owned(),
        },
    );
    erase(unit, user_id, target, ErasureReason::IdentityUnlinked)
}

/// Erases every set `user_id` holds.
pub async fn erase_for_user(
    db: &impl deadpool_postgres::GenericClient,
    mut unit: Unit,
    user_id: &str,
    reason: ErasureReason,
) -> Result<Unit, ProjectionError> {
    for row in token_sets::of_user(db, user_id).await? {
        unit = erase(unit, &row.user_id, &row.target, reason);
    }
    Ok(unit)
}

/// Erases every set held from `target`.
pub async fn erase_for_target(
    db: &impl deadpool_postgres::GenericClient,
    mut unit: Unit,
    target: &str,
    reason: ErasureReason,
) -> Result<Unit, ProjectionError> {
    for row in token_sets::of_target(db, target).await? {
        unit = erase(unit, &row.user_id, &row.target, reason);
    }
    Ok(unit)
}

/// What of a stored set may be shown (Logto's desensitized secret): everything but the tokens.
pub fn desensitized(row: &TokenSetRow) -> Value {
    json!({
        "id": row.stream_id,
        "userId": row.user_id,
        "type": "FederatedTokenSet",
        "connectorId": row.connector_id,
        "target": row.target,
        "metadata": {
            "tokenType": row.token_type,
            "scope": row.scope,
            "expiresAt": row.expires_at,
            "hasRefreshToken": row.has_refresh_token,
        },
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
    })
}
