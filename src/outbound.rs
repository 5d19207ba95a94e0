//! Outbound HTTP (webhooks, upstream identity providers): reqwest on rustls with aws-lc-rs, the
//! project's one crypto provider, and Mozilla's roots from webpki-roots.
//!
//! reqwest is built without a bundled provider (its default would pull in ring), so the process
//! must name one before the first client is built; `client_builder` does so once.

use std::sync::Once;

/// Makes aws-lc-rs the process's rustls provider. Idempotent; a provider someone installed
/// earlier (it can only be aws-lc-rs in this build) is left in place.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// How long an idle pooled connection is reused. Servers close idle connections (Node, and so
/// Logto, after 5 s; idledger after its header read timeout, 60 s by default); a connection
/// idle for longer is dropped at checkout rather than reused into a reset, even when the
/// client's runtime was too busy to notice the server's close.
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(4);

/// A client builder on the process's provider.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().pool_idle_timeout(POOL_IDLE)
}
