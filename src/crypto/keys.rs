//! Key material for the keys API: generation, JWK import and export, and the key
//! operations (encrypt, decrypt, wrap, unwrap, sign, verify) on aws-lc-rs.
//!
//! Private material lives only here: in memory as parsed key objects or zeroizing buffers,
//! at rest as the PKCS#8 / raw bytes the store seals. Errors never carry key bytes.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    self, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext,
    PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap, KeyWrapPadded};
use aws_lc_rs::rsa::{
    self, KeyPairComponents, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    PublicKeyComponents,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use std::fmt;
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The request cannot work with this key (wrong algorithm, size, shape …): a 400.
    #[error("{0}")]
    Bad(String),
    /// A decryption, unwrap or authentication check failed: a 400 without details.
    #[error("the operation failed: the input is not valid for this key and algorithm")]
    Failed,
}

fn bad(s: impl Into<String>) -> KeyError {
    KeyError::Bad(s.into())
}

/// Key families (`-HSM` types are refused by the API layer). Serialized as the JWK `kty`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyType {
    #[default]
    #[serde(rename = "RSA")]
    Rsa,
    #[serde(rename = "EC")]
    Ec,
    #[serde(rename = "oct")]
    Oct,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::Ec => "EC",
            KeyType::Oct => "oct",
        }
    }
}

/// The JWK `key_ops` values: what a key version may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JwkOperation {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    WrapKey,
    UnwrapKey,
    Import,
    Export,
}

impl JwkOperation {
    pub const ALL: &'static [JwkOperation] = &[
        JwkOperation::Encrypt,
        JwkOperation::Decrypt,
        JwkOperation::Sign,
        JwkOperation::Verify,
        JwkOperation::WrapKey,
        JwkOperation::UnwrapKey,
        JwkOperation::Import,
        JwkOperation::Export,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JwkOperation::Encrypt => "encrypt",
            JwkOperation::Decrypt => "decrypt",
            JwkOperation::Sign => "sign",
            JwkOperation::Verify => "verify",
            JwkOperation::WrapKey => "wrapKey",
            JwkOperation::UnwrapKey => "unwrapKey",
            JwkOperation::Import => "import",
            JwkOperation::Export => "export",
        }
    }

    /// Case-insensitive, as the cloud accepts `wrapkey` for `wrapKey`.
    pub fn parse(s: &str) -> Option<JwkOperation> {
        JwkOperation::ALL
            .iter()
            .copied()
            .find(|o| o.as_str().eq_ignore_ascii_case(s))
    }

    /// What a key type can do (import and export are possible for every type).
    pub fn possible_for(self, kty: KeyType) -> bool {
        use JwkOperation as O;
        match kty {
            KeyType::Rsa => true,
            KeyType::Ec => matches!(self, O::Sign | O::Verify | O::Import | O::Export),
            KeyType::Oct => !matches!(self, O::Sign | O::Verify),
        }
    }

    /// What a new key of the type may do when the request names nothing.
    pub fn defaults_for(kty: KeyType) -> Vec<JwkOperation> {
        use JwkOperation as O;
        match kty {
            KeyType::Rsa => vec![
                O::Encrypt,
                O::Decrypt,
                O::Sign,
                O::Verify,
                O::WrapKey,
                O::UnwrapKey,
            ],
            KeyType::Ec => vec![O::Sign, O::Verify],
            KeyType::Oct => vec![O::Encrypt, O::Decrypt, O::WrapKey, O::UnwrapKey],
        }
    }
}

/// Serialized as the JWK `crv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Curve {
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
    #[serde(rename = "P-521")]
    P521,
    #[serde(rename = "P-256K", alias = "SECP256K1")]
    P256K,
}

