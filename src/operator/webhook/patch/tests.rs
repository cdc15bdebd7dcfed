use super::*;
use serde_json::json;

fn inj() -> Injection {
    Injection {
        authority_host: "https://kvault-identity.kvault-system.svc".into(),
        tenant_id: DEFAULT_TENANT_ID.into(),
        audience: DEFAULT_AUDIENCE.into(),
        default_token_expiration_secs: DEFAULT_TOKEN_EXPIRATION_SECS,
        ca_config_map: crate::operator::desired::CA_CONFIG_MAP.into(),
    }
}

#[test]
fn the_defaults_are_azures_and_the_charts() {
    assert_eq!(inj().tenant_id, "adfs");
    assert_eq!(inj().audience, "api://AzureADTokenExchange");
    assert_eq!(inj().default_token_expiration_secs, 3600);
    assert_eq!(inj().ca_config_map, "kvault-ca");
    let values = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kvault/values.yaml"),
    )
    .unwrap();
    let block = values.split("\nworkloadIdentity:\n").nth(1).unwrap();
    for line in [
        format!("  tenantId: {DEFAULT_TENANT_ID}\n"),
        format!("  audience: {DEFAULT_AUDIENCE}\n"),
        format!("  tokenExpirationSeconds: {DEFAULT_TOKEN_EXPIRATION_SECS}\n"),
    ] {
        assert!(block.contains(&line), "charts/kvault/values.yaml: {line}");
    }
}

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

/// A labelled pod with these extra metadata/spec fields.
fn labelled(spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "labels": {"azure.workload.identity/use": "true"}},
        "spec": spec,
    })
}

fn sa(annotations: serde_json::Value) -> ServiceAccount {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "payments", "namespace": "team-a", "annotations": annotations},
    }))
    .unwrap()
}

/// Applies the patch as the API server does, to the pod's JSON; the patched pod.
fn apply(doc: &serde_json::Value, p: &Patch) -> (serde_json::Value, Pod) {
    let mut out = doc.clone();
    json_patch::patch(&mut out, p).unwrap();
    let typed = serde_json::from_value(out.clone()).unwrap();
    (out, typed)
}

/// Patches, applies, and checks that patching the result again changes nothing.
fn inject(doc: &serde_json::Value, sa: Option<&ServiceAccount>) -> Pod {
    let p = pod_patch(&pod(doc.clone()), "team-a", sa, &inj()).unwrap();
    assert!(!p.0.is_empty());
    let (out, typed) = apply(doc, &p);
    let again = pod_patch(&typed, "team-a", sa, &inj()).unwrap();
    assert!(again.0.is_empty(), "not idempotent: {again:?}");
    // The typed pod and the JSON agree (nothing dropped by the round trip).
    assert_eq!(serde_json::to_value(&typed).unwrap(), out);
    typed
}

fn env_of(c: &Container) -> BTreeMap<String, String> {
    c.env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

fn mounts_of(c: &Container) -> BTreeMap<String, (String, Option<bool>)> {
    c.volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.name, (m.mount_path, m.read_only)))
        .collect()
}

fn volumes_of(p: &Pod) -> Vec<Volume> {
    p.spec.clone().unwrap().volumes.unwrap_or_default()
}

fn containers(p: &Pod) -> Vec<Container> {
    p.spec.clone().unwrap().containers
}

fn init_containers(p: &Pod) -> Vec<Container> {
    p.spec.clone().unwrap().init_containers.unwrap_or_default()
}

