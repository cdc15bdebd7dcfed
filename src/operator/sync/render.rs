//! The Secret a `SecretSync` writes, from the fetched objects: each object rendered as the
//! CSI provider renders it, templates (minijinja) over all of them, the target type's rules
//! (`kubernetes.io/tls`, `kubernetes.io/dockerconfigjson`), the size bounds, the data hash
//! that decides whether anything changed, and the Secret object for server-side apply with
//! its ownership. Pure.
//!
//! Values stay in zeroizing buffers here; no error or `Debug` output carries one. (The
//! template engine copies the values it is given into its own strings, which are not
//! zeroized: that is the price of templates, and only paid when a sync has some.)

use super::plan::{
    DATA_HASH_ANNOTATION, MANAGED_BY_LABEL, MergePolicy, RESERVED_PREFIX, SYNC_LABEL, SecretType,
};
use crate::api::sync::DeletionPolicy;
use crate::provider::params::{ObjectFormat, ObjectSpec, ObjectType};
use crate::provider::render::{Material, render};
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// The field manager of the Secrets the sync applies (not the operator's own
/// `kvault-operator`): the managed fields then say which Secrets a SecretSync wrote.
pub const SYNC_FIELD_MANAGER: &str = "kvault-secretsync";
/// What the sync's managed-by label says.
pub const MANAGED_BY: &str = "kvault-operator";
/// At most this much output per template.
pub const MAX_TEMPLATE_OUTPUT: usize = 1024 * 1024;
/// At most this much data (keys and values) per Secret: Kubernetes refuses more than 1 MiB,
/// and the metadata (labels, annotations, managed fields) needs room in the object too.
pub const MAX_SECRET_DATA: usize = 1024 * 1024 - 32 * 1024;
/// Template instructions a render may execute: generous for real templates, a stop for a
/// loop that would spin the operator.
pub const TEMPLATE_FUEL: u64 = 5_000_000;
/// Longest template error message kept (minijinja details are short; this is a backstop).
const MAX_TEMPLATE_MESSAGE: usize = 400;

pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const DOCKER_CONFIG_JSON: &str = ".dockerconfigjson";

/// A rendered value: wiped when dropped.
pub type SecretBytes = Zeroizing<Vec<u8>>;

/// The Secret's data and its hash.
pub struct RenderedData {
    pub data: BTreeMap<String, Zeroizing<Vec<u8>>>,
    pub hash: String,
}

impl std::fmt::Debug for RenderedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedData")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("hash", &self.hash)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// An object could not be rendered (the provider's message, which names the object).
    #[error("Secret key '{key}': {message}")]
    Object { key: String, message: String },
    #[error("template '{key}': {message}")]
    Template { key: String, message: String },
    #[error("kubernetes.io/tls: {0}")]
    Tls(String),
    #[error("kubernetes.io/dockerconfigjson: {0}")]
    DockerConfig(String),
    #[error("{what} is {size} bytes; at most {max} fit")]
    TooLarge {
        what: String,
        size: usize,
        max: usize,
    },
    #[error("two fetched objects have the Secret key '{0}'")]
    DuplicateKey(String),
}

impl RenderError {
    /// The `Ready` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::Template { .. } => super::reason::TEMPLATE_ERROR,
            RenderError::TooLarge { what, .. } if what.starts_with("template") => {
                super::reason::TEMPLATE_ERROR
            }
            RenderError::TooLarge { .. } => super::reason::TOO_MANY_OBJECTS,
            _ => super::reason::INVALID_SPEC,
        }
    }
}