impl Curve {
    pub fn parse(s: &str) -> Option<Curve> {
        match s {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            "P-256K" | "SECP256K1" => Some(Curve::P256K),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::P256K => "P-256K",
        }
    }
    fn tag(self) -> u8 {
        match self {
            Curve::P256 => 1,
            Curve::P384 => 2,
            Curve::P521 => 3,
            Curve::P256K => 4,
        }
    }
    fn from_tag(t: u8) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521, Curve::P256K]
            .into_iter()
            .find(|c| c.tag() == t)
    }
    /// Bytes of one coordinate.
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 | Curve::P256K => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
    fn signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            Curve::P256K => &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
        }
    }
    fn verifying(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
            Curve::P256K => &signature::ECDSA_P256K1_SHA256_FIXED,
        }
    }
    /// The one signature algorithm of the API that fits this curve.
    fn signature_alg(self) -> SignatureAlgorithm {
        match self {
            Curve::P256 => SignatureAlgorithm::ES256,
            Curve::P384 => SignatureAlgorithm::ES384,
            Curve::P521 => SignatureAlgorithm::ES512,
            Curve::P256K => SignatureAlgorithm::ES256K,
        }
    }
}

macro_rules! alg_enum {
    ($name:ident { $($v:ident = $s:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub enum $name { $($v),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),* } }
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|a| a.as_str() == s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

alg_enum!(EncryptionAlgorithm {
    RsaOaep = "RSA-OAEP",
    RsaOaep256 = "RSA-OAEP-256",
    Rsa1_5 = "RSA1_5",
    A128Gcm = "A128GCM",
    A192Gcm = "A192GCM",
    A256Gcm = "A256GCM",
    A128Kw = "A128KW",
    A192Kw = "A192KW",
    A256Kw = "A256KW",
    A128Cbc = "A128CBC",
    A192Cbc = "A192CBC",
    A256Cbc = "A256CBC",
    A128CbcPad = "A128CBCPAD",
    A192CbcPad = "A192CBCPAD",
    A256CbcPad = "A256CBCPAD",
    CkmAesKeyWrap = "CKM_AES_KEY_WRAP",
    CkmAesKeyWrapPad = "CKM_AES_KEY_WRAP_PAD",
});

alg_enum!(SignatureAlgorithm {
    RS256 = "RS256",
    RS384 = "RS384",
    RS512 = "RS512",
    PS256 = "PS256",
    PS384 = "PS384",
    PS512 = "PS512",
    ES256 = "ES256",
    ES384 = "ES384",
    ES512 = "ES512",
    ES256K = "ES256K",
});

impl SignatureAlgorithm {
    fn digest_alg(self) -> &'static digest::Algorithm {
        use SignatureAlgorithm as S;
        match self {
            S::RS256 | S::PS256 | S::ES256 | S::ES256K => &digest::SHA256,
            S::RS384 | S::PS384 | S::ES384 => &digest::SHA384,
            S::RS512 | S::PS512 | S::ES512 => &digest::SHA512,
        }
    }
    fn is_rsa(self) -> bool {
        matches!(
            self,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512
        )
    }
}

/// What an encryption returns besides the ciphertext.
#[derive(Debug, Default)]
pub struct Encrypted {
    pub value: Vec<u8>,
    pub iv: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
}

/// The public half of a key as the JWK members the API returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicParts {
    pub n: Option<Vec<u8>>,
    pub e: Option<Vec<u8>>,
    pub crv: Option<Curve>,
    pub x: Option<Vec<u8>>,
    pub y: Option<Vec<u8>>,
}

/// Private members of an imported JWK (already base64url-decoded).
#[derive(Default)]
pub struct ImportParts {
    pub kty: Option<KeyType>,
    pub n: Option<Vec<u8>>,
    pub e: Option<Vec<u8>>,
    pub d: Option<Zeroizing<Vec<u8>>>,
    pub p: Option<Zeroizing<Vec<u8>>>,
    pub q: Option<Zeroizing<Vec<u8>>>,
    pub dp: Option<Zeroizing<Vec<u8>>>,
    pub dq: Option<Zeroizing<Vec<u8>>>,
    pub qi: Option<Zeroizing<Vec<u8>>>,
    pub crv: Option<Curve>,
    pub x: Option<Vec<u8>>,
    pub y: Option<Vec<u8>>,
    pub k: Option<Zeroizing<Vec<u8>>>,
}

enum Inner {
    Rsa {
        pair: RsaKeyPair,
        pkcs8: Zeroizing<Vec<u8>>,
        /// The same key as aws-lc's encryption types, parsed on first use.
        dec: std::sync::OnceLock<PrivateDecryptingKey>,
        enc: std::sync::OnceLock<PublicEncryptingKey>,
    },
    Ec {
        curve: Curve,
        pair: EcdsaKeyPair,
        pkcs8: Zeroizing<Vec<u8>>,
    },
    Oct(Zeroizing<Vec<u8>>),
}

