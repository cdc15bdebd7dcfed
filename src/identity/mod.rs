//! The workload-identity token service: the subset of the Entra ID token endpoint that the
//! SDKs' `WorkloadIdentityCredential` (inside `DefaultAzureCredential`) uses, so an
//! application written for the cloud runs unchanged in any cluster.
//!
//! A pod presents its projected service-account token (audience `api://AzureADTokenExchange`,
//! issued by the cluster) as a client assertion, and gets a short-lived token for the vault
//! resource its SDK asks for (`scope=https://team-a.svc/.default` → audience
//! `https://team-a.svc`), signed with a key the service rotates ([`signing`]) and whose JWKS
//! every vault trusts (the operator pushes it in the policy document). The decisions are in
//! [`exchange`]; errors are Entra's ([`entra`]). Every token request is audited (one JSON line,
//! never a token) and metered.
//!
//! Endpoints, under the authority `https://<host>/<tenant>` (tenant `adfs` by default):
//! `GET /<tenant>/.well-known/openid-configuration` (also under `/v2.0/`),
//! `GET /<tenant>/discovery/keys` and `POST /<tenant>/oauth2/v2.0/token`.

pub mod entra;
pub mod exchange;
pub mod signing;

use crate::clock::SharedClock;
use crate::policy::Identity;
use crate::server::audit::{AuditLog, AuditRecord, result_of};
use crate::server::auth::{Authenticator, IssuerConfig};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use entra::{EntraError, OAuthError};
use exchange::TokenForm;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use signing::KeyRing;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long an issued access token lives: short, and well under the signing keys' retirement.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// Where the service's `client_id` check learns a service account's annotated client id.
#[async_trait::async_trait]
pub trait ClientIds: Send + Sync {
    /// The `azure.workload.identity/client-id` annotation of `namespace/name`, if the
    /// account has one. An error refuses the request (the check fails closed).
    async fn annotated_client_id(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, String>;
}

/// What one token service is.
#[derive(Clone)]
pub struct IdentityConfig {
    /// The `iss` of the tokens it issues: the name vaults trust it under.
    pub issuer: String,
    /// The tenant of its authority (`AZURE_TENANT_ID`).
    pub tenant: String,
    /// Its own origin (`AZURE_AUTHORITY_HOST`), for the OpenID configuration's endpoints.
    pub authority_host: String,
    /// Who may vouch for a caller: the cluster's service-account issuer (in `kvault dev`,
    /// the dev issuer).
    pub assertion_issuers: Vec<IssuerConfig>,
    /// The audience an assertion must carry.
    pub assertion_audience: String,
    pub token_ttl: Duration,
    pub jwks_refresh_interval: Duration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    code: u16,
    error: String,
}

/// `kvault_identity_token_requests_total{code,error}` and the request duration.
#[derive(Clone)]
pub struct IdentityMetrics {
    requests: Family<TokenLabels, Counter>,
    duration: Histogram,
}

impl Default for IdentityMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
        }
    }
}

impl IdentityMetrics {
    /// Registers as `<prefix>identity_token_requests` and
    /// `<prefix>identity_token_request_duration_seconds` (pass "" when the registry has a
    /// prefix of its own).
    pub fn register(registry: &mut Registry, prefix: &str) -> Self {
        let m = Self::default();
        registry.register(
            format!("{prefix}identity_token_requests"),
            "Token requests at the workload-identity token service, by status code and OAuth error",
            m.requests.clone(),
        );
        registry.register(
            format!("{prefix}identity_token_request_duration_seconds"),
            "Time to answer a token request",
            m.duration.clone(),
        );
        m
    }
}

pub struct TokenService {
    config: IdentityConfig,
    assertions: Authenticator,
    keys: Arc<RwLock<KeyRing>>,
    client_ids: Option<Arc<dyn ClientIds>>,
    audit: AuditLog,
    metrics: IdentityMetrics,
    clock: SharedClock,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("loading the assertion issuers' keys: {0}")]
    Jwks(#[from] crate::server::auth::JwksError),
    #[error("building the HTTP client: {0}")]
    Http(String),
}