/// Renders the Secret's data: each fetched `(key, spec, material)` as the provider renders
/// it, then the templates (docs/sync.md, "Templates"), the merge policy, the
/// target type's rules and the size bounds.
pub fn render_data(
    secret_type: SecretType,
    merge: MergePolicy,
    templates: &BTreeMap<String, String>,
    fetched: Vec<(String, ObjectSpec, Material)>,
) -> Result<RenderedData, RenderError> {
    let mut objects: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
    // Keys of certificate secrets rendered as PEM (private key + chain): what a TLS
    // Secret can be split from.
    let mut tls_sources: Vec<String> = Vec::new();
    for (key, spec, material) in fetched {
        let value = render(&spec, &material).map_err(|message| RenderError::Object {
            key: key.clone(),
            message,
        })?;
        if let Material::Secret {
            certificate_backed: true,
            ..
        } = material
            && spec.kind == ObjectType::Secret
            && spec.format == ObjectFormat::Pem
        {
            tls_sources.push(key.clone());
        }
        if objects.insert(key.clone(), value).is_some() {
            return Err(RenderError::DuplicateKey(key));
        }
    }

    let mut data = if templates.is_empty() {
        objects.clone()
    } else {
        let rendered = render_templates(templates, &objects)?;
        match merge {
            MergePolicy::Replace => rendered,
            MergePolicy::Merge => {
                let mut d = objects.clone();
                d.extend(rendered);
                d
            }
        }
    };

    match secret_type {
        SecretType::Opaque => {}
        SecretType::Tls => tls(&mut data, &objects, &tls_sources)?,
        SecretType::DockerConfigJson => docker_config(&data)?,
    }

    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_SECRET_DATA {
        return Err(RenderError::TooLarge {
            what: "the Secret's data".into(),
            size,
            max: MAX_SECRET_DATA,
        });
    }
    let hash = data_hash(secret_type, &data);
    Ok(RenderedData { data, hash })
}

/// SHA-256 (lowercase hex) of the Secret's type and data: every key and value
/// length-prefixed, in key order, so that no two different Secrets frame to the same bytes.
pub fn data_hash(secret_type: SecretType, data: &BTreeMap<String, Zeroizing<Vec<u8>>>) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    field(b"kvault-secretsync-data-v1");
    field(secret_type.as_str().as_bytes());
    field(&(data.len() as u64).to_be_bytes());
    for (k, v) in data {
        field(k.as_bytes());
        field(v);
    }
    hex::encode(ctx.finish().as_ref())
}

// --- kubernetes.io/tls --------------------------------------------------------------------

fn tls(
    data: &mut BTreeMap<String, Zeroizing<Vec<u8>>>,
    objects: &BTreeMap<String, Zeroizing<Vec<u8>>>,
    sources: &[String],
) -> Result<(), RenderError> {
    let has = |d: &BTreeMap<String, Zeroizing<Vec<u8>>>, k: &str| d.contains_key(k);
    if !(has(data, TLS_CRT) && has(data, TLS_KEY)) {
        let source = match sources {
            [one] => one,
            [] => {
                return Err(RenderError::Tls(
                    "the Secret needs tls.crt and tls.key: name one certificate's secret in objects (objectType: secret, objectFormat: pem, the default), or render both keys with templates".into(),
                ));
            }
            many => {
                return Err(RenderError::Tls(format!(
                    "the Secret needs tls.crt and tls.key from one certificate, and {} certificate secrets are given ({}); keep one, or render tls.crt and tls.key with templates",
                    many.len(),
                    many.join(", ")
                )));
            }
        };
        let pem = objects
            .get(source)
            .ok_or_else(|| RenderError::Tls(format!("'{source}' was not rendered")))?;
        let (key, chain) = split_key_and_chain(pem)
            .map_err(|m| RenderError::Tls(format!("the certificate secret for '{source}': {m}")))?;
        // The combined PEM would put the private key under a second key.
        data.remove(source);
        data.entry(TLS_KEY.to_string()).or_insert(key);
        data.entry(TLS_CRT.to_string()).or_insert(chain);
    }
    for k in [TLS_CRT, TLS_KEY] {
        if data.get(k).is_none_or(|v| v.trim_ascii().is_empty()) {
            return Err(RenderError::Tls(format!(
                "{k} is empty; the Secret needs a certificate chain in tls.crt and its private key in tls.key"
            )));
        }
    }
    Ok(())
}

