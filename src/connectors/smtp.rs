//! Logto's SMTP email connector (factory `simple-mail-transfer-protocol`), on lettre with rustls.
//! The configuration keys are nodemailer's, as Logto passes them through (logto-compat §6).
//!
//! Delivery is driven step by step (connect, STARTTLS, AUTH, send) so each of nodemailer's
//! timeouts bounds its own part: `connectionTimeout` the TCP connection (and implicit TLS),
//! `greetingTimeout` the server's greeting and EHLO, `socketTimeout` every later command.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use domain::connector::ConnectorType;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::template::{self, Template};
use super::{EmailFactory, Factory, InvalidConfig, Mail, SendError};
use domain::message::UsageType;

pub const FACTORY_ID: &str = "simple-mail-transfer-protocol";

/// Template types every configuration must have (Logto's `requiredTemplateUsageTypes`).
const REQUIRED_TEMPLATES: [UsageType; 4] = [
    UsageType::Register,
    UsageType::SignIn,
    UsageType::ForgotPassword,
    UsageType::Generic,
];

/// nodemailer's defaults, in milliseconds.
const CONNECTION_TIMEOUT_MS: u64 = 120_000;
const GREETING_TIMEOUT_MS: u64 = 30_000;
const SOCKET_TIMEOUT_MS: u64 = 600_000;
const DNS_TIMEOUT_MS: u64 = 30_000;

pub struct Smtp;

/// A login: both optional, for relays that trust the sender's address.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoginAuth {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    pass: Option<String>,
    #[serde(default, rename = "type")]
    _kind: Option<LoginKind>,
}

#[derive(Debug, Clone, Deserialize)]
enum LoginKind {
    #[serde(rename = "login", alias = "Login", alias = "LOGIN")]
    Login,
}

/// XOAUTH2: the access token is what authenticates. nodemailer can also mint one from a refresh
/// token or a service account key; those keys are type-checked (and sealed) but not used.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OAuth2Auth {
    user: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default, rename = "refreshToken")]
    _refresh_token: Option<String>,
    #[serde(default, rename = "privateKey")]
    _private_key: Option<Value>,
    #[serde(default, rename = "serviceClient")]
    _service_client: Option<String>,
    #[serde(default, rename = "clientId")]
    _client_id: Option<String>,
    #[serde(default, rename = "clientSecret")]
    _client_secret: Option<String>,
    #[serde(default, rename = "expires")]
    _expires: Option<Value>,
    #[serde(default, rename = "accessUrl")]
    _access_url: Option<String>,
    #[serde(default, rename = "type")]
    _kind: Option<String>,
}

#[derive(Debug, Clone)]
enum Auth {
    Login(LoginAuth),
    OAuth2(OAuth2Auth),
}

/// Node's TLS options that matter here; any other key is accepted and ignored, as Node would
/// ignore what it does not need.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlsOptions {
    /// PEM certificates to trust instead of the public roots (Node's `ca` replaces them).
    #[serde(default)]
    ca: Option<OneOrMany>,
    #[serde(default)]
    reject_unauthorized: Option<bool>,
    #[serde(default)]
    servername: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(one) => vec![one.as_str()],
            OneOrMany::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SmtpConfig {
    host: String,
    port: u16,
    auth: Value,
    from_email: String,
    #[serde(default)]
    reply_to: Option<String>,
    templates: Vec<Template>,
    #[serde(default)]
    secure: Option<bool>,
    #[serde(default)]
    tls: Option<TlsOptions>,
    #[serde(default)]
    servername: Option<String>,
    #[serde(default, rename = "ignoreTLS")]
    ignore_tls: Option<bool>,
    #[serde(default, rename = "requireTLS")]
    require_tls: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    local_address: Option<String>,
    #[serde(default)]
    connection_timeout: Option<u64>,
    #[serde(default)]
    greeting_timeout: Option<u64>,
    #[serde(default)]
    socket_timeout: Option<u64>,
    #[serde(default)]
    dns_timeout: Option<u64>,
    // nodemailer's diagnostics and file/URL switches: type-checked, meaningless here (no
    // attachments, and logs never carry mail).
    #[serde(default, rename = "logger")]
    _logger: Option<bool>,
    #[serde(default, rename = "debug")]
    _debug: Option<bool>,
    #[serde(default, rename = "disableFileAccess")]
    _disable_file_access: Option<bool>,
    #[serde(default, rename = "disableUrlAccess")]
    _disable_url_access: Option<bool>,
    #[serde(default)]
    custom_headers: Option<Map<String, Value>>,
}

fn invalid(path: &str, problem: impl std::fmt::Display) -> InvalidConfig {
    InvalidConfig(format!("Error in key path \"{path}\": {problem}"))
}

