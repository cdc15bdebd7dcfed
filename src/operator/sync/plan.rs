//! A `SecretSync`'s spec validated and turned into what the sync does: the provider's
//! object specs with their Secret keys, the bulk selectors, the target's type, merge policy
//! and name, and the refresh interval. Pure; [`expand`] then adds what the selectors take
//! from a vault's listing, all or nothing.
//!
//! Messages name the field (`spec.objects[2].objectAlias`) so that the status condition
//! tells the user what to change; they never carry a secret's value (none is known here).

use crate::api::sync::{
    DEFAULT_MAX_SELECTED, DeletionPolicy, MAX_SELECTED, MAX_SYNC_OBJECTS, MAX_SYNC_SELECTORS,
    MAX_TEMPLATES, SecretSyncSpec, SyncObject, SyncSelector,
};
use crate::client::select::{SelectError, Selector};
use crate::provider::params::{
    DEFAULT_PERMISSION, ObjectEncoding, ObjectFormat, ObjectSpec, ObjectType,
};
use crate::wire::secrets::SecretItem;
use std::collections::BTreeMap;
use std::time::Duration;

/// The most objects one Secret takes, explicit and selected together.
pub const MAX_SYNC_TOTAL: usize = 500;
/// The longest Secret key Kubernetes accepts.
pub const MAX_SECRET_KEY_LEN: usize = 253;
/// The longest template source.
pub const MAX_TEMPLATE_SOURCE: usize = 64 * 1024;
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Below this a periodic resync would load the vault for nothing: events already deliver
/// changes within a second.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Label on every synced Secret: the SecretSync that writes it.
pub const SYNC_LABEL: &str = "kvault.dev/secret-sync";
/// Annotation on every synced Secret: [`super::render::data_hash`] of its data.
pub const DATA_HASH_ANNOTATION: &str = "kvault.dev/data-hash";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// User labels and annotations may not use these (the operator's own keys).
pub const RESERVED_PREFIX: &str = "kvault.dev/";

/// The Secret's `type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecretType {
    #[default]
    Opaque,
    Tls,
    DockerConfigJson,
}

impl SecretType {
    pub const ALL: [SecretType; 3] = [
        SecretType::Opaque,
        SecretType::Tls,
        SecretType::DockerConfigJson,
    ];

    /// The Kubernetes type string.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretType::Opaque => "Opaque",
            SecretType::Tls => "kubernetes.io/tls",
            SecretType::DockerConfigJson => "kubernetes.io/dockerconfigjson",
        }
    }

    pub fn parse(s: &str) -> Option<SecretType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s.trim())
    }
}

/// With templates: the Secret holds the templates' keys only, or the objects' keys too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MergePolicy {
    #[default]
    Replace,
    Merge,
}

impl MergePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MergePolicy::Replace => "Replace",
            MergePolicy::Merge => "Merge",
        }
    }

    pub fn parse(s: &str) -> Option<MergePolicy> {
        [MergePolicy::Replace, MergePolicy::Merge]
            .into_iter()
            .find(|m| m.as_str() == s.trim())
    }
}

/// Where a planned object comes from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `spec.objects[i]`.
    Object(usize),
    /// `spec.selectors[i]`.
    Selector(usize),
}

/// One object the sync fetches and the Secret key it is written under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedObject {
    pub key: String,
    pub spec: ObjectSpec,
    pub origin: Origin,
}

impl PlannedObject {
    /// `spec.objects[2] (secret 'db')`, `spec.selectors[0] (secret 'web-db')`.
    pub fn describe(&self) -> String {
        let field = match self.origin {
            Origin::Object(i) => format!("spec.objects[{i}]"),
            Origin::Selector(i) => format!("spec.selectors[{i}]"),
        };
        format!("{field} ({})", self.spec.describe())
    }
}

/// A validated spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// The explicit objects, in spec order.
    pub objects: Vec<PlannedObject>,
    /// The selectors, in spec order (`spec.selectors[i]` is `selectors[i]`).
    pub selectors: Vec<Selector>,
    pub target_name: String,
    pub secret_type: SecretType,
    pub merge: MergePolicy,
    pub templates: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub deletion_policy: DeletionPolicy,
    pub adopt: bool,
    pub refresh_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(
        "Secret key '{key}' is given by both {first} and {second}; give one an objectAlias (or a keyPrefix to the selector)"
    )]
    DuplicateKey {
        key: String,
        first: String,
        second: String,
    },
    #[error("{field}: {source}")]
    Select {
        field: String,
        #[source]
        source: SelectError,
    },
    #[error(
        "the sync takes {count} objects; at most {max} go into one Secret (narrow the selectors or split the SecretSync)"
    )]
    TooMany { count: usize, max: usize },
    #[error("the selectors need the vault's listing of secrets")]
    ListingMissing,
}

