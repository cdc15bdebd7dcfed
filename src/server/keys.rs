//! The keys API: create, import, get, update, list, versions, delete, deleted, recover,
//! purge, backup, restore, the cryptographic operations, rotation and rotation policies,
//! release and random bytes — wire-compatible with the official SDKs' `KeyClient` and
//! `CryptographyClient`.
//!
//! Private key material is generated here, sealed into the store at once, and only
//! unsealed for an operation that needs it; GET and listings answer from the public parts
//! kept in the version's metadata.

use crate::crypto::keys::{
    Curve, EncryptionAlgorithm, ImportParts, JwkOperation, KeyError, KeyMaterial, KeyType,
    SignatureAlgorithm,
};
use crate::server::error::{ApiError, ApiResult};
use crate::server::lifecycle::{self, Shown};
use crate::server::objects::{self, Family, Listing};
use crate::server::ops::{KeyOp, KeysOp};
use crate::server::request::{Reply, RequestContext};
use crate::server::state::AppState;
use crate::server::store::{Change, Head, Kind, RotationState, Version};
use crate::wire::{
    DeletedKeyBundle, DeletedKeyItem, DeletionInfo, GetRandomBytesRequest, JsonWebKey,
    KeyAttributes, KeyBundle, KeyCreateParameters, KeyImportParameters, KeyItem,
    KeyOperationResult, KeyOperationsParameters, KeyReleaseParameters, KeyReleasePolicy,
    KeyRotationPolicy, KeyRotationPolicyAttributes, KeySignParameters, KeyUpdateParameters,
    KeyVerifyParameters, KeyVerifyResult, LifetimeAction, LifetimeActionTrigger,
    LifetimeActionType, RandomBytes, b64url, from_b64url,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub mod cache;
mod operations;
pub mod rotation;

use operations::{key_operation, random_bytes};

const FAMILY: Family = objects::KEYS;
const KIND: Kind = Kind::Key;

/// The public JWK members, kept beside the sealed private material.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PublicJwk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// What a key version has beyond the common attributes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyMeta {
    pub kty: KeyType,
    pub key_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<Curve>,
    pub key_ops: Vec<JwkOperation>,
    #[serde(default)]
    pub exportable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_policy: Option<KeyReleasePolicy>,
    #[serde(default)]
    pub public: PublicJwk,
    /// Keys of certificates are managed by their certificate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub managed: bool,
}

type KeyHead = Head<KeyMeta>;

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Bad(m) => ApiError::BadParameter(m),
            KeyError::Failed => ApiError::BadParameter(
                "The operation failed: the input is not valid for this key and algorithm.".into(),
            ),
        }
    }
}

pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    op: KeysOp,
    body: &[u8],
) -> ApiResult<Reply> {
    use KeysOp as O;
    match op {
        O::Create { name } => create(state, ctx, &name, body).await,
        O::Import { name } => import(state, ctx, &name, body).await,
        O::Get { name, version } => get(state, ctx, &name, version.as_deref()).await,
        O::Update { name, version } => update(state, ctx, &name, version.as_deref(), body).await,
        O::Delete { name } => {
            lifecycle::delete::<Keys>(&state.store, ctx, &name, state.clock.now()).await
        }
        O::List => lifecycle::list::<Keys>(&state.store, ctx, Listing::Live).await,
        O::ListDeleted => lifecycle::list::<Keys>(&state.store, ctx, Listing::Deleted).await,
        O::ListVersions { name } => lifecycle::versions::<Keys>(&state.store, ctx, &name).await,
        O::GetDeleted { name } => lifecycle::get_deleted::<Keys>(&state.store, ctx, &name).await,
        O::Purge { name } => {
            let reply = lifecycle::purge::<Keys>(&state.store, ctx, &name).await?;
            state.key_cache.forget(&name);
            Ok(reply)
        }
        O::Recover { name } => lifecycle::recover::<Keys>(&state.store, ctx, &name).await,
        O::Backup { name } => lifecycle::backup::<Keys>(&state.store, &name).await,
        O::Restore => lifecycle::restore::<Keys>(&state.store, ctx, body).await,
        O::Rotate { name } => {
            let head = rotation::rotate(state, &name).await?;
            current_reply(ctx, &head)
        }
        O::GetRotationPolicy { name } => get_rotation_policy(state, ctx, &name).await,
        O::SetRotationPolicy { name } => set_rotation_policy(state, ctx, &name, body).await,
        O::Crypto { name, version, op } => {
            key_operation(state, ctx, &name, version.as_deref(), op, body).await
        }
        O::GetRandomBytes => random_bytes(body),
    }
}

