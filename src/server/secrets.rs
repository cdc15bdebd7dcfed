//! The secrets API: set, get, update, list, versions, delete, deleted, recover, purge,
//! backup and restore — wire-compatible with the official SDKs' `SecretClient`.

use crate::server::error::{ApiError, ApiResult};
use crate::server::lifecycle::{self, Shown};
use crate::server::objects::{self, Family, Listing};
use crate::server::ops::SecretsOp;
use crate::server::request::{Reply, RequestContext};
use crate::server::state::AppState;
use crate::server::store::{Change, Head, Kind, Version};
use crate::wire::{
    DeletedSecretBundle, DeletedSecretItem, DeletionInfo, MAX_CONTENT_TYPE_LEN,
    MAX_SECRET_VALUE_LEN, SecretAttributes, SecretBundle, SecretItem, SecretSetParameters,
    SecretUpdateParameters,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const KIND: Kind = Kind::Secret;

/// What a secret version has beyond the common attributes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SecretMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Certificate-backed secrets are managed by their certificate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub managed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

type SecretHead = Head<SecretMeta>;

pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    op: SecretsOp,
    body: &[u8],
) -> ApiResult<Reply> {
    use SecretsOp as O;
    match op {
        O::Set { name } => set(state, ctx, &name, body).await,
        O::Get { name, version } => get(state, ctx, &name, version.as_deref()).await,
        O::Update { name, version } => update(state, ctx, &name, version.as_deref(), body).await,
        O::Delete { name } => {
            lifecycle::delete::<Secrets>(&state.store, ctx, &name, state.clock.now()).await
        }
        O::List => lifecycle::list::<Secrets>(&state.store, ctx, Listing::Live).await,
        O::ListVersions { name } => lifecycle::versions::<Secrets>(&state.store, ctx, &name).await,
        O::ListDeleted => lifecycle::list::<Secrets>(&state.store, ctx, Listing::Deleted).await,
        O::GetDeleted { name } => lifecycle::get_deleted::<Secrets>(&state.store, ctx, &name).await,
        O::Purge { name } => lifecycle::purge::<Secrets>(&state.store, ctx, &name).await,
        O::Recover { name } => lifecycle::recover::<Secrets>(&state.store, ctx, &name).await,
        O::Backup { name } => lifecycle::backup::<Secrets>(&state.store, &name).await,
        O::Restore => lifecycle::restore::<Secrets>(&state.store, ctx, body).await,
    }
}

const FAMILY: Family = objects::SECRETS;

/// Secrets as the API shows them, for the shared lifecycle handlers.
pub struct Secrets;

impl Shown for Secrets {
    type Meta = SecretMeta;
    type Bundle = SecretBundle;
    type Item = SecretItem;
    type Deleted = DeletedSecretBundle;
    type DeletedItem = DeletedSecretItem;
    const FAMILY: Family = FAMILY;

    fn bundle(ctx: &RequestContext, head: &SecretHead, v: &Version<SecretMeta>) -> SecretBundle {
        bundle(ctx, head, v, None)
    }
    fn item(
        ctx: &RequestContext,
        head: &SecretHead,
        v: &Version<SecretMeta>,
        versioned: bool,
    ) -> SecretItem {
        item(ctx, head, v, versioned)
    }
    fn deleted(secret: SecretBundle, deletion: DeletionInfo) -> DeletedSecretBundle {
        DeletedSecretBundle { secret, deletion }
    }
    fn deleted_item(item: SecretItem, deletion: DeletionInfo) -> DeletedSecretItem {
        DeletedSecretItem { item, deletion }
    }
    fn managed(meta: &SecretMeta) -> bool {
        meta.managed
    }
}

fn validate_attributes(a: &SecretAttributes) -> ApiResult<()> {
    if let (Some(nbf), Some(exp)) = (a.nbf, a.exp)
        && exp < nbf
    {
        return Err(ApiError::bad(
            "The expiration time (exp) must not be before the activation time (nbf).",
        ));
    }
    Ok(())
}

fn validate_content_type(ct: &Option<String>) -> ApiResult<()> {
    match ct {
        Some(c) if c.chars().count() > MAX_CONTENT_TYPE_LEN => Err(ApiError::bad(format!(
            "contentType must be at most {MAX_CONTENT_TYPE_LEN} characters."
        ))),
        _ => Ok(()),
    }
}

