//! The router, built once from [`OPERATIONS`]: method + path to a row and its typed operation.
//!
//! Among the rows whose pattern matches the path and whose method is the request's, the most
//! specific wins: patterns are compared segment by segment and a literal beats a placeholder
//! (`POST /secrets/restore` restores; `PUT /secrets/restore` sets a secret called "restore").
//! A path some row matches under another method is 405; a path no row matches is 404.

use super::table::{OPERATIONS, OperationSpec, Scope};
use super::{Args, Operation};
use crate::policy::ObjectKind;
use axum::http::Method;
use percent_encoding::percent_decode_str;
use std::sync::LazyLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed,
}

/// A request matched to its row.
#[derive(Debug, Clone)]
pub struct Routed {
    pub spec: &'static OperationSpec,
    pub op: Operation,
    /// The object the path names (`{name}`), for the grant's scope and the audit record.
    name: String,
}

impl Routed {
    /// The object the operation touches, when its row is object-scoped.
    pub fn object(&self) -> Option<(ObjectKind, &str)> {
        match self.spec.scope {
            Scope::Object(kind) => Some((kind, self.name.as_str())),
            Scope::Vault => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Name,
    Version,
}

struct Pattern {
    segments: Vec<Segment>,
    trailing_slash: bool,
}

impl Pattern {
    fn parse(path: &'static str) -> Pattern {
        let (path, trailing_slash) = match path.strip_suffix("[/]") {
            Some(p) => (p, true),
            None => (path, false),
        };
        let segments = path
            .trim_start_matches('/')
            .split('/')
            .map(|s| match s {
                "{name}" => Segment::Name,
                "{version}" => Segment::Version,
                literal => Segment::Literal(literal),
            })
            .collect();
        Pattern {
            segments,
            trailing_slash,
        }
    }

    /// The captures when `segs` (percent-decoded) match.
    fn matches(&self, segs: &[String]) -> Option<Args> {
        let segs = match segs.split_last() {
            Some((last, rest))
                if self.trailing_slash && last.is_empty() && rest.len() == self.segments.len() =>
            {
                rest
            }
            _ => segs,
        };
        if segs.len() != self.segments.len() {
            return None;
        }
        let mut args = Args::default();
        for (pattern, seg) in self.segments.iter().zip(segs) {
            match pattern {
                Segment::Literal(l) if l.eq_ignore_ascii_case(seg) => {}
                Segment::Literal(_) => return None,
                Segment::Name if seg.is_empty() => return None,
                Segment::Name => args.name = seg.clone(),
                Segment::Version => args.version = (!seg.is_empty()).then(|| seg.clone()),
            }
        }
        Some(args)
    }

    /// Literal-first ordering: the first differing segment decides.
    fn more_specific_than(&self, other: &Pattern) -> bool {
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match (a, b) {
                (Segment::Literal(_), Segment::Name | Segment::Version) => return true,
                (Segment::Name | Segment::Version, Segment::Literal(_)) => return false,
                _ => {}
            }
        }
        false
    }
}

static PATTERNS: LazyLock<Vec<Pattern>> =
    LazyLock::new(|| OPERATIONS.iter().map(|s| Pattern::parse(s.path)).collect());

/// Maps a request to its row. Literals match case-insensitively, path segments are
/// percent-decoded, and an empty version segment addresses the latest version.
pub fn route(method: &Method, path: &str) -> Result<Routed, RouteError> {
    let segs: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let mut path_known = false;
    let mut best: Option<(usize, Args)> = None;
    for (i, (spec, pattern)) in OPERATIONS.iter().zip(PATTERNS.iter()).enumerate() {
        let Some(args) = pattern.matches(&segs) else {
            continue;
        };
        path_known = true;
        if spec.method != *method {
            continue;
        }
        let better = match &best {
            None => true,
            Some((j, _)) => PATTERNS
                .get(*j)
                .is_some_and(|current| pattern.more_specific_than(current)),
        };
        if better {
            best = Some((i, args));
        }
    }
    match best.and_then(|(i, args)| OPERATIONS.get(i).map(|spec| (spec, args))) {
        Some((spec, args)) => Ok(Routed {
            spec,
            name: args.name.clone(),
            op: (spec.build)(args),
        }),
        None if path_known => Err(RouteError::MethodNotAllowed),
        None => Err(RouteError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ops::{CertificatesOp, ContactsOp, IssuersOp, KeyOp, KeysOp, SecretsOp};
    use Operation::{Certificates as C, Keys as K, Secrets as S};

    fn r(m: Method, p: &str) -> Result<Operation, RouteError> {
        route(&m, p).map(|r| r.op)
    }

    #[test]
    fn secret_routes() {
        assert_eq!(
            r(Method::PUT, "/secrets/a"),
            Ok(S(SecretsOp::Set { name: "a".into() }))
        );
        assert_eq!(
            r(Method::GET, "/secrets/a/"),
            Ok(S(SecretsOp::Get {
                name: "a".into(),
                version: None
            }))
        );
        assert_eq!(
            r(Method::GET, "/Secrets/A/0123"),
            Ok(S(SecretsOp::Get {
                name: "A".into(),
                version: Some("0123".into())
            }))
        );
        assert_eq!(
            r(Method::PATCH, "/secrets/a/"),
            Ok(S(SecretsOp::Update {
                name: "a".into(),
                version: None
            }))
        );
        assert_eq!(r(Method::GET, "/secrets"), Ok(S(SecretsOp::List)));
        assert_eq!(r(Method::GET, "/secrets/"), Ok(S(SecretsOp::List)));
        assert_eq!(
            r(Method::GET, "/secrets/a/versions"),
            Ok(S(SecretsOp::ListVersions { name: "a".into() }))
        );
        assert_eq!(
            r(Method::POST, "/secrets/restore"),
            Ok(S(SecretsOp::Restore))
        );
        // A secret may be called "restore": only POST means the restore operation.
        assert_eq!(
            r(Method::PUT, "/secrets/restore"),
            Ok(S(SecretsOp::Set {
                name: "restore".into()
            }))
        );
        assert_eq!(
            r(Method::POST, "/secrets/a/backup"),
            Ok(S(SecretsOp::Backup { name: "a".into() }))
        );
        assert_eq!(
            r(Method::DELETE, "/secrets/a"),
            Ok(S(SecretsOp::Delete { name: "a".into() }))
        );
        assert_eq!(
            r(Method::GET, "/deletedsecrets"),
            Ok(S(SecretsOp::ListDeleted))
        );
        assert_eq!(
            r(Method::DELETE, "/deletedsecrets/a"),
            Ok(S(SecretsOp::Purge { name: "a".into() }))
        );
        assert_eq!(
            r(Method::POST, "/deletedsecrets/a/recover"),
            Ok(S(SecretsOp::Recover { name: "a".into() }))
        );
        assert_eq!(
            r(Method::GET, "/secrets/bad%20name"),
            Ok(S(SecretsOp::Get {
                name: "bad name".into(),
                version: None
            }))
        );
    }

    #[test]
    fn key_routes() {
        assert_eq!(
            r(Method::POST, "/keys/k/create"),
            Ok(K(KeysOp::Create { name: "k".into() }))
        );
        assert_eq!(
            r(Method::PUT, "/keys/k"),
            Ok(K(KeysOp::Import { name: "k".into() }))
        );
        assert_eq!(
            r(Method::GET, "/keys/k/"),
            Ok(K(KeysOp::Get {
                name: "k".into(),
                version: None
            }))
        );
        assert_eq!(
            r(Method::POST, "/keys/k/abc/sign"),
            Ok(K(KeysOp::Crypto {
                name: "k".into(),
                version: Some("abc".into()),
                op: KeyOp::Sign
            }))
        );
        // An unversioned key id gives an empty version segment.
        assert_eq!(
            r(Method::POST, "/keys/k//wrapkey"),
            Ok(K(KeysOp::Crypto {
                name: "k".into(),
                version: None,
                op: KeyOp::WrapKey
            }))
        );
        assert_eq!(
            r(Method::POST, "/keys/k/encrypt"),
            Ok(K(KeysOp::Crypto {
                name: "k".into(),
                version: None,
                op: KeyOp::Encrypt
            }))
        );
        assert_eq!(
            r(Method::POST, "/keys/k/rotate"),
            Ok(K(KeysOp::Rotate { name: "k".into() }))
        );
        assert_eq!(
            r(Method::PUT, "/keys/k/rotationpolicy"),
            Ok(K(KeysOp::SetRotationPolicy { name: "k".into() }))
        );
        assert_eq!(r(Method::POST, "/keys/restore"), Ok(K(KeysOp::Restore)));
        assert_eq!(r(Method::POST, "/rng"), Ok(K(KeysOp::GetRandomBytes)));
        assert_eq!(
            r(Method::DELETE, "/deletedkeys/k"),
            Ok(K(KeysOp::Purge { name: "k".into() }))
        );
        assert_eq!(
            r(Method::POST, "/keys/k/v/nothing"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            r(Method::GET, "/keys/k/v/sign"),
            Err(RouteError::MethodNotAllowed)
        );
    }

    #[test]
    fn certificate_routes() {
        let n = || "c".to_string();
        assert_eq!(
            r(Method::POST, "/certificates/c/create"),
            Ok(C(CertificatesOp::Create { name: n() }))
        );
        assert_eq!(
            r(Method::GET, "/certificates/c/"),
            Ok(C(CertificatesOp::Get {
                name: n(),
                version: None
            }))
        );
        assert_eq!(
            r(Method::GET, "/certificates/c/pending"),
            Ok(C(CertificatesOp::GetOperation { name: n() }))
        );
        assert_eq!(
            r(Method::POST, "/certificates/c/pending/merge"),
            Ok(C(CertificatesOp::Merge { name: n() }))
        );
        assert_eq!(
            r(Method::PATCH, "/certificates/c/policy"),
            Ok(C(CertificatesOp::UpdatePolicy { name: n() }))
        );
        assert_eq!(
            r(Method::PUT, "/certificates/contacts"),
            Ok(C(CertificatesOp::Contacts(ContactsOp::Set)))
        );
        assert_eq!(
            r(Method::GET, "/certificates/issuers"),
            Ok(C(CertificatesOp::Issuers(IssuersOp::List)))
        );
        assert_eq!(
            r(Method::PUT, "/certificates/issuers/ca"),
            Ok(C(CertificatesOp::Issuers(IssuersOp::Set {
                name: "ca".into()
            })))
        );
        assert_eq!(
            r(Method::POST, "/certificates/restore"),
            Ok(C(CertificatesOp::Restore))
        );
        assert_eq!(
            r(Method::DELETE, "/deletedcertificates/c"),
            Ok(C(CertificatesOp::Purge { name: n() }))
        );
    }

    #[test]
    fn every_row_is_routable_to_itself() {
        for spec in OPERATIONS {
            let sample = spec
                .path
                .trim_end_matches("[/]")
                .replace("{name}", "n1")
                .replace("{version}", "v1");
            let routed = route(&spec.method, &sample)
                .unwrap_or_else(|e| panic!("{} {sample}: {e:?}", spec.method));
            assert!(
                std::ptr::eq(routed.spec, spec),
                "{} {sample} routed to {} ({})",
                spec.method,
                routed.spec.name,
                routed.spec.path
            );
            match spec.scope {
                Scope::Object(_) => assert_eq!(routed.object().map(|(_, n)| n), Some("n1")),
                Scope::Vault => assert_eq!(routed.object(), None),
            }
        }
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert_eq!(r(Method::GET, "/nothing"), Err(RouteError::NotFound));
        assert_eq!(r(Method::GET, "/secrets/a/b/c"), Err(RouteError::NotFound));
        assert_eq!(
            r(Method::POST, "/secrets"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::PUT, "/secrets/a/v1"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::POST, "/deletedsecrets/a"),
            Err(RouteError::MethodNotAllowed)
        );
    }
}
