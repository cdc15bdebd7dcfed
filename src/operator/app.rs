//! The `kvault operator` program: options, start-up checks (CRDs, CA), leader election, the
//! controllers, the purge loop and the health endpoint. The reconciles live in
//! [`super::controller`].

use super::FIELD_MANAGER;
use super::OperatorSettings;
use super::ca::{self, Ca};
use super::controller::{
    Context, Metrics, controller, error_policy, grant_controller, grant_error_policy,
    purge_expired, reconcile, reconcile_grant,
};
use super::leader;
use super::push::ServiceAccountEndpoint;
use super::scope::{WatchScope, api_in};
use super::sync;
use crate::api::{AccessPolicy, RoleAssignment, SecretSync, Vault};
use anyhow::Context as _;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The image the vault StatefulSets run unless `--image` says otherwise.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/kvault/kvault:", env!("CARGO_PKG_VERSION"));
/// `kvault operator`: reconcile `Vault`, `AccessPolicy` and `RoleAssignment` resources.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorOptions {
    /// The operator's own namespace (its CA Secret lives there).
    #[arg(
        long,
        env = "KVAULT_OPERATOR_NAMESPACE",
        default_value = "kvault-system"
    )]
    pub namespace: String,
    /// The operator's service account: the only principal a vault lets replace its policy.
    #[arg(
        long,
        env = "KVAULT_OPERATOR_SERVICE_ACCOUNT",
        default_value = "kvault-operator"
    )]
    pub service_account: String,
    /// The kvault image the vault StatefulSets run.
    #[arg(long, env = "KVAULT_IMAGE", default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// imagePullPolicy of the vault containers (default: the cluster's).
    #[arg(long, env = "KVAULT_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: Option<String>,
    /// The cluster's DNS domain.
    #[arg(long, env = "KVAULT_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The `iss` of the cluster's service-account tokens
    /// (default: https://kubernetes.default.svc.<cluster domain>).
    #[arg(long, env = "KVAULT_CLUSTER_ISSUER")]
    pub cluster_issuer: Option<String>,
    /// The cluster's pod network(s), comma-separated CIDRs (used with `allowedPeers`).
    #[arg(long = "pod-cidr", env = "KVAULT_POD_CIDRS", value_delimiter = ',')]
    pub pod_cidrs: Vec<String>,
    /// The CA bundle trusted for policy pushes (default: the operator's own CA, which signs
    /// the vaults' server certificates).
    #[arg(long, env = "KVAULT_VAULT_CA_FILE")]
    pub vault_ca_file: Option<std::path::PathBuf>,
    /// This replica's name in the leader Lease (default: the pod's name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, env = "KVAULT_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Watch only these namespaces (repeat, or comma-separate): the operator then needs a
    /// Role in each of them and no cluster-wide rights on namespaced objects
    /// (`--print-rbac` prints them). Default: every namespace.
    #[arg(
        long = "watch-namespace",
        env = "KVAULT_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub watch_namespaces: Vec<String>,
    /// Print the ClusterRole, Roles and bindings this operator needs (for --namespace,
    /// --service-account and --watch-namespace) as YAML, and exit.
    #[arg(long)]
    pub print_rbac: bool,
    #[command(flatten)]
    pub workload_identity: super::identity::IdentityOptions,
    /// Tests only: connect policy pushes to this URL (e.g. `https://127.0.0.1:18443`) instead
    /// of each vault's Service URL (tests/k8s runs the vault as a local `kvault server`).
    #[arg(long, hide = true)]
    pub test_vault_address: Option<String>,
    /// How often deleted vaults are checked for the end of their retention period.
    #[arg(long, env = "KVAULT_PURGE_INTERVAL", default_value = "10m", value_parser = crate::clock::parse_duration)]
    pub purge_interval: Duration,
    /// Reconcile `SecretSync` resources (docs/sync.md).
    #[arg(long, env = "KVAULT_SECRET_SYNC", default_value_t = true, action = clap::ArgAction::Set)]
    pub secret_sync: bool,
    /// Changes closer together than this give one rollout restart.
    #[arg(long, env = "KVAULT_SYNC_DEBOUNCE", default_value = "2s", value_parser = crate::clock::parse_duration)]
    pub sync_debounce: Duration,
    /// At most one rollout restart per workload this often (later changes wait for it).
    #[arg(long, env = "KVAULT_RESTART_MIN_INTERVAL", default_value = "1m", value_parser = crate::clock::parse_duration)]
    pub restart_min_interval: Duration,
    /// Tests only: seconds added to the clock the purge judges retention periods by
    /// (tests/k8s purges a vault "8 days later" without waiting).
    #[arg(long, hide = true, default_value_t = 0)]
    pub test_clock_offset: i64,
}

