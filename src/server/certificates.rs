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
use crate::server::AppState;
use crate::server::error::{ApiError, ApiResult};
use crate::server::http::{PageRequest, Reply, RequestContext, paginate};
use crate::server::keys::{KeyMeta, PublicJwk};
use crate::server::objects::{self, Backup, Family, Listing, SoftDelete};
use crate::server::ops::Operation;
use crate::server::secrets::SecretMeta;
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

pub mod issuers;
pub mod renewal;

pub const FAMILY: Family = Family {
    kind: Kind::Certificate,
    title: "Certificate",
    not_found_code: "CertificateNotFound",
};

pub const PFX: &str = "application/x-pkcs12";
pub const PEM: &str = "application/x-pem-file";
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
    op: Operation,
    body: &[u8],
) -> ApiResult<Reply> {
    use Operation as O;
    match op {
        O::CreateCertificate { name } => create(state, ctx, &name, body).await,
        O::ImportCertificate { name } => import(state, ctx, &name, body).await,
        O::GetCertificate { name, version } => get(state, ctx, &name, version.as_deref()).await,
        O::UpdateCertificate { name, version } => {
            update(state, ctx, &name, version.as_deref(), body).await
        }
        O::ListCertificates => list(state, ctx, false).await,
        O::ListDeletedCertificates => list(state, ctx, true).await,
        O::ListCertificateVersions { name } => versions(state, ctx, &name).await,
        O::GetCertificatePolicy { name } => {
            let head = FAMILY.live::<CertMeta>(&state.store, &name).await?;
            Reply::ok(&policy_of(ctx, &head))
        }
        O::UpdateCertificatePolicy { name } => update_policy(state, ctx, &name, body).await,
        O::GetCertificateOperation { name } => get_operation(state, ctx, &name).await,
        O::UpdateCertificateOperation { name } => cancel_operation(state, ctx, &name, body).await,
        O::DeleteCertificateOperation { name } => delete_operation(state, ctx, &name).await,
        O::MergeCertificate { name } => merge(state, ctx, &name, body).await,
        O::DeleteCertificate { name } => delete(state, ctx, &name).await,
        O::GetDeletedCertificate { name } => {
            let head = FAMILY.deleted::<CertMeta>(&state.store, &name).await?;
            deleted_reply(ctx, &head)
        }
        O::RecoverDeletedCertificate { name } => recover(state, ctx, &name).await,
        O::PurgeDeletedCertificate { name } => purge(state, ctx, &name).await,
        O::BackupCertificate { name } => backup(state, &name).await,
        O::RestoreCertificate => restore(state, ctx, body).await,
        O::GetContacts | O::SetContacts | O::DeleteContacts => {
            issuers::contacts(state, ctx, &op, body).await
        }
        O::ListIssuers
        | O::GetIssuer { .. }
        | O::SetIssuer { .. }
        | O::UpdateIssuer { .. }
        | O::DeleteIssuer { .. } => issuers::handle(state, ctx, &op, body).await,
        other => {
            tracing::error!(
                operation = other.name(),
                "a non-certificate operation reached the certificates API"
            );
            Err(ApiError::Internal)
        }
    }
}

// ---------- policy ----------

const DEFAULT_EKUS: [&str; 2] = ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"];

/// Fills a policy's gaps with the cloud's stored defaults and checks it.
pub fn complete_policy(given: &CertificatePolicy, now: i64) -> ApiResult<CertificatePolicy> {
    let mut p = given.clone();
    p.id = None;
    let mut kp = p.key_props.clone().unwrap_or_default();
    let kty = kp.kty.clone().unwrap_or_else(|| "RSA".into());
    match kty.as_str() {
        "RSA" => {
            let size = kp.key_size.unwrap_or(2048);
            if !matches!(size, 2048 | 3072 | 4096) {
                return Err(ApiError::bad(
                    "key_props.key_size must be 2048, 3072 or 4096 for RSA.",
                ));
            }
            kp.key_size = Some(size);
            kp.crv = None;
        }
        "EC" => {
            // The cloud echoes an EC policy's key_size (the curve's size) as given, and
            // names the curve from it when crv is absent.
            let crv = match (kp.crv.clone(), kp.key_size) {
                (Some(crv), _) => crv,
                (None, Some(size)) => ec_curve_of_size(size)
                    .ok_or_else(|| {
                        ApiError::bad("key_props.key_size must be 256, 384 or 521 for EC.")
                    })?
                    .into(),
                (None, None) => "P-256".into(),
            };
            let Some(curve_size) = ec_size_of_curve(&crv) else {
                return Err(ApiError::bad(
                    "key_props.crv must be P-256, P-384 or P-521 for a certificate.",
                ));
            };
            if kp.key_size.is_some_and(|size| size != curve_size) {
                return Err(ApiError::bad(format!(
                    "key_props.key_size must be {curve_size} for curve {crv}."
                )));
            }
            kp.crv = Some(crv);
        }
        "RSA-HSM" | "EC-HSM" => {
            return Err(ApiError::bad(format!(
                "Key type {kty} needs a hardware security module, and this vault has none."
            )));
        }
        other => {
            return Err(ApiError::bad(format!(
                "key_props.kty '{}' is not a certificate key type: use RSA or EC.",
                objects::printable(other)
            )));
        }
    }
    kp.kty = Some(kty);
    kp.exportable = Some(kp.exportable.unwrap_or(true));
    kp.reuse_key = Some(kp.reuse_key.unwrap_or(false));
    p.key_props = Some(kp);
    let ct = p
        .secret_props
        .as_ref()
        .and_then(|s| s.content_type.clone())
        .unwrap_or_else(|| PFX.into());
    if ct != PFX && ct != PEM {
        return Err(ApiError::bad(format!(
            "secret_props.contentType must be {PFX} or {PEM}."
        )));
    }
    p.secret_props = Some(SecretProperties {
        content_type: Some(ct),
    });
    if let Some(pm) = &p.platform_managed
        && pm.certificate_usage.trim().is_empty()
    {
        return Err(ApiError::bad(
            "platformManaged.certificateUsage must not be empty.",
        ));
    }
    // A platform-managed policy may leave the subject to the platform.
    if !names_a_subject(&p) && p.platform_managed.is_none() {
        return Err(ApiError::bad(
            "A certificate policy needs a subject or at least one SAN.",
        ));
    }
    let mut x = p.x509_props.clone().unwrap_or_default();
    let sans = x.sans.clone().unwrap_or_default();
    x.sans = Some(sans);
    if x.ekus.is_none() {
        x.ekus = Some(DEFAULT_EKUS.iter().map(|s| s.to_string()).collect());
    }
    if x.key_usage.is_none() {
        x.key_usage = Some(vec!["digitalSignature".into(), "keyEncipherment".into()]);
    }
    let months = x.validity_months.unwrap_or(12);
    if !(1..=1200).contains(&months) {
        return Err(ApiError::bad(
            "x509_props.validity_months must be 1 to 1200.",
        ));
    }
    x.validity_months = Some(months);
    if x.basic_constraints.is_none() {
        x.basic_constraints = Some(Default::default());
    }
    p.x509_props = Some(x);
    if p.lifetime_actions.is_none() {
        p.lifetime_actions = Some(vec![CertLifetimeAction {
            trigger: Trigger {
                lifetime_percentage: Some(80),
                days_before_expiry: None,
            },
            action: Action {
                action_type: "AutoRenew".into(),
            },
        }]);
    }
    for a in p.lifetime_actions.iter().flatten() {
        match (a.trigger.lifetime_percentage, a.trigger.days_before_expiry) {
            (Some(pct), None) if (1..=99).contains(&pct) => {}
            (None, Some(d)) if d >= 1 => {}
            _ => {
                return Err(ApiError::bad(
                    "A lifetime action's trigger needs exactly one of lifetime_percentage (1-99) and days_before_expiry.",
                ));
            }
        }
        if !matches!(a.action.action_type.as_str(), "AutoRenew" | "EmailContacts") {
            return Err(ApiError::bad(
                "A lifetime action is AutoRenew or EmailContacts.",
            ));
        }
    }
    let issuer = p.issuer.clone().unwrap_or_default();
    p.issuer = Some(IssuerParameters {
        name: Some(issuer.name.unwrap_or_else(|| "Self".into())),
        ..issuer
    });
    let mut attrs = p.attributes.clone().unwrap_or_default();
    attrs.enabled = Some(attrs.enabled.unwrap_or(true));
    attrs.created = attrs.created.or(Some(now));
    attrs.updated = Some(now);
    p.attributes = Some(CertificateAttributes {
        enabled: attrs.enabled,
        created: attrs.created,
        updated: attrs.updated,
        ..Default::default()
    });
    Ok(p)
}

