use super::*;
use crate::api::{NetworkPeer, VaultSpec};
use crate::operator::fixtures::vault;
use crate::server::config::{ServerConfig, ServerOptions};
use serde_json::json;

fn settings() -> OperatorSettings {
    OperatorSettings::test()
}

fn payments(spec: VaultSpec) -> Vault {
    vault("team-a", "payments", spec)
}

fn owned_by_the_vault(meta: &ObjectMeta) {
    let refs = meta.owner_references.as_ref().expect("owner references");
    assert_eq!(refs.len(), 1);
    let r = &refs[0];
    assert_eq!(r.api_version, "kvault.dev/v1alpha1");
    assert_eq!(r.kind, "Vault");
    assert_eq!(r.name, "payments");
    assert_eq!(r.uid, "uid-team-a-payments");
    assert_eq!(r.controller, Some(true));
    assert_eq!(meta.namespace.as_deref(), Some("team-a"));
    labelled(meta);
}

fn labelled(meta: &ObjectMeta) {
    let l = meta.labels.as_ref().expect("labels");
    assert_eq!(l["app.kubernetes.io/name"], "kvault");
    assert_eq!(l["app.kubernetes.io/instance"], "payments");
    assert_eq!(l["app.kubernetes.io/managed-by"], "kvault-operator");
    assert_eq!(l[VAULT_LABEL], "payments");
}

fn pod(sts: &StatefulSet) -> &PodSpec {
    sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

#[test]
fn every_applied_object_is_owned_and_labelled() {
    let d = desired_objects(&payments(VaultSpec::default()), &settings()).unwrap();
    owned_by_the_vault(&d.service_account.metadata);
    owned_by_the_vault(&d.service.metadata);
    owned_by_the_vault(&d.stateful_set.metadata);
    owned_by_the_vault(&d.network_policy.metadata);
    assert!(d.pod_disruption_budget.is_none());
    for name in [
        d.service_account.metadata.name.as_deref(),
        d.service.metadata.name.as_deref(),
        d.stateful_set.metadata.name.as_deref(),
        d.network_policy.metadata.name.as_deref(),
    ] {
        assert_eq!(name, Some("payments"));
    }
}

#[test]
fn a_vault_without_uid_cannot_own_anything_yet() {
    let mut v = payments(VaultSpec::default());
    v.metadata.uid = None;
    assert_eq!(
        desired_objects(&v, &settings()).err(),
        Some(DesiredError::Unnamed)
    );
}

#[test]
fn vault_names_must_fit_a_service_and_a_stateful_set() {
    for good in ["payments", "a", "pay-2", &"a".repeat(52)] {
        assert!(check_vault_name(good).is_ok(), "{good}");
    }
    for bad in ["", "2fa", "pay.ments", "Pay", "pay-", &"a".repeat(53)] {
        assert_eq!(check_vault_name(bad), Err(DesiredError::Name(bad.into())));
    }
    let v = vault("team-a", "9lives", VaultSpec::default());
    assert!(matches!(
        desired_objects(&v, &settings()),
        Err(DesiredError::Name(_))
    ));
}

#[test]
fn the_server_runs_locked_down() {
    let sts = stateful_set(&payments(VaultSpec::default()), &settings()).unwrap();
    let pod = pod(&sts);
    assert_eq!(pod.service_account_name.as_deref(), Some("payments"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.enable_service_links, Some(false));
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(RUN_AS));
    assert_eq!(psc.fs_group, Some(RUN_AS));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!(c.image.as_deref(), Some("ghcr.io/kvault/kvault:0.1.0"));
    // No environment at all: nothing secret travels that way.
    assert!(c.env.is_none() && c.env_from.is_none());
    // Secrets mounted read-only, owner-read only.
    for v in pod.volumes.as_ref().unwrap() {
        if let Some(s) = &v.secret {
            assert_eq!(s.default_mode, Some(0o400), "{}", v.name);
        }
    }
    for m in c.volume_mounts.as_ref().unwrap() {
        let writable = m.name == "data" || m.name == "tmp";
        assert_eq!(m.read_only, Some(!writable), "{}", m.name);
    }
}

#[test]
fn probes_use_the_health_endpoint_over_https() {
    let sts = stateful_set(&payments(VaultSpec::default()), &settings()).unwrap();
    let c = &pod(&sts).containers[0];
    for probe in [&c.readiness_probe, &c.liveness_probe, &c.startup_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(HEALTH_PATH));
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        assert_eq!(get.port, IntOrString::String("https".into()));
    }
    let ports: Vec<(Option<&str>, i32)> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(ports, [(Some("https"), 8443), (Some("metrics"), 9090)]);
}

