//! The three objects of a certificate (certificate, key, secret), read and written together in one
//! batch.

use super::*;
use crate::crypto::keys::JwkOperation;

/// The current heads of a certificate's three objects, with their raw records for the
/// conditional write.
pub(super) struct Trio {
    pub(super) cert: Option<CertHead>,
    cert_raw: Option<Vec<u8>>,
    pub(super) key: Option<Head<KeyMeta>>,
    key_raw: Option<Vec<u8>>,
    pub(super) secret: Option<Head<SecretMeta>>,
    secret_raw: Option<Vec<u8>>,
}

pub(super) async fn load_trio(state: &AppState, name: &str) -> ApiResult<Trio> {
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
    pub(super) fn check_free(&self, name: &str) -> ApiResult<()> {
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

    pub(super) fn stage(
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
pub(super) async fn with_trio<R>(
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

pub(super) fn secret_value(
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
pub(super) fn stage_issued(
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
        kty: issued.key.kty(),
        key_size: issued.key.size_bits(),
        crv: issued.key.curve(),
        key_ops: match issued.key.kty() {
            KeyType::Ec => vec![JwkOperation::Sign, JwkOperation::Verify],
            _ => vec![
                JwkOperation::Sign,
                JwkOperation::Verify,
                JwkOperation::Encrypt,
                JwkOperation::Decrypt,
                JwkOperation::WrapKey,
                JwkOperation::UnwrapKey,
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

pub(super) fn with_meta<M>(base: &Version<()>, meta: M) -> Version<M> {
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

pub(super) fn put_or_keep<M>(h: Option<Head<M>>) -> Change<M> {
    match h {
        Some(head) => Change::Put {
            head,
            values: vec![],
        },
        None => Change::Keep,
    }
}
