//! The token service's signing keys: ES256, rotated, published as a JWKS that every vault
//! trusts.
//!
//! A new key is published before it signs anything ([`PUBLISH_DELAY`]: vaults receive the
//! JWKS with their next policy push), and a retired key stays published while the tokens
//! it signed can still be presented ([`RETIRED_KEPT`]). [`KeyRing::rotate`] decides both,
//! from the clock alone, so every operator replica reaches the same answer.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How long a key signs before its successor is made.
pub const ROTATE_AFTER_SECS: i64 = 7 * 86_400;
/// How long a new key is published before it signs.
pub const PUBLISH_DELAY_SECS: i64 = 10 * 60;
/// How long a key stays published after it stopped signing: longer than any token it
/// signed lives, plus the vaults' clock leeway.
pub const RETIRED_KEPT_SECS: i64 = 2 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("generating a signing key failed")]
    Generate,
    #[error("signing key {kid} is not an ECDSA P-256 PKCS#8 key")]
    BadKey { kid: String },
    #[error("the key ring is unreadable: {0}")]
    Unreadable(String),
    #[error("signing the token failed: {0}")]
    Sign(String),
    #[error("the key ring has no key")]
    Empty,
}

/// One ES256 key.
pub struct SigningKey {
    pub kid: String,
    /// Unix seconds.
    pub created: i64,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate(created: i64) -> Result<Self, SigningError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| SigningError::Generate)?;
        Self::from_pkcs8(None, created, Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// A key from its PKCS#8 DER; the kid defaults to a digest of the public key.
    pub fn from_pkcs8(
        kid: Option<String>,
        created: i64,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<Self, SigningError> {
        let kp =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map_err(|_| {
                SigningError::BadKey {
                    kid: kid.clone().unwrap_or_default(),
                }
            })?;
        let kid = kid.unwrap_or_else(|| {
            crate::crypto::hex(&crate::crypto::sha256(kp.public_key().as_ref())[..8])
        });
        Ok(Self {
            kid,
            created,
            pkcs8,
        })
    }

    pub fn jwk(&self) -> Result<Jwk, SigningError> {
        let mut jwk =
            Jwk::from_encoding_key(&EncodingKey::from_ec_der(&self.pkcs8), Algorithm::ES256)
                .map_err(|e| SigningError::Sign(e.to_string()))?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(jwk)
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<Zeroizing<String>, SigningError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8))
            .map(Zeroizing::new)
            .map_err(|e| SigningError::Sign(e.to_string()))
    }
}

/// The keys of one token service, oldest first.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    created: i64,
    /// Base64 PKCS#8 DER.
    pkcs8: String,
}

