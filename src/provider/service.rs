//! The `v1alpha1.CSIDriverProvider` service: `Version`, and `Mount` = parse the request,
//! authenticate to the vault as the pod, fetch every object (all or nothing), render the
//! files, check the driver's limits, answer with files and object versions.

use super::error::{ErrorCode, MountError, MountResult};
use super::exchange::{Exchanger, client_id};
use super::fetch::{Fetcher, PodClient, one, secrets};
use super::metrics::{ProviderMetrics, ResultLabel};
use super::params::{
    CaSource, MountSpec, ObjectSpec, PodInfo, expand_selections, parse_mount_for, validate_path,
};
use super::pb;
use super::render::render;
use futures_util::future::try_join_all;
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// The driver's default receive limit (`--max-call-recv-msg-size`).
pub const DRIVER_DEFAULT_MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Above this the driver warns: a Kubernetes Secret cannot hold it (sync would fail).
pub const KUBERNETES_SECRET_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct MountSettings {
    /// Largest MountResponse returned (encoded bytes).
    pub max_response_bytes: usize,
    /// Budget for one Mount (kubelet gives the whole call 2 minutes).
    pub mount_timeout: Duration,
}

impl Default for MountSettings {
    fn default() -> Self {
        Self {
            max_response_bytes: DRIVER_DEFAULT_MAX_MESSAGE,
            mount_timeout: Duration::from_secs(90),
        }
    }
}

pub struct Provider {
    fetcher: Arc<Fetcher>,
    settings: MountSettings,
    metrics: Arc<ProviderMetrics>,
    /// The token service the pod's workload-identity token is exchanged at; `None` is the
    /// legacy mode (the pod's token for the vault's own audience goes to the vault).
    exchanger: Option<Arc<Exchanger>>,
}

type Rendered = Vec<(pb::File, pb::ObjectVersion)>;

impl Provider {
    pub fn new(
        fetcher: Arc<Fetcher>,
        settings: MountSettings,
        metrics: Arc<ProviderMetrics>,
    ) -> Self {
        Self {
            fetcher,
            settings,
            metrics,
            exchanger: None,
        }
    }

    /// The same provider exchanging pod tokens at a token service.
    pub fn with_exchanger(self, exchanger: Option<Arc<Exchanger>>) -> Self {
        Self { exchanger, ..self }
    }

    /// A Mount, from request fields to response, without gRPC.
    pub async fn mount_request(
        &self,
        attributes: &str,
        permission: &str,
    ) -> (Option<PodInfo>, MountResult<pb::MountResponse>) {
        let identity_audience = self.exchanger.as_ref().map(|x| x.audience().to_string());
        let spec = match parse_mount_for(attributes, permission, identity_audience.as_deref()) {
            Ok(s) => s,
            Err(e) => return (None, Err(e)),
        };
        let pod = spec.pod.clone();
        let ca = match self.fetcher.load_ca(&spec.ca).await {
            Ok(ca) => ca,
            Err(e) => return (Some(pod), Err(e)),
        };
        let (token, token_expiry) = match &self.exchanger {
            None => (spec.token.clone(), spec.token_expiry),
            Some(x) => match self.exchange(x, &spec).await {
                Ok((t, exp)) => (
                    t,
                    Some(spec.token_expiry.map_or(exp, |pod_exp| pod_exp.min(exp))),
                ),
                Err(e) => return (Some(pod), Err(e)),
            },
        };
        let client = match self
            .fetcher
            .pod_client(&spec.vault_url, &ca, &token, token_expiry)
        {
            Ok(c) => c,
            Err(e) => return (Some(pod), Err(e)),
        };
        let objects = match self.objects_of(&client, &spec).await {
            Ok(o) => o,
            Err(e) => return (Some(pod), Err(e)),
        };
        let objects = objects
            .iter()
            .map(|o| self.mount_object(&client, o, &spec.audience));
        let rendered = match try_join_all(objects).await {
            Ok(r) => r,
            Err(e) => return (Some(pod), Err(e)),
        };
        (Some(pod), self.respond(rendered))
    }

