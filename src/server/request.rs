//! What every handler gets from the pipeline and gives back: the decoded query, the request
//! context, the reply, and paging. A leaf: it imports no handler and no pipeline stage.

use crate::server::error::{ApiError, ApiResult};
use crate::server::retention::SoftDelete;
use crate::wire::{MAX_PAGE_SIZE, Page};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

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
    let last_key = (end < total && end > start)
        .then(|| items.get(end - 1).map(|(k, _)| k.clone()))
        .flatten();
    let value: Vec<T> = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .map(|(_, t)| t)
        .collect();
    let next_link = last_key.map(|k| next_link(base, api_version, &k, req.max));
    Page { value, next_link }
}

/// The `nextLink` of a page whose listing continues after `after` (what
/// [`PageRequest::after`] gives back on the next request), `max` items per page.
pub fn next_link(base: &str, api_version: &str, after: &str, max: usize) -> String {
    format!(
        "{base}?api-version={api_version}&$skiptoken={}&maxresults={max}",
        encode_skiptoken(after)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_percent_decoded() {
        let q = Query::parse(Some("api%2Dversion=7.4&maxresults=3"));
        assert_eq!(q.get("api-version"), Some("7.4"));
        assert_eq!(q.get("maxresults"), Some("3"));
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
}
