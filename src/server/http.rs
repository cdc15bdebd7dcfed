//! The HTTP layer: one entry point for every data-plane request.
//!
//! Order matters and is the API's: authenticate first (401 with the challenge before any
//! body or parameter is looked at, so nothing leaks about objects), then api-version,
//! routing, authorization, body, handler. Every response carries `x-ms-request-id`.

use crate::policy::{Identity, Principal};
use crate::server::AppState;
use crate::server::audit::{self, AuditRecord};
use crate::server::authz::authorize;
use crate::server::error::{ApiError, ApiResult};
use crate::server::metrics::{CategoryLabel, OperationLabel, ReasonLabel, RequestLabels};
use crate::server::objects::SoftDelete;
use crate::server::ops::{Operation, RouteError, route};
use crate::server::runtime::Runtime;
use crate::server::throttle::Category;
use crate::server::{certificates, keys, secrets};
use crate::wire::{ApiVersion, MAX_PAGE_SIZE, Page, Support, parse_api_version};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Largest request body: a restore of a 500-version backup of 25 KiB secrets fits.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Connection facts the HTTP layer learns from the TLS listener.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    pub tls_version: &'static str,
}

/// Decoded query parameters (keys and values percent-decoded; JS clients send
/// `api%2Dversion`).
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            raw.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler needs to know about the request besides its body.
pub struct RequestContext {
    /// `https://host[:port]` as the client addressed the vault; ids and links echo it.
    pub origin: String,
    pub api_version: String,
    pub query: Query,
    /// The vault's soft-delete settings under the current policy.
    pub soft_delete: SoftDelete,
}

/// A successful response.
pub enum Reply {
    Json(StatusCode, Vec<u8>),
    NoContent,
}

impl Reply {
    pub fn ok<T: Serialize>(body: &T) -> ApiResult<Reply> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            tracing::error!(error = %e, "encoding a response failed");
            ApiError::Internal
        })?;
        Ok(Reply::Json(StatusCode::OK, bytes))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(status, bytes) => {
                let mut r = (status, bytes).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                r
            }
            Reply::NoContent => StatusCode::NO_CONTENT.into_response(),
        }
    }
}

mod admin;
mod events_admin;

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

/// The data-plane entry point (the router's fallback: every Azure path and every
/// `/_kvault/` admin path comes here).
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = new_request_id();
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
    let result = if req.uri().path().eq_ignore_ascii_case(ADMIN_POLICY_PATH) {
        trace.operation = match *req.method() {
            Method::PUT => "PutPolicy",
            _ => "GetPolicy",
        };
        admin::handle(&state, &rt, req, &mut trace).await
    } else if events_admin::is_events_path(req.uri().path()) {
        trace.operation = events_admin::operation(req.uri().path());
        events_admin::handle(&state, &rt, req, &mut trace).await
    } else {
        handle(&state, &rt, client_ip, req, &mut trace).await
    };
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
            status,
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

pub const ADMIN_POLICY_PATH: &str = "/_kvault/policy";

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
pub(crate) async fn authenticate(
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
    // The firewall comes first: a refused address learns nothing else.
    if !rt.policy.network.allows(client_ip) {
        state.metrics.firewall_denials.inc();
        return Err(ApiError::Firewall(client_ip));
    }
    let (parts, body) = req.into_parts();
    let principal = authenticate(state, rt, &parts.headers).await?;
    trace.principal = Some(principal.clone());
    let query = Query::parse(parts.uri.query());
    let api_version = check_api_version(&query)?;
    trace.api_version = Some(api_version.clone());
    let op = match route(&parts.method, parts.uri.path()) {
        Ok(op) => op,
        Err(RouteError::NotFound) => {
            return Err(ApiError::NotFound {
                code: "NotFound",
                message: "The requested path does not exist in the Key Vault API.".into(),
            });
        }
        Err(RouteError::MethodNotAllowed) => {
            return Err(ApiError::MethodNotAllowed(format!(
                "The requested resource does not support http method '{}'.",
                parts.method
            )));
        }
    };
    trace.operation = op.name();
    trace.object_id = op.object().map(|(c, n)| format!("/{c}/{n}"));
    if let Err(e) = authorize(&rt.policy, &principal, &op, &state.vault_name) {
        state
            .metrics
            .authz_denials
            .get_or_create(&OperationLabel {
                operation: op.name(),
            })
            .inc();
        return Err(e);
    }
    let category = throttle_category(&op);
    if let Err(wait) = rt.throttle.check(category) {
        state
            .metrics
            .throttled
            .get_or_create(&CategoryLabel {
                category: category.as_str(),
            })
            .inc();
        return Err(ApiError::Throttled {
            category: category.as_str(),
            retry_after_secs: wait.as_secs_f64().ceil() as u64,
        });
    }
    let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::bad("The request body is too large or could not be read."))?;
    let ctx = RequestContext {
        origin: origin(&parts.headers, &parts.uri, &state.vault_origin),
        api_version,
        query,
        soft_delete: rt.soft_delete,
    };
    let certificate_op = op.object().is_some_and(|(c, _)| c == "certificates")
        || matches!(
            op,
            Operation::ListCertificates
                | Operation::ListDeletedCertificates
                | Operation::RestoreCertificate
                | Operation::GetContacts
                | Operation::SetContacts
                | Operation::DeleteContacts
                | Operation::ListIssuers
                | Operation::GetIssuer { .. }
                | Operation::SetIssuer { .. }
                | Operation::UpdateIssuer { .. }
                | Operation::DeleteIssuer { .. }
        );
    if certificate_op {
        certificates::handle(state, &ctx, op, &bytes).await
    } else if op.object().is_some_and(|(c, _)| c == "keys")
        || matches!(
            op,
            Operation::ListKeys
                | Operation::ListDeletedKeys
                | Operation::RestoreKey
                | Operation::GetRandomBytes
        )
    {
        keys::handle(state, &ctx, op, &bytes).await
    } else {
        secrets::handle(state, &ctx, op, &bytes).await
    }
}