fn ec_size_of_curve(crv: &str) -> Option<u32> {
    match crv {
        "P-256" => Some(256),
        "P-384" => Some(384),
        "P-521" => Some(521),
        _ => None,
    }
}

fn ec_curve_of_size(size: u32) -> Option<&'static str> {
    match size {
        256 => Some("P-256"),
        384 => Some("P-384"),
        521 => Some("P-521"),
        _ => None,
    }
}

/// Whether the vault can issue under this policy: a platform-managed policy without a subject
/// or SAN names a certificate only the cloud's platform issuer makes.
fn names_a_subject(p: &CertificatePolicy) -> bool {
    let x = p.x509_props.clone().unwrap_or_default();
    let sans = x.sans.unwrap_or_default();
    x.subject.as_deref().is_some_and(|s| !s.is_empty())
        || [
            &sans.dns_names,
            &sans.emails,
            &sans.upns,
            &sans.uris,
            &sans.ip_addresses,
        ]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
}

pub fn request_from_policy(p: &CertificatePolicy, now: i64) -> ApiResult<CertRequest> {
    let x = p.x509_props.clone().unwrap_or_default();
    let sans = x.sans.clone().unwrap_or_default();
    let ips = sans
        .ip_addresses
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            s.parse().map_err(|_| {
                ApiError::bad(format!("'{}' is not an IP address.", objects::printable(s)))
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(CertRequest {
        subject: x.subject.unwrap_or_default(),
        dns_names: sans.dns_names.unwrap_or_default(),
        emails: sans.emails.unwrap_or_default(),
        upns: sans.upns.unwrap_or_default(),
        uris: sans.uris.unwrap_or_default(),
        ip_addresses: ips,
        key_usage: x.key_usage.unwrap_or_default(),
        ekus: x.ekus.unwrap_or_default(),
        validity_months: x.validity_months.unwrap_or(12),
        ca: x.basic_constraints.is_some_and(|b| b.ca),
        now,
    })
}

fn policy_of(ctx: &RequestContext, head: &CertHead) -> CertificatePolicy {
    let mut p = head
        .certificate
        .as_ref()
        .map(|c| c.policy.clone())
        .unwrap_or_default();
    p.id = Some(format!("{}/certificates/{}/policy", ctx.origin, head.name));
    p
}

// ---------- representation ----------

fn attributes(ctx: &RequestContext, v: &Version<CertMeta>) -> CertificateAttributes {
    CertificateAttributes {
        enabled: Some(v.enabled),
        nbf: v.nbf,
        exp: v.exp,
        created: Some(v.created),
        updated: Some(v.updated),
        recovery_level: Some(ctx.soft_delete.recovery_level().to_string()),
        recoverable_days: Some(ctx.soft_delete.retention_days),
    }
}

fn bundle(ctx: &RequestContext, head: &CertHead, v: &Version<CertMeta>) -> CertificateBundle {
    CertificateBundle {
        id: format!("{}/certificates/{}/{}", ctx.origin, head.name, v.id),
        kid: Some(format!("{}/keys/{}/{}", ctx.origin, head.name, v.id)),
        sid: Some(format!("{}/secrets/{}/{}", ctx.origin, head.name, v.id)),
        x5t: Some(v.meta.x5t.clone()),
        cer: Some(v.meta.cer.clone()),
        content_type: Some(v.meta.content_type.clone()),
        attributes: attributes(ctx, v),
        tags: v.tags.clone(),
        policy: Some(policy_of(ctx, head)),
        preserve_cert_order: v.meta.preserve_order.then_some(true),
        pending: None,
    }
}

fn item(
    ctx: &RequestContext,
    head: &CertHead,
    v: &Version<CertMeta>,
    versioned: bool,
) -> CertificateItem {
    CertificateItem {
        id: if versioned {
            format!("{}/certificates/{}/{}", ctx.origin, head.name, v.id)
        } else {
            format!("{}/certificates/{}", ctx.origin, head.name)
        },
        attributes: attributes(ctx, v),
        tags: v.tags.clone(),
        x5t: Some(v.meta.x5t.clone()),
    }
}

fn operation(ctx: &RequestContext, head: &CertHead, op: &PendingOperation) -> CertificateOperation {
    CertificateOperation {
        id: format!("{}/certificates/{}/pending", ctx.origin, head.name),
        issuer: Some(IssuerParameters {
            name: Some(op.issuer.clone()),
            ..Default::default()
        }),
        csr: op.csr.clone(),
        cancellation_requested: op.cancellation_requested,
        status: op.status.clone(),
        status_details: status_details(&op.issuer, &op.status).map(str::to_string),
        error: op.error.clone(),
        target: Some(format!("{}/certificates/{}", ctx.origin, head.name)),
        request_id: Some(op.request_id.clone()),
        preserve_cert_order: op.preserve_cert_order.then_some(true),
    }
}

/// The cloud's `status_details` of an operation in progress: an `Unknown` issuer waits for
/// the caller's merge, any other for the issuer.
fn status_details(issuer: &str, status: &str) -> Option<&'static str> {
    if status != "inProgress" {
        return None;
    }
    Some(if issuer.eq_ignore_ascii_case("Unknown") {
        "Pending certificate created. Please Perform Merge to complete the request."
    } else {
        "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later."
    })
}

fn deleted_reply(ctx: &RequestContext, head: &CertHead) -> ApiResult<Reply> {
    let v = head
        .current()
        .ok_or_else(|| FAMILY.deleted_not_found(&head.name))?;
    Reply::ok(&DeletedCertificateBundle {
        certificate: bundle(ctx, head, v),
        deletion: FAMILY.deletion_info(&ctx.origin, head),
    })
}

fn current_reply(ctx: &RequestContext, head: &CertHead) -> ApiResult<Reply> {
    let v = head.current().ok_or_else(|| FAMILY.not_found(&head.name))?;
    Reply::ok(&bundle(ctx, head, v))
}

// ---------- the three objects of a certificate, written together ----------

/// The current heads of a certificate's three objects, with their raw records for the
/// conditional write.
struct Trio {
    cert: Option<CertHead>,
    cert_raw: Option<Vec<u8>>,
    key: Option<Head<KeyMeta>>,
    key_raw: Option<Vec<u8>>,
    secret: Option<Head<SecretMeta>>,
    secret_raw: Option<Vec<u8>>,
}

async fn load_trio(state: &AppState, name: &str) -> ApiResult<Trio> {
    let (cert, cert_raw) = state
        .store
        .head_for_update::<CertMeta>(Kind::Certificate, name)
        .await?;
    let (key, key_raw) = state
        .store
        .head_for_update::<KeyMeta>(Kind::Key, name)
        .await?;
    let (secret, secret_raw) = state
        .store
        .head_for_update::<SecretMeta>(Kind::Secret, name)
        .await?;
    Ok(Trio {
        cert,
        cert_raw,
        key,
        key_raw,
        secret,
        secret_raw,
    })
}

impl Trio {
    /// A certificate may not take over a key or secret that is not its own.
    fn check_free(&self, name: &str) -> ApiResult<()> {
        if let Some(c) = &self.cert
            && c.deleted.is_some()
        {
            return Err(FAMILY.deleted_conflict(&c.name));
        }
        let foreign_key = self
            .key
            .as_ref()
            .is_some_and(|k| k.deleted.is_some() || k.versions.iter().any(|v| !v.meta.managed));
        let foreign_secret = self
            .secret
            .as_ref()
            .is_some_and(|s| s.deleted.is_some() || s.versions.iter().any(|v| !v.meta.managed));
        if foreign_key || foreign_secret {
            return Err(ApiError::Conflict {
                message: format!(
                    "A key or secret named {name} exists and does not belong to a certificate; the certificate cannot use the name."
                ),
                inner: None,
            });
        }
        Ok(())
    }

    fn stage(
        self,
        state: &AppState,
        name: &str,
        cert: Change<CertMeta>,
        key: Change<KeyMeta>,
        secret: Change<SecretMeta>,
    ) -> ApiResult<Batch> {
        let mut batch = Batch::default();
        let s = &state.store;
        s.stage(&mut batch, Kind::Certificate, name, self.cert_raw, cert)?;
        s.stage(&mut batch, Kind::Key, name, self.key_raw, key)?;
        s.stage(&mut batch, Kind::Secret, name, self.secret_raw, secret)?;
        Ok(batch)
    }
}

/// Retries a read-decide-write of the three objects when another writer won the race.
async fn with_trio<R>(
    state: &AppState,
    name: &str,
    mut decide: impl FnMut(Trio) -> ApiResult<(Batch, R)>,
) -> ApiResult<R> {
    for attempt in 0..MAX_RETRIES {
        let trio = load_trio(state, name).await?;
        let (batch, r) = decide(trio)?;
        let announces = crate::server::events::stages_events(&batch);
        match state.store.commit(batch).await {
            Ok(()) => {
                if announces {
                    state.events.wake();
                }
                return Ok(r);
            }
            Err(StoreError::Conflict) => {
                crate::server::store::after_conflict(attempt).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable)
}

/// A freshly issued (or imported, or merged) version of a certificate.
pub struct Issued {
    pub version: String,
    pub key: KeyMaterial,
    /// Leaf first; in the order given when `preserve_order`.
    pub chain: Vec<Vec<u8>>,
    pub preserve_order: bool,
    pub policy: CertificatePolicy,
    pub enabled: bool,
    pub tags: Option<crate::wire::Tags>,
    pub now: i64,
}

fn secret_value(
    key: &KeyMaterial,
    chain: &[Vec<u8>],
    content_type: &str,
    exportable: bool,
) -> ApiResult<Zeroizing<Vec<u8>>> {
    let key = exportable.then_some(key);
    if content_type == PEM {
        Ok(Zeroizing::new(
            x509::pem_bundle(key, chain).as_bytes().to_vec(),
        ))
    } else {
        Ok(Zeroizing::new(
            std_b64(&x509::pfx(key, chain)?).into_bytes(),
        ))
    }
}

/// Builds the three new versions and stages them (and the state) on top of `trio`.
fn stage_issued(
    state: &AppState,
    name: &str,
    trio: Trio,
    issued: &Issued,
    op: Option<PendingOperation>,
) -> ApiResult<(Batch, CertHead)> {
    // The leaf is the certificate of the key: first, unless the given order was kept.
    let leaf_at = if issued.preserve_order {
        issued
            .chain
            .iter()
            .position(|c| x509::key_matches(c, &issued.key).unwrap_or(false))
            .ok_or_else(|| ApiError::bad("No certificate in the chain matches the key."))?
    } else {
        0
    };
    let leaf = issued
        .chain
        .get(leaf_at)
        .ok_or_else(|| ApiError::bad("no certificate"))?;
    let parsed = x509::parse(leaf)?;
    let content_type = issued
        .policy
        .secret_props
        .as_ref()
        .and_then(|s| s.content_type.clone())
        .unwrap_or_else(|| PFX.into());
    let exportable = issued
        .policy
        .key_props
        .as_ref()
        .and_then(|k| k.exportable)
        .unwrap_or(true);
    let public = issued.key.public_parts();
    let kmeta = KeyMeta {
        kty: issued.key.kty().as_str().into(),
        key_size: issued.key.size_bits(),
        crv: issued.key.curve().map(|c| c.as_str().into()),
        key_ops: match issued.key.kty() {
            KeyType::Ec => vec!["sign".into(), "verify".into()],
            _ => vec![
                "sign".into(),
                "verify".into(),
                "encrypt".into(),
                "decrypt".into(),
                "wrapKey".into(),
                "unwrapKey".into(),
            ],
        },
        exportable,
        release_policy: None,
        public: PublicJwk {
            n: public.n.as_deref().map(b64url),
            e: public.e.as_deref().map(b64url),
            x: public.x.as_deref().map(b64url),
            y: public.y.as_deref().map(b64url),
        },
        managed: true,
    };
    let versioned = |mut v: Version<()>| {
        v.enabled = issued.enabled;
        v.nbf = Some(parsed.nbf);
        v.exp = Some(parsed.exp);
        v.tags = issued.tags.clone();
        v
    };
    let base = versioned(Version::new(issued.version.clone(), issued.now, ()));
    let with = |meta| with_meta(&base, meta);
    let cmeta = CertMeta {
        cer: std_b64(leaf),
        chain: issued
            .chain
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leaf_at)
            .map(|(_, c)| std_b64(c))
            .collect(),
        x5t: b64url(&x509::thumbprint(leaf)),
        content_type: content_type.clone(),
        preserve_order: issued.preserve_order,
    };
    let smeta = SecretMeta {
        content_type: Some(content_type.clone()),
        managed: true,
        kid: Some(format!("/keys/{name}/{}", issued.version)),
    };
    let mut cert = trio.cert.clone().unwrap_or_else(|| Head::new(name));
    let mut key = trio.key.clone().unwrap_or_else(|| Head::new(name));
    let mut secret = trio.secret.clone().unwrap_or_else(|| Head::new(name));
    cert.versions.push(with(cmeta));
    key.versions.push(with_meta(&base, kmeta));
    secret.versions.push(with_meta(&base, smeta));
    let previous = cert.certificate.take();
    cert.certificate = Some(CertificateState {
        policy: issued.policy.clone(),
        pending: op,
        notified_version: previous.and_then(|p| p.notified_version),
    });
    let secret_bytes = secret_value(&issued.key, &issued.chain, &content_type, exportable)?;
    let mut batch = trio.stage(
        state,
        name,
        Change::Put {
            head: cert.clone(),
            values: vec![(issued.version.clone(), Zeroizing::new(leaf.clone()))],
        },
        Change::Put {
            head: key,
            values: vec![(issued.version.clone(), issued.key.to_stored())],
        },
        Change::Put {
            head: secret,
            values: vec![(issued.version.clone(), secret_bytes)],
        },
    )?;
    // The certificate's new version is also one of its key and of its secret: each raises
    // its `…NewVersionCreated` event, in the same batch.
    let rt = state.policy.current();
    let cv = cert.current().ok_or(ApiError::Internal)?;
    let versions = [Kind::Certificate, Kind::Key, Kind::Secret]
        .map(|kind| crate::server::events::ObjectVersion::of(kind, &cert.name, cv));
    state.events.stage_new_versions(
        &state.store,
        rt.policy.doc.events.as_ref(),
        &mut batch,
        &versions,
    )?;
    Ok((batch, cert))
}

fn with_meta<M>(base: &Version<()>, meta: M) -> Version<M> {
    Version {
        id: base.id.clone(),
        created: base.created,
        updated: base.updated,
        enabled: base.enabled,
        nbf: base.nbf,
        exp: base.exp,
        tags: base.tags.clone(),
        meta,
    }
}

fn put_or_keep<M>(h: Option<Head<M>>) -> Change<M> {
    match h {
        Some(head) => Change::Put {
            head,
            values: vec![],
        },
        None => Change::Keep,
    }
}

// ---------- create, renew, merge ----------

fn key_for_policy(p: &CertificatePolicy) -> ApiResult<(KeyType, Option<u32>, Option<Curve>)> {
    let kp = p.key_props.clone().unwrap_or_default();
    match kp.kty.as_deref() {
        Some("EC") => Ok((
            KeyType::Ec,
            None,
            Some(
                kp.crv
                    .as_deref()
                    .and_then(Curve::parse)
                    .unwrap_or(Curve::P256),
            ),
        )),
        _ => Ok((KeyType::Rsa, Some(kp.key_size.unwrap_or(2048)), None)),
    }
}

/// Issues a new version under `policy` (create and AutoRenew): `Self` and kvault-provider
/// issuers complete at once; `Unknown` leaves a pending operation with a CSR.
pub async fn issue_new_version(
    state: &AppState,
    name: &str,
    policy: CertificatePolicy,
    enabled: bool,
    tags: Option<crate::wire::Tags>,
    preserve_order: bool,
) -> ApiResult<CertHead> {
    let now = state.clock.now();
    if !names_a_subject(&policy) {
        return store_platform_managed(state, name, policy, preserve_order).await;
    }
    let issuer_name = policy
        .issuer
        .as_ref()
        .and_then(|i| i.name.clone())
        .unwrap_or_else(|| "Self".into());
    let request = request_from_policy(&policy, now)?;
    let version = crate::crypto::new_version_id().map_err(|_| ApiError::Internal)?;
    // The key: the current one when the policy says reuse_key, else a new one.
    let reuse = policy
        .key_props
        .as_ref()
        .and_then(|k| k.reuse_key)
        .unwrap_or(false);
    let existing = match state.store.head::<KeyMeta>(Kind::Key, name).await? {
        Some(h) if reuse && h.deleted.is_none() => match h.current() {
            Some(v) => Some(
                KeyMaterial::from_stored(&state.store.value(Kind::Key, name, &v.id).await?)
                    .map_err(|_| ApiError::Integrity)?,
            ),
            None => None,
        },
        _ => None,
    };
    let key = match existing {
        Some(k) => k,
        None => {
            let (kty, size, crv) = key_for_policy(&policy)?;
            crate::server::keys::generate(kty, size, None, crv).await?
        }
    };
    let request_id = crate::crypto::new_version_id().map_err(|_| ApiError::Internal)?;
    if issuer_name.eq_ignore_ascii_case("Unknown") {
        let csr = x509::csr(&request, &key)?;
        let op = PendingOperation {
            version: version.clone(),
            issuer: "Unknown".into(),
            status: "inProgress".into(),
            csr: Some(std_b64(&csr)),
            cancellation_requested: false,
            error: None,
            request_id,
            enabled: Some(enabled),
            tags: tags.clone(),
            preserve_cert_order: preserve_order,
        };
        let stored_key = key.to_stored();
        return with_trio(state, name, |trio| {
            trio.check_free(name)?;
            let mut cert = trio.cert.clone().unwrap_or_else(|| Head::new(name));
            let notified = cert.certificate.take().and_then(|c| c.notified_version);
            cert.certificate = Some(CertificateState {
                policy: policy.clone(),
                pending: Some(op.clone()),
                notified_version: notified,
            });
            // The private key waits, sealed, under the version id it will get.
            let batch = trio.stage(
                state,
                name,
                Change::Put {
                    head: cert.clone(),
                    values: vec![(version.clone(), stored_key.clone())],
                },
                Change::Keep,
                Change::Keep,
            )?;
            Ok((batch, cert))
        })
        .await;
    }
    let chain = if issuer_name.eq_ignore_ascii_case("Self") {
        vec![x509::issue(&request, &key, Signer::SelfSigned)?]
    } else {
        let ca = issuers::kvault_ca(state, &issuer_name).await?;
        let leaf = x509::issue(
            &request,
            &key,
            Signer::Ca {
                cert_der: &ca.chain[0],
                key: &ca.key,
            },
        )?;
        let mut chain = vec![leaf];
        chain.extend(ca.chain);
        chain
    };
    let issued = Issued {
        version: version.clone(),
        key,
        chain,
        preserve_order,
        policy: policy.clone(),
        enabled,
        tags,
        now,
    };
    let op = PendingOperation {
        version,
        issuer: issuer_name,
        status: "completed".into(),
        csr: None,
        cancellation_requested: false,
        error: None,
        request_id,
        enabled: None,
        tags: None,
        preserve_cert_order: preserve_order,
    };
    with_trio(state, name, |trio| {
        trio.check_free(name)?;
        stage_issued(state, name, trio, &issued, Some(op.clone()))
    })
    .await
}

/// A platform-managed policy without a subject: kvault has no platform issuer, so, as the
/// cloud does when an issuer is not available, the policy is kept and the operation fails
/// (the caller sees the reason in the operation's error).
async fn store_platform_managed(
    state: &AppState,
    name: &str,
    policy: CertificatePolicy,
    preserve_order: bool,
) -> ApiResult<CertHead> {
    let issuer = policy
        .issuer
        .as_ref()
        .and_then(|i| i.name.clone())
        .unwrap_or_else(|| "Self".into());
    let op = PendingOperation {
        version: crate::crypto::new_version_id().map_err(|_| ApiError::Internal)?,
        issuer,
        status: "failed".into(),
        error: Some(crate::wire::OperationError {
            code: "IssuerNotAvailable".into(),
            message: "The platform issuer of platform-managed certificates is not available in this vault; the policy is stored, and a certificate can be imported or issued once the policy names a subject or SAN.".into(),
        }),
        request_id: crate::crypto::new_version_id().map_err(|_| ApiError::Internal)?,
        preserve_cert_order: preserve_order,
        ..Default::default()
    };
    with_trio(state, name, |trio| {
        trio.check_free(name)?;
        let mut cert = trio.cert.clone().unwrap_or_else(|| Head::new(name));
        let notified = cert.certificate.take().and_then(|c| c.notified_version);
        cert.certificate = Some(CertificateState {
            policy: policy.clone(),
            pending: Some(op.clone()),
            notified_version: notified,
        });
        let batch = trio.stage(
            state,
            name,
            Change::Put {
                head: cert.clone(),
                values: vec![],
            },
            Change::Keep,
            Change::Keep,
        )?;
        Ok((batch, cert))
    })
    .await
}

async fn create(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let p: CertificateCreateParameters = objects::parse_json(body)?;
    objects::validate_tags(&p.tags)?;
    let now = state.clock.now();
    let existing = state
        .store
        .head::<CertMeta>(Kind::Certificate, name)
        .await?;
    if let Some(h) = &existing
        && h.deleted.is_some()
    {
        return Err(FAMILY.deleted_conflict(&h.name));
    }
    let given = match (
        &p.policy,
        existing.as_ref().and_then(|h| h.certificate.as_ref()),
    ) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => c.policy.clone(),
        (None, None) => {
            return Err(ApiError::bad(
                "A certificate policy is required to create a certificate.",
            ));
        }
    };
    let policy = complete_policy(&given, now)?;
    let enabled = p
        .attributes
        .as_ref()
        .and_then(|a| a.enabled)
        .unwrap_or(true);
    let preserve_order = p.preserve_cert_order.unwrap_or(false);
    let head =
        issue_new_version(state, name, policy, enabled, p.tags.clone(), preserve_order).await?;
    let op = head
        .certificate
        .as_ref()
        .and_then(|c| c.pending.clone())
        .ok_or(ApiError::Internal)?;
    let mut reply = operation(ctx, &head, &op);
    // The SDKs' pollers want `inProgress` first (an outcome in the first answer leaves them
    // without a result); the next GET of the operation says `completed` or `failed`
    // (issuance itself was synchronous).
    if matches!(reply.status.as_str(), "completed" | "failed") {
        reply.status = "inProgress".into();
        reply.status_details = status_details(&op.issuer, &reply.status).map(str::to_string);
        reply.error = None;
    }
    let bytes = serde_json::to_vec(&reply).map_err(|_| ApiError::Internal)?;
    Ok(Reply::Json(axum::http::StatusCode::ACCEPTED, bytes))
}

async fn merge(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let p: CertificateMergeParameters = objects::parse_json(body)?;
    objects::validate_tags(&p.tags)?;
    let mut chain = Vec::new();
    for entry in &p.x5c {
        chain.extend(x509::x5c_entry(entry)?);
    }
    if chain.is_empty() {
        return Err(ApiError::bad("x5c needs at least the signed certificate."));
    }
    let head = FAMILY.live::<CertMeta>(&state.store, name).await;
    let head = match head {
        Ok(h) => h,
        Err(_) => state
            .store
            .head::<CertMeta>(Kind::Certificate, name)
            .await?
            .filter(|h| h.deleted.is_none())
            .ok_or_else(|| pending_not_found(name))?,
    };
    let cs = head
        .certificate
        .clone()
        .ok_or_else(|| pending_not_found(name))?;
    let op = cs
        .pending
        .clone()
        .filter(|o| o.status == "inProgress" && o.issuer.eq_ignore_ascii_case("Unknown"))
        .ok_or_else(|| pending_not_found(name))?;
    let key = KeyMaterial::from_stored(
        &state
            .store
            .value(Kind::Certificate, &head.name, &op.version)
            .await?,
    )
    .map_err(|_| ApiError::Integrity)?;
    // The signed certificate may come anywhere in x5c; unless the caller asked to keep the
    // order, it leads, as the cloud stores it.
    let leaf_at = chain
        .iter()
        .position(|c| x509::key_matches(c, &key).unwrap_or(false))
        .ok_or_else(|| {
            ApiError::bad(
                "The merged certificate's public key does not match the pending request's key.",
            )
        })?;
    if !op.preserve_cert_order {
        let leaf = chain.remove(leaf_at);
        chain.insert(0, leaf);
    }
    let issued = Issued {
        version: op.version.clone(),
        key,
        chain,
        preserve_order: op.preserve_cert_order,
        policy: cs.policy.clone(),
        enabled: p
            .attributes
            .as_ref()
            .and_then(|a| a.enabled)
            .or(op.enabled)
            .unwrap_or(true),
        tags: p.tags.clone().or(op.tags.clone()),
        now: state.clock.now(),
    };
    let mut done = op.clone();
    done.status = "completed".into();
    let head = with_trio(state, name, |trio| {
        if trio
            .cert
            .as_ref()
            .and_then(|c| c.certificate.as_ref())
            .and_then(|c| c.pending.as_ref())
            .is_none_or(|o| o.version != op.version || o.status != "inProgress")
        {
            return Err(pending_not_found(name));
        }
        stage_issued(state, name, trio, &issued, Some(done.clone()))
    })
    .await?;
    let v = head.current().ok_or(ApiError::Internal)?;
    let bytes = serde_json::to_vec(&bundle(ctx, &head, v)).map_err(|_| ApiError::Internal)?;
    Ok(Reply::Json(axum::http::StatusCode::CREATED, bytes))
}

fn pending_not_found(name: &str) -> ApiError {
    ApiError::NotFound {
        code: "PendingCertificateNotFound",
        message: format!(
            "Pending certificate not found: {}",
            objects::printable(name)
        ),
    }
}

async fn pending_head(state: &AppState, name: &str) -> ApiResult<(CertHead, PendingOperation)> {
    objects::validate_name(name)?;
    let head = state
        .store
        .head::<CertMeta>(Kind::Certificate, name)
        .await?
        .filter(|h| h.deleted.is_none())
        .ok_or_else(|| pending_not_found(name))?;
    let op = head
        .certificate
        .as_ref()
        .and_then(|c| c.pending.clone())
        .ok_or_else(|| pending_not_found(name))?;
    Ok((head, op))
}

async fn get_operation(state: &AppState, ctx: &RequestContext, name: &str) -> ApiResult<Reply> {
    let (head, op) = pending_head(state, name).await?;
    Reply::ok(&operation(ctx, &head, &op))
}

async fn modify_operation(
    state: &AppState,
    name: &str,
    change: impl Fn(&mut CertHead) -> ApiResult<Option<PendingOperation>>,
) -> ApiResult<(CertHead, PendingOperation)> {
    state
        .store
        .modify::<CertMeta, _, ApiError>(Kind::Certificate, name, |cur| {
            let mut head = cur
                .filter(|h| h.deleted.is_none())
                .ok_or_else(|| pending_not_found(name))?;
            let before = head
                .certificate
                .as_ref()
                .and_then(|c| c.pending.clone())
                .ok_or_else(|| pending_not_found(name))?;
            let after = change(&mut head)?;
            let shown = after.clone().unwrap_or(before);
            if let Some(c) = head.certificate.as_mut() {
                c.pending = after;
            }
            Ok((
                Change::Put {
                    head: head.clone(),
                    values: vec![],
                },
                (head, shown),
            ))
        })
        .await
}

async fn cancel_operation(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    let p: CertificateOperationUpdateParameter = objects::parse_json(body)?;
    let (head, op) = modify_operation(state, name, |head| {
        let mut op = head
            .certificate
            .as_ref()
            .and_then(|c| c.pending.clone())
            .ok_or_else(|| pending_not_found(name))?;
        if p.cancellation_requested && op.status == "inProgress" {
            op.cancellation_requested = true;
            op.status = "cancelled".into();
        }
        Ok(Some(op))
    })
    .await?;
    Reply::ok(&operation(ctx, &head, &op))
}

async fn delete_operation(state: &AppState, ctx: &RequestContext, name: &str) -> ApiResult<Reply> {
    let (head, op) = modify_operation(state, name, |_| Ok(None)).await?;
    Reply::ok(&operation(ctx, &head, &op))
}

// ---------- import ----------

async fn import(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let p: CertificateImportParameters = objects::parse_json(body)?;
    objects::validate_tags(&p.tags)?;
    let raw = Zeroizing::new(if p.value.trim_start().starts_with("-----BEGIN") {
        p.value.as_bytes().to_vec()
    } else {
        from_std_b64(&p.value)
            .ok_or_else(|| ApiError::bad("value must be a base64 PFX or PEM file."))?
    });
    let is_pem =
        raw.starts_with(b"-----BEGIN") || raw.windows(10).take(64).any(|w| w == b"-----BEGIN");
    let imported = if is_pem {
        x509::import_pem(&raw)?
    } else {
        x509::import_pfx(&raw, p.pwd.as_deref().unwrap_or(""))?
    };
    let now = state.clock.now();
    let parsed = x509::parse(&imported.chain[0])?;
    // The stored policy: the given one, completed from what the certificate says.
    let mut given = p.policy.clone().unwrap_or_default();
    let kp = given.key_props.get_or_insert_with(KeyProperties::default);
    kp.kty = Some(imported.key.kty().as_str().into());
    match imported.key.kty() {
        KeyType::Ec => kp.crv = imported.key.curve().map(|c| c.as_str().into()),
        _ => kp.key_size = Some(imported.key.size_bits()),
    }
    let sp = given
        .secret_props
        .get_or_insert_with(SecretProperties::default);
    if sp.content_type.is_none() {
        sp.content_type = Some(if is_pem { PEM } else { PFX }.into());
    }
    let x = given.x509_props.get_or_insert_with(X509Properties::default);
    if x.subject.is_none() {
        x.subject = Some(parsed.subject.clone());
    }
    if x.validity_months.is_none() {
        x.validity_months =
            Some((((parsed.exp - parsed.nbf) / (30 * 86_400)).clamp(1, 1200)) as u32);
    }
    if given.issuer.is_none() {
        given.issuer = Some(IssuerParameters {
            name: Some("Unknown".into()),
            ..Default::default()
        });
    }
    let policy = complete_policy(&given, now)?;
    let preserve_order = p.preserve_cert_order.unwrap_or(false);
    let issued = Issued {
        version: crate::crypto::new_version_id().map_err(|_| ApiError::Internal)?,
        key: imported.key,
        chain: if preserve_order {
            imported.as_given
        } else {
            imported.chain
        },
        preserve_order,
        policy,
        enabled: p
            .attributes
            .as_ref()
            .and_then(|a| a.enabled)
            .unwrap_or(true),
        tags: p.tags.clone(),
        now,
    };
    let head = with_trio(state, name, |trio| {
        trio.check_free(name)?;
        stage_issued(state, name, trio, &issued, None)
    })
    .await?;
    current_reply(ctx, &head)
}

// ---------- read and manage ----------

async fn get(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    version: Option<&str>,
) -> ApiResult<Reply> {
    let head = FAMILY.live::<CertMeta>(&state.store, name).await?;
    if version.is_none()
        && head.current().is_none()
        && let Some(b) = pending_bundle(ctx, &head)
    {
        return Reply::ok(&b);
    }
    let v = FAMILY.pick(&head, name, version)?;
    Reply::ok(&bundle(ctx, &head, v))
}

/// What the cloud answers for a certificate whose first version is still being issued: the
/// version to come, disabled, without a certificate, with its policy and a pointer to the
/// pending operation (the JavaScript SDK reads the certificate before its operation).
fn pending_bundle(ctx: &RequestContext, head: &CertHead) -> Option<CertificateBundle> {
    let state = head.certificate.as_ref()?;
    let op = state
        .pending
        .as_ref()
        .filter(|op| op.status == "inProgress")?;
    let policy = policy_of(ctx, head);
    let times = policy.attributes.clone().unwrap_or_default();
    Some(CertificateBundle {
        id: format!("{}/certificates/{}/{}", ctx.origin, head.name, op.version),
        attributes: CertificateAttributes {
            enabled: Some(false),
            created: times.created,
            updated: times.updated,
            recovery_level: Some(ctx.soft_delete.recovery_level().to_string()),
            recoverable_days: Some(ctx.soft_delete.retention_days),
            ..Default::default()
        },
        tags: op.tags.clone(),
        policy: Some(policy),
        preserve_cert_order: op.preserve_cert_order.then_some(true),
        pending: Some(crate::wire::PendingReference {
            id: format!("{}/certificates/{}/pending", ctx.origin, head.name),
        }),
        ..Default::default()
    })
}

async fn update(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    version: Option<&str>,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let p: CertificateUpdateParameters = objects::parse_json(body)?;
    objects::validate_tags(&p.tags)?;
    let now = state.clock.now();
    let new_policy = match &p.policy {
        Some(given) => {
            let current = state
                .store
                .head::<CertMeta>(Kind::Certificate, name)
                .await?
                .and_then(|h| h.certificate.map(|c| c.policy))
                .unwrap_or_default();
            Some(complete_policy(&merge_policy(&current, given), now)?)
        }
        None => None,
    };
    let (head, id) = with_trio(state, name, |trio| {
        let mut cert = trio
            .cert
            .clone()
            .filter(|h| h.deleted.is_none() && !h.versions.is_empty())
            .ok_or_else(|| FAMILY.not_found(name))?;
        let id = FAMILY.pick(&cert, name, version)?.id.clone();
        let enabled = p.attributes.as_ref().and_then(|a| a.enabled);
        apply_update_in(&mut cert, &id, enabled, &p.tags, now);
        if let (Some(np), Some(c)) = (&new_policy, cert.certificate.as_mut()) {
            c.policy = np.clone();
        }
        let mut key = trio.key.clone();
        let mut secret = trio.secret.clone();
        if let Some(k) = key.as_mut() {
            apply_update_in(k, &id, enabled, &p.tags, now);
        }
        if let Some(s) = secret.as_mut() {
            apply_update_in(s, &id, enabled, &p.tags, now);
        }
        let batch = trio.stage(
            state,
            name,
            Change::Put {
                head: cert.clone(),
                values: vec![],
            },
            put_or_keep(key),
            put_or_keep(secret),
        )?;
        Ok((batch, (cert, id.clone())))
    })
    .await?;
    let v = head.version(&id).ok_or(ApiError::Internal)?;
    Reply::ok(&bundle(ctx, &head, v))
}

/// Applies a certificate update to one version of the certificate, its key or its secret
/// (the three stay in step).
fn apply_update_in<M>(
    head: &mut Head<M>,
    id: &str,
    enabled: Option<bool>,
    tags: &Option<crate::wire::Tags>,
    now: i64,
) {
    if let Some(v) = head.version_mut(id) {
        if let Some(e) = enabled {
            v.enabled = e;
        }
        if let Some(t) = tags {
            v.tags = Some(t.clone());
        }
        v.updated = now;
    }
}

/// PATCH semantics for policies: the sections given replace the stored ones.
fn merge_policy(current: &CertificatePolicy, given: &CertificatePolicy) -> CertificatePolicy {
    CertificatePolicy {
        id: None,
        key_props: given
            .key_props
            .clone()
            .or_else(|| current.key_props.clone()),
        secret_props: given
            .secret_props
            .clone()
            .or_else(|| current.secret_props.clone()),
        x509_props: given
            .x509_props
            .clone()
            .or_else(|| current.x509_props.clone()),
        lifetime_actions: given
            .lifetime_actions
            .clone()
            .or_else(|| current.lifetime_actions.clone()),
        issuer: given.issuer.clone().or_else(|| current.issuer.clone()),
        attributes: given
            .attributes
            .clone()
            .or_else(|| current.attributes.clone()),
        platform_managed: given
            .platform_managed
            .clone()
            .or_else(|| current.platform_managed.clone()),
    }
}

async fn update_policy(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let given: CertificatePolicy = objects::parse_json(body)?;
    let now = state.clock.now();
    let head = state
        .store
        .modify::<CertMeta, _, ApiError>(Kind::Certificate, name, |cur| {
            let mut head = cur
                .filter(|h| h.deleted.is_none())
                .ok_or_else(|| FAMILY.not_found(name))?;
            let current = head.certificate.clone().unwrap_or_default();
            let mut merged = complete_policy(&merge_policy(&current.policy, &given), now)?;
            if let Some(a) = merged.attributes.as_mut() {
                a.created = current
                    .policy
                    .attributes
                    .as_ref()
                    .and_then(|a| a.created)
                    .or(Some(now));
            }
            head.certificate = Some(CertificateState {
                policy: merged,
                ..current
            });
            Ok((
                Change::Put {
                    head: head.clone(),
                    values: vec![],
                },
                head,
            ))
        })
        .await?;
    Reply::ok(&policy_of(ctx, &head))
}

async fn list(state: &AppState, ctx: &RequestContext, deleted: bool) -> ApiResult<Reply> {
    if deleted {
        return FAMILY
            .list_page::<CertMeta, _>(&state.store, ctx, Listing::Deleted, |h, v| {
                DeletedCertificateItem {
                    item: item(ctx, h, v, false),
                    deletion: FAMILY.deletion_info(&ctx.origin, h),
                }
            })
            .await;
    }
    let include_pending = ctx
        .query
        .get("includePending")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !include_pending {
        return FAMILY
            .list_page::<CertMeta, _>(&state.store, ctx, Listing::Live, |h, v| {
                item(ctx, h, v, false)
            })
            .await;
    }
    // With includePending, certificates still waiting for their merge show too.
    let page = PageRequest::from_query(&ctx.query)?;
    let heads = state.store.heads::<CertMeta>(Kind::Certificate).await?;
    let items: Vec<(String, CertificateItem)> = heads
        .iter()
        .filter(|h| h.deleted.is_none())
        .filter_map(|h| match h.current() {
            Some(v) => Some((h.name.to_ascii_lowercase(), item(ctx, h, v, false))),
            None if h.certificate.as_ref().is_some_and(|c| c.pending.is_some()) => Some((
                h.name.to_ascii_lowercase(),
                CertificateItem {
                    id: format!("{}/certificates/{}", ctx.origin, h.name),
                    ..Default::default()
                },
            )),
            None => None,
        })
        .collect();
    Reply::ok(&paginate(
        items,
        &page,
        &format!("{}/certificates", ctx.origin),
        &ctx.api_version,
    ))
}

async fn versions(state: &AppState, ctx: &RequestContext, name: &str) -> ApiResult<Reply> {
    FAMILY
        .versions_page::<CertMeta, _>(&state.store, ctx, name, |h, v| item(ctx, h, v, true))
        .await
}

// ---------- soft delete, recover, purge: the key and secret follow ----------

fn mark<M: Clone>(h: &Option<Head<M>>, deleted: Option<Deleted>) -> Change<M> {
    match h {
        Some(head) => {
            let mut head = head.clone();
            head.deleted = deleted;
            Change::Put {
                head,
                values: vec![],
            }
        }
        None => Change::Keep,
    }
}

async fn delete(state: &AppState, ctx: &RequestContext, name: &str) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let now = state.clock.now();
    let sd = ctx.soft_delete;
    let head = with_trio(state, name, |trio| {
        let cert = trio
            .cert
            .clone()
            .filter(|h| h.deleted.is_none() && !h.versions.is_empty())
            .ok_or_else(|| FAMILY.not_found(name))?;
        let d = Some(Deleted {
            deleted_date: now,
            scheduled_purge_date: now + sd.retention_secs(),
        });
        let mut deleted_cert = cert.clone();
        deleted_cert.deleted = d;
        let (k, s) = (mark(&trio.key, d), mark(&trio.secret, d));
        let batch = trio.stage(
            state,
            name,
            Change::Put {
                head: deleted_cert.clone(),
                values: vec![],
            },
            k,
            s,
        )?;
        Ok((batch, deleted_cert))
    })
    .await?;
    deleted_reply(ctx, &head)
}

