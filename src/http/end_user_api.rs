//! The OpenAPI description of the end-user APIs that `/api/swagger.json` serves beside the
//! Management API: the Experience API (`/api/experience/*`, credential: the `_interaction`
//! cookie set by the authorization endpoint), the Account API (`/api/my-account/*`, credential:
//! an end user's opaque access token) and the verification records behind its sensitive changes
//! (`/api/verifications/*`). Their handlers are plain axum routes owned by the flows
//! (`experience/`, `account*.rs`, `verifications.rs`), so their contract is written here as one
//! table rather than as annotations scattered over those files; `tests/api/schemathesis.rs`
//! checks every path here is routed (never the fallback 404) and drives it with generated
//! requests.

use serde_json::{Value, json};

/// The error statuses every end-user route can answer with Logto's error shape, as the
/// Management API's `COMMON_ERRORS`: bad input, a missing or foreign credential, absence,
/// conflicts, oversized bodies, business-rule refusals and outages.
const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "The request is invalid (or the interaction/verification it names is gone).",
    ),
    ("401", "The credential is missing or invalid."),
    ("403", "The credential does not allow this."),
    ("404", "The resource does not exist."),
    ("405", "The method is not allowed on this route."),
    ("409", "Concurrent modification; retry."),
    ("413", "The request body is too large."),
    (
        "422",
        "The request conflicts with the rules or existing data.",
    ),
    ("503", "The database is unavailable; retry."),
];

/// Who may call: the interaction cookie, or an end user's access token.
#[derive(Clone, Copy)]
enum Credential {
    Interaction,
    Account,
}

