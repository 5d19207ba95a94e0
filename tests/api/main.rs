//! The black-box suite: the real `idledger` binary over HTTP against real PostgreSQL.

// A failed setup or expectation aborts the test, which is how a test reports it.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod support;

mod applications;
mod event_store;
mod experience;
mod management_auth;
mod oidc;
mod one_time_tokens;
mod organizations;
mod schemathesis;
mod sdk_e2e;
mod sign_in_experience;
mod signing_keys;
mod skeleton;
mod users;
