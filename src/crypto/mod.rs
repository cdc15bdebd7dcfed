//! Cryptographic building blocks on aws-lc-rs: sealing records at rest, the master-key /
//! data-key hierarchy, random identifiers and PEM encoding.

pub mod keys;
pub mod pem;
pub mod seal;
pub mod x509;

pub use seal::{MasterKey, SealKey};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("random number generator failed")]
    Random,
    #[error("sealed data failed authentication (tampered, moved, or sealed under another key)")]
    Open,
    #[error("sealed data has an unknown format")]
    Format,
    #[error("invalid key material: {0}")]
    KeyMaterial(&'static str),
}

/// Fills a fixed-size buffer from the system CSPRNG.
pub fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| CryptoError::Random)?;
    Ok(buf)
}

/// A new object version id: 32 lowercase hex characters, as the cloud key vault uses.
pub fn new_version_id() -> Result<String, CryptoError> {
    Ok(hex(&random::<16>()?))
}

/// Lowercase hex, with the `hex` crate.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time equality for secrets (tokens, keys).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_32_lowercase_hex_and_distinct() {
        let a = new_version_id().unwrap();
        let b = new_version_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