#[test]
fn the_data_volume_is_a_retained_claim() {
    let mut spec = VaultSpec::default();
    spec.storage.embedded = Some(crate::api::EmbeddedStorage {
        size: Quantity("5Gi".into()),
        storage_class_name: Some("fast".into()),
    });
    let sts = stateful_set(&payments(spec), &settings()).unwrap();
    let s = sts.spec.as_ref().unwrap();
    let pvc = &s.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(pvc.metadata.name.as_deref(), Some("data"));
    let ps = pvc.spec.as_ref().unwrap();
    assert_eq!(ps.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    assert_eq!(ps.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        ps.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"],
        Quantity("5Gi".into())
    );
    let keep = s.persistent_volume_claim_retention_policy.as_ref().unwrap();
    assert_eq!(keep.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(keep.when_scaled.as_deref(), Some("Retain"));
    assert_eq!(s.service_name.as_deref(), Some("payments"));
    assert_eq!(
        s.selector.match_labels.as_ref().unwrap(),
        &selector_labels("payments")
    );
    // The pod carries the selector labels.
    let pod_labels = s
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    for (k, v) in selector_labels("payments") {
        assert_eq!(pod_labels[&k], v);
    }
}

#[derive(clap::Parser)]
struct ServerCommandLine {
    #[command(flatten)]
    options: ServerOptions,
}

#[test]
fn the_server_arguments_are_what_kvault_server_accepts() {
    use clap::Parser;
    let mut spec = VaultSpec::default();
    spec.soft_delete.retention_days = 30;
    spec.soft_delete.purge_protection = true;
    spec.tls.min_version = TlsVersion::Tls13;
    spec.audit.destinations = vec![AuditDestination::Stdout, AuditDestination::File];
    let args = server_args(&payments(spec), &settings()).unwrap();
    assert_eq!(args[0], "server");
    let parsed = ServerCommandLine::try_parse_from(&args).unwrap().options;
    assert_eq!(parsed.url.as_deref(), Some("https://payments.team-a.svc"));
    assert_eq!(parsed.retention_days, Some(30));
    assert!(parsed.purge_protection);
    assert_eq!(parsed.tls_min_version.as_deref(), Some("1.3"));
    // The cluster issuer is passed as such: only it asserts service accounts.
    assert_eq!(
        parsed.cluster_issuer,
        Some(format!(
            "https://kubernetes.default.svc.cluster.local={CLUSTER_JWKS_PATH}"
        ))
    );
    assert!(parsed.issuers.is_empty());
    assert_eq!(
        parsed.admin_principals,
        ["ServiceAccount kvault-system/kvault-operator"]
    );
    assert_eq!(parsed.audit_log, ["stdout", AUDIT_FILE]);
    // The server's own validation accepts the whole set.
    let config = ServerConfig::from_options(parsed).unwrap();
    assert_eq!(config.listen.port(), 8443);
    assert_eq!(config.url.origin, "https://payments.team-a.svc");
    assert_eq!(config.resource, "https://team-a.svc");
    assert_eq!(config.admins.len(), 1);
    assert!(config.audit.stdout);
    assert_eq!(config.metrics_listen.unwrap().port(), 9090);
    assert!(matches!(
        &config.master_key,
        crate::server::config::MasterKeySource::File(p)
            if p.to_str() == Some(&format!("{MASTER_KEY_DIR}/{MASTER_KEY_FILE}"))
    ));
    assert_eq!(config.tls_cert.to_str(), Some("/etc/kvault/tls/tls.crt"));
    match &config.storage {
        crate::server::config::StorageConfig::Embedded { dir } => {
            assert_eq!(dir.to_str(), Some(DATA_DIR))
        }
        other => panic!("embedded storage expected, got {other:?}"),
    }
}

#[test]
fn no_audit_destination_turns_the_audit_log_off() {
    let mut spec = VaultSpec::default();
    spec.audit.destinations = vec![];
    let args = server_args(&payments(spec), &settings()).unwrap();
    let i = args.iter().position(|a| a == "--audit-log").unwrap();
    assert_eq!(args[i + 1], "none");
    assert!(!args.contains(&"--purge-protection".to_string()));
}

#[test]
fn scheduling_and_resources_come_from_the_spec() {
    let mut spec = VaultSpec::default();
    spec.node_selector.insert("disk".into(), "ssd".into());
    spec.priority_class_name = Some("critical".into());
    spec.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([("memory".into(), Quantity("1Gi".into()))])),
        ..Default::default()
    });
    let sts = stateful_set(&payments(spec), &settings()).unwrap();
    let p = pod(&sts);
    assert_eq!(p.node_selector.as_ref().unwrap()["disk"], "ssd");
    assert_eq!(p.priority_class_name.as_deref(), Some("critical"));
    assert_eq!(
        p.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()["memory"],
        Quantity("1Gi".into())
    );
    // Defaults otherwise.
    let sts = stateful_set(&payments(VaultSpec::default()), &settings()).unwrap();
    let r = pod(&sts).containers[0].resources.clone().unwrap();
    assert!(r.requests.unwrap().contains_key("memory"));
    assert!(pod(&sts).node_selector.is_none());
}

