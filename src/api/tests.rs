//! CRD tests: the committed `crds/` match the code; good and bad objects go through the
//! generated schemas (structure, enums, ranges, patterns, and every CEL rule — transition
//! rules included — evaluated offline with kube-cel, after the schema's defaults are applied
//! as the API server would).

use super::*;
use crate::policy::{BuiltInRole, CertificatePermission, KeyPermission, SecretPermission};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use std::path::PathBuf;

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds")
}

#[test]
fn crds_dir_is_current() {
    // Regenerate with: KVAULT_UPDATE_CRDS=1 cargo test --lib api::tests::crds_dir_is_current
    let update = std::env::var_os("KVAULT_UPDATE_CRDS").is_some();
    for crd in crds() {
        let path = crds_dir().join(crd_file_name(&crd));
        let want = crd_yaml(&crd).unwrap();
        if update {
            std::fs::create_dir_all(crds_dir()).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: regenerate with `KVAULT_UPDATE_CRDS=1 cargo test --lib api::tests::crds_dir_is_current`",
            path.display()
        );
    }
    // Nothing else lives there.
    let mut files: Vec<String> = std::fs::read_dir(crds_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            "accesspolicies.kvault.dev.yaml",
            "roleassignments.kvault.dev.yaml",
            "secretsyncs.kvault.dev.yaml",
            "vaults.kvault.dev.yaml"
        ]
    );
}

#[test]
fn the_yaml_stream_parses_back_into_the_same_crds() {
    let text = all_crds_yaml().unwrap();
    let back: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(back, crds());
}

#[test]
fn names_scope_subresources_and_columns() {
    let want = [
        ("vaults.kvault.dev", "Vault", "kv"),
        ("accesspolicies.kvault.dev", "AccessPolicy", "kvap"),
        ("roleassignments.kvault.dev", "RoleAssignment", "kvra"),
    ];
    for (crd, (name, kind, short)) in crds().iter().zip(want) {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["kvault".to_string()]));
        assert_eq!(crd.spec.versions.len(), 1);
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, VERSION);
        assert!(v.served && v.storage);
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols: Vec<&str> = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert!(cols.contains(&"Age"), "{cols:?}");
        if kind == "Vault" {
            assert!(cols.contains(&"Ready") && cols.contains(&"URL"), "{cols:?}");
        } else {
            assert!(
                cols.contains(&"Vault") && cols.contains(&"Applied"),
                "{cols:?}"
            );
        }
    }
}

// --- schema checking -------------------------------------------------------------------

fn schema_for(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// What the API server checks structurally (a subset of OpenAPI v3 as CRDs use it).
fn structural(s: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if v.is_null() {
        if s.get("nullable") != Some(&Value::Bool(true)) {
            errs.push(format!("{path}: must not be null"));
        }
        return;
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array)
        && !values.contains(v)
    {
        errs.push(format!("{path}: Unsupported value: {v}"));
    }
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(v.is_string() || v.is_i64()) {
            errs.push(format!("{path}: must be an integer or a string"));
        }
        return;
    }
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                return errs.push(format!("{path}: must be an object"));
            };
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !obj.contains_key(r) {
                    errs.push(format!("{path}.{r}: Required value"));
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, child) in obj {
                let p = format!("{path}.{k}");
                match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                    (Some(cs), _) => structural(cs, child, &p, errs),
                    (None, Some(a)) if a.is_object() => structural(a, child, &p, errs),
                    // Unknown fields are pruned by the API server.
                    _ => {}
                }
            }
        }
        Some("array") => {
            let Some(items) = v.as_array() else {
                return errs.push(format!("{path}: must be an array"));
            };
            if let Some(max) = num("maxItems")
                && items.len() as f64 > max
            {
                errs.push(format!("{path}: Too many: {} > {max}", items.len()));
            }
            if s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
                for (i, a) in items.iter().enumerate() {
                    if items[..i].contains(a) {
                        errs.push(format!("{path}[{i}]: Duplicate value: {a}"));
                    }
                }
            }
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    structural(is, it, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Some("string") => {
            let Some(text) = v.as_str() else {
                return errs.push(format!("{path}: must be a string"));
            };
            let n = text.chars().count() as f64;
            if num("minLength").is_some_and(|m| n < m) {
                errs.push(format!(
                    "{path}: should be at least {} chars long",
                    num("minLength").unwrap()
                ));
            }
            if num("maxLength").is_some_and(|m| n > m) {
                errs.push(format!("{path}: Too long"));
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str)
                && !regex::Regex::new(p).unwrap().is_match(text)
            {
                errs.push(format!("{path}: should match '{p}'"));
            }
        }
        Some("integer") => {
            let Some(i) = v.as_i64() else {
                return errs.push(format!("{path}: must be an integer"));
            };
            if num("minimum").is_some_and(|m| (i as f64) < m) {
                errs.push(format!(
                    "{path}: should be greater than or equal to {}",
                    num("minimum").unwrap()
                ));
            }
            if num("maximum").is_some_and(|m| (i as f64) > m) {
                errs.push(format!(
                    "{path}: should be less than or equal to {}",
                    num("maximum").unwrap()
                ));
            }
        }
        Some("boolean") if !v.is_boolean() => errs.push(format!("{path}: must be a boolean")),
        _ => {}
    }
}

