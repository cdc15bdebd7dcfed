use super::*;
use serde_json::json;

/// The one issuer every principal here comes from (as in single-issuer setups).
fn issuers() -> Vec<TrustedIssuer> {
    vec![TrustedIssuer::cluster("i")]
}

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
    d.compile(&issuers()).unwrap()
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
    let p = PolicyDocument::empty().compile(&issuers()).unwrap();
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
            .and_then(|d| d.compile(&issuers()).map_err(|e| e.to_string()));
        assert!(compiled.is_err(), "{b}");
    }
    let many: Vec<serde_json::Value> = (0..1025)
        .map(|i| json!({"principal": {"kind": "User", "name": format!("u{i}")}, "permissions": {}}))
        .collect();
    let d: PolicyDocument =
        serde_json::from_value(json!({"generation": 1, "accessPolicies": many})).unwrap();
    assert!(d.compile(&issuers()).unwrap_err().0.contains("1024"));
    let ok: Vec<serde_json::Value> = (0..1024)
        .map(|i| json!({"principal": {"kind": "User", "name": format!("u{i}")}, "permissions": {}}))
        .collect();
    let d: PolicyDocument =
        serde_json::from_value(json!({"generation": 1, "accessPolicies": ok})).unwrap();
    assert!(d.compile(&issuers()).is_ok());
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
    let open = PolicyDocument::empty().compile(&issuers()).unwrap();
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
        doc.compile(&issuers())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 2);
}

const CLUSTER: &str = "https://cluster.test";
const DEX: &str = "https://dex.test";
const KEYCLOAK: &str = "https://keycloak.test";

fn from(issuer: &str, identity: Identity, groups: &[&str]) -> Principal {
    Principal {
        identity,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        application: None,
        issuer: issuer.into(),
    }
}

fn compile_with(v: serde_json::Value, issuers: &[TrustedIssuer]) -> Result<CompiledPolicy, String> {
    let d: PolicyDocument = serde_json::from_value(v).unwrap();
    d.compile(issuers).map_err(|e| e.to_string())
}

#[test]
fn a_grant_matches_only_tokens_of_its_issuer() {
    let issuers = [
        TrustedIssuer::cluster(CLUSTER),
        TrustedIssuer::people(DEX),
        TrustedIssuer::people(KEYCLOAK),
    ];
    let p = compile_with(
        json!({"generation": 1, "roleAssignments": [
            {"principal": {"kind": "User", "name": "dev-admin", "issuer": DEX}, "role": "Key Vault Secrets User"},
            {"principal": {"kind": "Group", "name": "team-g", "issuer": DEX}, "role": "Key Vault Secrets User"},
            {"principal": {"kind": "Application", "name": "app-1", "issuer": KEYCLOAK}, "role": "Key Vault Secrets User"}
        ]}),
        &issuers,
    )
    .unwrap();
    let admin = |iss| from(iss, Identity::User("dev-admin".into()), &[]);
    let member = |iss| from(iss, Identity::User("someone".into()), &["team-g"]);
    let app = |iss| from(iss, Identity::Application("app-1".into()), &[]);
    assert!(p.allows(&admin(DEX), &secret_get("x")));
    assert!(p.allows(&member(DEX), &secret_get("x")));
    assert!(p.allows(&app(KEYCLOAK), &secret_get("x")));
    // The same subject, group or client id from another trusted issuer is someone else.
    for other in [KEYCLOAK, CLUSTER] {
        assert!(!p.allows(&admin(other), &secret_get("x")), "{other}");
        assert!(!p.allows(&member(other), &secret_get("x")), "{other}");
    }
    assert!(!p.allows(&app(DEX), &secret_get("x")));
}

#[test]
fn a_grant_naming_no_issuer_trusts_the_one_people_issuer() {
    let issuers = [TrustedIssuer::cluster(CLUSTER), TrustedIssuer::people(DEX)];
    let p = compile_with(
        json!({"generation": 1, "roleAssignments": [
            {"principal": {"kind": "User", "name": "dev-admin"}, "role": "Key Vault Secrets User"},
            {"principal": {"kind": "Group", "name": "team-g"}, "role": "Key Vault Secrets User"}
        ]}),
        &issuers,
    )
    .unwrap();
    assert!(p.allows(
        &from(DEX, Identity::User("dev-admin".into()), &[]),
        &secret_get("x")
    ));
    assert!(p.allows(
        &from(DEX, Identity::User("u".into()), &["team-g"]),
        &secret_get("x")
    ));
    // The cluster's tokens (or a stranger's) do not speak for people.
    assert!(!p.allows(
        &from(CLUSTER, Identity::User("dev-admin".into()), &[]),
        &secret_get("x")
    ));
    assert!(!p.allows(
        &from(CLUSTER, Identity::User("u".into()), &["team-g"]),
        &secret_get("x")
    ));
    assert!(!p.allows(
        &from("https://evil.test", Identity::User("dev-admin".into()), &[]),
        &secret_get("x")
    ));
    // Without any people issuer (kvault dev, one cluster issuer), the cluster issuer's.
    let p = compile_with(
        json!({"generation": 1, "roleAssignments": [
            {"principal": {"kind": "User", "name": "dev-admin"}, "role": "Key Vault Secrets User"}
        ]}),
        &[TrustedIssuer::cluster(CLUSTER)],
    )
    .unwrap();
    assert!(p.allows(
        &from(CLUSTER, Identity::User("dev-admin".into()), &[]),
        &secret_get("x")
    ));
    assert!(!p.allows(
        &from(DEX, Identity::User("dev-admin".into()), &[]),
        &secret_get("x")
    ));
}

