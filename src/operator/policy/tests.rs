use super::*;
use crate::api::{NetworkPeer, OidcIssuer, VaultSpec};
use crate::operator::fixtures::{access_policy, principal, role_assignment, sa, vault};
use crate::policy::{
    BuiltInRole, DataAction, DefaultAction, Identity, KeyPermission, ObjectKind, Permission,
    Principal, Requirement, SecretPermission, TlsVersion,
};

fn settings() -> OperatorSettings {
    OperatorSettings::test()
}

fn caller_sa(ns: &str, name: &str) -> Principal {
    Principal {
        identity: Identity::ServiceAccount {
            namespace: ns.into(),
            name: name.into(),
        },
        groups: vec![],
        application: None,
        issuer: settings().cluster_issuer,
    }
}

fn secret_get(name: &str) -> Requirement<'_> {
    Requirement {
        permission: Permission::Secret(SecretPermission::Get),
        alternative: None,
        action: DataAction::SecretsGetSecret,
        object: Some((ObjectKind::Secrets, name)),
    }
}

#[test]
fn rbac_vault_compiles_its_role_assignments_and_enforces_them() {
    let v = vault("team-a", "payments", VaultSpec::default());
    let ras = vec![
        role_assignment(
            "team-a",
            "web",
            "payments",
            BuiltInRole::SecretsUser,
            sa("web"),
        ),
        // Another vault's, and another namespace's: not this vault's business.
        role_assignment(
            "team-a",
            "other",
            "billing",
            BuiltInRole::Administrator,
            sa("x"),
        ),
        role_assignment(
            "team-b",
            "web",
            "payments",
            BuiltInRole::Administrator,
            sa("y"),
        ),
    ];
    let c = compile(&v, &[], &ras, 7, &settings()).unwrap();
    assert_eq!(c.document.generation, 7);
    assert_eq!(c.document.authorization, AuthorizationMode::Rbac);
    assert_eq!(c.document.role_assignments.len(), 1);
    let entry = &c.document.role_assignments[0];
    // A service account without a namespace is one of the grant's namespace.
    assert_eq!(entry.principal.namespace.as_deref(), Some("team-a"));
    assert_eq!(entry.role, BuiltInRole::SecretsUser);
    assert_eq!(
        c.grants,
        vec![GrantOutcome {
            kind: GrantKind::RoleAssignment,
            name: "web".into(),
            state: GrantState::Applied
        }]
    );
    // The document the server would enforce lets exactly that caller read.
    let compiled = c.document.compile(&[]).unwrap();
    assert!(compiled.allows(&caller_sa("team-a", "web"), &secret_get("db")));
    assert!(!compiled.allows(&caller_sa("team-b", "web"), &secret_get("db")));
    assert!(!compiled.allows(&caller_sa("team-a", "x"), &secret_get("db")));
}

#[test]
fn access_policy_vault_compiles_compound_identity() {
    let v = vault(
        "team-b",
        "legacy",
        VaultSpec {
            authorization: AuthorizationMode::AccessPolicy,
            // alice's tokens come from dex, the vault's one people issuer.
            identity: crate::api::VaultIdentity {
                issuers: vec![OidcIssuer {
                    issuer: "https://dex".into(),
                    ..Default::default()
                }],
            },
            ..Default::default()
        },
    );
    let mut alice = access_policy(
        "team-b",
        "alice-via-tool",
        "legacy",
        principal(PrincipalKind::User, "alice"),
    );
    alice.spec.application = Some("deploy-tool".into());
    let mut worker = access_policy("team-b", "worker", "legacy", sa("worker"));
    worker.spec.permissions.keys = vec![KeyPermission::UnwrapKey];
    let c = compile(&v, &[worker, alice], &[], 1, &settings()).unwrap();
    assert_eq!(c.document.authorization, AuthorizationMode::AccessPolicy);
    // Sorted by name.
    let names: Vec<&str> = c.grants.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["alice-via-tool", "worker"]);
    assert!(c.grants.iter().all(|g| g.state == GrantState::Applied));
    assert_eq!(
        c.document.access_policies[0].application.as_deref(),
        Some("deploy-tool")
    );
    let compiled = c.document.compile(&[]).unwrap();
    let alice_alone = Principal {
        identity: Identity::User("alice".into()),
        groups: vec![],
        application: None,
        issuer: "https://dex".into(),
    };
    let alice_via_tool = Principal {
        application: Some("deploy-tool".into()),
        ..alice_alone.clone()
    };
    assert!(compiled.allows(&alice_via_tool, &secret_get("s")));
    assert!(!compiled.allows(&alice_alone, &secret_get("s")));
    assert!(compiled.allows(&caller_sa("team-b", "worker"), &secret_get("s")));
}

