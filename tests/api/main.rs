//! The black-box suite: the real `idledger` binary over HTTP against real PostgreSQL.

mod support;

mod applications;
mod event_store;
mod management_auth;
mod signing_keys;
mod skeleton;