fn attributes(ctx: &RequestContext, v: &Version<SecretMeta>) -> SecretAttributes {
    SecretAttributes {
        enabled: Some(v.enabled),
        nbf: v.nbf,
        exp: v.exp,
        created: Some(v.created),
        updated: Some(v.updated),
        recovery_level: Some(ctx.soft_delete.recovery_level().to_string()),
        recoverable_days: Some(ctx.soft_delete.retention_days),
    }
}

fn bundle(
    ctx: &RequestContext,
    head: &SecretHead,
    v: &Version<SecretMeta>,
    value: Option<String>,
) -> SecretBundle {
    SecretBundle {
        value,
        id: format!("{}/secrets/{}/{}", ctx.origin, head.name, v.id),
        content_type: v.meta.content_type.clone(),
        attributes: attributes(ctx, v),
        tags: v.tags.clone(),
        // Stored relative so ids follow the origin the client used.
        kid: v.meta.kid.as_ref().map(|k| {
            if k.starts_with('/') {
                format!("{}{k}", ctx.origin)
            } else {
                k.clone()
            }
        }),
        managed: v.meta.managed.then_some(true),
        previous_version: None,
    }
}

fn item(
    ctx: &RequestContext,
    head: &SecretHead,
    v: &Version<SecretMeta>,
    versioned: bool,
) -> SecretItem {
    let id = if versioned {
        format!("{}/secrets/{}/{}", ctx.origin, head.name, v.id)
    } else {
        format!("{}/secrets/{}", ctx.origin, head.name)
    };
    SecretItem {
        id,
        attributes: attributes(ctx, v),
        tags: v.tags.clone(),
        content_type: v.meta.content_type.clone(),
        managed: v.meta.managed.then_some(true),
    }
}

async fn set(state: &AppState, ctx: &RequestContext, name: &str, body: &[u8]) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let params: SecretSetParameters = objects::parse_json(body)?;
    // The value is a secret: make sure our copy of it is wiped once written.
    let value = Zeroizing::new(params.value);
    if value.len() > MAX_SECRET_VALUE_LEN {
        return Err(ApiError::bad(format!(
            "The secret value is too large: the maximum is {MAX_SECRET_VALUE_LEN} bytes."
        )));
    }
    validate_content_type(&params.content_type)?;
    objects::validate_tags(&params.tags)?;
    let attrs = params.attributes.unwrap_or_default();
    validate_attributes(&attrs)?;
    let now = state.clock.now();
    let version_id = crate::crypto::new_version_id().map_err(|_| ApiError::Internal)?;
    let (head, version) = crate::server::events::staging::modify_with_events::<
        SecretMeta,
        _,
        ApiError,
    >(state, KIND, name, |current| {
        let mut head = match current {
            Some(h) if h.deleted.is_some() => return Err(FAMILY.deleted_conflict(&h.name)),
            Some(h) if h.current().is_some_and(|v| v.meta.managed) => {
                return Err(objects::managed_by_certificate("secret", &h.name));
            }
            Some(h) => h,
            None => Head {
                name: name.to_string(),
                versions: Vec::new(),
                deleted: None,
                rotation: None,
                certificate: None,
            },
        };
        let mut v = Version::new(
            version_id.clone(),
            now,
            SecretMeta {
                content_type: params.content_type.clone(),
                managed: false,
                kid: None,
            },
        );
        v.enabled = attrs.enabled.unwrap_or(true);
        v.nbf = attrs.nbf;
        v.exp = attrs.exp;
        v.tags = params.tags.clone();
        head.versions.push(v.clone());
        Ok((
            Change::Put {
                head: head.clone(),
                values: vec![(
                    version_id.clone(),
                    Zeroizing::new(value.as_bytes().to_vec()),
                )],
            },
            (head, v),
        ))
    })
    .await?;
    Reply::ok(&bundle(ctx, &head, &version, Some(value.to_string())))
}

