//! Reading and managing certificates: get, update, policies, listings and versions.

use super::*;
use crate::server::lifecycle as shared;

pub(super) async fn get(
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
pub(super) fn pending_bundle(ctx: &RequestContext, head: &CertHead) -> Option<CertificateBundle> {
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

pub(super) async fn update(
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
pub(super) fn apply_update_in<M>(
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
pub(super) fn merge_policy(
    current: &CertificatePolicy,
    given: &CertificatePolicy,
) -> CertificatePolicy {
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

pub(super) async fn update_policy(
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

pub(super) async fn list(
    state: &AppState,
    ctx: &RequestContext,
    deleted: bool,
) -> ApiResult<Reply> {
    if deleted {
        return shared::list::<Certificates>(&state.store, ctx, Listing::Deleted).await;
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
    let (heads, next_link) = FAMILY
        .heads_page::<CertMeta>(&state.store, ctx, Listing::Live)
        .await?;
    let value: Vec<CertificateItem> = heads
        .iter()
        .filter_map(|h| match h.current() {
            Some(v) => Some(item(ctx, h, v, false)),
            None if h.certificate.as_ref().is_some_and(|c| c.pending.is_some()) => {
                Some(CertificateItem {
                    id: format!("{}/certificates/{}", ctx.origin, h.name),
                    ..Default::default()
                })
            }
            None => None,
        })
        .collect();
    // The next page must include pending certificates too.
    let next_link = next_link.map(|l| format!("{l}&includePending=true"));
    Reply::ok(&crate::wire::Page { value, next_link })
}

pub(super) async fn versions(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
    shared::versions::<Certificates>(&state.store, ctx, name).await
}
