use super::*;
use crate::api::grants::VaultRef;
use crate::api::sync::{KeyNaming, SyncTarget};

fn spec(objects: Vec<SyncObject>, selectors: Vec<SyncSelector>) -> SecretSyncSpec {
    SecretSyncSpec {
        vault_ref: serde_json::from_value::<VaultRef>(serde_json::json!({"name": "team"})).unwrap(),
        service_account_name: "app".into(),
        objects,
        selectors,
        target: SyncTarget::default(),
        refresh_interval: None,
        rollout_restart_targets: vec![],
    }
}

fn obj(name: &str) -> SyncObject {
    SyncObject {
        object_name: name.into(),
        ..Default::default()
    }
}

fn aliased(name: &str, alias: &str) -> SyncObject {
    SyncObject {
        object_alias: Some(alias.into()),
        ..obj(name)
    }
}

fn sel(prefix: Option<&str>, naming: KeyNaming) -> SyncSelector {
    SyncSelector {
        name_prefix: prefix.map(String::from),
        key_naming: naming,
        ..Default::default()
    }
}

use crate::client::select::listed as item;

fn err(s: &SecretSyncSpec) -> String {
    plan("sync", s).unwrap_err().to_string()
}

#[test]
fn defaults() {
    let p = plan("my-sync", &spec(vec![obj("db-password")], vec![])).unwrap();
    assert_eq!(p.target_name, "my-sync");
    assert_eq!(p.secret_type, SecretType::Opaque);
    assert_eq!(p.merge, MergePolicy::Replace);
    assert_eq!(p.refresh_interval, Duration::from_secs(300));
    assert_eq!(p.deletion_policy, DeletionPolicy::Delete);
    assert!(!p.adopt);
    assert_eq!(p.objects.len(), 1);
    let o = &p.objects[0];
    assert_eq!(o.key, "db-password");
    assert_eq!(o.origin, Origin::Object(0));
    assert_eq!(
        o.spec,
        ObjectSpec {
            name: "db-password".into(),
            kind: ObjectType::Secret,
            version: None,
            history: 0,
            alias: None,
            format: ObjectFormat::Pem,
            encoding: ObjectEncoding::Utf8,
            mode: DEFAULT_PERMISSION,
        }
    );
    assert_eq!(o.describe(), "spec.objects[0] (secret 'db-password')");
}

#[test]
fn objects_convert_field_by_field() {
    let s = spec(
        vec![
            SyncObject {
                object_name: "tls".into(),
                object_type: Some("secret".into()),
                object_version: Some("0123abcd".into()),
                object_alias: Some("bundle.pfx".into()),
                object_format: Some("pfx".into()),
                object_encoding: Some("base64".into()),
            },
            SyncObject {
                object_type: Some("key".into()),
                ..aliased("signing", "signing.pub")
            },
            SyncObject {
                object_type: Some("cert".into()),
                ..aliased("tls", "ca.crt")
            },
            SyncObject {
                object_encoding: Some("hex".into()),
                ..obj("raw")
            },
        ],
        vec![],
    );
    let p = plan("s", &s).unwrap();
    let got: Vec<_> = p
        .objects
        .iter()
        .map(|o| {
            (
                o.key.as_str(),
                o.spec.kind,
                o.spec.version.as_deref(),
                o.spec.format,
                o.spec.encoding,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "bundle.pfx",
                ObjectType::Secret,
                Some("0123abcd"),
                ObjectFormat::Pfx,
                ObjectEncoding::Base64
            ),
            (
                "signing.pub",
                ObjectType::Key,
                None,
                ObjectFormat::Pem,
                ObjectEncoding::Utf8
            ),
            (
                "ca.crt",
                ObjectType::Cert,
                None,
                ObjectFormat::Pem,
                ObjectEncoding::Utf8
            ),
            (
                "raw",
                ObjectType::Secret,
                None,
                ObjectFormat::Pem,
                ObjectEncoding::Hex
            ),
        ]
    );
}

