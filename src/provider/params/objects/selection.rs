//! Entries of `objects` that select secrets instead of naming one: `objectNamePrefix`
//! and/or `objectTags`, with `objectKeyNaming`, `objectKeyPrefix` and `objectMaxCount`.
//! Parsing and validation here; [`expand_selections`] turns them, given the vault's
//! listing, into ordinary objects (latest version, file name = the selected key). Pure: the
//! listing comes in, the objects go out. The selection rules themselves are
//! [`crate::client::select`], shared with the operator's `SecretSync`.

use super::super::*;
use super::{
    FileOwner, RawObject, check_paths, explicit_files, parse_encoding, trimmed, valid_object_name,
};
use crate::client::select::{KeyNaming, Selector, parse_tags};
use crate::wire::secrets::SecretItem;

/// One validated entry of `objects` that selects secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionSpec {
    /// The entry's index in `objects`, for messages.
    pub index: usize,
    pub selector: Selector,
    /// Applied to every selected secret.
    pub encoding: ObjectEncoding,
    pub mode: u32,
}

impl SelectionSpec {
    /// Where this entry appears in messages: `objects[2] (the selector of tags app=web)`.
    pub fn describe(&self) -> String {
        format!("objects[{}] ({})", self.index, self.selector.describe())
    }
}

/// Whether an entry selects secrets: it carries any of the selection fields (even empty,
/// so that `objectNamePrefix: ""` is refused rather than read as a named object).
pub(super) fn is_selection(raw: &RawObject) -> bool {
    raw.object_name_prefix.is_some()
        || raw.object_tags.is_some()
        || raw.object_key_naming.is_some()
        || raw.object_key_prefix.is_some()
        || raw.object_max_count.is_some()
}