fn throttle_category(op: &Operation) -> Category {
    match op {
        Operation::SetSecret { .. } | Operation::RestoreSecret => Category::SecretWrite,
        _ => Category::Other,
    }
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

/// Paging: `maxresults` (1–25) and an opaque, URL-safe `$skiptoken`.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub max: usize,
    pub after: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SkipToken {
    a: String,
}

impl PageRequest {
    pub fn from_query(q: &Query) -> ApiResult<Self> {
        let max = match q.get("maxresults") {
            None | Some("") => MAX_PAGE_SIZE,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad(format!(
                        "Invalid maxresults: it must be an integer from 1 to {MAX_PAGE_SIZE}."
                    )));
                }
            },
        };
        let after = match q.get("$skiptoken") {
            None | Some("") => None,
            Some(t) => {
                Some(decode_skiptoken(t).ok_or_else(|| ApiError::bad("Invalid $skiptoken."))?)
            }
        };
        Ok(Self { max, after })
    }
}

fn decode_skiptoken(t: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    serde_json::from_slice::<SkipToken>(&bytes)
        .ok()
        .map(|s| s.a)
}

fn encode_skiptoken(after: &str) -> String {
    let json = serde_json::to_vec(&SkipToken {
        a: after.to_string(),
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// One page of `items` (sorted by their sort key) after the request's position.
/// `base` is the collection's absolute URL without a query.
pub fn paginate<T>(
    items: Vec<(String, T)>,
    req: &PageRequest,
    base: &str,
    api_version: &str,
) -> Page<T> {
    let start = match &req.after {
        Some(after) => items.partition_point(|(k, _)| k.as_str() <= after.as_str()),
        None => 0,
    };
    let total = items.len();
    let end = (start + req.max).min(total);
    let last_key = (end < total && end > start).then(|| items[end - 1].0.clone());
    let value: Vec<T> = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .map(|(_, t)| t)
        .collect();
    let next_link = last_key.map(|k| {
        format!(
            "{base}?api-version={api_version}&$skiptoken={}&maxresults={}",
            encode_skiptoken(&k),
            req.max
        )
    });
    Page { value, next_link }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_percent_decoded() {
        let q = Query::parse(Some("api%2Dversion=7.4&maxresults=3"));
        assert_eq!(q.get("api-version"), Some("7.4"));
        assert_eq!(q.get("maxresults"), Some("3"));
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
    fn paging_walks_every_item_once() {
        let items: Vec<(String, u32)> = (0..60).map(|i| (format!("k{i:03}"), i)).collect();
        let mut req = PageRequest {
            max: 25,
            after: None,
        };
        let mut seen = Vec::new();
        loop {
            let page = paginate(items.clone(), &req, "https://v/secrets", "7.4");
            seen.extend(page.value);
            match page.next_link {
                None => break,
                Some(link) => {
                    let q = Query::parse(link.split_once('?').map(|(_, q)| q));
                    assert!(!q.get("$skiptoken").unwrap().contains(['+', '/', '=']));
                    req = PageRequest::from_query(&q).unwrap();
                }
            }
        }
        assert_eq!(seen, (0..60).collect::<Vec<_>>());
    }

    #[test]
    fn bad_paging_parameters_are_refused() {
        for q in [
            "maxresults=0",
            "maxresults=26",
            "maxresults=x",
            "$skiptoken=%%%",
            "$skiptoken=Zm9v",
        ] {
            assert!(
                PageRequest::from_query(&Query::parse(Some(q))).is_err(),
                "{q}"
            );
        }
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