#[test]
fn bad_object_fields_are_named() {
    let cases: Vec<(SyncObject, &str)> = vec![
        (
            SyncObject {
                object_type: Some("certificate-ish".into()),
                ..obj("a")
            },
            "spec.objects[1].objectType: 'certificate-ish' is not secret, key or cert",
        ),
        (
            SyncObject {
                object_format: Some("der".into()),
                ..obj("a")
            },
            "spec.objects[1].objectFormat: 'der' is not pem or pfx",
        ),
        (
            SyncObject {
                object_format: Some("pfx".into()),
                object_type: Some("cert".into()),
                ..obj("a")
            },
            "spec.objects[1].objectFormat: pfx applies to objectType secret",
        ),
        (
            SyncObject {
                object_encoding: Some("rot13".into()),
                ..obj("a")
            },
            "spec.objects[1].objectEncoding: 'rot13' is not utf-8, hex or base64",
        ),
        (
            SyncObject {
                object_encoding: Some("hex".into()),
                object_type: Some("key".into()),
                ..obj("a")
            },
            "spec.objects[1].objectEncoding: applies to objectType secret only",
        ),
        (
            aliased("a", "has space"),
            "spec.objects[1].objectAlias: 'has space' is not a Secret key",
        ),
        (
            aliased("a", ".."),
            "spec.objects[1].objectAlias: '..' is not a Secret key",
        ),
        (
            aliased("a", "..data"),
            "spec.objects[1].objectAlias: '..data' is not a Secret key",
        ),
        (
            aliased("a", &"k".repeat(254)),
            "spec.objects[1].objectAlias: 'kkk",
        ),
        (
            obj("under_score"),
            "spec.objects[1].objectName: 'under_score' is not a vault object name",
        ),
        (
            SyncObject {
                object_version: Some("v/1".into()),
                ..obj("a")
            },
            "spec.objects[1].objectVersion: 'v/1' is not a version id",
        ),
    ];
    for (o, want) in cases {
        let e = err(&spec(vec![obj("first"), o], vec![]));
        assert!(e.starts_with(want), "{e}\nwanted: {want}");
    }
    // At the limit the alias is fine.
    assert!(plan("s", &spec(vec![aliased("a", &"k".repeat(253))], vec![])).is_ok());
}

#[test]
fn duplicate_keys_name_both_objects() {
    let s = spec(vec![obj("a"), obj("b"), aliased("c", "a")], vec![]);
    let e = plan("s", &s).unwrap_err();
    assert_eq!(
        e,
        PlanError::DuplicateKey {
            key: "a".into(),
            first: "spec.objects[0] (secret 'a')".into(),
            second: "spec.objects[2] (secret 'c')".into(),
        }
    );
    assert_eq!(e.reason(), "InvalidSpec");
    assert!(e.to_string().contains("objectAlias"), "{e}");
    // Keys are case-sensitive in a Secret: no collision.
    assert!(plan("s", &spec(vec![obj("a"), aliased("b", "A")], vec![])).is_ok());
}