/// Admission as the API server does it: defaults, then structure, then CEL rules (with the
/// old object for transition rules on update).
fn admit(kind: &str, obj: &Value, old: Option<&Value>) -> Result<Value, Vec<String>> {
    let schema = schema_for(kind);
    let defaulted = kube_cel::apply_defaults(&schema, obj);
    let mut errs = vec![];
    structural(&schema, &defaulted, "", &mut errs);
    if let Err(e) = kube_cel::Validator::new().validate(&schema, obj, old) {
        errs.extend(
            e.into_vec()
                .into_iter()
                .map(|e| format!("{}: {} ({:?})", e.field_path, e.message, e.kind)),
        );
    }
    if errs.is_empty() {
        Ok(defaulted)
    } else {
        Err(errs)
    }
}

fn refused(kind: &str, obj: Value, needle: &str) {
    match admit(kind, &obj, None) {
        Ok(_) => panic!("{kind} {obj} was admitted; expected a refusal mentioning '{needle}'"),
        Err(errs) => assert!(
            errs.iter().any(|e| e.contains(needle)),
            "{kind}: expected '{needle}' among {errs:?}"
        ),
    }
}

fn vault(spec: Value) -> Value {
    json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "Vault",
           "metadata": {"name": "payments", "namespace": "team-a"}, "spec": spec})
}

fn access_policy(spec: Value) -> Value {
    json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "AccessPolicy",
           "metadata": {"name": "p", "namespace": "team-a"}, "spec": spec})
}

fn role_assignment(spec: Value) -> Value {
    json!({"apiVersion": "kvault.dev/v1alpha1", "kind": "RoleAssignment",
           "metadata": {"name": "r", "namespace": "team-a"}, "spec": spec})
}

#[test]
fn an_empty_vault_spec_defaults_to_the_rust_defaults() {
    let admitted = admit("Vault", &vault(json!({})), None).unwrap();
    let v: Vault = serde_json::from_value(admitted.clone()).unwrap();
    assert_eq!(v.spec, VaultSpec::default());
    assert_eq!(admitted["spec"]["authorization"], "RBAC");
    assert_eq!(admitted["spec"]["softDelete"]["retentionDays"], 90);
    assert_eq!(admitted["spec"]["softDelete"]["purgeProtection"], false);
    assert_eq!(admitted["spec"]["tls"]["minVersion"], "1.2");
    assert_eq!(admitted["spec"]["replicas"], 1);
    assert_eq!(admitted["spec"]["storage"]["embedded"]["size"], "1Gi");
    assert_eq!(admitted["spec"]["network"]["defaultAction"], "Allow");
    assert_eq!(admitted["spec"]["throttling"]["requests"], 4000);
    // The Rust defaults serialize to what the schema defaults to.
    assert_eq!(
        serde_json::to_value(VaultSpec::default()).unwrap(),
        admitted["spec"]
    );
}