#[test]
fn grants_of_the_other_mode_are_kept_but_reported_inactive() {
    let v = vault("team-a", "payments", VaultSpec::default());
    let aps = vec![access_policy("team-a", "ap", "payments", sa("web"))];
    let ras = vec![role_assignment(
        "team-a",
        "ra",
        "payments",
        BuiltInRole::Reader,
        sa("web"),
    )];
    let c = compile(&v, &aps, &ras, 1, &settings()).unwrap();
    let ap = c.grants.iter().find(|g| g.name == "ap").unwrap();
    assert_eq!(ap.state, GrantState::Inactive(AuthorizationMode::Rbac));
    assert_eq!(ap.state.condition(), ("False", "InactiveInThisMode"));
    assert!(ap.state.message().contains("RBAC"));
    // Kept, so switching modes takes effect with the next push.
    assert_eq!(c.document.access_policies.len(), 1);
    assert_eq!(c.document.role_assignments.len(), 1);
}

#[test]
fn an_invalid_grant_is_left_out_without_blocking_the_others() {
    let v = vault("team-a", "payments", VaultSpec::default());
    let mut bad_scope = role_assignment(
        "team-a",
        "bad-scope",
        "payments",
        BuiltInRole::Reader,
        sa("a"),
    );
    bad_scope.spec.scope = Some("/vaults/everything".into());
    let mut user_with_ns = role_assignment(
        "team-a",
        "user-ns",
        "payments",
        BuiltInRole::Reader,
        principal(PrincipalKind::User, "bob"),
    );
    user_with_ns.spec.principal.namespace = Some("team-a".into());
    let good = role_assignment("team-a", "good", "payments", BuiltInRole::Reader, sa("b"));
    let c = compile(&v, &[], &[bad_scope, good, user_with_ns], 1, &settings()).unwrap();
    assert_eq!(c.document.role_assignments.len(), 1);
    assert_eq!(c.document.role_assignments[0].principal.name, "b");
    let state = |n: &str| c.grants.iter().find(|g| g.name == n).unwrap().state.clone();
    assert_eq!(state("good"), GrantState::Applied);
    assert!(matches!(state("bad-scope"), GrantState::Invalid(m) if m.contains("scope")));
    assert!(matches!(state("user-ns"), GrantState::Invalid(m) if m.contains("namespace")));
    assert_eq!(state("user-ns").condition(), ("False", "Invalid"));
}

#[test]
fn grants_being_deleted_are_dropped() {
    let v = vault("team-a", "payments", VaultSpec::default());
    let mut going = role_assignment("team-a", "going", "payments", BuiltInRole::Reader, sa("a"));
    going.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    let c = compile(&v, &[], &[going], 1, &settings()).unwrap();
    assert!(c.document.role_assignments.is_empty());
    assert!(c.grants.is_empty());
}