/// `auth.type` chooses; without it, OAuth2 keys mean OAuth2 and anything else a login.
fn parse_auth(auth: &Value) -> Result<Auth, InvalidConfig> {
    let kind = auth
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let oauth2_keys = ["accessToken", "refreshToken", "privateKey", "serviceClient"];
    let is_oauth2 = match kind.as_deref() {
        Some("oauth2") => true,
        Some("login") => false,
        Some(_) => return Err(invalid("auth.type", "expected \"login\" or \"OAuth2\"")),
        None => oauth2_keys.iter().any(|key| auth.get(key).is_some()),
    };
    let parsed = if is_oauth2 {
        serde_path_to_error::deserialize(auth.clone()).map(Auth::OAuth2)
    } else {
        serde_path_to_error::deserialize(auth.clone()).map(Auth::Login)
    };
    parsed.map_err(|error| invalid(&format!("auth.{}", error.path()), error.inner()))
}

fn parse(config: &Value) -> Result<(SmtpConfig, Auth), InvalidConfig> {
    let parsed: SmtpConfig = serde_path_to_error::deserialize(config.clone())
        .map_err(|error| invalid(&error.path().to_string(), error.inner()))?;
    let auth = parse_auth(&parsed.auth)?;
    if parsed.host.trim().is_empty() {
        return Err(invalid("host", "Required"));
    }
    if parsed.from_email.parse::<Mailbox>().is_err() {
        return Err(invalid("fromEmail", "Invalid email"));
    }
    if let Some(reply_to) = &parsed.reply_to
        && reply_to.parse::<Mailbox>().is_err()
    {
        return Err(invalid("replyTo", "Invalid email"));
    }
    for (index, template) in parsed.templates.iter().enumerate() {
        if UsageType::parse(&template.usage_type).is_none() {
            return Err(invalid(
                &format!("templates.{index}.usageType"),
                "Invalid enum value",
            ));
        }
        if !matches!(template.content_type.as_str(), "text/plain" | "text/html") {
            return Err(invalid(
                &format!("templates.{index}.contentType"),
                "Expected \"text/plain\" or \"text/html\"",
            ));
        }
    }
    for required in REQUIRED_TEMPLATES {
        if !parsed
            .templates
            .iter()
            .any(|t| t.usage_type == required.as_str())
        {
            return Err(invalid(
                "templates",
                format!("Template of usage type {} is required", required.as_str()),
            ));
        }
    }
    if let Some(ca) = parsed.tls.as_ref().and_then(|tls| tls.ca.as_ref()) {
        for pem in ca.values() {
            certificate(pem).ok_or_else(|| invalid("tls.ca", "Not a PEM certificate"))?;
        }
    }
    if let Some(address) = &parsed.local_address
        && address.parse::<IpAddr>().is_err()
    {
        return Err(invalid("localAddress", "Not an IP address"));
    }
    for (name, value) in parsed.custom_headers.iter().flatten() {
        let valid_value = match value {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if HeaderName::new_from_ascii(name.clone()).is_err() || !valid_value {
            return Err(invalid(
                &format!("customHeaders.{name}"),
                "Expected a header name with a string or an array of strings",
            ));
        }
    }
    Ok((parsed, auth))
}

/// A PEM certificate; text without one parses as an empty list, which would trust nothing.
fn certificate(pem: &str) -> Option<Certificate> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return None;
    }
    Certificate::from_pem(pem.as_bytes()).ok()
}