#[test]
fn service_account_grants_trust_only_the_cluster_issuer() {
    let issuers = [TrustedIssuer::cluster(CLUSTER), TrustedIssuer::people(DEX)];
    let grant = json!({"generation": 1, "roleAssignments": [
        {"principal": {"kind": "ServiceAccount", "namespace": "kvault-system", "name": "op"}, "role": "Key Vault Administrator"}
    ]});
    let p = compile_with(grant.clone(), &issuers).unwrap();
    let sa = |iss| {
        from(
            iss,
            Identity::ServiceAccount {
                namespace: "kvault-system".into(),
                name: "op".into(),
            },
            &[],
        )
    };
    assert!(p.allows(&sa(CLUSTER), &secret_get("x")));
    assert!(!p.allows(&sa(DEX), &secret_get("x")));
    // Without a cluster issuer nobody is a service account.
    let p = compile_with(grant, &[TrustedIssuer::people(DEX)]).unwrap();
    assert!(!p.allows(&sa(DEX), &secret_get("x")));
    // A ServiceAccount grant naming a people issuer is a mistake, and said so.
    let e = compile_with(
        json!({"generation": 1, "roleAssignments": [
            {"principal": {"kind": "ServiceAccount", "namespace": "a", "name": "b", "issuer": DEX}, "role": "Key Vault Reader"}
        ]}),
        &issuers,
    )
    .unwrap_err();
    assert!(e.contains("does not assert service accounts"), "{e}");
    // Two issuers that both assert service accounts would collide like two IdPs.
    let e = compile_with(
        json!({"generation": 1}),
        &[TrustedIssuer::cluster(CLUSTER), TrustedIssuer::cluster(DEX)],
    )
    .unwrap_err();
    assert!(e.contains("both assert service accounts"), "{e}");
}

#[test]
fn a_grant_that_could_be_several_issuers_is_refused_by_name() {
    let issuers = [
        TrustedIssuer::cluster(CLUSTER),
        TrustedIssuer::people(DEX),
        TrustedIssuer::people(KEYCLOAK),
    ];
    for (field, entry) in [
        (
            "roleAssignments",
            json!({"principal": {"kind": "User", "name": "dev-admin"}, "role": "Key Vault Reader"}),
        ),
        (
            "accessPolicies",
            json!({"principal": {"kind": "Group", "name": "team-g"}, "permissions": {"secrets": ["get"]}}),
        ),
    ] {
        let e = compile_with(json!({"generation": 1, field: [entry]}), &issuers).unwrap_err();
        assert!(e.contains(&format!("{field}[0]")), "{e}");
        assert!(e.contains("names no issuer"), "{e}");
        assert!(e.contains(DEX) && e.contains(KEYCLOAK), "{e}");
    }
    // The document's own issuers decide, when it has them.
    let e = compile_with(
        json!({"generation": 1,
            "roleAssignments": [{"principal": {"kind": "User", "name": "a"}, "role": "Key Vault Reader"}],
            "identity": {"issuers": [
                {"issuer": CLUSTER, "jwksFile": "/j", "serviceAccounts": true},
                {"issuer": DEX}, {"issuer": KEYCLOAK}
            ]}}),
        &[TrustedIssuer::cluster(CLUSTER)],
    )
    .unwrap_err();
    assert!(e.contains("roleAssignments[0] (User a)"), "{e}");
    // Naming the issuer, or a ServiceAccount (always the cluster's), is unambiguous.
    compile_with(
        json!({"generation": 1, "roleAssignments": [
            {"principal": {"kind": "User", "name": "dev-admin", "issuer": KEYCLOAK}, "role": "Key Vault Reader"},
            {"principal": {"kind": "ServiceAccount", "namespace": "a", "name": "b"}, "role": "Key Vault Reader"}
        ]}),
        &issuers,
    )
    .unwrap();
}