#[test]
fn the_cluster_issuer_is_the_only_service_account_issuer() {
    let v = vault(
        "team-a",
        "payments",
        VaultSpec {
            identity: crate::api::VaultIdentity {
                issuers: vec![
                    OidcIssuer {
                        issuer: "https://dex.example.com".into(),
                        audiences: vec!["kvault".into()],
                        ..Default::default()
                    },
                    OidcIssuer {
                        issuer: "https://login.example.org/tenant/v2.0".into(),
                        jwks_uri: Some("https://login.example.org/keys".into()),
                        ..Default::default()
                    },
                ],
            },
            ..Default::default()
        },
    );
    let c = compile(&v, &[], &[], 1, &settings()).unwrap();
    let id = c.document.identity.as_ref().unwrap();
    assert_eq!(id.issuers.len(), 3);
    assert_eq!(id.issuers[0].issuer, settings().cluster_issuer);
    assert!(id.issuers[0].service_accounts);
    assert_eq!(id.issuers[0].jwks_file.as_deref(), Some(CLUSTER_JWKS_PATH));
    assert!(id.issuers[1..].iter().all(|i| !i.service_accounts));
    assert_eq!(
        id.issuers[2].jwks_uri.as_deref(),
        Some("https://login.example.org/keys")
    );
    // Tokens for this vault (its URL or the challenge resource), plus the extra audience;
    // never a token minted for the API server or another vault.
    assert!(
        id.audiences
            .contains(&"https://payments.team-a.svc".to_string())
    );
    assert!(id.audiences.contains(&"https://team-a.svc".to_string()));
    assert!(id.audiences.contains(&"kvault".to_string()));
    assert!(!id.audiences.iter().any(|a| a.contains("kubernetes")));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn unusable_issuer_settings_are_warned_about() {
    let v = vault(
        "team-a",
        "payments",
        VaultSpec {
            identity: crate::api::VaultIdentity {
                issuers: vec![
                    OidcIssuer {
                        issuer: settings().cluster_issuer,
                        ..Default::default()
                    },
                    OidcIssuer {
                        issuer: "https://dex.example.com".into(),
                        user_claim: Some("email".into()),
                        ..Default::default()
                    },
                ],
            },
            ..Default::default()
        },
    );
    let c = compile(&v, &[], &[], 1, &settings()).unwrap();
    let id = c.document.identity.as_ref().unwrap();
    // The cluster issuer is never re-added without its service-account marking.
    assert_eq!(id.issuers.len(), 2);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("already trusted"));
    assert!(c.warnings[1].contains("claim names"));
}

#[test]
fn network_tls_soft_delete_and_throttling_come_from_the_spec() {
    let mut spec = VaultSpec::default();
    spec.network.default_action = DefaultAction::Deny;
    spec.network.ip_rules = vec!["10.20.0.0/16".into(), "192.0.2.7".into()];
    spec.network.trusted_proxies = vec!["10.0.0.1".into()];
    spec.tls.min_version = TlsVersion::Tls13;
    spec.soft_delete.retention_days = 30;
    spec.soft_delete.purge_protection = true;
    spec.throttling.requests = 1000;
    let v = vault("team-a", "payments", spec);
    let c = compile(&v, &[], &[], 1, &settings()).unwrap();
    let d = &c.document;
    assert_eq!(d.network.default_action, DefaultAction::Deny);
    assert_eq!(d.network.ip_rules, ["10.20.0.0/16", "192.0.2.7"]);
    assert_eq!(d.network.trusted_proxies, ["10.0.0.1"]);
    assert_eq!(d.tls.as_ref().unwrap().min_version, TlsVersion::Tls13);
    let sd = d.soft_delete.unwrap();
    assert_eq!((sd.retention_days, sd.purge_protection), (30, true));
    assert_eq!(d.throttling.requests, 1000);
    let compiled = d.compile(&[]).unwrap();
    assert!(compiled.network.allows("10.20.3.4".parse().unwrap()));
    assert!(!compiled.network.allows("10.21.0.1".parse().unwrap()));
}

#[test]
fn allowed_peers_admit_the_pod_network_server_side() {
    let mut spec = VaultSpec::default();
    spec.network.default_action = DefaultAction::Deny;
    spec.network.ip_rules = vec!["192.0.2.0/24".into()];
    spec.network.allowed_peers = vec![NetworkPeer {
        namespace_selector: None,
        pod_selector: Some(Default::default()),
    }];
    let v = vault("team-a", "payments", spec);
    // Without the pod network the server cannot honour selectors: say so.
    let c = compile(&v, &[], &[], 1, &settings()).unwrap();
    assert_eq!(c.document.network.ip_rules, ["192.0.2.0/24"]);
    assert_eq!(c.warnings.len(), 1);
    let s = OperatorSettings {
        pod_cidrs: vec!["10.244.0.0/16".into()],
        ..settings()
    };
    let c = compile(&v, &[], &[], 1, &s).unwrap();
    assert_eq!(
        c.document.network.ip_rules,
        ["192.0.2.0/24", "10.244.0.0/16"]
    );
    assert!(c.warnings.is_empty());
    // With Allow the pod network is not added (nothing to open).
    let mut open = v.clone();
    open.spec.network.default_action = DefaultAction::Allow;
    let c = compile(&open, &[], &[], 1, &s).unwrap();
    assert_eq!(c.document.network.ip_rules, ["192.0.2.0/24"]);
}

