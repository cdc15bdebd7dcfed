//! Pure parsing of a Mount request: the `attributes` JSON (SecretProviderClass parameters,
//! pod volume attributes and the driver's own keys), the `objects` list, the default file
//! permission and the pod's service-account token for the vault's audience.
//!
//! Nothing here does I/O, and no error message quotes a value: attribute values may be
//! tokens, and the messages end up in pod events.

use super::error::{ErrorCode, MountError, MountResult};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use zeroize::Zeroizing;

mod objects;

pub use objects::selection::{SelectionSpec, expand_selections};
use objects::valid_dns_label;
pub use objects::{ObjectList, parse_objects};

/// The driver's default file mode when `permission` is empty (it always sends "420").
pub const DEFAULT_PERMISSION: u32 = 0o644;
/// Most objects one SecretProviderClass may list.
pub const MAX_OBJECTS: usize = 256;
/// Most objects one mount may have once its selections are expanded: the listed objects
/// plus every selected secret.
pub const MAX_MOUNT_OBJECTS: usize = 256;
/// `objectMaxCount` when an entry selecting secrets gives none.
pub const DEFAULT_SELECTION_MAX: usize = 100;
/// The largest `objectMaxCount` accepted.
pub const MAX_SELECTION_MAX: usize = 500;
/// Largest `objects` parameter accepted.
pub const MAX_OBJECTS_YAML: usize = 256 * 1024;
/// Most versions `objectVersionHistory` may ask for.
pub const MAX_VERSION_HISTORY: u32 = 50;
/// Largest inline CA bundle.
pub const MAX_CA_BUNDLE: usize = 256 * 1024;
/// The driver's path rules (`validatePath` in the driver's file writer).
pub const MAX_PATH_LEN: usize = 4096;
pub const MAX_PATH_ELEMENT_LEN: usize = 255;

/// The attribute carrying the pod's service-account tokens, one per `tokenRequests` audience.
pub const TOKENS_ATTRIBUTE: &str = "csi.storage.k8s.io/serviceAccount.tokens";
const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
const POD_SERVICE_ACCOUNT: &str = "csi.storage.k8s.io/serviceAccount.name";

/// The SecretProviderClass parameters kvault reads: the fields of [`Attributes`] (a test
/// keeps the two in step), for the message about an unknown one.
pub const KNOWN_PARAMETERS: &[&str] = &[
    "vaultName",
    "vaultNamespace",
    "vaultUrl",
    "audience",
    "vaultCACert",
    "vaultCACertPath",
    "objects",
];

/// Parameters of other providers, with the kvault parameter a person most likely meant.
const FOREIGN_PARAMETERS: &[(&str, &str)] = &[
    ("keyvaultName", "vaultName"),
    ("vaultAddress", "vaultUrl"),
    ("vaultCACertPath", "vaultCACertPath"),
    (
        "roleName",
        "(nothing: kvault authenticates as the pod's service account)",
    ),
    ("tenantId", "(nothing: kvault has no tenants)"),
    ("tenantID", "(nothing: kvault has no tenants)"),
    (
        "clientID",
        "(nothing: kvault authenticates as the pod's service account)",
    ),
    (
        "usePodIdentity",
        "(nothing: kvault authenticates as the pod's service account)",
    ),
    (
        "useVMManagedIdentity",
        "(nothing: kvault authenticates as the pod's service account)",
    ),
    ("cloudName", "(nothing)"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    Secret,
    Key,
    Cert,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Secret => "secret",
            ObjectType::Key => "key",
            ObjectType::Cert => "cert",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    Pem,
    Pfx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectEncoding {
    Utf8,
    Hex,
    Base64,
}

/// One validated entry of `objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    pub name: String,
    pub kind: ObjectType,
    /// `None`: the latest version.
    pub version: Option<String>,
    /// 0 or 1: one file; N > 1: the N newest versions as `<file>/<index>`.
    pub history: u32,
    pub alias: Option<String>,
    pub format: ObjectFormat,
    pub encoding: ObjectEncoding,
    pub mode: u32,
}

impl ObjectSpec {
    /// The file (or, with version history, directory) the object is written to.
    pub fn file_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// A secret taken by a selection (`client::select`): its latest version, under the
    /// selected key.
    pub fn selected(
        selected: crate::client::select::Selected,
        encoding: ObjectEncoding,
        mode: u32,
    ) -> Self {
        Self {
            name: selected.name,
            kind: ObjectType::Secret,
            version: None,
            history: 0,
            alias: Some(selected.key),
            format: ObjectFormat::Pem,
            encoding,
            mode,
        }
    }

    /// Where this object appears in messages: `secret 'db-password'`.
    pub fn describe(&self) -> String {
        format!("{} '{}'", self.kind.as_str(), self.name)
    }
}

/// Where the vault's CA bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// The provider's `--ca-file` (the cluster's `kvault-ca` ConfigMap).
    Default,
    /// `vaultCACert`: PEM in the SecretProviderClass.
    Inline(Vec<u8>),
    /// `vaultCACertPath`: a file the provider can read (only under `--ca-dir`).
    File(PathBuf),
}