/// A key version's material.
pub struct KeyMaterial(Inner);

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyMaterial({} {} bits)",
            self.kty().as_str(),
            self.size_bits()
        )
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b.get(i..).unwrap_or_default()
}

impl KeyMaterial {
    /// RSA 2048, 3072 or 4096 bits with exponent 65537.
    pub fn generate_rsa(bits: u32, public_exponent: Option<u32>) -> Result<Self, KeyError> {
        if let Some(e) = public_exponent
            && e != 65537
        {
            return Err(bad(format!(
                "public_exponent {e} is not supported; only 65537 is"
            )));
        }
        let size = match bits {
            2048 => rsa::KeySize::Rsa2048,
            3072 => rsa::KeySize::Rsa3072,
            4096 => rsa::KeySize::Rsa4096,
            other => {
                return Err(bad(format!(
                    "RSA key_size {other} is not supported: use 2048, 3072 or 4096"
                )));
            }
        };
        let pair = RsaKeyPair::generate(size).map_err(|_| bad("RSA key generation failed"))?;
        Self::from_rsa_pair(pair)
    }

    fn from_rsa_pair(pair: RsaKeyPair) -> Result<Self, KeyError> {
        let der: Pkcs8V1Der = pair.as_der().map_err(|_| bad("RSA key export failed"))?;
        let pkcs8 = Zeroizing::new(der.as_ref().to_vec());
        Ok(Self(Inner::Rsa {
            pair,
            pkcs8,
            dec: Default::default(),
            enc: Default::default(),
        }))
    }

