//! The request pipeline: one entry point for every data-plane and control-plane request.
//!
//! The stages, in the API's order: route (pure; its answer is kept until the caller is
//! known) → firewall (the control plane's rows are exempt) → authenticate (401 with the
//! challenge before any body or parameter is looked at, so nothing leaks about objects) →
//! api-version → the route's 404/405 → authorize → throttle → body (within the row's limit
//! and the in-flight budget) → the family's handler → audit record and metrics. Every
//! response carries `x-ms-request-id`; every request runs in a `request` tracing span
//! (request id, operation, principal kind — never a value or a token).

use crate::policy::{Identity, Principal};
use crate::server::audit::{self, AuditRecord};
use crate::server::authz::{authorize, authorize_control_plane};
use crate::server::error::{ApiError, ApiResult};
use crate::server::metrics::{CategoryLabel, OperationLabel, ReasonLabel, RequestLabels};
use crate::server::ops::{Access, AdminOp, BodyLimit, Operation, RouteError, Routed, route};
use crate::server::request::{Query, Reply, RequestContext};
use crate::server::runtime::Runtime;
use crate::server::state::AppState;
use crate::server::{admin, certificates, keys, secrets};
use crate::wire::{ApiVersion, Support, parse_api_version};
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

/// The total of request bodies being read or handled at once, in bytes: a burst of large
/// requests waits its turn (429 with Retry-After) instead of growing the server's memory.
pub const MAX_BODIES_IN_FLIGHT: usize = 64 * 1024 * 1024;

/// The in-flight budget counts in KiB (a semaphore's permits are `u32`).
const BUDGET_UNIT: usize = 1024;

/// The shared budget for [`MAX_BODIES_IN_FLIGHT`].
pub fn body_budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_BODIES_IN_FLIGHT / BUDGET_UNIT))
}

/// Connection facts the HTTP layer learns from the TLS listener.
pub use crate::listener::ConnInfo;

pub async fn health() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// What the audit log and the metrics learn about a request while it is handled.
#[derive(Default)]
struct Trace {
    operation: &'static str,
    principal: Option<Arc<Principal>>,
    object_id: Option<String>,
    api_version: Option<String>,
}

/// The entry point (the router's fallback: every key-vault path and every `/_kvault/`
/// control-plane path but health comes here).
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let request_id = new_request_id();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        operation = tracing::field::Empty,
        principal_kind = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    serve(state, req, request_id).instrument(span).await
}

async fn serve(state: Arc<AppState>, req: Request, request_id: String) -> Response {
    let started = Instant::now();
    let client_request_id = req
        .headers()
        .get("x-ms-client-request-id")
        .filter(|v| v.len() <= 128)
        .cloned();
    let user_agent: Option<String> = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .cloned()
        .unwrap_or(ConnInfo {
            peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            tls_version: "unknown",
        });
    let rt = state.policy.current();
    let forwarded = forwarded_for(req.headers());
    let client_ip = rt
        .policy
        .network
        .client_address(conn.peer.ip(), forwarded.as_deref());
    let mut trace = Trace {
        operation: "-",
        ..Default::default()
    };
    let result = handle(&state, &rt, client_ip, req, &mut trace).await;
    let mut resp = match result {
        Ok(reply) => reply.into_response(),
        Err(err) => {
            let unauthorized = matches!(err, ApiError::Unauthorized(_));
            let mut r = err.into_response();
            if unauthorized {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, state.challenge.clone());
            }
            r
        }
    };
    let status = resp.status().as_u16();
    tracing::Span::current().record("status", status);
    let elapsed = started.elapsed();
    let principal = trace.principal.as_deref();
    let record = AuditRecord {
        time: rfc3339_now(),
        operation: trace.operation,
        result: audit::result_of(status),
        status,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        principal_id: principal.map(principal_id),
        principal_kind: principal.map(principal_kind),
        application: principal.and_then(|p| p.application.as_deref()),
        groups_count: principal.map_or(0, |p| p.groups.len()),
        client_ip: client_ip.to_string(),
        tls_version: conn.tls_version,
        object_id: trace.object_id.clone(),
        api_version: trace.api_version.as_deref(),
        request_id: &request_id,
        user_agent: user_agent.as_deref(),
    };
    // Fail closed: a response whose audit line cannot be written is not served.
    if !state.audit.record(&record).await {
        resp = ApiError::Unavailable.into_response();
    }
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            operation: trace.operation,
            code: status,
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&OperationLabel {
            operation: trace.operation,
        })
        .observe(elapsed.as_secs_f64());
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-ms-request-id", v);
    }
    if let Some(v) = client_request_id {
        h.insert("x-ms-client-request-id", v);
    }
    h.insert(
        "x-ms-keyvault-service-version",
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    resp
}

