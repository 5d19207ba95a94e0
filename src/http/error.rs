//! The one error type that becomes an HTTP response on `/api`, in Logto's shape
//! `{"code", "message", "data"?, "details"?}`. Every domain rejection and read-model constraint
//! is mapped here, once, in tables a reviewer can read top to bottom.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Rejection;
use domain::application::ApplicationError;
use domain::connector::ConnectorError;
use domain::interaction::InteractionError;
use domain::one_time_token::OneTimeTokenError;
use domain::organization::OrganizationError;
use domain::organization_role::OrganizationRoleError;
use domain::resource::ResourceError;
use domain::role::RoleError;
use domain::sign_in_experience::SignInExperienceError;
use domain::signing_key::SigningKeyError;
use domain::user::UserError;
use domain::verification_code::VerificationCodeError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::sentinel::Limited;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub data: Option<Value>,
    pub details: Option<String>,
    pub headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            data: None,
            details: None,
            headers: Vec::new(),
        }
    }

    pub fn with_data(mut self, data: Value) -> ApiError {
        self.data = Some(data);
        self
    }

    pub fn with_details(mut self, details: impl Into<String>) -> ApiError {
        self.details = Some(details.into());
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// `guard.invalid_input`: the request did not match the route's schema.
    pub fn invalid_input(part: &str, details: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "guard.invalid_input",
            format!("The request {part} is invalid."),
        )
        .with_details(details)
    }

    /// `request.invalid_input`: a value is well-formed but not acceptable.
    pub fn bad_request(details: impl Into<String>) -> ApiError {
        let details = details.into();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "request.invalid_input",
            format!("Input is invalid. {details}"),
        )
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "entity.not_found",
            "The resource does not exist.",
        )
    }

    pub fn not_exists_with_id(entity: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "entity.not_exists_with_id",
            format!("The {entity} with ID `{id}` does not exist."),
        )
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request.service_unavailable",
            "The service is temporarily unavailable. Please try again.",
        )
        .with_header(header::RETRY_AFTER, "1")
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unknown",
            "Internal server error.",
        )
    }

    /// A rate limit (per IP, per recipient...) refused the request: 429 with `Retry-After`.
    pub fn rate_limited(limited: Limited) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "request.rate_limited",
            "Too many requests. Please try again later.",
        )
        .with_header(header::RETRY_AFTER, limited.retry_after_secs.to_string())
    }

    /// Logto's sentinel locked the identifier after too many failed verifications; the message
    /// says when to retry, in whole minutes as Logto words it.
    pub fn verification_blocked(limited: Limited) -> ApiError {
        let minutes = limited.retry_after_secs.saturating_add(30) / 60;
        let unit = if minutes == 1 { "minute" } else { "minutes" };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "session.verification_blocked_too_many_attempts",
            format!("Too many attempts in a short time. Please try again in {minutes} {unit}."),
        )
    }

    /// Logto's `request.message_rate_limited`: too many messages to one recipient.
    pub fn message_rate_limited(limited: Limited) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "request.message_rate_limited",
            "Too many messages were sent to this recipient. Please try again later.",
        )
        .with_header(header::RETRY_AFTER, limited.retry_after_secs.to_string())
    }

    /// `connector.<code>` errors (logto-compat §6), 400 unless Logto says otherwise.
    pub fn connector(status: StatusCode, code: &'static str, message: &str) -> ApiError {
        ApiError::new(status, code, message.to_owned())
    }

    /// No connector of `kind` (`Email`, `Sms`) is configured: Logto's 501.
    pub fn connector_not_found(kind: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "connector.not_found",
            format!("Can not find any available connector for type: {kind}."),
        )
        .with_data(serde_json::json!({ "type": kind }))
    }

    /// `connector.invalid_config`, with the offending key in `details`.
    pub fn invalid_connector_config(details: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "connector.invalid_config",
            "The connector's config is invalid.",
        )
        .with_details(details)
    }

    /// `connector.general`: the provider refused or failed; its reason is the description.
    pub fn connector_general(reason: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "connector.general",
            format!("An unexpected error occurred in connector.\n{reason}"),
        )
        .with_data(serde_json::json!({ "errorDescription": reason }))
    }

    pub fn template_not_found() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "connector.template_not_found",
            "Unable to find correct template in connector config.",
        )
    }

    /// `verification_code.code_mismatch`: the one failure recorded rather than refused.
    pub fn code_mismatch() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "verification_code.code_mismatch",
            "Invalid verification code.",
        )
    }

    /// Names the entity and id of a `not_exists_with_id` error raised without them.
    pub fn about(mut self, entity: &str, id: &str) -> ApiError {
        if self.code == "entity.not_exists_with_id" {
            self.message = format!("The {entity} with ID `{id}` does not exist.");
        }
        self
    }
}

