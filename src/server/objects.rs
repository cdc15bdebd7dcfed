//! Rules shared by every object family: names, tags, JSON bodies, soft-delete settings
//! and sealed backups.

use crate::crypto::SealKey;
use crate::server::error::{ApiError, ApiResult};
use crate::server::request::{PageRequest, Reply, RequestContext, next_link};
pub use crate::server::retention::{MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, SoftDelete};
use crate::server::store::{Change, Head, Kind, VaultStore};
use crate::wire::{MAX_TAG_NAME_LEN, MAX_TAG_VALUE_LEN, MAX_TAGS, Tags};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const MAX_NAME_LEN: usize = 127;
/// The cloud refuses to back up objects with more versions than this.
pub const MAX_BACKUP_VERSIONS: usize = 500;

/// Object names: 1–127 characters of letters, digits and hyphens.
pub fn validate_name(name: &str) -> ApiResult<()> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::bad(format!(
            "The request URI contains an invalid name: '{}'. Names are 1-{MAX_NAME_LEN} characters of letters, digits and '-'.",
            printable(name)
        )));
    }
    Ok(())
}

/// A caller-supplied string made safe to echo in an error (bounded, no control chars).
pub fn printable(s: &str) -> String {
    s.chars()
        .take(MAX_NAME_LEN + 1)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub fn validate_tags(tags: &Option<Tags>) -> ApiResult<()> {
    let Some(tags) = tags else { return Ok(()) };
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad(format!(
            "At most {MAX_TAGS} tags are allowed."
        )));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_NAME_LEN {
            return Err(ApiError::bad(format!(
                "Tag names must be 1-{MAX_TAG_NAME_LEN} characters."
            )));
        }
        if v.chars().count() > MAX_TAG_VALUE_LEN {
            return Err(ApiError::bad(format!(
                "Tag values must be at most {MAX_TAG_VALUE_LEN} characters."
            )));
        }
    }
    Ok(())
}

/// Parses a JSON body. The error names the position and the kind of problem but never
/// echoes the input, which may hold a secret.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::bad(
            "The request body is empty; a JSON object is required.",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Syntax | Category::Eof => "is not valid JSON",
            Category::Data => "has a missing field or a field of the wrong type",
            Category::Io => "could not be read",
        };
        ApiError::bad(format!(
            "The request body {what} (line {}, column {}).",
            e.line(),
            e.column()
        ))
    })
}

/// A certificate's key or secret is deleted with its certificate, not on its own.
pub fn managed_by_certificate(what: &str, name: &str) -> ApiError {
    ApiError::Forbidden {
        message: format!(
            "The {what} {name} belongs to certificate {name}; delete the certificate instead."
        ),
        inner: None,
    }
}

pub fn purge_protected() -> ApiError {
    ApiError::Forbidden {
        message: "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.".into(),
        inner: None,
    }
}

const BACKUP_MAGIC: &[u8] = b"KVB1";

/// The plaintext inside a backup blob: one object with all its versions.
#[derive(Serialize, Deserialize)]
pub struct Backup<M> {
    kind: String,
    pub head: Head<M>,
    values: Vec<BackupValue>,
}

#[derive(Serialize, Deserialize)]
struct BackupValue {
    version: String,
    /// Standard base64 of the value.
    value: String,
}

