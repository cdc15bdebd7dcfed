//! Parsed key material, cached by key version.

use crate::crypto::keys::KeyMaterial;
use crate::server::error::{ApiError, ApiResult};
use crate::server::store::{Kind, VaultStore};

/// Parsed key material by (name, version). Versions are immutable and their ids random, so
/// an entry never goes stale; what may change (enabled, key_ops, validity) is read from the
/// head on every request. Parsing an RSA key costs more than using it, hence the cache; it
/// is bounded, and aws-lc cleanses key memory when an entry is dropped.
#[derive(Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<KeyMaterial>>>,
}

const KEY_CACHE_CAPACITY: usize = 1024;

impl KeyCache {
    pub async fn load(
        &self,
        store: &VaultStore,
        name: &str,
        version: &str,
    ) -> ApiResult<std::sync::Arc<KeyMaterial>> {
        let id = format!("{}/{}", name.to_ascii_lowercase(), version);
        if let Some(hit) = self.entries.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(hit);
        }
        let stored = store.value(Kind::Key, name, version).await?;
        let material = tokio::task::spawn_blocking(move || KeyMaterial::from_stored(&stored))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|_| ApiError::Integrity)?;
        let material = std::sync::Arc::new(material);
        if let Ok(mut m) = self.entries.lock() {
            if m.len() >= KEY_CACHE_CAPACITY {
                m.clear();
            }
            m.insert(id, material.clone());
        }
        Ok(material)
    }

    /// Forgets every key (another replica changed keys; which ones, it does not say).
    pub fn clear(&self) {
        if let Ok(mut m) = self.entries.lock() {
            m.clear();
        }
    }

    /// Forgets a key's versions (purge): nothing of a purged key stays in memory.
    pub fn forget(&self, name: &str) {
        let prefix = format!("{}/", name.to_ascii_lowercase());
        if let Ok(mut m) = self.entries.lock() {
            m.retain(|k, _| !k.starts_with(&prefix));
        }
    }
}
