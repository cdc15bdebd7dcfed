use super::*;
use serde_json::json;

fn user(id: &str) -> Principal {
    Principal {
        identity: Identity::User(id.into()),
        groups: vec![],
        application: None,
        issuer: "i".into(),
    }
}

fn doc(v: serde_json::Value) -> CompiledPolicy {
    let d: PolicyDocument = serde_json::from_value(v).unwrap();
    d.compile().unwrap()
}

fn secret_get(name: &str) -> Requirement<'_> {
    Requirement {
        permission: Permission::Secret(SecretPermission::Get),
        alternative: None,
        action: DataAction::SecretsGetSecret,
        object: Some((ObjectKind::Secrets, name)),
    }
}

fn secret_list() -> Requirement<'static> {
    Requirement {
        permission: Permission::Secret(SecretPermission::List),
        alternative: None,
        action: DataAction::SecretsReadMetadata,
        object: None,
    }
}

#[test]
fn the_empty_policy_denies_everything() {
    let p = PolicyDocument::empty().compile().unwrap();
    assert!(!p.allows(&user("a"), &secret_get("x")));
    assert!(!p.allows(&user("a"), &secret_list()));
}

#[test]
fn access_policy_entries_grant_exactly_their_permissions() {
    let p = doc(
        json!({"generation": 1, "authorization": "AccessPolicy", "accessPolicies": [
            {"principal": {"kind": "User", "name": "alice"}, "permissions": {"secrets": ["Get", "list"]}}
        ]}),
    );
    assert!(p.allows(&user("alice"), &secret_get("x")));
    assert!(p.allows(&user("alice"), &secret_list()));
    assert!(!p.allows(&user("bob"), &secret_get("x")));
    let set = Requirement {
        permission: Permission::Secret(SecretPermission::Set),
        alternative: None,
        action: DataAction::SecretsSetSecret,
        object: Some((ObjectKind::Secrets, "x")),
    };
    assert!(!p.allows(&user("alice"), &set));
    // Role assignments do nothing in AccessPolicy mode.
    let p = doc(
        json!({"generation": 1, "authorization": "AccessPolicy", "roleAssignments": [
            {"principal": {"kind": "User", "name": "alice"}, "role": "Key Vault Administrator"}
        ]}),
    );
    assert!(!p.allows(&user("alice"), &secret_get("x")));
}

#[test]
fn rbac_scopes_and_groups() {
    let p = doc(json!({"generation": 1, "roleAssignments": [
        {"principal": {"kind": "Group", "name": "readers"}, "role": "Key Vault Secrets User", "scope": "/secrets/db"},
        {"principal": {"kind": "User", "name": "carol"}, "role": "Key Vault Reader"}
    ]}));
    let mut member = user("dave");
    member.groups = vec!["readers".into()];
    assert!(p.allows(&member, &secret_get("db")));
    assert!(p.allows(&member, &secret_get("DB")));
    assert!(!p.allows(&member, &secret_get("other")));
    // An object-scope grant never allows a listing.
    assert!(!p.allows(&member, &secret_list()));
    assert!(!p.allows(&user("dave"), &secret_get("db")));
    // A Reader lists but never reads a value.
    assert!(p.allows(&user("carol"), &secret_list()));
    assert!(!p.allows(&user("carol"), &secret_get("db")));
    // Access policies do nothing in RBAC mode.
    let p = doc(json!({"generation": 1, "accessPolicies": [
        {"principal": {"kind": "User", "name": "alice"}, "permissions": {"secrets": ["get"]}}
    ]}));
    assert!(!p.allows(&user("alice"), &secret_get("x")));
}

#[test]
fn principals_of_every_kind_match_only_themselves() {
    let p = doc(json!({"generation": 1, "roleAssignments": [
        {"principal": {"kind": "ServiceAccount", "namespace": "team-a", "name": "web"}, "role": "Key Vault Secrets User"},
        {"principal": {"kind": "Application", "name": "app-1"}, "role": "Key Vault Secrets User"}
    ]}));
    let sa = |ns: &str, name: &str| Principal {
        identity: Identity::ServiceAccount {
            namespace: ns.into(),
            name: name.into(),
        },
        groups: vec![],
        application: None,
        issuer: "i".into(),
    };
    assert!(p.allows(&sa("team-a", "web"), &secret_get("x")));
    assert!(!p.allows(&sa("team-b", "web"), &secret_get("x")));
    assert!(!p.allows(&sa("team-a", "api"), &secret_get("x")));
    let app = Principal {
        identity: Identity::Application("app-1".into()),
        groups: vec![],
        application: Some("app-1".into()),
        issuer: "i".into(),
    };
    assert!(p.allows(&app, &secret_get("x")));
    // A user named like the application, or a user calling through it, is not it.
    assert!(!p.allows(&user("app-1"), &secret_get("x")));
    let mut via = user("eve");
    via.application = Some("app-1".into());
    assert!(!p.allows(&via, &secret_get("x")));
}