#[test]
fn ipv4_mapped_rules_match_ipv4_clients() {
    let p = doc(json!({"generation": 1, "network": {"defaultAction": "Deny",
        "ipRules": ["::ffff:127.0.0.1", "::ffff:10.1.0.0/112"],
        "trustedProxies": ["::ffff:192.168.0.0/120"]}}));
    let n = &p.network;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    // Rules in IPv4-mapped form are IPv4 rules: they match IPv4 and mapped clients alike.
    assert!(n.allows(ip("127.0.0.1")));
    assert!(n.allows(ip("::ffff:127.0.0.1")));
    assert!(n.allows(ip("10.1.200.3")));
    assert!(!n.allows(ip("10.2.0.1")));
    assert!(!n.allows(ip("127.0.0.2")));
    assert_eq!(
        n.allowed,
        vec![
            "127.0.0.1/32".parse::<ipnet::IpNet>().unwrap(),
            "10.1.0.0/16".parse().unwrap()
        ]
    );
    // A mapped trusted proxy is believed when it connects over IPv4.
    assert_eq!(
        n.client_address(ip("192.168.0.9"), Some("10.9.9.9")),
        ip("10.9.9.9")
    );
    // Plain IPv6 rules are untouched.
    let v6 = doc(
        json!({"generation": 1, "network": {"defaultAction": "Deny", "ipRules": ["2001:db8::/32"]}}),
    );
    assert!(v6.network.allows(ip("2001:db8::1")));
    assert!(!v6.network.allows(ip("127.0.0.1")));
}

#[test]
fn generations_that_leave_no_room_are_refused() {
    let at = |g: u64| PolicyDocument {
        generation: g,
        ..PolicyDocument::empty()
    };
    assert!(at(1).check_generation().is_ok());
    assert!(at(crate::policy::MAX_GENERATION).check_generation().is_ok());
    for g in [crate::policy::MAX_GENERATION + 1, u64::MAX] {
        let e = at(g).check_generation().unwrap_err().to_string();
        assert!(e.contains(&g.to_string()) && e.contains("no room"), "{e}");
    }
}

#[test]
fn an_issuer_that_speaks_for_the_cluster_adds_no_second_service_account_issuer() {
    const TOKEN_SERVICE: &str = "https://kvault-operator-webhook.kvault-system.svc/adfs";
    let identity = |extra: serde_json::Value| {
        json!({"generation": 1,
        "identity": {"issuers": [
            {"issuer": CLUSTER, "jwksFile": "/etc/kvault/cluster-jwks/jwks.json", "serviceAccounts": true},
            extra,
        ]},
        "roleAssignments": [
            {"principal": {"kind": "ServiceAccount", "namespace": "team-a", "name": "web"}, "role": "Key Vault Secrets User"}
        ]})
    };
    let p = compile_with(
        identity(json!({"issuer": TOKEN_SERVICE, "jwks": {"keys": []}, "serviceAccounts": true, "speaksFor": CLUSTER})),
        &[],
    )
    .unwrap();
    // Its principals carry the cluster issuer's name (auth.rs), so the grant matches them;
    // the token service's own name binds nothing.
    let web = |iss| {
        from(
            iss,
            Identity::ServiceAccount {
                namespace: "team-a".into(),
                name: "web".into(),
            },
            &[],
        )
    };
    assert!(p.allows(&web(CLUSTER), &secret_get("x")));
    assert!(!p.allows(&web(TOKEN_SERVICE), &secret_get("x")));
    for (bad, why) in [
        (
            json!({"issuer": TOKEN_SERVICE, "jwks": {"keys": []}, "serviceAccounts": true, "speaksFor": "https://elsewhere"}),
            "not a trusted issuer",
        ),
        (
            json!({"issuer": TOKEN_SERVICE, "jwks": {"keys": []}, "serviceAccounts": false, "speaksFor": CLUSTER}),
            "serviceAccounts",
        ),
        (
            json!({"issuer": TOKEN_SERVICE, "jwks": {"keys": []}, "jwksUri": "https://x/keys", "serviceAccounts": true, "speaksFor": CLUSTER}),
            "give one of",
        ),
        // Without speaksFor it would be a second cluster issuer.
        (
            json!({"issuer": TOKEN_SERVICE, "jwks": {"keys": []}, "serviceAccounts": true}),
            "both assert service accounts",
        ),
    ] {
        let e = compile_with(identity(bad), &[]).unwrap_err();
        assert!(e.contains(why), "{why}: {e}");
    }
}