impl Drop for BackupValue {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

fn invalid_backup() -> ApiError {
    ApiError::bad(
        "The backup blob is invalid: it is corrupted, or it was made by a vault with another master key.",
    )
}

impl<M: Serialize + DeserializeOwned + Clone> Backup<M> {
    /// Seals an object and its versions' values into a base64url blob.
    pub fn seal(
        key: &SealKey,
        kind: Kind,
        head: &Head<M>,
        values: Vec<(String, Zeroizing<Vec<u8>>)>,
    ) -> ApiResult<String> {
        if head.versions.len() > MAX_BACKUP_VERSIONS {
            return Err(ApiError::bad(format!(
                "Backup is limited to {MAX_BACKUP_VERSIONS} versions per object."
            )));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let backup = Backup {
            kind: kind.as_str().to_string(),
            head: head.clone(),
            values: values
                .iter()
                .map(|(version, v)| BackupValue {
                    version: version.clone(),
                    value: b64.encode(v.as_slice()),
                })
                .collect(),
        };
        let plain = Zeroizing::new(serde_json::to_vec(&backup).map_err(|_| ApiError::Internal)?);
        let mut out = BACKUP_MAGIC.to_vec();
        out.extend(
            key.seal(&backup_aad(kind), &plain)
                .map_err(|_| ApiError::Internal)?,
        );
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a blob; anything tampered, foreign or of another object kind is a 400.
    pub fn open(key: &SealKey, kind: Kind, blob: &str) -> ApiResult<Self> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(blob.trim_end_matches('='))
            .map_err(|_| invalid_backup())?;
        let sealed = raw.strip_prefix(BACKUP_MAGIC).ok_or_else(invalid_backup)?;
        let plain = key
            .open(&backup_aad(kind), sealed)
            .map_err(|_| invalid_backup())?;
        let backup: Backup<M> = serde_json::from_slice(&plain).map_err(|_| invalid_backup())?;
        if backup.kind != kind.as_str() {
            return Err(invalid_backup());
        }
        validate_name(&backup.head.name).map_err(|_| invalid_backup())?;
        // Every version must come with its value, and nothing else.
        let complete = backup.values.len() == backup.head.versions.len()
            && backup
                .head
                .versions
                .iter()
                .all(|v| backup.values.iter().any(|b| b.version == v.id));
        if !complete || backup.head.versions.is_empty() {
            return Err(invalid_backup());
        }
        Ok(backup)
    }

    /// The versions' values, decoded.
    pub fn values(&self) -> Vec<(String, Zeroizing<Vec<u8>>)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.values
            .iter()
            .filter_map(|b| {
                b64.decode(&b.value)
                    .ok()
                    .map(|v| (b.version.clone(), Zeroizing::new(v)))
            })
            .collect()
    }
}

fn backup_aad(kind: Kind) -> Vec<u8> {
    format!("kvault/v1/backup/{}", kind.as_str()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "A-1", &"x".repeat(127)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a_b", "a b", "é", &"x".repeat(128), "a/b", "a.b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recovery_levels_follow_the_settings() {
        let sd = |d, p| SoftDelete {
            retention_days: d,
            purge_protection: p,
        };
        assert_eq!(sd(90, false).recovery_level(), "Recoverable+Purgeable");
        assert_eq!(sd(90, true).recovery_level(), "Recoverable");
        assert_eq!(
            sd(7, false).recovery_level(),
            "CustomizedRecoverable+Purgeable"
        );
        assert_eq!(sd(7, true).recovery_level(), "CustomizedRecoverable");
        assert_eq!(sd(7, true).retention_secs(), 7 * 86_400);
    }

    #[test]
    fn json_errors_never_echo_the_input() {
        let err =
            parse_json::<crate::wire::SecretSetParameters>(br#"{"value": 123456789}"#).unwrap_err();
        assert!(!err.to_string().contains("123456789"), "{err}");
        assert!(parse_json::<crate::wire::SecretSetParameters>(b"{").is_err());
        assert!(parse_json::<crate::wire::SecretSetParameters>(b"").is_err());
    }

    #[test]
    fn backups_open_only_under_their_key_and_kind() {
        let key = SealKey::from_bytes(&[1; 32]).unwrap();
        let other = SealKey::from_bytes(&[2; 32]).unwrap();
        let head: Head<()> = Head {
            name: "s".into(),
            versions: vec![crate::server::store::Version::new("v1".into(), 1, ())],
            deleted: None,
            rotation: None,
            certificate: None,
        };
        let blob = Backup::seal(
            &key,
            Kind::Secret,
            &head,
            vec![("v1".into(), Zeroizing::new(b"x".to_vec()))],
        )
        .unwrap();
        let back = Backup::<()>::open(&key, Kind::Secret, &blob).unwrap();
        assert_eq!(back.values()[0].1.as_slice(), b"x");
        assert!(Backup::<()>::open(&other, Kind::Secret, &blob).is_err());
        assert!(Backup::<()>::open(&key, Kind::Key, &blob).is_err());
        let mut chars: Vec<char> = blob.chars().collect();
        let mid = chars.len() / 2;
        chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(Backup::<()>::open(&key, Kind::Secret, &tampered).is_err());
        assert!(Backup::<()>::open(&key, Kind::Secret, "!!!").is_err());
    }
}

/// What differs between object families in the shared lifecycle: their kind and the
/// wording and codes of their errors.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub kind: Kind,
    /// "Secret", "Key", "Certificate".
    pub title: &'static str,
    /// "SecretNotFound", "KeyNotFound", "CertificateNotFound".
    pub not_found_code: &'static str,
}

pub const SECRETS: Family = Family {
    kind: Kind::Secret,
    title: "Secret",
    not_found_code: "SecretNotFound",
};

pub const KEYS: Family = Family {
    kind: Kind::Key,
    title: "Key",
    not_found_code: "KeyNotFound",
};

impl Family {
    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::NotFound {
            code: self.not_found_code,
            message: format!(
                "A {} with (name/id) {} was not found in this key vault.",
                self.title.to_ascii_lowercase(),
                printable(name)
            ),
        }
    }

    pub fn version_not_found(&self, name: &str, version: &str) -> ApiError {
        self.not_found(&format!("{name}/{}", printable(version)))
    }

    pub fn deleted_not_found(&self, name: &str) -> ApiError {
        ApiError::NotFound {
            code: self.not_found_code,
            message: format!("Deleted {} not found: {}", self.title, printable(name)),
        }
    }

    pub fn deleted_conflict(&self, name: &str) -> ApiError {
        ApiError::Conflict {
            message: format!(
                "{t} {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the {l} can only be recovered or purged.",
                t = self.title,
                l = self.title.to_ascii_lowercase()
            ),
            inner: Some("ObjectIsDeletedButRecoverable"),
        }
    }

    pub fn exists_conflict(&self, name: &str) -> ApiError {
        ApiError::Conflict {
            message: format!("{} {name} already exists; restore refused.", self.title),
            inner: None,
        }
    }

    /// `…/deletedsecrets/{name}` etc.
    pub fn deletion_info<M>(&self, origin: &str, head: &Head<M>) -> crate::wire::DeletionInfo {
        let d = head.deleted.unwrap_or(crate::server::store::Deleted {
            deleted_date: 0,
            scheduled_purge_date: 0,
        });
        crate::wire::DeletionInfo {
            recovery_id: Some(format!(
                "{origin}/{}/{}",
                self.kind.deleted_collection(),
                head.name
            )),
            deleted_date: Some(d.deleted_date),
            scheduled_purge_date: Some(d.scheduled_purge_date),
        }
    }

    /// A version of `head`: the current one for `None`, else by id; this family's 404
    /// otherwise.
    pub fn pick<'h, M>(
        &self,
        head: &'h Head<M>,
        name: &str,
        version: Option<&str>,
    ) -> ApiResult<&'h crate::server::store::Version<M>> {
        match version {
            None => head.current().ok_or_else(|| self.not_found(name)),
            Some(v) => head
                .version(v)
                .ok_or_else(|| self.version_not_found(name, v)),
        }
    }

    /// The live object, or this family's 404.
    pub async fn live<M: DeserializeOwned>(
        &self,
        store: &VaultStore,
        name: &str,
    ) -> ApiResult<Head<M>> {
        validate_name(name)?;
        match store.head::<M>(self.kind, name).await? {
            Some(h) if h.deleted.is_none() => Ok(h),
            _ => Err(self.not_found(name)),
        }
    }

    /// The soft-deleted object, or this family's 404.
    pub async fn deleted<M: DeserializeOwned>(
        &self,
        store: &VaultStore,
        name: &str,
    ) -> ApiResult<Head<M>> {
        validate_name(name)?;
        match store.head::<M>(self.kind, name).await? {
            Some(h) if h.deleted.is_some() => Ok(h),
            _ => Err(self.deleted_not_found(name)),
        }
    }

    /// Soft-deletes a live object: every version stays, recoverable until the retention ends.
    pub async fn soft_delete<M: Serialize + DeserializeOwned + Clone>(
        &self,
        store: &VaultStore,
        name: &str,
        now: i64,
        soft_delete: SoftDelete,
    ) -> ApiResult<Head<M>> {
        validate_name(name)?;
        store
            .modify::<M, _, ApiError>(self.kind, name, |current| {
                let mut head = match current {
                    Some(h) if h.deleted.is_none() => h,
                    _ => return Err(self.not_found(name)),
                };
                head.deleted = Some(crate::server::store::Deleted {
                    deleted_date: now,
                    scheduled_purge_date: now + soft_delete.retention_secs(),
                });
                Ok((
                    Change::Put {
                        head: head.clone(),
                        values: vec![],
                    },
                    head,
                ))
            })
            .await
    }

    pub async fn recover<M: Serialize + DeserializeOwned + Clone>(
        &self,
        store: &VaultStore,
        name: &str,
    ) -> ApiResult<Head<M>> {
        validate_name(name)?;
        store
            .modify::<M, _, ApiError>(self.kind, name, |current| {
                let mut head = match current {
                    Some(h) if h.deleted.is_some() => h,
                    _ => return Err(self.deleted_not_found(name)),
                };
                head.deleted = None;
                Ok((
                    Change::Put {
                        head: head.clone(),
                        values: vec![],
                    },
                    head,
                ))
            })
            .await
    }

    /// Removes a soft-deleted object for good (403 under purge protection).
    pub async fn purge<M: Serialize + DeserializeOwned>(
        &self,
        store: &VaultStore,
        name: &str,
        soft_delete: SoftDelete,
    ) -> ApiResult<()> {
        validate_name(name)?;
        if soft_delete.purge_protection {
            return Err(purge_protected());
        }
        store
            .modify::<M, _, ApiError>(self.kind, name, |current| match current {
                Some(h) if h.deleted.is_some() => Ok((Change::Purge, ())),
                _ => Err(self.deleted_not_found(name)),
            })
            .await
    }

    /// A sealed backup blob of a live object with every version.
    pub async fn backup<M: Serialize + DeserializeOwned + Clone>(
        &self,
        store: &VaultStore,
        name: &str,
    ) -> ApiResult<String> {
        let head = self.live::<M>(store, name).await?;
        let mut values = Vec::with_capacity(head.versions.len());
        for v in &head.versions {
            values.push((
                v.id.clone(),
                store.value(self.kind, &head.name, &v.id).await?,
            ));
        }
        Backup::seal(store.backup_key(), self.kind, &head, values)
    }

    /// Restores a backup blob when its name is free (live or deleted names refuse).
    pub async fn restore<M: Serialize + DeserializeOwned + Clone>(
        &self,
        store: &VaultStore,
        blob: &str,
    ) -> ApiResult<Head<M>> {
        let backup = Backup::<M>::open(store.backup_key(), self.kind, blob)?;
        let name = backup.head.name.clone();
        store
            .modify::<M, _, ApiError>(self.kind, &name, |current| {
                match current {
                    Some(h) if h.deleted.is_some() => return Err(self.deleted_conflict(&h.name)),
                    Some(h) => return Err(self.exists_conflict(&h.name)),
                    None => {}
                }
                let mut head = backup.head.clone();
                head.deleted = None;
                Ok((
                    Change::Put {
                        head: head.clone(),
                        values: backup.values(),
                    },
                    head,
                ))
            })
            .await
    }
}