fn attributes(ctx: &RequestContext, v: &Version<KeyMeta>) -> KeyAttributes {
    KeyAttributes {
        enabled: Some(v.enabled),
        nbf: v.nbf,
        exp: v.exp,
        created: Some(v.created),
        updated: Some(v.updated),
        recovery_level: Some(ctx.soft_delete.recovery_level().to_string()),
        recoverable_days: Some(ctx.soft_delete.retention_days),
        exportable: Some(v.meta.exportable),
    }
}

fn kid(ctx: &RequestContext, head: &KeyHead, v: &Version<KeyMeta>) -> String {
    format!("{}/keys/{}/{}", ctx.origin, head.name, v.id)
}

/// The JWK a client sees: public members only, never `d`, `p`, `q`, `k` …
pub fn public_jwk(kid: String, meta: &KeyMeta) -> JsonWebKey {
    JsonWebKey {
        kid: Some(kid),
        kty: Some(meta.kty.as_str().to_string()),
        key_ops: Some(
            meta.key_ops
                .iter()
                .map(|o| o.as_str().to_string())
                .collect(),
        ),
        n: meta.public.n.clone(),
        e: meta.public.e.clone(),
        crv: meta.crv.map(|c| c.as_str().to_string()),
        x: meta.public.x.clone(),
        y: meta.public.y.clone(),
        ..Default::default()
    }
}

fn bundle(ctx: &RequestContext, head: &KeyHead, v: &Version<KeyMeta>) -> KeyBundle {
    KeyBundle {
        key: public_jwk(kid(ctx, head, v), &v.meta),
        attributes: attributes(ctx, v),
        tags: v.tags.clone(),
        managed: v.meta.managed.then_some(true),
        release_policy: v.meta.release_policy.clone(),
    }
}

fn item(ctx: &RequestContext, head: &KeyHead, v: &Version<KeyMeta>, versioned: bool) -> KeyItem {
    KeyItem {
        kid: if versioned {
            kid(ctx, head, v)
        } else {
            format!("{}/keys/{}", ctx.origin, head.name)
        },
        attributes: attributes(ctx, v),
        tags: v.tags.clone(),
        managed: v.meta.managed.then_some(true),
    }
}

fn current_reply(ctx: &RequestContext, head: &KeyHead) -> ApiResult<Reply> {
    lifecycle::current_reply::<Keys>(ctx, head)
}

/// Keys as the API shows them, for the shared lifecycle handlers.
pub struct Keys;

impl Shown for Keys {
    type Meta = KeyMeta;
    type Bundle = KeyBundle;
    type Item = KeyItem;
    type Deleted = DeletedKeyBundle;
    type DeletedItem = DeletedKeyItem;
    const FAMILY: Family = FAMILY;

    fn bundle(ctx: &RequestContext, head: &KeyHead, v: &Version<KeyMeta>) -> KeyBundle {
        bundle(ctx, head, v)
    }
    fn item(
        ctx: &RequestContext,
        head: &KeyHead,
        v: &Version<KeyMeta>,
        versioned: bool,
    ) -> KeyItem {
        item(ctx, head, v, versioned)
    }
    fn deleted(key: KeyBundle, deletion: DeletionInfo) -> DeletedKeyBundle {
        DeletedKeyBundle { key, deletion }
    }
    fn deleted_item(item: KeyItem, deletion: DeletionInfo) -> DeletedKeyItem {
        DeletedKeyItem { item, deletion }
    }
    fn managed(meta: &KeyMeta) -> bool {
        meta.managed
    }
}

