//! idledger: an event-sourced identity server with Logto's HTTP surface. See ARCHITECTURE.md.

pub mod app;
pub mod audit;
pub mod bootstrap;
pub mod config;
pub mod connectors;
pub mod crypto;
pub mod follow;
pub mod history;
pub mod http;
pub mod mail;
pub mod migrate;
pub mod outbound;
pub mod postgres;
pub mod sentinel;
pub mod store;
pub mod telemetry;
pub mod transfer;
pub mod webhooks;
