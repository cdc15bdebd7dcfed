//! How certificates, their items and pending operations look on the wire.

use super::*;

pub(super) fn attributes(ctx: &RequestContext, v: &Version<CertMeta>) -> CertificateAttributes {
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

pub(super) fn bundle(
    ctx: &RequestContext,
    head: &CertHead,
    v: &Version<CertMeta>,
) -> CertificateBundle {
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

pub(super) fn item(
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

pub(super) fn operation(
    ctx: &RequestContext,
    head: &CertHead,
    op: &PendingOperation,
) -> CertificateOperation {
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
pub(super) fn status_details(issuer: &str, status: &str) -> Option<&'static str> {
    if status != "inProgress" {
        return None;
    }
    Some(if issuer.eq_ignore_ascii_case("Unknown") {
        "Pending certificate created. Please Perform Merge to complete the request."
    } else {
        "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later."
    })
}

pub(super) fn deleted_reply(ctx: &RequestContext, head: &CertHead) -> ApiResult<Reply> {
    let v = head
        .current()
        .ok_or_else(|| FAMILY.deleted_not_found(&head.name))?;
    Reply::ok(&DeletedCertificateBundle {
        certificate: bundle(ctx, head, v),
        deletion: FAMILY.deletion_info(&ctx.origin, head),
    })
}

pub(super) fn current_reply(ctx: &RequestContext, head: &CertHead) -> ApiResult<Reply> {
    let v = head.current().ok_or_else(|| FAMILY.not_found(&head.name))?;
    Reply::ok(&bundle(ctx, head, v))
}