/// `RSA`, `EC`, `oct`; `-HSM` types are refused: there is no HSM behind this vault.
fn parse_kty(kty: &str) -> ApiResult<KeyType> {
    match kty {
        "RSA" => Ok(KeyType::Rsa),
        "EC" => Ok(KeyType::Ec),
        "oct" => Ok(KeyType::Oct),
        "RSA-HSM" | "EC-HSM" | "oct-HSM" => Err(ApiError::bad(format!(
            "Key type {kty} needs a hardware security module, and this vault has none; create a software key (RSA, EC or oct)."
        ))),
        other => Err(ApiError::bad(format!(
            "Unknown key type '{}': use RSA, EC or oct.",
            objects::printable(other)
        ))),
    }
}

/// Known names only (case-insensitive), each once, and only operations the key type can
/// perform.
fn validate_key_ops(kty: KeyType, ops: &[String]) -> ApiResult<Vec<JwkOperation>> {
    let mut out: Vec<JwkOperation> = Vec::with_capacity(ops.len());
    for op in ops {
        let Some(known) = JwkOperation::parse(op) else {
            let names: Vec<&str> = JwkOperation::ALL.iter().map(|o| o.as_str()).collect();
            return Err(ApiError::bad(format!(
                "Unknown key operation '{}': use {}.",
                objects::printable(op),
                names.join(", ")
            )));
        };
        if !known.possible_for(kty) {
            return Err(ApiError::bad(format!(
                "Key operation '{}' is not possible with a {} key.",
                known.as_str(),
                kty.as_str()
            )));
        }
        if !out.contains(&known) {
            out.push(known);
        }
    }
    Ok(out)
}

fn validate_release(exportable: bool, policy: &Option<KeyReleasePolicy>) -> ApiResult<()> {
    match (exportable, policy) {
        (true, None) => Err(ApiError::bad(
            "AKV.SKR.1004: Exportable keys must have a release policy.",
        )),
        (false, Some(_)) => Err(ApiError::bad(
            "AKV.SKR.1002: A release policy can only be set on an exportable key.",
        )),
        (_, Some(p)) if p.data.as_deref().and_then(from_b64url).is_none() => Err(ApiError::bad(
            "The release policy's data must be base64url-encoded.",
        )),
        _ => Ok(()),
    }
}

fn validate_times(nbf: Option<i64>, exp: Option<i64>) -> ApiResult<()> {
    if let (Some(n), Some(e)) = (nbf, exp)
        && e < n
    {
        return Err(ApiError::bad(
            "The expiration time (exp) must not be before the activation time (nbf).",
        ));
    }
    Ok(())
}

fn meta_for(
    material: &KeyMaterial,
    key_ops: Vec<JwkOperation>,
    exportable: bool,
    release_policy: Option<KeyReleasePolicy>,
) -> KeyMeta {
    let p = material.public_parts();
    KeyMeta {
        kty: material.kty(),
        key_size: material.size_bits(),
        crv: material.curve(),
        key_ops,
        exportable,
        release_policy,
        public: PublicJwk {
            n: p.n.as_deref().map(b64url),
            e: p.e.as_deref().map(b64url),
            x: p.x.as_deref().map(b64url),
            y: p.y.as_deref().map(b64url),
        },
        managed: false,
    }
}

/// Generates key material off the async workers (RSA-4096 takes a while).
pub async fn generate(
    kty: KeyType,
    size: Option<u32>,
    exponent: Option<u32>,
    crv: Option<Curve>,
) -> ApiResult<KeyMaterial> {
    let job = move || -> Result<KeyMaterial, KeyError> {
        match kty {
            KeyType::Rsa => KeyMaterial::generate_rsa(size.unwrap_or(2048), exponent),
            KeyType::Ec => KeyMaterial::generate_ec(crv.unwrap_or(Curve::P256)),
            KeyType::Oct => KeyMaterial::generate_oct(size.unwrap_or(256)),
        }
    };
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(ApiError::from)
}