pub(super) fn validate_selection(
    raw: RawObject,
    index: usize,
    default_mode: u32,
) -> Result<SelectionSpec, String> {
    // An entry names one object or selects secrets; the one-object fields do not apply.
    if trimmed(raw.object_name).is_some() {
        return Err(
            "objectName cannot be combined with objectNamePrefix, objectTags, objectKeyNaming, objectKeyPrefix or objectMaxCount: an entry either names one object (objectName) or selects secrets (objectNamePrefix and/or objectTags)".into(),
        );
    }
    for (field, present, why) in [
        (
            "objectAlias",
            trimmed(raw.object_alias).is_some(),
            "selected secrets are named by objectKeyNaming and objectKeyPrefix",
        ),
        (
            "objectVersion",
            trimmed(raw.object_version).is_some(),
            "selected secrets are mounted at their latest version; name a pinned version with objectName",
        ),
        (
            "objectVersionHistory",
            trimmed(raw.object_version_history).is_some(),
            "selected secrets are mounted at their latest version; name an object with objectName for its history",
        ),
        (
            "objectFormat",
            trimmed(raw.object_format).is_some(),
            "the secrets of certificates are never selected; name them with objectName",
        ),
    ] {
        if present {
            return Err(format!(
                "{field} cannot be combined with selecting secrets (objectNamePrefix, objectTags): {why}"
            ));
        }
    }
    match trimmed(raw.object_type).map(|t| t.to_ascii_lowercase()) {
        None => {
            return Err("objectType is missing: selecting secrets needs objectType: secret".into());
        }
        Some(t) if t == "secret" => {}
        Some(t) if matches!(t.as_str(), "key" | "cert" | "certificate") => {
            return Err(format!(
                "objectType {t} cannot be selected: objectNamePrefix and objectTags select secrets only (objectType: secret); list keys and certificates one by one with objectName"
            ));
        }
        Some(t) => {
            return Err(format!(
                "objectType '{}' is not one of secret, key, cert (and only secrets can be selected)",
                t.escape_debug()
            ));
        }
    }
    let name_prefix = match raw.object_name_prefix.as_deref().map(str::trim) {
        None => None,
        Some("") => {
            return Err(
                "objectNamePrefix is empty: give the start of the names to select (an empty prefix would select every secret, which kvault does not do implicitly)".into(),
            );
        }
        Some(p) if !valid_object_name(p) => {
            return Err(format!(
                "objectNamePrefix '{}' can never match: vault names are 1-127 letters, digits and hyphens",
                p.escape_debug()
            ));
        }
        Some(p) => Some(p.to_string()),
    };
    let tags = match raw.object_tags.as_deref() {
        None => Default::default(),
        Some(t) => {
            let tags = parse_tags(t).map_err(|e| {
                format!(
                    "objectTags: {e} (e.g. app=web,tier=front; at most {} tags)",
                    crate::wire::MAX_TAGS
                )
            })?;
            if tags.is_empty() {
                return Err(
                    "objectTags is empty: give key=value pairs, e.g. app=web,tier=front".into(),
                );
            }
            tags
        }
    };
    if name_prefix.is_none() && tags.is_empty() {
        return Err(
            "an entry selecting secrets needs objectNamePrefix or objectTags (or both); to mount one object, give objectName".into(),
        );
    }
    let key_naming = match trimmed(raw.object_key_naming) {
        None => KeyNaming::default(),
        Some(k) => KeyNaming::parse(&k).ok_or_else(|| {
            format!(
                "objectKeyNaming '{}' is not one of {}",
                k.escape_debug(),
                KeyNaming::ALL.map(KeyNaming::as_str).join(", ")
            )
        })?,
    };
    if key_naming == KeyNaming::StripPrefix && name_prefix.is_none() {
        return Err(
            "objectKeyNaming StripPrefix needs objectNamePrefix (the prefix it strips)".into(),
        );
    }
    let key_prefix = trimmed(raw.object_key_prefix);
    if let Some(p) = &key_prefix {
        // Every file name is the prefix and a key; check the prefix as the start of one.
        validate_path(&format!("{p}x")).map_err(|m| {
            format!(
                "objectKeyPrefix '{}' cannot start a file name: {m}",
                p.escape_debug()
            )
        })?;
    }
    let max_objects = match trimmed(raw.object_max_count) {
        None => DEFAULT_SELECTION_MAX,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_SELECTION_MAX).contains(&n) => n,
            _ => {
                return Err(format!(
                    "objectMaxCount must be a whole number from 1 to {MAX_SELECTION_MAX} (default {DEFAULT_SELECTION_MAX})"
                ));
            }
        },
    };
    let encoding = parse_encoding(raw.object_encoding, "the selected secrets")?;
    let mode = match trimmed(raw.file_permission) {
        None => default_mode,
        Some(p) => parse_file_permission(&p).map_err(|m| format!("the selected secrets: {m}"))?,
    };
    Ok(SelectionSpec {
        index,
        selector: Selector {
            name_prefix,
            tags,
            key_naming,
            key_prefix,
            max_objects,
        },
        encoding,
        mode,
    })
}

/// The objects of a mount: the named ones, then, for each selection in order, every secret
/// it takes from `listing` (the vault's secrets, as the pod may list them), each as an
/// ordinary object at its latest version written under its key. All or nothing: a
/// selection over its `objectMaxCount`, a key that is not a valid file name, more than
/// [`MAX_MOUNT_OBJECTS`] objects in all, or two objects writing one file fail the mount.
pub fn expand_selections(
    objects: &[ObjectSpec],
    selections: &[SelectionSpec],
    listing: &[SecretItem],
) -> MountResult<Vec<ObjectSpec>> {
    let mut all = objects.to_vec();
    let mut files = explicit_files(objects)?;
    let mut counts = Vec::new();
    for s in selections {
        let selected = s
            .selector
            .select(listing)
            .map_err(|e| MountError::invalid(format!("objects[{}]: {e}", s.index)))?;
        counts.push(format!("{} by objects[{}]", selected.len(), s.index));
        for one in selected {
            validate_path(&one.key).map_err(|m| {
                MountError::invalid(format!(
                    "{}: secret '{}' cannot be written under its key: {m}",
                    s.describe(),
                    one.name
                ))
            })?;
            let spec = ObjectSpec::selected(one, s.encoding, s.mode);
            files.push(owner(&spec, s));
            all.push(spec);
        }
    }
    if all.len() > MAX_MOUNT_OBJECTS {
        return Err(MountError::invalid(format!(
            "the mount would have {} objects ({} named, selected: {}); at most {MAX_MOUNT_OBJECTS} are mounted at once: narrow the selections (objectNamePrefix, objectTags, objectMaxCount) or split the SecretProviderClass",
            all.len(),
            objects.len(),
            counts.join(", ")
        )));
    }
    check_paths(&files)?;
    Ok(all)
}

