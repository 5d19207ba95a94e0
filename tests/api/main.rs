//! The black-box suite: the real `idledger` binary over HTTP against real PostgreSQL.

// A failed setup or expectation aborts the test, which is how a test reports it.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod support;
// The browser the sign-in tests share (cookies, redirects answered, the common steps).
mod browser;

mod account_linking;
mod applications;
mod audit;
mod bad_input;
mod connectors;
mod console_e2e;
mod email_codes;
mod email_e2e;
mod event_store;
mod experience;
mod history;
mod hooks;
mod id_token_config;
mod limits;
mod magic_links;
mod management_auth;
mod mfa;
mod mfa_browser;
mod oidc;
mod oidc_flows;
mod one_time_tokens;
mod organizations;
mod pages_e2e;
mod profiles;
mod reliability;
mod schemathesis;
mod sdk_e2e;
mod security_headers;
mod sign_in_experience;
mod signing_keys;
mod skeleton;
mod smtp_server;
mod social_oidc;
mod social_oidc_provider;
mod token_exchange;
mod users;