/// Writes a new version (create, import, rotate): refused while the name is soft-deleted.
pub async fn add_version(
    state: &AppState,
    name: &str,
    material: &KeyMaterial,
    mut version: Version<KeyMeta>,
) -> ApiResult<KeyHead> {
    let stored = material.to_stored();
    version.id = crate::crypto::new_version_id().map_err(|_| ApiError::Internal)?;
    crate::server::events::staging::modify_with_events::<KeyMeta, _, ApiError>(
        state,
        KIND,
        name,
        |current| {
            let mut head = match current {
                Some(h) if h.deleted.is_some() => return Err(FAMILY.deleted_conflict(&h.name)),
                Some(h) => h,
                None => Head::new(name),
            };
            head.versions.push(version.clone());
            Ok((
                Change::Put {
                    head: head.clone(),
                    values: vec![(version.id.clone(), Zeroizing::new(stored.to_vec()))],
                },
                head,
            ))
        },
    )
    .await
}

fn new_version(
    now: i64,
    meta: KeyMeta,
    attrs: &KeyAttributes,
    tags: Option<crate::wire::Tags>,
) -> Version<KeyMeta> {
    let mut v = Version::new(String::new(), now, meta);
    v.enabled = attrs.enabled.unwrap_or(true);
    v.nbf = attrs.nbf;
    v.exp = attrs.exp;
    v.tags = tags;
    v
}

async fn create(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let p: KeyCreateParameters = objects::parse_json(body)?;
    let kty = parse_kty(&p.kty)?;
    let crv = match (&p.crv, kty) {
        (Some(c), KeyType::Ec) => Some(Curve::parse(c).ok_or_else(|| {
            ApiError::bad(format!(
                "Unknown curve '{}': use P-256, P-384, P-521 or P-256K.",
                objects::printable(c)
            ))
        })?),
        (Some(_), _) => return Err(ApiError::bad("crv applies to EC keys only.")),
        (None, _) => None,
    };
    if kty == KeyType::Ec && p.key_size.is_some() {
        return Err(ApiError::bad("EC keys take crv, not key_size."));
    }
    if kty != KeyType::Rsa && p.public_exponent.is_some() {
        return Err(ApiError::bad("public_exponent applies to RSA keys only."));
    }
    let key_ops = match &p.key_ops {
        Some(ops) => validate_key_ops(kty, ops)?,
        None => JwkOperation::defaults_for(kty),
    };
    objects::validate_tags(&p.tags)?;
    let attrs = p.attributes.clone().unwrap_or_default();
    validate_times(attrs.nbf, attrs.exp)?;
    let exportable = attrs.exportable.unwrap_or(false);
    validate_release(exportable, &p.release_policy)?;
    // Refuse a soft-deleted name before spending time on key generation.
    if let Some(h) = state.store.head::<KeyMeta>(KIND, name).await?
        && h.deleted.is_some()
    {
        return Err(FAMILY.deleted_conflict(&h.name));
    }
    let material = generate(kty, p.key_size, p.public_exponent, crv).await?;
    let meta = meta_for(&material, key_ops, exportable, p.release_policy.clone());
    let version = new_version(state.clock.now(), meta, &attrs, p.tags.clone());
    let head = add_version(state, name, &material, version).await?;
    current_reply(ctx, &head)
}

fn member(v: &Option<String>, name: &str) -> ApiResult<Option<Vec<u8>>> {
    match v {
        None => Ok(None),
        Some(s) => from_b64url(s)
            .map(Some)
            .ok_or_else(|| ApiError::bad(format!("JWK member '{name}' is not base64url."))),
    }
}

fn secret_member(v: &Option<String>, name: &str) -> ApiResult<Option<Zeroizing<Vec<u8>>>> {
    Ok(member(v, name)?.map(Zeroizing::new))
}