#[test]
fn the_service_maps_443_to_the_server_and_is_private_by_default() {
    let s = service(&payments(VaultSpec::default())).unwrap();
    let spec = s.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.selector.unwrap(), selector_labels("payments"));
    let https = &spec.ports.as_ref().unwrap()[0];
    assert_eq!(https.port, 443);
    assert_eq!(https.target_port, Some(IntOrString::String("https".into())));
    let mut public = VaultSpec::default();
    public.network.public_network_access = PublicNetworkAccess::Enabled;
    let s = service(&payments(public)).unwrap();
    assert_eq!(s.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
}

fn ingress(np: &NetworkPolicy) -> serde_json::Value {
    serde_json::to_value(np.spec.as_ref().unwrap()).unwrap()
}

#[test]
fn network_policy_for_allow_opens_both_ports_to_everyone() {
    let np = network_policy(&payments(VaultSpec::default()), &settings()).unwrap();
    owned_by_the_vault(&np.metadata);
    assert_eq!(
        ingress(&np),
        json!({
            "podSelector": {"matchLabels": selector_labels("payments")},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [
                {"port": "https", "protocol": "TCP"},
                {"port": "metrics", "protocol": "TCP"}
            ]}]
        })
    );
}

#[test]
fn network_policy_for_deny_admits_the_operator_only() {
    let mut spec = VaultSpec::default();
    spec.network.default_action = DefaultAction::Deny;
    let np = network_policy(&payments(spec), &settings()).unwrap();
    let v = ingress(&np);
    assert_eq!(
        v["ingress"][0],
        json!({
            "from": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kvault-system"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kvault-operator"}}
            }],
            "ports": [{"port": "https", "protocol": "TCP"}]
        })
    );
    assert_eq!(
        v["ingress"][1],
        json!({"from": [{"namespaceSelector": {}}], "ports": [{"port": "metrics", "protocol": "TCP"}]})
    );
}

