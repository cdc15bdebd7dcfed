//! The vault's StatefulSet: one `kvault server` container, its pod and its data volume.

use super::*;
use crate::api::VaultSpec;

pub fn stateful_set(
    vault: &Vault,
    settings: &OperatorSettings,
) -> Result<StatefulSet, DesiredError> {
    let id = identity(vault)?;
    let spec = &vault.spec;
    let mut pod = vault_pod(&id, spec, vault_container(vault, settings)?);
    let claims = data_volume(&id, spec, &mut pod);
    let mut pod_labels = labels(&id.name);
    pod_labels.extend(selector_labels(&id.name));
    Ok(StatefulSet {
        metadata: meta(&id, id.name.clone(), true),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(id.name.clone()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&id.name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    // For Prometheus setups that scrape by annotation (the chart's PodMonitor
                    // selects the pods by label instead).
                    annotations: Some(BTreeMap::from([
                        ("prometheus.io/scrape".into(), "true".into()),
                        ("prometheus.io/port".into(), METRICS_PORT.to_string()),
                        ("prometheus.io/path".into(), "/metrics".into()),
                    ])),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: claims,
            // The data outlives the StatefulSet: soft delete keeps it, purge removes it.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The `kvault server` container: its arguments, ports, probes, a locked-down security
/// context, and the mounts of its Secrets and ConfigMaps.
fn vault_container(vault: &Vault, settings: &OperatorSettings) -> Result<Container, DesiredError> {
    let spec = &vault.spec;
    let postgres = spec.storage.postgres.as_ref();
    let mut mounts = vec![
        mount("data", DATA_MOUNT, false),
        mount("tls", TLS_DIR, true),
        mount("master-key", MASTER_KEY_DIR, true),
        mount(
            "cluster-jwks",
            CLUSTER_JWKS_PATH
                .trim_end_matches(JWKS_FILE)
                .trim_end_matches('/'),
            true,
        ),
        mount("tmp", "/tmp", false),
    ];
    let mut env = Vec::new();
    if let Some(pg) = postgres {
        mounts.push(mount("storage", STORAGE_SECRET_DIR, true));
        env.push(EnvVar {
            name: "KVAULT_STORAGE".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: pg.secret_name.clone(),
                    key: "url".into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    Ok(Container {
        name: "kvault".into(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        args: Some(server_args(vault, settings)?),
        ports: Some(vec![
            ContainerPort {
                name: Some("https".into()),
                container_port: HTTPS_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        readiness_probe: Some(https_probe(5, 3)),
        liveness_probe: Some(https_probe(20, 6)),
        startup_probe: Some(https_probe(2, 60)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        env: (!env.is_empty()).then_some(env),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    })
}

/// The pod: the vault's own service account (no API token), non-root, its volumes and the
/// spec's scheduling fields (replicas spread over nodes unless an affinity is given).
fn vault_pod(id: &Identity, spec: &VaultSpec, container: Container) -> PodSpec {
    PodSpec {
        service_account_name: Some(id.name.clone()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            fs_group_change_policy: Some("OnRootMismatch".into()),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            secret_volume(
                "tls",
                tls_secret_name(&id.name),
                &[("tls.crt", "tls.crt"), ("tls.key", "tls.key")],
            ),
            secret_volume(
                "master-key",
                master_key_secret_name(&id.name),
                &[(MASTER_KEY_FILE, MASTER_KEY_FILE)],
            ),
            Volume {
                name: "cluster-jwks".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: jwks_config_map_name(&id.name),
                    default_mode: Some(0o444),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity("16Mi".into())),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        affinity: spec
            .affinity
            .clone()
            .or_else(|| (spec.replicas > 1).then(|| spread_replicas(&id.name))),
        topology_spread_constraints: (!spec.topology_spread_constraints.is_empty())
            .then(|| spec.topology_spread_constraints.clone()),
        priority_class_name: spec.priority_class_name.clone(),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    }
}

/// The data volume: a claim template for embedded storage (the data outlives the pod), or,
/// for PostgreSQL, the database Secret and a small scratch directory.
fn data_volume(
    id: &Identity,
    spec: &VaultSpec,
    pod: &mut PodSpec,
) -> Option<Vec<PersistentVolumeClaim>> {
    let postgres = spec.storage.postgres.as_ref();
    match postgres {
        Some(pg) => {
            let volumes = pod.volumes.get_or_insert_with(Vec::new);
            volumes.push(Volume {
                name: "storage".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(pg.secret_name.clone()),
                    default_mode: Some(0o400),
                    ..Default::default()
                }),
                ..Default::default()
            });
            // Nothing to keep on the pod: the data is in the database.
            volumes.push(Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity("64Mi".into())),
                    ..Default::default()
                }),
                ..Default::default()
            });
            None
        }
        None => {
            let embedded = spec.storage.embedded.clone().unwrap_or_default();
            Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(labels(&id.name)),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: embedded.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".into(), embedded.size)])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }])
        }
    }
}