fn principal_id(p: &Principal) -> String {
    match &p.identity {
        Identity::ServiceAccount { namespace, name } => format!("{namespace}/{name}"),
        Identity::User(id) | Identity::Application(id) => id.clone(),
    }
}

fn principal_kind(p: &Principal) -> &'static str {
    match &p.identity {
        Identity::ServiceAccount { .. } => "ServiceAccount",
        Identity::User(_) => "User",
        Identity::Application(_) => "Application",
    }
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Authenticates the request (401 with the challenge on failure).
async fn authenticate(
    state: &AppState,
    rt: &Runtime,
    headers: &HeaderMap,
) -> ApiResult<Arc<Principal>> {
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    rt.auth.authenticate(auth_header).await.map_err(|e| {
        state
            .metrics
            .authn_failures
            .get_or_create(&ReasonLabel { reason: e.reason() })
            .inc();
        ApiError::Unauthorized(e.to_string())
    })
}

async fn handle(
    state: &AppState,
    rt: &Runtime,
    client_ip: std::net::IpAddr,
    req: Request,
    trace: &mut Trace,
) -> ApiResult<Reply> {
    if !state.audit.healthy() {
        return Err(ApiError::Unavailable);
    }
    let (parts, body) = req.into_parts();
    let routed = route(&parts.method, parts.uri.path());
    let control_plane = routed
        .as_ref()
        .is_ok_and(|r| r.spec.access == Access::ControlPlane);
    if let Ok(r) = &routed {
        trace.operation = r.spec.name;
        tracing::Span::current().record("operation", r.spec.name);
    }
    // The firewall comes first: a refused address learns nothing else.
    if !control_plane && !rt.policy.network.allows(client_ip) {
        state.metrics.firewall_denials.inc();
        return Err(ApiError::Firewall(client_ip));
    }
    let principal = authenticate(state, rt, &parts.headers).await?;
    tracing::Span::current().record("principal_kind", principal_kind(&principal));
    trace.principal = Some(principal.clone());
    let query = Query::parse(parts.uri.query());
    // kvault's own endpoints are not versioned.
    let api_version = if control_plane {
        String::new()
    } else {
        let v = check_api_version(&query)?;
        trace.api_version = Some(v.clone());
        v
    };
    let routed = routed.map_err(|e| route_error(e, &parts.method))?;
    trace.object_id = match routed.object() {
        Some((kind, name)) => Some(format!("/{}/{name}", kind.as_str())),
        None if control_plane => Some(parts.uri.path().to_string()),
        None => None,
    };
    admit(state, rt, &principal, &routed)?;
    let _permit = reserve_body(state, &routed, &body)?;
    let bytes = axum::body::to_bytes(Body::new(body), routed.spec.body.max_bytes())
        .await
        .map_err(|_| too_large(&routed))?;
    let ctx = RequestContext {
        origin: origin(&parts.headers, &parts.uri, &state.vault_origin),
        api_version,
        query,
        soft_delete: rt.soft_delete,
    };
    match routed.op {
        Operation::Secrets(op) => secrets::handle(state, &ctx, op, &bytes).await,
        Operation::Keys(op) => keys::handle(state, &ctx, op, &bytes).await,
        Operation::Certificates(op) => certificates::handle(state, &ctx, op, &bytes).await,
        Operation::Admin(op) => admin::handle(state, &ctx, op, &bytes).await,
    }
}

