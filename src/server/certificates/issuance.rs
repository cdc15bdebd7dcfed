//! Issuance: create, renewal and the merge of a certificate signed elsewhere, and the pending
//! operation.

use super::*;

pub(super) fn key_for_policy(
    p: &CertificatePolicy,
) -> ApiResult<(KeyType, Option<u32>, Option<Curve>)> {
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
                cert_der: ca.chain.first().ok_or(ApiError::Integrity)?,
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
pub(super) async fn store_platform_managed(
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

pub(super) async fn create(
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

pub(super) async fn merge(
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

pub(super) fn pending_not_found(name: &str) -> ApiError {
    ApiError::NotFound {
        code: "PendingCertificateNotFound",
        message: format!(
            "Pending certificate not found: {}",
            objects::printable(name)
        ),
    }
}

pub(super) async fn pending_head(
    state: &AppState,
    name: &str,
) -> ApiResult<(CertHead, PendingOperation)> {
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

pub(super) async fn get_operation(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
    let (head, op) = pending_head(state, name).await?;
    Reply::ok(&operation(ctx, &head, &op))
}

pub(super) async fn modify_operation(
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

pub(super) async fn cancel_operation(
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

pub(super) async fn delete_operation(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
    let (head, op) = modify_operation(state, name, |_| Ok(None)).await?;
    Reply::ok(&operation(ctx, &head, &op))
}
