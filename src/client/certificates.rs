//! The certificates API of [`VaultClient`]: certificates, their policies and pending
//! operations, issuers and contacts.

use super::{ClientError, VaultClient};
use crate::wire::{
    BackupBlob, CertificateBundle, CertificateCreateParameters, CertificateImportParameters,
    CertificateItem, CertificateMergeParameters, CertificateOperation, CertificatePolicy,
    CertificateUpdateParameters, Contacts, DeletedCertificateBundle, DeletedCertificateItem,
    IssuerBundle, IssuerItem,
};
use reqwest::Method;

impl VaultClient {
    /// Starts issuance; the answer is the certificate operation (202).
    pub async fn create_certificate(
        &self,
        name: &str,
        params: &CertificateCreateParameters,
    ) -> Result<CertificateOperation, ClientError> {
        self.call(
            Method::POST,
            &format!("/certificates/{}/create", Self::seg(name)),
            &[],
            Some(params),
        )
        .await
    }

    pub async fn get_certificate_operation(
        &self,
        name: &str,
    ) -> Result<CertificateOperation, ClientError> {
        self.call(
            Method::GET,
            &format!("/certificates/{}/pending", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn merge_certificate(
        &self,
        name: &str,
        params: &CertificateMergeParameters,
    ) -> Result<CertificateBundle, ClientError> {
        self.call(
            Method::POST,
            &format!("/certificates/{}/pending/merge", Self::seg(name)),
            &[],
            Some(params),
        )
        .await
    }

    pub async fn import_certificate(
        &self,
        name: &str,
        params: &CertificateImportParameters,
    ) -> Result<CertificateBundle, ClientError> {
        self.call(
            Method::POST,
            &format!("/certificates/{}/import", Self::seg(name)),
            &[],
            Some(params),
        )
        .await
    }

    pub async fn get_certificate(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<CertificateBundle, ClientError> {
        let path = format!(
            "/certificates/{}/{}",
            Self::seg(name),
            Self::seg(version.unwrap_or(""))
        );
        self.call(Method::GET, &path, &[], None::<&()>).await
    }

    pub async fn update_certificate(
        &self,
        name: &str,
        version: Option<&str>,
        params: &CertificateUpdateParameters,
    ) -> Result<CertificateBundle, ClientError> {
        let path = format!(
            "/certificates/{}/{}",
            Self::seg(name),
            Self::seg(version.unwrap_or(""))
        );
        self.call(Method::PATCH, &path, &[], Some(params)).await
    }

    pub async fn list_certificates(&self) -> Result<Vec<CertificateItem>, ClientError> {
        self.list_all("/certificates").await
    }

    pub async fn list_certificate_versions(
        &self,
        name: &str,
    ) -> Result<Vec<CertificateItem>, ClientError> {
        self.list_all(&format!("/certificates/{}/versions", Self::seg(name)))
            .await
    }

    pub async fn get_certificate_policy(
        &self,
        name: &str,
    ) -> Result<CertificatePolicy, ClientError> {
        self.call(
            Method::GET,
            &format!("/certificates/{}/policy", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn update_certificate_policy(
        &self,
        name: &str,
        policy: &CertificatePolicy,
    ) -> Result<CertificatePolicy, ClientError> {
        self.call(
            Method::PATCH,
            &format!("/certificates/{}/policy", Self::seg(name)),
            &[],
            Some(policy),
        )
        .await
    }

    pub async fn delete_certificate(
        &self,
        name: &str,
    ) -> Result<DeletedCertificateBundle, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/certificates/{}", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn list_deleted_certificates(
        &self,
    ) -> Result<Vec<DeletedCertificateItem>, ClientError> {
        self.list_all("/deletedcertificates").await
    }

    pub async fn recover_deleted_certificate(
        &self,
        name: &str,
    ) -> Result<CertificateBundle, ClientError> {
        self.call(
            Method::POST,
            &format!("/deletedcertificates/{}/recover", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn purge_deleted_certificate(&self, name: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("/deletedcertificates/{}", Self::seg(name)), &[]);
        self.send(Method::DELETE, url, None).await.map(|_| ())
    }

    pub async fn backup_certificate(&self, name: &str) -> Result<String, ClientError> {
        let b: BackupBlob = self
            .call(
                Method::POST,
                &format!("/certificates/{}/backup", Self::seg(name)),
                &[],
                None::<&()>,
            )
            .await?;
        Ok(b.value)
    }

    pub async fn restore_certificate(&self, blob: &str) -> Result<CertificateBundle, ClientError> {
        self.call(
            Method::POST,
            "/certificates/restore",
            &[],
            Some(&BackupBlob {
                value: blob.to_string(),
            }),
        )
        .await
    }

    pub async fn set_certificate_issuer(
        &self,
        name: &str,
        issuer: &IssuerBundle,
    ) -> Result<IssuerBundle, ClientError> {
        self.call(
            Method::PUT,
            &format!("/certificates/issuers/{}", Self::seg(name)),
            &[],
            Some(issuer),
        )
        .await
    }

    pub async fn get_certificate_issuer(&self, name: &str) -> Result<IssuerBundle, ClientError> {
        self.call(
            Method::GET,
            &format!("/certificates/issuers/{}", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn list_certificate_issuers(&self) -> Result<Vec<IssuerItem>, ClientError> {
        self.list_all("/certificates/issuers").await
    }

    pub async fn delete_certificate_issuer(&self, name: &str) -> Result<IssuerBundle, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/certificates/issuers/{}", Self::seg(name)),
            &[],
            None::<&()>,
        )
        .await
    }

    pub async fn set_certificate_contacts(
        &self,
        contacts: &Contacts,
    ) -> Result<Contacts, ClientError> {
        self.call(Method::PUT, "/certificates/contacts", &[], Some(contacts))
            .await
    }

    pub async fn get_certificate_contacts(&self) -> Result<Contacts, ClientError> {
        self.call(Method::GET, "/certificates/contacts", &[], None::<&()>)
            .await
    }

    pub async fn delete_certificate_contacts(&self) -> Result<Contacts, ClientError> {
        self.call(Method::DELETE, "/certificates/contacts", &[], None::<&()>)
            .await
    }
}