#[test]
fn too_many_access_policies_are_refused_past_the_limit() {
    let v = vault(
        "team-b",
        "legacy",
        VaultSpec {
            authorization: AuthorizationMode::AccessPolicy,
            ..Default::default()
        },
    );
    let aps: Vec<_> = (0..MAX_ACCESS_POLICIES + 2)
        .map(|i| access_policy("team-b", &format!("ap-{i:05}"), "legacy", sa("w")))
        .collect();
    let c = compile(&v, &aps, &[], 1, &settings()).unwrap();
    assert_eq!(c.document.access_policies.len(), MAX_ACCESS_POLICIES);
    let over: Vec<&str> = c
        .grants
        .iter()
        .filter(|g| g.state == GrantState::OverLimit)
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(over, ["ap-01024", "ap-01025"]);
}

#[test]
fn the_digest_ignores_generation_and_order_but_not_content() {
    let v = vault("team-a", "payments", VaultSpec::default());
    let a = role_assignment("team-a", "a", "payments", BuiltInRole::Reader, sa("a"));
    let b = role_assignment("team-a", "b", "payments", BuiltInRole::Reader, sa("b"));
    let one = compile(&v, &[], &[a.clone(), b.clone()], 1, &settings()).unwrap();
    let two = compile(&v, &[], &[b.clone(), a.clone()], 9, &settings()).unwrap();
    assert_eq!(one.digest, two.digest);
    assert_eq!(one.digest.len(), 64);
    let mut b2 = b.clone();
    b2.spec.role = BuiltInRole::SecretsUser;
    let three = compile(&v, &[], &[a, b2], 1, &settings()).unwrap();
    assert_ne!(one.digest, three.digest);
    let mut tighter = v.clone();
    tighter.spec.tls.min_version = TlsVersion::Tls13;
    let four = compile(&tighter, &[], &[b], 1, &settings()).unwrap();
    assert_ne!(one.digest, four.digest);
}

#[test]
fn generations_increase_on_every_change_only() {
    assert_eq!(next_generation(None, None, "d1"), (1, true));
    assert_eq!(next_generation(Some(4), Some("d1"), "d1"), (4, false));
    assert_eq!(next_generation(Some(4), Some("d1"), "d2"), (5, true));
    assert_eq!(next_generation(Some(4), None, "d2"), (5, true));
    // A negative generation in a hand-edited status is treated as none.
    assert_eq!(next_generation(Some(-3), Some("d1"), "d1"), (1, true));
}

#[test]
fn an_unnamed_vault_is_an_error() {
    let mut v = vault("team-a", "payments", VaultSpec::default());
    v.metadata.namespace = None;
    assert!(matches!(
        compile(&v, &[], &[], 1, &settings()),
        Err(CompileError::Unnamed)
    ));
}

#[test]
fn the_compiled_document_round_trips_through_the_wire_format() {
    let v = vault("team-a", "payments", VaultSpec::default());
    let ra = role_assignment("team-a", "a", "payments", BuiltInRole::Reader, sa("a"));
    let c = compile(&v, &[], &[ra], 3, &settings()).unwrap();
    let json = serde_json::to_string(&c.document).unwrap();
    let back: PolicyDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c.document);
}

// --- event notifications ---------------------------------------------------------------

fn with_notifications(n: serde_json::Value) -> crate::api::Vault {
    vault(
        "team-a",
        "payments",
        VaultSpec {
            notifications: Some(serde_json::from_value(n).unwrap()),
            ..Default::default()
        },
    )
}

