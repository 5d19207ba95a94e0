//! The sign-in experience's rules as the Experience API applies them: which interaction events
//! the sign-in mode allows, which identifiers sign in with a password, what a username may look
//! like, and which profile fields a user must have before signing in. Pure functions over the
//! configuration; the errors are Logto's.

use axum::http::StatusCode;
use domain::interaction::{IdentifierType, InteractionEvent};
use domain::sign_in_experience::{
    SignInExperience, SignInIdentifier, SignInMode, SignUpIdentifier, UsernamePolicy,
};
use serde_json::json;

use crate::http::error::ApiError;

pub fn forbidden() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "auth.forbidden", "Forbidden.")
}

/// Logto's `guardInteractionEvent`: a sign-in-only tenant takes no registrations, a
/// registration-only tenant no sign-ins.
pub fn guard_event(config: &SignInExperience, event: InteractionEvent) -> Result<(), ApiError> {
    let refused = match event {
        InteractionEvent::SignIn => config.sign_in_mode == SignInMode::Register,
        InteractionEvent::Register => config.sign_in_mode == SignInMode::SignIn,
        InteractionEvent::ForgotPassword => false,
    };
    if refused { Err(forbidden()) } else { Ok(()) }
}

/// `guard_event` with Logto's one exception: a verified one-time token is an invitation, so
/// an interaction holding one (`invited`) may register where the sign-in mode closes
/// registration.
pub fn guard_event_invited(
    config: &SignInExperience,
    event: InteractionEvent,
    invited: bool,
) -> Result<(), ApiError> {
    if invited && event == InteractionEvent::Register {
        return Ok(());
    }
    guard_event(config, event)
}

fn same_identifier(configured: SignInIdentifier, given: IdentifierType) -> bool {
    matches!(
        (configured, given),
        (SignInIdentifier::Username, IdentifierType::Username)
            | (SignInIdentifier::Email, IdentifierType::Email)
            | (SignInIdentifier::Phone, IdentifierType::Phone)
    )
}

/// The identifier kinds a sign-in method accepts with a password, in the configured order.
pub fn password_identifiers(config: &SignInExperience) -> Vec<IdentifierType> {
    config
        .sign_in
        .methods
        .iter()
        .filter(|method| method.password)
        .map(|method| match method.identifier {
            SignInIdentifier::Username => IdentifierType::Username,
            SignInIdentifier::Email => IdentifierType::Email,
            SignInIdentifier::Phone => IdentifierType::Phone,
        })
        .collect()
}

/// Logto refuses a password verification whose identifier no sign-in method pairs with a
/// password (it checks at identification; we check before the password, which reveals nothing
/// about the account either way).
pub fn guard_password_sign_in(
    config: &SignInExperience,
    kind: IdentifierType,
) -> Result<(), ApiError> {
    let enabled = config
        .sign_in
        .methods
        .iter()
        .any(|method| method.password && same_identifier(method.identifier, kind));
    if enabled {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.sign_in_method_not_enabled",
            "This sign-in method is not enabled.",
        ))
    }
}

/// Registration with a username and a password needs both in the sign-up configuration.
pub fn guard_username_sign_up(config: &SignInExperience) -> Result<(), ApiError> {
    let sign_up = &config.sign_up;
    if sign_up.password && sign_up.identifiers.contains(&SignInIdentifier::Username) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.sign_up_method_not_enabled",
            "This sign-up method is not enabled.",
        ))
    }
}

/// How an identifier is compared and stored: emails trimmed, phones as E.164 digits (as users
/// store them). `None` for a phone number that cannot exist, which therefore names nobody.
pub fn normalize(kind: IdentifierType, value: &str) -> Option<String> {
    match kind {
        IdentifierType::Username => Some(value.to_owned()),
        IdentifierType::Email => Some(value.trim().to_owned()),
        IdentifierType::Phone => {
            let digits: String = value.chars().filter(char::is_ascii_digit).collect();
            crate::http::management::users::normalize_phone(&digits).ok()
        }
    }
}