#[test]
fn network_policy_for_deny_with_rules_and_peers() {
    let mut spec = VaultSpec::default();
    spec.network.default_action = DefaultAction::Deny;
    spec.network.ip_rules = vec![
        "192.0.2.7".into(),
        "10.20.1.0/16".into(),
        "2001:db8::1".into(),
    ];
    spec.network.allowed_peers = vec![
        NetworkPeer {
            namespace_selector: None,
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("role".into(), "web".into())])),
                ..Default::default()
            }),
        },
        NetworkPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("team".into(), "a".into())])),
                ..Default::default()
            }),
            pod_selector: None,
        },
    ];
    let np = network_policy(&payments(spec), &settings()).unwrap();
    let from = ingress(&np)["ingress"][0]["from"].clone();
    assert_eq!(
        from.as_array().unwrap()[1..],
        [
            json!({"ipBlock": {"cidr": "192.0.2.7/32"}}),
            json!({"ipBlock": {"cidr": "10.20.0.0/16"}}),
            json!({"ipBlock": {"cidr": "2001:db8::1/128"}}),
            // A podSelector alone: pods of the vault's namespace.
            json!({"podSelector": {"matchLabels": {"role": "web"}}}),
            json!({"namespaceSelector": {"matchLabels": {"team": "a"}}}),
        ]
    );
}

#[test]
fn a_bad_ip_rule_is_an_error_not_an_open_door() {
    let mut spec = VaultSpec::default();
    spec.network.default_action = DefaultAction::Deny;
    spec.network.ip_rules = vec!["everyone".into()];
    assert_eq!(
        network_policy(&payments(spec), &settings()).err(),
        Some(DesiredError::IpRule("everyone".into()))
    );
}

#[test]
fn a_disruption_budget_only_with_several_replicas() {
    assert!(
        pod_disruption_budget(&payments(VaultSpec::default()))
            .unwrap()
            .is_none()
    );
    let none = VaultSpec {
        replicas: 0,
        ..Default::default()
    };
    assert!(pod_disruption_budget(&payments(none)).unwrap().is_none());
    let three = VaultSpec {
        replicas: 3,
        ..Default::default()
    };
    let pdb = pod_disruption_budget(&payments(three)).unwrap().unwrap();
    owned_by_the_vault(&pdb.metadata);
    let s = pdb.spec.unwrap();
    assert_eq!(s.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(
        s.selector.unwrap().match_labels.unwrap(),
        selector_labels("payments")
    );
}

#[test]
fn the_master_key_secret_is_immutable_and_outlives_the_vault() {
    let s = master_key_secret(&payments(VaultSpec::default()), "a2V5").unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("payments-master-key"));
    assert!(s.metadata.owner_references.is_none());
    labelled(&s.metadata);
    assert_eq!(s.immutable, Some(true));
    assert_eq!(s.data.unwrap()[MASTER_KEY_FILE].0, b"a2V5");
    // The volume the server reads it from is that Secret.
    let sts = stateful_set(&payments(VaultSpec::default()), &settings()).unwrap();
    let vol = pod(&sts)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "master-key")
        .unwrap();
    assert_eq!(
        vol.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("payments-master-key")
    );
}