    pub fn generate_ec(curve: Curve) -> Result<Self, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(curve.signing(), &rng)
            .map_err(|_| bad("EC key generation failed"))?;
        Self::from_ec_pkcs8(curve, Zeroizing::new(doc.as_ref().to_vec()))
    }

    fn from_ec_pkcs8(curve: Curve, pkcs8: Zeroizing<Vec<u8>>) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(curve.signing(), &pkcs8)
            .map_err(|_| bad("EC key rejected"))?;
        Ok(Self(Inner::Ec { curve, pair, pkcs8 }))
    }

    /// A symmetric key of 128, 192 or 256 bits.
    pub fn generate_oct(bits: u32) -> Result<Self, KeyError> {
        if !matches!(bits, 128 | 192 | 256) {
            return Err(bad(format!(
                "oct key_size {bits} is not supported: use 128, 192 or 256"
            )));
        }
        let mut k = Zeroizing::new(vec![0u8; (bits / 8) as usize]);
        aws_lc_rs::rand::fill(&mut k).map_err(|_| bad("random generation failed"))?;
        Ok(Self(Inner::Oct(k)))
    }

    /// Builds a key from an imported JWK; RSA and EC need their private members.
    pub fn import(p: ImportParts) -> Result<Self, KeyError> {
        match p.kty {
            Some(KeyType::Rsa) => {
                fn need<'a>(
                    v: &'a Option<Zeroizing<Vec<u8>>>,
                    name: &str,
                ) -> Result<&'a [u8], KeyError> {
                    v.as_ref()
                        .map(|z| z.as_slice())
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            bad(format!(
                                "an RSA key import needs the private member '{name}'"
                            ))
                        })
                }
                let n =
                    p.n.as_deref()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| bad("an RSA key needs 'n'"))?;
                let e =
                    p.e.as_deref()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| bad("an RSA key needs 'e'"))?;
                let bits = strip_leading_zeros(n).len() * 8;
                if !(2048..=4096).contains(&bits) {
                    return Err(bad(format!(
                        "RSA keys of {bits} bits are not supported: use 2048 to 4096 bits"
                    )));
                }
                let comps = KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: strip_leading_zeros(n),
                        e: strip_leading_zeros(e),
                    },
                    d: need(&p.d, "d")?,
                    p: need(&p.p, "p")?,
                    q: need(&p.q, "q")?,
                    dP: need(&p.dp, "dp")?,
                    dQ: need(&p.dq, "dq")?,
                    qInv: need(&p.qi, "qi")?,
                };
                let pair = RsaKeyPair::from_components(&comps)
                    .map_err(|_| bad("the RSA key's members are inconsistent"))?;
                Self::from_rsa_pair(pair)
            }
            Some(KeyType::Ec) => {
                let curve = p.crv.ok_or_else(|| bad("an EC key needs 'crv'"))?;
                let len = curve.coordinate_len();
                let d =
                    p.d.as_ref()
                        .ok_or_else(|| bad("an EC key import needs the private member 'd'"))?;
                let (x, y) = match (&p.x, &p.y) {
                    (Some(x), Some(y)) if x.len() == len && y.len() == len => (x, y),
                    _ => {
                        return Err(bad(format!(
                            "an {} key needs 'x' and 'y' of {len} bytes",
                            curve.as_str()
                        )));
                    }
                };
                if d.len() != len {
                    return Err(bad(format!(
                        "an {} key needs 'd' of {len} bytes",
                        curve.as_str()
                    )));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                let pair =
                    EcdsaKeyPair::from_private_key_and_public_key(curve.signing(), d, &point)
                        .map_err(|_| bad("the EC key's members are inconsistent"))?;
                let doc = pair.to_pkcs8v1().map_err(|_| bad("EC key export failed"))?;
                Self::from_ec_pkcs8(curve, Zeroizing::new(doc.as_ref().to_vec()))
            }
            Some(KeyType::Oct) => {
                let k = p.k.ok_or_else(|| bad("an oct key needs 'k'"))?;
                if !matches!(k.len(), 16 | 24 | 32) {
                    return Err(bad("an oct key must be 128, 192 or 256 bits"));
                }
                Ok(Self(Inner::Oct(k)))
            }
            None => Err(bad("the JWK needs 'kty'")),
        }
    }

    /// The sealed-at-rest form: a tag byte, then PKCS#8 or the raw symmetric key.
    pub fn to_stored(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        match &self.0 {
            Inner::Rsa { pkcs8, .. } => {
                out.push(b'R');
                out.extend_from_slice(pkcs8);
            }
            Inner::Ec { curve, pkcs8, .. } => {
                out.push(b'E');
                out.push(curve.tag());
                out.extend_from_slice(pkcs8);
            }
            Inner::Oct(k) => {
                out.push(b'O');
                out.extend_from_slice(k);
            }
        }
        out
    }

    pub fn from_stored(b: &[u8]) -> Result<Self, KeyError> {
        let corrupt = || bad("stored key material is malformed");
        match b.split_first() {
            Some((b'R', der)) => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(|_| corrupt())?;
                Ok(Self(Inner::Rsa {
                    pair,
                    pkcs8: Zeroizing::new(der.to_vec()),
                    dec: Default::default(),
                    enc: Default::default(),
                }))
            }
            Some((b'E', rest)) => {
                let (tag, der) = rest.split_first().ok_or_else(corrupt)?;
                let curve = Curve::from_tag(*tag).ok_or_else(corrupt)?;
                Self::from_ec_pkcs8(curve, Zeroizing::new(der.to_vec()))
            }
            Some((b'O', k)) => Ok(Self(Inner::Oct(Zeroizing::new(k.to_vec())))),
            _ => Err(corrupt()),
        }
    }

    /// The PKCS#8 private key (RSA and EC), for certificates and PFX files.
    pub fn pkcs8(&self) -> Option<&[u8]> {
        match &self.0 {
            Inner::Rsa { pkcs8, .. } | Inner::Ec { pkcs8, .. } => Some(pkcs8),
            Inner::Oct(_) => None,
        }
    }

    /// Loads an RSA or EC (P-256, P-384, P-521, P-256K) PKCS#8 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            return Ok(Self(Inner::Rsa {
                pair,
                pkcs8: Zeroizing::new(der.to_vec()),
                dec: Default::default(),
                enc: Default::default(),
            }));
        }
        for curve in [Curve::P256, Curve::P384, Curve::P521, Curve::P256K] {
            if EcdsaKeyPair::from_pkcs8(curve.signing(), der).is_ok() {
                return Self::from_ec_pkcs8(curve, Zeroizing::new(der.to_vec()));
            }
        }
        Err(bad(
            "the private key is not an RSA or EC (P-256, P-384, P-521, P-256K) key",
        ))
    }

    /// Loads a PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`.
    pub fn from_traditional_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(pair) = RsaKeyPair::from_der(der) {
            return Self::from_rsa_pair(pair);
        }
        for curve in [Curve::P256, Curve::P384, Curve::P521, Curve::P256K] {
            if let Ok(pair) = EcdsaKeyPair::from_private_key_der(curve.signing(), der) {
                let doc = pair.to_pkcs8v1().map_err(|_| bad("EC key export failed"))?;
                return Self::from_ec_pkcs8(curve, Zeroizing::new(doc.as_ref().to_vec()));
            }
        }
        Err(bad("the private key is not an RSA or EC key"))
    }

    /// The SubjectPublicKeyInfo DER of the public key (RSA and EC).
    pub fn spki_der(&self) -> Option<Vec<u8>> {
        match &self.0 {
            Inner::Rsa { pair, .. } => pair
                .public_key()
                .as_der()
                .ok()
                .map(|d: PublicKeyX509Der| d.as_ref().to_vec()),
            Inner::Ec { pair, .. } => pair
                .public_key()
                .as_der()
                .ok()
                .map(|d: PublicKeyX509Der| d.as_ref().to_vec()),
            Inner::Oct(_) => None,
        }
    }

    pub fn kty(&self) -> KeyType {
        match &self.0 {
            Inner::Rsa { .. } => KeyType::Rsa,
            Inner::Ec { .. } => KeyType::Ec,
            Inner::Oct(_) => KeyType::Oct,
        }
    }

    pub fn curve(&self) -> Option<Curve> {
        match &self.0 {
            Inner::Ec { curve, .. } => Some(*curve),
            _ => None,
        }
    }

    pub fn size_bits(&self) -> u32 {
        match &self.0 {
            Inner::Rsa { pair, .. } => (pair.public_modulus_len() * 8) as u32,
            Inner::Ec { curve, .. } => match curve {
                Curve::P256 | Curve::P256K => 256,
                Curve::P384 => 384,
                Curve::P521 => 521,
            },
            Inner::Oct(k) => (k.len() * 8) as u32,
        }
    }

    /// The public JWK members (nothing for symmetric keys).
    pub fn public_parts(&self) -> PublicParts {
        match &self.0 {
            Inner::Rsa { pair, .. } => {
                let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                PublicParts {
                    n: Some(c.n),
                    e: Some(c.e),
                    ..Default::default()
                }
            }
            Inner::Ec { curve, pair, .. } => {
                let point = pair.public_key().as_ref();
                let len = curve.coordinate_len();
                // An uncompressed point: 0x04 || x || y.
                let (x, y) = match point.split_first() {
                    Some((_, xy)) if xy.len() == 2 * len => {
                        let (x, y) = xy.split_at(len);
                        (x.to_vec(), y.to_vec())
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                PublicParts {
                    crv: Some(*curve),
                    x: Some(x),
                    y: Some(y),
                    ..Default::default()
                }
            }
            Inner::Oct(_) => PublicParts::default(),
        }
    }

    fn rsa_public(&self) -> Result<PublicEncryptingKey, KeyError> {
        let Inner::Rsa { pair, enc, .. } = &self.0 else {
            return Err(bad("this algorithm needs an RSA key"));
        };
        if let Some(k) = enc.get() {
            return Ok(k.clone());
        }
        let spki: PublicKeyX509Der = pair
            .public_key()
            .as_der()
            .map_err(|_| bad("RSA public key export failed"))?;
        let key = PublicEncryptingKey::from_der(spki.as_ref())
            .map_err(|_| bad("RSA public key rejected"))?;
        Ok(enc.get_or_init(|| key).clone())
    }

    fn rsa_private(&self) -> Result<PrivateDecryptingKey, KeyError> {
        let Inner::Rsa { pkcs8, dec, .. } = &self.0 else {
            return Err(bad("this algorithm needs an RSA key"));
        };
        if let Some(k) = dec.get() {
            return Ok(k.clone());
        }
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| bad("RSA key rejected"))?;
        Ok(dec.get_or_init(|| key).clone())
    }
}

mod encryption;
mod sign;
mod wrap;

#[cfg(test)]
use encryption::cbc_params;
#[cfg(test)]
mod tests;