/// One PEM block: its label and the text from `-----BEGIN` to the end of `-----END …-----`.
struct PemBlock<'a> {
    label: &'a str,
    text: &'a [u8],
}

/// The PEM blocks of `pem`, in order (text between blocks is ignored, as PEM readers do).
fn pem_blocks(pem: &[u8]) -> Result<Vec<PemBlock<'_>>, String> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const DASHES: &[u8] = b"-----";
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(start) = find(pem, BEGIN, at) {
        let label_start = start + BEGIN.len();
        let label_end = find(pem, DASHES, label_start).ok_or("a PEM header is not closed")?;
        let label = pem
            .get(label_start..label_end)
            .and_then(|l| std::str::from_utf8(l).ok())
            .filter(|l| !l.contains('\n'))
            .ok_or("a PEM header is malformed")?;
        let end_marker = format!("-----END {label}-----");
        let end = find(pem, end_marker.as_bytes(), label_end)
            .ok_or_else(|| format!("the PEM block {label} has no end"))?
            + end_marker.len();
        let text = pem.get(start..end).ok_or("a PEM block is malformed")?;
        blocks.push(PemBlock { label, text });
        at = end;
    }
    Ok(blocks)
}

/// The private key block and the certificate blocks (in order: the leaf first, as the
/// vault stores and the provider renders them) of a certificate's secret.
pub fn split_key_and_chain(pem: &[u8]) -> Result<(SecretBytes, SecretBytes), String> {
    let blocks = pem_blocks(pem)?;
    let mut key = None;
    let mut chain = Zeroizing::new(Vec::new());
    for b in &blocks {
        match b.label {
            "CERTIFICATE" => {
                chain.extend_from_slice(b.text);
                chain.push(b'\n');
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(
                    "the private key is encrypted; a TLS Secret needs it in the clear".into(),
                );
            }
            l if l == "PRIVATE KEY" || l.ends_with(" PRIVATE KEY") => {
                if key.is_some() {
                    return Err("it holds more than one private key".into());
                }
                let mut k = Zeroizing::new(Vec::with_capacity(b.text.len() + 1));
                k.extend_from_slice(b.text);
                k.push(b'\n');
                key = Some(k);
            }
            _ => {}
        }
    }
    let key = key.ok_or("it holds no private key (PEM PRIVATE KEY block)")?;
    if chain.is_empty() {
        return Err("it holds no certificate (PEM CERTIFICATE block)".into());
    }
    Ok((key, chain))
}

// --- kubernetes.io/dockerconfigjson -------------------------------------------------------

