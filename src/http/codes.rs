//! Sending and checking verification codes (logto-compat §7), shared by the Management API and
//! the Experience API.
//!
//! Sending records, in one unit of work, the code's keyed hash on the scope's
//! `verification_code` stream and the message that carries it on a `message` stream, and seals
//! the code itself in the vault for the mail follower (`crate::mail`), which delivers it after
//! the commit. The code is drawn from the thread CSPRNG (ChaCha seeded by the OS, as every
//! secret of this server).

use axum::http::StatusCode;
use domain::Actor;
use domain::message::{Message, MessageCommand, NewMessage, UsageType};
use domain::verification_code::{IssuedCode, VerificationCode, VerificationCodeCommand};
use serde_json::Value;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::sentinel;
use crate::store::Unit;

/// Keyed-hash domains: of a code (with its scope), and of a recipient's address.
const CODE_HASH_KIND: &str = "verification_code";
const RECIPIENT_HASH_KIND: &str = "verification_code recipient";
/// Logto's per-recipient cap (`message-rate-limit.ts`): 10 messages in 10 minutes.
const SENDS_PER_RECIPIENT: u32 = 10;
const SEND_WINDOW_S: i64 = 600;
const RATE_BUCKET: &str = "message-email";

/// An address as compared and stored: trimmed; `guard.invalid_input` when it is not one.
pub fn email(raw: &str, key: &str) -> Result<String, ApiError> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > 254 || trimmed.parse::<lettre::Address>().is_err() {
        return Err(ApiError::invalid_input(
            "body",
            format!("Error in key path \"{key}\": Invalid email"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Kept in the clear on `verification_code.sent`, so an erasure finds what was mailed to an
/// address (`history::code_scopes_sent_to`).
pub fn recipient_hash(state: &AppState, email: &str) -> String {
    state
        .store
        .keyring()
        .lookup_hash(RECIPIENT_HASH_KIND, &email.to_lowercase())
}

/// The stream of the codes sent through the Management API to `email`.
pub fn management_scope(state: &AppState, email: &str) -> String {
    format!("management:{}", recipient_hash(state, email))
}

/// The stream of the codes of one interaction.
pub fn interaction_scope(interaction_id: &str) -> String {
    domain::interaction::subject(interaction_id)
}

fn code_hash(state: &AppState, scope: &str, code: &str) -> String {
    state
        .store
        .keyring()
        .lookup_hash(CODE_HASH_KIND, &format!("{scope}\n{code}"))
}

/// A code to send.
pub struct Send<'a> {
    pub scope: String,
    /// The verification id; also the id of the message.
    pub code_id: String,
    pub email: &'a str,
    pub usage_type: UsageType,
    pub ui_locales: Option<String>,
    /// What the template may show: `application`, `user`...
    pub context: Value,
}

/// Logto's checks, then the code recorded and queued: `501 connector.not_found` without an
/// Email connector, `429 request.message_rate_limited` past the recipient's cap.
pub async fn send(
    state: &AppState,
    request: &RequestContext,
    actor: Actor,
    send: Send<'_>,
) -> Result<(), ApiError> {
    let has_connector = {
        let db = state.store.pool().get().await?;
        !projections::connectors::of_type(&db, "Email")
            .await?
            .is_empty()
    };
    if !has_connector {
        return Err(ApiError::connector_not_found("Email"));
    }
    let now = request.now_ms();
    let recipient = recipient_hash(state, send.email);
    sentinel::hit(
        state.store.pool(),
        RATE_BUCKET,
        &recipient,
        SENDS_PER_RECIPIENT,
        SEND_WINDOW_S,
        now,
    )
    .await
    .map_err(ApiError::message_rate_limited)?;
    let policy = {
        let db = state.store.pool().get().await?;
        projections::sign_in_experience::current(&db)
            .await?
            .verification_code_policy
    };
    let code = format!("{:06}", rand::random_range(0..1_000_000u32));
    let expires_at = now.saturating_add(i64::from(policy.expiration_duration) * 1000);
    let code_ref = format!("message/{}/code", send.code_id);
    let unit = Unit::new()
        .then::<VerificationCode>(
            send.scope.clone(),
            VerificationCodeCommand::Issue(IssuedCode {
                code_id: send.code_id.clone(),
                recipient_hash: recipient,
                code_hash: code_hash(state, &send.scope, &code),
                usage_type: send.usage_type,
                expires_at,
                max_attempts: policy.max_retry_attempts,
            }),
        )
        .then::<Message>(
            send.code_id.clone(),
            MessageCommand::Queue(NewMessage {
                id: send.code_id.clone(),
                to: send.email.to_owned(),
                usage_type: send.usage_type,
                ui_locales: send.ui_locales,
                context: send.context,
                code_ref: Some(code_ref.clone()),
                expires_at: Some(expires_at),
                subject: crate::http::management::one_time_tokens::email_subject(state, send.email)
                    .await?,
            }),
        )
        .seal(code_ref, code.into_bytes());
    state.store.run(unit, &request.metadata(actor)).await?;
    Ok(())
}

/// Checks `code` against the scope's code: Logto's `verification_code.*` errors, in its order.
/// A wrong code is recorded (it counts toward `maxRetryAttempts`) before it is refused.
pub async fn verify(
    state: &AppState,
    request: &RequestContext,
    actor: Actor,
    scope: &str,
    code_id: Option<&str>,
    email: &str,
    code: &str,
) -> Result<(), ApiError> {
    let command = VerificationCodeCommand::Verify {
        code_id: code_id.map(str::to_owned),
        recipient_hash: recipient_hash(state, email),
        code_hash: code_hash(state, scope, code.trim()),
        now: request.now_ms(),
    };
    let committed = state
        .store
        .execute::<VerificationCode>(scope, command, &request.metadata(actor))
        .await?;
    if committed
        .events
        .iter()
        .any(|event| event.event_type == "verification_code.verified")
    {
        Ok(())
    } else {
        Err(ApiError::code_mismatch())
    }
}

/// `400 guard.invalid_input` for a code that cannot be one: Logto's guard wants a string.
pub fn require_code(code: &str) -> Result<(), ApiError> {
    if code.trim().is_empty() || code.chars().count() > 64 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "guard.invalid_input",
            "The request body is invalid.",
        )
        .with_details("Error in key path \"verificationCode\": Required"));
    }
    Ok(())
}