/// Logto's error body, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Dotted error code, e.g. `entity.not_exists_with_id`.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Validation details, one line per problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            data: self.data,
            details: self.details,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Rejected(rejection) => rejection.into(),
            StoreError::Constraint(name) => constraint(&name),
            StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "request.concurrent_modification",
                "The resource was modified concurrently too many times. Please retry.",
            ),
            StoreError::SubjectErased(_) => ApiError::new(
                StatusCode::GONE,
                "user.erased",
                "The personal data of this user has been erased.",
            ),
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::unavailable()
            }
            StoreError::Internal(cause) => {
                tracing::error!(%cause, "event store failure");
                ApiError::internal()
            }
        }
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(error: crate::audit::AuditError) -> ApiError {
        use crate::audit::AuditError;
        match error {
            AuditError::NothingToSign => ApiError::new(
                StatusCode::CONFLICT,
                "audit.nothing_to_sign",
                "The log has no chained event yet.",
            ),
            AuditError::Database(error) => error.into(),
            AuditError::Pool(error) => error.into(),
            AuditError::Key(_) | AuditError::Crypto(_) => {
                tracing::error!(%error, "chain checkpoint key failure");
                ApiError::internal()
            }
        }
    }
}

impl From<projections::ProjectionError> for ApiError {
    fn from(error: projections::ProjectionError) -> ApiError {
        StoreError::from(error).into()
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> ApiError {
        StoreError::from(error).into()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> ApiError {
        StoreError::from(error).into()
    }
}

/// Read-model constraints → Logto codes (Logto's slonik error handler does the same with its
/// own constraint names, which our tables reuse).
fn constraint(name: &str) -> ApiError {
    let unprocessable = |code, message: &str| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.to_owned())
    };
    match name {
        "users__username" => unprocessable(
            "user.username_already_in_use",
            "This username is already in use.",
        ),
        "users__primary_email" => unprocessable(
            "user.email_already_in_use",
            "This email is associated with an existing account.",
        ),
        "users__primary_phone" => unprocessable(
            "user.phone_already_in_use",
            "This phone number is associated with an existing account.",
        ),
        "application_secrets_pkey" => unprocessable(
            "application.secret_name_exists",
            "Secret name already exists.",
        ),
        "users_identities__target_identity_id" => unprocessable(
            "user.identity_already_in_use",
            "The social account has been associated with an existing account.",
        ),
        "personal_access_tokens_pkey" => unprocessable(
            "user.personal_access_token_name_exists",
            "Personal access token name already exists.",
        ),
        "roles__name" => unprocessable("role.name_in_use", "This role name is already in use."),
        "organization_roles__name" => unprocessable(
            "entity.unique_integrity_violation",
            "The entity already exists. Please check the input and try again.",
        ),
        "value_too_long" => {
            unprocessable("entity.value_too_long", "The length of value is too long.")
        }
        "23505" => unprocessable(
            "entity.unique_integrity_violation",
            "The entity already exists. Please check the input and try again.",
        ),
        _ => unprocessable(
            "entity.db_constraint_violated",
            "Database constraint violated.",
        ),
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        match rejection {
            Rejection::Application(error) => application(error),
            Rejection::Role(error) => role(error),
            Rejection::Resource(error) => resource(error),
            Rejection::SigningKey(error) => signing_key(error),
            Rejection::User(error) => user(error),
            Rejection::Interaction(error) => interaction(error),
            Rejection::Session(error) => ApiError::new(
                StatusCode::NOT_FOUND,
                "session.not_found",
                error.to_string(),
            ),
            Rejection::Grant(error) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "oidc.invalid_grant",
                error.to_string(),
            ),
            Rejection::Organization(error) => organization(error),
            Rejection::OrganizationRole(error) => organization_role(error),
            Rejection::SignInExperience(error) => sign_in_experience(error),
            Rejection::OneTimeToken(error) => one_time_token(error),
            Rejection::Exchange(error) => ApiError::new(
                StatusCode::CONFLICT,
                "request.concurrent_modification",
                error.to_string(),
            ),
            Rejection::Connector(error) => connector(error),
            Rejection::Message(error) => {
                // Messages are only changed by the server itself, never on a client's word.
                tracing::error!(%error, "message rejected a command");
                ApiError::internal()
            }
            Rejection::VerificationCode(error) => verification_code(error),
            Rejection::CustomDataPolicy(error) => ApiError::invalid_input(
                "body",
                format!("Error in key path \"userWritable\": {error}"),
            ),
            Rejection::UserTransfer(error) => {
                // Transfer records are named with fresh ids: a clash is the server's fault.
                tracing::error!(%error, "user transfer rejected a command");
                ApiError::internal()
            }
            // Only the token endpoint consumes subject tokens, and it answers in OAuth's shape.
            Rejection::SubjectToken(error) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "oidc.invalid_grant",
                error.to_string(),
            ),
            Rejection::Hook(error) => hook(error),
            Rejection::HookDelivery(error) => {
                // Deliveries are only recorded by the webhook follower, never on a request.
                tracing::error!(%error, "hook delivery rejected a command");
                ApiError::internal()
            }
            Rejection::TokenSet(error) => token_set(error),
            Rejection::SocialAuthorization(error) => social_authorization(error),
            Rejection::VerificationRecord(error) => verification_record(error),
        }
    }
}

