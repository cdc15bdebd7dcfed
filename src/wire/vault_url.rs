//! The vault's URL as the API needs it: the origin of object ids, the host of the server
//! certificate, the challenge's resource and the token audiences. Shared by the server, the
//! operator (which derives it from a `Vault`) and `kvault dev`.

/// The vault's own URL, split into what the ids, the certificate and the challenge need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultUrl {
    /// `https://host[:port]`, lower-case, no trailing slash, `:443` omitted.
    pub origin: String,
    pub host: String,
    pub port: u16,
}

impl VaultUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(s).map_err(|e| format!("'{s}' is not a URL: {e}"))?;
        if url.scheme() != "https" {
            return Err(format!("'{s}' must be an https:// URL"));
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(format!("'{s}' must not have a path"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("'{s}' has no host"))?
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(443);
        let origin = if port == 443 {
            format!("https://{host}")
        } else {
            format!("https://{host}:{port}")
        };
        Ok(Self { origin, host, port })
    }

    /// `https://<parent domain>[:port]`: the SDKs require the vault host to be a strict
    /// subdomain of the resource host (and Python compares ports off 443). Hosts without a
    /// parent (an IP, `localhost`) fall back to the origin, which the SDKs will refuse unless
    /// they disable challenge verification.
    pub fn default_resource(&self) -> String {
        let parent = match self.host.parse::<std::net::IpAddr>() {
            Ok(_) => None,
            Err(_) => self
                .host
                .split_once('.')
                .map(|(_, p)| p)
                .filter(|p| !p.is_empty()),
        };
        match parent {
            Some(p) if self.port == 443 => format!("https://{p}"),
            Some(p) => format!("https://{p}:{}", self.port),
            None => self.origin.clone(),
        }
    }
}

/// Tokens for the vault URL or for the challenge resource (what an SDK's credential asks
/// for, with or without `/.default`).
pub fn default_audiences(url: &VaultUrl, resource: &str) -> Vec<String> {
    let mut a = vec![
        url.origin.clone(),
        format!("{}/", url.origin),
        resource.to_string(),
        format!("{resource}/"),
        format!("{resource}/.default"),
    ];
    a.dedup();
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_resource_is_the_parent_domain_with_the_port() {
        let u = VaultUrl::parse("https://Dev.KVault.localhost:8443/").unwrap();
        assert_eq!(u.origin, "https://dev.kvault.localhost:8443");
        assert_eq!(u.default_resource(), "https://kvault.localhost:8443");
        let u = VaultUrl::parse("https://payments.team-a.svc").unwrap();
        assert_eq!(u.default_resource(), "https://team-a.svc");
        assert_eq!(u.origin, "https://payments.team-a.svc");
        let u = VaultUrl::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!(u.default_resource(), "https://127.0.0.1:8443");
        assert!(VaultUrl::parse("http://x.y").is_err());
        assert!(VaultUrl::parse("https://x.y/path").is_err());
    }
}