/// Which objects a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Live,
    Deleted,
}

fn invalid_skiptoken() -> ApiError {
    ApiError::bad("Invalid $skiptoken.")
}

impl Family {
    /// One page of the live or deleted objects through the store's listing index: the
    /// heads of the page and the `nextLink` (a sealed cursor bound to this listing).
    pub async fn heads_page<M: DeserializeOwned>(
        &self,
        store: &VaultStore,
        ctx: &RequestContext,
        which: Listing,
    ) -> ApiResult<(Vec<Head<M>>, Option<String>)> {
        let page = PageRequest::from_query(&ctx.query)?;
        let deleted = which == Listing::Deleted;
        let listing = store.listing_id(self.kind, deleted, None);
        let after = match &page.after {
            None => None,
            Some(t) => Some(
                store
                    .open_cursor(&listing, t)
                    .ok_or_else(invalid_skiptoken)?,
            ),
        };
        let found = store
            .heads_page::<M>(self.kind, deleted, after.as_deref(), page.max)
            .await?;
        let collection = match which {
            Listing::Live => self.kind.collection(),
            Listing::Deleted => self.kind.deleted_collection(),
        };
        let link = match found.next {
            None => None,
            Some(pos) => Some(next_link(
                &format!("{}/{collection}", ctx.origin),
                &ctx.api_version,
                &store.seal_cursor(&listing, &pos)?,
                page.max,
            )),
        };
        Ok((found.heads, link))
    }

