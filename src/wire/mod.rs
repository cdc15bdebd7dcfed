//! The Azure Key Vault REST API's JSON shapes, shared by the server and the client.
//! Field names follow the API exactly (camelCase); absent optional fields are omitted.

pub mod admin;
pub mod api_version;
pub mod certificates;
pub mod events;
pub mod keys;
pub mod object_id;
pub mod secrets;
pub mod vault_url;

pub use admin::*;
pub use api_version::{
    ApiVersion, ApiVersionError, KNOWN_API_VERSIONS, LATEST_API_VERSION, Support, parse_api_version,
};
pub use certificates::*;
pub use keys::*;
pub use object_id::ObjectId;
pub use secrets::*;
pub use vault_url::{VaultUrl, default_audiences};

use serde::{Deserialize, Serialize};

/// The API's maximum page size (`maxresults` is 1–25).
pub const MAX_PAGE_SIZE: usize = 25;

/// `{"error":{"code":…,"message":…,"innererror":{…}}}`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub innererror: Option<InnerError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InnerError {
    pub code: String,
}

/// One page of a listing: `value` plus the absolute `nextLink` (null on the last page).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub value: Vec<T>,
    #[serde(default)]
    pub next_link: Option<String>,
}

/// Body of backup responses and restore requests: base64url without padding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupBlob {
    pub value: String,
}

/// Tags: at most 15, as the cloud allows.
pub type Tags = std::collections::BTreeMap<String, String>;
pub const MAX_TAGS: usize = 15;
pub const MAX_TAG_NAME_LEN: usize = 512;
pub const MAX_TAG_VALUE_LEN: usize = 256;

/// base64url without padding, as the API encodes bytes.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url with or without padding (clients differ).
pub fn from_b64url(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}
