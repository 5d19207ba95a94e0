//! The pure core of idledger: one module per aggregate with its commands, events, state, errors,
//! `decide` and `apply`, and given/when/then tests. No async, no I/O, no SQL, no clock.

pub mod aggregate;
pub mod application;
pub mod connector;
pub mod custom_data_policy;
pub mod envelope;
pub mod exchange;
pub mod grant;
pub mod hook;
pub mod hook_delivery;
pub mod id_token_config;
pub mod interaction;
pub mod message;
pub mod mfa;
pub mod one_time_token;
pub mod organization;
pub mod organization_role;
pub mod patch;
pub mod payload;
pub mod resource;
pub mod role;
pub mod session;
pub mod sign_in_experience;
pub mod signing_key;
pub mod social_authorization;
pub mod subject_token;
pub mod token_set;
pub mod upcast;
pub mod user;
pub mod user_transfer;
pub mod verification_code;
pub mod verification_record;

#[cfg(test)]
mod spec;

pub use aggregate::{Aggregate, CodecError, Encoded, Event, decode, encode};
pub use envelope::{Actor, Metadata, RecordedEvent, unix_ms};
pub use payload::Payload;

/// Every business-rule violation any aggregate can report. The HTTP layer maps each variant to
/// Logto's `{code, message}` and status in one table.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Application(#[from] application::ApplicationError),
    #[error(transparent)]
    Role(#[from] role::RoleError),
    #[error(transparent)]
    Resource(#[from] resource::ResourceError),
    #[error(transparent)]
    SigningKey(#[from] signing_key::SigningKeyError),
    #[error(transparent)]
    Exchange(#[from] exchange::ExchangeError),
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error(transparent)]
    Interaction(#[from] interaction::InteractionError),
    #[error(transparent)]
    Session(#[from] session::SessionError),
    #[error(transparent)]
    Grant(#[from] grant::GrantError),
    #[error(transparent)]
    Organization(#[from] organization::OrganizationError),
    #[error(transparent)]
    OrganizationRole(#[from] organization_role::OrganizationRoleError),
    #[error(transparent)]
    SignInExperience(#[from] sign_in_experience::SignInExperienceError),
    #[error(transparent)]
    OneTimeToken(#[from] one_time_token::OneTimeTokenError),
    #[error(transparent)]
    Connector(#[from] connector::ConnectorError),
    #[error(transparent)]
    Message(#[from] message::MessageError),
    #[error(transparent)]
    VerificationCode(#[from] verification_code::VerificationCodeError),
    #[error(transparent)]
    TokenSet(#[from] token_set::TokenSetError),
    #[error(transparent)]
    SocialAuthorization(#[from] social_authorization::SocialAuthorizationError),
    #[error(transparent)]
    VerificationRecord(#[from] verification_record::VerificationRecordError),
    #[error(transparent)]
    Hook(#[from] hook::HookError),
    #[error(transparent)]
    HookDelivery(#[from] hook_delivery::HookDeliveryError),
    #[error(transparent)]
    CustomDataPolicy(#[from] custom_data_policy::CustomDataPolicyError),
    #[error(transparent)]
    UserTransfer(#[from] user_transfer::UserTransferError),
    #[error(transparent)]
    SubjectToken(#[from] subject_token::SubjectTokenError),
}

/// For aggregates that refuse nothing: a rule they cannot break needs no variant above.
impl From<std::convert::Infallible> for Rejection {
    fn from(never: std::convert::Infallible) -> Rejection {
        match never {}
    }
}