    /// One page of the live or deleted objects, each shown through `show` (called with the
    /// object and its current version), in the listing index's order.
    pub async fn list_page<M: DeserializeOwned, T: Serialize>(
        &self,
        store: &VaultStore,
        ctx: &RequestContext,
        which: Listing,
        show: impl Fn(&Head<M>, &crate::server::store::Version<M>) -> T,
    ) -> ApiResult<Reply> {
        let (heads, next_link) = self.heads_page::<M>(store, ctx, which).await?;
        let value: Vec<T> = heads
            .iter()
            .filter_map(|h| h.current().map(|v| show(h, v)))
            .collect();
        Reply::ok(&crate::wire::Page { value, next_link })
    }

    /// One page of a live object's versions in creation order (empty for a missing name,
    /// as the cloud answers).
    pub async fn versions_page<M: DeserializeOwned, T: Serialize>(
        &self,
        store: &VaultStore,
        ctx: &RequestContext,
        name: &str,
        show: impl Fn(&Head<M>, &crate::server::store::Version<M>) -> T,
    ) -> ApiResult<Reply> {
        validate_name(name)?;
        let page = PageRequest::from_query(&ctx.query)?;
        let listing = store.listing_id(self.kind, false, Some(name));
        let start = match &page.after {
            None => 0,
            Some(t) => store
                .open_cursor(&listing, t)
                .and_then(|p| <[u8; 8]>::try_from(p.as_slice()).ok())
                .and_then(|p| usize::try_from(u64::from_be_bytes(p)).ok())
                .ok_or_else(invalid_skiptoken)?,
        };
        let (value, more): (Vec<T>, bool) = match store.head::<M>(self.kind, name).await? {
            Some(h) if h.deleted.is_none() => (
                h.versions
                    .iter()
                    .skip(start)
                    .take(page.max)
                    .map(|v| show(&h, v))
                    .collect(),
                h.versions.len() > start.saturating_add(page.max),
            ),
            _ => (Vec::new(), false),
        };
        let next_link = if more {
            let end = u64::try_from(start.saturating_add(page.max)).unwrap_or(u64::MAX);
            Some(next_link(
                &format!(
                    "{}/{}/{}/versions",
                    ctx.origin,
                    self.kind.collection(),
                    name
                ),
                &ctx.api_version,
                &store.seal_cursor(&listing, &end.to_be_bytes())?,
                page.max,
            ))
        } else {
            None
        };
        Reply::ok(&crate::wire::Page { value, next_link })
    }
}
