//! Integration tests: real `kvault server`s on loopback with real TLS and real storage.

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