fn found(value: &str, version: &str) -> ResolvedHeader {
    ResolvedHeader::Found {
        value: HeaderSecret::new(value),
        version: version.into(),
    }
}

fn notifications() -> serde_json::Value {
    serde_json::json!({
        "nearExpiryDays": 14,
        "subscriptions": [
            {"name": "ops", "endpoint": "https://hooks.example.test/kv",
             "includedEventTypes": ["Microsoft.KeyVault.SecretNearExpiry"],
             "subjectBeginsWith": "db-",
             "authHeader": {"name": "Authorization",
                            "secretKeyRef": {"name": "ops-hook", "key": "header"}},
             "ttlMinutes": 60},
            {"name": "audit", "endpoint": "https://audit.example.test/in"}
        ]
    })
}

#[test]
fn notifications_compile_into_the_documents_events_with_the_secrets_header_value() {
    let v = with_notifications(notifications());
    let headers = ResolvedHeaders::from([("ops".to_string(), found("Bearer s3cr3t", "uid/7"))]);
    let c = compile_with(&v, &[], &[], 1, &settings(), &headers).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let events = c.document.events.as_ref().unwrap();
    assert_eq!(events.near_expiry_days, Some(14));
    assert_eq!(events.subscriptions.len(), 2);
    let ops = &events.subscriptions[0];
    assert_eq!(ops.endpoint, "https://hooks.example.test/kv");
    assert_eq!(
        ops.included_event_types,
        vec![crate::policy::EventType::SecretNearExpiry]
    );
    assert_eq!(ops.subject_begins_with.as_deref(), Some("db-"));
    assert_eq!(ops.ttl_minutes, Some(60));
    let h = ops.auth_header.as_ref().unwrap();
    assert_eq!(h.name, "Authorization");
    assert_eq!(h.value.as_ref().unwrap().expose(), "Bearer s3cr3t");
    // The server accepts what the operator compiles.
    c.document.compile(&[]).unwrap();
    // The value never shows: not in Debug, not in the digest's input.
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn the_digest_follows_the_secrets_version_not_its_value() {
    let v = with_notifications(notifications());
    let at = |value: &str, version: &str| {
        let headers = ResolvedHeaders::from([("ops".to_string(), found(value, version))]);
        compile_with(&v, &[], &[], 1, &settings(), &headers)
            .unwrap()
            .digest
    };
    // Same version: same digest whatever the value (the value is not hashed) …
    assert_eq!(at("Bearer a", "uid/7"), at("Bearer b", "uid/7"));
    // … and a changed Secret (new resourceVersion) changes it, so it is pushed.
    assert_ne!(at("Bearer a", "uid/7"), at("Bearer a", "uid/8"));
    // A vault without notifications keeps the digest it had before they existed.
    let plain = vault("team-a", "payments", VaultSpec::default());
    let c = compile(&plain, &[], &[], 1, &settings()).unwrap();
    assert!(c.document.events.is_none());
    let mut doc = c.document.clone();
    doc.generation = 0;
    let old_style = {
        let bytes = serde_json::to_vec(&doc).unwrap();
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(c.digest, old_style);
}

#[test]
fn a_subscription_without_its_header_or_invalid_is_left_out_with_a_warning() {
    let v = with_notifications(notifications());
    let missing = ResolvedHeaders::from([(
        "ops".to_string(),
        ResolvedHeader::Missing("Secret ops-hook does not exist".into()),
    )]);
    let c = compile_with(&v, &[], &[], 1, &settings(), &missing).unwrap();
    let names: Vec<&str> = c
        .document
        .events
        .as_ref()
        .unwrap()
        .subscriptions
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["audit"]);
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("ops-hook does not exist"),
        "{:?}",
        c.warnings
    );
    // Not resolved at all (the pure compile): left out too.
    let c = compile(&v, &[], &[], 1, &settings()).unwrap();
    assert_eq!(c.document.events.as_ref().unwrap().subscriptions.len(), 1);
    // An endpoint the server would refuse.
    let bad = with_notifications(serde_json::json!({"subscriptions": [
        {"name": "plain", "endpoint": "https://ok.example.test/"},
        {"name": "bad", "endpoint": "https://user:pw@hooks.example.test/"}
    ]}));
    let c = compile(&bad, &[], &[], 1, &settings()).unwrap();
    assert_eq!(c.document.events.as_ref().unwrap().subscriptions.len(), 1);
    assert!(
        c.warnings[0].contains("subscriptions[1] (bad)"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn header_values_come_only_from_labelled_secrets() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let secret = |labelled: bool, data: &[(&str, &[u8])]| Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("hook".into()),
            uid: Some("u1".into()),
            resource_version: Some("42".into()),
            labels: labelled.then(|| {
                [(
                    crate::api::notifications::EVENT_AUTH_LABEL.to_string(),
                    "true".to_string(),
                )]
                .into()
            }),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    let ok = secret(true, &[("header", b"Bearer abc\n")]);
    match header_from_secret(Some(&ok), "hook", "header") {
        ResolvedHeader::Found { value, version } => {
            assert_eq!(value.expose(), "Bearer abc");
            assert_eq!(version, "u1/42");
        }
        other => panic!("{other:?}"),
    }
    let why = |r: ResolvedHeader| match r {
        ResolvedHeader::Missing(w) => w,
        other => panic!("{other:?}"),
    };
    assert!(why(header_from_secret(None, "hook", "header")).contains("does not exist"));
    assert!(
        why(header_from_secret(
            Some(&secret(false, &[("header", b"x")])),
            "hook",
            "header"
        ))
        .contains("kvault.dev/event-auth")
    );
    assert!(why(header_from_secret(Some(&ok), "hook", "other")).contains("no key other"));
    assert!(
        why(header_from_secret(
            Some(&secret(true, &[("header", b"\xff")])),
            "hook",
            "header"
        ))
        .contains("UTF-8")
    );
}

#[test]
fn the_events_example_vault_compiles_into_two_subscriptions() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/events/vault.yaml"
    ))
    .unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let vault_doc = docs.iter().find(|d| d["kind"] == "Vault").unwrap();
    let v: crate::api::Vault = serde_json::from_value(vault_doc.clone()).unwrap();
    // The Secret next to it, as the API server would return it.
    let secret_doc = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    let mut secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(secret_doc.clone()).unwrap();
    let string_data = secret.string_data.take().unwrap();
    secret.data = Some(
        string_data
            .into_iter()
            .map(|(k, v)| (k, k8s_openapi::ByteString(v.into_bytes())))
            .collect(),
    );
    secret.metadata.resource_version = Some("1".into());
    let headers = ResolvedHeaders::from([(
        "rotation".to_string(),
        header_from_secret(Some(&secret), "rotation-hook-auth", "header"),
    )]);
    let c = compile_with(&v, &[], &[], 1, &settings(), &headers).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let events = c.document.events.as_ref().unwrap();
    assert_eq!(events.near_expiry_days, Some(30));
    let names: Vec<&str> = events
        .subscriptions
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["rotation", "oncall"]);
    assert!(
        events.subscriptions[0]
            .auth_header
            .as_ref()
            .unwrap()
            .value
            .is_some()
    );
    assert_eq!(events.subscriptions[1].near_expiry_days, Some(7));
}