#[test]
fn target_fields() {
    let mut s = spec(vec![obj("a")], vec![]);
    s.target = SyncTarget {
        name: Some("app-secrets".into()),
        secret_type: Some("kubernetes.io/dockerconfigjson".into()),
        merge_policy: Some("Merge".into()),
        deletion_policy: DeletionPolicy::Orphan,
        adopt: true,
        labels: [("team".to_string(), "web".to_string())].into(),
        templates: [("dsn".to_string(), "{{ objects.a }}".to_string())].into(),
        ..Default::default()
    };
    let p = plan("s", &s).unwrap();
    assert_eq!(p.target_name, "app-secrets");
    assert_eq!(p.secret_type, SecretType::DockerConfigJson);
    assert_eq!(p.merge, MergePolicy::Merge);
    assert_eq!(p.deletion_policy, DeletionPolicy::Orphan);
    assert!(p.adopt);
    assert_eq!(p.labels["team"], "web");
    assert_eq!(p.templates["dsn"], "{{ objects.a }}");

    for (t, want) in [
        ("Opaque", SecretType::Opaque),
        ("kubernetes.io/tls", SecretType::Tls),
        (
            "kubernetes.io/dockerconfigjson",
            SecretType::DockerConfigJson,
        ),
    ] {
        assert_eq!(SecretType::parse(t), Some(want));
        assert_eq!(want.as_str(), t);
    }
    s.target.secret_type = Some("kubernetes.io/basic-auth".into());
    assert!(err(&s).starts_with("spec.target.type: 'kubernetes.io/basic-auth' is not one of"));
    s.target.secret_type = None;
    s.target.merge_policy = Some("Overwrite".into());
    assert_eq!(
        err(&s),
        "spec.target.mergePolicy: 'Overwrite' is not Replace or Merge"
    );
}

#[test]
fn templates_are_checked() {
    let mut s = spec(vec![obj("a")], vec![]);
    s.target.templates = [("bad key".to_string(), "x".to_string())].into();
    assert!(
        err(&s).starts_with("spec.target.templates[\"bad key\"]: 'bad key' is not a Secret key")
    );
    s.target.templates = [("big".to_string(), "x".repeat(MAX_TEMPLATE_SOURCE + 1))].into();
    assert!(err(&s).contains("at most 65536"), "{}", err(&s));
    s.target.templates = (0..=MAX_TEMPLATES)
        .map(|i| (format!("k{i}"), "x".to_string()))
        .collect();
    assert_eq!(err(&s), "spec.target.templates: at most 32 templates");
}

#[test]
fn reserved_labels_and_annotations_are_refused() {
    let mut s = spec(vec![obj("a")], vec![]);
    s.target.labels = [("kvault.dev/secret-sync".to_string(), "other".to_string())].into();
    assert!(
        err(&s)
            .starts_with("spec.target.labels[\"kvault.dev/secret-sync\"]: keys under kvault.dev/"),
        "{}",
        err(&s)
    );
    s.target.labels = [(MANAGED_BY_LABEL.to_string(), "me".to_string())].into();
    assert!(err(&s).starts_with("spec.target.labels[\"app.kubernetes.io/managed-by\"]"));
    s.target.labels.clear();
    s.target.annotations = [(DATA_HASH_ANNOTATION.to_string(), "0".to_string())].into();
    assert!(err(&s).starts_with("spec.target.annotations[\"kvault.dev/data-hash\"]"));
    s.target.annotations = [("example.com/kvault.dev".to_string(), "ok".to_string())].into();
    assert!(plan("s", &s).is_ok());
}

#[test]
fn refresh_interval() {
    let mut s = spec(vec![obj("a")], vec![]);
    for (v, secs) in [("10s", 10), ("1h30m", 5400), ("1.5h", 5400), ("2m", 120)] {
        s.refresh_interval = Some(v.into());
        assert_eq!(
            plan("s", &s).unwrap().refresh_interval.as_secs(),
            secs,
            "{v}"
        );
    }
    s.refresh_interval = Some("9s".into());
    assert_eq!(
        err(&s),
        "spec.refreshInterval: '9s' is below the minimum of 10s (events deliver changes sooner)"
    );
    s.refresh_interval = Some("500ms".into());
    assert!(err(&s).contains("below the minimum"));
    s.refresh_interval = Some("soon".into());
    assert!(err(&s).starts_with("spec.refreshInterval: 'soon' is not a duration"));
}

