//! The HTTP layer: one entry point for every data-plane request.
//!
//! Order matters and is the API's: authenticate first (401 with the challenge before any
//! body or parameter is looked at, so nothing leaks about objects), then api-version,
//! routing, authorization, body, handler. Every response carries `x-ms-request-id`.

use crate::server::AppState;
use crate::server::authz::authorize;
use crate::server::error::{ApiError, ApiResult};
use crate::server::ops::{RouteError, route};
use crate::server::secrets;
use crate::wire::{API_VERSIONS, LATEST_API_VERSION, MAX_PAGE_SIZE, Page};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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

pub async fn health() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// The data-plane entry point (the router's fallback: every Azure path comes here).
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = new_request_id();
    let client_request_id = req
        .headers()
        .get("x-ms-client-request-id")
        .filter(|v| v.len() <= 128)
        .cloned();
    let method = req.method().clone();
    let (result, op_name) = handle(&state, req).await;
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
    tracing::debug!(
        %request_id,
        %method,
        operation = op_name.unwrap_or("-"),
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

async fn handle(state: &AppState, req: Request) -> (ApiResult<Reply>, Option<&'static str>) {
    let (parts, body) = req.into_parts();
    let auth_header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match state.auth.authenticate(auth_header).await {
        Ok(p) => p,
        Err(e) => return (Err(ApiError::Unauthorized(e.to_string())), None),
    };
    let query = Query::parse(parts.uri.query());
    let api_version = match check_api_version(&query) {
        Ok(v) => v,
        Err(e) => return (Err(e), None),
    };
    let op = match route(&parts.method, parts.uri.path()) {
        Ok(op) => op,
        Err(RouteError::NotFound) => {
            return (
                Err(ApiError::NotFound {
                    code: "NotFound",
                    message: "The requested path does not exist in the Key Vault API.".into(),
                }),
                None,
            );
        }
        Err(RouteError::MethodNotAllowed) => {
            return (
                Err(ApiError::MethodNotAllowed(format!(
                    "The requested resource does not support http method '{}'.",
                    parts.method
                ))),
                None,
            );
        }
    };
    let name = op.name();
    if let Err(e) = authorize(&principal, &op) {
        return (Err(e), Some(name));
    }
    let bytes = match axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return (
                Err(ApiError::bad(
                    "The request body is too large or could not be read.",
                )),
                Some(name),
            );
        }
    };
    let ctx = RequestContext {
        origin: origin(&parts.headers, &parts.uri, &state.vault_origin),
        api_version,
        query,
    };
    (secrets::handle(state, &ctx, op, &bytes).await, Some(name))
}

fn check_api_version(q: &Query) -> ApiResult<String> {
    match q.get("api-version") {
        None | Some("") => Err(ApiError::bad(
            "The request is missing the api-version query parameter.",
        )),
        Some(v) if API_VERSIONS.contains(&v) => Ok(v.to_string()),
        Some(v) => Err(ApiError::bad(format!(
            "The specified version ({}) is not recognized. Consider using the latest supported version ({LATEST_API_VERSION}).",
            truncate(v, 64)
        ))),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
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