fn assert_injected(c: &Container, client_id: &str, tenant_id: &str) {
    let env = env_of(c);
    assert_eq!(env[AZURE_CLIENT_ID], client_id, "{}", c.name);
    assert_eq!(env[AZURE_TENANT_ID], tenant_id);
    assert_eq!(
        env[AZURE_FEDERATED_TOKEN_FILE],
        "/var/run/secrets/azure/tokens/azure-identity-token"
    );
    assert_eq!(
        env[AZURE_AUTHORITY_HOST],
        "https://kvault-identity.kvault-system.svc"
    );
    assert_eq!(
        env["NODE_EXTRA_CA_CERTS"],
        "/var/run/secrets/kvault/ca/ca.crt"
    );
    assert_eq!(
        env["SSL_CERT_FILE"],
        "/var/run/secrets/kvault/ca/ca-bundle.crt"
    );
    assert_eq!(
        env["REQUESTS_CA_BUNDLE"],
        "/var/run/secrets/kvault/ca/ca-bundle.crt"
    );
    let mounts = mounts_of(c);
    assert_eq!(
        mounts[TOKEN_VOLUME],
        ("/var/run/secrets/azure/tokens".to_string(), Some(true))
    );
    assert_eq!(
        mounts[CA_VOLUME],
        ("/var/run/secrets/kvault/ca".to_string(), Some(true))
    );
}

fn assert_not_injected(c: &Container) {
    let env = env_of(c);
    assert!(!env.contains_key(AZURE_CLIENT_ID), "{}", c.name);
    assert!(!env.contains_key("SSL_CERT_FILE"));
    let mounts = mounts_of(c);
    assert!(!mounts.contains_key(TOKEN_VOLUME) && !mounts.contains_key(CA_VOLUME));
}

fn token_projection(p: &Pod) -> ServiceAccountTokenProjection {
    let v = volumes_of(p)
        .into_iter()
        .find(|v| v.name == TOKEN_VOLUME)
        .unwrap();
    let sources = v.projected.unwrap().sources.unwrap();
    assert_eq!(sources.len(), 1);
    sources[0].service_account_token.clone().unwrap()
}

#[test]
fn a_bare_pod_gets_everything_with_whole_arrays() {
    let doc = labelled(json!({"containers": [{"name": "app", "image": "app:1"}]}));
    let p = pod_patch(&pod(doc.clone()), "team-a", None, &inj()).unwrap();
    // No env, volumeMounts or volumes arrays: each is added whole, never with `/-`.
    let paths: Vec<String> = p.0.iter().map(|op| op.path().to_string()).collect();
    assert_eq!(
        paths,
        [
            "/spec/containers/0/env",
            "/spec/containers/0/volumeMounts",
            "/spec/volumes"
        ]
    );
    let out = inject(&doc, None);
    let c = &containers(&out)[0];
    // No ServiceAccount read: kvault's convention for the client id, the default tenant.
    assert_injected(c, "system:serviceaccount:team-a:default", "adfs");
    assert_eq!(env_of(c).len(), 7);
    let t = token_projection(&out);
    assert_eq!(t.audience.as_deref(), Some("api://AzureADTokenExchange"));
    assert_eq!(t.expiration_seconds, Some(3600));
    assert_eq!(t.path, TOKEN_FILE);
    let ca = volumes_of(&out)
        .into_iter()
        .find(|v| v.name == CA_VOLUME)
        .unwrap()
        .config_map
        .unwrap();
    assert_eq!(ca.name, "kvault-ca");
    let items: Vec<(String, String)> = ca
        .items
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.path))
        .collect();
    assert_eq!(
        items,
        [
            ("ca.crt".to_string(), "ca.crt".to_string()),
            ("ca-bundle.crt".to_string(), "ca-bundle.crt".to_string())
        ]
    );
}

#[test]
fn pods_that_did_not_opt_in_are_left_alone() {
    let spec = json!({"containers": [{"name": "app", "image": "app:1"}]});
    for labels in [
        json!(null),
        json!({}),
        json!({"app": "x"}),
        json!({"azure.workload.identity/use": "false"}),
        json!({"azure.workload.identity/use": "True"}),
        json!({"azure.workload.identity/use": ""}),
    ] {
        let doc = json!({"metadata": {"name": "app", "labels": labels}, "spec": spec});
        let p = pod(doc);
        assert!(!wants_injection(&p));
        let patch = pod_patch(&p, "team-a", Some(&sa(json!({}))), &inj()).unwrap();
        assert!(patch.0.is_empty(), "{labels}: {patch:?}");
    }
    // The annotation (rather than the label) does not opt in either.
    let doc = json!({"metadata": {"annotations": {"azure.workload.identity/use": "true"}},
                     "spec": spec});
    assert!(
        pod_patch(&pod(doc), "team-a", None, &inj())
            .unwrap()
            .0
            .is_empty()
    );
}

