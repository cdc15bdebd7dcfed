//! The certificates API: create with a policy (self-signed, through a kvault CA issuer, or
//! pending a merge of a certificate signed elsewhere), import (PFX or PEM), get, update,
//! list, versions, policies, pending operations, delete / recover / purge and backup /
//! restore of the certificate together with its key and secret, issuers and contacts.
//!
//! A certificate owns a key and a secret of the same name (`managed`): one version id for
//! all three, written in one atomic batch, so none of them is ever visible without the
//! others.

use crate::crypto::keys::{Curve, KeyMaterial, KeyType};
use crate::crypto::x509::{self, CertRequest, Signer};
use crate::server::error::{ApiError, ApiResult};
use crate::server::keys::{KeyMeta, PublicJwk};
use crate::server::objects::{self, Backup, Family, Listing, SoftDelete};
use crate::server::ops::CertificatesOp;
use crate::server::request::{Reply, RequestContext};
use crate::server::secrets::SecretMeta;
use crate::server::state::AppState;
use crate::server::store::{
    Batch, CertificateState, Change, Deleted, Head, Kind, PendingOperation, StoreError, Version,
};
use crate::wire::{
    Action, BackupBlob, CertLifetimeAction, CertificateAttributes, CertificateBundle,
    CertificateCreateParameters, CertificateImportParameters, CertificateItem,
    CertificateMergeParameters, CertificateOperation, CertificateOperationUpdateParameter,
    CertificatePolicy, CertificateUpdateParameters, DeletedCertificateBundle,
    DeletedCertificateItem, IssuerParameters, KeyProperties, SecretProperties, Trigger,
    X509Properties, b64url,
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod import;
mod issuance;
pub mod issuers;
mod lifecycle;
mod manage;
mod policy;
pub mod renewal;
mod representation;
mod trio;

use import::*;
use issuance::*;
use lifecycle::*;
use manage::*;
use policy::*;
use representation::*;
use trio::*;

pub const FAMILY: Family = Family {
    kind: Kind::Certificate,
    title: "Certificate",
    not_found_code: "CertificateNotFound",
};

pub use crate::wire::certificates::{PEM, PFX};
const MAX_RETRIES: usize = 16;

/// What a certificate version has beyond the common attributes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CertMeta {
    /// The leaf, DER, standard base64.
    pub cer: String,
    /// The issuers above the leaf, DER, standard base64.
    #[serde(default)]
    pub chain: Vec<String>,
    /// SHA-1 thumbprint, base64url.
    pub x5t: String,
    pub content_type: String,
    /// `preserveCertOrder`: the secret holds the chain in the order it was given, not leaf
    /// first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_order: bool,
}

type CertHead = Head<CertMeta>;

fn std_b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn from_std_b64(s: &str) -> Option<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(clean.trim_end_matches('='))
        })
        .ok()
}

impl From<x509::X509Error> for ApiError {
    fn from(e: x509::X509Error) -> Self {
        ApiError::BadParameter(e.0)
    }
}

pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    op: CertificatesOp,
    body: &[u8],
) -> ApiResult<Reply> {
    use CertificatesOp as O;
    match op {
        O::Create { name } => create(state, ctx, &name, body).await,
        O::Import { name } => import(state, ctx, &name, body).await,
        O::Get { name, version } => get(state, ctx, &name, version.as_deref()).await,
        O::Update { name, version } => update(state, ctx, &name, version.as_deref(), body).await,
        O::List => list(state, ctx, false).await,
        O::ListDeleted => list(state, ctx, true).await,
        O::ListVersions { name } => versions(state, ctx, &name).await,
        O::GetPolicy { name } => {
            let head = FAMILY.live::<CertMeta>(&state.store, &name).await?;
            Reply::ok(&policy_of(ctx, &head))
        }
        O::UpdatePolicy { name } => update_policy(state, ctx, &name, body).await,
        O::GetOperation { name } => get_operation(state, ctx, &name).await,
        O::UpdateOperation { name } => cancel_operation(state, ctx, &name, body).await,
        O::DeleteOperation { name } => delete_operation(state, ctx, &name).await,
        O::Merge { name } => merge(state, ctx, &name, body).await,
        O::Delete { name } => delete(state, ctx, &name).await,
        O::GetDeleted { name } => {
            crate::server::lifecycle::get_deleted::<Certificates>(&state.store, ctx, &name).await
        }
        O::Recover { name } => recover(state, ctx, &name).await,
        O::Purge { name } => purge(state, ctx, &name).await,
        O::Backup { name } => backup(state, &name).await,
        O::Restore => restore(state, ctx, body).await,
        O::Contacts(op) => issuers::contacts(state, ctx, op, body).await,
        O::Issuers(op) => issuers::handle(state, ctx, op, body).await,
    }
}
