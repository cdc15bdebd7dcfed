//! Soft delete, recover and purge, and backup and restore: the key and secret follow the
//! certificate.

use super::*;

pub(super) fn mark<M: Clone>(h: &Option<Head<M>>, deleted: Option<Deleted>) -> Change<M> {
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

pub(super) async fn delete(state: &AppState, ctx: &RequestContext, name: &str) -> ApiResult<Reply> {
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

pub(super) async fn recover(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
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

pub(super) async fn purge(state: &AppState, ctx: &RequestContext, name: &str) -> ApiResult<Reply> {
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
pub(super) struct CertificateBackup {
    certificate: String,
    key: Option<String>,
    secret: Option<String>,
}

pub(super) async fn backup(state: &AppState, name: &str) -> ApiResult<Reply> {
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

pub(super) async fn restore(
    state: &AppState,
    ctx: &RequestContext,
    body: &[u8],
) -> ApiResult<Reply> {
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