#[test]
fn every_example_is_admitted_and_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/cluster");
    let mut seen = 0;
    for mode in ["rbac", "access-policy", "postgres"] {
        for entry in std::fs::read_dir(dir.join(mode)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
            for doc in docs {
                let kind = doc["kind"].as_str().unwrap().to_string();
                if kind == "Secret" {
                    continue; // a Kubernetes kind: tests/chart validates it
                }
                let admitted = admit(&kind, &doc, None)
                    .unwrap_or_else(|e| panic!("{}: {kind} refused: {e:?}", path.display()));
                match kind.as_str() {
                    "Vault" => drop(serde_json::from_value::<Vault>(admitted).unwrap()),
                    "AccessPolicy" => {
                        drop(serde_json::from_value::<AccessPolicy>(admitted).unwrap())
                    }
                    "RoleAssignment" => {
                        drop(serde_json::from_value::<RoleAssignment>(admitted).unwrap())
                    }
                    other => panic!("unexpected kind {other}"),
                }
                seen += 1;
            }
        }
    }
    assert!(seen >= 8, "{seen} example objects");
}

#[test]
fn bad_vaults_are_refused_with_a_reason() {
    refused(
        "Vault",
        vault(json!({"authorization": "Rbac"})),
        "Unsupported value",
    );
    refused(
        "Vault",
        vault(json!({"softDelete": {"retentionDays": 5}})),
        "greater than or equal to 7",
    );
    refused(
        "Vault",
        vault(json!({"softDelete": {"retentionDays": 91}})),
        "less than or equal to 90",
    );
    refused(
        "Vault",
        vault(json!({"createMode": "Restore"})),
        "Unsupported value",
    );
    refused(
        "Vault",
        vault(json!({"tls": {"minVersion": "1.1"}})),
        "Unsupported value",
    );
    refused(
        "Vault",
        vault(json!({"replicas": 2})),
        "embedded storage serves one replica",
    );
    refused(
        "Vault",
        vault(json!({"replicas": -1})),
        "greater than or equal to 0",
    );
    refused(
        "Vault",
        vault(json!({"network": {"ipRules": ["10.0.0.0/8", "not-an-address"]}})),
        "must be an IP address or CIDR",
    );
    refused(
        "Vault",
        vault(json!({"network": {"trustedProxies": ["10.0.0.300"]}})),
        "must be an IP address or CIDR",
    );
    refused(
        "Vault",
        vault(json!({"network": {"defaultAction": "Block"}})),
        "Unsupported value",
    );
    refused(
        "Vault",
        vault(json!({"network": {"allowedPeers": [{}]}})),
        "a peer needs",
    );
    refused(
        "Vault",
        vault(json!({"network": {"publicNetworkAccess": "Yes"}})),
        "Unsupported value",
    );
    refused(
        "Vault",
        vault(json!({"identity": {"issuers": [{"issuer": "http://dex.example.com"}]}})),
        "should match",
    );
    refused(
        "Vault",
        vault(
            json!({"identity": {"issuers": [{"issuer": "https://dex", "jwksUri": "http://x/keys"}]}}),
        ),
        "should match",
    );
    refused(
        "Vault",
        vault(json!({"throttling": {"requests": 0}})),
        "greater than or equal to 1",
    );
    refused(
        "Vault",
        vault(json!({"audit": {"destinations": ["Stdout", "Stdout"]}})),
        "Duplicate",
    );
    refused(
        "Vault",
        vault(json!({"audit": {"destinations": ["Syslog"]}})),
        "Unsupported value",
    );
}

#[test]
fn good_vault_variants_are_admitted() {
    for spec in [
        json!({"authorization": "AccessPolicy"}),
        json!({"replicas": 0}),
        json!({"softDelete": {"retentionDays": 7, "purgeProtection": true}}),
        json!({"network": {"defaultAction": "Deny", "ipRules": ["192.0.2.10", "10.0.0.0/8", "2001:db8::/32"]}}),
        json!({"network": {"allowedPeers": [{"namespaceSelector": {}}]}}),
        json!({"audit": {"destinations": []}}),
        json!({"storage": {"embedded": {"size": "10Gi", "storageClassName": "fast"}}}),
        json!({"replicas": 3, "storage": {"postgres": {"secretName": "payments-db"}}}),
        json!({"storage": {"postgres": {"secretName": "db", "caFromSecret": true, "schema": "payments", "maxConnections": 32}}}),
    ] {
        admit("Vault", &vault(spec.clone()), None)
            .unwrap_or_else(|e| panic!("{spec} refused: {e:?}"));
    }
}

