//! Integration tests: real `kvault server`s on loopback with real TLS and real storage.

// Test code may panic: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authz;
mod certificates;
mod cli;
mod common;
mod events;
mod ha;
mod issuers;
mod keys;
mod limits;
mod provider;
mod sdk_conformance;
mod secrets_api;
mod storage;
mod store_conformance;
mod tls;
mod tokens;
mod validation;
