//! kvault: a key vault for Kubernetes that speaks the Azure Key Vault data-plane REST API.
//!
//! Modules follow the design's parts: `wire` (REST JSON types shared by server and client),
//! `server` (the data plane), `crypto` (sealing and key material), `client` (the typed
//! async client every other part uses), `cli` (the `kvault` command line) and `dev` (the
//! embedded-defaults vault for laptops and CI).
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod crypto;
pub mod dev;
pub mod error_chain;
pub mod identity;
pub mod listener;
pub mod openmetrics;
pub mod operator;
pub mod policy;
pub mod provider;
pub mod server;
pub mod signal;
pub mod wire;

/// Installs aws-lc-rs as the process-wide rustls crypto provider. Every TLS config in the
/// build (server, client, later kube and tonic) must use this one provider; installing it
/// first thing makes a second provider a start-up error instead of a runtime panic.
pub fn install_crypto_provider() {
    // An Err means a provider is already installed (tests call this repeatedly).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