impl KeyRing {
    pub fn new(mut keys: Vec<SigningKey>) -> Self {
        keys.sort_by_key(|k| k.created);
        Self { keys }
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The key that signs now: the newest one published for at least [`PUBLISH_DELAY_SECS`];
    /// while none is (a new service), the oldest.
    pub fn active(&self, now: i64) -> Option<&SigningKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.created + PUBLISH_DELAY_SECS <= now)
            .or_else(|| self.keys.first())
    }

    /// Makes a successor when the newest key is old enough, and drops keys that stopped
    /// signing more than [`RETIRED_KEPT_SECS`] ago. True when the ring changed.
    pub fn rotate(&mut self, now: i64) -> Result<bool, SigningError> {
        let mut changed = false;
        if self
            .keys
            .last()
            .is_none_or(|k| k.created + ROTATE_AFTER_SECS <= now)
        {
            self.keys.push(SigningKey::generate(now)?);
            changed = true;
        }
        let active = self.active(now).map(|k| k.kid.clone());
        // A key stopped signing when its successor became active.
        let successor_active_since: Vec<Option<i64>> = (0..self.keys.len())
            .map(|i| {
                self.keys
                    .get(i + 1)
                    .map(|next| next.created + PUBLISH_DELAY_SECS)
            })
            .collect();
        let before = self.keys.len();
        let mut i = 0;
        self.keys.retain(|k| {
            let since = successor_active_since.get(i).copied().flatten();
            i += 1;
            Some(&k.kid) == active.as_ref()
                || since.is_none_or(|s| s > now || s + RETIRED_KEPT_SECS > now)
        });
        Ok(changed || self.keys.len() != before)
    }

    /// The public keys, as every vault gets them.
    pub fn jwks(&self) -> Result<JwkSet, SigningError> {
        Ok(JwkSet {
            keys: self
                .keys
                .iter()
                .map(SigningKey::jwk)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The ring as stored (a Secret's `keys.json`): private key material, handle as such.
    pub fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, SigningError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let stored: Vec<StoredKey> = self
            .keys
            .iter()
            .map(|k| StoredKey {
                kid: k.kid.clone(),
                created: k.created,
                pkcs8: b64.encode(k.pkcs8.as_slice()),
            })
            .collect();
        let out = serde_json::to_vec(&stored).map_err(|e| SigningError::Unreadable(e.to_string()));
        for mut s in stored {
            zeroize::Zeroize::zeroize(&mut s.pkcs8);
        }
        out.map(Zeroizing::new)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, SigningError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let stored: Vec<StoredKey> =
            serde_json::from_slice(bytes).map_err(|e| SigningError::Unreadable(e.to_string()))?;
        let mut keys = Vec::with_capacity(stored.len());
        for mut s in stored {
            let der = b64
                .decode(s.pkcs8.as_bytes())
                .map_err(|_| SigningError::BadKey { kid: s.kid.clone() });
            zeroize::Zeroize::zeroize(&mut s.pkcs8);
            keys.push(SigningKey::from_pkcs8(
                Some(s.kid),
                s.created,
                Zeroizing::new(der?),
            )?);
        }
        Ok(Self::new(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ring_signs_with_its_first_key_at_once() {
        let mut ring = KeyRing::default();
        assert!(ring.rotate(1000).unwrap());
        assert_eq!(ring.keys().len(), 1);
        assert_eq!(ring.active(1000).unwrap().created, 1000);
        assert!(!ring.rotate(1001).unwrap());
    }

    #[test]
    fn a_successor_is_published_before_it_signs_and_its_predecessor_kept_after() {
        let mut ring = KeyRing::default();
        ring.rotate(0).unwrap();
        let first = ring.keys()[0].kid.clone();
        let t = ROTATE_AFTER_SECS;
        assert!(ring.rotate(t).unwrap());
        let second = ring.keys()[1].kid.clone();
        // Published, not signing yet.
        assert_eq!(ring.active(t).unwrap().kid, first);
        assert_eq!(ring.active(t + PUBLISH_DELAY_SECS - 1).unwrap().kid, first);
        assert_eq!(ring.active(t + PUBLISH_DELAY_SECS).unwrap().kid, second);
        // The predecessor stays published while its tokens live.
        let retired_at = t + PUBLISH_DELAY_SECS;
        assert!(!ring.rotate(retired_at + RETIRED_KEPT_SECS - 1).unwrap());
        assert_eq!(ring.jwks().unwrap().keys.len(), 2);
        assert!(ring.rotate(retired_at + RETIRED_KEPT_SECS).unwrap());
        assert_eq!(ring.keys().len(), 1);
        assert_eq!(ring.keys()[0].kid, second);
    }

    #[test]
    fn the_stored_ring_reads_back_and_verifies_what_it_signed() {
        let mut ring = KeyRing::default();
        ring.rotate(5).unwrap();
        let back = KeyRing::from_json(&ring.to_json().unwrap()).unwrap();
        assert_eq!(back.keys()[0].kid, ring.keys()[0].kid);
        let token = back
            .active(5)
            .unwrap()
            .sign(&serde_json::json!({"sub": "x"}))
            .unwrap();
        let jwk = ring.jwks().unwrap().keys.remove(0);
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], "x");
        assert!(KeyRing::from_json(b"[{\"kid\":\"k\",\"created\":1,\"pkcs8\":\"AAAA\"}]").is_err());
        assert!(!format!("{:?}", back.keys()[0]).contains("pkcs8"));
    }
}