fn timeout(ms: Option<u64>, default: u64) -> Duration {
    Duration::from_millis(ms.unwrap_or(default))
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, SendError> {
    let options = config.tls.clone().unwrap_or_default();
    let domain = options
        .servername
        .clone()
        .or_else(|| config.servername.clone())
        .unwrap_or_else(|| config.host.clone());
    let mut builder = TlsParameters::builder(domain);
    if let Some(ca) = &options.ca {
        builder = builder.certificate_store(CertificateStore::None);
        for pem in ca.values() {
            builder = builder.add_root_certificate(
                certificate(pem)
                    .ok_or_else(|| SendError::permanent("tls.ca: not a PEM certificate"))?,
            );
        }
    }
    if options.min_version.as_deref() == Some("TLSv1.3") {
        builder = builder.set_min_tls_version(lettre::transport::smtp::client::TlsVersion::Tlsv13);
    }
    builder
        .dangerous_accept_invalid_certs(options.reject_unauthorized == Some(false))
        .build()
        .map_err(SendError::permanent)
}

fn credentials(auth: &Auth) -> Result<Option<(Credentials, Vec<Mechanism>)>, SendError> {
    match auth {
        Auth::Login(LoginAuth {
            user: Some(user),
            pass,
            ..
        }) => Ok(Some((
            Credentials::new(user.clone(), pass.clone().unwrap_or_default()),
            // The first the server offers, as nodemailer picks.
            vec![Mechanism::Plain, Mechanism::Login],
        ))),
        Auth::Login(LoginAuth { user: None, .. }) => Ok(None),
        Auth::OAuth2(OAuth2Auth {
            user,
            access_token: Some(token),
            ..
        }) => Ok(Some((
            Credentials::new(user.clone(), token.clone()),
            vec![Mechanism::Xoauth2],
        ))),
        Auth::OAuth2(OAuth2Auth {
            access_token: None, ..
        }) => Err(SendError::permanent(
            "OAuth2 needs an accessToken: minting one from a refresh token or a service \
             account key is not supported",
        )),
    }
}

fn mailbox(text: &str, key: &str) -> Result<Mailbox, SendError> {
    text.parse::<Mailbox>()
        .map_err(|error| SendError::permanent(format!("{key}: {error}")))
}

fn build_message(
    config: &SmtpConfig,
    mail: &Mail,
    rendered: &template::Rendered,
) -> Result<lettre::Message, SendError> {
    let mut builder = lettre::Message::builder()
        .from(mailbox(&config.from_email, "fromEmail")?)
        .to(mailbox(&mail.to, "to")?)
        .subject(rendered.subject.clone())
        // The idempotency key: a receiver (or a person) can tell a resent message apart.
        .message_id(Some(format!("<{}@idledger>", mail.message_id)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Idledger-Message-Id"),
            mail.message_id.clone(),
        ));
    if let Some(reply_to) = &config.reply_to {
        builder = builder.reply_to(mailbox(reply_to, "replyTo")?);
    }
    for (name, value) in config.custom_headers.iter().flatten() {
        let values: Vec<String> = match value {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for value in values {
            let header = HeaderName::new_from_ascii(name.clone()).map_err(SendError::permanent)?;
            builder = builder.raw_header(HeaderValue::new(header, value));
        }
    }
    let content_type = if rendered.html {
        ContentType::TEXT_HTML
    } else {
        ContentType::TEXT_PLAIN
    };
    builder
        .header(content_type)
        .body(rendered.body.clone())
        .map_err(SendError::permanent)
}

/// Runs one step under its timeout; a timeout is worth retrying.
async fn step<T>(
    limit: Duration,
    what: &str,
    work: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SendError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(SendError::from_smtp),
        Err(_) => Err(SendError::transient(format!(
            "{what} timed out after {} ms",
            limit.as_millis()
        ))),
    }
}

async fn deliver(config: &SmtpConfig, auth: &Auth, mail: &Mail) -> Result<(), SendError> {
    let templates = &config.templates;
    let chosen = template::select(templates, mail.usage_type, mail.ui_locales.as_deref())
        .ok_or_else(SendError::template_not_found)?;
    let rendered = template::render_message(chosen, &mail.payload).map_err(SendError::permanent)?;
    let message = build_message(config, mail, &rendered)?;
    let envelope = message.envelope().clone();
    let bytes = message.formatted();

    let hello = match &config.name {
        Some(name) => ClientId::Domain(name.clone()),
        None => ClientId::Ipv4(std::net::Ipv4Addr::LOCALHOST),
    };
    let connection = timeout(config.connection_timeout, CONNECTION_TIMEOUT_MS);
    let dns = timeout(config.dns_timeout, DNS_TIMEOUT_MS);
    let greeting = timeout(config.greeting_timeout, GREETING_TIMEOUT_MS);
    let socket = timeout(config.socket_timeout, SOCKET_TIMEOUT_MS);
    let secure = config.secure.unwrap_or(false);
    let tls = tls_parameters(config)?;
    let local_address = config.local_address.as_deref().and_then(|a| a.parse().ok());
    let mut smtp = step(
        dns.saturating_add(connection).saturating_add(greeting),
        "connecting",
        AsyncSmtpConnection::connect_tokio1(
            (config.host.as_str(), config.port),
            Some(connection),
            &hello,
            secure.then(|| tls.clone()),
            local_address,
        ),
    )
    .await?;
    if !secure && !config.ignore_tls.unwrap_or(false) {
        if smtp.can_starttls() {
            step(socket, "STARTTLS", smtp.starttls(tls, &hello)).await?;
        } else if config.require_tls.unwrap_or(false) {
            smtp.abort().await;
            return Err(SendError::transient(
                "the server does not offer STARTTLS, and requireTLS is set",
            ));
        }
    }
    if let Some((credentials, mechanisms)) = credentials(auth)? {
        step(
            socket,
            "authentication",
            smtp.auth(&mechanisms, &credentials),
        )
        .await?;
    }
    step(socket, "sending", smtp.send(&envelope, &bytes)).await?;
    // The message is accepted; a failed goodbye changes nothing.
    if tokio::time::timeout(socket, smtp.quit()).await.is_err() {
        tracing::debug!("SMTP QUIT timed out after the message was accepted");
    }
    Ok(())
}

fn readme() -> &'static str {
    "The SMTP connector sends verification codes and other emails through any SMTP server.\n\n\
     Set `host`, `port`, `auth` (`{\"user\", \"pass\"}` for a login, `{\"type\": \"OAuth2\", \
     \"user\", \"accessToken\"}` for XOAUTH2, or no user for relays that trust this server), \
     `fromEmail` and `templates` (with `usageType` Register, SignIn, ForgotPassword and Generic \
     at least). `{{code}}` in a template's `subject` or `content` is replaced by the code.\n"
}

