//! The sign-in experience: the one tenant-wide configuration of how people sign up and sign in
//! (identifiers, passwords, MFA, brute-force policy, branding), in Logto's shape. One stream
//! holds it; each change records the whole object, so a reader never has to merge history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

/// The single stream (Logto's single row, id `default`).
pub const STREAM_ID: &str = "default";

/// Languages the experience app ships phrases for; a fallback outside this list has nothing to
/// fall back to. Logto also accepts tenants' custom phrases, which idledger does not have.
pub const BUILT_IN_LANGUAGES: &[&str] = &[
    "ar", "de", "en", "es", "fr", "it", "ja", "ko", "pl-PL", "pt-PT", "pt-BR", "ru", "th", "tr-TR",
    "uk-UA", "zh-CN", "zh-HK", "zh-TW",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignInIdentifier {
    Username,
    Email,
    Phone,
}

/// A secondary sign-up identifier may also be "email or phone, the user's choice".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignUpIdentifier {
    Username,
    Email,
    Phone,
    EmailOrPhone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Color {
    pub primary_color: String,
    pub is_dark_mode_enabled: bool,
    pub dark_primary_color: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Branding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark_logo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub favicon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark_favicon: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LanguageInfo {
    pub auto_detect: bool,
    pub fallback_language: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgreeToTermsPolicy {
    #[default]
    Automatic,
    ManualRegistrationOnly,
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInMethod {
    pub identifier: SignInIdentifier,
    pub password: bool,
    pub verification_code: bool,
    pub is_password_primary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub methods: Vec<SignInMethod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryIdentifier {
    pub identifier: SignUpIdentifier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignUp {
    pub identifiers: Vec<SignInIdentifier>,
    pub password: bool,
    pub verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_identifiers: Option<Vec<SecondaryIdentifier>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SocialSignIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_account_linking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_required_identifiers: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignInMode {
    SignIn,
    Register,
    #[default]
    SignInAndRegister,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomUiAssets {
    pub id: String,
    pub created_at: i64,
}

/// Extra Content-Security-Policy sources for a custom sign-in UI (Logto Cloud only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct CustomUiCsp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_src: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_src: Option<Vec<String>>,
}

impl CustomUiCsp {
    fn has_sources(&self) -> bool {
        [&self.script_src, &self.connect_src]
            .into_iter()
            .any(|sources| sources.as_ref().is_some_and(|s| !s.is_empty()))
    }
}

/// Logto's password policy; absent parts take Logto's defaults, as its guard fills them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordPolicy {
    pub length: LengthPolicy,
    pub character_types: CharacterTypesPolicy,
    pub rejects: RejectsPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LengthPolicy {
    pub min: u32,
    pub max: u32,
}

impl Default for LengthPolicy {
    fn default() -> LengthPolicy {
        LengthPolicy { min: 8, max: 256 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CharacterTypesPolicy {
    /// How many of lowercase, uppercase, digits and symbols a password must mix (1 to 4).
    pub min: u32,
}

impl Default for CharacterTypesPolicy {
    fn default() -> CharacterTypesPolicy {
        CharacterTypesPolicy { min: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RejectsPolicy {
    pub pwned: bool,
    pub repetition_and_sequence: bool,
    pub user_info: bool,
    pub words: Vec<String>,
}

impl Default for RejectsPolicy {
    fn default() -> RejectsPolicy {
        RejectsPolicy {
            pwned: true,
            repetition_and_sequence: true,
            user_info: true,
            words: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MfaFactor {
    Totp,
    WebAuthn,
    BackupCode,
    EmailVerificationCode,
    PhoneVerificationCode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MfaPolicy {
    #[default]
    UserControlled,
    Mandatory,
    PromptOnlyAtSignIn,
    PromptAtSignInAndSignUp,
    NoPrompt,
    PromptAtSignInAndSignUpMandatory,
    PromptOnlyAtSignInMandatory,
}

impl MfaPolicy {
    /// The two prompts a user cannot skip, which only adaptive MFA may use.
    fn is_non_skippable(self) -> bool {
        matches!(
            self,
            MfaPolicy::PromptAtSignInAndSignUpMandatory | MfaPolicy::PromptOnlyAtSignInMandatory
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrganizationRequiredMfaPolicy {
    NoPrompt,
    Mandatory,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mfa {
    pub factors: Vec<MfaFactor>,
    pub policy: MfaPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_required_mfa_policy: Option<OrganizationRequiredMfaPolicy>,
}

impl Mfa {
    fn is_enabled(&self) -> bool {
        !self.factors.is_empty()
    }

    /// Whether an organization's `isMfaRequired` binds its members. As in Logto, only under
    /// `organizationRequiredMfaPolicy: "Mandatory"`: unset (Logto's default, so a tenant turns
    /// the enforcement on knowingly) or `NoPrompt`, the flag is kept but asks nothing of members.
    pub fn organizations_may_require(&self) -> bool {
        self.organization_required_mfa_policy == Some(OrganizationRequiredMfaPolicy::Mandatory)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdaptiveMfa {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptchaPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Brute-force protection per identifier: this many failed verifications within an hour lock
/// the identifier for `lockout_duration` minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SentinelPolicy {
    pub max_attempts: u32,
    /// Minutes.
    pub lockout_duration: u32,
}

impl Default for SentinelPolicy {
    fn default() -> SentinelPolicy {
        SentinelPolicy {
            max_attempts: 100,
            lockout_duration: 60,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailBlocklistPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_disposable_addresses: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_subaddressing: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_blocklist: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmailAllowlistPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_allowlist: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VerificationCodePolicy {
    /// Seconds a code stays valid (60 to 3600).
    pub expiration_duration: u32,
    /// Wrong guesses after which a code is dead (1 to 100).
    pub max_retry_attempts: u32,
}

impl Default for VerificationCodePolicy {
    fn default() -> VerificationCodePolicy {
        VerificationCodePolicy {
            expiration_duration: 600,
            max_retry_attempts: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForgotPasswordMethod {
    EmailVerificationCode,
    PhoneVerificationCode,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasskeySignIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_passkey_button: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_autofill: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignUpProfileField {
    pub name: String,
}

/// Passwords older than `valid_period_days` must be reset at sign-in. `enabled_at` anchors
/// accounts that never changed their password; the server sets it, never the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordExpiration {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_period_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsernamePolicy {
    pub case_sensitive: bool,
    pub min_length: u32,
    pub max_length: u32,
    pub allowed_chars: AllowedChars,
}

impl Default for UsernamePolicy {
    fn default() -> UsernamePolicy {
        UsernamePolicy {
            case_sensitive: true,
            min_length: 1,
            max_length: 128,
            allowed_chars: AllowedChars {
                lowercase: true,
                uppercase: true,
                numbers: true,
                underscore: true,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedChars {
    pub lowercase: bool,
    pub uppercase: bool,
    pub numbers: bool,
    pub underscore: bool,
}

/// Logto's sign-in experience object minus `tenantId` and `id`. Keys missing from a stored
/// payload take the defaults, so a field added later needs no upcaster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignInExperience {
    pub color: Color,
    pub branding: Branding,
    pub hide_logto_branding: bool,
    pub language_info: LanguageInfo,
    pub terms_of_use_url: Option<String>,
    pub privacy_policy_url: Option<String>,
    pub agree_to_terms_policy: AgreeToTermsPolicy,
    pub sign_in: SignIn,
    pub sign_up: SignUp,
    pub social_sign_in: SocialSignIn,
    pub social_sign_in_connector_targets: Vec<String>,
    pub sign_in_mode: SignInMode,
    pub custom_css: Option<String>,
    pub custom_content: BTreeMap<String, String>,
    pub custom_ui_assets: Option<CustomUiAssets>,
    pub custom_ui_csp: CustomUiCsp,
    pub password_policy: PasswordPolicy,
    pub mfa: Mfa,
    pub adaptive_mfa: AdaptiveMfa,
    pub single_sign_on_enabled: bool,
    pub support_email: Option<String>,
    pub support_website_url: Option<String>,
    pub unknown_session_redirect_url: Option<String>,
    pub captcha_policy: CaptchaPolicy,
    pub sentinel_policy: SentinelPolicy,
    pub email_blocklist_policy: EmailBlocklistPolicy,
    pub email_allowlist_policy: EmailAllowlistPolicy,
    pub verification_code_policy: VerificationCodePolicy,
    pub forgot_password_methods: Option<Vec<ForgotPasswordMethod>>,
    pub passkey_sign_in: PasskeySignIn,
    pub sign_up_profile_fields: Option<Vec<SignUpProfileField>>,
    pub password_expiration: PasswordExpiration,
    pub username_policy: UsernamePolicy,
}

/// Logto's OSS seed: username and password, open registration, no MFA.
impl Default for SignInExperience {
    fn default() -> SignInExperience {
        SignInExperience {
            color: Color {
                primary_color: "#6139F6".to_owned(),
                is_dark_mode_enabled: false,
                dark_primary_color: "#8768F8".to_owned(),
            },
            branding: Branding {
                logo_url: Some("https://logto.io/logo.svg".to_owned()),
                dark_logo_url: Some("https://logto.io/logo-dark.svg".to_owned()),
                favicon: None,
                dark_favicon: None,
            },
            hide_logto_branding: false,
            language_info: LanguageInfo {
                auto_detect: true,
                fallback_language: "en".to_owned(),
            },
            terms_of_use_url: None,
            privacy_policy_url: None,
            agree_to_terms_policy: AgreeToTermsPolicy::Automatic,
            sign_in: SignIn {
                methods: vec![SignInMethod {
                    identifier: SignInIdentifier::Username,
                    password: true,
                    verification_code: false,
                    is_password_primary: true,
                }],
            },
            sign_up: SignUp {
                identifiers: vec![SignInIdentifier::Username],
                password: true,
                verify: false,
                secondary_identifiers: None,
            },
            social_sign_in: SocialSignIn::default(),
            social_sign_in_connector_targets: Vec::new(),
            sign_in_mode: SignInMode::SignInAndRegister,
            custom_css: None,
            custom_content: BTreeMap::new(),
            custom_ui_assets: None,
            custom_ui_csp: CustomUiCsp::default(),
            password_policy: PasswordPolicy::default(),
            mfa: Mfa {
                factors: Vec::new(),
                policy: MfaPolicy::UserControlled,
                organization_required_mfa_policy: None,
            },
            adaptive_mfa: AdaptiveMfa::default(),
            single_sign_on_enabled: false,
            support_email: None,
            support_website_url: None,
            unknown_session_redirect_url: None,
            captcha_policy: CaptchaPolicy::default(),
            sentinel_policy: SentinelPolicy::default(),
            email_blocklist_policy: EmailBlocklistPolicy::default(),
            email_allowlist_policy: EmailAllowlistPolicy::default(),
            verification_code_policy: VerificationCodePolicy::default(),
            forgot_password_methods: Some(Vec::new()),
            passkey_sign_in: PasskeySignIn::default(),
            sign_up_profile_fields: Some(Vec::new()),
            password_expiration: PasswordExpiration::default(),
            username_policy: UsernamePolicy::default(),
        }
    }
}

/// A message channel a setting depends on; Logto names the connector types `Email` and `Sms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    Email,
    Sms,
}

impl ConnectorKind {
    /// The `{{method}}` of `forgot_password_method_requires_connector`.
    pub fn method(self) -> &'static str {
        match self {
            ConnectorKind::Email => "email",
            ConnectorKind::Sms => "sms",
        }
    }
}

impl std::fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectorKind::Email => "Email",
            ConnectorKind::Sms => "Sms",
        })
    }
}

/// The connectors the handler found enabled when it built the command (a read-model fact).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connectors {
    pub email: bool,
    pub sms: bool,
    /// Targets of enabled social connectors (`google`, `github`, ...).
    pub social_targets: Vec<String>,
}

impl Connectors {
    fn has(&self, kind: ConnectorKind) -> bool {
        match kind {
            ConnectorKind::Email => self.email,
            ConnectorKind::Sms => self.sms,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SignInExperienceCommand {
    /// Replace the configuration with `experience`, the handler's merge of a PATCH into `base`.
    /// Refused as stale when the configuration is no longer `base`, so two concurrent PATCHes
    /// of different keys cannot silently undo each other.
    Update {
        base: Box<SignInExperience>,
        experience: Box<SignInExperience>,
        connectors: Connectors,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SignInExperienceEvent {
    #[serde(rename = "sign_in_experience.updated")]
    Updated(Box<SignInExperience>),
}

impl cqrs_es::DomainEvent for SignInExperienceEvent {
    fn event_type(&self) -> String {
        match self {
            SignInExperienceEvent::Updated(_) => "sign_in_experience.updated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            SignInExperienceEvent::Updated(_) => "1",
        }
        .to_owned()
    }
}

impl Event for SignInExperienceEvent {}

/// Logto's `sign_in_experiences.*` rules (and two environment refusals), named after its codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInExperienceError {
    #[error("the sign-in experience changed while this update was prepared")]
    Stale,
    #[error("This language - {language} is not supported at the moment.")]
    UnsupportedDefaultLanguage { language: String },
    #[error("Primary sign-up identifier cannot be empty.")]
    MissingSignUpIdentifiers,
    #[error("Duplicate sign-up identifiers detected.")]
    DuplicatedSignUpIdentifiers,
    #[error("Must enable verify for email/phone sign up identifier.")]
    PasswordlessRequiresVerify,
    #[error("Enabled {kind} connector not found.")]
    EnabledConnectorNotFound { kind: ConnectorKind },
    #[error("You have to select at least one authentication factor.")]
    AtLeastOneAuthenticationFactor,
    #[error(
        "Verification code sign in must be enabled when set a password is not required in sign up."
    )]
    CodeSignInMustBeEnabled,
    #[error("Email verification code cannot be used for sign-in when it is enabled for MFA.")]
    EmailVerificationCodeCannotBeUsedForSignIn,
    #[error("SMS verification code cannot be used for sign-in when it is enabled for MFA.")]
    PhoneVerificationCodeCannotBeUsedForSignIn,
    #[error("Duplicated MFA factors.")]
    DuplicatedMfaFactors,
    #[error("Backup code cannot be enabled alone.")]
    BackupCodeCannotBeEnabledAlone,
    #[error(
        "Email verification code cannot be used for MFA when email verification is enabled for sign-in."
    )]
    EmailVerificationCodeCannotBeUsedForMfa,
    #[error(
        "SMS verification code cannot be used for MFA when SMS verification is enabled for sign-in."
    )]
    PhoneVerificationCodeCannotBeUsedForMfa,
    #[error("MFA must be enabled before enabling adaptive MFA.")]
    AdaptiveMfaRequiresMfa,
    #[error(
        "Adaptive MFA requires a non-skippable MFA prompt policy. Use PromptOnlyAtSignInMandatory or PromptAtSignInAndSignUpMandatory."
    )]
    AdaptiveMfaRequiresNonSkippablePolicy,
    #[error(
        "When adaptive MFA is disabled, MFA prompt policy must be skippable. Do not use PromptOnlyAtSignInMandatory or PromptAtSignInAndSignUpMandatory."
    )]
    NonAdaptiveMfaRequiresSkippablePolicy,
    #[error(
        "Forgot password method requires a corresponding {} connector to be configured.",
        kind.method()
    )]
    ForgotPasswordMethodRequiresConnector { kind: ConnectorKind },
    #[error("Valid period days must be a positive integer when password expiration is enabled.")]
    PasswordExpirationInvalidPeriodDays,
    #[error(
        "Password expiration requires at least one forgot password method with a valid connector."
    )]
    PasswordExpirationRequiresForgotPassword,
    #[error("Hide Logto branding is not supported in this environment")]
    HideLogtoBrandingUnavailable,
    #[error("Custom UI CSP configuration is not available")]
    CustomUiCspUnavailable,
}

type Decision = Result<(), SignInExperienceError>;

fn require(condition: bool, error: SignInExperienceError) -> Decision {
    if condition { Ok(()) } else { Err(error) }
}

/// Logto's `validateSignUp`, in its order.
fn validate_sign_up(sign_up: &SignUp, connectors: &Connectors) -> Decision {
    use SignInExperienceError as E;
    let secondary = sign_up.secondary_identifiers.as_deref().unwrap_or_default();
    require(
        secondary.is_empty() || !sign_up.identifiers.is_empty(),
        E::MissingSignUpIdentifiers,
    )?;
    let mut primary = sign_up.identifiers.clone();
    primary.sort_unstable();
    primary.dedup();
    let mut others: Vec<SignUpIdentifier> = secondary.iter().map(|s| s.identifier).collect();
    others.sort_unstable();
    others.dedup();
    require(
        primary.len() == sign_up.identifiers.len() && others.len() == secondary.len(),
        E::DuplicatedSignUpIdentifiers,
    )?;
    for identifier in &others {
        let clashes = match identifier {
            SignUpIdentifier::EmailOrPhone => primary
                .iter()
                .any(|p| matches!(p, SignInIdentifier::Email | SignInIdentifier::Phone)),
            SignUpIdentifier::Username => primary.contains(&SignInIdentifier::Username),
            SignUpIdentifier::Email => primary.contains(&SignInIdentifier::Email),
            SignUpIdentifier::Phone => primary.contains(&SignInIdentifier::Phone),
        };
        require(!clashes, E::DuplicatedSignUpIdentifiers)?;
    }
    let passwordless = primary.iter().any(|i| *i != SignInIdentifier::Username)
        || others.iter().any(|i| *i != SignUpIdentifier::Username);
    require(
        !passwordless || sign_up.verify,
        E::PasswordlessRequiresVerify,
    )?;
    for s in secondary {
        require(
            s.identifier == SignUpIdentifier::Username || s.verify == Some(true),
            E::PasswordlessRequiresVerify,
        )?;
    }
    let needs = |kind| match kind {
        ConnectorKind::Email => {
            primary.contains(&SignInIdentifier::Email)
                || others.contains(&SignUpIdentifier::Email)
                || others.contains(&SignUpIdentifier::EmailOrPhone)
        }
        ConnectorKind::Sms => {
            primary.contains(&SignInIdentifier::Phone)
                || others.contains(&SignUpIdentifier::Phone)
                || others.contains(&SignUpIdentifier::EmailOrPhone)
        }
    };
    for kind in [ConnectorKind::Email, ConnectorKind::Sms] {
        require(
            !needs(kind) || connectors.has(kind),
            E::EnabledConnectorNotFound { kind },
        )?;
    }
    Ok(())
}

fn uses_code(sign_in: &SignIn, identifier: SignInIdentifier) -> bool {
    sign_in
        .methods
        .iter()
        .any(|m| m.identifier == identifier && m.verification_code)
}

/// Logto's `validateSignIn`, against the sign-up and MFA settings that will be in force.
fn validate_sign_in(
    sign_in: &SignIn,
    sign_up: &SignUp,
    mfa: &Mfa,
    connectors: &Connectors,
) -> Decision {
    use SignInExperienceError as E;
    for (identifier, kind) in [
        (SignInIdentifier::Email, ConnectorKind::Email),
        (SignInIdentifier::Phone, ConnectorKind::Sms),
    ] {
        require(
            !uses_code(sign_in, identifier) || connectors.has(kind),
            E::EnabledConnectorNotFound { kind },
        )?;
    }
    require(
        sign_in
            .methods
            .iter()
            .all(|m| m.password || m.verification_code),
        E::AtLeastOneAuthenticationFactor,
    )?;
    if sign_up.verify && !sign_up.password {
        require(
            sign_in
                .methods
                .iter()
                .all(|m| m.verification_code || m.identifier == SignInIdentifier::Username),
            E::CodeSignInMustBeEnabled,
        )?;
    }
    require(
        !(mfa.factors.contains(&MfaFactor::EmailVerificationCode)
            && uses_code(sign_in, SignInIdentifier::Email)),
        E::EmailVerificationCodeCannotBeUsedForSignIn,
    )?;
    require(
        !(mfa.factors.contains(&MfaFactor::PhoneVerificationCode)
            && uses_code(sign_in, SignInIdentifier::Phone)),
        E::PhoneVerificationCodeCannotBeUsedForSignIn,
    )
}

/// Logto's `validateMfa`.
fn validate_mfa(mfa: &Mfa, sign_in: &SignIn) -> Decision {
    use SignInExperienceError as E;
    let mut factors = mfa.factors.clone();
    factors.sort_unstable();
    factors.dedup();
    require(factors.len() == mfa.factors.len(), E::DuplicatedMfaFactors)?;
    require(
        !factors.contains(&MfaFactor::BackupCode) || factors.len() > 1,
        E::BackupCodeCannotBeEnabledAlone,
    )?;
    require(
        !(factors.contains(&MfaFactor::EmailVerificationCode)
            && uses_code(sign_in, SignInIdentifier::Email)),
        E::EmailVerificationCodeCannotBeUsedForMfa,
    )?;
    require(
        !(factors.contains(&MfaFactor::PhoneVerificationCode)
            && uses_code(sign_in, SignInIdentifier::Phone)),
        E::PhoneVerificationCodeCannotBeUsedForMfa,
    )
}

/// Adaptive MFA only works with a prompt users cannot skip, and plain MFA only with one they can.
/// Logto checks these for the keys a PATCH carries; here "carried" means "changed".
fn validate_adaptive_mfa(previous: &SignInExperience, next: &SignInExperience) -> Decision {
    use SignInExperienceError as E;
    let adaptive_changed = previous.adaptive_mfa != next.adaptive_mfa;
    let non_skippable = next.mfa.policy.is_non_skippable();
    match (adaptive_changed, next.adaptive_mfa.enabled) {
        (true, Some(true)) => {
            require(next.mfa.is_enabled(), E::AdaptiveMfaRequiresMfa)?;
            require(non_skippable, E::AdaptiveMfaRequiresNonSkippablePolicy)
        }
        (true, Some(false)) => require(!non_skippable, E::NonAdaptiveMfaRequiresSkippablePolicy),
        (false, adaptive) if previous.mfa != next.mfa && next.mfa.is_enabled() => {
            if adaptive == Some(true) {
                require(non_skippable, E::AdaptiveMfaRequiresNonSkippablePolicy)
            } else {
                require(!non_skippable, E::NonAdaptiveMfaRequiresSkippablePolicy)
            }
        }
        (true, None) | (false, _) => Ok(()),
    }
}

/// Which forgot-password channels can actually deliver a code.
fn forgot_password_available(next: &SignInExperience, connectors: &Connectors) -> bool {
    next.forgot_password_methods
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|method| match method {
            ForgotPasswordMethod::EmailVerificationCode => connectors.email,
            ForgotPasswordMethod::PhoneVerificationCode => connectors.sms,
        })
}

/// Every rule of Logto's PATCH handler that needs no I/O, in its order, for the parts that
/// change; then the normalisations Logto applies before storing.
fn validate(
    previous: &SignInExperience,
    mut next: SignInExperience,
    connectors: &Connectors,
) -> Result<SignInExperience, SignInExperienceError> {
    use SignInExperienceError as E;
    if previous.language_info != next.language_info {
        let language = &next.language_info.fallback_language;
        require(
            BUILT_IN_LANGUAGES.contains(&language.as_str()),
            E::UnsupportedDefaultLanguage {
                language: language.clone(),
            },
        )?;
    }
    if previous.social_sign_in_connector_targets != next.social_sign_in_connector_targets {
        // Logto silently drops targets without an enabled social connector.
        next.social_sign_in_connector_targets
            .retain(|target| connectors.social_targets.contains(target));
    }
    if previous.sign_up != next.sign_up {
        validate_sign_up(&next.sign_up, connectors)?;
    }
    if previous.sign_in != next.sign_in {
        validate_sign_in(&next.sign_in, &next.sign_up, &next.mfa, connectors)?;
    }
    if previous.mfa != next.mfa {
        validate_mfa(&next.mfa, &next.sign_in)?;
    }
    validate_adaptive_mfa(previous, &next)?;
    if previous.mfa != next.mfa
        && !next.mfa.is_enabled()
        && previous.adaptive_mfa == next.adaptive_mfa
    {
        // Turning MFA off turns adaptive MFA off unless the update says otherwise.
        next.adaptive_mfa.enabled = Some(false);
    }
    if previous.forgot_password_methods != next.forgot_password_methods {
        for method in next.forgot_password_methods.as_deref().unwrap_or_default() {
            let kind = match method {
                ForgotPasswordMethod::EmailVerificationCode => ConnectorKind::Email,
                ForgotPasswordMethod::PhoneVerificationCode => ConnectorKind::Sms,
            };
            require(
                connectors.has(kind),
                E::ForgotPasswordMethodRequiresConnector { kind },
            )?;
        }
    }
    if next.password_expiration.enabled {
        require(
            next.password_expiration
                .valid_period_days
                .is_some_and(|days| days >= 1),
            E::PasswordExpirationInvalidPeriodDays,
        )?;
        require(
            forgot_password_available(&next, connectors),
            E::PasswordExpirationRequiresForgotPassword,
        )?;
    }
    // Both are Logto Cloud features; an OSS server refuses to turn them on.
    require(
        !next.hide_logto_branding || previous.hide_logto_branding,
        E::HideLogtoBrandingUnavailable,
    )?;
    require(
        previous.custom_ui_csp == next.custom_ui_csp || !next.custom_ui_csp.has_sources(),
        E::CustomUiCspUnavailable,
    )?;
    Ok(next)
}

/// The configuration in force: Logto's seed until the first update.
#[derive(Debug, Clone, Default)]
pub struct SignInExperienceConfig {
    current: SignInExperience,
}

impl Aggregate for SignInExperienceConfig {
    const TYPE: &'static str = "sign_in_experience";
    type Command = SignInExperienceCommand;
    type Event = SignInExperienceEvent;
    type Error = SignInExperienceError;

    fn decide(
        &self,
        command: SignInExperienceCommand,
    ) -> Result<Vec<SignInExperienceEvent>, SignInExperienceError> {
        match command {
            SignInExperienceCommand::Update {
                base,
                experience,
                connectors,
            } => {
                if *base != self.current {
                    return Err(SignInExperienceError::Stale);
                }
                let next = validate(&self.current, *experience, &connectors)?;
                Ok(if next == self.current {
                    Vec::new()
                } else {
                    vec![SignInExperienceEvent::Updated(Box::new(next))]
                })
            }
        }
    }

    fn apply(&mut self, event: &SignInExperienceEvent) {
        match event {
            SignInExperienceEvent::Updated(experience) => self.current = (**experience).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn update(change: impl FnOnce(&mut SignInExperience)) -> SignInExperienceCommand {
        update_from(SignInExperience::default(), change)
    }

    fn update_from(
        base: SignInExperience,
        change: impl FnOnce(&mut SignInExperience),
    ) -> SignInExperienceCommand {
        let mut experience = base.clone();
        change(&mut experience);
        SignInExperienceCommand::Update {
            base: Box::new(base),
            experience: Box::new(experience),
            connectors: Connectors::default(),
        }
    }

    fn method(identifier: SignInIdentifier, password: bool, code: bool) -> SignInMethod {
        SignInMethod {
            identifier,
            password,
            verification_code: code,
            is_password_primary: password,
        }
    }

    fn refused(change: impl FnOnce(&mut SignInExperience), error: SignInExperienceError) {
        Given::<SignInExperienceConfig>::with(())
            .given_no_previous_events()
            .when(update(change))
            .then_expect_error(error);
    }

    #[test]
    fn the_default_is_logtos_oss_seed() {
        let json = serde_json::to_value(SignInExperience::default()).unwrap();
        assert_eq!(
            json["signUp"],
            serde_json::json!({"identifiers": ["username"], "password": true, "verify": false})
        );
        assert_eq!(
            json["signIn"]["methods"],
            serde_json::json!([{"identifier": "username", "password": true,
                "verificationCode": false, "isPasswordPrimary": true}])
        );
        assert_eq!(json["signInMode"], "SignInAndRegister");
        assert_eq!(
            json["mfa"],
            serde_json::json!({"factors": [], "policy": "UserControlled"})
        );
        assert_eq!(
            json["sentinelPolicy"],
            serde_json::json!({"maxAttempts": 100, "lockoutDuration": 60})
        );
        assert_eq!(
            json["verificationCodePolicy"],
            serde_json::json!({"expirationDuration": 600, "maxRetryAttempts": 10})
        );
        assert_eq!(
            json["passwordPolicy"],
            serde_json::json!({"length": {"min": 8, "max": 256}, "characterTypes": {"min": 1},
                "rejects": {"pwned": true, "repetitionAndSequence": true, "userInfo": true,
                "words": []}})
        );
        assert_eq!(
            json["languageInfo"],
            serde_json::json!({"autoDetect": true, "fallbackLanguage": "en"})
        );
        assert!(json["termsOfUseUrl"].is_null());
        // A payload missing keys (an older event) reads back with the defaults.
        let sparse: SignInExperience =
            serde_json::from_value(serde_json::json!({"signInMode": "SignIn"})).unwrap();
        assert_eq!(sparse.sign_in_mode, SignInMode::SignIn);
        assert_eq!(sparse.sentinel_policy, SentinelPolicy::default());
    }

    #[test]
    fn an_update_records_the_whole_object_and_a_no_op_records_nothing() {
        let changed = SignInExperience {
            sign_in_mode: SignInMode::SignIn,
            sentinel_policy: SentinelPolicy {
                max_attempts: 5,
                lockout_duration: 60,
            },
            ..SignInExperience::default()
        };
        Given::<SignInExperienceConfig>::with(())
            .given_no_previous_events()
            .when(update(|e| *e = changed.clone()))
            .then_expect_events(vec![SignInExperienceEvent::Updated(Box::new(
                changed.clone(),
            ))]);
        Given::<SignInExperienceConfig>::with(())
            .given(vec![SignInExperienceEvent::Updated(Box::new(
                changed.clone(),
            ))])
            .when(update_from(changed, |_| {}))
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_update_prepared_from_an_older_configuration_is_stale() {
        let changed = SignInExperience {
            custom_css: Some("body {}".into()),
            ..SignInExperience::default()
        };
        Given::<SignInExperienceConfig>::with(())
            .given(vec![SignInExperienceEvent::Updated(Box::new(changed))])
            .when(update(|e| e.sign_in_mode = SignInMode::Register))
            .then_expect_error(SignInExperienceError::Stale);
    }

    #[test]
    fn sign_up_identifiers_must_be_unique_and_primary_ones_present() {
        refused(
            |e| e.sign_up.identifiers = vec![SignInIdentifier::Username; 2],
            SignInExperienceError::DuplicatedSignUpIdentifiers,
        );
        refused(
            |e| {
                e.sign_up.secondary_identifiers = Some(vec![SecondaryIdentifier {
                    identifier: SignUpIdentifier::Username,
                    verify: None,
                }]);
            },
            SignInExperienceError::DuplicatedSignUpIdentifiers,
        );
        refused(
            |e| {
                e.sign_up.identifiers = Vec::new();
                e.sign_up.secondary_identifiers = Some(vec![SecondaryIdentifier {
                    identifier: SignUpIdentifier::Username,
                    verify: None,
                }]);
            },
            SignInExperienceError::MissingSignUpIdentifiers,
        );
    }

    #[test]
    fn email_sign_up_needs_verify_and_then_an_email_connector() {
        refused(
            |e| e.sign_up.identifiers = vec![SignInIdentifier::Email],
            SignInExperienceError::PasswordlessRequiresVerify,
        );
        refused(
            |e| {
                e.sign_up.identifiers = vec![SignInIdentifier::Email];
                e.sign_up.verify = true;
            },
            SignInExperienceError::EnabledConnectorNotFound {
                kind: ConnectorKind::Email,
            },
        );
        Given::<SignInExperienceConfig>::with(())
            .given_no_previous_events()
            .when(SignInExperienceCommand::Update {
                base: Box::default(),
                experience: Box::new({
                    let mut e = SignInExperience::default();
                    e.sign_up.identifiers = vec![SignInIdentifier::Email];
                    e.sign_up.verify = true;
                    e
                }),
                connectors: Connectors {
                    email: true,
                    ..Connectors::default()
                },
            })
            .then_expect_events(vec![SignInExperienceEvent::Updated(Box::new({
                let mut e = SignInExperience::default();
                e.sign_up.identifiers = vec![SignInIdentifier::Email];
                e.sign_up.verify = true;
                e
            }))]);
    }

    #[test]
    fn sign_in_methods_need_a_factor_and_code_when_sign_up_sets_no_password() {
        refused(
            |e| e.sign_in.methods = vec![method(SignInIdentifier::Username, false, false)],
            SignInExperienceError::AtLeastOneAuthenticationFactor,
        );
        refused(
            |e| e.sign_in.methods = vec![method(SignInIdentifier::Phone, false, true)],
            SignInExperienceError::EnabledConnectorNotFound {
                kind: ConnectorKind::Sms,
            },
        );
        let mut base = SignInExperience::default();
        base.sign_up.password = false;
        base.sign_up.verify = true;
        Given::<SignInExperienceConfig>::with(())
            .given(vec![SignInExperienceEvent::Updated(Box::new(base.clone()))])
            .when(update_from(base, |e| {
                e.sign_in.methods = vec![method(SignInIdentifier::Email, true, false)];
            }))
            .then_expect_error(SignInExperienceError::CodeSignInMustBeEnabled);
    }

    #[test]
    fn mfa_factors_are_unique_and_backup_codes_never_alone() {
        refused(
            |e| e.mfa.factors = vec![MfaFactor::Totp, MfaFactor::Totp],
            SignInExperienceError::DuplicatedMfaFactors,
        );
        refused(
            |e| e.mfa.factors = vec![MfaFactor::BackupCode],
            SignInExperienceError::BackupCodeCannotBeEnabledAlone,
        );
        refused(
            |e| {
                e.mfa.factors = vec![MfaFactor::Totp];
                e.adaptive_mfa.enabled = Some(true);
            },
            SignInExperienceError::AdaptiveMfaRequiresNonSkippablePolicy,
        );
        refused(
            |e| {
                e.mfa.factors = vec![MfaFactor::Totp];
                e.mfa.policy = MfaPolicy::PromptOnlyAtSignInMandatory;
            },
            SignInExperienceError::NonAdaptiveMfaRequiresSkippablePolicy,
        );
    }

    #[test]
    fn organizations_require_mfa_only_under_the_mandatory_organization_policy() {
        let mut mfa = Mfa {
            factors: vec![MfaFactor::Totp],
            ..Mfa::default()
        };
        assert!(!mfa.organizations_may_require(), "unset is Logto's default");
        mfa.organization_required_mfa_policy = Some(OrganizationRequiredMfaPolicy::NoPrompt);
        assert!(!mfa.organizations_may_require());
        mfa.organization_required_mfa_policy = Some(OrganizationRequiredMfaPolicy::Mandatory);
        assert!(mfa.organizations_may_require());
    }

    #[test]
    fn email_codes_serve_either_sign_in_or_mfa() {
        let mut base = SignInExperience::default();
        base.mfa.factors = vec![MfaFactor::EmailVerificationCode, MfaFactor::Totp];
        let connectors = Connectors {
            email: true,
            ..Connectors::default()
        };
        let mut experience = base.clone();
        experience.sign_in.methods = vec![method(SignInIdentifier::Email, false, true)];
        Given::<SignInExperienceConfig>::with(())
            .given(vec![SignInExperienceEvent::Updated(Box::new(base.clone()))])
            .when(SignInExperienceCommand::Update {
                base: Box::new(base),
                experience: Box::new(experience),
                connectors,
            })
            .then_expect_error(SignInExperienceError::EmailVerificationCodeCannotBeUsedForSignIn);
    }

    #[test]
    fn unavailable_features_and_connectors_are_refused() {
        refused(
            |e| e.forgot_password_methods = Some(vec![ForgotPasswordMethod::PhoneVerificationCode]),
            SignInExperienceError::ForgotPasswordMethodRequiresConnector {
                kind: ConnectorKind::Sms,
            },
        );
        refused(
            |e| e.password_expiration.enabled = true,
            SignInExperienceError::PasswordExpirationInvalidPeriodDays,
        );
        refused(
            |e| {
                e.password_expiration.enabled = true;
                e.password_expiration.valid_period_days = Some(90);
            },
            SignInExperienceError::PasswordExpirationRequiresForgotPassword,
        );
        refused(
            |e| e.hide_logto_branding = true,
            SignInExperienceError::HideLogtoBrandingUnavailable,
        );
        refused(
            |e| e.language_info.fallback_language = "xx".into(),
            SignInExperienceError::UnsupportedDefaultLanguage {
                language: "xx".into(),
            },
        );
    }

    #[test]
    fn unknown_social_targets_are_dropped_and_mfa_off_turns_adaptive_off() {
        let mut start = SignInExperience::default();
        start.mfa.factors = vec![MfaFactor::Totp];
        let mut expected = SignInExperience::default();
        expected.adaptive_mfa.enabled = Some(false);
        Given::<SignInExperienceConfig>::with(())
            .given(vec![SignInExperienceEvent::Updated(Box::new(
                start.clone(),
            ))])
            .when(update_from(start, |e| {
                e.mfa.factors = Vec::new();
                e.social_sign_in_connector_targets = vec!["google".into()];
            }))
            .then_expect_events(vec![SignInExperienceEvent::Updated(Box::new(expected))]);
    }
}