struct Operation {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    credential: Credential,
    body: Option<Value>,
    /// `(status, body schema)` of success.
    ok: (&'static str, Option<Value>),
    /// The `logto-verification-id` header a sensitive Account API change requires.
    verification_header: bool,
    /// One more answer: `(status, description, whether its body is the error shape)`.
    also: Option<(&'static str, &'static str, bool)>,
}

/// A code to a phone number needs an SMS connector; there is none, and Logto then answers 501.
const NO_SMS_CONNECTOR: (&str, &str, bool) = (
    "501",
    "The identifier is a phone number and no SMS connector exists (`connector.not_found`).",
    true,
);

fn error_ref() -> Value {
    json!({ "$ref": "#/components/schemas/ErrorBody" })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn identifier() -> Value {
    object(
        &["type", "value"],
        json!({
            "type": { "type": "string", "enum": ["username", "email", "phone"] },
            "value": string(),
        }),
    )
}

fn interaction_event() -> Value {
    json!({ "type": "string", "enum": ["SignIn", "Register", "ForgotPassword"] })
}

fn verification_id() -> Value {
    object(&["verificationId"], json!({ "verificationId": string() }))
}

fn record_created(with_uri: bool) -> Value {
    let mut properties = json!({
        "verificationRecordId": string(),
        "expiresAt": { "type": "string", "description": "ISO 8601 time." },
    });
    if with_uri {
        properties["authorizationUri"] = string();
    }
    object(&["verificationRecordId", "expiresAt"], properties)
}

fn operations() -> Vec<Operation> {
    use Credential::{Account, Interaction};
    let op = |method, path, summary, credential, body, ok| Operation {
        method,
        path,
        summary,
        credential,
        body,
        ok,
        verification_header: false,
        also: None,
    };
    let event_body = object(
        &["interactionEvent"],
        json!({ "interactionEvent": interaction_event() }),
    );
    let password_body = |identified: bool| {
        if identified {
            object(
                &["identifier", "password"],
                json!({ "identifier": identifier(), "password": string() }),
            )
        } else {
            object(&["password"], json!({ "password": string() }))
        }
    };
    vec![
        op(
            "put",
            "/api/experience",
            "Start the interaction's flow (sign-in, registration or password reset).",
            Interaction,
            Some(event_body.clone()),
            ("204", None),
        ),
        op(
            "put",
            "/api/experience/interaction-event",
            "Change the interaction's event.",
            Interaction,
            Some(event_body),
            ("204", None),
        ),
        op(
            "get",
            "/api/experience/interaction",
            "The interaction's state, without secrets.",
            Interaction,
            None,
            (
                "200",
                Some(object(
                    &[
                        "interactionEvent",
                        "profile",
                        "mfa",
                        "verificationRecords",
                        "captcha",
                    ],
                    json!({
                        "interactionEvent": interaction_event(),
                        "userId": { "type": ["string", "null"] },
                        "profile": { "type": "object" },
                        "mfa": { "type": "object" },
                        "verificationRecords": { "type": "array", "items": object(
                            &["id", "type", "verified"],
                            json!({ "id": string(), "type": {}, "verified": { "type": "boolean" } }),
                        ) },
                        "captcha": { "type": "object" },
                    }),
                )),
            ),
        ),
        op(
            "post",
            "/api/experience/verification/password",
            "Verify an identifier's password.",
            Interaction,
            Some(password_body(true)),
            ("200", Some(verification_id())),
        ),
        op(
            "post",
            "/api/experience/verification/new-password-identity",
            "Register a username with a password (the identifier type must be `username`).",
            Interaction,
            Some(password_body(true)),
            ("200", Some(verification_id())),
        ),
        op(
            "post",
            "/api/experience/verification/one-time-token/verify",
            "Verify a one-time token (magic link) for an email identifier.",
            Interaction,
            Some(object(
                &["token", "identifier"],
                json!({ "token": string(), "identifier": identifier() }),
            )),
            ("200", Some(verification_id())),
        ),
        Operation {
            also: Some(NO_SMS_CONNECTOR),
            ..op(
                "post",
                "/api/experience/verification/verification-code",
                "Send a verification code to an email identifier.",
                Interaction,
                Some(object(
                    &["identifier", "interactionEvent"],
                    json!({ "identifier": identifier(), "interactionEvent": interaction_event() }),
                )),
                ("200", Some(verification_id())),
            )
        },
        Operation {
            also: Some(NO_SMS_CONNECTOR),
            ..op(
                "post",
                "/api/experience/verification/verification-code/verify",
                "Verify a sent code.",
                Interaction,
                Some(object(
                    &["identifier", "verificationId", "code"],
                    json!({ "identifier": identifier(), "verificationId": string(), "code": string() }),
                )),
                ("200", Some(verification_id())),
            )
        },
        op(
            "post",
            "/api/experience/verification/social/{connector_id}/authorization-uri",
            "Start a social sign-in: the provider's authorization URI.",
            Interaction,
            Some(object(
                &["state", "redirectUri"],
                json!({ "state": string(), "redirectUri": string() }),
            )),
            (
                "200",
                Some(object(
                    &["verificationId", "authorizationUri"],
                    json!({ "verificationId": string(), "authorizationUri": string() }),
                )),
            ),
        ),
        op(
            "post",
            "/api/experience/verification/social/{connector_id}/verify",
            "Verify the provider's answer (its callback parameters).",
            Interaction,
            Some(object(
                &["connectorData", "verificationId"],
                json!({ "connectorData": { "type": "object" }, "verificationId": string() }),
            )),
            ("200", Some(verification_id())),
        ),
        op(
            "post",
            "/api/experience/verification/totp/secret",
            "A new TOTP secret to bind.",
            Interaction,
            None,
            (
                "200",
                Some(object(
                    &["verificationId", "secret", "secretQrCode"],
                    json!({ "verificationId": string(), "secret": string(), "secretQrCode": string() }),
                )),
            ),
        ),
        op(
            "post",
            "/api/experience/verification/totp/verify",
            "Verify a TOTP code.",
            Interaction,
            Some(object(
                &["code"],
                json!({ "code": string(), "verificationId": string() }),
            )),
            ("200", Some(verification_id())),
        ),
        op(
            "post",
            "/api/experience/verification/backup-code/generate",
            "New backup codes to bind.",
            Interaction,
            None,
            (
                "200",
                Some(object(
                    &["verificationId", "codes"],
                    json!({ "verificationId": string(), "codes": { "type": "array", "items": string() } }),
                )),
            ),
        ),
        op(
            "post",
            "/api/experience/verification/backup-code/verify",
            "Verify a backup code.",
            Interaction,
            Some(object(&["code"], json!({ "code": string() }))),
            ("200", Some(verification_id())),
        ),
        Operation {
            also: Some(("201", "The user was registered.", false)),
            ..op(
                "post",
                "/api/experience/identification",
                "Identify the user by a verification (204), or register them (201).",
                Interaction,
                Some(object(&[], json!({ "verificationId": string() }))),
                ("204", None),
            )
        },
        op(
            "post",
            "/api/experience/profile",
            "Fill in the identified user's username or password.",
            Interaction,
            Some(object(
                &["type", "value"],
                json!({
                    "type": { "type": "string", "enum": ["username", "password"] },
                    "value": string(),
                }),
            )),
            ("204", None),
        ),
        op(
            "put",
            "/api/experience/profile/password",
            "Set the new password of a password reset.",
            Interaction,
            Some(password_body(false)),
            ("204", None),
        ),
        op(
            "post",
            "/api/experience/profile/mfa",
            "Bind a verified MFA factor.",
            Interaction,
            Some(object(
                &["type", "verificationId"],
                json!({
                    "type": { "type": "string", "enum": ["Totp", "BackupCode"] },
                    "verificationId": string(),
                }),
            )),
            ("204", None),
        ),
        op(
            "post",
            "/api/experience/profile/mfa/mfa-skipped",
            "Skip the optional MFA binding.",
            Interaction,
            None,
            ("204", None),
        ),
        op(
            "post",
            "/api/experience/submit",
            "Finish the interaction: where to send the browser.",
            Interaction,
            None,
            (
                "200",
                Some(object(&["redirectTo"], json!({ "redirectTo": string() }))),
            ),
        ),
        op(
            "get",
            "/api/my-account",
            "The signed-in user's profile.",
            Account,
            None,
            (
                "200",
                Some(json!({ "$ref": "#/components/schemas/UserResponse" })),
            ),
        ),
        op(
            "patch",
            "/api/my-account/custom-data",
            "Shallow-merge into the user's custom data.",
            Account,
            Some(object(
                &["customData"],
                json!({ "customData": { "type": "object" } }),
            )),
            ("200", Some(json!({ "type": "object" }))),
        ),
        op(
            "get",
            "/api/my-account/identities/{target}/access-token",
            "The social provider's access token of a linked identity, refreshed if near expiry.",
            Account,
            None,
            (
                "200",
                Some(object(
                    &["access_token", "token_type"],
                    json!({
                        "access_token": string(),
                        "token_type": string(),
                        "scope": string(),
                        "expires_at": { "type": "integer", "description": "Seconds since the epoch." },
                    }),
                )),
            ),
        ),
        Operation {
            verification_header: true,
            ..op(
                "post",
                "/api/my-account/identities",
                "Link a social identity proven by a verification record.",
                Account,
                Some(object(
                    &["newIdentifierVerificationRecordId"],
                    json!({ "newIdentifierVerificationRecordId": string() }),
                )),
                ("204", None),
            )
        },
        Operation {
            verification_header: true,
            ..op(
                "delete",
                "/api/my-account/identities/{target}",
                "Unlink a social identity.",
                Account,
                None,
                ("204", None),
            )
        },
        op(
            "post",
            "/api/verifications/password",
            "Prove the user's identity with their password, for a sensitive change.",
            Account,
            Some(password_body(false)),
            ("201", Some(record_created(false))),
        ),
        Operation {
            also: Some(NO_SMS_CONNECTOR),
            ..op(
                "post",
                "/api/verifications/verification-code",
                "Mail a code to the user's primary email, to prove their identity.",
                Account,
                Some(object(
                    &["identifier"],
                    json!({ "identifier": identifier() }),
                )),
                ("201", Some(record_created(false))),
            )
        },
        Operation {
            also: Some(NO_SMS_CONNECTOR),
            ..op(
                "post",
                "/api/verifications/verification-code/verify",
                "Verify the mailed code of the record.",
                Account,
                Some(object(
                    &["identifier", "verificationId", "code"],
                    json!({ "identifier": identifier(), "verificationId": string(), "code": string() }),
                )),
                (
                    "200",
                    Some(object(
                        &["verificationRecordId"],
                        json!({ "verificationRecordId": string() }),
                    )),
                ),
            )
        },
        op(
            "post",
            "/api/verifications/social",
            "Start proving a new social identity.",
            Account,
            Some(object(
                &["connectorId", "redirectUri", "state"],
                json!({
                    "connectorId": string(), "redirectUri": string(), "state": string(),
                }),
            )),
            ("201", Some(record_created(true))),
        ),
        op(
            "post",
            "/api/verifications/social/verify",
            "Verify the provider's answer for the record.",
            Account,
            Some(object(
                &["verificationRecordId", "connectorData"],
                json!({
                    "verificationRecordId": string(), "connectorData": { "type": "object" },
                }),
            )),
            (
                "200",
                Some(object(
                    &["verificationRecordId"],
                    json!({ "verificationRecordId": string() }),
                )),
            ),
        ),
    ]
}

fn describe(operation: &Operation) -> Value {
    let mut responses = serde_json::Map::new();
    let (status, schema) = &operation.ok;
    responses.insert(
        (*status).to_owned(),
        match schema {
            Some(schema) => json!({
                "description": "Success.",
                "content": { "application/json": { "schema": schema } },
            }),
            None => json!({ "description": "Success, no body." }),
        },
    );
    if let Some((status, description, error_body)) = operation.also {
        let mut response = json!({ "description": description });
        if error_body {
            response["content"] = json!({ "application/json": { "schema": error_ref() } });
        }
        responses.insert(status.to_owned(), response);
    }
    for (status, description) in ERRORS {
        responses.insert(
            (*status).to_owned(),
            json!({
                "description": description,
                "content": { "application/json": { "schema": error_ref() } },
            }),
        );
    }
    let mut parameters: Vec<Value> = operation
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": string() }))
        .collect();
    if operation.verification_header {
        parameters.push(json!({
            "name": crate::http::verifications::VERIFICATION_ID_HEADER,
            "in": "header",
            "required": true,
            "description": "A verification record proving the user's identity (`POST /api/verifications/password`).",
            "schema": string(),
        }));
    }
    let (tag, scheme) = match operation.credential {
        Credential::Interaction => ("Experience", "interactionCookie"),
        Credential::Account => (
            if operation.path.starts_with("/api/verifications") {
                "Verifications"
            } else {
                "Account"
            },
            "accountToken",
        ),
    };
    let mut described = json!({
        "tags": [tag],
        "summary": operation.summary,
        "parameters": parameters,
        "responses": responses,
        "security": [{ scheme: [] }],
    });
    if let Some(body) = &operation.body {
        described["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": body } },
        });
    }
    described
}

