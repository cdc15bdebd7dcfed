//! The keys API of [`VaultClient`]: keys, their versions and rotation, the cryptographic
//! operations and random bytes.

use super::{ClientError, VaultClient};
use crate::wire::{
    BackupBlob, DeletedKeyBundle, DeletedKeyItem, GetRandomBytesRequest, KeyBundle,
    KeyCreateParameters, KeyImportParameters, KeyItem, KeyOperationResult, KeyOperationsParameters,
    KeyRotationPolicy, KeySignParameters, KeyUpdateParameters, KeyVerifyParameters,
    KeyVerifyResult, RandomBytes,
};
use reqwest::Method;

impl VaultClient {
    pub async fn create_key(
        &self,
        name: &str,
        params: &KeyCreateParameters,
    ) -> Result<KeyBundle, ClientError> {
        self.call(
            Method::POST,
            &format!("/keys/{}/create", Self::seg(name)),
            &[],
            Some(params),
        )
        .await
    }

    pub async fn import_key(
        &self,
        name: &str,
        params: &KeyImportParameters,
    ) -> Result<KeyBundle, ClientError> {
        self.call(
            Method::PUT,
            &format!("/keys/{}", Self::seg(name)),
            &[],
            Some(params),
        )
        .await
    }

    /// The latest version when `version` is `None`.
    pub async fn get_key(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<KeyBundle, ClientError> {
        let path = format!(
            "/keys/{}/{}",
            Self::seg(name),
            Self::seg(version.unwrap_or(""))
        );
        self.call(Method::GET, &path, &[], None::<&()>).await
    }

    pub async fn update_key(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeyUpdateParameters,
    ) -> Result<KeyBundle, ClientError> {
        let path = format!(
            "/keys/{}/{}",
            Self::seg(name),
            Self::seg(version.unwrap_or(""))
        );
        self.call(Method::PATCH, &path, &[], Some(params)).await
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyItem>, ClientError> {
        self.list_all("/keys").await
    }

    pub async fn list_key_versions(&self, name: &str) -> Result<Vec<KeyItem>, ClientError> {
        self.list_all(&format!("/keys/{}/versions", Self::seg(name)))
            .await
    }

    pub async fn delete_key(&self, name: &str) -> Result<DeletedKeyBundle, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/keys/{}", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn get_deleted_key(&self, name: &str) -> Result<DeletedKeyBundle, ClientError> {
        self.call(
            Method::GET,
            &format!("/deletedkeys/{}", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn list_deleted_keys(&self) -> Result<Vec<DeletedKeyItem>, ClientError> {
        self.list_all("/deletedkeys").await
    }

    pub async fn recover_deleted_key(&self, name: &str) -> Result<KeyBundle, ClientError> {
        self.call(
            Method::POST,
            &format!("/deletedkeys/{}/recover", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn purge_deleted_key(&self, name: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("/deletedkeys/{}", Self::seg(name)), &[]);
        self.send(Method::DELETE, url, None).await.map(|_| ())
    }

    pub async fn backup_key(&self, name: &str) -> Result<String, ClientError> {
        let b: BackupBlob = self
            .call(
                Method::POST,
                &format!("/keys/{}/backup", Self::seg(name)),
                &[],
                None::<&()>,
            )
            .await?;
        Ok(b.value)
    }

    pub async fn restore_key(&self, blob: &str) -> Result<KeyBundle, ClientError> {
        self.call(
            Method::POST,
            "/keys/restore",
            &[],
            Some(&BackupBlob {
                value: blob.to_string(),
            }),
        )
        .await
    }

    pub async fn rotate_key(&self, name: &str) -> Result<KeyBundle, ClientError> {
        self.call(
            Method::POST,
            &format!("/keys/{}/rotate", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn get_rotation_policy(&self, name: &str) -> Result<KeyRotationPolicy, ClientError> {
        self.call(
            Method::GET,
            &format!("/keys/{}/rotationpolicy", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn set_rotation_policy(
        &self,
        name: &str,
        policy: &KeyRotationPolicy,
    ) -> Result<KeyRotationPolicy, ClientError> {
        self.call(
            Method::PUT,
            &format!("/keys/{}/rotationpolicy", Self::seg(name)),
            &[],
            Some(policy),
        )
        .await
    }

    fn key_op_path(name: &str, version: Option<&str>, op: &str) -> String {
        format!(
            "/keys/{}/{}/{op}",
            Self::seg(name),
            Self::seg(version.unwrap_or(""))
        )
    }

    /// encrypt, decrypt, wrapkey or unwrapkey.
    pub async fn key_operation(
        &self,
        name: &str,
        version: Option<&str>,
        op: &str,
        params: &KeyOperationsParameters,
    ) -> Result<KeyOperationResult, ClientError> {
        self.call(
            Method::POST,
            &Self::key_op_path(name, version, op),
            &[],
            Some(params),
        )
        .await
    }

    /// Signs a digest (base64url in `params.value`).
    pub async fn sign(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeySignParameters,
    ) -> Result<KeyOperationResult, ClientError> {
        self.call(
            Method::POST,
            &Self::key_op_path(name, version, "sign"),
            &[],
            Some(params),
        )
        .await
    }

    pub async fn verify(
        &self,
        name: &str,
        version: Option<&str>,
        params: &KeyVerifyParameters,
    ) -> Result<bool, ClientError> {
        let r: KeyVerifyResult = self
            .call(
                Method::POST,
                &Self::key_op_path(name, version, "verify"),
                &[],
                Some(params),
            )
            .await?;
        Ok(r.value)
    }

    pub async fn random_bytes(&self, count: u32) -> Result<Vec<u8>, ClientError> {
        let r: RandomBytes = self
            .call(
                Method::POST,
                "/rng",
                &[],
                Some(&GetRandomBytesRequest { count }),
            )
            .await?;
        crate::wire::from_b64url(&r.value)
            .ok_or_else(|| ClientError::decode("random bytes are not base64url"))
    }
}
