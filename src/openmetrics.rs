//! The `/metrics` answer of every program (server, provider, operator): a Prometheus
//! registry in the OpenMetrics text format.

use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn response(registry: &Registry) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response(),
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode metrics\n",
        )
            .into_response(),
    }
}