#[test]
fn spec_level_rules() {
    assert_eq!(
        err(&spec(vec![], vec![])),
        "spec: a SecretSync needs at least one entry in objects or selectors"
    );
    let mut s = spec(vec![], vec![sel(Some("web-"), KeyNaming::Name)]);
    s.target.secret_type = Some("kubernetes.io/tls".into());
    assert!(err(&s).starts_with("spec.selectors: a kubernetes.io/tls target takes one"));
    let s = spec(
        (0..=MAX_SYNC_OBJECTS)
            .map(|i| obj(&format!("o{i}")))
            .collect(),
        vec![],
    );
    assert_eq!(err(&s), "spec.objects: at most 64 objects");
    let s = spec(
        vec![],
        (0..=MAX_SYNC_SELECTORS)
            .map(|_| SyncSelector::default())
            .collect(),
    );
    assert_eq!(err(&s), "spec.selectors: at most 8 selectors");
}

#[test]
fn selectors_convert() {
    let s = spec(
        vec![],
        vec![
            SyncSelector {
                name_prefix: Some("web-".into()),
                tags: [("app".to_string(), "web".to_string())].into(),
                key_naming: KeyNaming::EnvVar,
                key_prefix: Some("APP_".into()),
                max_objects: Some(7),
            },
            SyncSelector::default(),
        ],
    );
    let p = plan("s", &s).unwrap();
    assert_eq!(
        p.selectors[0],
        Selector {
            name_prefix: Some("web-".into()),
            tags: [("app".to_string(), "web".to_string())].into(),
            key_naming: KeyNaming::EnvVar,
            key_prefix: Some("APP_".into()),
            max_objects: 7,
        }
    );
    assert_eq!(p.selectors[1].max_objects, DEFAULT_MAX_SELECTED as usize);

    let bad = |s: SyncSelector| err(&spec(vec![], vec![SyncSelector::default(), s]));
    assert!(
        bad(SyncSelector {
            max_objects: Some(0),
            ..Default::default()
        })
        .starts_with("spec.selectors[1].maxObjects: 0 is not between 1 and 500")
    );
    assert!(
        bad(SyncSelector {
            max_objects: Some(501),
            ..Default::default()
        })
        .starts_with("spec.selectors[1].maxObjects: 501")
    );
    assert!(
        bad(SyncSelector {
            key_prefix: Some("A B".into()),
            ..Default::default()
        })
        .starts_with("spec.selectors[1].keyPrefix: 'A B' is not a Secret key")
    );
    assert!(
        bad(SyncSelector {
            name_prefix: Some("we b".into()),
            ..Default::default()
        })
        .starts_with("spec.selectors[1].namePrefix")
    );
}

#[test]
fn expand_adds_selected_secrets_after_the_objects() {
    let s = spec(
        vec![aliased("db-password", "password")],
        vec![SyncSelector {
            key_prefix: Some("WEB_".into()),
            ..sel(Some("web-"), KeyNaming::EnvVar)
        }],
    );
    let p = plan("s", &s).unwrap();
    let listing = [
        item("web-api-key", &[]),
        item("web-token", &[]),
        item("db-password", &[]),
    ];
    let all = expand(&p, Some(&listing)).unwrap();
    let got: Vec<_> = all
        .iter()
        .map(|o| (o.key.as_str(), o.spec.name.as_str(), o.origin.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("password", "db-password", Origin::Object(0)),
            ("WEB_WEB_API_KEY", "web-api-key", Origin::Selector(0)),
            ("WEB_WEB_TOKEN", "web-token", Origin::Selector(0)),
        ]
    );
    let selected = &all[1].spec;
    assert_eq!(selected.kind, ObjectType::Secret);
    assert_eq!(selected.version, None);
    assert_eq!(selected.alias.as_deref(), Some("WEB_WEB_API_KEY"));
    assert_eq!(
        all[1].describe(),
        "spec.selectors[0] (secret 'web-api-key')"
    );
    // Without selectors no listing is needed.
    let p = plan("s", &spec(vec![obj("a")], vec![])).unwrap();
    assert_eq!(expand(&p, None).unwrap().len(), 1);
    let p = plan("s", &spec(vec![], vec![SyncSelector::default()])).unwrap();
    assert_eq!(expand(&p, None).unwrap_err(), PlanError::ListingMissing);
}

