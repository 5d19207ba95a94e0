//! `/api/users/:id/mfa-verifications` (logto-compat §2.2): a user's second factors, added and
//! removed by an administrator. A TOTP secret is shown once, with its QR code, and then lives
//! sealed in the vault; backup codes are shown once and kept as keyed hashes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use domain::mfa::NewMfaVerification;
use domain::user::{User, UserCommand};
use projections::users::{MfaRow, UserRow};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::find;
use crate::app::AppState;
use crate::crypto::{ids, totp};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};
use crate::store::Unit;

/// Keyed-hash domain of backup codes.
const BACKUP_CODE_HASH_KIND: &str = "mfa backup code";
/// Pixels per QR module, and the quiet zone around the code, in modules.
const QR_SCALE: usize = 4;
const QR_QUIET: usize = 4;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_verifications, add_verification))
        .routes(routes!(delete_verification))
}

/// The vault entry of a TOTP secret.
pub fn totp_vault_ref(verification_id: &str) -> String {
    format!("mfa-totp-{verification_id}")
}

/// A backup code as the user's factors keep it: a keyed hash, bound to the user.
pub fn backup_code_hash(state: &AppState, user_id: &str, code: &str) -> String {
    state.store.keyring().lookup_hash(
        BACKUP_CODE_HASH_KIND,
        &format!("{user_id}\n{}", totp::normalize_backup_code(code)),
    )
}

/// Names the key backup codes are hashed with, without revealing it: two instances whose ids
/// agree hash codes alike, so a user's unused code hashes can move between them
/// (`crate::transfer`). The input has no newline, so it is never a code's (`<user id>\n<code>`).
pub fn backup_code_key_id(keyring: &crate::crypto::Keyring) -> String {
    keyring.lookup_hash(BACKUP_CODE_HASH_KIND, "key id")
}

/// Logto's `getUserDisplayName`, the account name authenticator apps show.
pub fn display_name(user: &UserRow) -> String {
    user.username
        .clone()
        .or_else(|| user.primary_email.clone())
        .or_else(|| user.primary_phone.clone())
        .or_else(|| user.name.clone())
        .unwrap_or_else(|| "Unnamed User".to_owned())
}

/// The otpauth URI of `secret` for `user` as a QR code, a PNG data URL (Logto's
/// `secretQrCode`). The issuer is this server's host name, as Logto uses its own.
pub fn qr_code(state: &AppState, user: &UserRow, secret: &str) -> Result<String, ApiError> {
    let issuer = url::Url::parse(&state.endpoint)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| "idledger".to_owned());
    qr_data_url(&totp::key_uri(&issuer, &display_name(user), secret))
}

/// A QR code of `text` as a PNG data URL: black modules on white, with the quiet zone.
pub fn qr_data_url(text: &str) -> Result<String, ApiError> {
    let failed = |error: String| {
        tracing::error!(%error, "QR code not drawn");
        ApiError::internal()
    };
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| failed(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QR_QUIET) * QR_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = (index % modules + QR_QUIET, index / modules + QR_QUIET);
        for dy in 0..QR_SCALE {
            let row = (y * QR_SCALE + dy) * side;
            for dx in 0..QR_SCALE {
                if let Some(pixel) = pixels.get_mut(row + x * QR_SCALE + dx) {
                    *pixel = 0;
                }
            }
        }
    }
    let mut png = Vec::new();
    {
        let side = u32::try_from(side).map_err(|e| failed(e.to_string()))?;
        let mut encoder = png::Encoder::new(&mut png, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| failed(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| failed(e.to_string()))?;
    }
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

fn iso(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
}

/// One item of Logto's `userMfaVerificationResponseGuard`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaVerificationResponse {
    pub id: String,
    /// ISO 8601, as Logto keeps these in JSON.
    pub created_at: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// Backup codes not used yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remain_codes: Option<usize>,
}

impl From<MfaRow> for MfaVerificationResponse {
    fn from(row: MfaRow) -> MfaVerificationResponse {
        MfaVerificationResponse {
            remain_codes: (row.kind == "BackupCode")
                .then(|| row.unused_code_hashes.as_array().map_or(0, Vec::len)),
            id: row.id,
            created_at: iso(row.created_at),
            kind: row.kind,
            last_used_at: row.last_used_at.and_then(iso),
        }
    }
}

