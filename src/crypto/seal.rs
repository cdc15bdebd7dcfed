//! Sealing: AES-256-GCM with a random 96-bit nonce and caller-supplied associated data.
//!
//! Key hierarchy: a master key (a Kubernetes Secret, a file, or generated in dev) wraps a
//! random per-vault data key; the data key seals every record with the record's identity as
//! associated data, so a record cannot be moved to another name or version unnoticed.
//! Backups are sealed under a key derived from the master key, so any vault of the same
//! master-key family can restore them and no other can.

use super::CryptoError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::hmac;
use base64::Engine;
use zeroize::{Zeroize, Zeroizing};

const FORMAT_V1: u8 = 1;
pub const KEY_LEN: usize = 32;

/// A 256-bit AES-GCM sealing key. The raw bytes are not kept once the cipher context exists.
pub struct SealKey {
    aead: LessSafeKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::KeyMaterial("a sealing key must be 32 bytes"));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| CryptoError::KeyMaterial("AES-256-GCM key rejected"))?;
        Ok(Self {
            aead: LessSafeKey::new(unbound),
        })
    }

    /// Returns `1 ‖ nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes = super::random::<NONCE_LEN>()?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(plaintext);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                out.get_mut(1 + NONCE_LEN..).unwrap_or_default(),
            )
            .map_err(|_| CryptoError::Open)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) produced under the same associated data.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let Some((&FORMAT_V1, rest)) = sealed.split_first() else {
            return Err(CryptoError::Format);
        };
        let Some((nonce, body)) = rest.split_first_chunk::<NONCE_LEN>() else {
            return Err(CryptoError::Format);
        };
        if body.len() < 16 {
            return Err(CryptoError::Format);
        }
        let nonce = *nonce;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                buf.as_mut_slice(),
            )
            .map_err(|_| CryptoError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// The root of a vault's key hierarchy. Never stored next to the data it protects.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

const DATA_KEY_AAD: &[u8] = b"kvault/v1/data-key";

impl MasterKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self {
            bytes: Zeroizing::new(super::random::<KEY_LEN>()?),
        })
    }

    /// Parses a master-key file: 32 raw bytes, or their standard base64 (whitespace ignored).
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if contents.len() == KEY_LEN {
            bytes.copy_from_slice(contents);
            return Ok(Self { bytes });
        }
        let text: Zeroizing<Vec<u8>> = Zeroizing::new(
            contents
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
        );
        let mut decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_slice())
                .map_err(|_| {
                    CryptoError::KeyMaterial("master key must be 32 bytes or their base64")
                })?,
        );
        if decoded.len() != KEY_LEN {
            decoded.zeroize();
            return Err(CryptoError::KeyMaterial(
                "master key must be 32 bytes or their base64",
            ));
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self { bytes })
    }

    /// The base64 text a master-key file holds.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.bytes.as_slice()))
    }

    fn derive(&self, info: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        derive_key(self.bytes.as_slice(), info)
    }

    fn wrapping_key(&self) -> Result<SealKey, CryptoError> {
        SealKey::from_bytes(self.derive(b"kvault/v1/wrap")?.as_slice())
    }

    /// Wraps a data key for storage beside the data.
    pub fn wrap_data_key(&self, data_key: &DataKeyMaterial) -> Result<Vec<u8>, CryptoError> {
        self.wrapping_key()?
            .seal(DATA_KEY_AAD, data_key.bytes.as_slice())
    }

    /// Unwraps a stored data key; fails when this is not the master key that wrapped it.
    pub fn unwrap_data_key(&self, wrapped: &[u8]) -> Result<DataKeyMaterial, CryptoError> {
        let plain = self.wrapping_key()?.open(DATA_KEY_AAD, wrapped)?;
        DataKeyMaterial::from_slice(&plain)
    }

    /// The key that seals backup blobs for this master-key family.
    pub fn backup_key(&self) -> Result<SealKey, CryptoError> {
        SealKey::from_bytes(self.derive(b"kvault/v1/backup")?.as_slice())
    }
}

/// A vault's data key in the clear (only in memory, zeroized on drop).
pub struct DataKeyMaterial {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl DataKeyMaterial {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self {
            bytes: Zeroizing::new(super::random::<KEY_LEN>()?),
        })
    }

    fn from_slice(s: &[u8]) -> Result<Self, CryptoError> {
        if s.len() != KEY_LEN {
            return Err(CryptoError::KeyMaterial("data key must be 32 bytes"));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(s);
        Ok(Self { bytes })
    }

    /// The key that seals records.
    pub fn record_key(&self) -> Result<SealKey, CryptoError> {
        SealKey::from_bytes(derive_key(self.bytes.as_slice(), b"kvault/v1/records")?.as_slice())
    }

    /// The key that turns object names into opaque storage keys, so the database never
    /// holds a plaintext name.
    pub fn name_key(&self) -> Result<hmac::Key, CryptoError> {
        let k = derive_key(self.bytes.as_slice(), b"kvault/v1/names")?;
        Ok(hmac::Key::new(hmac::HMAC_SHA256, k.as_slice()))
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

fn derive_key(ikm: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"kvault").extract(ikm);
    let infos = [info];
    let okm = prk
        .expand(&infos, Len32)
        .map_err(|_| CryptoError::KeyMaterial("key derivation failed"))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    okm.fill(out.as_mut_slice())
        .map_err(|_| CryptoError::KeyMaterial("key derivation failed"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let k = SealKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = k.seal(b"secret/a/1", b"hello").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(k.open(b"secret/a/1", &sealed).unwrap().as_slice(), b"hello");
        assert!(matches!(
            k.open(b"secret/b/1", &sealed),
            Err(CryptoError::Open)
        ));
        let mut tampered = sealed.clone();
        let mid = tampered.len() / 2;
        tampered[mid] ^= 1;
        assert!(k.open(b"secret/a/1", &tampered).is_err());
        assert!(matches!(k.open(b"x", &[1, 2, 3]), Err(CryptoError::Format)));
    }

    #[test]
    fn data_key_only_unwraps_under_its_master_key() {
        let m1 = MasterKey::generate().unwrap();
        let m2 = MasterKey::generate().unwrap();
        let dk = DataKeyMaterial::generate().unwrap();
        let wrapped = m1.wrap_data_key(&dk).unwrap();
        let back = m1.unwrap_data_key(&wrapped).unwrap();
        assert_eq!(back.bytes.as_slice(), dk.bytes.as_slice());
        assert!(m2.unwrap_data_key(&wrapped).is_err());
    }

    #[test]
    fn master_key_file_formats() {
        let m = MasterKey::generate().unwrap();
        let text = format!("{}\n", m.to_base64().as_str());
        let back = MasterKey::from_file_contents(text.as_bytes()).unwrap();
        assert_eq!(back.bytes.as_slice(), m.bytes.as_slice());
        assert!(MasterKey::from_file_contents(&[1u8; 32]).is_ok());
        assert!(MasterKey::from_file_contents(b"short").is_err());
        assert!(MasterKey::from_file_contents(b"c2hvcnQ=").is_err());
    }
}
