//! The one error type of the data plane, mapped to the API's envelope in one place.

use crate::server::store::StoreError;
use crate::wire::{ErrorBody, ErrorEnvelope, InnerError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401; the HTTP layer adds the `WWW-Authenticate` challenge.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{message}")]
    Forbidden {
        message: String,
        inner: Option<&'static str>,
    },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict {
        message: String,
        inner: Option<&'static str>,
    },
    #[error("{0}")]
    BadParameter(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Refused by the network rules.
    #[error(
        "Client address is not authorized and caller is not a trusted service. Client address: {0}"
    )]
    Firewall(std::net::IpAddr),
    #[error(
        "Request was not processed because too many requests were received. Reason: {category} budget exhausted."
    )]
    Throttled {
        category: &'static str,
        retry_after_secs: u64,
    },
    /// A stored record failed authentication: refused, never served.
    #[error("a stored record failed its integrity check")]
    Integrity,
    #[error("the storage backend is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::BadParameter(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::BadParameter(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Firewall(_) => StatusCode::FORBIDDEN,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Integrity | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::NotFound { code, .. } => code,
            Self::Conflict { .. } => "Conflict",
            Self::BadParameter(_) => "BadParameter",
            Self::MethodNotAllowed(_) => "MethodNotAllowed",
            Self::Firewall(_) => "Forbidden",
            Self::Throttled { .. } => "Throttled",
            Self::Integrity => "RecordIntegrityFailure",
            Self::Internal => "InternalError",
            Self::Unavailable => "ServiceUnavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Integrity => "A stored record failed its integrity check (tampered or \
                                corrupted storage). The request was refused; see the vault's log."
                .into(),
            Self::Unavailable => {
                "The vault's storage is temporarily unavailable. Retry later.".into()
            }
            Self::Internal => "The vault hit an internal error; see the vault's log.".into(),
            other => other.to_string(),
        }
    }

    fn inner(&self) -> Option<&'static str> {
        match self {
            Self::Forbidden { inner, .. } | Self::Conflict { inner, .. } => *inner,
            Self::Firewall(_) => Some("ForbiddenByFirewall"),
            _ => None,
        }
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code().to_string(),
                message: self.message(),
                innererror: self.inner().map(|c| InnerError {
                    code: c.to_string(),
                }),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Integrity(what) => {
                tracing::error!(record = %what, "refusing a record that failed its integrity check");
                ApiError::Integrity
            }
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "storage unavailable");
                ApiError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.envelope()).unwrap_or_default();
        let mut resp = (self.status(), body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        match self {
            ApiError::Unavailable => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Throttled {
                retry_after_secs, ..
            } => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            _ => {}
        }
        resp
    }
}