fn docker_config(data: &BTreeMap<String, Zeroizing<Vec<u8>>>) -> Result<(), RenderError> {
    let raw = data.get(DOCKER_CONFIG_JSON).ok_or_else(|| {
        RenderError::DockerConfig(format!(
            "the Secret needs a {DOCKER_CONFIG_JSON} key (an object's objectAlias or a template)"
        ))
    })?;
    // serde_json's messages give a position, never the text.
    let v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| {
        RenderError::DockerConfig(format!(
            "{DOCKER_CONFIG_JSON} is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let ok = v
        .as_object()
        .and_then(|o| o.get("auths"))
        .is_some_and(serde_json::Value::is_object);
    // The parsed value holds credentials; drop it zeroized is not possible with serde_json,
    // so keep its life short.
    drop(v);
    if !ok {
        return Err(RenderError::DockerConfig(format!(
            "{DOCKER_CONFIG_JSON} must be a JSON object with an \"auths\" object ({{\"auths\": {{\"registry\": {{\"auth\": \"…\"}}}}}})"
        )));
    }
    Ok(())
}

// --- templates ----------------------------------------------------------------------------

fn render_templates(
    templates: &BTreeMap<String, String>,
    objects: &BTreeMap<String, Zeroizing<Vec<u8>>>,
) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, RenderError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    // The context: `objects` (the UTF-8 values as text) and `objects_b64` (every value,
    // base64).
    use minijinja::Value;
    let text = Value::from_pairs(
        objects
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v).ok()?))),
    );
    let encoded = Value::from_pairs(
        objects
            .iter()
            .map(|(k, v)| (k.as_str(), b64.encode(v.as_slice()))),
    );
    let ctx = Value::from_pairs([("objects", text), ("objects_b64", encoded)]);
    let env = environment();
    // What an error message may not contain: any value, as text or base64 (short values are
    // skipped: they would match template text by chance and carry little).
    let mut forbidden: Vec<Zeroizing<String>> = Vec::new();
    for v in objects.values() {
        if let Ok(s) = std::str::from_utf8(v)
            && s.trim().len() >= 3
        {
            forbidden.push(Zeroizing::new(s.trim().to_string()));
        }
        if v.len() >= 3 {
            forbidden.push(Zeroizing::new(b64.encode(v.as_slice())));
        }
    }
    let mut out = BTreeMap::new();
    for (key, source) in templates {
        let template_error = |e: &minijinja::Error| RenderError::Template {
            key: key.clone(),
            message: template_message(e, &forbidden),
        };
        let tmpl = env
            .template_from_named_str(key, source)
            .map_err(|e| template_error(&e))?;
        let mut w = BoundedWriter {
            buf: Zeroizing::new(Vec::new()),
            max: MAX_TEMPLATE_OUTPUT,
            exceeded: false,
        };
        let result = tmpl.render_captured_to(ctx.clone(), &mut w).map(drop);
        if w.exceeded {
            return Err(RenderError::TooLarge {
                what: format!("template '{key}''s output"),
                size: w.buf.len().saturating_add(1),
                max: MAX_TEMPLATE_OUTPUT,
            });
        }
        result.map_err(|e| template_error(&e))?;
        out.insert(key.clone(), w.buf);
    }
    Ok(out)
}

fn environment() -> minijinja::Environment<'static> {
    use minijinja::{AutoEscape, Environment, UndefinedBehavior};
    let mut env = Environment::new();
    // A typo in a key is an error, not an empty string in a password.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Secret keys are names like `config.json` or `index.html`: never escape by extension.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env
}

fn b64encode(value: &minijinja::Value) -> Result<String, minijinja::Error> {
    let bytes = value.as_bytes().ok_or_else(|| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("b64encode takes a string, not {}", value.kind()),
        )
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn b64decode(value: &str) -> Result<String, minijinja::Error> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let compact: Zeroizing<String> =
        Zeroizing::new(value.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let trimmed = compact.trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "b64decode: the input is not base64",
            )
        })?;
    String::from_utf8(bytes).map_err(|e| {
        // The decoded bytes are a secret's: wipe them.
        drop(Zeroizing::new(e.into_bytes()));
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "b64decode: the decoded bytes are not UTF-8 text (use objects_b64 for binary values)",
        )
    })
}