impl OperatorOptions {
    /// The namespaces `--watch-namespace` names (none: the whole cluster).
    pub fn scope(&self) -> Result<WatchScope, String> {
        WatchScope::from_namespaces(&self.watch_namespaces)
    }

    /// The settings every vault's desired objects are computed with.
    pub fn settings(&self) -> Result<OperatorSettings, String> {
        for cidr in &self.pod_cidrs {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                return Err(format!(
                    "--pod-cidr '{cidr}' is not a CIDR like 10.244.0.0/16"
                ));
            }
        }
        let cluster_issuer = self
            .cluster_issuer
            .clone()
            .unwrap_or_else(|| format!("https://kubernetes.default.svc.{}", self.cluster_domain));
        if !cluster_issuer.starts_with("https://") {
            return Err(format!(
                "--cluster-issuer must be an https:// URL (got '{cluster_issuer}')"
            ));
        }
        if self.service_account.is_empty() || self.namespace.is_empty() {
            return Err("--namespace and --service-account must not be empty".into());
        }
        Ok(OperatorSettings {
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
            image: self.image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            cluster_domain: self.cluster_domain.clone(),
            cluster_issuer,
            pod_cidrs: self.pod_cidrs.clone(),
            token_service: self.workload_identity.settings(&self.namespace),
            sync_events: None,
        })
    }
}

/// Fails with instructions when a kvault CRD is not installed (or not readable in a watched
/// namespace).
pub async fn check_crds(client: &Client, scope: &WatchScope) -> anyhow::Result<()> {
    for ns in scope.targets() {
        check_crds_in(client, ns).await?;
    }
    Ok(())
}

async fn check_crds_in(client: &Client, ns: Option<&str>) -> anyhow::Result<()> {
    let lp = ListParams::default().limit(1);
    let results = [
        (
            "vaults.kvault.dev",
            api_in::<Vault>(client, ns).list(&lp).await.err(),
        ),
        (
            "accesspolicies.kvault.dev",
            api_in::<AccessPolicy>(client, ns).list(&lp).await.err(),
        ),
        (
            "roleassignments.kvault.dev",
            api_in::<RoleAssignment>(client, ns).list(&lp).await.err(),
        ),
        (
            "secretsyncs.kvault.dev",
            api_in::<SecretSync>(client, ns).list(&lp).await.err(),
        ),
    ];
    let place = ns.map_or_else(
        || "in all namespaces".to_string(),
        |n| format!("in namespace {n}"),
    );
    for (crd, error) in results {
        match error {
            None => {}
            Some(kube::Error::Api(s)) if s.is_not_found() => anyhow::bail!(
                "the CustomResourceDefinition {crd} is not installed: apply them with \
                 `kubectl apply -f crds/` (or `kvault crd | kubectl apply -f -`)"
            ),
            Some(kube::Error::Api(s)) if s.code == 403 => anyhow::bail!(
                "the operator may not list {crd} {place} ({}): check its RBAC \
                 (`kvault operator --print-rbac`, docs/operator.md)",
                s.message
            ),
            Some(e) => anyhow::bail!("cannot list {crd} {place}: {e}"),
        }
    }
    Ok(())
}