#[test]
fn the_tls_secret_and_config_maps() {
    let v = payments(VaultSpec::default());
    let s = tls_secret(&v, "CERT", "KEY", "CA", "2027-01-01T00:00:00Z").unwrap();
    owned_by_the_vault(&s.metadata);
    assert_eq!(s.metadata.name.as_deref(), Some("payments-tls"));
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(
        s.metadata.annotations.unwrap()[NOT_AFTER_ANNOTATION],
        "2027-01-01T00:00:00Z"
    );
    let data = s.data.unwrap();
    assert_eq!(data["tls.crt"].0, b"CERT");
    assert_eq!(data["tls.key"].0, b"KEY");
    assert_eq!(data["ca.crt"].0, b"CA");
    let cm = cluster_jwks_config_map(&v, "{\"keys\":[]}").unwrap();
    owned_by_the_vault(&cm.metadata);
    assert_eq!(cm.metadata.name.as_deref(), Some("payments-cluster-jwks"));
    assert_eq!(cm.data.unwrap()[JWKS_FILE], "{\"keys\":[]}");
    let ca = ca_config_map("team-a", "PEM");
    assert_eq!(ca.metadata.name.as_deref(), Some("kvault-ca"));
    let data = ca.data.unwrap();
    assert_eq!(data["ca.crt"], "PEM");
    assert!(data["ca-bundle.crt"].ends_with("PEM"));
    // The bundle: the system roots, then the kvault CA (on a line of its own).
    let cm = ca_config_map_with_roots("team-a", "KVAULT\n", Some("ROOT-1\nROOT-2"));
    let data = cm.data.unwrap();
    assert_eq!(data["ca.crt"], "KVAULT\n");
    assert_eq!(data["ca-bundle.crt"], "ROOT-1\nROOT-2\nKVAULT\n");
    let alone = ca_config_map_with_roots("team-a", "KVAULT\n", None)
        .data
        .unwrap();
    assert_eq!(alone["ca-bundle.crt"], "KVAULT\n");
    // The server reads the JWKS where the policy says it is.
    let sts = stateful_set(&v, &settings()).unwrap();
    let m = pod(&sts).containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "cluster-jwks")
        .unwrap()
        .mount_path
        .clone();
    assert_eq!(format!("{m}/{JWKS_FILE}"), CLUSTER_JWKS_PATH);
}

#[test]
fn certificate_names_cover_every_way_to_reach_the_service() {
    assert_eq!(
        certificate_sans("payments", "team-a", "cluster.local"),
        [
            "payments.team-a.svc",
            "payments.team-a.svc.cluster.local",
            "payments.team-a",
            "payments"
        ]
    );
}

#[test]
fn the_certificate_request_issues_a_server_certificate_with_those_names() {
    use crate::crypto::keys::{Curve, KeyMaterial};
    use crate::crypto::x509::{self, CertRequest, Signer};
    let now = 1_800_000_000;
    let ca_key = KeyMaterial::generate_ec(Curve::P256).unwrap();
    let ca = x509::issue(
        &CertRequest {
            subject: "CN=kvault operator CA".into(),
            validity_months: 120,
            ca: true,
            now,
            ..Default::default()
        },
        &ca_key,
        Signer::SelfSigned,
    )
    .unwrap();
    let req =
        server_certificate_request(&payments(VaultSpec::default()), &settings(), now).unwrap();
    assert!(!req.ca);
    let key = KeyMaterial::generate_ec(Curve::P256).unwrap();
    let der = x509::issue(
        &req,
        &key,
        Signer::Ca {
            cert_der: &ca,
            key: &ca_key,
        },
    )
    .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sans,
        certificate_sans("payments", "team-a", "cluster.local")
    );
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);
    let parsed = x509::parse(&der).unwrap();
    assert!(parsed.exp - now > 80 * 86_400);
    assert!(!certificate_needs_renewal(Some(parsed.exp), now));
    assert!(certificate_needs_renewal(
        Some(parsed.exp),
        parsed.exp - 29 * 86_400
    ));
    assert!(certificate_needs_renewal(None, now));
}

fn postgres_spec(replicas: i32, ca: bool) -> VaultSpec {
    VaultSpec {
        replicas,
        storage: crate::api::StorageSpec {
            embedded: None,
            postgres: Some(crate::api::PostgresStorage {
                secret_name: "payments-db".into(),
                ca_from_secret: ca,
                schema: None,
                max_connections: 24,
            }),
        },
        ..VaultSpec::default()
    }
}