/// What the pod attributes say about the pod. For logs only: never for authorization
/// (a pod can set any of these through its volume attributes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub service_account: String,
    pub secret_provider_class: String,
}

impl PodInfo {
    /// The pod's identity from the raw attributes, for the log line of a mount that failed
    /// before (or while) the attributes were validated: whatever of them is readable, each
    /// cut to 253 characters (the longest Kubernetes name). Empty when they are not JSON.
    pub fn from_attributes(attributes: &str) -> Self {
        let Ok(attrs) = serde_json::from_str::<std::collections::HashMap<String, serde_json::Value>>(
            attributes,
        ) else {
            return Self::default();
        };
        let get = |k: &str| {
            attrs
                .get(k)
                .and_then(|v| v.as_str())
                .map(|v| v.trim().chars().take(253).collect::<String>())
                .unwrap_or_default()
        };
        Self {
            namespace: get(POD_NAMESPACE),
            name: get(POD_NAME),
            uid: get(POD_UID),
            service_account: get(POD_SERVICE_ACCOUNT),
            secret_provider_class: get("secretProviderClass"),
        }
    }
}

/// A validated Mount request.
pub struct MountSpec {
    /// `https://host[:port]`, no path.
    pub vault_url: String,
    pub audience: String,
    pub ca: CaSource,
    /// The objects `objects` names one by one.
    pub objects: Vec<ObjectSpec>,
    /// The entries of `objects` that select secrets (by name prefix and/or tags),
    /// expanded at mount time against the vault's listing ([`expand_selections`]).
    pub selections: Vec<SelectionSpec>,
    /// The pod's token for `audience`; never logged.
    pub token: Zeroizing<String>,
    /// The token's `exp` (Unix seconds) if it could be read; bounds cache lifetimes.
    pub token_expiry: Option<i64>,
    pub pod: PodInfo,
}

impl std::fmt::Debug for MountSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountSpec")
            .field("vault_url", &self.vault_url)
            .field("audience", &self.audience)
            .field("objects", &self.objects.len())
            .field("selections", &self.selections.len())
            .field("pod", &self.pod)
            .finish_non_exhaustive()
    }
}

/// Parses the request's `permission` field: a decimal file mode ("420" = 0644).
pub fn parse_permission(s: &str) -> MountResult<u32> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(DEFAULT_PERMISSION);
    }
    match s.parse::<u32>() {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(MountError::invalid(format!(
            "the request's default file permission must be a decimal mode between 0 and 511 (got '{}')",
            s.chars().take(16).collect::<String>()
        ))),
    }
}

/// Parses `filePermission`: an octal mode such as `0440` or `440`.
pub fn parse_file_permission(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && !digits.is_empty() => Ok(m),
        _ => Err(format!(
            "filePermission must be an octal file mode such as \"0440\" (got '{}'); quote it in YAML",
            t.chars().take(16).collect::<String>()
        )),
    }
}