#[test]
fn purge_protection_can_be_turned_on_and_never_off() {
    let off = vault(json!({"softDelete": {"purgeProtection": false}}));
    let on = vault(json!({"softDelete": {"purgeProtection": true}}));
    let absent = vault(json!({}));
    // On at creation, or turned on later.
    assert!(admit("Vault", &on, None).is_ok());
    assert!(admit("Vault", &on, Some(&off)).is_ok());
    assert!(admit("Vault", &on, Some(&absent)).is_ok());
    assert!(admit("Vault", &on, Some(&on)).is_ok());
    assert!(admit("Vault", &off, Some(&off)).is_ok());
    // Never off again: explicitly, or by dropping the field or the whole block (defaults
    // make that `false`).
    for new in [
        &off,
        &absent,
        &vault(json!({"softDelete": {"retentionDays": 30}})),
    ] {
        let errs = admit("Vault", new, Some(&on)).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("cannot be turned off")),
            "{errs:?}"
        );
    }
}

#[test]
fn postgres_storage_is_checked_by_the_schema() {
    refused(
        "Vault",
        vault(json!({"storage": {"embedded": {}, "postgres": {"secretName": "db"}}})),
        "exactly one of embedded and postgres",
    );
    refused(
        "Vault",
        vault(json!({"storage": {}})),
        "exactly one of embedded and postgres",
    );
    refused(
        "Vault",
        vault(json!({"storage": {"postgres": {"secretName": "db", "schema": "Bad-Name"}}})),
        "should match",
    );
    refused(
        "Vault",
        vault(json!({"storage": {"postgres": {"secretName": "db", "maxConnections": 1}}})),
        "greater than or equal to 2",
    );
    refused(
        "Vault",
        vault(json!({"storage": {"postgres": {}}})),
        "secretName",
    );
    refused(
        "Vault",
        vault(
            json!({"storage": {"postgres": {"secretName": "db"}}, "audit": {"destinations": ["File"]}}),
        ),
        "needs embedded storage",
    );
    // A vault's data does not move between backends.
    let embedded = vault(json!({}));
    let pg = vault(json!({"storage": {"postgres": {"secretName": "db"}}}));
    assert!(admit("Vault", &pg, Some(&pg)).is_ok());
    for (new, old) in [(&pg, &embedded), (&embedded, &pg)] {
        let errs = admit("Vault", new, Some(old)).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("cannot move between")),
            "{errs:?}"
        );
    }
}

#[test]
fn the_storage_class_cannot_change() {
    let fast = vault(json!({"storage": {"embedded": {"storageClassName": "fast"}}}));
    let slow = vault(json!({"storage": {"embedded": {"storageClassName": "slow"}}}));
    assert!(admit("Vault", &fast, Some(&fast)).is_ok());
    let errs = admit("Vault", &slow, Some(&fast)).unwrap_err();
    assert!(errs.iter().any(|e| e.contains("cannot change")), "{errs:?}");
}

#[test]
fn bad_access_policies_are_refused_with_a_reason() {
    let sa = json!({"kind": "ServiceAccount", "name": "web"});
    let ok = json!({"vaultRef": {"name": "payments"}, "principal": sa, "permissions": {"secrets": ["get"]}});
    assert!(admit("AccessPolicy", &access_policy(ok), None).is_ok());
    refused(
        "AccessPolicy",
        access_policy(json!({"principal": sa, "permissions": {"secrets": ["get"]}})),
        ".spec.vaultRef: Required value",
    );
    refused(
        "AccessPolicy",
        access_policy(
            json!({"vaultRef": {"name": "payments"}, "principal": sa, "permissions": {}}),
        ),
        "grant at least one permission",
    );
    refused(
        "AccessPolicy",
        access_policy(
            json!({"vaultRef": {"name": "payments"}, "principal": sa, "permissions": {"secrets": ["read"]}}),
        ),
        "Unsupported value",
    );
    refused(
        "AccessPolicy",
        access_policy(
            json!({"vaultRef": {"name": "payments"}, "principal": sa, "permissions": {"keys": ["set"]}}),
        ),
        "Unsupported value",
    );
    refused(
        "AccessPolicy",
        access_policy(
            json!({"vaultRef": {"name": "payments"}, "principal": sa, "permissions": {"secrets": ["get", "get"]}}),
        ),
        "Duplicate",
    );
    refused(
        "AccessPolicy",
        access_policy(json!({"vaultRef": {"name": "payments"},
            "principal": {"kind": "User", "name": "alice", "namespace": "team-a"},
            "permissions": {"secrets": ["get"]}})),
        "only a ServiceAccount principal has a namespace",
    );
    refused(
        "AccessPolicy",
        access_policy(json!({"vaultRef": {"name": "payments"},
            "principal": {"kind": "ServiceAccount", "name": "Web_App"},
            "permissions": {"secrets": ["get"]}})),
        "DNS subdomain",
    );
    refused(
        "AccessPolicy",
        access_policy(json!({"vaultRef": {"name": "payments"},
            "principal": {"kind": "Robot", "name": "r2"},
            "permissions": {"secrets": ["get"]}})),
        "Unsupported value",
    );
    refused(
        "AccessPolicy",
        access_policy(
            json!({"vaultRef": {"name": "Payments"}, "principal": sa, "permissions": {"secrets": ["get"]}}),
        ),
        "should match",
    );
}