    /// The objects of a mount: the named ones and, when entries select secrets, the secrets
    /// they select from one listing of the vault's secrets (as the pod).
    async fn objects_of<'a>(
        &self,
        client: &PodClient,
        spec: &'a MountSpec,
    ) -> MountResult<Cow<'a, [ObjectSpec]>> {
        if spec.selections.is_empty() {
            return Ok(Cow::Borrowed(&spec.objects));
        }
        let listing = self.fetcher.secrets(client, &spec.audience).await?;
        expand_selections(&spec.objects, &spec.selections, secrets(&listing)?).map(Cow::Owned)
    }

    /// The vault token for a mount: the pod's workload-identity token exchanged for the
    /// vault's audience (`spec.audience`). The token service's TLS is verified with the
    /// provider's default CA bundle (the operator CA, `--ca-file`).
    async fn exchange(
        &self,
        x: &Exchanger,
        spec: &super::params::MountSpec,
    ) -> MountResult<(zeroize::Zeroizing<String>, i64)> {
        let client_id = client_id(&spec.pod.namespace, &spec.pod.service_account)?;
        let ca = self.fetcher.load_ca(&CaSource::Default).await?;
        x.exchange(&ca, &spec.token, &client_id, &spec.audience)
            .await
    }

    fn respond(&self, rendered: Vec<Rendered>) -> MountResult<pb::MountResponse> {
        let mut files = Vec::new();
        let mut versions = Vec::new();
        let mut ids = HashSet::new();
        let mut paths = HashSet::new();
        for (file, mut version) in rendered.into_iter().flatten() {
            validate_path(&file.path).map_err(MountError::invalid)?;
            if !paths.insert(file.path.clone()) {
                return Err(MountError::invalid(format!(
                    "two objects write the file '{}'; give one of them an objectAlias",
                    file.path
                )));
            }
            if !ids.insert(version.id.clone()) {
                version.id = format!("{}/{}", version.id, file.path);
                ids.insert(version.id.clone());
            }
            files.push(file);
            versions.push(version);
        }
        let response = pb::MountResponse {
            object_version: versions,
            error: None,
            files,
        };
        let size = prost::Message::encoded_len(&response);
        if size > self.settings.max_response_bytes {
            return Err(MountError::new(
                ErrorCode::TooLarge,
                format!(
                    "the {} files come to {size} bytes, more than the {} the provider returns (the driver's --max-call-recv-msg-size defaults to {DRIVER_DEFAULT_MAX_MESSAGE}); split the objects over several SecretProviderClasses, or raise the limit on both the driver and the provider (--max-response-bytes)",
                    response.files.len(),
                    self.settings.max_response_bytes
                ),
            ));
        }
        if size > KUBERNETES_SECRET_LIMIT {
            tracing::warn!(
                bytes = size,
                "mount response above 1 MiB: syncing it to a Kubernetes Secret will fail"
            );
        }
        Ok(response)
    }

    async fn mount_object(
        &self,
        pod: &PodClient,
        spec: &ObjectSpec,
        audience: &str,
    ) -> MountResult<Rendered> {
        let kind = spec.kind;
        let base_id = format!("{}/{}", kind.as_str(), spec.name);
        let file = |path: String, contents: zeroize::Zeroizing<Vec<u8>>| pb::File {
            path,
            mode: spec.mode as i32,
            contents: contents.to_vec(),
        };
        let rendered = |material| {
            render(spec, material).map_err(|m| MountError::new(ErrorCode::InvalidObject, m))
        };
        if spec.history <= 1 {
            let answer = self
                .fetcher
                .get(pod, kind, &spec.name, spec.version.as_deref(), audience)
                .await?;
            let v = one(&answer)?;
            return Ok(vec![(
                file(spec.file_name().to_string(), rendered(&v.material)?),
                pb::ObjectVersion {
                    id: base_id,
                    version: v.version.clone(),
                },
            )]);
        }
        let listed = self
            .fetcher
            .versions(pod, kind, &spec.name, audience)
            .await?;
        let enabled: Vec<_> = listed.into_iter().filter(|v| v.enabled).collect();
        let start = match &spec.version {
            None => 0,
            Some(wanted) => enabled
                .iter()
                .position(|v| v.version.eq_ignore_ascii_case(wanted))
                .ok_or_else(|| {
                    MountError::new(
                        ErrorCode::NotFound,
                        format!(
                            "objectVersion {wanted} of {} is not among its enabled versions",
                            spec.describe()
                        ),
                    )
                })?,
        };
        let chosen: Vec<_> = enabled
            .iter()
            .skip(start)
            .take(spec.history as usize)
            .collect();
        if chosen.is_empty() {
            return Err(MountError::new(
                ErrorCode::NotFound,
                format!("{} has no enabled version", spec.describe()),
            ));
        }
        let fetches = chosen.iter().map(|v| {
            self.fetcher
                .get(pod, kind, &spec.name, Some(&v.version), audience)
        });
        let answers = try_join_all(fetches).await?;
        answers
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let v = one(a)?;
                Ok((
                    file(format!("{}/{i}", spec.file_name()), rendered(&v.material)?),
                    pb::ObjectVersion {
                        id: format!("{base_id}/{i}"),
                        version: v.version.clone(),
                    },
                ))
            })
            .collect()
    }
}

