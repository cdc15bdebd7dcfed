//! Writing PEM blocks (reading uses `rustls::pki_types::pem::PemObject`).

use base64::Engine;
use zeroize::Zeroizing;

/// Encodes DER as a PEM block with 64-character lines. The returned string is zeroized on
/// drop because callers use it for private keys too.
pub fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// The system's CA bundle (the first of the usual Linux locations that can be read).
pub fn system_ca_bundle() -> Option<String> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    #[test]
    fn round_trips_through_the_rustls_pem_reader() {
        let der: Vec<u8> = (0..200u8).collect();
        let pem = super::encode("CERTIFICATE", &der);
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_slice());
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }
}