fn application(error: ApplicationError) -> ApiError {
    use StatusCode as S;
    let message = error.to_string();
    let (status, code) = match error {
        ApplicationError::NotFound => {
            return ApiError::not_exists_with_id("application", "");
        }
        ApplicationError::AlreadyExists => {
            (S::UNPROCESSABLE_ENTITY, "entity.unique_integrity_violation")
        }
        ApplicationError::InvalidThirdPartyType => (
            S::BAD_REQUEST,
            "application.invalid_third_party_application_type",
        ),
        ApplicationError::ThirdPartyTokenExchange => (
            S::UNPROCESSABLE_ENTITY,
            "application.third_party_application_cannot_enable_token_exchange",
        ),
        ApplicationError::DeviceFlowNativeOnly => (
            S::UNPROCESSABLE_ENTITY,
            "application.device_flow_native_only",
        ),
        ApplicationError::DeviceFlowNotChangeable => (
            S::UNPROCESSABLE_ENTITY,
            "application.device_flow_not_changeable",
        ),
        ApplicationError::SecretsNotSupported { .. } => {
            (S::UNPROCESSABLE_ENTITY, "entity.db_constraint_violated")
        }
        ApplicationError::SecretNameExists { .. } => {
            (S::UNPROCESSABLE_ENTITY, "application.secret_name_exists")
        }
        ApplicationError::SecretNotFound { .. } | ApplicationError::RoleNotAssigned { .. } => {
            return ApiError::not_found();
        }
        ApplicationError::EmptyUpdate => (S::UNPROCESSABLE_ENTITY, "entity.invalid_input"),
    };
    ApiError::new(status, code, message)
}

fn role(error: RoleError) -> ApiError {
    let message = error.to_string();
    match error {
        RoleError::NotFound => ApiError::not_exists_with_id("role", ""),
        RoleError::AlreadyExists => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.unique_integrity_violation",
            message,
        ),
        RoleError::ScopeNotInRole { .. } => ApiError::not_found(),
        RoleError::EmptyUpdate => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.invalid_input",
            message,
        ),
    }
}

fn resource(error: ResourceError) -> ApiError {
    let message = error.to_string();
    match error {
        ResourceError::NotFound => ApiError::not_exists_with_id("resource", ""),
        ResourceError::AlreadyExists => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.unique_integrity_violation",
            message,
        ),
        ResourceError::ScopeNameExists { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "scope.name_exists",
            message,
        ),
    }
}