#[test]
fn expand_collisions_name_both_entries() {
    // An explicit object and a selected secret on one key.
    let s = spec(
        vec![obj("web-db")],
        vec![sel(Some("web-"), KeyNaming::Name)],
    );
    let p = plan("s", &s).unwrap();
    let e = expand(&p, Some(&[item("web-db", &[])])).unwrap_err();
    assert_eq!(
        e,
        PlanError::DuplicateKey {
            key: "web-db".into(),
            first: "spec.objects[0] (secret 'web-db')".into(),
            second: "spec.selectors[0] (secret 'web-db')".into(),
        }
    );
    // Two selectors putting different secrets on one key.
    let s = spec(
        vec![],
        vec![
            sel(Some("a-"), KeyNaming::StripPrefix),
            sel(Some("b-"), KeyNaming::StripPrefix),
        ],
    );
    let p = plan("s", &s).unwrap();
    let e = expand(&p, Some(&[item("a-token", &[]), item("b-token", &[])])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Secret key 'token' is given by both spec.selectors[0] (secret 'a-token') and spec.selectors[1] (secret 'b-token'); give one an objectAlias (or a keyPrefix to the selector)"
    );
    // One secret taken by two selectors under one key is the same content: taken once.
    let s = spec(
        vec![],
        vec![
            sel(Some("web-"), KeyNaming::Name),
            SyncSelector {
                tags: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            },
        ],
    );
    let p = plan("s", &s).unwrap();
    let all = expand(&p, Some(&[item("web-db", &[("app", "web")])])).unwrap();
    assert_eq!(all.len(), 1);
}

#[test]
fn expand_is_all_or_nothing() {
    // One selector over its own bound.
    let s = spec(
        vec![],
        vec![SyncSelector {
            max_objects: Some(2),
            ..sel(Some("s-"), KeyNaming::Name)
        }],
    );
    let p = plan("s", &s).unwrap();
    let listing: Vec<SecretItem> = (0..3).map(|i| item(&format!("s-{i}"), &[])).collect();
    let e = expand(&p, Some(&listing)).unwrap_err();
    assert_eq!(e.reason(), "TooManyObjects");
    assert!(
        e.to_string()
            .starts_with("spec.selectors[0]: the selector of prefix 's-' matches 3 secrets"),
        "{e}"
    );
    // All selectors together over the total.
    let s = spec(
        vec![obj("x")],
        vec![
            SyncSelector {
                max_objects: Some(500),
                ..sel(Some("a-"), KeyNaming::Name)
            },
            SyncSelector {
                max_objects: Some(500),
                ..sel(Some("b-"), KeyNaming::Name)
            },
        ],
    );
    let p = plan("s", &s).unwrap();
    let listing: Vec<SecretItem> = (0..300)
        .flat_map(|i| [item(&format!("a-{i}"), &[]), item(&format!("b-{i}"), &[])])
        .collect();
    let e = expand(&p, Some(&listing)).unwrap_err();
    assert_eq!(
        e,
        PlanError::TooMany {
            count: 601,
            max: MAX_SYNC_TOTAL
        }
    );
    assert_eq!(e.reason(), "TooManyObjects");
    // Exactly at the bound is fine.
    let listing: Vec<SecretItem> = (0..499).map(|i| item(&format!("a-{i}"), &[])).collect();
    assert_eq!(expand(&p, Some(&listing)).unwrap().len(), MAX_SYNC_TOTAL);
}

#[test]
fn a_selected_name_that_strips_to_nothing_is_an_error() {
    let s = spec(vec![], vec![sel(Some("web"), KeyNaming::StripPrefix)]);
    let p = plan("s", &s).unwrap();
    let e = expand(&p, Some(&[item("web", &[])])).unwrap_err();
    assert_eq!(e.reason(), "InvalidSpec");
    assert!(e.to_string().starts_with("spec.selectors[0]: "), "{e}");
}