fn username_error(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Logto's username rules (`usernameRegEx`: no leading digit; word characters only) under the
/// configured `usernamePolicy` (length and allowed character classes).
pub fn check_username(policy: &UsernamePolicy, username: &str) -> Result<(), ApiError> {
    let length = username.chars().count();
    if length < usize::try_from(policy.min_length.max(1)).unwrap_or(usize::MAX) {
        return Err(username_error(
            "user.username_too_short",
            format!(
                "Username must be at least {} characters long.",
                policy.min_length.max(1)
            ),
        ));
    }
    if length > usize::try_from(policy.max_length).unwrap_or(usize::MAX) {
        return Err(username_error(
            "user.username_too_long",
            format!(
                "Username must be at most {} characters long.",
                policy.max_length
            ),
        ));
    }
    if username.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(username_error(
            "user.username_should_not_start_with_number",
            "Username should not start with a number.".to_owned(),
        ));
    }
    let allowed = &policy.allowed_chars;
    for c in username.chars() {
        let (permitted, code, class) = match c {
            'a'..='z' => (
                allowed.lowercase,
                "user.username_lowercase_not_allowed",
                "Lowercase letters",
            ),
            'A'..='Z' => (
                allowed.uppercase,
                "user.username_uppercase_not_allowed",
                "Uppercase letters",
            ),
            '0'..='9' => (
                allowed.numbers,
                "user.username_numbers_not_allowed",
                "Numbers",
            ),
            '_' => (
                allowed.underscore,
                "user.username_underscore_not_allowed",
                "Underscores",
            ),
            _ => {
                return Err(username_error(
                    "user.username_invalid_charset",
                    "Username should only contain letters, numbers, or underscores.".to_owned(),
                ));
            }
        };
        if !permitted {
            return Err(username_error(
                code,
                format!("{class} are not allowed in usernames."),
            ));
        }
    }
    Ok(())
}

/// What a user (or the user about to be created) has of the sign-up profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Held {
    pub username: bool,
    pub email: bool,
    pub phone: bool,
    /// A password, or an upstream identity standing in for one.
    pub password: bool,
}

impl Held {
    /// Logto's `socialSignIn.skipRequiredIdentifiers`: a person who came with a social
    /// identity is not asked for the sign-up identifiers the provider did not vouch for (the
    /// password stays demanded, which the identity stands in for anyway).
    pub fn waiving_identifiers(self) -> Held {
        Held {
            username: true,
            email: true,
            phone: true,
            ..self
        }
    }
}

/// Logto's `getMissingUserProfile` over `getMandatoryUserProfileBySignUpMethods`, in its order.
pub fn missing_profile(config: &SignInExperience, held: Held) -> Vec<&'static str> {
    let sign_up = &config.sign_up;
    let has = |identifier| sign_up.identifiers.contains(&identifier);
    let (mut username, mut email, mut phone, mut email_or_phone) = (false, false, false, false);
    if has(SignInIdentifier::Username) {
        username = true;
    } else if has(SignInIdentifier::Email) && has(SignInIdentifier::Phone) {
        email_or_phone = true;
    } else if has(SignInIdentifier::Email) {
        email = true;
    } else if has(SignInIdentifier::Phone) {
        phone = true;
    }
    for secondary in sign_up.secondary_identifiers.iter().flatten() {
        match secondary.identifier {
            SignUpIdentifier::Username => username = true,
            SignUpIdentifier::Email => email = true,
            SignUpIdentifier::Phone => phone = true,
            SignUpIdentifier::EmailOrPhone => email_or_phone = true,
        }
    }
    let mut missing = Vec::new();
    if username && !held.username {
        missing.push("username");
    }
    if email_or_phone && !held.email && !held.phone {
        missing.push("emailOrPhone");
    }
    if email && !held.email {
        missing.push("email");
    }
    if phone && !held.phone {
        missing.push("phone");
    }
    if sign_up.password && !held.password {
        missing.push("password");
    }
    missing
}