fn owner(spec: &ObjectSpec, s: &SelectionSpec) -> FileOwner {
    (
        spec.file_name().to_string(),
        format!("secret '{}' selected by {}", spec.name, s.describe()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::client::select::listed as item;

    fn parse(yaml: &str) -> MountResult<ObjectList> {
        parse_objects(yaml, 0o644)
    }

    fn refused(yaml: &str) -> String {
        let e = parse(yaml).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameters, "{yaml}");
        e.message
    }

    fn expand(yaml: &str, listing: &[SecretItem]) -> MountResult<Vec<ObjectSpec>> {
        let l = parse(yaml).unwrap();
        expand_selections(&l.objects, &l.selections, listing)
    }

    fn files(objects: &[ObjectSpec]) -> Vec<(&str, &str)> {
        objects
            .iter()
            .map(|o| (o.name.as_str(), o.file_name()))
            .collect()
    }

    #[test]
    fn selection_entries_parse_with_defaults_and_options() {
        let l = parse(
            r#"
- objectName: db
  objectType: secret
- objectTags: " app=web , tier=front "
  objectType: secret
- objectNamePrefix: app-
  objectType: SECRET
  objectKeyNaming: envvar
  objectKeyPrefix: env/
  objectMaxCount: 7
  objectEncoding: base64
  filePermission: 0440
"#,
        )
        .unwrap();
        assert_eq!(l.objects.len(), 1);
        assert_eq!(l.objects[0].name, "db");
        assert_eq!(l.selections.len(), 2);
        let tags = &l.selections[0];
        assert_eq!(tags.index, 1);
        assert_eq!(
            tags.selector,
            Selector {
                name_prefix: None,
                tags: BTreeMap::from([
                    ("app".to_string(), "web".to_string()),
                    ("tier".to_string(), "front".to_string())
                ]),
                key_naming: KeyNaming::Name,
                key_prefix: None,
                max_objects: DEFAULT_SELECTION_MAX,
            }
        );
        assert_eq!((tags.encoding, tags.mode), (ObjectEncoding::Utf8, 0o644));
        let prefix = &l.selections[1];
        assert_eq!(prefix.index, 2);
        assert_eq!(prefix.selector.name_prefix.as_deref(), Some("app-"));
        assert_eq!(prefix.selector.key_naming, KeyNaming::EnvVar);
        assert_eq!(prefix.selector.key_prefix.as_deref(), Some("env/"));
        assert_eq!(prefix.selector.max_objects, 7);
        assert_eq!(
            (prefix.encoding, prefix.mode),
            (ObjectEncoding::Base64, 0o440)
        );
        assert_eq!(
            prefix.describe(),
            "objects[2] (the selector of prefix 'app-')"
        );
        // The Azure shape too.
        let l =
            parse("array:\n  - |\n    objectNamePrefix: app-\n    objectType: secret\n").unwrap();
        assert_eq!((l.objects.len(), l.selections.len()), (0, 1));
    }

    #[test]
    fn malformed_selections_say_what_is_wrong() {
        for (yaml, needle) in [
            (
                "- objectName: a\n  objectNamePrefix: a-\n  objectType: secret",
                "objectName cannot be combined",
            ),
            (
                "- objectName: a\n  objectType: secret\n  objectKeyNaming: EnvVar",
                "objectName cannot be combined",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectAlias: x",
                "objectAlias cannot be combined",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectVersion: abc",
                "objectVersion cannot be combined",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectVersionHistory: 2",
                "objectVersionHistory cannot be combined",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectFormat: pfx",
                "objectFormat cannot be combined",
            ),
            (
                "- objectTags: app=web\n  objectType: key",
                "objectType key cannot be selected",
            ),
            (
                "- objectNamePrefix: tls-\n  objectType: cert",
                "objectType cert cannot be selected",
            ),
            ("- objectTags: app=web", "objectType is missing"),
            (
                "- objectTags: app=web\n  objectType: blob",
                "not one of secret, key, cert",
            ),
            (
                "- objectNamePrefix: \"\"\n  objectType: secret",
                "objectNamePrefix is empty",
            ),
            (
                "- objectNamePrefix: \"  \"\n  objectType: secret",
                "objectNamePrefix is empty",
            ),
            (
                "- objectNamePrefix: app_\n  objectType: secret",
                "can never match",
            ),
            (
                "- objectTags: \"\"\n  objectType: secret",
                "objectTags is empty",
            ),
            (
                "- objectTags: \" , \"\n  objectType: secret",
                "objectTags is empty",
            ),
            (
                "- objectTags: app\n  objectType: secret",
                "not key=value pairs",
            ),
            ("- objectTags: a=1,a=2\n  objectType: secret", "objectTags"),
            (
                "- objectKeyNaming: Name\n  objectType: secret",
                "needs objectNamePrefix or objectTags",
            ),
            (
                "- objectMaxCount: 5\n  objectType: secret",
                "needs objectNamePrefix or objectTags",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectKeyNaming: upper",
                "Name, StripPrefix, EnvVar",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectKeyNaming: StripPrefix",
                "StripPrefix needs objectNamePrefix",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectKeyPrefix: /etc/",
                "objectKeyPrefix '/etc/' cannot start a file name",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectKeyPrefix: ../",
                "objectKeyPrefix",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectKeyPrefix: a//",
                "empty element",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectMaxCount: 0",
                "from 1 to 500",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectMaxCount: 501",
                "from 1 to 500",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectMaxCount: many",
                "from 1 to 500",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  objectEncoding: rot13",
                "utf-8, hex, base64",
            ),
            (
                "- objectTags: app=web\n  objectType: secret\n  filePermission: rwx",
                "octal",
            ),
        ] {
            let m = refused(yaml);
            assert!(m.contains(needle), "{yaml:?}: {m}");
            assert!(m.starts_with("objects[0]: "), "{yaml:?}: {m}");
        }
        // Unknown fields are refused as before.
        let m = refused("- objectTags: app=web\n  objectType: secret\n  objectTag: x");
        assert!(m.contains("objectTag"), "{m}");
        // Tags allow at most as many pairs as a secret can carry.
        let many: Vec<String> = (0..=crate::wire::MAX_TAGS)
            .map(|i| format!("t{i}=v"))
            .collect();
        let m = refused(&format!(
            "- objectTags: {}\n  objectType: secret",
            many.join(",")
        ));
        assert!(m.contains("objectTags"), "{m}");
    }

    #[test]
    fn expansion_takes_the_selected_secrets_at_their_latest_version() {
        let listing = [
            item("app-db", &[("app", "web")]),
            item("App-Api", &[("app", "web"), ("tier", "front")]),
            item("worker", &[("app", "web")]),
            item("other", &[("app", "api")]),
        ];
        let yaml = r#"
- objectName: db
  objectType: secret
- objectTags: app=web
  objectType: secret
  objectKeyPrefix: web/
  filePermission: "0400"
- objectNamePrefix: app-
  objectType: secret
  objectKeyNaming: EnvVar
  objectEncoding: hex
"#;
        let all = expand(yaml, &listing).unwrap();
        assert_eq!(
            files(&all),
            vec![
                ("db", "db"),
                ("App-Api", "web/App-Api"),
                ("app-db", "web/app-db"),
                ("worker", "web/worker"),
                ("App-Api", "APP_API"),
                ("app-db", "APP_DB"),
            ]
        );
        for o in &all[1..] {
            assert_eq!(
                (o.kind, o.version.as_deref(), o.history),
                (ObjectType::Secret, None, 0)
            );
        }
        assert_eq!(
            (all[1].mode, all[1].encoding),
            (0o400, ObjectEncoding::Utf8)
        );
        assert_eq!((all[4].mode, all[4].encoding), (0o644, ObjectEncoding::Hex));
        // A selection that matches nothing adds nothing (and is not an error).
        let none = expand("- objectTags: app=none\n  objectType: secret\n", &listing).unwrap();
        assert!(none.is_empty());
        // Without selections the named objects are the mount, unchanged.
        let l = parse("- objectName: db\n  objectType: secret\n").unwrap();
        assert_eq!(
            expand_selections(&l.objects, &l.selections, &[]).unwrap(),
            l.objects
        );
    }

    #[test]
    fn tags_select_exactly_and_strip_prefix_names_files() {
        let listing = [
            item("web-a", &[("app", "web"), ("tier", "front")]),
            item("web-b", &[("app", "web")]),
            item("web-c", &[("app", "Web"), ("tier", "front")]),
        ];
        let all = expand(
            "- objectNamePrefix: WEB-\n  objectTags: app=web,tier=front\n  objectType: secret\n  objectKeyNaming: StripPrefix\n",
            &listing,
        )
        .unwrap();
        assert_eq!(files(&all), vec![("web-a", "a")]);
    }

    #[test]
    fn a_selection_over_its_bound_fails_whole() {
        let listing: Vec<SecretItem> = (0..5)
            .map(|i| item(&format!("app-{i}"), &[("app", "web")]))
            .collect();
        let ok = expand(
            "- objectTags: app=web\n  objectType: secret\n  objectMaxCount: 5\n",
            &listing,
        )
        .unwrap();
        assert_eq!(ok.len(), 5);
        let e = expand(
            "- objectName: db\n  objectType: secret\n- objectTags: app=web\n  objectType: secret\n  objectMaxCount: 4\n",
            &listing,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameters);
        assert!(
            e.message.starts_with(
                "objects[1]: the selector of tags app=web matches 5 secrets; at most 4"
            ),
            "{}",
            e.message
        );
        // The default bound is 100.
        let many: Vec<SecretItem> = (0..=DEFAULT_SELECTION_MAX)
            .map(|i| item(&format!("s-{i}"), &[]))
            .collect();
        let e = expand("- objectNamePrefix: s-\n  objectType: secret\n", &many).unwrap_err();
        assert!(
            e.message.contains("matches 101 secrets; at most 100"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_whole_mount_stays_within_its_bound() {
        let listing: Vec<SecretItem> = (0..200).map(|i| item(&format!("a-{i:03}"), &[])).collect();
        let more: Vec<SecretItem> = (0..60).map(|i| item(&format!("b-{i:03}"), &[])).collect();
        let listing: Vec<SecretItem> = listing.into_iter().chain(more).collect();
        let two = "- objectNamePrefix: a-\n  objectType: secret\n  objectMaxCount: 500\n- objectNamePrefix: b-\n  objectType: secret\n";
        // 200 + 60 = 260 > 256.
        let e = expand(two, &listing).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameters);
        assert!(
            e.message.contains("would have 260 objects (0 named, selected: 200 by objects[0], 60 by objects[1]); at most 256"),
            "{}",
            e.message
        );
        // Exactly at the bound is fine: 196 + 60 named = 256.
        let named: String = (0..60)
            .map(|i| format!("- objectName: n{i}\n  objectType: secret\n"))
            .collect();
        let listing196: Vec<SecretItem> =
            (0..196).map(|i| item(&format!("a-{i:03}"), &[])).collect();
        let yaml =
            format!("{named}- objectNamePrefix: a-\n  objectType: secret\n  objectMaxCount: 500\n");
        assert_eq!(expand(&yaml, &listing196).unwrap().len(), 256);
        let listing197: Vec<SecretItem> =
            (0..197).map(|i| item(&format!("a-{i:03}"), &[])).collect();
        assert!(
            expand(&yaml, &listing197)
                .unwrap_err()
                .message
                .contains("257 objects")
        );
    }

    #[test]
    fn collisions_name_both_writers() {
        let listing = [
            item("app-db", &[("app", "web")]),
            item("web-db", &[("app", "web")]),
        ];
        // An explicit object and a selected secret.
        let e = expand(
            "- objectName: app-db\n  objectType: secret\n- objectTags: app=web\n  objectType: secret\n",
            &listing,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameters);
        assert!(
            e.message.contains("two objects write the file 'app-db': secret 'app-db' and secret 'app-db' selected by objects[1] (the selector of tags app=web)"),
            "{}",
            e.message
        );
        // Two selections.
        let e = expand(
            "- objectNamePrefix: app-\n  objectType: secret\n  objectKeyNaming: StripPrefix\n- objectNamePrefix: web-\n  objectType: secret\n  objectKeyNaming: StripPrefix\n",
            &listing,
        )
        .unwrap_err();
        assert!(
            e.message.contains("the file 'db': secret 'app-db' selected by objects[0] (the selector of prefix 'app-') and secret 'web-db' selected by objects[1] (the selector of prefix 'web-')"),
            "{}",
            e.message
        );
        // A selected file where an explicit object's history is a directory, and the
        // other way round.
        let e = expand(
            "- objectName: x\n  objectType: secret\n  objectAlias: web\n  objectVersionHistory: 2\n- objectTags: app=web\n  objectType: secret\n  objectKeyPrefix: web/\n",
            &[item("0", &[("app", "web")])],
        )
        .unwrap_err();
        assert!(
            e.message.contains("two objects write the file 'web/0'"),
            "{}",
            e.message
        );
        let e = expand(
            "- objectName: web\n  objectType: secret\n- objectTags: app=web\n  objectType: secret\n  objectKeyPrefix: web/\n",
            &listing,
        )
        .unwrap_err();
        assert!(
            e.message.contains("'web' would be both a file and a directory (of 'web/app-db'): secret 'web' writes the file, secret 'app-db' selected by objects[1]"),
            "{}",
            e.message
        );
        // Distinct prefixes keep them apart.
        let ok = expand(
            "- objectNamePrefix: app-\n  objectType: secret\n  objectKeyNaming: StripPrefix\n  objectKeyPrefix: app/\n- objectNamePrefix: web-\n  objectType: secret\n  objectKeyNaming: StripPrefix\n  objectKeyPrefix: web/\n",
            &listing,
        )
        .unwrap();
        assert_eq!(files(&ok), vec![("app-db", "app/db"), ("web-db", "web/db")]);
    }

    #[test]
    fn selected_keys_must_be_valid_file_names() {
        // A key over the driver's element limit (prefix + a 127-character name).
        let long = format!("a{}", "b".repeat(126));
        let e = expand(
            &format!(
                "- objectTags: app=web\n  objectType: secret\n  objectKeyPrefix: {}\n",
                "p".repeat(200)
            ),
            &[item(&long, &[("app", "web")])],
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameters);
        assert!(
            e.message
                .contains(&format!("secret '{long}' cannot be written under its key"))
                && e.message.contains("255"),
            "{}",
            e.message
        );
        // StripPrefix leaving nothing is refused by the selector.
        let e = expand(
            "- objectNamePrefix: app\n  objectType: secret\n  objectKeyNaming: StripPrefix\n",
            &[item("app", &[]), item("app-x", &[])],
        )
        .unwrap_err();
        assert!(e.message.contains("empty key"), "{}", e.message);
    }

    #[test]
    fn disabled_and_certificate_secrets_are_never_selected() {
        let mut off = item("app-off", &[("app", "web")]);
        off.attributes.enabled = Some(false);
        let mut tls = item("app-tls", &[("app", "web")]);
        tls.managed = Some(true);
        let all = expand(
            "- objectTags: app=web\n  objectType: secret\n",
            &[off, tls, item("app-on", &[("app", "web")])],
        )
        .unwrap();
        assert_eq!(files(&all), vec![("app-on", "app-on")]);
    }
}
