//! The exit status of a failed command, by class, decided in one place from the error (the
//! vault's HTTP status or the client's failure kind). The numbers are stable: scripts may
//! test them, and docs/cli.md lists them.

use crate::client::ClientError;
use std::process::ExitCode;

/// What kind of failure ended a command; each class has its own exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The operation ran and its answer is "no" (`key verify`: the signature does not verify).
    Negative,
    /// A command line clap refuses (clap's own status, 2).
    Usage,
    /// 404: no such object (or version, or deleted object).
    NotFound,
    /// 401: no valid token (missing, expired, not issued by a trusted issuer).
    Unauthorized,
    /// 403: the token is valid but the policy (or the network rules) refuse the caller.
    Forbidden,
    /// 409: the name is taken (a deleted but recoverable object, a restore over an existing
    /// one, an older policy generation).
    Conflict,
    /// No usable answer: connection refused, TLS failure, timeout, or 429/502/503/504.
    Unavailable,
    /// The vault refused the request for another reason (400, 405, 500…) or answered
    /// something that is not what the call expects.
    Refused,
    /// A local failure: bad input, a file that cannot be read or written, no URL or token,
    /// a configuration the client cannot use.
    Local,
}

impl Class {
    /// The process exit status of this class.
    pub fn code(self) -> u8 {
        match self {
            Class::Negative => 1,
            Class::Usage => 2,
            Class::NotFound => 3,
            Class::Unauthorized => 4,
            Class::Forbidden => 5,
            Class::Conflict => 6,
            Class::Unavailable => 7,
            Class::Refused => 8,
            Class::Local => 9,
        }
    }

    /// The class of an HTTP status the vault answered.
    pub fn of_status(status: u16) -> Class {
        match status {
            404 => Class::NotFound,
            401 => Class::Unauthorized,
            403 => Class::Forbidden,
            409 => Class::Conflict,
            408 | 429 | 502 | 503 | 504 => Class::Unavailable,
            _ => Class::Refused,
        }
    }

    /// The class of a client error.
    pub fn of_client(e: &ClientError) -> Class {
        match e {
            ClientError::Api { status, .. } => Class::of_status(*status),
            ClientError::Transport(_) => Class::Unavailable,
            ClientError::Decode { .. } => Class::Refused,
            ClientError::Config { .. } | ClientError::Token { .. } => Class::Local,
            ClientError::Identity { status, .. } => Class::of_status(*status),
        }
    }

    /// The class of a command's error: the first cause in its chain that says (a client
    /// error, a marked negative answer), else a local error.
    pub fn of(e: &anyhow::Error) -> Class {
        for cause in e.chain() {
            if let Some(c) = cause.downcast_ref::<ClientError>() {
                return Class::of_client(c);
            }
            if let Some(Negative(_)) = cause.downcast_ref::<Negative>() {
                return Class::Negative;
            }
            if let Some(kube::Error::Api(status)) = cause.downcast_ref::<kube::Error>() {
                return Class::of_status(status.code);
            }
        }
        Class::Local
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// A negative answer of an operation that itself succeeded (exit status 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Negative(pub &'static str);

/// Whether the error is a closed standard output (`kvault … | head -1`): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> anyhow::Error {
        ClientError::Api {
            status,
            code: "X".into(),
            message: "m".into(),
        }
        .into()
    }

    #[test]
    fn every_class_has_its_own_stable_code() {
        assert_eq!(Class::of(&api(404)).code(), 3);
        assert_eq!(Class::of(&api(401)).code(), 4);
        assert_eq!(Class::of(&api(403)).code(), 5);
        assert_eq!(Class::of(&api(409)).code(), 6);
        for s in [429, 503, 502, 504] {
            assert_eq!(Class::of(&api(s)).code(), 7, "{s}");
        }
        assert_eq!(Class::of(&api(400)).code(), 8);
        assert_eq!(Class::of(&api(500)).code(), 8);
        let transport = ClientError::Transport("Connection refused".into());
        assert_eq!(Class::of(&transport.into()), Class::Unavailable);
        assert_eq!(
            Class::of(&ClientError::config("invalid vault URL").into()),
            Class::Local
        );
        assert_eq!(
            Class::of(&anyhow::anyhow!("reading f: denied")),
            Class::Local
        );
        assert_eq!(Class::of(&Negative("no").into()), Class::Negative);
        // Context on top keeps the class of the cause.
        let wrapped = anyhow::Error::from(ClientError::Api {
            status: 404,
            code: "SecretNotFound".into(),
            message: "m".into(),
        })
        .context("reading the certificate's secret");
        assert_eq!(Class::of(&wrapped), Class::NotFound);
        let codes: std::collections::HashSet<u8> = [
            Class::Negative,
            Class::Usage,
            Class::NotFound,
            Class::Unauthorized,
            Class::Forbidden,
            Class::Conflict,
            Class::Unavailable,
            Class::Refused,
            Class::Local,
        ]
        .into_iter()
        .map(Class::code)
        .collect();
        assert_eq!(codes.len(), 9);
    }

    #[test]
    fn a_closed_stdout_is_recognised_through_context() {
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("printing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
