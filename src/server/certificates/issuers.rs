//! Certificate issuers (`/certificates/issuers/{name}`) and contacts
//! (`/certificates/contacts`), kept as sealed vault-level records.
//!
//! Beyond the cloud: an issuer with provider `kvault` signs with a CA certificate held in
//! this vault (`credentials.account_id` names it). The CA's key never leaves the vault.

use super::{CertMeta, FAMILY};
use crate::crypto::keys::KeyMaterial;
use crate::crypto::x509;
use crate::server::error::{ApiError, ApiResult};
use crate::server::objects;
use crate::server::ops::{ContactsOp, IssuersOp};
use crate::server::request::{PageRequest, Reply, RequestContext, paginate};
use crate::server::state::AppState;
use crate::server::store::{Kind, StoreError};
use crate::wire::{Contacts, IssuerAttributes, IssuerBundle, IssuerCredentials, IssuerItem};
use base64::Engine;

const CONTACTS: &str = "contacts";
/// The providers kvault can issue through: its own CA issuer. Others are stored (the SDKs
/// manage them) but cannot issue.
pub const KVAULT_PROVIDER: &str = "kvault";

fn record(name: &str) -> String {
    format!("issuer/{}", name.to_ascii_lowercase())
}

fn issuer_not_found(name: &str) -> ApiError {
    ApiError::NotFound {
        code: "CertificateIssuerNotFound",
        message: format!("Issuer not found: {}", objects::printable(name)),
    }
}

/// The bundle as returned: the password never leaves the vault.
fn shown(ctx: &RequestContext, name: &str, mut b: IssuerBundle) -> IssuerBundle {
    b.id = Some(format!("{}/certificates/issuers/{name}", ctx.origin));
    if let Some(c) = b.credentials.as_mut() {
        c.pwd = None;
    }
    b
}

async fn load(state: &AppState, name: &str) -> ApiResult<Option<(IssuerBundle, Vec<u8>)>> {
    match state.store.meta(&record(name)).await? {
        None => Ok(None),
        Some((plain, raw)) => Ok(Some((
            serde_json::from_slice(&plain).map_err(|_| ApiError::Integrity)?,
            raw,
        ))),
    }
}

async fn save(
    state: &AppState,
    name: &str,
    b: &IssuerBundle,
    expect: Option<Vec<u8>>,
) -> ApiResult<()> {
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(b).map_err(|_| ApiError::Internal)?);
    match state.store.put_meta(&record(name), &bytes, expect).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(ApiError::Conflict {
            message: "The issuer changed concurrently; retry.".into(),
            inner: None,
        }),
        Err(e) => Err(e.into()),
    }
}

fn validate(b: &IssuerBundle) -> ApiResult<()> {
    let provider = b
        .provider
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("An issuer needs a provider."))?;
    if provider.eq_ignore_ascii_case(KVAULT_PROVIDER)
        && b.credentials
            .as_ref()
            .and_then(|c| c.account_id.as_deref())
            .is_none_or(|a| objects::validate_name(a).is_err())
    {
        return Err(ApiError::bad(
            "A kvault issuer names its CA certificate in credentials.account_id.",
        ));
    }
    Ok(())
}

pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    op: IssuersOp,
    body: &[u8],
) -> ApiResult<Reply> {
    let now = state.clock.now();
    match &op {
        IssuersOp::List => {
            let page = PageRequest::from_query(&ctx.query)?;
            let mut items = Vec::new();
            for (key, plain) in state.store.meta_scan("issuer/").await? {
                let b: IssuerBundle =
                    serde_json::from_slice(&plain).map_err(|_| ApiError::Integrity)?;
                let name = key.trim_start_matches("issuer/").to_string();
                items.push((
                    name.clone(),
                    IssuerItem {
                        id: format!("{}/certificates/issuers/{name}", ctx.origin),
                        provider: b.provider,
                    },
                ));
            }
            items.sort_by(|a, b| a.0.cmp(&b.0));
            Reply::ok(&paginate(
                items,
                &page,
                &format!("{}/certificates/issuers", ctx.origin),
                &ctx.api_version,
            ))
        }
        IssuersOp::Get { name } => {
            objects::validate_name(name)?;
            let (b, _) = load(state, name)
                .await?
                .ok_or_else(|| issuer_not_found(name))?;
            Reply::ok(&shown(ctx, name, b))
        }
        IssuersOp::Set { name } => {
            objects::validate_name(name)?;
            let mut b: IssuerBundle = objects::parse_json(body)?;
            validate(&b)?;
            let existing = load(state, name).await?;
            let created = existing
                .as_ref()
                .and_then(|(e, _)| e.attributes.as_ref().and_then(|a| a.created))
                .unwrap_or(now);
            b.id = None;
            b.attributes = Some(IssuerAttributes {
                enabled: Some(
                    b.attributes
                        .as_ref()
                        .and_then(|a| a.enabled)
                        .unwrap_or(true),
                ),
                created: Some(created),
                updated: Some(now),
            });
            save(state, name, &b, existing.map(|(_, raw)| raw)).await?;
            Reply::ok(&shown(ctx, name, b))
        }
        IssuersOp::Update { name } => {
            objects::validate_name(name)?;
            let patch: IssuerBundle = objects::parse_json(body)?;
            let (mut b, raw) = load(state, name)
                .await?
                .ok_or_else(|| issuer_not_found(name))?;
            if patch.provider.is_some() {
                b.provider = patch.provider;
            }
            if let Some(c) = patch.credentials {
                let cur = b.credentials.get_or_insert_with(IssuerCredentials::default);
                if c.account_id.is_some() {
                    cur.account_id = c.account_id;
                }
                if c.pwd.is_some() {
                    cur.pwd = c.pwd;
                }
            }
            if patch.org_details.is_some() {
                b.org_details = patch.org_details;
            }
            let attrs = b.attributes.get_or_insert_with(IssuerAttributes::default);
            if let Some(e) = patch.attributes.and_then(|a| a.enabled) {
                attrs.enabled = Some(e);
            }
            attrs.updated = Some(now);
            validate(&b)?;
            save(state, name, &b, Some(raw)).await?;
            Reply::ok(&shown(ctx, name, b))
        }
        IssuersOp::Delete { name } => {
            objects::validate_name(name)?;
            let (b, raw) = load(state, name)
                .await?
                .ok_or_else(|| issuer_not_found(name))?;
            state.store.delete_meta(&record(name), raw).await?;
            Reply::ok(&shown(ctx, name, b))
        }
    }
}