/// Loads the operator's CA from its Secret, creating it at first start.
pub async fn ensure_ca(client: &Client, namespace: &str) -> anyhow::Result<Ca> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(s) = secrets.get_opt(ca::CA_SECRET).await? {
        return Ok(Ca::from_secret(&s)?);
    }
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let generated = Ca::generate(now)?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match secrets.create(&pp, &generated.to_secret(namespace)?).await {
        Ok(_) => {
            tracing::info!(namespace, secret = ca::CA_SECRET, "operator CA created");
            Ok(generated)
        }
        // Another replica made it first: use theirs.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let s = secrets.get(ca::CA_SECRET).await?;
            Ok(Ca::from_secret(&s)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Applies `kvault-ca` (the CA certificate) in the operator's own namespace too, so that
/// the CSI provider running there can mount it before any vault exists in that namespace.
pub async fn publish_ca(client: &Client, namespace: &str, ca: &Ca) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = super::desired::ca_config_map(namespace, &ca.cert_pem);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(super::desired::CA_CONFIG_MAP, &pp, &Patch::Apply(&cm))
        .await?;
    Ok(())
}

/// `kvault operator`: until SIGTERM or Ctrl-C.
pub async fn run(opts: OperatorOptions) -> anyhow::Result<()> {
    let mut settings = opts.settings().map_err(anyhow::Error::msg)?;
    let scope = opts.scope().map_err(anyhow::Error::msg)?;
    if opts.print_rbac {
        use std::io::Write;
        let yaml = super::rbac::operator_rbac_yaml(
            &settings.namespace,
            &settings.service_account,
            &scope,
        )?;
        std::io::stdout().lock().write_all(yaml.as_bytes())?;
        return Ok(());
    }
    if let Some(address) = &opts.test_vault_address {
        tracing::warn!(%address, "tests only: policy pushes go to this address");
        super::push::set_test_vault_address(address.clone());
    }
    // kube's error already carries its causes: one line, not anyhow's repeated chain.
    let client = Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("cannot configure the Kubernetes client (in-cluster or kubeconfig): {e}")
    })?;
    check_crds(&client, &scope).await?;
    let ca = Arc::new(
        ensure_ca(&client, &settings.namespace)
            .await
            .with_context(|| {
                format!(
                    "cannot load or create Secret {}/{}",
                    settings.namespace,
                    ca::CA_SECRET
                )
            })?,
    );
    publish_ca(&client, &settings.namespace, &ca)
        .await
        .with_context(|| {
            format!(
                "cannot apply ConfigMap {}/{}",
                settings.namespace,
                super::desired::CA_CONFIG_MAP
            )
        })?;
    // The vault client takes the CA as a file.
    let vault_ca_file = match &opts.vault_ca_file {
        Some(f) => f.clone(),
        None => {
            let f = std::env::temp_dir().join("kvault-operator-ca.crt");
            std::fs::write(&f, &ca.cert_pem)
                .with_context(|| format!("cannot write {}", f.display()))?;
            f
        }
    };

    let mut registry = Registry::default();
    crate::openmetrics::register_build_and_process(&mut registry, "operator");
    let metrics = Metrics::default().register(&mut registry);
    let sync_metrics = sync::reconcile::SyncMetrics::default().register(&mut registry);
    let connections =
        crate::listener::ConnectionMetrics::register(&mut registry, "kvault_operator_");
    // Vault events reach the SecretSyncs through the HTTPS listener, when it runs.
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sync_tx, sync_rx) = tokio::sync::mpsc::channel(sync::events::QUEUE);
    let sync_events = (opts.secret_sync && opts.workload_identity.workload_identity).then(|| {
        sync::events::SyncEventSettings {
            endpoint_base: opts.workload_identity.authority_host(&settings.namespace),
            ca_bundle: ca.cert_pem.clone(),
            proof: sync::events::EventProof::new(ca.derive_mac_key(sync::events::PROOF_PURPOSE)),
        }
    });
    let events_router = match &sync_events {
        Some(s) => sync::events::router(s.proof.clone(), sync_tx, leading.clone()),
        None => axum::Router::new(),
    };
    let sync_rx = sync_events.is_some().then_some(sync_rx);
    settings.sync_events = sync_events;
    // Every replica serves workload identity, leader or not.
    let workload_identity = match opts.workload_identity.workload_identity {
        true => Some(
            super::identity::start(
                &client,
                &opts.workload_identity,
                &settings,
                ca.clone(),
                &mut registry,
                events_router,
            )
            .await?,
        ),
        false => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let http = tokio::spawn(serve_health(
        listener,
        Arc::new(registry),
        connections,
        stop_rx,
    ));

    tracing::info!(
        namespace = %settings.namespace,
        service_account = %settings.service_account,
        image = %settings.image,
        listen = %opts.listen,
        watch = %scope.namespaces().map_or_else(|| "all namespaces".to_string(), |n| n.join(",")),
        "operator started"
    );
    let endpoint = ServiceAccountEndpoint {
        client: client.clone(),
        namespace: settings.namespace.clone(),
        service_account: settings.service_account.clone(),
        ca_file: Some(vault_ca_file),
    };
    let identity = opts.identity.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("kvault-operator-{}", std::process::id()))
    });
    tokio::select! {
        _ = leader::acquire(&client, &settings.namespace, &identity) => {}
        _ = crate::signal::shutdown_signal() => {
            let _ = stop_tx.send(());
            let _ = http.await;
            return Ok(());
        }
    }
    if opts.test_clock_offset != 0 {
        tracing::warn!(
            seconds = opts.test_clock_offset,
            "tests only: the purge's clock is shifted"
        );
    }
    let purger = tokio::spawn(purge_loop(
        client.clone(),
        scope.clone(),
        settings.namespace.clone(),
        opts.purge_interval,
        opts.test_clock_offset,
    ));
    leading.store(true, std::sync::atomic::Ordering::Relaxed);
    let namespace = settings.namespace.clone();
    let sync_ctx = Arc::new(
        sync::reconcile::SyncContext::new(
            client.clone(),
            Arc::new(sync::reconcile::ServiceAccountAccess {
                client: client.clone(),
                ca_file: endpoint.ca_file.clone(),
                issuer: workload_identity
                    .as_ref()
                    .zip(settings.token_service.as_ref())
                    .map(|(w, ts)| sync::reconcile::TokenIssuer {
                        keys: w.ring.clone(),
                        issuer: ts.authority.clone(),
                        tenant: opts.workload_identity.workload_identity_tenant.clone(),
                    }),
            }),
            sync::restart::RestartTiming {
                debounce: opts.sync_debounce,
                min_interval: opts.restart_min_interval,
            },
        )
        .with_metrics(sync_metrics),
    );
    let ctx = Arc::new(
        Context::new(client.clone(), settings, metrics, ca, Arc::new(endpoint))
            .with_token_service_keys(workload_identity.as_ref().map(|w| w.ring.clone())),
    );
    // One set of controllers per watched namespace (one for the whole cluster by default).
    let mut controllers = Vec::new();
    for ns in scope.targets() {
        controllers.push(run_controllers(&client, ns, ctx.clone()));
    }
    let syncs = async {
        if opts.secret_sync {
            let targets = scope
                .targets()
                .into_iter()
                .map(|t| t.map(str::to_string))
                .collect();
            sync::reconcile::run(client.clone(), targets, sync_ctx, sync_rx).await;
        }
    };
    let run_controller =
        futures_util::future::join(futures_util::future::join_all(controllers), syncs);
    let lost = tokio::select! {
        _ = run_controller => false,
        _ = leader::hold(&client, &namespace, &identity) => true,
    };
    purger.abort();
    let _ = stop_tx.send(());
    if lost {
        anyhow::bail!("lost the leader Lease: exiting so that only one replica acts");
    }
    tracing::info!("operator stopping");
    leader::release(&client, &namespace, &identity).await;
    let _ = http.await;
    Ok(())
}