fn signing_key(error: SigningKeyError) -> ApiError {
    let message = error.to_string();
    match error {
        SigningKeyError::NotFound { .. } => ApiError::not_found(),
        SigningKeyError::CurrentKey => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "oidc.key_required",
            message,
        ),
    }
}

fn user(error: UserError) -> ApiError {
    let message = error.to_string();
    match error {
        UserError::NotFound
        | UserError::RoleNotAssigned { .. }
        | UserError::TokenNotFound { .. } => ApiError::not_found(),
        UserError::AlreadyExists => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.unique_integrity_violation",
            message,
        ),
        UserError::EmptyUpdate => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.invalid_input",
            message,
        ),
        UserError::IdentityNotFound { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "user.identity_not_exist",
            "The social identity has not been registered yet.",
        ),
        UserError::TokenNameExists { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.personal_access_token_name_exists",
            "Personal access token name already exists.",
        ),
        UserError::Mfa(error) => mfa(error),
    }
}

fn organization(error: OrganizationError) -> ApiError {
    let message = error.to_string();
    match error {
        OrganizationError::NotFound => ApiError::not_exists_with_id("organization", ""),
        OrganizationError::AlreadyExists => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.unique_integrity_violation",
            message,
        ),
        OrganizationError::EmptyUpdate => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.invalid_input",
            message,
        ),
        OrganizationError::NotAMember { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "organization.require_membership",
            "The user must be a member of the organization to proceed.",
        ),
        OrganizationError::MembershipNotFound { .. }
        | OrganizationError::RoleNotAssigned { .. }
        | OrganizationError::JitRoleNotFound { .. } => ApiError::not_found(),
    }
}

fn organization_role(error: OrganizationRoleError) -> ApiError {
    let message = error.to_string();
    match error {
        // Logto loads organization roles with a raw `pool.one`, hence `entity.not_found`.
        OrganizationRoleError::NotFound => ApiError::not_found(),
        OrganizationRoleError::AlreadyExists => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.unique_integrity_violation",
            message,
        ),
        OrganizationRoleError::EmptyUpdate => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.invalid_input",
            message,
        ),
    }
}

fn sign_in_experience(error: SignInExperienceError) -> ApiError {
    use SignInExperienceError as E;
    let message = error.to_string();
    let (status, code) = match error {
        // Left over only when the configuration kept changing under the handler's retries.
        E::Stale => (StatusCode::CONFLICT, "request.concurrent_modification"),
        E::UnsupportedDefaultLanguage { .. } => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.unsupported_default_language",
        ),
        E::MissingSignUpIdentifiers => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.missing_sign_up_identifiers",
        ),
        E::DuplicatedSignUpIdentifiers => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.duplicated_sign_up_identifiers",
        ),
        E::PasswordlessRequiresVerify => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.passwordless_requires_verify",
        ),
        E::EnabledConnectorNotFound { .. } => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.enabled_connector_not_found",
        ),
        E::AtLeastOneAuthenticationFactor => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.at_least_one_authentication_factor",
        ),
        E::CodeSignInMustBeEnabled => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.code_sign_in_must_be_enabled",
        ),
        E::EmailVerificationCodeCannotBeUsedForSignIn => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.email_verification_code_cannot_be_used_for_sign_in",
        ),
        E::PhoneVerificationCodeCannotBeUsedForSignIn => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.phone_verification_code_cannot_be_used_for_sign_in",
        ),
        E::DuplicatedMfaFactors => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.duplicated_mfa_factors",
        ),
        E::BackupCodeCannotBeEnabledAlone => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.backup_code_cannot_be_enabled_alone",
        ),
        E::EmailVerificationCodeCannotBeUsedForMfa => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.email_verification_code_cannot_be_used_for_mfa",
        ),
        E::PhoneVerificationCodeCannotBeUsedForMfa => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.phone_verification_code_cannot_be_used_for_mfa",
        ),
        E::AdaptiveMfaRequiresMfa => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "sign_in_experiences.adaptive_mfa_requires_mfa",
        ),
        E::AdaptiveMfaRequiresNonSkippablePolicy => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "sign_in_experiences.adaptive_mfa_requires_non_skippable_policy",
        ),
        E::NonAdaptiveMfaRequiresSkippablePolicy => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "sign_in_experiences.non_adaptive_mfa_requires_skippable_policy",
        ),
        E::ForgotPasswordMethodRequiresConnector { .. } => (
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.forgot_password_method_requires_connector",
        ),
        E::PasswordExpirationInvalidPeriodDays => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "sign_in_experiences.password_expiration_invalid_period_days",
        ),
        E::PasswordExpirationRequiresForgotPassword => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "sign_in_experiences.password_expiration_requires_forgot_password",
        ),
        // Logto Cloud features, refused by an OSS server as Logto's own does.
        E::HideLogtoBrandingUnavailable | E::CustomUiCspUnavailable => {
            return ApiError::bad_request(message);
        }
    };
    ApiError::new(status, code, message)
}