async fn get(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    version: Option<&str>,
) -> ApiResult<Reply> {
    let head = FAMILY.live::<SecretMeta>(&state.store, name).await?;
    let v = FAMILY.pick(&head, name, version)?;
    if !v.enabled {
        return Err(ApiError::Forbidden {
            message: "Operation get is not allowed on a disabled secret.".into(),
            inner: Some("SecretDisabled"),
        });
    }
    let raw = state.store.value(KIND, &head.name, &v.id).await?;
    let value = Zeroizing::new(String::from_utf8(raw.to_vec()).map_err(|_| ApiError::Integrity)?);
    let mut out = bundle(ctx, &head, v, None);
    // A certificate's secret converts between PFX and PEM on request.
    let wanted = ctx.query.get("outContentType").filter(|w| !w.is_empty());
    match wanted {
        Some(w) if v.meta.managed && Some(w) != v.meta.content_type.as_deref() => {
            out.value = Some(convert_certificate_secret(
                &value,
                v.meta.content_type.as_deref(),
                w,
            )?);
            out.content_type = Some(w.to_string());
        }
        _ => out.value = Some(value.to_string()),
    }
    Reply::ok(&out)
}

fn not_convertible() -> ApiError {
    ApiError::bad(
        "This certificate's secret holds no private key (the key is not exportable), so it cannot be converted.",
    )
}

/// PFX (base64) ↔ PEM for certificate-backed secrets.
fn convert_certificate_secret(value: &str, from: Option<&str>, to: &str) -> ApiResult<String> {
    use crate::crypto::x509;
    use crate::wire::certificates::{PEM, PFX};
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let imported = match from {
        Some(PFX) => {
            let der = Zeroizing::new(b64.decode(value.trim()).map_err(|_| ApiError::Integrity)?);
            x509::import_pfx(&der, "").map_err(|_| not_convertible())?
        }
        Some(PEM) => x509::import_pem(value.as_bytes()).map_err(|_| not_convertible())?,
        _ => {
            return Err(ApiError::bad(
                "outContentType applies to certificate secrets only.",
            ));
        }
    };
    match to {
        PEM => Ok(x509::pem_bundle(Some(&imported.key), &imported.chain).to_string()),
        PFX => Ok(b64.encode(x509::pfx(Some(&imported.key), &imported.chain)?)),
        other => Err(ApiError::bad(format!(
            "outContentType '{}' is not supported: use {PFX} or {PEM}.",
            objects::printable(other)
        ))),
    }
}

async fn update(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    version: Option<&str>,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let params: SecretUpdateParameters = objects::parse_json(body)?;
    validate_content_type(&params.content_type)?;
    objects::validate_tags(&params.tags)?;
    let now = state.clock.now();
    let (head, v) = state
        .store
        .modify::<SecretMeta, _, ApiError>(KIND, name, |current| {
            let mut head = match current {
                Some(h) if h.deleted.is_none() => h,
                _ => return Err(FAMILY.not_found(name)),
            };
            let id = FAMILY.pick(&head, name, version)?.id.clone();
            let Some(v) = head.version_mut(&id) else {
                return Err(FAMILY.not_found(name));
            };
            if v.meta.managed && (params.content_type.is_some() || params.attributes.as_ref().is_some_and(|a| a.enabled.is_some() || a.nbf.is_some() || a.exp.is_some())) {
                return Err(ApiError::Forbidden {
                    message: format!("Secret {name} is managed by its certificate; update the certificate instead."),
                    inner: None,
                });
            }
            if let Some(a) = &params.attributes {
                let merged = SecretAttributes {
                    nbf: a.nbf.or(v.nbf),
                    exp: a.exp.or(v.exp),
                    ..Default::default()
                };
                validate_attributes(&merged)?;
                if let Some(e) = a.enabled {
                    v.enabled = e;
                }
                if a.nbf.is_some() {
                    v.nbf = a.nbf;
                }
                if a.exp.is_some() {
                    v.exp = a.exp;
                }
            }
            if let Some(ct) = &params.content_type {
                v.meta.content_type = Some(ct.clone());
            }
            if let Some(tags) = &params.tags {
                v.tags = Some(tags.clone());
            }
            v.updated = now;
            let v = v.clone();
            Ok((
                Change::Put {
                    head: head.clone(),
                    values: vec![],
                },
                (head, v),
            ))
        })
        .await?;
    Reply::ok(&bundle(ctx, &head, &v, None))
}