fn config_template() -> String {
    json!({
        "host": "<smtp-host>",
        "port": 587,
        "auth": {"user": "<user>", "pass": "<password>"},
        "fromEmail": "<notice@your-domain.com>",
        "templates": REQUIRED_TEMPLATES.iter().map(|usage| json!({
            "usageType": usage.as_str(),
            "contentType": "text/plain",
            "subject": "Your verification code",
            "content": "Your verification code is {{code}}.",
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

#[async_trait]
impl Factory for Smtp {
    fn id(&self) -> &'static str {
        FACTORY_ID
    }

    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Email
    }

    fn metadata(&self) -> Value {
        json!({
            "id": FACTORY_ID,
            "target": "smtp",
            "platform": null,
            "name": {"en": "SMTP", "zh-CN": "SMTP", "tr-TR": "SMTP", "ko": "SMTP"},
            "logo": "./logo.svg",
            "logoDark": null,
            "description": {
                "en": "The Simple Mail Transfer Protocol (SMTP) is an internet standard communication protocol for electronic mail transmission.",
            },
            "readme": readme(),
            "configTemplate": config_template(),
        })
    }

    fn secret_pointers(&self) -> &'static [&'static str] {
        &[
            "/auth/pass",
            "/auth/accessToken",
            "/auth/refreshToken",
            "/auth/clientSecret",
            "/auth/privateKey",
            "/tls/key",
            "/tls/passphrase",
            "/tls/pfx",
        ]
    }

    fn validate(&self, config: &Value) -> Result<(), InvalidConfig> {
        parse(config).map(|_| ())
    }

    fn email(&self) -> Option<&dyn EmailFactory> {
        Some(self)
    }
}

#[async_trait]
impl EmailFactory for Smtp {
    async fn send(&self, config: &Value, mail: &Mail) -> Result<(), SendError> {
        let (config, auth) =
            parse(config).map_err(|InvalidConfig(details)| SendError::permanent(details))?;
        deliver(&config, &auth, mail).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({
            "host": "smtp.example.com",
            "port": 587,
            "auth": {"user": "u", "pass": "p"},
            "fromEmail": "Shop <no-reply@example.com>",
            "templates": REQUIRED_TEMPLATES.iter().map(|u| json!({
                "usageType": u.as_str(), "contentType": "text/plain",
                "subject": "s", "content": "{{code}}",
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn logtos_shape_validates_and_mistakes_name_their_key() {
        assert!(parse(&valid()).is_ok());
        let mut config = valid();
        config["templates"].as_array_mut().unwrap().remove(3);
        assert!(parse(&config).unwrap_err().0.contains("Generic"));
        let mut config = valid();
        config["port"] = json!("x");
        assert!(parse(&config).unwrap_err().0.contains("\"port\""));
        let mut config = valid();
        config["auth"] = json!({"user": "u", "pass": "p", "extra": 1});
        assert!(parse(&config).unwrap_err().0.contains("auth"));
        let mut config = valid();
        config["auth"] = json!({"type": "OAuth2", "user": "u", "accessToken": "t"});
        assert!(matches!(parse(&config).unwrap().1, Auth::OAuth2(_)));
        let mut config = valid();
        config["tls"] = json!({"ca": "not a pem"});
        assert!(parse(&config).unwrap_err().0.contains("tls.ca"));
    }

    #[test]
    fn a_relay_needs_no_credentials() {
        let mut config = valid();
        config["auth"] = json!({});
        let (_, auth) = parse(&config).unwrap();
        assert!(credentials(&auth).unwrap().is_none());
    }
}