fn interaction(error: InteractionError) -> ApiError {
    let message = error.to_string();
    let (status, code) = match error {
        InteractionError::NotFound | InteractionError::Expired | InteractionError::NotSubmitted => {
            (StatusCode::NOT_FOUND, "session.not_found")
        }
        InteractionError::AlreadyStarted | InteractionError::Finished => {
            (StatusCode::BAD_REQUEST, "session.interaction_finished")
        }
        InteractionError::VerificationNotFound(_) => (
            StatusCode::NOT_FOUND,
            "session.verification_session_not_found",
        ),
        InteractionError::UserNotIdentified | InteractionError::NotIdentified => {
            (StatusCode::NOT_FOUND, "session.identifier_not_found")
        }
        InteractionError::NotRegistering => (StatusCode::FORBIDDEN, "auth.forbidden"),
        InteractionError::MfaPending => (
            StatusCode::FORBIDDEN,
            "session.mfa.require_mfa_verification",
        ),
        InteractionError::ConsentRequired => (StatusCode::FORBIDDEN, "oidc.consent_required"),
        InteractionError::MfaEnrolmentUnconfirmed => {
            (StatusCode::BAD_REQUEST, "session.verification_failed")
        }
    };
    ApiError::new(status, code, message)
}

/// Logto's codes for second factors: the Management API's 422s, the sign-in's 400s.
fn mfa(error: domain::mfa::MfaError) -> ApiError {
    use domain::mfa::MfaError;
    let (status, code, message) = match error {
        MfaError::TotpAlreadyInUse => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.totp_already_in_use",
            "TOTP is already in use.",
        ),
        MfaError::BackupCodeAlreadyInUse => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.backup_code_already_in_use",
            "Backup code is already in use.",
        ),
        MfaError::BackupCodeCannotBeAlone => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "session.mfa.backup_code_can_not_be_alone",
            "Backup code can not be the only MFA.",
        ),
        MfaError::NotFound(_) => return ApiError::not_found(),
        MfaError::TotpCodeReused => (
            StatusCode::BAD_REQUEST,
            "session.mfa.invalid_totp_code",
            "Invalid TOTP code.",
        ),
        MfaError::BackupCodeInvalid => (
            StatusCode::BAD_REQUEST,
            "session.mfa.invalid_backup_code",
            "Invalid backup code.",
        ),
    };
    ApiError::new(status, code, message)
}

fn hook(error: domain::hook::HookError) -> ApiError {
    use domain::hook::HookError;
    let message = error.to_string();
    match error {
        HookError::NotFound => ApiError::not_exists_with_id("hook", ""),
        HookError::AlreadyExists => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.unique_integrity_violation",
            message,
        ),
        HookError::EmptyUpdate => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.invalid_input",
            message,
        ),
    }
}