#[test]
fn a_postgres_vault_gets_its_connection_from_the_secret_and_no_volume() {
    use clap::Parser;
    let v = payments(postgres_spec(3, true));
    let mut args = server_args(&v, &settings()).unwrap();
    assert!(!args.contains(&"--data-dir".to_string()));
    // The URL reaches the server as KVAULT_STORAGE from the Secret's `url`.
    let sts = stateful_set(&v, &settings()).unwrap();
    let c = &pod(&sts).containers[0];
    let env = c.env.as_ref().unwrap();
    let url = env.iter().find(|e| e.name == "KVAULT_STORAGE").unwrap();
    let from = url
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("payments-db", "url")
    );
    assert!(url.value.is_none(), "never the URL itself in the manifest");
    // The server's own validation accepts the command line with that URL.
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&pw, "s3cret\n").unwrap();
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    for (flag, path) in [("--storage-password-file", &pw), ("--storage-ca-file", &ca)] {
        let i = args.iter().position(|a| a == flag).unwrap();
        assert!(args[i + 1].starts_with(STORAGE_SECRET_DIR));
        args[i + 1] = path.display().to_string();
    }
    args.extend([
        "--storage".into(),
        "postgres://kvault@db.team-a.svc:5432/vaults?sslmode=require".into(),
    ]);
    let parsed = ServerCommandLine::try_parse_from(&args).unwrap().options;
    let config = ServerConfig::from_options(parsed).unwrap();
    match &config.storage {
        crate::server::config::StorageConfig::Postgres(p) => {
            assert_eq!(p.schema, "kv_team_a_payments");
            assert_eq!(p.max_connections, 24);
            assert_eq!(p.password.as_deref().map(String::as_str), Some("s3cret"));
            assert!(p.ca_pem.is_some());
        }
        other => panic!("postgres storage expected, got {other:?}"),
    }
    // No claim: the data lives in the database; the Secret is mounted read-only.
    let spec = sts.spec.as_ref().unwrap();
    assert!(spec.volume_claim_templates.is_none());
    assert_eq!(spec.replicas, Some(3));
    let volumes = pod(&sts).volumes.as_ref().unwrap();
    let storage = volumes.iter().find(|v| v.name == "storage").unwrap();
    assert_eq!(
        storage.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("payments-db")
    );
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "data" && v.empty_dir.is_some())
    );
    let m = c.volume_mounts.as_ref().unwrap();
    assert!(
        m.iter()
            .any(|m| m.name == "storage" && m.read_only == Some(true))
    );
}

#[test]
fn several_replicas_get_a_disruption_budget_and_prefer_different_nodes() {
    let v = payments(postgres_spec(3, false));
    let d = desired_objects(&v, &settings()).unwrap();
    let pdb = d.pod_disruption_budget.expect("a PDB with 3 replicas");
    assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));
    let anti = pod(&d.stateful_set)
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("anti-affinity");
    assert_eq!(
        anti[0].pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert_eq!(
        anti[0]
            .pod_affinity_term
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels,
        Some(selector_labels("payments"))
    );
    assert!(
        !server_args(&v, &settings())
            .unwrap()
            .contains(&"--storage-ca-file".to_string())
    );
    // One replica: neither.
    let one = desired_objects(&payments(postgres_spec(1, false)), &settings()).unwrap();
    assert!(one.pod_disruption_budget.is_none());
    assert!(pod(&one.stateful_set).affinity.is_none());
}

#[test]
fn default_schemas_are_identifiers_and_distinct() {
    assert_eq!(postgres_schema("team-a", "payments"), "kv_team_a_payments");
    let long_ns = "a".repeat(63);
    let s1 = postgres_schema(&long_ns, "payments-eu-west");
    let s2 = postgres_schema(&long_ns, "payments-eu-east");
    assert_ne!(s1, s2);
    for s in [&s1, &s2] {
        crate::server::store::postgres::validate_schema(s).unwrap();
    }
}

#[test]
fn only_the_tls_secret_carries_the_watched_label() {
    let v = payments(VaultSpec::default());
    let tls = tls_secret(&v, "chain", "key", "ca", "2027-01-01T00:00:00Z").unwrap();
    let key = master_key_secret(&v, "a2V5").unwrap();
    let (k, val) = SECRET_ROLE_LABEL;
    assert_eq!(
        tls.metadata
            .labels
            .as_ref()
            .unwrap()
            .get(k)
            .map(String::as_str),
        Some(val)
    );
    // The operator's watch selects by this label: a master key must never match it.
    assert!(!key.metadata.labels.as_ref().unwrap().contains_key(k));
}
