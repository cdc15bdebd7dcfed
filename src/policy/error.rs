//! The error of a policy document that does not validate (a leaf: the document and its
//! event settings both use it).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);