#[test]
fn bad_role_assignments_are_refused_with_a_reason() {
    let sa = json!({"kind": "ServiceAccount", "name": "web"});
    let base = |role: &str, scope: Option<&str>| {
        let mut s = json!({"vaultRef": {"name": "payments"}, "principal": sa, "role": role});
        if let Some(scope) = scope {
            s["scope"] = json!(scope);
        }
        role_assignment(s)
    };
    for role in BuiltInRole::ALL {
        assert!(admit("RoleAssignment", &base(role.name(), None), None).is_ok());
        assert!(admit("RoleAssignment", &base(role.id(), None), None).is_ok());
    }
    for scope in [
        "/",
        "/secrets/db-password",
        "/keys/k1",
        "/certificates/Web-Cert",
    ] {
        assert!(
            admit(
                "RoleAssignment",
                &base("Key Vault Reader", Some(scope)),
                None
            )
            .is_ok(),
            "{scope}"
        );
    }
    refused("RoleAssignment", base("Owner", None), "Unsupported value");
    refused(
        "RoleAssignment",
        base("key vault reader", None),
        "Unsupported value",
    );
    for scope in [
        "",
        "/secrets/",
        "/vaults/x",
        "secrets/x",
        "/secrets/a/b",
        "/secrets/a_b",
    ] {
        refused(
            "RoleAssignment",
            base("Key Vault Reader", Some(scope)),
            "should match",
        );
    }
    refused(
        "RoleAssignment",
        role_assignment(json!({"vaultRef": {"name": "payments"}, "principal": sa})),
        ".spec.role: Required value",
    );
}