impl TokenService {
    pub async fn new(
        config: IdentityConfig,
        keys: Arc<RwLock<KeyRing>>,
        client_ids: Option<Arc<dyn ClientIds>>,
        audit: AuditLog,
        metrics: IdentityMetrics,
        clock: SharedClock,
    ) -> Result<Self, IdentityError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| IdentityError::Http(e.to_string()))?;
        let assertions = Authenticator::new(
            config.assertion_issuers.clone(),
            vec![config.assertion_audience.clone()],
            config.jwks_refresh_interval,
            http,
            clock.clone(),
        )
        .await?;
        Ok(Self {
            config,
            assertions,
            keys,
            client_ids,
            audit,
            metrics,
            clock,
        })
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// The service's routes, to serve on their own origin (MSAL recognises an ADFS
    /// authority only as the first path segment).
    pub fn router(self: Arc<Self>) -> axum::Router {
        use axum::routing::{get, post};
        axum::Router::new()
            .route(
                "/{tenant}/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .route("/{tenant}/discovery/keys", get(keys))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            // MSAL.NET and MSAL4J post to an ADFS authority's v1 path, whatever the
            // OpenID configuration says.
            .route("/{tenant}/oauth2/token", post(token))
            .route("/.well-known/webfinger", get(webfinger))
            .with_state(self)
    }

    fn check_tenant(&self, tenant: &str) -> Result<(), EntraError> {
        if tenant.eq_ignore_ascii_case(&self.config.tenant) {
            Ok(())
        } else {
            Err(exchange::unknown_tenant(tenant))
        }
    }

    /// The whole exchange: form, assertion, client id, token.
    async fn exchange(
        &self,
        tenant: &str,
        form: &TokenForm,
    ) -> Result<(String, Identity, String), (EntraError, Option<Identity>)> {
        self.check_tenant(tenant).map_err(|e| (e, None))?;
        let request = exchange::check_form(form).map_err(|e| (e, None))?;
        let principal = self
            .assertions
            .authenticate(Some(&format!("Bearer {}", request.assertion)))
            .await
            .map_err(|e| (exchange::assertion_error(e), None))?;
        let who = principal.identity.clone();
        let annotated = match (&principal.identity, &self.client_ids) {
            (Identity::ServiceAccount { namespace, name }, Some(ids)) => ids
                .annotated_client_id(namespace, name)
                .await
                .map_err(|reason| {
                    tracing::warn!(%who, %reason, "cannot read the service account's client id");
                    (
                        EntraError::new(
                            OAuthError::TemporarilyUnavailable,
                            50000,
                            format!("The service account {who} could not be read to check its client id; retry later."),
                        ),
                        Some(who.clone()),
                    )
                })?,
            _ => None,
        };
        exchange::check_client_id(request.client_id, &principal.identity, annotated.as_deref())
            .map_err(|e| (e, Some(who.clone())))?;
        let now = self.clock.now();
        let uti = crate::crypto::random::<12>()
            .map(|b| crate::crypto::hex(&b))
            .map_err(|_| (unavailable("no randomness"), Some(who.clone())))?;
        let claims = exchange::access_claims(
            &self.config.issuer,
            &self.config.tenant,
            &principal,
            &request.resource,
            now,
            self.config.token_ttl.as_secs() as i64,
            uti,
        );
        let token = {
            let ring = self.keys.read().map_err(|_| {
                (
                    unavailable("the signing keys are unavailable"),
                    Some(who.clone()),
                )
            })?;
            let key = ring
                .active(now)
                .ok_or_else(|| (unavailable("no signing key yet"), Some(who.clone())))?;
            key.sign(&claims)
                .map_err(|_| (unavailable("signing failed"), Some(who.clone())))?
        };
        Ok((token.to_string(), who, request.resource))
    }
}