#[test]
fn compound_identity_needs_both_user_and_application() {
    for mode in ["AccessPolicy", "RBAC"] {
        let p = doc(json!({"generation": 1, "authorization": mode,
            "accessPolicies": [{"principal": {"kind": "User", "name": "alice"}, "application": "portal", "permissions": {"secrets": ["get"]}}],
            "roleAssignments": [{"principal": {"kind": "User", "name": "alice"}, "application": "portal", "role": "Key Vault Secrets User"}]
        }));
        let mut through_portal = user("alice");
        through_portal.application = Some("portal".into());
        let mut through_cli = user("alice");
        through_cli.application = Some("cli".into());
        assert!(p.allows(&through_portal, &secret_get("x")), "{mode}");
        assert!(!p.allows(&through_cli, &secret_get("x")), "{mode}");
        assert!(!p.allows(&user("alice"), &secret_get("x")), "{mode}");
        let portal_alone = Principal {
            identity: Identity::Application("portal".into()),
            groups: vec![],
            application: Some("portal".into()),
            issuer: "i".into(),
        };
        assert!(!p.allows(&portal_alone, &secret_get("x")), "{mode}");
    }
}

#[test]
fn invalid_documents_are_refused_with_a_reason() {
    let bad = [
        json!({"generation": 1, "roleAssignments": [{"principal": {"kind": "User", "name": "a"}, "role": "Owner"}]}),
        json!({"generation": 1, "accessPolicies": [{"principal": {"kind": "User", "name": "a"}, "permissions": {"secrets": ["sign"]}}]}),
        json!({"generation": 1, "roleAssignments": [{"principal": {"kind": "ServiceAccount", "name": "a"}, "role": "Key Vault Reader"}]}),
        json!({"generation": 1, "roleAssignments": [{"principal": {"kind": "User", "name": "a", "namespace": "x"}, "role": "Key Vault Reader"}]}),
        json!({"generation": 1, "roleAssignments": [{"principal": {"kind": "User", "name": "a"}, "role": "Key Vault Reader", "scope": "/vaults/x"}]}),
        json!({"generation": 1, "roleAssignments": [{"principal": {"kind": "User", "name": "a"}, "role": "Key Vault Reader", "scope": "/secrets/a/b"}]}),
        json!({"generation": 1, "network": {"defaultAction": "Deny", "ipRules": ["300.1.1.1"]}}),
        json!({"generation": 1, "softDelete": {"retentionDays": 3}}),
        json!({"generation": 1, "tls": {"minVersion": "1.1"}}),
        json!({"generation": 1, "unknownField": true}),
        json!({"generation": 1, "throttling": {"enabled": true, "requests": 0}}),
        json!({"generation": 1, "identity": {"issuers": []}}),
    ];
    for b in bad {
        let parsed: Result<PolicyDocument, _> = serde_json::from_value(b.clone());
        let compiled = parsed
            .map_err(|e| e.to_string())
            .and_then(|d| d.compile().map_err(|e| e.to_string()));
        assert!(compiled.is_err(), "{b}");
    }
    let many: Vec<serde_json::Value> = (0..1025)
        .map(|i| json!({"principal": {"kind": "User", "name": format!("u{i}")}, "permissions": {}}))
        .collect();
    let d: PolicyDocument =
        serde_json::from_value(json!({"generation": 1, "accessPolicies": many})).unwrap();
    assert!(d.compile().unwrap_err().0.contains("1024"));
    let ok: Vec<serde_json::Value> = (0..1024)
        .map(|i| json!({"principal": {"kind": "User", "name": format!("u{i}")}, "permissions": {}}))
        .collect();
    let d: PolicyDocument =
        serde_json::from_value(json!({"generation": 1, "accessPolicies": ok})).unwrap();
    assert!(d.compile().is_ok());
}

#[test]
fn network_rules_and_forwarded_addresses() {
    let p = doc(json!({"generation": 1, "network": {"defaultAction": "Deny",
        "ipRules": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"], "trustedProxies": ["127.0.0.1/32"]}}));
    let n = &p.network;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(n.allows(ip("10.1.2.3")));
    assert!(n.allows(ip("192.168.1.7")));
    assert!(!n.allows(ip("192.168.1.8")));
    assert!(n.allows(ip("2001:db8::1")));
    assert!(n.allows(ip("::ffff:10.0.0.1")));
    assert!(!n.allows(ip("127.0.0.1")));
    // Forwarded-for is believed only from a trusted proxy.
    assert_eq!(
        n.client_address(ip("127.0.0.1"), Some("10.9.9.9")),
        ip("10.9.9.9")
    );
    assert_eq!(
        n.client_address(ip("127.0.0.1"), Some("1.1.1.1, 10.9.9.9, 127.0.0.1")),
        ip("10.9.9.9")
    );
    assert_eq!(
        n.client_address(ip("172.16.0.1"), Some("10.9.9.9")),
        ip("172.16.0.1")
    );
    let open = PolicyDocument::empty().compile().unwrap();
    assert!(open.network.allows(ip("8.8.8.8")));
}

#[test]
fn the_example_policy_documents_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read(&path).unwrap();
        let doc: PolicyDocument =
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        doc.compile()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 2);
}
