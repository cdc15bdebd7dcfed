//! The `objects` parameter: a YAML list of the objects to mount, parsed and validated.

use super::*;
use selection::{is_selection, validate_selection};
use std::collections::BTreeMap;

pub(super) mod selection;

/// Object names as the vault accepts them: 1–127 letters, digits and hyphens.
pub(super) fn valid_object_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A DNS-1123 label (Kubernetes names of Services and namespaces).
pub(super) fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A YAML scalar read as its text, whatever YAML would have resolved it to (`0644` stays
/// `0644`, `5` becomes `5`), as the Go providers read their string fields.
fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string, number or boolean")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_string(V)
}

/// One `objects` entry as written: one object (`objectName`), or a selection of secrets
/// (`objectNamePrefix` and/or `objectTags`, see [`super::selection`]).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawObject {
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_name: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_type: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_version: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_version_history: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_alias: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_format: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_encoding: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) file_permission: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_name_prefix: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_tags: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_key_naming: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_key_prefix: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub(super) object_max_count: Option<String>,
}

/// The validated `objects` parameter: the objects named one by one, and the entries that
/// select secrets (expanded at mount time, [`super::expand_selections`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectList {
    pub objects: Vec<ObjectSpec>,
    pub selections: Vec<SelectionSpec>,
}

/// The Azure provider's shape: `array:` of YAML strings, each an object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArrayOfStrings {
    array: Vec<String>,
}

/// The first meaningful character of a YAML document (comments and blank lines skipped).
fn first_significant(yaml: &str) -> Option<char> {
    yaml.lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#') && *l != "---")
        .and_then(|l| l.chars().next())
}

/// serde-saphyr's messages quote the offending YAML; keep only the first line and cap it.
/// (The `objects` parameter holds names, not secret values.)
fn yaml_error(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let first = s.lines().next().unwrap_or("").trim();
    first.chars().take(300).collect()
}

/// Parses `objects`: a YAML list of maps (the Vault/AWS shape) or `array:` of YAML strings
/// (the Azure shape). `default_mode` applies where `filePermission` is absent.
pub fn parse_objects(yaml: &str, default_mode: u32) -> MountResult<ObjectList> {
    if yaml.len() > MAX_OBJECTS_YAML {
        return Err(MountError::invalid(format!(
            "the 'objects' parameter is {} bytes; at most {MAX_OBJECTS_YAML} are accepted",
            yaml.len()
        )));
    }
    if yaml.trim().is_empty() {
        return Err(MountError::invalid(
            "the 'objects' parameter is empty: list at least one object (objectName, objectType)",
        ));
    }
    let raws: Vec<RawObject> = match first_significant(yaml) {
        Some('-') | Some('[') => serde_saphyr::from_str::<Vec<RawObject>>(yaml).map_err(|e| {
            MountError::invalid(format!(
                "the 'objects' parameter is not a valid list of objects: {}",
                yaml_error(e)
            ))
        })?,
        _ => {
            let doc: ArrayOfStrings = serde_saphyr::from_str(yaml).map_err(|e| {
                MountError::invalid(format!(
                    "the 'objects' parameter must be a YAML list of objects, or 'array:' with one YAML string per object: {}",
                    yaml_error(e)
                ))
            })?;
            doc.array
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    serde_saphyr::from_str::<RawObject>(item).map_err(|e| {
                        MountError::invalid(format!("objects[{i}]: {}", yaml_error(e)))
                    })
                })
                .collect::<MountResult<_>>()?
        }
    };
    if raws.is_empty() {
        return Err(MountError::invalid(
            "the 'objects' list is empty: list at least one object (objectName, objectType)",
        ));
    }
    if raws.len() > MAX_OBJECTS {
        return Err(MountError::invalid(format!(
            "the 'objects' list has {} entries; at most {MAX_OBJECTS} are accepted (split the SecretProviderClass)",
            raws.len()
        )));
    }
    let mut objects = Vec::new();
    let mut selections = Vec::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let at = |m: String| MountError::invalid(format!("objects[{i}]: {m}"));
        if is_selection(&raw) {
            selections.push(validate_selection(raw, i, default_mode).map_err(at)?);
        } else {
            objects.push(validate_object(raw, default_mode).map_err(at)?);
        }
    }
    check_paths(&explicit_files(&objects)?)?;
    Ok(ObjectList {
        objects,
        selections,
    })
}