async fn recover(state: &AppState, ctx: &RequestContext, name: &str) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let head = with_trio(state, name, |trio| {
        let mut cert = trio
            .cert
            .clone()
            .filter(|h| h.deleted.is_some())
            .ok_or_else(|| FAMILY.deleted_not_found(name))?;
        cert.deleted = None;
        let (k, s) = (mark(&trio.key, None), mark(&trio.secret, None));
        let batch = trio.stage(
            state,
            name,
            Change::Put {
                head: cert.clone(),
                values: vec![],
            },
            k,
            s,
        )?;
        Ok((batch, cert))
    })
    .await?;
    current_reply(ctx, &head)
}

async fn purge(state: &AppState, ctx: &RequestContext, name: &str) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    if ctx.soft_delete.purge_protection {
        return Err(objects::purge_protected());
    }
    purge_all(state, name, Some(ctx.soft_delete)).await?;
    Ok(Reply::NoContent)
}

/// Removes a soft-deleted certificate with its key and secret (the sweeper passes `None`).
pub async fn purge_all(state: &AppState, name: &str, _sd: Option<SoftDelete>) -> ApiResult<()> {
    with_trio(state, name, |trio| {
        if trio.cert.as_ref().is_none_or(|c| c.deleted.is_none()) {
            return Err(FAMILY.deleted_not_found(name));
        }
        let k = if trio.key.is_some() {
            Change::Purge
        } else {
            Change::Keep
        };
        let s = if trio.secret.is_some() {
            Change::Purge
        } else {
            Change::Keep
        };
        let batch = trio.stage(state, name, Change::Purge, k, s)?;
        Ok((batch, ()))
    })
    .await
}

