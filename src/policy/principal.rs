//! Who is calling: the identity a verified token names, its groups, and the application
//! it came through. Grants in the policy document are matched against this.

use std::fmt;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub identity: Identity,
    pub groups: Vec<String>,
    /// The application the token was issued to (`azp` / `appid` / `client_id`).
    pub application: Option<String>,
    pub issuer: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    ServiceAccount { namespace: String, name: String },
    User(String),
    Application(String),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::ServiceAccount { namespace, name } => {
                write!(f, "ServiceAccount {namespace}/{name}")
            }
            Identity::User(id) => write!(f, "User {id}"),
            Identity::Application(id) => write!(f, "Application {id}"),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.identity)?;
        match &self.application {
            Some(app) if !matches!(&self.identity, Identity::Application(a) if a == app) => {
                write!(f, " (application {app})")
            }
            _ => Ok(()),
        }
    }
}