/// Checks a returned file path the way the driver does, so a bad alias fails here with a
/// clear message instead of in the driver.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the file path is empty".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("the file path is longer than {MAX_PATH_LEN} bytes"));
    }
    if path.starts_with('/') {
        return Err(format!("'{path}' is absolute; use a relative file name"));
    }
    if path.starts_with("..") {
        return Err(format!(
            "'{path}' starts with '..' (reserved for the driver's own files)"
        ));
    }
    if path.contains('\\') || path.chars().any(|c| c.is_control()) {
        return Err(format!(
            "'{}' contains a backslash or a control character",
            path.escape_debug()
        ));
    }
    for element in path.split('/') {
        match element {
            "" => {
                return Err(format!(
                    "'{path}' has an empty element ('//' or a trailing '/')"
                ));
            }
            "." | ".." => return Err(format!("'{path}' has a '{element}' element")),
            e if e.len() > MAX_PATH_ELEMENT_LEN => {
                return Err(format!(
                    "'{path}' has an element longer than {MAX_PATH_ELEMENT_LEN} bytes"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A JSON string that is zeroized on drop (attribute values may be tokens).
struct ZString(Zeroizing<String>);

impl<'de> Deserialize<'de> for ZString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| ZString(Zeroizing::new(s)))
    }
}

impl ZString {
    fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// One audience's entry in the tokens attribute.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenEntry {
    token: ZString,
}

/// Reads the JWT's `exp` without verifying anything (the vault verifies); used only to
/// keep cache entries from outliving the token.
pub fn token_expiry(token: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Claims {
        exp: Option<i64>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = Zeroizing::new(crate::wire::from_b64url(payload)?);
    serde_json::from_slice::<Claims>(&bytes).ok()?.exp
}

/// Picks the pod's token for `audience` out of the tokens attribute. Only an exact audience
/// match is used: a token for another audience must never be sent to the vault.
pub fn select_token(tokens_json: Option<&str>, audience: &str) -> MountResult<Zeroizing<String>> {
    let help = format!(
        "add {{audience: \"{audience}\"}} to tokenRequests of the secrets-store.csi.k8s.io CSIDriver (Helm: --set tokenRequests[0].audience={audience}), or set the SecretProviderClass parameter 'audience' to an audience the driver requests"
    );
    pick_token(tokens_json, audience, "the vault's audience", &help)
}

fn pick_token(
    tokens_json: Option<&str>,
    audience: &str,
    which: &str,
    help: &str,
) -> MountResult<Zeroizing<String>> {
    let Some(raw) = tokens_json.filter(|s| !s.trim().is_empty()) else {
        return Err(MountError::new(
            ErrorCode::MissingToken,
            format!("the driver passed no service-account token; {help}"),
        ));
    };
    let map: HashMap<String, TokenEntry> = serde_json::from_str(raw).map_err(|e| {
        MountError::new(
            ErrorCode::MissingToken,
            format!(
                "the driver's service-account tokens are not a JSON object of {{token, expirationTimestamp}} (error at line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    match map.get(audience) {
        Some(entry) if !entry.token.as_str().trim().is_empty() => {
            Ok(Zeroizing::new(entry.token.as_str().trim().to_string()))
        }
        _ => {
            let mut present: Vec<&str> = map.keys().map(String::as_str).collect();
            present.sort_unstable();
            Err(MountError::new(
                ErrorCode::MissingToken,
                format!(
                    "the driver passed no service-account token for {which} '{audience}' (it passed tokens for: {}); {help}",
                    if present.is_empty() {
                        "none".to_string()
                    } else {
                        present.join(", ")
                    }
                ),
            ))
        }
    }
}

/// Picks the pod's token for the workload-identity audience (the one audience the
/// CSIDriver requests when the provider exchanges tokens). Exact match only: a token for
/// another audience is never exchanged.
pub fn select_identity_token(
    tokens_json: Option<&str>,
    audience: &str,
) -> MountResult<Zeroizing<String>> {
    let help = format!(
        "the secrets-store.csi.k8s.io CSIDriver's tokenRequests must have {{audience: \"{audience}\"}} (Helm: provider.tokenAudience); the provider exchanges that token at kvault's token service for the vault's audience"
    );
    pick_token(
        tokens_json,
        audience,
        "the workload-identity audience",
        &help,
    )
}

/// `https://host[:port]` with nothing else, lower-cased host. Messages never echo
/// credentials (`user:password@`): they go to the pod's events and the provider's log.
fn parse_vault_url(s: &str) -> MountResult<String> {
    let shown = without_userinfo(s.trim());
    if shown.len() != s.trim().len() {
        return Err(MountError::invalid(
            "vaultUrl must not carry credentials (user:password@ before the host); the provider authenticates with the pod's token, so give just https://host[:port]",
        ));
    }
    let url = reqwest::Url::parse(s.trim()).map_err(|e| {
        MountError::invalid(format!(
            "vaultUrl '{}' is not a URL: {e}",
            shown.escape_debug()
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(MountError::invalid(
            "vaultUrl must not carry credentials (user:password@ before the host); the provider authenticates with the pod's token, so give just https://host[:port]",
        ));
    }
    if url.scheme() != "https" {
        return Err(MountError::invalid(format!(
            "vaultUrl '{}' must start with https://",
            shown.escape_debug()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !matches!(url.path(), "" | "/") {
        return Err(MountError::invalid(format!(
            "vaultUrl '{}' must be just https://host[:port] (no path, query or credentials)",
            shown.escape_debug()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| MountError::invalid("vaultUrl has no host"))?;
    Ok(match url.port() {
        Some(p) => format!("https://{host}:{p}"),
        None => format!("https://{host}"),
    })
}

/// `s` without anything up to the last `@` of its authority (the part after `scheme://`
/// and before the first `/`, `?` or `#`), so a message can show it.
fn without_userinfo(s: &str) -> String {
    let (scheme, rest) = match s.find("://") {
        Some(i) => s.split_at(i + 3),
        None => ("", s),
    };
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    match rest.get(..end).and_then(|authority| authority.rfind('@')) {
        Some(at) => format!("{scheme}{}", rest.get(at + 1..).unwrap_or_default()),
        None => s.to_string(),
    }
}

fn unknown_parameter(key: &str) -> MountError {
    let hint = FOREIGN_PARAMETERS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, m)| m.to_string())
        .or_else(|| {
            KNOWN_PARAMETERS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(key))
                .map(|k| k.to_string())
        });
    let mut msg = format!(
        "unknown parameter '{}' in the SecretProviderClass or the pod's volumeAttributes",
        key.escape_debug()
    );
    if let Some(h) = hint {
        msg.push_str(&format!(" (did you mean {h}?)"));
    }
    msg.push_str(&format!("; kvault reads {}", KNOWN_PARAMETERS.join(", ")));
    MountError::invalid(msg)
}

/// The Mount request's `attributes` as the driver sends them: the SecretProviderClass
/// parameters kvault reads (each a field, so the list of known parameters is this struct),
/// the driver's and the kubelet's own keys, and the pod's tokens. Every value is a string;
/// values may be tokens, so they are zeroized and never quoted.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Attributes {
    #[serde(rename = "vaultName")]
    vault_name: Option<ZString>,
    #[serde(rename = "vaultNamespace")]
    vault_namespace: Option<ZString>,
    #[serde(rename = "vaultUrl")]
    vault_url: Option<ZString>,
    audience: Option<ZString>,
    #[serde(rename = "vaultCACert")]
    vault_ca_cert: Option<ZString>,
    #[serde(rename = "vaultCACertPath")]
    vault_ca_cert_path: Option<ZString>,
    objects: Option<ZString>,
    /// The driver's own key.
    #[serde(rename = "secretProviderClass")]
    secret_provider_class: Option<ZString>,
    #[serde(rename = "csi.storage.k8s.io/pod.name")]
    pod_name: Option<ZString>,
    #[serde(rename = "csi.storage.k8s.io/pod.namespace")]
    pod_namespace: Option<ZString>,
    #[serde(rename = "csi.storage.k8s.io/pod.uid")]
    pod_uid: Option<ZString>,
    #[serde(rename = "csi.storage.k8s.io/serviceAccount.name")]
    service_account: Option<ZString>,
    #[serde(rename = "csi.storage.k8s.io/serviceAccount.tokens")]
    tokens: Option<ZString>,
    /// Every other key: the driver's and kubelet's (prefixed, `csi.storage.k8s.io/…`) are
    /// ignored; any other is a mistake ([`unknown_parameter`]).
    #[serde(flatten)]
    other: HashMap<String, ZString>,
}

/// A value, trimmed; `None` when absent or blank.
fn text(v: &Option<ZString>) -> Option<String> {
    v.as_ref()
        .map(|v| v.as_str().trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Parses a Mount request's `attributes` and `permission` into a [`MountSpec`], with the
/// pod's token for the vault's own audience (the legacy mode, without a token service).
pub fn parse_mount(attributes: &str, permission: &str) -> MountResult<MountSpec> {
    parse_mount_for(attributes, permission, None)
}

/// [`parse_mount`], the pod's token selected for `token_audience` when it is given (the
/// workload-identity audience whose token is exchanged for the vault's), else for the
/// vault's audience.
pub fn parse_mount_for(
    attributes: &str,
    permission: &str,
    token_audience: Option<&str>,
) -> MountResult<MountSpec> {
    let attrs: Attributes = serde_json::from_str(attributes).map_err(|e| {
        MountError::invalid(format!(
            "the request's attributes are not a JSON object of strings (error at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    // Keys of the driver and kubelet are prefixed (`csi.storage.k8s.io/…`); sorted, so the
    // first unknown key reported is the same on every try.
    let mut unknown: Vec<&String> = attrs.other.keys().filter(|k| !k.contains('/')).collect();
    unknown.sort();
    if let Some(key) = unknown.first() {
        return Err(unknown_parameter(key));
    }
    let pod = PodInfo {
        namespace: text(&attrs.pod_namespace).unwrap_or_default(),
        name: text(&attrs.pod_name).unwrap_or_default(),
        uid: text(&attrs.pod_uid).unwrap_or_default(),
        service_account: text(&attrs.service_account).unwrap_or_default(),
        secret_provider_class: text(&attrs.secret_provider_class).unwrap_or_default(),
    };
    let vault_url = match (text(&attrs.vault_url), text(&attrs.vault_name)) {
        (Some(_), Some(_)) => {
            return Err(MountError::invalid(
                "set either vaultUrl or vaultName (+ vaultNamespace), not both",
            ));
        }
        (Some(url), None) => {
            if text(&attrs.vault_namespace).is_some() {
                return Err(MountError::invalid(
                    "vaultNamespace goes with vaultName; with vaultUrl, put the host in the URL",
                ));
            }
            parse_vault_url(&url)?
        }
        (None, Some(name)) => {
            if !valid_dns_label(&name) {
                return Err(MountError::invalid(format!(
                    "vaultName '{}' is not a Kubernetes service name (lower-case letters, digits, hyphens)",
                    name.escape_debug()
                )));
            }
            // The vault's namespace defaults to the pod's: that only says where to find the
            // vault; what the pod may read is decided by the vault, from the pod's token.
            let ns = text(&attrs.vault_namespace)
                .or_else(|| (!pod.namespace.is_empty()).then(|| pod.namespace.clone()))
                .ok_or_else(|| MountError::invalid("vaultNamespace is missing"))?;
            if !valid_dns_label(&ns) {
                return Err(MountError::invalid(format!(
                    "vaultNamespace '{}' is not a Kubernetes namespace name",
                    ns.escape_debug()
                )));
            }
            format!("https://{name}.{ns}.svc")
        }
        (None, None) => {
            return Err(MountError::invalid(
                "name the vault: set vaultName (and vaultNamespace, default: the pod's namespace) or vaultUrl in the SecretProviderClass parameters",
            ));
        }
    };
    let audience = text(&attrs.audience).unwrap_or_else(|| vault_url.clone());
    let ca = match (text(&attrs.vault_ca_cert), text(&attrs.vault_ca_cert_path)) {
        (Some(_), Some(_)) => {
            return Err(MountError::invalid(
                "set either vaultCACert (PEM) or vaultCACertPath (a file), not both",
            ));
        }
        (Some(pem), None) => {
            if pem.len() > MAX_CA_BUNDLE {
                return Err(MountError::invalid(format!(
                    "vaultCACert is larger than {MAX_CA_BUNDLE} bytes"
                )));
            }
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(MountError::invalid(
                    "vaultCACert must hold PEM certificates (-----BEGIN CERTIFICATE-----); for a file, use vaultCACertPath",
                ));
            }
            CaSource::Inline(pem.into_bytes())
        }
        (None, Some(path)) => {
            if !path.starts_with('/') {
                return Err(MountError::invalid(
                    "vaultCACertPath must be an absolute path",
                ));
            }
            CaSource::File(PathBuf::from(path))
        }
        (None, None) => CaSource::Default,
    };
    let default_mode = parse_permission(permission)?;
    let objects_yaml = attrs
        .objects
        .as_ref()
        .map(|s| s.as_str())
        .unwrap_or_default();
    if objects_yaml.trim().is_empty() {
        return Err(MountError::invalid(
            "the 'objects' parameter is missing: list the objects to mount (objectName, objectType)",
        ));
    }
    let ObjectList {
        objects,
        selections,
    } = parse_objects(objects_yaml, default_mode)?;
    let tokens = attrs.tokens.as_ref().map(|s| s.as_str());
    let token = match token_audience {
        Some(identity) => select_identity_token(tokens, identity)?,
        None => select_token(tokens, &audience)?,
    };
    let token_expiry = token_expiry(&token);
    Ok(MountSpec {
        vault_url,
        audience,
        ca,
        objects,
        selections,
        token,
        token_expiry,
        pod,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens(aud: &str, token: &str) -> String {
        json!({aud: {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}}).to_string()
    }

    fn attrs(extra: serde_json::Value) -> String {
        let mut base = json!({
            "secretProviderClass": "spc",
            "csi.storage.k8s.io/pod.name": "web-0",
            "csi.storage.k8s.io/pod.namespace": "team-a",
            "csi.storage.k8s.io/pod.uid": "uid-1",
            "csi.storage.k8s.io/serviceAccount.name": "web",
            "csi.storage.k8s.io/ephemeral": "true",
            "vaultName": "payments",
            "objects": "- objectName: db\n  objectType: secret\n",
            TOKENS_ATTRIBUTE: tokens("https://payments.team-a.svc", "aaa.bbb.ccc"),
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base.to_string()
    }

    fn err(a: &str) -> MountError {
        parse_mount(a, "420").unwrap_err()
    }

    #[test]
    fn minimal_request_names_the_vault_in_the_pods_namespace() {
        let m = parse_mount(&attrs(json!({})), "420").unwrap();
        assert_eq!(m.vault_url, "https://payments.team-a.svc");
        assert_eq!(m.audience, "https://payments.team-a.svc");
        assert_eq!(m.ca, CaSource::Default);
        assert_eq!(m.token.as_str(), "aaa.bbb.ccc");
        assert_eq!(m.pod.name, "web-0");
        assert_eq!(m.pod.secret_provider_class, "spc");
        assert_eq!(m.objects.len(), 1);
        let o = &m.objects[0];
        assert_eq!(
            (o.kind, o.mode, o.format, o.encoding, o.history),
            (
                ObjectType::Secret,
                0o644,
                ObjectFormat::Pem,
                ObjectEncoding::Utf8,
                0
            )
        );
        assert_eq!(o.file_name(), "db");
        assert!(!format!("{m:?}").contains("aaa.bbb.ccc"));
    }

    #[test]
    fn vault_namespace_and_url() {
        let m = parse_mount(
            &attrs(json!({"vaultNamespace": "vaults", TOKENS_ATTRIBUTE: tokens("https://payments.vaults.svc", "t")})),
            "420",
        )
        .unwrap();
        assert_eq!(m.vault_url, "https://payments.vaults.svc");
        let m = parse_mount(
            &attrs(json!({"vaultName": null, "vaultUrl": "https://V.example:8443/", TOKENS_ATTRIBUTE: tokens("https://v.example:8443", "t")})),
            "420",
        )
        .unwrap();
        assert_eq!(m.vault_url, "https://v.example:8443");
        for (extra, needle) in [
            (json!({"vaultUrl": "https://x"}), "not both"),
            (json!({"vaultName": null}), "name the vault"),
            (json!({"vaultName": "Bad_Name"}), "service name"),
            (
                json!({"vaultName": null, "vaultUrl": "http://x.y"}),
                "https://",
            ),
            (
                json!({"vaultName": null, "vaultUrl": "https://x.y/secrets"}),
                "no path",
            ),
            (
                json!({"vaultName": null, "vaultUrl": "https://u:p@x.y"}),
                "must not carry credentials",
            ),
            (
                json!({"vaultName": null, "vaultUrl": "not a url"}),
                "not a URL",
            ),
            (
                json!({"vaultName": null, "vaultUrl": "https://x.y", "vaultNamespace": "a"}),
                "goes with vaultName",
            ),
            (
                json!({"csi.storage.k8s.io/pod.namespace": null}),
                "vaultNamespace is missing",
            ),
        ] {
            let e = err(&attrs(extra.clone()));
            assert_eq!(e.code, ErrorCode::InvalidParameters, "{extra}");
            assert!(e.message.contains(needle), "{extra}: {}", e.message);
        }
    }

    #[test]
    fn every_known_parameter_is_a_field_and_nothing_else_is() {
        let mut all = serde_json::Map::new();
        for k in KNOWN_PARAMETERS {
            all.insert((*k).to_string(), json!("x"));
        }
        let parsed: Attributes = serde_json::from_value(serde_json::Value::Object(all)).unwrap();
        assert!(
            parsed.other.is_empty(),
            "{:?}",
            parsed.other.keys().collect::<Vec<_>>()
        );
        let stray: Attributes = serde_json::from_value(
            json!({"vaultname": "x", "csi.storage.k8s.io/ephemeral": "true"}),
        )
        .unwrap();
        let mut keys: Vec<&String> = stray.other.keys().collect();
        keys.sort();
        assert_eq!(keys, ["csi.storage.k8s.io/ephemeral", "vaultname"]);
    }

    #[test]
    fn the_pod_is_named_in_the_log_even_when_its_attributes_are_refused() {
        let raw = json!({
            "csi.storage.k8s.io/pod.name": "web-0",
            "csi.storage.k8s.io/pod.namespace": "team-a",
            "csi.storage.k8s.io/pod.uid": "u-1",
            "secretProviderClass": "spc",
            "vaultUrl": "not a url",
            "objects": 7
        })
        .to_string();
        let pod = PodInfo::from_attributes(&raw);
        assert_eq!(
            (pod.namespace.as_str(), pod.name.as_str(), pod.uid.as_str()),
            ("team-a", "web-0", "u-1")
        );
        assert_eq!(pod.secret_provider_class, "spc");
        let long = json!({"csi.storage.k8s.io/pod.name": "x".repeat(10_000)}).to_string();
        assert_eq!(PodInfo::from_attributes(&long).name.len(), 253);
        assert_eq!(PodInfo::from_attributes("not json"), PodInfo::default());
    }

    #[test]
    fn vault_urls_with_credentials_are_refused_without_echoing_them() {
        for url in [
            "https://alice:s3cret@x.y",
            "https://s3cret@x.y",
            "https://alice:s3cret@x.y:8443/",
            "http://alice:s3cret@x.y",
            "https://alice:s3cret@x.y/path?q=1",
            "https://alice:s3cret@bad host",
            "https://alice:s3cret@@x.y",
            "  https://alice:s3cret@x.y  ",
        ] {
            let e = err(&attrs(json!({"vaultName": null, "vaultUrl": url})));
            assert_eq!(e.code, ErrorCode::InvalidParameters, "{url}");
            assert!(
                !e.message.contains("s3cret") && !e.message.contains("alice"),
                "{url}: {}",
                e.message
            );
            assert!(e.message.contains("credentials"), "{url}: {}", e.message);
        }
        // Other refusals still show the URL, which has no credentials then.
        let e = err(&attrs(
            json!({"vaultName": null, "vaultUrl": "https://x.y/a@b"}),
        ));
        assert!(e.message.contains("https://x.y/a@b"), "{}", e.message);
        assert_eq!(without_userinfo("https://a:b@h:1/p@q"), "https://h:1/p@q");
        assert_eq!(without_userinfo("h@x"), "x");
    }

    #[test]
    fn unknown_parameters_fail_with_a_hint() {
        let e = err(&attrs(json!({"vaultname": "x"})));
        assert!(e.message.contains("'vaultname'"), "{}", e.message);
        assert!(
            e.message.contains("did you mean vaultName"),
            "{}",
            e.message
        );
        let e = err(&attrs(json!({"keyvaultName": "x"})));
        assert!(
            e.message.contains("did you mean vaultName"),
            "{}",
            e.message
        );
        // Driver and kubelet keys are prefixed and tolerated, known or not.
        parse_mount(
            &attrs(json!({"csi.storage.k8s.io/something.new": "x"})),
            "420",
        )
        .unwrap();
    }

    #[test]
    fn malformed_attributes_never_echo_values() {
        for bad in [
            "",
            "null",
            "[]",
            "{\"objects\": 5}",
            "{\"vaultName\": [\"super-secret-token\"]}",
            "{not json super-secret-token",
        ] {
            let e = err(bad);
            assert_eq!(e.code, ErrorCode::InvalidParameters, "{bad}");
            assert!(!e.message.contains("super-secret-token"), "{}", e.message);
        }
    }

    #[test]
    fn tokens_are_picked_by_exact_audience_only() {
        let e = err(&attrs(json!({TOKENS_ATTRIBUTE: null})));
        assert_eq!(e.code, ErrorCode::MissingToken);
        assert!(e.message.contains("tokenRequests"), "{}", e.message);
        let e = err(&attrs(
            json!({TOKENS_ATTRIBUTE: tokens("api://AzureADTokenExchange", "other-secret")}),
        ));
        assert_eq!(e.code, ErrorCode::MissingToken);
        assert!(
            e.message.contains("api://AzureADTokenExchange"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("other-secret"));
        let e = err(&attrs(
            json!({TOKENS_ATTRIBUTE: "{\"https://payments.team-a.svc\": \"tok-secret\"}"}),
        ));
        assert_eq!(e.code, ErrorCode::MissingToken);
        assert!(!e.message.contains("tok-secret"));
        // An explicit audience.
        let m = parse_mount(
            &attrs(json!({"audience": "kvault", TOKENS_ATTRIBUTE: tokens("kvault", "t2")})),
            "420",
        )
        .unwrap();
        assert_eq!((m.audience.as_str(), m.token.as_str()), ("kvault", "t2"));
    }

    #[test]
    fn with_a_token_service_the_identity_audience_token_is_selected() {
        let both = json!({
            "api://AzureADTokenExchange": {"token": "wi", "expirationTimestamp": "2030-01-01T00:00:00Z"},
            "https://payments.team-a.svc": {"token": "direct", "expirationTimestamp": "2030-01-01T00:00:00Z"},
        })
        .to_string();
        let m = parse_mount_for(
            &attrs(json!({TOKENS_ATTRIBUTE: both})),
            "420",
            Some("api://AzureADTokenExchange"),
        )
        .unwrap();
        assert_eq!(m.token.as_str(), "wi");
        // The vault's audience is still the resource the token is exchanged for.
        assert_eq!(m.audience, "https://payments.team-a.svc");
        // Only the vault's audience: refused, naming the identity audience, not the token.
        let e = parse_mount_for(
            &attrs(json!({TOKENS_ATTRIBUTE: tokens("https://payments.team-a.svc", "direct")})),
            "420",
            Some("api://AzureADTokenExchange"),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingToken);
        assert!(
            e.message
                .contains("workload-identity audience 'api://AzureADTokenExchange'"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("provider.tokenAudience"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("direct"), "{}", e.message);
    }

    #[test]
    fn token_expiry_reads_exp_without_verifying() {
        let payload = crate::wire::b64url(br#"{"exp":1900000000,"sub":"x"}"#);
        assert_eq!(token_expiry(&format!("h.{payload}.s")), Some(1_900_000_000));
        assert_eq!(token_expiry("garbage"), None);
    }

    #[test]
    fn permissions() {
        assert_eq!(parse_permission("420").unwrap(), 0o644);
        assert_eq!(parse_permission("").unwrap(), 0o644);
        assert_eq!(parse_permission("0").unwrap(), 0);
        assert!(parse_permission("512").is_err());
        assert!(parse_permission("rw").is_err());
        assert_eq!(parse_file_permission("0440").unwrap(), 0o440);
        assert_eq!(parse_file_permission("600").unwrap(), 0o600);
        assert_eq!(parse_file_permission("0o400").unwrap(), 0o400);
        assert!(parse_file_permission("0800").is_err());
        assert!(parse_file_permission("1777").is_err());
        assert!(parse_file_permission("").is_err());
    }

    #[test]
    fn ca_parameters() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let m = parse_mount(&attrs(json!({"vaultCACert": pem})), "420").unwrap();
        assert_eq!(m.ca, CaSource::Inline(pem.trim().as_bytes().to_vec()));
        let m = parse_mount(
            &attrs(json!({"vaultCACertPath": "/etc/kvault/ca/x.pem"})),
            "420",
        )
        .unwrap();
        assert_eq!(m.ca, CaSource::File("/etc/kvault/ca/x.pem".into()));
        assert!(
            err(&attrs(json!({"vaultCACertPath": "rel.pem"})))
                .message
                .contains("absolute")
        );
        assert!(
            err(&attrs(json!({"vaultCACert": "/etc/x.pem"})))
                .message
                .contains("vaultCACertPath")
        );
        assert!(
            err(&attrs(json!({"vaultCACert": pem, "vaultCACertPath": "/x"})))
                .message
                .contains("not both")
        );
    }

    fn objects(yaml: &str) -> MountResult<Vec<ObjectSpec>> {
        parse_objects(yaml, 0o644).map(|l| l.objects)
    }

    #[test]
    fn objects_as_a_plain_list() {
        let o = objects(
            r#"
# comment
- objectName: db-password
  objectType: secret
  objectAlias: db/password
  objectEncoding: base64
  filePermission: 0440
- objectName: signing
  objectType: KEY
  objectVersion: 0123456789abcdef0123456789abcdef
- objectName: tls
  objectType: cert
- objectName: tls
  objectType: secret
  objectFormat: pfx
  objectAlias: tls.pfx
  filePermission: "0400"
- objectName: rotated
  objectType: secret
  objectVersionHistory: 3
  objectVersion: latest
"#,
        )
        .unwrap();
        assert_eq!(o.len(), 5);
        assert_eq!(o[0].file_name(), "db/password");
        assert_eq!(o[0].encoding, ObjectEncoding::Base64);
        assert_eq!(o[0].mode, 0o440, "an unquoted 0440 is still octal 0440");
        assert_eq!(o[1].kind, ObjectType::Key);
        assert_eq!(
            o[1].version.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(o[2].kind, ObjectType::Cert);
        assert_eq!((o[3].format, o[3].mode), (ObjectFormat::Pfx, 0o400));
        assert_eq!((o[4].history, o[4].version.clone()), (3, None));
    }

    #[test]
    fn objects_in_the_azure_shape() {
        let o = objects(
            "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectVersion: \"\"\n  - |\n    objectName: b\n    objectType: key\n    objectAlias: b.pem\n",
        )
        .unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].name.as_str(), o[0].version.clone()), ("a", None));
        assert_eq!(o[1].file_name(), "b.pem");
        // Flow style JSON is YAML too.
        let o = objects(r#"[{"objectName": "a", "objectType": "secret"}]"#).unwrap();
        assert_eq!(o[0].name, "a");
    }

    #[test]
    fn malformed_objects_say_what_is_wrong() {
        for (yaml, needle) in [
            ("", "empty"),
            ("[]", "empty"),
            ("- objectType: secret", "objectName is missing"),
            ("- objectName: a", "objectType is missing"),
            (
                "- objectName: a\n  objectType: blob",
                "not one of secret, key, cert",
            ),
            (
                "- objectName: a b\n  objectType: secret",
                "not a vault object name",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectNme: x",
                "objectNme",
            ),
            (
                "- objectName: a\n  objectType: secret\n  secretPath: x",
                "secretPath",
            ),
            (
                "- objectName: a\n  objectType: key\n  objectFormat: pfx",
                "needs objectType secret",
            ),
            (
                "- objectName: a\n  objectType: cert\n  objectEncoding: hex",
                "secrets only",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectEncoding: rot13",
                "utf-8, hex, base64",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectFormat: jks",
                "pem, pfx",
            ),
            (
                "- objectName: a\n  objectType: secret\n  filePermission: rwx",
                "octal",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectVersionHistory: -1",
                "whole number",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectVersionHistory: 51",
                "whole number",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectVersion: ../x",
                "version id",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectAlias: /etc/passwd",
                "absolute",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectAlias: ../x",
                "'..'",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectAlias: ..data",
                "'..'",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectAlias: a//b",
                "empty element",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectAlias: a/./b",
                "'.' element",
            ),
            (
                "- objectName: a\n  objectType: secret\n- objectName: a\n  objectType: key",
                "two objects write",
            ),
            (
                "- objectName: a\n  objectType: secret\n- objectName: b\n  objectType: secret\n  objectAlias: a/b",
                "both a file and a directory",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectVersionHistory: 2\n- objectName: b\n  objectType: secret\n  objectAlias: a",
                "both a file and a directory",
            ),
            ("array: not-a-list", "array:"),
            ("array:\n  - \"objectName: [\"", "objects[0]"),
            ("objectName: a\nobjectType: secret", "array:"),
            ("- [unclosed", "not a valid list"),
        ] {
            let e = objects(yaml).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameters, "{yaml}");
            assert!(e.message.contains(needle), "{yaml:?}: {}", e.message);
        }
        let long = format!(
            "- objectName: a\n  objectType: secret\n  objectAlias: {}",
            "x".repeat(256)
        );
        assert!(objects(&long).unwrap_err().message.contains("255"));
    }

    #[test]
    fn size_limits_on_objects() {
        let many: String = (0..=MAX_OBJECTS)
            .map(|i| format!("- objectName: s{i}\n  objectType: secret\n"))
            .collect();
        assert!(objects(&many).unwrap_err().message.contains("at most 256"));
        let huge = format!(
            "# {}\n- objectName: a\n  objectType: secret\n",
            "x".repeat(MAX_OBJECTS_YAML)
        );
        assert!(objects(&huge).unwrap_err().message.contains("bytes"));
    }

    #[test]
    fn path_rules_match_the_driver() {
        for ok in ["a", "a/b", "a.b", "dir/sub/file.pem", ".hidden", "a..b"] {
            validate_path(ok).unwrap();
        }
        for bad in [
            "", "/a", "..", "../a", "..a", "a/../b", "a/", "a//b", "./a", "a/.", "a\\b", "a\nb",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        assert!(validate_path(&"a/".repeat(2049)).is_err());
    }
}