#[test]
fn grants_are_bound_to_the_issuer_they_name() {
    let two_idps = crate::api::VaultIdentity {
        issuers: vec![
            OidcIssuer {
                issuer: "https://dex.example.com".into(),
                ..Default::default()
            },
            OidcIssuer {
                issuer: "https://login.example.org".into(),
                ..Default::default()
            },
        ],
    };
    let v = vault(
        "team-a",
        "payments",
        VaultSpec {
            identity: two_idps,
            ..Default::default()
        },
    );
    let mut named = principal(PrincipalKind::User, "dev-admin");
    named.issuer = Some("https://dex.example.com".into());
    let ras = vec![
        role_assignment("team-a", "named", "payments", BuiltInRole::Reader, named),
        role_assignment(
            "team-a",
            "unnamed",
            "payments",
            BuiltInRole::Reader,
            principal(PrincipalKind::Group, "team-g"),
        ),
        role_assignment("team-a", "sa", "payments", BuiltInRole::Reader, sa("web")),
    ];
    let c = compile(&v, &[], &ras, 1, &settings()).unwrap();
    let state = |name: &str| {
        c.grants
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.state.clone())
            .unwrap()
    };
    assert_eq!(state("named"), GrantState::Applied);
    assert_eq!(state("sa"), GrantState::Applied);
    // Two people issuers and none named: left out, and the status says why.
    match state("unnamed") {
        GrantState::Invalid(why) => {
            assert!(why.contains("names no issuer"), "{why}");
            assert!(why.contains("Group team-g"), "{why}");
            assert!(!why.contains("[0]"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // The issuer is compiled into the document, and the server enforces it.
    assert_eq!(c.document.role_assignments.len(), 2);
    assert_eq!(
        c.document.role_assignments[0].principal.issuer.as_deref(),
        Some("https://dex.example.com")
    );
    let compiled = c.document.compile(&[]).unwrap();
    let dev_admin = |iss: &str| Principal {
        identity: Identity::User("dev-admin".into()),
        groups: vec![],
        application: None,
        issuer: iss.into(),
    };
    let list = Requirement {
        permission: Permission::Secret(SecretPermission::List),
        alternative: None,
        action: DataAction::SecretsReadMetadata,
        object: None,
    };
    assert!(compiled.allows(&dev_admin("https://dex.example.com"), &list));
    assert!(!compiled.allows(&dev_admin("https://login.example.org"), &list));
    assert!(compiled.allows(&caller_sa("team-a", "web"), &list));
}

fn with_sync_events(seed: &[u8]) -> OperatorSettings {
    let mut s = settings();
    s.sync_events = Some(crate::operator::sync::events::SyncEventSettings {
        endpoint_base: "https://kvault-operator-webhook.kvault-system.svc".into(),
        ca_bundle: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        proof: crate::operator::sync::events::EventProof::new(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            seed,
        )),
    });
    s
}

#[test]
fn the_operator_subscribes_itself_to_every_vaults_new_versions() {
    let plain = vault("team-a", "payments", VaultSpec::default());
    let s = with_sync_events(b"k1");
    let c = compile(&plain, &[], &[], 1, &s).unwrap();
    let subs = &c.document.events.as_ref().unwrap().subscriptions;
    assert_eq!(subs.len(), 1);
    let sub = &subs[0];
    assert_eq!(sub.name, "kvault-operator-sync");
    assert_eq!(
        sub.endpoint,
        "https://kvault-operator-webhook.kvault-system.svc/sync/events/team-a/payments"
    );
    let proof = sub.auth_header.as_ref().unwrap().value.as_ref().unwrap();
    let events = s.sync_events.as_ref().unwrap();
    assert!(
        events
            .proof
            .verify("team-a", "payments", Some(proof.expose()))
    );
    // The server accepts it, and the digest names the key's fingerprint, never the proof.
    c.document.compile(&[]).unwrap();
    let again = compile(&plain, &[], &[], 1, &with_sync_events(b"k1")).unwrap();
    assert_eq!(c.digest, again.digest);
    let other_key = compile(&plain, &[], &[], 1, &with_sync_events(b"k2")).unwrap();
    assert_ne!(c.digest, other_key.digest);
    // Next to the user's own subscriptions; a user subscription of its name is replaced.
    let v = with_notifications(serde_json::json!({"subscriptions": [
        {"name": "plain", "endpoint": "https://ok.example.test/"},
        {"name": "kvault-operator-sync", "endpoint": "https://elsewhere.example.test/"}
    ]}));
    let c = compile(&v, &[], &[], 1, &s).unwrap();
    let subs = &c.document.events.as_ref().unwrap().subscriptions;
    let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["plain", "kvault-operator-sync"]);
    assert!(subs[1].endpoint.contains("/sync/events/team-a/"));
    assert!(
        c.warnings.iter().any(|w| w.contains("operator's own")),
        "{:?}",
        c.warnings
    );
}
