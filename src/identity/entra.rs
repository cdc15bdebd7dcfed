//! Errors in the Entra ID token endpoint's format: `error` (the OAuth 2.0 code the SDKs
//! branch on), `error_description` starting with an `AADSTS…` code, and `error_codes`.
//!
//! The codes are Entra's own for the same failure, so what an SDK prints (and what a user
//! searches for) means the same as in the cloud.

use serde::Serialize;

/// One refused token request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AADSTS{code}: {description}")]
pub struct EntraError {
    /// The OAuth 2.0 error (`invalid_request`, `invalid_client`, …).
    pub error: OAuthError,
    /// The `AADSTS` number.
    pub code: u32,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest,
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
    UnauthorizedClient,
    /// The service cannot answer now (its keys are not loaded, the audit log failed).
    TemporarilyUnavailable,
}

impl OAuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthError::InvalidRequest => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status Entra answers with: 401 for a client it cannot authenticate, 503
    /// when it cannot answer, 400 otherwise.
    pub fn status(self) -> u16 {
        match self {
            OAuthError::InvalidClient => 401,
            OAuthError::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl EntraError {
    pub fn new(error: OAuthError, code: u32, description: impl Into<String>) -> Self {
        Self {
            error,
            code,
            description: description.into(),
        }
    }

    /// A required form field is missing or empty.
    pub fn missing(field: &str) -> Self {
        Self::new(
            OAuthError::InvalidRequest,
            900144,
            format!("The request body must contain the following parameter: '{field}'."),
        )
    }

    /// The body of the JSON answer.
    pub fn body(&self, request_id: &str, timestamp: &str) -> EntraErrorBody {
        EntraErrorBody {
            error: self.error.as_str(),
            error_description: format!(
                "AADSTS{}: {} Trace ID: {request_id} Correlation ID: {request_id} Timestamp: {timestamp}",
                self.code, self.description
            ),
            error_codes: vec![self.code],
            timestamp: timestamp.to_string(),
            trace_id: request_id.to_string(),
            correlation_id: request_id.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EntraErrorBody {
    pub error: &'static str,
    pub error_description: String,
    pub error_codes: Vec<u32>,
    pub timestamp: String,
    pub trace_id: String,
    pub correlation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_the_code_where_the_sdks_read_it() {
        let e = EntraError::new(
            OAuthError::InvalidClient,
            700024,
            "Client assertion is not within its valid time range.",
        );
        let b = serde_json::to_value(e.body("r-1", "2026-12-03 10:00:00Z")).unwrap();
        assert_eq!(b["error"], "invalid_client");
        assert_eq!(b["error_codes"][0], 700024);
        assert!(
            b["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS700024: Client assertion")
        );
        assert_eq!(e.error.status(), 401);
        assert_eq!(EntraError::missing("scope").error.status(), 400);
    }
}
