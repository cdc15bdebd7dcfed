//! Which namespaces the operator watches: the whole cluster (one ClusterRole), or a list of
//! namespaces (a Role in each, and no cluster-wide rights on namespaced objects at all).

use kube::{Api, Client, Resource};

/// The namespaces the operator reconciles vaults and grants in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace (the default).
    Cluster,
    /// Only these namespaces (`--watch-namespace`), sorted and without repeats.
    Namespaces(Vec<String>),
}

impl WatchScope {
    /// The scope `--watch-namespace` gives: none is the whole cluster.
    pub fn from_namespaces(given: &[String]) -> Result<Self, String> {
        if given.is_empty() {
            return Ok(Self::Cluster);
        }
        let mut names = Vec::with_capacity(given.len());
        for ns in given {
            let ns = ns.trim();
            if !is_dns_label(ns) {
                return Err(format!(
                    "--watch-namespace '{ns}' is not a namespace name (a DNS label: lower-case \
                     letters, digits and '-', at most 63 characters)"
                ));
            }
            names.push(ns.to_string());
        }
        names.sort();
        names.dedup();
        Ok(Self::Namespaces(names))
    }

    /// The watched namespaces, `None` for the whole cluster.
    pub fn namespaces(&self) -> Option<&[String]> {
        match self {
            Self::Cluster => None,
            Self::Namespaces(n) => Some(n),
        }
    }

    /// What each watch covers: `[None]` (all namespaces) or one `Some(namespace)` each.
    pub fn targets(&self) -> Vec<Option<&str>> {
        match self {
            Self::Cluster => vec![None],
            Self::Namespaces(names) => names.iter().map(|n| Some(n.as_str())).collect(),
        }
    }

    /// One `Api` per watched namespace, or one over all namespaces.
    pub fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        self.targets()
            .into_iter()
            .map(|ns| api_in(client, ns))
            .collect()
    }
}

/// An `Api` in one namespace, or over all of them.
pub fn api_in<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_namespace_is_the_cluster_and_names_are_checked() {
        assert_eq!(
            WatchScope::from_namespaces(&[]).unwrap(),
            WatchScope::Cluster
        );
        let s = WatchScope::from_namespaces(&["team-b".into(), "team-a".into(), "team-b".into()])
            .unwrap();
        assert_eq!(s.namespaces().unwrap(), ["team-a", "team-b"]);
        for bad in ["", "Team", "-a", "a_b", &"x".repeat(64)] {
            let e = WatchScope::from_namespaces(&[bad.to_string()]).unwrap_err();
            assert!(e.contains("--watch-namespace"), "{e}");
        }
    }
}