pub async fn contacts(
    state: &AppState,
    ctx: &RequestContext,
    op: ContactsOp,
    body: &[u8],
) -> ApiResult<Reply> {
    let id = format!("{}/certificates/contacts", ctx.origin);
    let stored = state.store.meta(CONTACTS).await?;
    let not_found = || ApiError::NotFound {
        code: "ContactsNotFound",
        // The cloud's wording; clients match on "not found".
        message: "Contacts not found".into(),
    };
    match op {
        ContactsOp::Get => {
            let (plain, _) = stored.ok_or_else(not_found)?;
            let mut c: Contacts =
                serde_json::from_slice(&plain).map_err(|_| ApiError::Integrity)?;
            c.id = Some(id);
            Reply::ok(&c)
        }
        ContactsOp::Set => {
            let mut c: Contacts = objects::parse_json(body)?;
            if c.contacts
                .iter()
                .any(|x| x.email.as_deref().is_none_or(|e| !e.contains('@')))
            {
                return Err(ApiError::bad("Every contact needs an email address."));
            }
            c.id = None;
            let bytes = serde_json::to_vec(&c).map_err(|_| ApiError::Internal)?;
            state
                .store
                .put_meta(CONTACTS, &bytes, stored.map(|(_, raw)| raw))
                .await
                .map_err(|e| match e {
                    StoreError::Conflict => ApiError::Conflict {
                        message: "The contacts changed concurrently; retry.".into(),
                        inner: None,
                    },
                    other => other.into(),
                })?;
            c.id = Some(id);
            Reply::ok(&c)
        }
        ContactsOp::Delete => {
            let (plain, raw) = stored.ok_or_else(not_found)?;
            let mut c: Contacts =
                serde_json::from_slice(&plain).map_err(|_| ApiError::Integrity)?;
            state.store.delete_meta(CONTACTS, raw).await?;
            c.id = Some(id);
            Reply::ok(&c)
        }
    }
}

/// A kvault issuer's CA: its certificate chain (CA first) and key.
pub struct CaMaterial {
    pub chain: Vec<Vec<u8>>,
    pub key: KeyMaterial,
}

/// Resolves an issuer name to the kvault CA it signs with.
pub async fn kvault_ca(state: &AppState, issuer: &str) -> ApiResult<CaMaterial> {
    let (b, _) = load(state, issuer).await?.ok_or_else(|| {
        ApiError::bad(format!(
            "Issuer '{}' does not exist: use Self, Unknown, or create the issuer first.",
            objects::printable(issuer)
        ))
    })?;
    let provider = b.provider.clone().unwrap_or_default();
    if !provider.eq_ignore_ascii_case(KVAULT_PROVIDER) {
        return Err(ApiError::bad(format!(
            "Issuer '{}' uses provider '{}', which this vault cannot reach; kvault issues through Self, Unknown (merge) or '{KVAULT_PROVIDER}' issuers.",
            objects::printable(issuer),
            objects::printable(&provider)
        )));
    }
    if b.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
        return Err(ApiError::bad(format!(
            "Issuer '{}' is disabled.",
            objects::printable(issuer)
        )));
    }
    let ca_name = b.credentials.and_then(|c| c.account_id).unwrap_or_default();
    let head = FAMILY
        .live::<CertMeta>(&state.store, &ca_name)
        .await
        .map_err(|_| {
            ApiError::bad(format!(
                "The CA certificate '{}' of issuer '{}' does not exist.",
                objects::printable(&ca_name),
                objects::printable(issuer)
            ))
        })?;
    let v = head
        .current()
        .ok_or_else(|| ApiError::bad("The issuer's CA certificate has no version."))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut chain = vec![b64.decode(&v.meta.cer).map_err(|_| ApiError::Integrity)?];
    for c in &v.meta.chain {
        chain.push(b64.decode(c).map_err(|_| ApiError::Integrity)?);
    }
    if !x509::parse(chain.first().ok_or(ApiError::Integrity)?)?.is_ca {
        return Err(ApiError::bad(format!(
            "Certificate '{}' is not a CA (basic_constraints.ca is false) and cannot issue.",
            objects::printable(&ca_name)
        )));
    }
    let key = KeyMaterial::from_stored(&state.store.value(Kind::Key, &head.name, &v.id).await?)
        .map_err(|_| ApiError::Integrity)?;
    Ok(CaMaterial { chain, key })
}