fn route_error(e: RouteError, method: &axum::http::Method) -> ApiError {
    match e {
        RouteError::NotFound => ApiError::NotFound {
            code: "NotFound",
            message: "The requested path does not exist in the Key Vault API.".into(),
        },
        RouteError::MethodNotAllowed => ApiError::MethodNotAllowed(format!(
            "The requested resource does not support http method '{method}'."
        )),
    }
}

/// Authorization (the policy's grants, or the configured control plane) and throttling.
fn admit(state: &AppState, rt: &Runtime, who: &Principal, routed: &Routed) -> ApiResult<()> {
    let name = routed.spec.name;
    if let Operation::Admin(op) = &routed.op {
        // The control plane is never throttled: it must always be able to repair a policy.
        return authorize_control_plane(&rt.admins, who, &state.vault_name, purpose(*op));
    }
    if let Err(e) = authorize(&rt.policy, who, routed, &state.vault_name) {
        state
            .metrics
            .authz_denials
            .get_or_create(&OperationLabel { operation: name })
            .inc();
        return Err(e);
    }
    let category = routed.spec.throttle;
    // Each caller gets a share of the vault's budgets; the same name from another issuer is
    // another caller.
    let caller = format!("{}|{who}", who.issuer);
    if let Err(wait) = rt.throttle.check(category, &caller) {
        return Err(throttled(
            state,
            category.as_str(),
            wait.as_secs_f64().ceil() as u64,
        ));
    }
    Ok(())
}

/// A 429 for `category`, counted in the throttling metric.
fn throttled(state: &AppState, category: &'static str, retry_after_secs: u64) -> ApiError {
    state
        .metrics
        .throttled
        .get_or_create(&CategoryLabel { category })
        .inc();
    ApiError::Throttled {
        category,
        retry_after_secs,
    }
}

/// What a refused caller may not do, in the control plane's denial.
fn purpose(op: AdminOp) -> &'static str {
    match op {
        AdminOp::GetPolicy | AdminOp::PutPolicy => "read or change its policy",
        AdminOp::GetEventDeadLetters | AdminOp::GetExpiringObjects => {
            "read its event notifications"
        }
    }
}

/// Refuses a body the operation does not take, or one its row's limit already rules out,
/// before a byte of it is read; then reserves its room in the in-flight budget (held until
/// the handler is done with the bytes).
fn reserve_body(
    state: &AppState,
    routed: &Routed,
    body: &Body,
) -> ApiResult<Option<OwnedSemaphorePermit>> {
    let spec = routed.spec;
    let announced = body.size_hint().upper();
    match spec.body {
        BodyLimit::Empty if !body.is_end_stream() && announced != Some(0) => Err(ApiError::bad(
            format!("The operation {} takes no request body.", spec.name),
        )),
        BodyLimit::Empty => Ok(None),
        BodyLimit::UpTo(max) => {
            if announced.is_some_and(|n| n > max as u64) {
                return Err(too_large(routed));
            }
            let bytes = announced.map_or(max, |n| (n as usize).min(max));
            let units = u32::try_from(bytes.div_ceil(BUDGET_UNIT).max(1)).unwrap_or(u32::MAX);
            match state.body_budget.clone().try_acquire_many_owned(units) {
                Ok(permit) => Ok(Some(permit)),
                Err(_) => Err(throttled(state, "request_bodies", 1)),
            }
        }
    }
}

fn too_large(routed: &Routed) -> ApiError {
    ApiError::bad(format!(
        "The request body is too large for {} (at most {} bytes) or could not be read.",
        routed.spec.name,
        routed.spec.body.max_bytes()
    ))
}

/// Every `X-Forwarded-For` line as one comma-joined list, in the order received: proxies such
/// as HAProxy append a line of their own rather than extend the client's, so reading only the
/// first line would let a client's own line decide its address. A line that is not text stays
/// in the list as an unparsable hop, where the walk from the right stops.
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("unparsable"))
        .collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

fn check_api_version(q: &Query) -> ApiResult<String> {
    let version =
        parse_api_version(q.get("api-version")).map_err(|e| ApiError::bad(e.to_string()))?;
    if version.support() == Support::Newer {
        log_newer_version_once(&version);
    }
    Ok(version.as_str().to_string())
}

