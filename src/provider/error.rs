//! The provider's one error type: a low-cardinality code (metrics label, log field, gRPC
//! status) and a message a person can act on. Messages name parameters, objects and the
//! vault; they never carry attribute values, tokens or object contents.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The SecretProviderClass parameters (or the request) are malformed.
    InvalidParameters,
    /// The driver passed no service-account token for the vault's audience.
    MissingToken,
    /// The vault rejected the pod's token (401).
    Unauthorized,
    /// The pod's identity may not read an object (403).
    Forbidden,
    /// An object or version does not exist (404).
    NotFound,
    /// The vault kept answering 429.
    Throttled,
    /// Transport errors, 5xx, CA bundle problems.
    VaultUnavailable,
    /// An object's content cannot be rendered as asked (bad base64, not a certificate …).
    InvalidObject,
    /// The files exceed what the driver accepts.
    TooLarge,
    /// The mount did not finish within its budget.
    DeadlineExceeded,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameters => "InvalidParameters",
            ErrorCode::MissingToken => "MissingToken",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::Throttled => "Throttled",
            ErrorCode::VaultUnavailable => "VaultUnavailable",
            ErrorCode::InvalidObject => "InvalidObject",
            ErrorCode::TooLarge => "TooLarge",
            ErrorCode::DeadlineExceeded => "DeadlineExceeded",
            ErrorCode::Internal => "Internal",
        }
    }

    fn grpc(self) -> tonic::Code {
        match self {
            ErrorCode::InvalidParameters | ErrorCode::InvalidObject => tonic::Code::InvalidArgument,
            ErrorCode::MissingToken | ErrorCode::Unauthorized => tonic::Code::Unauthenticated,
            ErrorCode::Forbidden => tonic::Code::PermissionDenied,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Throttled | ErrorCode::TooLarge => tonic::Code::ResourceExhausted,
            ErrorCode::VaultUnavailable => tonic::Code::Unavailable,
            ErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }
}

/// Why a mount failed. The whole mount fails: the driver gets no files at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountError {
    pub code: ErrorCode,
    pub message: String,
}

/// The longest message a mount error carries. It becomes gRPC error metadata, which the
/// driver's gRPC C core caps at 8 KiB (beyond that the driver sees only "Stream removed"),
/// and a pod event; an echoed attribute of any length must not push it past either.
pub const MAX_MESSAGE: usize = 1024;

impl MountError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            let dropped = message.len() - cut;
            message.truncate(cut);
            message.push_str(&format!("… ({dropped} more bytes not shown)"));
        }
        Self { code, message }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameters, message)
    }
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kvault: {}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for MountError {}

impl From<MountError> for tonic::Status {
    fn from(e: MountError) -> Self {
        // The driver copies this message into the pod's events (`MountVolume.SetUp failed
        // … desc = <message>`), so it starts with the code and says what to do.
        tonic::Status::new(e.code.grpc(), e.to_string())
    }
}

pub type MountResult<T> = Result<T, MountError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_to_fit_grpc_metadata() {
        let e = MountError::invalid(format!("vaultUrl '{}' is not a URL", "é".repeat(10_000)));
        assert!(e.message.len() < MAX_MESSAGE + 64, "{}", e.message.len());
        assert!(e.message.starts_with("vaultUrl '"));
        assert!(
            e.message.ends_with("more bytes not shown)"),
            "{}",
            e.message
        );
        let short = MountError::invalid("fine");
        assert_eq!(short.message, "fine");
    }
}