pub fn guard_profile(config: &SignInExperience, held: Held) -> Result<(), ApiError> {
    let missing = missing_profile(config, held);
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "user.missing_profile",
        "You need to provide additional info before signing-in.",
    )
    .with_data(json!({ "missingProfile": missing })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::sign_in_experience::SecondaryIdentifier;

    #[test]
    fn the_mode_gates_events() {
        let mut config = SignInExperience::default();
        assert!(guard_event(&config, InteractionEvent::Register).is_ok());
        config.sign_in_mode = SignInMode::SignIn;
        assert_eq!(
            guard_event(&config, InteractionEvent::Register)
                .unwrap_err()
                .code,
            "auth.forbidden"
        );
        assert!(guard_event(&config, InteractionEvent::SignIn).is_ok());
        config.sign_in_mode = SignInMode::Register;
        assert!(guard_event(&config, InteractionEvent::SignIn).is_err());
        assert!(guard_event(&config, InteractionEvent::ForgotPassword).is_ok());
    }

    #[test]
    fn an_invitation_opens_registration_and_nothing_else() {
        let mut config = SignInExperience {
            sign_in_mode: SignInMode::SignIn,
            ..SignInExperience::default()
        };
        assert!(guard_event_invited(&config, InteractionEvent::Register, false).is_err());
        assert!(guard_event_invited(&config, InteractionEvent::Register, true).is_ok());
        config.sign_in_mode = SignInMode::Register;
        assert!(guard_event_invited(&config, InteractionEvent::SignIn, true).is_err());
    }

    #[test]
    fn usernames_follow_the_policy() {
        let mut policy = UsernamePolicy::default();
        assert!(check_username(&policy, "ada_99").is_ok());
        assert_eq!(
            check_username(&policy, "").unwrap_err().code,
            "user.username_too_short"
        );
        assert_eq!(
            check_username(&policy, "9lives").unwrap_err().code,
            "user.username_should_not_start_with_number"
        );
        assert_eq!(
            check_username(&policy, "ada-b").unwrap_err().code,
            "user.username_invalid_charset"
        );
        policy.allowed_chars.uppercase = false;
        assert_eq!(
            check_username(&policy, "Ada").unwrap_err().code,
            "user.username_uppercase_not_allowed"
        );
        policy.max_length = 3;
        assert_eq!(
            check_username(&policy, "abcd").unwrap_err().code,
            "user.username_too_long"
        );
    }

    #[test]
    fn missing_profile_follows_logtos_order() {
        let mut config = SignInExperience::default();
        assert_eq!(
            missing_profile(&config, Held::default()),
            ["username", "password"]
        );
        assert!(
            missing_profile(
                &config,
                Held {
                    username: true,
                    password: true,
                    ..Held::default()
                }
            )
            .is_empty()
        );
        config.sign_up.secondary_identifiers = Some(vec![SecondaryIdentifier {
            identifier: SignUpIdentifier::EmailOrPhone,
            verify: Some(true),
        }]);
        let held = Held {
            username: true,
            password: true,
            ..Held::default()
        };
        assert_eq!(missing_profile(&config, held), ["emailOrPhone"]);
        let error = guard_profile(&config, held).unwrap_err();
        assert_eq!(
            error.data.unwrap()["missingProfile"],
            json!(["emailOrPhone"])
        );
    }

    #[test]
    fn skipping_required_identifiers_still_wants_a_password() {
        let config = SignInExperience::default();
        let social = Held {
            password: true,
            ..Held::default()
        };
        assert_eq!(missing_profile(&config, social), ["username"]);
        assert!(missing_profile(&config, social.waiving_identifiers()).is_empty());
        assert_eq!(
            missing_profile(&config, Held::default().waiving_identifiers()),
            ["password"]
        );
    }

    #[test]
    fn identifiers_are_normalized_for_lookup() {
        assert_eq!(
            normalize(IdentifierType::Email, " a@b.co ").as_deref(),
            Some("a@b.co")
        );
        assert_eq!(
            normalize(IdentifierType::Phone, "+1 415-555-2671").as_deref(),
            Some("14155552671")
        );
        assert_eq!(normalize(IdentifierType::Phone, "12"), None);
    }
}