fn unavailable(why: &str) -> EntraError {
    EntraError::new(
        OAuthError::TemporarilyUnavailable,
        50000,
        format!("The token service cannot issue tokens now ({why}); retry later."),
    )
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

async fn openid_configuration(
    State(svc): State<Arc<TokenService>>,
    Path(tenant): Path<String>,
) -> Response {
    if let Err(e) = svc.check_tenant(&tenant) {
        return entra_response(&e, &request_id(), &svc.clock);
    }
    let authority = format!(
        "{}/{}",
        svc.config.authority_host.trim_end_matches('/'),
        svc.config.tenant
    );
    // What MSAL reads of it: the token endpoint, and the fields its schema check requires.
    let doc = serde_json::json!({
        "issuer": svc.config.issuer,
        "token_endpoint": format!("{authority}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{authority}/oauth2/v2.0/authorize"),
        "end_session_endpoint": format!("{authority}/oauth2/v2.0/logout"),
        "jwks_uri": format!("{authority}/discovery/keys"),
        "response_types_supported": ["token"],
        "grant_types_supported": ["client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "scopes_supported": ["openid"],
        "tenant_region_scope": null,
    });
    json(StatusCode::OK, &doc)
}

async fn keys(State(svc): State<Arc<TokenService>>, Path(tenant): Path<String>) -> Response {
    if let Err(e) = svc.check_tenant(&tenant) {
        return entra_response(&e, &request_id(), &svc.clock);
    }
    let jwks = svc.keys.read().ok().and_then(|r| r.jwks().ok());
    match jwks {
        Some(j) => json(StatusCode::OK, &j),
        None => entra_response(
            &unavailable("the signing keys are unavailable"),
            &request_id(),
            &svc.clock,
        ),
    }
}

/// MSAL.NET validates an ADFS authority through WebFinger (unless the app disables
/// instance discovery): the token service names itself a trusted realm.
async fn webfinger(State(svc): State<Arc<TokenService>>) -> Response {
    let host = svc.config.authority_host.trim_end_matches('/');
    let doc = serde_json::json!({
        "subject": host,
        "links": [{"rel": "http://schemas.microsoft.com/rel/trusted-realm", "href": host}],
    });
    json(StatusCode::OK, &doc)
}

fn request_id() -> String {
    crate::crypto::new_version_id().unwrap_or_default()
}

fn entra_response(e: &EntraError, request_id: &str, clock: &SharedClock) -> Response {
    let stamp = crate::clock::rfc3339(clock.now());
    let status = StatusCode::from_u16(e.error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    json(status, &e.body(request_id, &stamp))
}

#[derive(serde::Serialize)]
struct TokenAnswer<'a> {
    token_type: &'static str,
    expires_in: u64,
    ext_expires_in: u64,
    access_token: &'a str,
}

async fn token(
    State(svc): State<Arc<TokenService>>,
    Path(tenant): Path<String>,
    conn: Option<axum::Extension<crate::listener::ConnInfo>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let started = Instant::now();
    let id = request_id();
    let form: TokenForm = match serde_urlencoded_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return finish(&svc, started, &id, conn, Err((e, None)), None).await,
    };
    let outcome = svc.exchange(&tenant, &form).await;
    finish(&svc, started, &id, conn, outcome, form.client_id.as_deref()).await
}

fn serde_urlencoded_form(headers: &HeaderMap, body: &[u8]) -> Result<TokenForm, EntraError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(EntraError::new(
            OAuthError::InvalidRequest,
            900144,
            "The request body must be application/x-www-form-urlencoded.",
        ));
    }
    serde_urlencoded::from_bytes::<TokenForm>(body).map_err(|_| {
        EntraError::new(
            OAuthError::InvalidRequest,
            900144,
            "The request body is not a well-formed form.",
        )
    })
}

async fn finish(
    svc: &TokenService,
    started: Instant,
    request_id: &str,
    conn: Option<axum::Extension<crate::listener::ConnInfo>>,
    outcome: Result<(String, Identity, String), (EntraError, Option<Identity>)>,
    client_id: Option<&str>,
) -> Response {
    let (status, who, resource) = match &outcome {
        Ok((_, who, resource)) => (200, Some(who), Some(resource.as_str())),
        Err((e, who)) => (e.error.status(), who.as_ref(), None),
    };
    let conn = conn.map(|c| c.0);
    let client_ip = conn
        .as_ref()
        .map(|c| c.peer.ip().to_string())
        .unwrap_or_default();
    let tls_version = conn.as_ref().map_or("unknown", |c| c.tls_version);
    let (principal_id, principal_kind) = match who {
        Some(Identity::ServiceAccount { namespace, name }) => {
            (Some(format!("{namespace}/{name}")), Some("ServiceAccount"))
        }
        Some(Identity::User(id)) => (Some(id.clone()), Some("User")),
        Some(Identity::Application(id)) => (Some(id.clone()), Some("Application")),
        None => (None, None),
    };
    let audited = svc
        .audit
        .record(&AuditRecord {
            time: crate::clock::rfc3339(svc.clock.now()),
            operation: "TokenExchange",
            result: result_of(status),
            status,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            principal_id,
            principal_kind,
            application: client_id,
            groups_count: 0,
            client_ip,
            tls_version,
            object_id: resource.map(str::to_string),
            api_version: None,
            request_id,
            user_agent: None,
        })
        .await;
    svc.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    // Fail closed: a token whose issue could not be recorded is not handed out.
    let outcome = match outcome {
        Ok(_) if !audited => Err((unavailable("the audit log is failing"), None)),
        other => other,
    };
    match outcome {
        Ok((token, _, _)) => {
            svc.metrics
                .requests
                .get_or_create(&TokenLabels {
                    code: 200,
                    error: String::new(),
                })
                .inc();
            let ttl = svc.config.token_ttl.as_secs();
            json(
                StatusCode::OK,
                &TokenAnswer {
                    token_type: "Bearer",
                    expires_in: ttl,
                    ext_expires_in: ttl,
                    access_token: &token,
                },
            )
        }
        Err((e, _)) => {
            svc.metrics
                .requests
                .get_or_create(&TokenLabels {
                    code: e.error.status(),
                    error: e.error.as_str().to_string(),
                })
                .inc();
            tracing::info!(
                code = e.code,
                error = e.error.as_str(),
                request_id,
                "token request refused"
            );
            entra_response(&e, request_id, &svc.clock)
        }
    }
}

/// Serves the token service over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
    limits: crate::listener::Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let gate = crate::listener::Gate::new(limits, crate::listener::ConnectionMetrics::default());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    crate::listener::serve_tls(listener, &gate, move || acceptor.clone(), router, shutdown).await;
    gate.shutdown().await;
}