/// A user's second factors.
#[utoipa::path(get, path = "/api/users/{id}/mfa-verifications", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 200, body = Vec<MfaVerificationResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_verifications(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<MfaVerificationResponse>>, ApiError> {
    find(&state, &id).await?;
    let db = state.store.pool().get().await?;
    let rows = projections::users::mfa_verifications(&db, &id).await?;
    Ok(axum::Json(rows.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum AddVerification {
    /// A TOTP factor; `secret` (base32) to import one, else one is generated.
    Totp { secret: Option<String> },
    /// Ten backup codes; `codes` to import them (ten hex strings of ten), else generated.
    BackupCode { codes: Option<Vec<String>> },
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum AddedVerification {
    #[serde(rename_all = "camelCase")]
    Totp {
        secret: String,
        /// The otpauth URI as a QR code, a PNG data URL.
        secret_qr_code: String,
    },
    BackupCode {
        codes: Vec<String>,
    },
}

fn unprocessable(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.to_owned())
}

/// Add a TOTP factor or backup codes to a user.
#[utoipa::path(post, path = "/api/users/{id}/mfa-verifications", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = AddVerification,
    responses((status = 200, body = AddedVerification), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn add_verification(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<AddVerification>,
) -> Result<axum::Json<AddedVerification>, ApiError> {
    let user = find(&state, &id).await?;
    let verification_id = ids::standard_id().map_err(|_| ApiError::internal())?;
    let (unit, answer) = match body {
        AddVerification::Totp { secret } => {
            let secret = match secret {
                Some(secret) if !totp::valid_secret(&secret) => {
                    return Err(unprocessable(
                        "user.totp_secret_invalid",
                        "Invalid TOTP secret supplied.",
                    ));
                }
                Some(secret) => secret,
                None => totp::new_secret().map_err(|_| ApiError::internal())?,
            };
            let vault_ref = totp_vault_ref(&verification_id);
            let unit = Unit::new()
                .seal(vault_ref.clone(), secret.clone().into_bytes())
                .then::<User>(
                    &id,
                    UserCommand::AddMfaVerification(NewMfaVerification::Totp {
                        id: verification_id,
                        vault_ref,
                    }),
                );
            let secret_qr_code = qr_code(&state, &user, &secret)?;
            (
                unit,
                AddedVerification::Totp {
                    secret,
                    secret_qr_code,
                },
            )
        }
        AddVerification::BackupCode { codes } => {
            let codes = match codes {
                Some(codes) if !totp::valid_backup_codes(&codes) => {
                    return Err(unprocessable(
                        "user.wrong_backup_code_format",
                        "Backup code format is invalid.",
                    ));
                }
                Some(codes) => codes,
                None => totp::new_backup_codes().map_err(|_| ApiError::internal())?,
            };
            let code_hashes = codes
                .iter()
                .map(|code| backup_code_hash(&state, &id, code))
                .collect();
            let unit = Unit::new().then::<User>(
                &id,
                UserCommand::AddMfaVerification(NewMfaVerification::BackupCode {
                    id: verification_id,
                    code_hashes,
                }),
            );
            (unit, AddedVerification::BackupCode { codes })
        }
    };
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    Ok(axum::Json(answer))
}

/// Remove one of a user's second factors.
#[utoipa::path(delete, path = "/api/users/{id}/mfa-verifications/{verificationId}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("verificationId" = String, Path, description = "The factor's id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_verification(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, verification_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    find(&state, &id).await?;
    state
        .store
        .execute::<User>(
            &id,
            UserCommand::DeleteMfaVerification {
                id: verification_id,
            },
            &context.metadata(caller.actor),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The TOTP secret of a user's factor, from the vault.
pub async fn totp_secret(state: &AppState, row: &MfaRow) -> Result<String, ApiError> {
    let vault_ref = row.vault_ref.as_deref().ok_or_else(ApiError::internal)?;
    state
        .store
        .open_vault(vault_ref)
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            tracing::error!(%vault_ref, "TOTP secret missing from the vault");
            ApiError::internal()
        })
}