/// The `Vault` controller and the two grant controllers over one namespace (or all).
fn run_controllers(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> impl std::future::Future<Output = ()> + use<> {
    let vaults = controller(client.clone(), namespace)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((vault, _)) => tracing::debug!(vault = %vault.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        });
    let access_policies = grant_controller::<AccessPolicy>(client, namespace)
        .shutdown_on_signal()
        .run(
            reconcile_grant::<AccessPolicy>,
            grant_error_policy::<AccessPolicy>,
            ctx.clone(),
        )
        .for_each(|_| async {});
    let role_assignments = grant_controller::<RoleAssignment>(client, namespace)
        .shutdown_on_signal()
        .run(
            reconcile_grant::<RoleAssignment>,
            grant_error_policy::<RoleAssignment>,
            ctx,
        )
        .for_each(|_| async {});
    async move {
        futures_util::future::join3(vaults, access_policies, role_assignments).await;
    }
}

async fn purge_loop(
    client: Client,
    scope: WatchScope,
    operator_ns: String,
    every: Duration,
    clock_offset: i64,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        tick.tick().await;
        let now = k8s_openapi::jiff::Timestamp::now().as_second() + clock_offset;
        if let Err(e) = purge_expired(&client, &scope, &operator_ns, now).await {
            tracing::warn!(error = %e, "purging deleted vaults failed; retrying later");
        }
    }
}

/// `/healthz`, `/readyz` and `/metrics`, under the default connection limits
/// ([`crate::listener::Limits`]).
async fn serve_health(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    connections: crate::listener::ConnectionMetrics,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    use axum::routing::get;
    let metrics = move || {
        let registry = registry.clone();
        async move { crate::openmetrics::response(&registry) }
    };
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(metrics));
    crate::listener::serve_plain(
        listener,
        app,
        crate::listener::Limits::default(),
        connections,
        async {
            let _ = stop.await;
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        opts: OperatorOptions,
    }

    #[test]
    fn options_become_settings() {
        let c = Cmd::try_parse_from([
            "op",
            "--namespace",
            "ops",
            "--pod-cidr",
            "10.244.0.0/16,fd00::/64",
        ])
        .unwrap();
        let s = c.opts.settings().unwrap();
        assert_eq!(s.namespace, "ops");
        assert_eq!(
            s.cluster_issuer,
            "https://kubernetes.default.svc.cluster.local"
        );
        assert_eq!(s.pod_cidrs, vec!["10.244.0.0/16", "fd00::/64"]);
        assert_eq!(s.admin_principal(), "ServiceAccount ops/kvault-operator");
        assert!(s.image.starts_with("ghcr.io/kvault/kvault:"));
    }

    #[test]
    fn bad_options_are_refused() {
        let c = Cmd::try_parse_from(["op", "--pod-cidr", "pods"]).unwrap();
        assert!(c.opts.settings().unwrap_err().contains("pods"));
        let c = Cmd::try_parse_from(["op", "--cluster-issuer", "http://x"]).unwrap();
        assert!(c.opts.settings().unwrap_err().contains("https://"));
    }
}
