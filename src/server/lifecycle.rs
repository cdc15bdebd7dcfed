//! The lifecycle handlers every family answers the same way — get-deleted, list, list
//! deleted, versions, delete, recover, purge, backup and restore — written once over
//! [`Shown`]: how a family shows its objects on the wire. The storage side of the same
//! steps is [`Family`]'s (`objects`); certificates, whose delete, recover, purge, backup and
//! restore carry their key and secret along, use the reads only.

use crate::server::error::{ApiError, ApiResult};
use crate::server::objects::{self, Family, Listing};
use crate::server::request::{Reply, RequestContext};
use crate::server::store::{Head, VaultStore, Version};
use crate::wire::{BackupBlob, DeletionInfo};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A family's objects as the API shows them.
pub trait Shown {
    /// What a version keeps beyond the common attributes.
    type Meta: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// `SecretBundle`, `KeyBundle`, `CertificateBundle`.
    type Bundle: Serialize;
    /// The listing's item.
    type Item: Serialize;
    /// The bundle with its deletion information.
    type Deleted: Serialize;
    /// The item with its deletion information.
    type DeletedItem: Serialize;
    /// The family's kind and error wording.
    const FAMILY: Family;

    fn bundle(
        ctx: &RequestContext,
        head: &Head<Self::Meta>,
        v: &Version<Self::Meta>,
    ) -> Self::Bundle;
    fn item(
        ctx: &RequestContext,
        head: &Head<Self::Meta>,
        v: &Version<Self::Meta>,
        versioned: bool,
    ) -> Self::Item;
    fn deleted(bundle: Self::Bundle, deletion: DeletionInfo) -> Self::Deleted;
    fn deleted_item(item: Self::Item, deletion: DeletionInfo) -> Self::DeletedItem;
    /// Whether a version belongs to a certificate (then only the certificate deletes it).
    fn managed(_meta: &Self::Meta) -> bool {
        false
    }
    /// The answer for an object without a current version (a stored record out of shape).
    fn no_current(_head: &Head<Self::Meta>) -> ApiError {
        ApiError::Integrity
    }
    /// The same for a deleted object.
    fn no_current_deleted(_head: &Head<Self::Meta>) -> ApiError {
        ApiError::Integrity
    }
}

/// The object's current version as a bundle.
pub fn current_reply<S: Shown>(ctx: &RequestContext, head: &Head<S::Meta>) -> ApiResult<Reply> {
    let v = head.current().ok_or_else(|| S::no_current(head))?;
    Reply::ok(&S::bundle(ctx, head, v))
}

/// A deleted object's current version with its deletion information.
pub fn deleted_reply<S: Shown>(ctx: &RequestContext, head: &Head<S::Meta>) -> ApiResult<Reply> {
    let v = head.current().ok_or_else(|| S::no_current_deleted(head))?;
    Reply::ok(&S::deleted(
        S::bundle(ctx, head, v),
        S::FAMILY.deletion_info(&ctx.origin, head),
    ))
}

/// `GET /deleted{family}/{name}`.
pub async fn get_deleted<S: Shown>(
    store: &VaultStore,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
    let head = S::FAMILY.deleted::<S::Meta>(store, name).await?;
    deleted_reply::<S>(ctx, &head)
}

/// `GET /{family}` or `GET /deleted{family}`: one page, by name.
pub async fn list<S: Shown>(
    store: &VaultStore,
    ctx: &RequestContext,
    which: Listing,
) -> ApiResult<Reply> {
    match which {
        Listing::Live => {
            S::FAMILY
                .list_page::<S::Meta, _>(store, ctx, which, |h, v| S::item(ctx, h, v, false))
                .await
        }
        Listing::Deleted => {
            S::FAMILY
                .list_page::<S::Meta, _>(store, ctx, which, |h, v| {
                    S::deleted_item(
                        S::item(ctx, h, v, false),
                        S::FAMILY.deletion_info(&ctx.origin, h),
                    )
                })
                .await
        }
    }
}

/// `GET /{family}/{name}/versions`.
pub async fn versions<S: Shown>(
    store: &VaultStore,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
    S::FAMILY
        .versions_page::<S::Meta, _>(store, ctx, name, |h, v| S::item(ctx, h, v, true))
        .await
}

/// `DELETE /{family}/{name}`: a soft delete, refused for a certificate's own key or secret.
pub async fn delete<S: Shown>(
    store: &VaultStore,
    ctx: &RequestContext,
    name: &str,
    now: i64,
) -> ApiResult<Reply> {
    let live = S::FAMILY.live::<S::Meta>(store, name).await?;
    if live.current().is_some_and(|v| S::managed(&v.meta)) {
        return Err(objects::managed_by_certificate(
            &S::FAMILY.title.to_ascii_lowercase(),
            &live.name,
        ));
    }
    let head = S::FAMILY
        .soft_delete::<S::Meta>(store, name, now, ctx.soft_delete)
        .await?;
    deleted_reply::<S>(ctx, &head)
}

/// `POST /deleted{family}/{name}/recover`.
pub async fn recover<S: Shown>(
    store: &VaultStore,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
    let head = S::FAMILY.recover::<S::Meta>(store, name).await?;
    current_reply::<S>(ctx, &head)
}

/// `DELETE /deleted{family}/{name}`.
pub async fn purge<S: Shown>(
    store: &VaultStore,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<Reply> {
    S::FAMILY
        .purge::<S::Meta>(store, name, ctx.soft_delete)
        .await?;
    Ok(Reply::NoContent)
}

/// `POST /{family}/{name}/backup`.
pub async fn backup<S: Shown>(store: &VaultStore, name: &str) -> ApiResult<Reply> {
    let blob = S::FAMILY.backup::<S::Meta>(store, name).await?;
    Reply::ok(&BackupBlob { value: blob })
}

/// `POST /{family}/restore`.
pub async fn restore<S: Shown>(
    store: &VaultStore,
    ctx: &RequestContext,
    body: &[u8],
) -> ApiResult<Reply> {
    let req: BackupBlob = objects::parse_json(body)?;
    let head = S::FAMILY.restore::<S::Meta>(store, &req.value).await?;
    current_reply::<S>(ctx, &head)
}
