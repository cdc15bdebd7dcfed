//! How certificates, their items and pending operations look on the wire.

use super::*;
use crate::server::lifecycle::{self as shared, Shown};
use crate::wire::DeletionInfo;

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
    shared::deleted_reply::<Certificates>(ctx, head)
}

pub(super) fn current_reply(ctx: &RequestContext, head: &CertHead) -> ApiResult<Reply> {
    shared::current_reply::<Certificates>(ctx, head)
}

/// Certificates as the API shows them, for the shared reads (their delete, recover, purge,
/// backup and restore take the key and secret along: `lifecycle`).
pub struct Certificates;

impl Shown for Certificates {
    type Meta = CertMeta;
    type Bundle = CertificateBundle;
    type Item = CertificateItem;
    type Deleted = DeletedCertificateBundle;
    type DeletedItem = DeletedCertificateItem;
    const FAMILY: Family = FAMILY;

    fn bundle(ctx: &RequestContext, head: &CertHead, v: &Version<CertMeta>) -> CertificateBundle {
        bundle(ctx, head, v)
    }
    fn item(
        ctx: &RequestContext,
        head: &CertHead,
        v: &Version<CertMeta>,
        versioned: bool,
    ) -> CertificateItem {
        item(ctx, head, v, versioned)
    }
    fn deleted(certificate: CertificateBundle, deletion: DeletionInfo) -> DeletedCertificateBundle {
        DeletedCertificateBundle {
            certificate,
            deletion,
        }
    }
    fn deleted_item(item: CertificateItem, deletion: DeletionInfo) -> DeletedCertificateItem {
        DeletedCertificateItem { item, deletion }
    }
    fn no_current(head: &CertHead) -> ApiError {
        FAMILY.not_found(&head.name)
    }
    fn no_current_deleted(head: &CertHead) -> ApiError {
        FAMILY.deleted_not_found(&head.name)
    }
}