async fn import(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let p: KeyImportParameters = objects::parse_json(body)?;
    if p.hsm == Some(true) {
        return Err(ApiError::bad(
            "Importing into an HSM (Hsm: true) needs a hardware security module, and this vault has none.",
        ));
    }
    let jwk = &p.key;
    if jwk.key_hsm.is_some() {
        return Err(ApiError::bad(
            "BYOK (key_hsm) imports need a hardware security module, and this vault has none.",
        ));
    }
    let kty = parse_kty(
        jwk.kty
            .as_deref()
            .ok_or_else(|| ApiError::bad("The JWK needs 'kty'."))?,
    )?;
    let crv =
        match &jwk.crv {
            Some(c) => Some(Curve::parse(c).ok_or_else(|| {
                ApiError::bad(format!("Unknown curve '{}'.", objects::printable(c)))
            })?),
            None => None,
        };
    let parts = ImportParts {
        kty: Some(kty),
        n: member(&jwk.n, "n")?,
        e: member(&jwk.e, "e")?,
        d: secret_member(&jwk.d, "d")?,
        p: secret_member(&jwk.p, "p")?,
        q: secret_member(&jwk.q, "q")?,
        dp: secret_member(&jwk.dp, "dp")?,
        dq: secret_member(&jwk.dq, "dq")?,
        qi: secret_member(&jwk.qi, "qi")?,
        crv,
        x: member(&jwk.x, "x")?,
        y: member(&jwk.y, "y")?,
        k: secret_member(&jwk.k, "k")?,
    };
    let material = tokio::task::spawn_blocking(move || KeyMaterial::import(parts))
        .await
        .map_err(|_| ApiError::Internal)??;
    let key_ops = match &jwk.key_ops {
        Some(ops) => validate_key_ops(kty, ops)?,
        None => JwkOperation::defaults_for(kty),
    };
    objects::validate_tags(&p.tags)?;
    let attrs = p.attributes.clone().unwrap_or_default();
    validate_times(attrs.nbf, attrs.exp)?;
    let exportable = attrs.exportable.unwrap_or(false);
    validate_release(exportable, &p.release_policy)?;
    let meta = meta_for(&material, key_ops, exportable, p.release_policy.clone());
    let version = new_version(state.clock.now(), meta, &attrs, p.tags.clone());
    let head = add_version(state, name, &material, version).await?;
    current_reply(ctx, &head)
}

async fn get(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    version: Option<&str>,
) -> ApiResult<Reply> {
    let head = FAMILY.live::<KeyMeta>(&state.store, name).await?;
    let v = FAMILY.pick(&head, name, version)?;
    Reply::ok(&bundle(ctx, &head, v))
}

async fn update(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    version: Option<&str>,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let p: KeyUpdateParameters = objects::parse_json(body)?;
    objects::validate_tags(&p.tags)?;
    let now = state.clock.now();
    let (head, id) = state
        .store
        .modify::<KeyMeta, _, ApiError>(KIND, name, |current| {
            let mut head = match current {
                Some(h) if h.deleted.is_none() => h,
                _ => return Err(FAMILY.not_found(name)),
            };
            let id = FAMILY.pick(&head, name, version)?.id.clone();
            let v = head
                .version_mut(&id)
                .ok_or_else(|| FAMILY.not_found(name))?;
            let kty = v.meta.kty;
            if let Some(ops) = &p.key_ops {
                v.meta.key_ops = validate_key_ops(kty, ops)?;
            }
            if let Some(a) = &p.attributes {
                validate_times(a.nbf.or(v.nbf), a.exp.or(v.exp))?;
                if let Some(e) = a.enabled {
                    v.enabled = e;
                }
                if a.nbf.is_some() {
                    v.nbf = a.nbf;
                }
                if a.exp.is_some() {
                    v.exp = a.exp;
                }
                if a.exportable.is_some_and(|e| e != v.meta.exportable) {
                    return Err(ApiError::bad(
                        "exportable cannot be changed after creation.",
                    ));
                }
            }
            if let Some(rp) = &p.release_policy {
                if v.meta
                    .release_policy
                    .as_ref()
                    .is_some_and(|old| old.immutable == Some(true))
                {
                    return Err(ApiError::Conflict {
                        message: "The key's release policy is immutable.".into(),
                        inner: None,
                    });
                }
                validate_release(v.meta.exportable, &Some(rp.clone()))?;
                v.meta.release_policy = Some(rp.clone());
            }
            if let Some(tags) = &p.tags {
                v.tags = Some(tags.clone());
            }
            v.updated = now;
            Ok((
                Change::Put {
                    head: head.clone(),
                    values: vec![],
                },
                (head, id),
            ))
        })
        .await?;
    let v = head.version(&id).ok_or(ApiError::Integrity)?;
    Reply::ok(&bundle(ctx, &head, v))
}