/// A template error for the status: the kind, the detail unless it shows a value, the line.
/// Never minijinja's debug rendering, which prints the context (the values).
fn template_message(e: &minijinja::Error, forbidden: &[Zeroizing<String>]) -> String {
    let mut msg = e.kind().to_string();
    if let Some(detail) = e.detail() {
        // `unable to calculate <lhs> <op> <rhs>` prints operands, which may be values.
        let shows_value = detail.starts_with("unable to calculate")
            || forbidden.iter().any(|v| detail.contains(v.as_str()));
        if shows_value {
            msg.push_str(": (detail withheld: it would show a value)");
        } else {
            msg.push_str(": ");
            msg.push_str(detail);
        }
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    if msg.len() > MAX_TEMPLATE_MESSAGE {
        let mut cut = MAX_TEMPLATE_MESSAGE;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    msg
}

/// Collects template output into a zeroizing buffer, failing past `max` so that a runaway
/// template stops instead of filling memory.
struct BoundedWriter {
    buf: Zeroizing<Vec<u8>>,
    max: usize,
    exceeded: bool,
}

impl std::io::Write for BoundedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(b.len()) > self.max {
            self.exceeded = true;
            return Err(std::io::Error::other("template output too large"));
        }
        // Grow by hand: a reallocation by `extend` would leave an unzeroized copy behind.
        if self.buf.capacity() - self.buf.len() < b.len() {
            let want = (self.buf.len() + b.len())
                .max(self.buf.capacity() * 2)
                .min(self.max);
            let mut bigger = Zeroizing::new(Vec::with_capacity(want));
            bigger.extend_from_slice(&self.buf);
            self.buf = bigger;
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// --- the Secret ---------------------------------------------------------------------------

/// The Secret for server-side apply (field manager [`SYNC_FIELD_MANAGER`]); k8s-openapi
/// writes its `apiVersion: v1` and `kind: Secret` when it is serialized.
///
/// Labels: the user's, plus `app.kubernetes.io/managed-by: kvault-operator` and
/// `kvault.dev/secret-sync: <name>`; annotations: the user's plus `kvault.dev/data-hash`.
/// User keys under `kvault.dev/` and the managed-by label are refused by the plan and, should
/// they reach here, dropped: the operator's own keys always win. The SecretSync is the
/// controller owner unless the deletion policy is `Orphan` (then the label and the field
/// manager say whose it is; see [`ownership`]).
#[allow(clippy::too_many_arguments)]
pub fn desired_secret(
    sync_name: &str,
    sync_uid: &str,
    namespace: &str,
    target_name: &str,
    secret_type: SecretType,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    deletion_policy: DeletionPolicy,
    data: &RenderedData,
) -> Secret {
    let user = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX) && k.as_str() != MANAGED_BY_LABEL)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = user(labels);
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels.insert(SYNC_LABEL.into(), sync_name.into());
    let mut annotations = user(annotations);
    annotations.insert(DATA_HASH_ANNOTATION.into(), data.hash.clone());
    let owner_references = (deletion_policy != DeletionPolicy::Orphan).then(|| {
        vec![OwnerReference {
            api_version: "kvault.dev/v1alpha1".into(),
            kind: "SecretSync".into(),
            name: sync_name.into(),
            uid: sync_uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(target_name.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..Default::default()
        },
        type_: Some(secret_type.as_str().into()),
        // k8s-openapi's ByteString is a plain Vec: the copy lives as long as the Secret
        // object the caller applies.
        data: Some(
            data.data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// Whose an existing Secret of the target's name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// There is none: the sync creates it.
    Absent,
    /// This SecretSync wrote it: the sync updates it.
    Ours,
    /// Someone else's (or an older SecretSync's): left alone unless `adopt: true`.
    Foreign,
}

/// Ours when the Secret names this SecretSync (by uid) as an owner; or, with no controller
/// owner of its own (the `Orphan` policy writes none), when it carries this SecretSync's
/// label *and* its fields are managed by [`SYNC_FIELD_MANAGER`] — the label alone is
/// anyone's to write.
pub fn ownership(existing: Option<&Secret>, sync_name: &str, sync_uid: &str) -> Ownership {
    let Some(secret) = existing else {
        return Ownership::Absent;
    };
    let m = &secret.metadata;
    let owners = m.owner_references.as_deref().unwrap_or_default();
    if owners.iter().any(|o| o.uid == sync_uid) {
        return Ownership::Ours;
    }
    if owners.iter().any(|o| o.controller == Some(true)) {
        return Ownership::Foreign;
    }
    let labelled = m
        .labels
        .as_ref()
        .and_then(|l| l.get(SYNC_LABEL))
        .is_some_and(|v| v == sync_name);
    let managed = m
        .managed_fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|f| f.manager.as_deref() == Some(SYNC_FIELD_MANAGER));
    if labelled && managed {
        Ownership::Ours
    } else {
        Ownership::Foreign
    }
}

#[cfg(test)]
mod tests;