#[test]
fn init_containers_are_injected_too() {
    let doc = labelled(json!({
        "initContainers": [{"name": "migrate", "image": "m:1"}, {"name": "wait", "image": "w:1"}],
        "containers": [{"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "s:1"}],
    }));
    let out = inject(&doc, None);
    for c in init_containers(&out).iter().chain(&containers(&out)) {
        assert_injected(c, "system:serviceaccount:team-a:default", "adfs");
    }
    // Pod volumes once, not per container.
    let names: Vec<String> = volumes_of(&out).into_iter().map(|v| v.name).collect();
    assert_eq!(names, [TOKEN_VOLUME, CA_VOLUME]);
}

#[test]
fn existing_env_mounts_and_volumes_are_kept_and_appended_to() {
    let doc = labelled(json!({
        "serviceAccountName": "payments",
        "containers": [{
            "name": "app", "image": "app:1",
            "env": [
                {"name": "LOG", "value": "debug"},
                // The user's own client id wins, and so does a variable from a Secret.
                {"name": "AZURE_CLIENT_ID", "value": "mine"},
                {"name": "SSL_CERT_FILE", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }));
    let p = pod_patch(&pod(doc.clone()), "team-a", None, &inj()).unwrap();
    assert!(p.0.iter().all(|op| op.path().to_string().ends_with("/-")));
    let out = inject(&doc, None);
    let c = &containers(&out)[0];
    let env = c.env.clone().unwrap();
    // The user's variables first, unchanged, in their order.
    assert_eq!(env[0].name, "LOG");
    assert_eq!(env[1].value.as_deref(), Some("mine"));
    assert_eq!(env[2].name, "SSL_CERT_FILE");
    assert!(env[2].value.is_none() && env[2].value_from.is_some());
    assert_eq!(env.iter().filter(|e| e.name == AZURE_CLIENT_ID).count(), 1);
    assert_eq!(env.iter().filter(|e| e.name == "SSL_CERT_FILE").count(), 1);
    assert_eq!(env.len(), 8);
    let map = env_of(c);
    assert_eq!(map[AZURE_TENANT_ID], "adfs");
    assert_eq!(
        map["REQUESTS_CA_BUNDLE"],
        "/var/run/secrets/kvault/ca/ca-bundle.crt"
    );
    let mounts: Vec<String> = c
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(mounts, ["data", TOKEN_VOLUME, CA_VOLUME]);
    let volumes: Vec<String> = volumes_of(&out).into_iter().map(|v| v.name).collect();
    assert_eq!(volumes, ["data", TOKEN_VOLUME, CA_VOLUME]);
}

#[test]
fn empty_arrays_are_appended_to() {
    let doc = labelled(json!({
        "containers": [{"name": "app", "image": "app:1", "env": [], "volumeMounts": []}],
        "volumes": [],
    }));
    let out = inject(&doc, None);
    assert_injected(
        &containers(&out)[0],
        "system:serviceaccount:team-a:default",
        "adfs",
    );
    assert_eq!(volumes_of(&out).len(), 2);
}

#[test]
fn opted_out_containers_get_nothing() {
    let mut doc = labelled(json!({
        "initContainers": [{"name": "istio-init", "image": "i:1"}],
        "containers": [
            {"name": "app", "image": "app:1"},
            {"name": "istio-proxy", "image": "p:1"},
            {"name": "metrics", "image": "m:1"},
        ],
    }));
    doc["metadata"]["annotations"] = json!({
        "azure.workload.identity/skip-containers": "istio-proxy; istio-init;;metrics"
    });
    let out = inject(&doc, None);
    let cs = containers(&out);
    assert_injected(&cs[0], "system:serviceaccount:team-a:default", "adfs");
    assert_not_injected(&cs[1]);
    assert_not_injected(&cs[2]);
    assert_not_injected(&init_containers(&out)[0]);
    // Every container skipped: nothing at all, not even the volumes.
    doc["metadata"]["annotations"]["azure.workload.identity/skip-containers"] =
        json!("istio-init;app;istio-proxy;metrics");
    let p = pod_patch(&pod(doc), "team-a", None, &inj()).unwrap();
    assert!(p.0.is_empty(), "{p:?}");
}

#[test]
fn an_injected_pod_gets_an_empty_patch() {
    let doc = labelled(json!({
        "initContainers": [{"name": "migrate", "image": "m:1"}],
        "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }));
    let p = pod_patch(&pod(doc.clone()), "team-a", Some(&sa(json!({}))), &inj()).unwrap();
    let (once, typed) = apply(&doc, &p);
    // Re-applied as the API server's reinvocation would: the same pod, an empty patch.
    assert!(
        pod_patch(&typed, "team-a", Some(&sa(json!({}))), &inj())
            .unwrap()
            .0
            .is_empty()
    );
    // Even with other settings now (another authority): what the pod has is kept.
    let mut other = inj();
    other.authority_host = "https://elsewhere".into();
    assert!(
        pod_patch(&typed, "team-a", None, &other)
            .unwrap()
            .0
            .is_empty()
    );
    let (twice, _) = apply(&once, &Patch(Vec::new()));
    assert_eq!(once, twice);
}

#[test]
fn a_mount_path_or_volume_the_user_already_has_is_not_duplicated() {
    let doc = labelled(json!({
        "containers": [{
            "name": "app", "image": "app:1",
            // Their own token at Azure's path, under another volume name.
            "volumeMounts": [{"name": "my-token", "mountPath": "/var/run/secrets/azure/tokens"}],
        }],
        "volumes": [
            {"name": "my-token", "emptyDir": {}},
            {"name": "kvault-ca", "configMap": {"name": "my-ca"}},
        ],
    }));
    let out = inject(&doc, None);
    let c = &containers(&out)[0];
    let mounts: Vec<(String, String)> = c
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.mount_path))
        .collect();
    assert_eq!(
        mounts,
        [
            (
                "my-token".to_string(),
                "/var/run/secrets/azure/tokens".to_string()
            ),
            (CA_VOLUME.to_string(), CA_MOUNT_PATH.to_string())
        ]
    );
    let volumes = volumes_of(&out);
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["my-token", "kvault-ca", TOKEN_VOLUME]);
    // Their kvault-ca volume is theirs.
    assert_eq!(volumes[1].config_map.as_ref().unwrap().name, "my-ca");
}

#[test]
fn the_service_accounts_client_id_and_tenant_id() {
    let doc = labelled(json!({
        "serviceAccountName": "payments",
        "containers": [{"name": "app", "image": "app:1"}],
    }));
    let annotated = sa(json!({
        "azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555",
        "azure.workload.identity/tenant-id": "contoso",
    }));
    let out = inject(&doc, Some(&annotated));
    assert_injected(
        &containers(&out)[0],
        "11111111-2222-3333-4444-555555555555",
        "contoso",
    );
    // Without annotations (or empty ones): the convention, with the pod's service account.
    for plain in [
        sa(json!({})),
        sa(
            json!({"azure.workload.identity/client-id": "", "azure.workload.identity/tenant-id": " "}),
        ),
    ] {
        let out = inject(&doc, Some(&plain));
        assert_injected(
            &containers(&out)[0],
            "system:serviceaccount:team-a:payments",
            "adfs",
        );
    }
}

#[test]
fn the_namespace_and_service_account_defaults() {
    // A pod made by a ReplicaSet: no namespace in the object, no service account named.
    let doc = json!({
        "metadata": {"generateName": "app-7d9f-", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "", "containers": [{"name": "app", "image": "app:1"}]},
    });
    let p = pod(doc.clone());
    assert_eq!(service_account_name(&p), "default");
    let out = pod_patch(&p, "team-b", None, &inj()).unwrap();
    let (_, typed) = apply(&doc, &out);
    assert_eq!(
        env_of(&containers(&typed)[0])[AZURE_CLIENT_ID],
        "system:serviceaccount:team-b:default"
    );
}

#[test]
fn token_expiration_from_the_pod_then_the_service_account() {
    let mut doc = labelled(json!({"containers": [{"name": "app", "image": "app:1"}]}));
    let with_sa = sa(json!({"azure.workload.identity/service-account-token-expiration": "7200"}));
    let out = inject(&doc, Some(&with_sa));
    assert_eq!(token_projection(&out).expiration_seconds, Some(7200));
    // The pod's annotation wins over the ServiceAccount's.
    doc["metadata"]["annotations"] =
        json!({"azure.workload.identity/service-account-token-expiration": "86400"});
    let out = inject(&doc, Some(&with_sa));
    assert_eq!(token_projection(&out).expiration_seconds, Some(86400));
    doc["metadata"]["annotations"] =
        json!({"azure.workload.identity/service-account-token-expiration": "3600"});
    let out = inject(&doc, Some(&with_sa));
    assert_eq!(token_projection(&out).expiration_seconds, Some(3600));
    // The webhook's default when neither says.
    let mut longer = inj();
    longer.default_token_expiration_secs = 43200;
    let bare = labelled(json!({"containers": [{"name": "app", "image": "app:1"}]}));
    let p = pod_patch(&pod(bare.clone()), "team-a", None, &longer).unwrap();
    assert_eq!(
        token_projection(&apply(&bare, &p).1).expiration_seconds,
        Some(43200)
    );
}

#[test]
fn token_expiration_out_of_bounds_is_refused_with_the_annotation_named() {
    let key = "azure.workload.identity/service-account-token-expiration";
    for (value, want) in [
        (
            "3599",
            "pod team-a/app: 3599 is out of range (from 3600 to 86400 seconds)",
        ),
        ("86401", "pod team-a/app: 86401 is out of range"),
        ("0", "out of range"),
        ("-3600", "out of range"),
        (
            "1h",
            "pod team-a/app: \"1h\" is not a whole number of seconds",
        ),
        ("3600.5", "is not a whole number"),
    ] {
        let mut doc = labelled(json!({"containers": [{"name": "app", "image": "app:1"}]}));
        doc["metadata"]["annotations"] = json!({key: value});
        let e = pod_patch(&pod(doc), "team-a", None, &inj()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(key), "{msg}");
        assert!(msg.contains(want), "{value}: {msg}");
    }
    // On the ServiceAccount: it is named.
    let doc = labelled(json!({"serviceAccountName": "payments",
                              "containers": [{"name": "app", "image": "app:1"}]}));
    let e = pod_patch(
        &pod(doc.clone()),
        "team-a",
        Some(&sa(json!({key: "100"}))),
        &inj(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        PatchError::TokenExpirationOutOfRange {
            on: "ServiceAccount team-a/payments".into(),
            value: 100
        }
    );
    // A bad default is refused too, rather than given to the kubelet.
    let mut bad = inj();
    bad.default_token_expiration_secs = 600;
    let e = pod_patch(&pod(doc), "team-a", None, &bad).unwrap_err();
    assert!(e.to_string().contains("the webhook's default"), "{e}");
    // An unlabelled pod is not judged at all.
    let doc = json!({"metadata": {"annotations": {key: "1"}},
                     "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
    assert!(pod_patch(&pod(doc), "team-a", None, &inj()).is_ok());
}

#[test]
fn the_proxy_sidecar_annotations_are_ignored() {
    let mut doc = labelled(json!({"containers": [{"name": "app", "image": "app:1"}]}));
    doc["metadata"]["annotations"] = json!({
        "azure.workload.identity/inject-proxy-sidecar": "true",
        "azure.workload.identity/proxy-sidecar-port": "8000",
    });
    let out = inject(&doc, None);
    let spec = out.spec.clone().unwrap();
    assert_eq!(spec.containers.len(), 1);
    assert!(spec.init_containers.is_none());
    assert_injected(
        &spec.containers[0],
        "system:serviceaccount:team-a:default",
        "adfs",
    );
}