/// How many distinct newer versions are logged: a client cycling through dates must not turn
/// the log (or this set) into its own storage.
const MAX_LOGGED_NEWER_VERSIONS: usize = 32;

/// An operator should learn that clients use a version newer than kvault knows (answered as
/// the newest known one), once per version rather than once per request.
fn log_newer_version_once(version: &ApiVersion) {
    static LOGGED: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let Ok(mut logged) = LOGGED.lock() else {
        return;
    };
    if logged.len() < MAX_LOGGED_NEWER_VERSIONS && logged.insert(version.as_str().to_string()) {
        tracing::info!(
            api_version = %version,
            answered_as = crate::wire::LATEST_API_VERSION,
            "a client sent an api-version newer than this kvault knows; answering it with the newest behaviour"
        );
    }
}

/// `https://` + the authority the client used, when it is a plausible host; otherwise the
/// advertised vault URL. Ids must point where the client can reach the vault.
fn origin(headers: &HeaderMap, uri: &axum::http::Uri, fallback: &str) -> String {
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    match authority {
        Some(a)
            if !a.is_empty()
                && a.len() <= 255
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) =>
        {
            let a = a.to_ascii_lowercase();
            let a = a.strip_suffix(":443").unwrap_or(&a);
            format!("https://{a}")
        }
        _ => fallback.to_string(),
    }
}

fn new_request_id() -> String {
    let b = crate::crypto::random::<16>().unwrap_or([0; 16]);
    let h = crate::crypto::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_is_read_from_the_decoded_query() {
        let q = Query::parse(Some("api%2Dversion=7.4&maxresults=3"));
        assert_eq!(check_api_version(&q).unwrap(), "7.4");
        assert!(check_api_version(&Query::parse(Some("api-version=1.0"))).is_err());
        assert!(check_api_version(&Query::parse(None)).is_err());
    }

    #[test]
    fn every_forwarded_for_line_counts_and_the_walk_starts_from_the_proxys_line() {
        let network = crate::policy::CompiledNetwork {
            default_deny: true,
            allowed: vec!["203.0.113.0/24".parse().unwrap()],
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        // The client claims an allowed address on its own line; the proxy appends the real one.
        let mut two_lines = HeaderMap::new();
        two_lines.append("x-forwarded-for", "203.0.113.7".parse().unwrap());
        two_lines.append("x-forwarded-for", "198.51.100.9".parse().unwrap());
        let got = network.client_address(proxy, forwarded_for(&two_lines).as_deref());
        assert_eq!(got, "198.51.100.9".parse::<std::net::IpAddr>().unwrap());
        assert!(!network.allows(got));
        // The same chain on one line gives the same answer.
        let mut one_line = HeaderMap::new();
        one_line.append(
            "x-forwarded-for",
            "203.0.113.7, 198.51.100.9".parse().unwrap(),
        );
        assert_eq!(
            network.client_address(proxy, forwarded_for(&one_line).as_deref()),
            got
        );
        // A line through two trusted proxies reaches the client behind them.
        let mut chained = HeaderMap::new();
        chained.append("x-forwarded-for", "203.0.113.7".parse().unwrap());
        chained.append("x-forwarded-for", "10.1.1.1".parse().unwrap());
        let client = network.client_address(proxy, forwarded_for(&chained).as_deref());
        assert_eq!(client, "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
        assert!(network.allows(client));
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }

    #[test]
    fn origin_echoes_the_host_but_not_garbage() {
        let mut h = HeaderMap::new();
        let uri: axum::http::Uri = "/secrets".parse().unwrap();
        h.insert(header::HOST, HeaderValue::from_static("V.example:8443"));
        assert_eq!(origin(&h, &uri, "https://f"), "https://v.example:8443");
        h.insert(header::HOST, HeaderValue::from_static("v.example:443"));
        assert_eq!(origin(&h, &uri, "https://f"), "https://v.example");
        h.insert(header::HOST, HeaderValue::from_static("evil/\"x"));
        assert_eq!(origin(&h, &uri, "https://f"), "https://f");
    }
}