pub(super) fn trimmed(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn validate_object(raw: RawObject, default_mode: u32) -> Result<ObjectSpec, String> {
    let name = trimmed(raw.object_name).ok_or("objectName is missing")?;
    if !valid_object_name(&name) {
        return Err(format!(
            "objectName '{}' is not a vault object name (1-127 letters, digits and hyphens)",
            name.escape_debug()
        ));
    }
    let kind = match trimmed(raw.object_type)
        .ok_or_else(|| format!("objectType is missing for '{name}' (secret, key or cert)"))?
        .to_ascii_lowercase()
        .as_str()
    {
        "secret" => ObjectType::Secret,
        "key" => ObjectType::Key,
        "cert" | "certificate" => ObjectType::Cert,
        other => {
            return Err(format!(
                "objectType '{}' of '{name}' is not one of secret, key, cert",
                other.escape_debug()
            ));
        }
    };
    let version = trimmed(raw.object_version).filter(|v| !v.eq_ignore_ascii_case("latest"));
    if let Some(v) = &version
        && !valid_object_name(v)
    {
        return Err(format!(
            "objectVersion of '{name}' must be a version id (letters, digits, hyphens) or 'latest'"
        ));
    }
    let history = match trimmed(raw.object_version_history) {
        None => 0,
        Some(h) => match h.parse::<u32>() {
            Ok(n) if n <= MAX_VERSION_HISTORY => n,
            _ => {
                return Err(format!(
                    "objectVersionHistory of '{name}' must be a whole number from 0 to {MAX_VERSION_HISTORY}"
                ));
            }
        },
    };
    let alias = trimmed(raw.object_alias);
    if let Some(a) = &alias {
        validate_path(a).map_err(|m| format!("objectAlias of '{name}': {m}"))?;
    }
    let format = match trimmed(raw.object_format).map(|s| s.to_ascii_lowercase()) {
        None => ObjectFormat::Pem,
        Some(f) if f == "pem" => ObjectFormat::Pem,
        Some(f) if f == "pfx" => ObjectFormat::Pfx,
        Some(f) => {
            return Err(format!(
                "objectFormat '{}' of '{name}' is not one of pem, pfx",
                f.escape_debug()
            ));
        }
    };
    if format == ObjectFormat::Pfx && kind != ObjectType::Secret {
        return Err(format!(
            "objectFormat pfx of '{name}' needs objectType secret (the certificate's secret holds the PFX)"
        ));
    }
    let encoding = parse_encoding(raw.object_encoding, &format!("'{name}'"))?;
    if encoding != ObjectEncoding::Utf8 && kind != ObjectType::Secret {
        return Err(format!(
            "objectEncoding of '{name}' applies to secrets only (keys and certificates are written as PEM)"
        ));
    }
    let mode = match trimmed(raw.file_permission) {
        None => default_mode,
        Some(p) => parse_file_permission(&p).map_err(|m| format!("'{name}': {m}"))?,
    };
    Ok(ObjectSpec {
        name,
        kind,
        version,
        history,
        alias,
        format,
        encoding,
        mode,
    })
}

/// `objectEncoding` (`what`: where it is, for the message).
pub(super) fn parse_encoding(v: Option<String>, what: &str) -> Result<ObjectEncoding, String> {
    match trimmed(v).map(|s| s.to_ascii_lowercase()) {
        None => Ok(ObjectEncoding::Utf8),
        Some(e) if e == "utf-8" || e == "utf8" => Ok(ObjectEncoding::Utf8),
        Some(e) if e == "hex" => Ok(ObjectEncoding::Hex),
        Some(e) if e == "base64" => Ok(ObjectEncoding::Base64),
        Some(e) => Err(format!(
            "objectEncoding '{}' of {what} is not one of utf-8, hex, base64",
            e.escape_debug()
        )),
    }
}

/// A file a mount writes and what writes it, for messages (`secret 'db'`).
pub(super) type FileOwner = (String, String);

/// Every file path the named objects produce (with version history, `<file>/<index>`),
/// each with the object that writes it.
pub(super) fn explicit_files(objects: &[ObjectSpec]) -> MountResult<Vec<FileOwner>> {
    let mut files = Vec::new();
    for o in objects {
        let base = o.file_name();
        if o.history > 1 {
            for i in 0..o.history {
                let p = format!("{base}/{i}");
                validate_path(&p).map_err(MountError::invalid)?;
                files.push((p, o.describe()));
            }
        } else {
            files.push((base.to_string(), o.describe()));
        }
    }
    Ok(files)
}

/// Every file path of a mount, checked for duplicates and for a path that would be both a
/// file and a directory; a refusal names both writers.
pub(super) fn check_paths(files: &[FileOwner]) -> MountResult<()> {
    let mut paths: BTreeMap<&str, &str> = BTreeMap::new();
    for (path, owner) in files {
        if let Some(first) = paths.insert(path, owner) {
            return Err(MountError::invalid(format!(
                "two objects write the file '{path}': {first} and {owner}; give one of them an objectAlias (or, for selected secrets, another objectKeyPrefix or objectKeyNaming)"
            )));
        }
    }
    for (p, owner) in &paths {
        let mut prefix = String::new();
        for element in p.split('/') {
            if !prefix.is_empty()
                && let Some(file_owner) = paths.get(prefix.as_str())
            {
                return Err(MountError::invalid(format!(
                    "'{prefix}' would be both a file and a directory (of '{p}'): {file_owner} writes the file, {owner} the directory; give one of the objects another objectAlias"
                )));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(element);
        }
    }
    Ok(())
}