impl PlanError {
    /// The `Ready` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::TooMany { .. }
            | PlanError::Select {
                source: SelectError::TooMany { .. },
                ..
            } => super::reason::TOO_MANY_OBJECTS,
            _ => super::reason::INVALID_SPEC,
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// What Kubernetes takes as a key of a Secret's `data` (its `IsConfigMapKey`).
pub fn valid_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_SECRET_KEY_LEN
        && key != "."
        && !key.starts_with("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn check_key(field: &str, key: &str) -> Result<(), PlanError> {
    if valid_secret_key(key) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "'{key}' is not a Secret key (letters, digits, '-', '.', '_'; at most {MAX_SECRET_KEY_LEN} characters; not '.' nor starting with '..')"
            ),
        ))
    }
}

fn valid_object_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Validates `spec`; `sync_name` (the SecretSync's name) is the default target name.
pub fn plan(sync_name: &str, spec: &SecretSyncSpec) -> Result<SyncPlan, PlanError> {
    if spec.objects.is_empty() && spec.selectors.is_empty() {
        return Err(invalid(
            "spec",
            "a SecretSync needs at least one entry in objects or selectors",
        ));
    }
    if spec.objects.len() > MAX_SYNC_OBJECTS {
        return Err(invalid(
            "spec.objects",
            format!("at most {MAX_SYNC_OBJECTS} objects"),
        ));
    }
    if spec.selectors.len() > MAX_SYNC_SELECTORS {
        return Err(invalid(
            "spec.selectors",
            format!("at most {MAX_SYNC_SELECTORS} selectors"),
        ));
    }
    if spec.service_account_name.trim().is_empty() {
        return Err(invalid("spec.serviceAccountName", "must not be empty"));
    }

    let objects = spec
        .objects
        .iter()
        .enumerate()
        .map(|(i, o)| plan_object(i, o))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(objects.iter())?;

    let selectors = spec
        .selectors
        .iter()
        .enumerate()
        .map(|(i, s)| plan_selector(i, s))
        .collect::<Result<Vec<_>, _>>()?;

    let t = &spec.target;
    let target_name = t.name.clone().unwrap_or_else(|| sync_name.to_string());
    if target_name.is_empty() {
        return Err(invalid("spec.target.name", "must not be empty"));
    }
    let secret_type = match t.secret_type.as_deref() {
        None => SecretType::Opaque,
        Some(s) => SecretType::parse(s).ok_or_else(|| {
            invalid(
                "spec.target.type",
                format!(
                    "'{s}' is not one of Opaque, kubernetes.io/tls, kubernetes.io/dockerconfigjson"
                ),
            )
        })?,
    };
    if secret_type == SecretType::Tls && !selectors.is_empty() {
        return Err(invalid(
            "spec.selectors",
            "a kubernetes.io/tls target takes one certificate's secret in objects (or templates for tls.crt and tls.key), not selectors",
        ));
    }
    let merge = match t.merge_policy.as_deref() {
        None => MergePolicy::Replace,
        Some(s) => MergePolicy::parse(s).ok_or_else(|| {
            invalid(
                "spec.target.mergePolicy",
                format!("'{s}' is not Replace or Merge"),
            )
        })?,
    };
    if t.templates.len() > MAX_TEMPLATES {
        return Err(invalid(
            "spec.target.templates",
            format!("at most {MAX_TEMPLATES} templates"),
        ));
    }
    for (key, source) in &t.templates {
        let field = format!("spec.target.templates[\"{key}\"]");
        check_key(&field, key)?;
        if source.len() > MAX_TEMPLATE_SOURCE {
            return Err(invalid(
                field,
                format!(
                    "the template is {} bytes; at most {MAX_TEMPLATE_SOURCE}",
                    source.len()
                ),
            ));
        }
    }
    check_reserved("spec.target.labels", &t.labels)?;
    check_reserved("spec.target.annotations", &t.annotations)?;

    let refresh_interval = match spec.refresh_interval.as_deref() {
        None => DEFAULT_REFRESH_INTERVAL,
        Some(s) => {
            let d = crate::clock::parse_go_duration(s)
                .map_err(|m| invalid("spec.refreshInterval", m))?;
            if d < MIN_REFRESH_INTERVAL {
                return Err(invalid(
                    "spec.refreshInterval",
                    format!(
                        "'{s}' is below the minimum of {}s (events deliver changes sooner)",
                        MIN_REFRESH_INTERVAL.as_secs()
                    ),
                ));
            }
            d
        }
    };

    Ok(SyncPlan {
        objects,
        selectors,
        target_name,
        secret_type,
        merge,
        templates: t.templates.clone(),
        labels: t.labels.clone(),
        annotations: t.annotations.clone(),
        deletion_policy: t.deletion_policy,
        adopt: t.adopt,
        refresh_interval,
    })
}

/// User labels and annotations may not set the operator's own keys: a label that names
/// another SecretSync, or a hash annotation, would make the sync's bookkeeping lie.
fn check_reserved(field: &str, map: &BTreeMap<String, String>) -> Result<(), PlanError> {
    for key in map.keys() {
        if key.starts_with(RESERVED_PREFIX) || key == MANAGED_BY_LABEL {
            return Err(invalid(
                format!("{field}[\"{key}\"]"),
                format!(
                    "keys under {RESERVED_PREFIX} and {MANAGED_BY_LABEL} are set by the operator"
                ),
            ));
        }
    }
    Ok(())
}

fn plan_object(i: usize, o: &SyncObject) -> Result<PlannedObject, PlanError> {
    let f = |name: &str| format!("spec.objects[{i}].{name}");
    let name = o.object_name.trim();
    if !valid_object_name(name) {
        return Err(invalid(
            f("objectName"),
            format!("'{name}' is not a vault object name (1-127 letters, digits and '-')"),
        ));
    }
    let kind = match o.object_type.as_deref().map(str::trim) {
        None | Some("secret") => ObjectType::Secret,
        Some("key") => ObjectType::Key,
        Some("cert") => ObjectType::Cert,
        Some(other) => {
            return Err(invalid(
                f("objectType"),
                format!("'{other}' is not secret, key or cert"),
            ));
        }
    };
    let version = match o.object_version.as_deref().map(str::trim) {
        None => None,
        Some(v) if valid_object_name(v) => Some(v.to_string()),
        Some(v) => {
            return Err(invalid(
                f("objectVersion"),
                format!("'{v}' is not a version id (letters, digits and '-')"),
            ));
        }
    };
    let format = match o.object_format.as_deref().map(str::trim) {
        None | Some("pem") => ObjectFormat::Pem,
        Some("pfx") => ObjectFormat::Pfx,
        Some(other) => {
            return Err(invalid(
                f("objectFormat"),
                format!("'{other}' is not pem or pfx"),
            ));
        }
    };
    if format == ObjectFormat::Pfx && kind != ObjectType::Secret {
        return Err(invalid(
            f("objectFormat"),
            "pfx applies to objectType secret (a certificate's secret)",
        ));
    }
    let encoding = match o.object_encoding.as_deref().map(str::trim) {
        None | Some("utf-8") | Some("utf8") => ObjectEncoding::Utf8,
        Some("hex") => ObjectEncoding::Hex,
        Some("base64") => ObjectEncoding::Base64,
        Some(other) => {
            return Err(invalid(
                f("objectEncoding"),
                format!("'{other}' is not utf-8, hex or base64"),
            ));
        }
    };
    if encoding != ObjectEncoding::Utf8 && kind != ObjectType::Secret {
        return Err(invalid(
            f("objectEncoding"),
            "applies to objectType secret only (keys and certificates are PEM)",
        ));
    }
    let alias = o.object_alias.as_deref().map(str::trim).map(String::from);
    let key = match &alias {
        Some(a) => {
            check_key(&f("objectAlias"), a)?;
            a.clone()
        }
        None => {
            check_key(&f("objectName"), name)?;
            name.to_string()
        }
    };
    Ok(PlannedObject {
        key,
        spec: ObjectSpec {
            name: name.to_string(),
            kind,
            version,
            history: 0,
            alias,
            format,
            encoding,
            mode: DEFAULT_PERMISSION,
        },
        origin: Origin::Object(i),
    })
}

fn plan_selector(i: usize, s: &SyncSelector) -> Result<Selector, PlanError> {
    let f = |name: &str| format!("spec.selectors[{i}].{name}");
    let name_prefix = s.name_prefix.as_deref().map(str::trim).map(String::from);
    if let Some(p) = &name_prefix
        && !valid_object_name(p)
    {
        return Err(invalid(
            f("namePrefix"),
            format!("'{p}' is not the start of a vault object name (letters, digits and '-')"),
        ));
    }
    if s.tags.len() > crate::wire::MAX_TAGS {
        return Err(invalid(
            f("tags"),
            format!("at most {} tags", crate::wire::MAX_TAGS),
        ));
    }
    if let Some(k) = s.tags.keys().find(|k| k.trim().is_empty()) {
        return Err(invalid(f("tags"), format!("tag name '{k}' is empty")));
    }
    if let Some(p) = &s.key_prefix {
        check_key(&f("keyPrefix"), p)?;
    }
    let max = s.max_objects.unwrap_or(DEFAULT_MAX_SELECTED);
    if max == 0 || max > MAX_SELECTED {
        return Err(invalid(
            f("maxObjects"),
            format!("{max} is not between 1 and {MAX_SELECTED}"),
        ));
    }
    Ok(Selector {
        name_prefix,
        tags: s.tags.clone(),
        key_naming: s.key_naming,
        key_prefix: s.key_prefix.clone(),
        max_objects: max as usize,
    })
}

fn check_unique<'a>(objects: impl Iterator<Item = &'a PlannedObject>) -> Result<(), PlanError> {
    let mut seen: BTreeMap<&str, &PlannedObject> = BTreeMap::new();
    for o in objects {
        if let Some(first) = seen.insert(&o.key, o) {
            return Err(PlanError::DuplicateKey {
                key: o.key.clone(),
                first: first.describe(),
                second: o.describe(),
            });
        }
    }
    Ok(())
}