/// Logto's one-time-token codes (all 400 but the missing token).
fn one_time_token(error: OneTimeTokenError) -> ApiError {
    let message = error.to_string();
    let code = match error {
        OneTimeTokenError::NotFound => return ApiError::not_exists_with_id("one-time token", ""),
        OneTimeTokenError::AlreadyExists => "entity.unique_integrity_violation",
        OneTimeTokenError::EmailMismatch => "one_time_token.email_mismatch",
        OneTimeTokenError::Consumed => "one_time_token.token_consumed",
        OneTimeTokenError::Revoked => "one_time_token.token_revoked",
        OneTimeTokenError::Expired => "one_time_token.token_expired",
        OneTimeTokenError::CannotReactivate => "one_time_token.cannot_reactivate_token",
        OneTimeTokenError::InteractionEventMismatch => "one_time_token.interaction_event_mismatch",
        // idledger's own: the token's `context.deviceBinding` names another device.
        OneTimeTokenError::DeviceMismatch => "one_time_token.device_mismatch",
    };
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn connector(error: ConnectorError) -> ApiError {
    let message = error.to_string();
    match error {
        ConnectorError::NotFound => ApiError::not_exists_with_id("connector", ""),
        ConnectorError::AlreadyExists => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "entity.unique_integrity_violation",
            message,
        ),
    }
}

/// A stored token set changed while a refresh was under way, or is gone: the caller may ask
/// again and read the current state.
fn token_set(error: domain::token_set::TokenSetError) -> ApiError {
    use domain::token_set::TokenSetError;
    match error {
        TokenSetError::NotStored => ApiError::new(
            StatusCode::NOT_FOUND,
            "user.token_secret_not_found",
            "The token set does not exist.",
        ),
        TokenSetError::Replaced => ApiError::new(
            StatusCode::CONFLICT,
            "request.concurrent_modification",
            error.to_string(),
        ),
    }
}

/// Account API verification records (logto-compat §1's `/api/verifications/*`): Logto's
/// `verification_record.not_found` (400, its default status) for a record that is unknown,
/// someone else's, expired, unverified or spent, and `verification_record.permission_denied`
/// (401) for a `logto-verification-id` that proves nothing.
fn verification_record(error: domain::verification_record::VerificationRecordError) -> ApiError {
    use domain::verification_record::VerificationRecordError as E;
    let message = error.to_string();
    match error {
        E::NotFound => ApiError::new(
            StatusCode::BAD_REQUEST,
            "verification_record.not_found",
            message,
        ),
        E::PermissionDenied => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "verification_record.permission_denied",
            message,
        ),
        // Records are named with fresh random ids: a clash is the server's fault.
        E::AlreadyExists => {
            tracing::error!(%error, "verification record id reused");
            ApiError::internal()
        }
    }
}

/// A social verification that does not exist, was used already, or is not verified yet:
/// Logto's `session.verification_session_not_found` / `session.verification_failed`.
fn social_authorization(error: domain::social_authorization::SocialAuthorizationError) -> ApiError {
    use domain::social_authorization::SocialAuthorizationError as E;
    let message = error.to_string();
    match error {
        E::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "session.verification_session_not_found",
            message,
        ),
        E::AlreadyStarted | E::AlreadyUsed | E::NotVerified => ApiError::new(
            StatusCode::BAD_REQUEST,
            "session.verification_failed",
            message,
        ),
    }
}

/// A social connector's failure (logto-compat §6): configuration problems 400, the
/// provider's refusals and failed ID token checks 401, an unreachable provider 400
/// `connector.general`. `data.reason` names the failed check.
impl From<crate::connectors::social::SocialError> for ApiError {
    fn from(error: crate::connectors::social::SocialError) -> ApiError {
        use crate::connectors::social::SocialErrorKind;
        let status = match error.kind {
            SocialErrorKind::Config | SocialErrorKind::Provider => StatusCode::BAD_REQUEST,
            SocialErrorKind::Authentication => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, error.code, error.message)
            .with_data(serde_json::json!({ "reason": error.reason }))
    }
}

/// Logto's `verification_code.*` codes, all 400.
fn verification_code(error: VerificationCodeError) -> ApiError {
    let message = error.to_string();
    let code = match error {
        VerificationCodeError::NotFound => "verification_code.not_found",
        VerificationCodeError::EmailMismatch => "verification_code.email_mismatch",
        VerificationCodeError::Expired => "verification_code.expired",
        VerificationCodeError::ExceedMaxTry => "verification_code.exceed_max_try",
    };
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}