/// What a key without a policy reports (the cloud's default).
fn default_rotation_policy() -> KeyRotationPolicy {
    KeyRotationPolicy {
        id: None,
        lifetime_actions: Some(vec![LifetimeAction {
            trigger: LifetimeActionTrigger {
                time_after_create: None,
                time_before_expiry: Some("P30D".into()),
            },
            action: LifetimeActionType {
                action_type: "Notify".into(),
            },
        }]),
        attributes: Some(KeyRotationPolicyAttributes::default()),
    }
}

async fn get_rotation_policy(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
    let head = FAMILY.live::<KeyMeta>(&state.store, name).await?;
    let mut policy = head
        .rotation
        .map(|r| r.policy)
        .unwrap_or_else(default_rotation_policy);
    policy.id = Some(format!("{}/keys/{}/rotationpolicy", ctx.origin, head.name));
    Reply::ok(&policy)
}

async fn set_rotation_policy(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let given: KeyRotationPolicy = objects::parse_json(body)?;
    let now = state.clock.now();
    let head = state
        .store
        .modify::<KeyMeta, _, ApiError>(KIND, name, |current| {
            let mut head = match current {
                Some(h) if h.deleted.is_none() => h,
                _ => return Err(FAMILY.not_found(name)),
            };
            let previous = head.rotation.as_ref().map(|r| &r.policy);
            let policy = rotation::validate_policy(&given, previous, now)?;
            let notified = head
                .rotation
                .as_ref()
                .and_then(|r| r.notified_version.clone());
            head.rotation = Some(RotationState {
                policy,
                notified_version: notified,
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
    let mut policy = head.rotation.map(|r| r.policy).unwrap_or_default();
    policy.id = Some(format!("{}/keys/{}/rotationpolicy", ctx.origin, head.name));
    Reply::ok(&policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_metadata_keeps_its_stored_form() {
        // A record written before the metadata was typed reads back, and writes the same.
        let stored = serde_json::json!({
            "kty": "EC", "key_size": 256, "crv": "P-256", "key_ops": ["sign", "verify"],
            "exportable": false, "public": {"x": "eA", "y": "eQ"}
        });
        let meta: KeyMeta = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(meta.kty, KeyType::Ec);
        assert_eq!(meta.crv, Some(Curve::P256));
        assert_eq!(meta.key_ops, vec![JwkOperation::Sign, JwkOperation::Verify]);
        assert_eq!(serde_json::to_value(&meta).unwrap(), stored);
        let rsa: KeyMeta = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "key_size": 2048, "key_ops": ["wrapKey", "unwrapKey"]
        }))
        .unwrap();
        assert_eq!(
            rsa.key_ops,
            vec![JwkOperation::WrapKey, JwkOperation::UnwrapKey]
        );
        // Anything else is not a record kvault wrote.
        for bad in [
            serde_json::json!({"kty": "RSA-HSM", "key_size": 2048, "key_ops": []}),
            serde_json::json!({"kty": "RSA", "key_size": 2048, "key_ops": ["fly"]}),
        ] {
            assert!(serde_json::from_value::<KeyMeta>(bad).is_err());
        }
    }

    #[test]
    fn key_ops_are_checked_against_the_key_type() {
        let ops = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            validate_key_ops(KeyType::Rsa, &ops(&["WRAPKEY", "wrapKey", "sign"])).unwrap(),
            vec![JwkOperation::WrapKey, JwkOperation::Sign]
        );
        assert!(validate_key_ops(KeyType::Ec, &ops(&["encrypt"])).is_err());
        assert!(validate_key_ops(KeyType::Oct, &ops(&["sign"])).is_err());
        assert!(validate_key_ops(KeyType::Rsa, &ops(&["fly"])).is_err());
        assert_eq!(
            validate_key_ops(KeyType::Ec, &ops(&["export", "sign"])).unwrap(),
            vec![JwkOperation::Export, JwkOperation::Sign]
        );
    }
}