#[test]
fn schema_enums_are_exactly_what_the_policy_parses() {
    let ap = schema_for("AccessPolicy");
    let perms = &ap["properties"]["spec"]["properties"]["permissions"]["properties"];
    let names = |family: &str| -> Vec<String> {
        perms[family]["items"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    for n in names("keys") {
        assert_eq!(
            KeyPermission::parse(&n).map(|p| p.as_str()),
            Some(n.as_str())
        );
    }
    for n in names("secrets") {
        assert_eq!(
            SecretPermission::parse(&n).map(|p| p.as_str()),
            Some(n.as_str())
        );
    }
    for n in names("certificates") {
        assert_eq!(
            CertificatePermission::parse(&n).map(|p| p.as_str()),
            Some(n.as_str())
        );
    }
    assert_eq!(names("keys").len(), KeyPermission::ALL.len());
    assert_eq!(names("secrets").len(), SecretPermission::ALL.len());
    assert_eq!(
        names("certificates").len(),
        CertificatePermission::ALL.len()
    );
    let ra = schema_for("RoleAssignment");
    let roles = ra["properties"]["spec"]["properties"]["role"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(roles.len(), 2 * BuiltInRole::ALL.len());
    for r in roles {
        assert!(BuiltInRole::parse(r.as_str().unwrap()).is_some(), "{r}");
    }
}

#[test]
fn every_cel_rule_compiles() {
    for kind in ["Vault", "AccessPolicy", "RoleAssignment"] {
        let compiled = kube_cel::compile_schema(&schema_for(kind));
        assert!(
            !compiled.has_errors(),
            "{kind}: {:?}",
            compiled.compilation_errors()
        );
    }
}

#[test]
fn the_events_example_vault_is_admitted() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/events/vault.yaml");
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vault_doc = docs.iter().find(|d| d["kind"] == "Vault").unwrap();
    let admitted = admit("Vault", vault_doc, None).unwrap();
    let v: Vault = serde_json::from_value(admitted).unwrap();
    let n = v.spec.notifications.unwrap();
    assert_eq!(n.subscriptions.len(), 2);
    // Unknown event types and non-https endpoints are refused by the schema.
    let mut bad = vault_doc.clone();
    bad["spec"]["notifications"]["subscriptions"][0]["includedEventTypes"] =
        serde_json::json!(["Microsoft.KeyVault.SecretDeleted"]);
    assert!(admit("Vault", &bad, None).is_err());
    let mut bad = vault_doc.clone();
    bad["spec"]["notifications"]["subscriptions"][0]["endpoint"] =
        serde_json::json!("http://rotator.team-a.svc/events");
    assert!(admit("Vault", &bad, None).is_err());
}

#[test]
fn a_principal_may_name_its_issuer_unless_it_is_a_service_account() {
    let with = |principal: Value| {
        role_assignment(
            json!({"vaultRef": {"name": "payments"}, "role": "Key Vault Reader",
            "principal": principal}),
        )
    };
    for kind in ["User", "Group", "Application"] {
        let obj =
            with(json!({"kind": kind, "name": "dev-admin", "issuer": "https://dex.example.com"}));
        assert!(admit("RoleAssignment", &obj, None).is_ok(), "{kind}");
        let ap = access_policy(json!({"vaultRef": {"name": "payments"},
            "principal": {"kind": kind, "name": "dev-admin", "issuer": "https://dex.example.com"},
            "permissions": {"secrets": ["get"]}}));
        assert!(admit("AccessPolicy", &ap, None).is_ok(), "{kind}");
    }
    refused(
        "RoleAssignment",
        with(json!({"kind": "ServiceAccount", "name": "web", "issuer": "https://dex.example.com"})),
        "it names no issuer",
    );
    refused(
        "RoleAssignment",
        with(json!({"kind": "User", "name": "a", "issuer": ""})),
        "issuer",
    );
    // The field reaches the policy document's principal.
    let ra: RoleAssignment = serde_json::from_value(with(
        json!({"kind": "User", "name": "a", "issuer": "https://dex.example.com"}),
    ))
    .unwrap();
    assert_eq!(
        ra.spec.principal.issuer.as_deref(),
        Some("https://dex.example.com")
    );
}

#[test]
fn the_schema_limits_vault_names_as_the_operator_does() {
    assert_eq!(
        vault::MAX_VAULT_NAME,
        crate::operator::desired::MAX_VAULT_NAME
    );
    let root = schema_for("Vault");
    let rules = root["x-kubernetes-validations"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["rule"].as_str().unwrap().contains("self.metadata.name")),
        "{rules:?}"
    );
}

#[test]
fn no_format_the_api_server_does_not_know() {
    let text = all_crds_yaml().unwrap();
    assert!(!text.contains("format: uint"), "an unsigned format is left");
}

#[test]
fn storage_size_is_a_quantity_that_never_shrinks() {
    let size = |s: Value| vault(json!({"storage": {"embedded": {"size": s}}}));
    assert!(admit("Vault", &size(json!("2Gi")), None).is_ok());
    refused("Vault", size(json!("lots")), "positive quantity");
    let errs = admit("Vault", &size(json!("1Gi")), Some(&size(json!("2Gi")))).unwrap_err();
    assert!(errs.iter().any(|e| e.contains("cannot shrink")), "{errs:?}");
    assert!(admit("Vault", &size(json!("3Gi")), Some(&size(json!("2Gi")))).is_ok());
}

#[test]
fn recover_and_a_new_storage_class_are_refused_after_creation() {
    // Old objects as the API server stores them: defaulted.
    let plain = vault(json!({"createMode": "Default", "storage": {"embedded": {"size": "1Gi"}}}));
    let recover = vault(json!({"createMode": "Recover", "storage": {"embedded": {"size": "1Gi"}}}));
    let errs = admit("Vault", &recover, Some(&plain)).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("only applies when a Vault is created")),
        "{errs:?}"
    );
    assert!(admit("Vault", &recover, Some(&recover)).is_ok());
    let fast = vault(
        json!({"createMode": "Default", "storage": {"embedded": {"size": "1Gi", "storageClassName": "fast"}}}),
    );
    let errs = admit("Vault", &fast, Some(&plain)).unwrap_err();
    assert!(errs.iter().any(|e| e.contains("cannot change")), "{errs:?}");
}