#[tonic::async_trait]
impl pb::csi_driver_provider_server::CsiDriverProvider for Provider {
    async fn version(
        &self,
        _request: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        Ok(Response::new(pb::VersionResponse {
            version: "v1alpha1".into(),
            runtime_name: "kvault".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn mount(
        &self,
        request: Request<pb::MountRequest>,
    ) -> Result<Response<pb::MountResponse>, Status> {
        let started = Instant::now();
        // Never log the request: attributes carry tokens, secrets the pod's Secret.
        let req = request.into_inner();
        let budget = self.settings.mount_timeout;
        let (pod, result) = match tokio::time::timeout(
            budget,
            self.mount_request(&req.attributes, &req.permission),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => (
                None,
                Err(MountError::new(
                    ErrorCode::DeadlineExceeded,
                    format!(
                        "the mount did not finish within {} s; the vault may be overloaded or unreachable",
                        budget.as_secs()
                    ),
                )),
            ),
        };
        let elapsed = started.elapsed();
        self.metrics.mount_duration.observe(elapsed.as_secs_f64());
        // A mount refused before its attributes were validated still names its pod.
        let pod = pod.unwrap_or_else(|| PodInfo::from_attributes(&req.attributes));
        match result {
            Ok(response) => {
                self.metrics
                    .mounts
                    .get_or_create(&ResultLabel { result: "ok" })
                    .inc();
                tracing::info!(
                    pod.namespace = %pod.namespace,
                    pod.name = %pod.name,
                    pod.uid = %pod.uid,
                    secret_provider_class = %pod.secret_provider_class,
                    files = response.files.len(),
                    duration_ms = elapsed.as_millis() as u64,
                    "mount served"
                );
                Ok(Response::new(response))
            }
            Err(e) => {
                self.metrics
                    .mounts
                    .get_or_create(&ResultLabel {
                        result: e.code.as_str(),
                    })
                    .inc();
                tracing::warn!(
                    pod.namespace = %pod.namespace,
                    pod.name = %pod.name,
                    pod.uid = %pod.uid,
                    secret_provider_class = %pod.secret_provider_class,
                    code = e.code.as_str(),
                    error = %e.message,
                    duration_ms = elapsed.as_millis() as u64,
                    "mount failed"
                );
                Err(e.into())
            }
        }
    }
}
