//! The client side of kvault's workload-identity token service: a service-account token
//! (the assertion) exchanged for an access token for a vault's audience, with the Entra
//! client-credentials grant the SDKs' `WorkloadIdentityCredential` uses.

use super::{ClientError, read_capped, transport_error};
use reqwest::Certificate;
use serde::Deserialize;
use std::time::Duration;
use zeroize::Zeroizing;

/// The assertion type of the client-credentials grant with a JWT assertion.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The largest token-service answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// An access token from the token service.
pub struct ExchangedToken {
    pub token: Zeroizing<String>,
    /// Lifetime from the time of the answer.
    pub expires_in: Duration,
}

impl std::fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

fn zeroizing<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(d).map(Zeroizing::new)
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(deserialize_with = "zeroizing")]
    access_token: Zeroizing<String>,
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct ErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
}

/// An HTTPS client for the token service trusting only the CA certificates in `ca_pem`.
pub fn identity_http_client(
    ca_pem: &[u8],
    timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    crate::install_crypto_provider();
    let certs = Certificate::from_pem_bundle(ca_pem)
        .map_err(|e| ClientError::config_with("parsing the CA bundle", e))?;
    if certs.is_empty() {
        return Err(ClientError::config("the CA bundle holds no certificate"));
    }
    reqwest::Client::builder()
        .https_only(true)
        .user_agent(concat!("kvault-provider/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        // A token service never redirects: the assertion must not go anywhere else.
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only(certs)
        .build()
        .map_err(|e| ClientError::config_with("building the HTTPS client", e))
}

/// The token endpoint of an authority (`https://host/adfs` → `https://host/adfs/oauth2/v2.0/token`).
pub fn token_endpoint(authority: &str) -> String {
    format!("{}/oauth2/v2.0/token", authority.trim_end_matches('/'))
}

/// The scope asking for `resource`'s default permissions.
pub fn scope_for(resource: &str) -> String {
    format!("{}/.default", resource.trim_end_matches('/'))
}

/// Exchanges `assertion` (a service-account token for the workload-identity audience) at
/// `authority`'s token endpoint for an access token for `resource`. Errors never carry
/// the assertion or a token.
pub async fn exchange_token(
    http: &reqwest::Client,
    authority: &str,
    client_id: &str,
    assertion: &str,
    resource: &str,
) -> Result<ExchangedToken, ClientError> {
    let scope = scope_for(resource);
    let form: [(&str, &str); 5] = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", &scope),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    let body = Zeroizing::new(
        serde_urlencoded::to_string(form)
            .map_err(|e| ClientError::config_with("encoding the token request", e))?,
    );
    let resp = http
        .post(token_endpoint(authority))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body.as_bytes().to_vec())
        .send()
        .await
        .map_err(transport_error)?;
    let status = resp.status().as_u16();
    let bytes = Zeroizing::new(read_capped(resp, MAX_ANSWER).await?);
    if (200..300).contains(&status) {
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::decode_with("the token service's answer", e))?;
        if answer.access_token.trim().is_empty() {
            return Err(ClientError::decode(
                "the token service's answer has an empty access_token",
            ));
        }
        return Ok(ExchangedToken {
            token: answer.access_token,
            expires_in: Duration::from_secs(answer.expires_in),
        });
    }
    Err(identity_error(status, &bytes))
}

/// The error of a refused token request, from an Entra error body (or its absence).
fn identity_error(status: u16, body: &[u8]) -> ClientError {
    let parsed: ErrorAnswer = serde_json::from_slice(body).unwrap_or_default();
    let error = if parsed.error.is_empty() {
        "unknown_error".to_string()
    } else {
        parsed.error.chars().take(64).collect()
    };
    // The description names the failure; a service that is not a token service could
    // send anything, so it is cut short.
    let description: String = parsed.error_description.chars().take(1024).collect();
    ClientError::Identity {
        status,
        error,
        description,
        codes: parsed.error_codes.into_iter().take(8).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_scopes() {
        assert_eq!(
            token_endpoint("https://kv-kvault-operator-webhook.kvault-system.svc/adfs/"),
            "https://kv-kvault-operator-webhook.kvault-system.svc/adfs/oauth2/v2.0/token"
        );
        assert_eq!(
            scope_for("https://pay.team-a.svc"),
            "https://pay.team-a.svc/.default"
        );
    }

    #[test]
    fn entra_errors_are_parsed_and_never_hold_the_body_verbatim() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700016: Application with identifier 'x' was not found.","error_codes":[700016]}"#;
        match identity_error(401, body) {
            ClientError::Identity {
                status,
                error,
                description,
                codes,
            } => {
                assert_eq!((status, error.as_str()), (401, "invalid_client"));
                assert!(description.starts_with("AADSTS700016"));
                assert_eq!(codes, vec![700016]);
            }
            other => panic!("{other:?}"),
        }
        let e = identity_error(502, b"<html>bad gateway</html>");
        assert!(e.to_string().contains("unknown_error"), "{e}");
        assert!(!e.to_string().contains("html"), "{e}");
    }

    #[test]
    fn the_token_is_not_in_debug() {
        let t = ExchangedToken {
            token: Zeroizing::new("secret-token".into()),
            expires_in: Duration::from_secs(60),
        };
        assert!(!format!("{t:?}").contains("secret-token"));
    }
}
