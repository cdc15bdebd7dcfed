//! Writing PEM blocks (reading uses `rustls::pki_types::pem::PemObject`).

use zeroize::Zeroizing;

/// Encodes DER as an RFC 7468 PEM block (64-character lines, LF endings) with
/// `pem-rfc7468`, into a buffer that is zeroized on drop because callers use it for private
/// keys too. `label` is one of the fixed labels of this crate ("CERTIFICATE", "PRIVATE KEY",
/// …); one the encoder refuses (not RFC 7468 label characters) gives an empty string.
pub fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let lf = pem_rfc7468::LineEnding::LF;
    let Ok(len) = pem_rfc7468::encoded_len(label, lf, der) else {
        return Zeroizing::default();
    };
    let mut buf = Zeroizing::new(vec![0u8; len]);
    let Ok(text) = pem_rfc7468::encode(label, lf, der, &mut buf) else {
        return Zeroizing::default();
    };
    Zeroizing::new(text.to_owned())
}

/// The system's trusted CA certificates as one PEM bundle, from `rustls-native-certs` (the
/// distribution's bundle or directory as openssl-probe finds them, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`); `None` when none can be read.
pub fn system_ca_bundle() -> Option<String> {
    let found = rustls_native_certs::load_native_certs();
    if !found.errors.is_empty() {
        tracing::debug!(errors = ?found.errors, "some system CA certificates could not be read");
    }
    let mut bundle = String::new();
    for c in &found.certs {
        bundle.push_str(&encode("CERTIFICATE", c));
    }
    (!bundle.is_empty()).then_some(bundle)
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
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    }

    #[test]
    fn the_blocks_are_the_same_as_the_hand_written_encoder_made() {
        // 48 bytes: exactly one full 64-character line, the edge a line wrapper gets wrong.
        let der = [7u8; 48];
        let pem = super::encode("PRIVATE KEY", &der);
        let body = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH";
        assert_eq!(
            pem.as_str(),
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
        );
        assert_eq!(super::encode("bad\nlabel", &der).as_str(), "");
    }

    #[test]
    fn the_system_bundle_is_every_native_root_as_pem() {
        let native = rustls_native_certs::load_native_certs().certs;
        let Some(bundle) = super::system_ca_bundle() else {
            assert!(native.is_empty(), "roots found but no bundle");
            return;
        };
        let certs: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(bundle.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(certs, native);
    }
}