/// Every object the sync fetches: the explicit ones, then what each selector takes from
/// `listing` (the vault's secrets; `None` is fine when there are no selectors). Two entries
/// with one key are an error naming both, except one secret taken by two selectors under
/// the same key (the same content twice). More than [`MAX_SYNC_TOTAL`] is an error: a
/// Secret missing some of its objects is worse than one not updated.
pub fn expand(
    plan: &SyncPlan,
    listing: Option<&[SecretItem]>,
) -> Result<Vec<PlannedObject>, PlanError> {
    let mut out = plan.objects.clone();
    if !plan.selectors.is_empty() {
        let listing = listing.ok_or(PlanError::ListingMissing)?;
        for (i, selector) in plan.selectors.iter().enumerate() {
            let selected = selector
                .select(listing)
                .map_err(|source| PlanError::Select {
                    field: format!("spec.selectors[{i}]"),
                    source,
                })?;
            for s in selected {
                let duplicate = out.iter().any(|o| {
                    matches!(o.origin, Origin::Selector(_))
                        && o.key == s.key
                        && o.spec.name.eq_ignore_ascii_case(&s.name)
                });
                if duplicate {
                    continue;
                }
                let field = format!("spec.selectors[{i}]");
                check_key(&field, &s.key)?;
                out.push(PlannedObject {
                    key: s.key.clone(),
                    spec: ObjectSpec::selected(s, ObjectEncoding::Utf8, DEFAULT_PERMISSION),
                    origin: Origin::Selector(i),
                });
                if out.len() > MAX_SYNC_TOTAL {
                    // Counted in full for the message: how far over it is helps.
                    return Err(PlanError::TooMany {
                        count: count_all(plan, listing),
                        max: MAX_SYNC_TOTAL,
                    });
                }
            }
        }
    }
    if out.len() > MAX_SYNC_TOTAL {
        return Err(PlanError::TooMany {
            count: out.len(),
            max: MAX_SYNC_TOTAL,
        });
    }
    check_unique(out.iter())?;
    Ok(out)
}

/// How many objects the plan would take without the total bound (each selector is within
/// its own bound, or expansion would have failed earlier).
fn count_all(plan: &SyncPlan, listing: &[SecretItem]) -> usize {
    let mut keys: std::collections::BTreeSet<(String, String)> = Default::default();
    for s in &plan.selectors {
        for x in s.select(listing).unwrap_or_default() {
            keys.insert((x.key, x.name.to_ascii_lowercase()));
        }
    }
    plan.objects.len() + keys.len()
}

#[cfg(test)]
mod tests;