/// Adds the end-user APIs' paths and security schemes to the served document (the Management
/// API's, as JSON; it references that document's `ErrorBody` and `UserResponse` schemas).
pub fn merge_into(document: &mut Value) {
    for operation in operations() {
        document["paths"][operation.path][operation.method] = describe(&operation);
    }
    let schemes = json!({
            "interactionCookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": crate::http::oidc::INTERACTION_COOKIE,
                "description": "The interaction the authorization endpoint (`/oidc/auth`) started.",
            },
            "accountToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "An end user's opaque access token from `/oidc/token` (Account API).",
            },
    });
    for (name, scheme) in schemes.as_object().into_iter().flatten() {
        document["components"]["securitySchemes"][name] = scheme.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_described_once() {
        let mut document = json!({ "paths": { "/api/users": { "get": { "responses": {} } } } });
        merge_into(&mut document);
        // Still a valid OpenAPI document.
        let document = json!({ "openapi": "3.1.0", "info": { "title": "t", "version": "1" },
            "paths": document["paths"], "components": document["components"] });
        let parsed: utoipa::openapi::OpenApi = serde_json::from_value(document.clone()).unwrap();
        let distinct: std::collections::BTreeSet<_> = operations().iter().map(|o| o.path).collect();
        assert_eq!(parsed.paths.paths.len(), 1 + distinct.len());
        let described: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(described, 1 + operations().len());
        let unlink = &document["paths"]["/api/my-account/identities/{target}"]["delete"];
        assert_eq!(unlink["parameters"][0]["name"], "target");
        assert_eq!(unlink["parameters"][1]["in"], "header");
        assert_eq!(unlink["security"][0]["accountToken"], json!([]));
    }
}