// ---------- backup and restore: all three together ----------

#[derive(Serialize, Deserialize)]
struct CertificateBackup {
    certificate: String,
    key: Option<String>,
    secret: Option<String>,
}

async fn backup(state: &AppState, name: &str) -> ApiResult<Reply> {
    let cert = FAMILY.live::<CertMeta>(&state.store, name).await?;
    if cert.versions.is_empty() {
        return Err(FAMILY.not_found(name));
    }
    let key = objects::KEYS
        .backup::<KeyMeta>(&state.store, &cert.name)
        .await
        .ok();
    let secret = objects::SECRETS
        .backup::<SecretMeta>(&state.store, &cert.name)
        .await
        .ok();
    let certificate = FAMILY.backup::<CertMeta>(&state.store, &cert.name).await?;
    let inner = Zeroizing::new(
        serde_json::to_vec(&CertificateBackup {
            certificate,
            key,
            secret,
        })
        .map_err(|_| ApiError::Internal)?,
    );
    let sealed = state
        .store
        .backup_key()
        .seal(b"kvault/v1/backup/certificate-bundle", &inner)
        .map_err(|_| ApiError::Internal)?;
    Reply::ok(&BackupBlob {
        value: b64url(&sealed),
    })
}

async fn restore(state: &AppState, ctx: &RequestContext, body: &[u8]) -> ApiResult<Reply> {
    let req: BackupBlob = objects::parse_json(body)?;
    let invalid = || {
        ApiError::bad(
            "The backup blob is invalid: it is corrupted, or it was made by a vault with another master key.",
        )
    };
    let raw = crate::wire::from_b64url(&req.value).ok_or_else(invalid)?;
    let inner = state
        .store
        .backup_key()
        .open(b"kvault/v1/backup/certificate-bundle", &raw)
        .map_err(|_| invalid())?;
    let parts: CertificateBackup = serde_json::from_slice(&inner).map_err(|_| invalid())?;
    let bk = state.store.backup_key();
    let cert = Backup::<CertMeta>::open(bk, Kind::Certificate, &parts.certificate)?;
    let key = parts
        .key
        .as_deref()
        .map(|b| Backup::<KeyMeta>::open(bk, Kind::Key, b))
        .transpose()?;
    let secret = parts
        .secret
        .as_deref()
        .map(|b| Backup::<SecretMeta>::open(bk, Kind::Secret, b))
        .transpose()?;
    let name = cert.head.name.clone();
    if key
        .as_ref()
        .is_some_and(|k| !k.head.name.eq_ignore_ascii_case(&name))
        || secret
            .as_ref()
            .is_some_and(|s| !s.head.name.eq_ignore_ascii_case(&name))
    {
        return Err(invalid());
    }
    let head = with_trio(state, &name, |trio| {
        if let Some(c) = &trio.cert {
            return Err(if c.deleted.is_some() {
                FAMILY.deleted_conflict(&c.name)
            } else {
                FAMILY.exists_conflict(&c.name)
            });
        }
        if trio.key.is_some() || trio.secret.is_some() {
            return Err(FAMILY.exists_conflict(&name));
        }
        let mut head = cert.head.clone();
        head.deleted = None;
        let k = match &key {
            Some(k) => {
                let mut h = k.head.clone();
                h.deleted = None;
                Change::Put {
                    head: h,
                    values: k.values(),
                }
            }
            None => Change::Keep,
        };
        let s = match &secret {
            Some(s) => {
                let mut h = s.head.clone();
                h.deleted = None;
                Change::Put {
                    head: h,
                    values: s.values(),
                }
            }
            None => Change::Keep,
        };
        let batch = trio.stage(
            state,
            &name,
            Change::Put {
                head: head.clone(),
                values: cert.values(),
            },
            k,
            s,
        )?;
        Ok((batch, head))
    })
    .await?;
    current_reply(ctx, &head)
}
