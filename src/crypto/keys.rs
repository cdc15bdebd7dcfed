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

    fn oct(&self, bits: usize, alg: EncryptionAlgorithm) -> Result<&[u8], KeyError> {
        match &self.0 {
            Inner::Oct(k) if k.len() * 8 == bits => Ok(k),
            Inner::Oct(k) => Err(bad(format!(
                "{alg} needs a {bits}-bit key; this key has {} bits",
                k.len() * 8
            ))),
            _ => Err(bad(format!("{alg} needs a symmetric (oct) key"))),
        }
    }

    /// Encrypts (for RSA: with the public key). `iv` and `aad` apply to AES modes.
    pub fn encrypt(
        &self,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        iv: Option<&[u8]>,
        aad: Option<&[u8]>,
    ) -> Result<Encrypted, KeyError> {
        use EncryptionAlgorithm as E;
        match alg {
            E::RsaOaep | E::RsaOaep256 => {
                let key = OaepPublicEncryptingKey::new(self.rsa_public()?)
                    .map_err(|_| bad("RSA key rejected"))?;
                let oaep = if alg == E::RsaOaep {
                    &rsa::OAEP_SHA1_MGF1SHA1
                } else {
                    &rsa::OAEP_SHA256_MGF1SHA256
                };
                if plaintext.len() > key.max_plaintext_size(oaep) {
                    return Err(bad(format!(
                        "the plaintext is too long for {alg} with this key (at most {} bytes)",
                        key.max_plaintext_size(oaep)
                    )));
                }
                let mut out = vec![0u8; key.ciphertext_size()];
                let n = key
                    .encrypt(oaep, plaintext, &mut out, None)
                    .map_err(|_| KeyError::Failed)?
                    .len();
                out.truncate(n);
                Ok(Encrypted {
                    value: out,
                    ..Default::default()
                })
            }
            E::Rsa1_5 => {
                let key = Pkcs1PublicEncryptingKey::new(self.rsa_public()?)
                    .map_err(|_| bad("RSA key rejected"))?;
                if plaintext.len() > key.max_plaintext_size() {
                    return Err(bad(format!(
                        "the plaintext is too long for RSA1_5 with this key (at most {} bytes)",
                        key.max_plaintext_size()
                    )));
                }
                let mut out = vec![0u8; key.ciphertext_size()];
                let n = key
                    .encrypt(plaintext, &mut out)
                    .map_err(|_| KeyError::Failed)?
                    .len();
                out.truncate(n);
                Ok(Encrypted {
                    value: out,
                    ..Default::default()
                })
            }
            E::A128Gcm | E::A192Gcm | E::A256Gcm => {
                let (bits, aead_alg) = match alg {
                    E::A128Gcm => (128, &aead::AES_128_GCM),
                    E::A192Gcm => (192, &aead::AES_192_GCM),
                    _ => (256, &aead::AES_256_GCM),
                };
                let k = self.oct(bits, alg)?;
                let key = LessSafeKey::new(
                    UnboundKey::new(aead_alg, k).map_err(|_| bad("AES key rejected"))?,
                );
                let nonce: [u8; 12] = match iv {
                    Some(iv) => iv
                        .try_into()
                        .map_err(|_| bad(format!("{alg} needs a 12-byte iv")))?,
                    None => super::random::<12>().map_err(|_| bad("random generation failed"))?,
                };
                let mut buf = plaintext.to_vec();
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad.unwrap_or_default()),
                        &mut buf,
                    )
                    .map_err(|_| KeyError::Failed)?;
                Ok(Encrypted {
                    value: buf,
                    iv: Some(nonce.to_vec()),
                    tag: Some(tag.as_ref().to_vec()),
                })
            }
            E::A128Cbc
            | E::A192Cbc
            | E::A256Cbc
            | E::A128CbcPad
            | E::A192CbcPad
            | E::A256CbcPad => {
                let (bits, padded) = cbc_params(alg);
                let key = self.cipher_key(bits, alg)?;
                let iv: [u8; 16] = match iv {
                    Some(iv) => iv
                        .try_into()
                        .map_err(|_| bad(format!("{alg} needs a 16-byte iv")))?,
                    None => super::random::<16>().map_err(|_| bad("random generation failed"))?,
                };
                let ctx = EncryptionContext::Iv128(FixedLength::from(iv));
                let mut buf = plaintext.to_vec();
                if padded {
                    let k = PaddedBlockEncryptingKey::cbc_pkcs7(key)
                        .map_err(|_| bad("AES key rejected"))?;
                    k.less_safe_encrypt(&mut buf, ctx)
                        .map_err(|_| KeyError::Failed)?;
                } else {
                    if !buf.len().is_multiple_of(16) {
                        return Err(bad(format!(
                            "{alg} (no padding) needs a plaintext whose length is a multiple of 16 bytes; use {alg}PAD"
                        )));
                    }
                    let k = EncryptingKey::cbc(key).map_err(|_| bad("AES key rejected"))?;
                    k.less_safe_encrypt(&mut buf, ctx)
                        .map_err(|_| KeyError::Failed)?;
                }
                Ok(Encrypted {
                    value: buf,
                    iv: Some(iv.to_vec()),
                    tag: None,
                })
            }
            E::A128Kw | E::A192Kw | E::A256Kw | E::CkmAesKeyWrap | E::CkmAesKeyWrapPad => {
                Err(bad(format!("{alg} is a key-wrap algorithm; use wrapKey")))
            }
        }
    }

    /// The KEK size of a `CKM_AES_KEY_WRAP*` algorithm is the key's own size.
    /// The key-encryption key for an AES key-wrap algorithm and its size: the A*KW names
    /// fix the size, CKM_AES_KEY_WRAP(_PAD) take the oct key's own.
    fn kw_kek(&self, alg: EncryptionAlgorithm) -> Result<(usize, &[u8]), KeyError> {
        use EncryptionAlgorithm as E;
        let bits = match alg {
            E::CkmAesKeyWrap | E::CkmAesKeyWrapPad => self.kek_bits(alg)?,
            _ => kw_bits(alg),
        };
        Ok((bits, self.oct(bits, alg)?))
    }

    fn kek_bits(&self, alg: EncryptionAlgorithm) -> Result<usize, KeyError> {
        match &self.0 {
            Inner::Oct(k) => Ok(k.len() * 8),
            _ => Err(bad(format!("{alg} needs a symmetric (oct) key"))),
        }
    }

    fn cipher_key(
        &self,
        bits: usize,
        alg: EncryptionAlgorithm,
    ) -> Result<UnboundCipherKey, KeyError> {
        let k = self.oct(bits, alg)?;
        let c = match bits {
            128 => &cipher::AES_128,
            192 => &cipher::AES_192,
            _ => &cipher::AES_256,
        };
        UnboundCipherKey::new(c, k).map_err(|_| bad("AES key rejected"))
    }

    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
        aad: Option<&[u8]>,
        tag: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        use EncryptionAlgorithm as E;
        match alg {
            E::RsaOaep | E::RsaOaep256 => {
                let key = OaepPrivateDecryptingKey::new(self.rsa_private()?)
                    .map_err(|_| bad("RSA key rejected"))?;
                if ciphertext.len() != key.key_size_bytes() {
                    return Err(bad(format!(
                        "the ciphertext must be {} bytes for this key",
                        key.key_size_bytes()
                    )));
                }
                let oaep = if alg == E::RsaOaep {
                    &rsa::OAEP_SHA1_MGF1SHA1
                } else {
                    &rsa::OAEP_SHA256_MGF1SHA256
                };
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let n = key
                    .decrypt(oaep, ciphertext, &mut out, None)
                    .map_err(|_| KeyError::Failed)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            E::Rsa1_5 => {
                let key = Pkcs1PrivateDecryptingKey::new(self.rsa_private()?)
                    .map_err(|_| bad("RSA key rejected"))?;
                if ciphertext.len() != key.key_size_bytes() {
                    return Err(bad(format!(
                        "the ciphertext must be {} bytes for this key",
                        key.key_size_bytes()
                    )));
                }
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let n = key
                    .decrypt(ciphertext, &mut out)
                    .map_err(|_| KeyError::Failed)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            E::A128Gcm | E::A192Gcm | E::A256Gcm => {
                let (bits, aead_alg) = match alg {
                    E::A128Gcm => (128, &aead::AES_128_GCM),
                    E::A192Gcm => (192, &aead::AES_192_GCM),
                    _ => (256, &aead::AES_256_GCM),
                };
                let k = self.oct(bits, alg)?;
                let key = LessSafeKey::new(
                    UnboundKey::new(aead_alg, k).map_err(|_| bad("AES key rejected"))?,
                );
                let nonce: [u8; 12] = iv
                    .ok_or_else(|| bad(format!("{alg} decryption needs the iv")))?
                    .try_into()
                    .map_err(|_| bad(format!("{alg} needs a 12-byte iv")))?;
                let tag = tag.ok_or_else(|| bad(format!("{alg} decryption needs the tag")))?;
                if tag.len() != 16 {
                    return Err(bad(format!("{alg} needs a 16-byte tag")));
                }
                let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len() + 16));
                buf.extend_from_slice(ciphertext);
                buf.extend_from_slice(tag);
                let n = key
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad.unwrap_or_default()),
                        &mut buf,
                    )
                    .map_err(|_| KeyError::Failed)?
                    .len();
                buf.truncate(n);
                Ok(buf)
            }
            E::A128Cbc
            | E::A192Cbc
            | E::A256Cbc
            | E::A128CbcPad
            | E::A192CbcPad
            | E::A256CbcPad => {
                let (bits, padded) = cbc_params(alg);
                let key = self.cipher_key(bits, alg)?;
                let iv: [u8; 16] = iv
                    .ok_or_else(|| bad(format!("{alg} decryption needs the iv")))?
                    .try_into()
                    .map_err(|_| bad(format!("{alg} needs a 16-byte iv")))?;
                if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
                    return Err(bad(format!(
                        "an {alg} ciphertext is a non-empty multiple of 16 bytes"
                    )));
                }
                let ctx = DecryptionContext::Iv128(FixedLength::from(iv));
                let mut buf = Zeroizing::new(ciphertext.to_vec());
                let n = if padded {
                    let k = PaddedBlockDecryptingKey::cbc_pkcs7(key)
                        .map_err(|_| bad("AES key rejected"))?;
                    k.decrypt(&mut buf, ctx)
                        .map_err(|_| KeyError::Failed)?
                        .len()
                } else {
                    let k = DecryptingKey::cbc(key).map_err(|_| bad("AES key rejected"))?;
                    k.decrypt(&mut buf, ctx)
                        .map_err(|_| KeyError::Failed)?
                        .len()
                };
                buf.truncate(n);
                Ok(buf)
            }
            E::A128Kw | E::A192Kw | E::A256Kw | E::CkmAesKeyWrap | E::CkmAesKeyWrapPad => {
                Err(bad(format!("{alg} is a key-wrap algorithm; use unwrapKey")))
            }
        }
    }

    /// Wraps key bytes: RSA algorithms encrypt them, AES-KW (RFC 3394) wraps them.
    pub fn wrap(&self, alg: EncryptionAlgorithm, key: &[u8]) -> Result<Vec<u8>, KeyError> {
        use EncryptionAlgorithm as E;
        match alg {
            E::RsaOaep | E::RsaOaep256 | E::Rsa1_5 => Ok(self.encrypt(alg, key, None, None)?.value),
            E::CkmAesKeyWrapPad => {
                let (bits, kek) = self.kw_kek(alg)?;
                if key.is_empty() {
                    return Err(bad("there is no key to wrap"));
                }
                if bits != 128 && bits != 256 {
                    return Err(bad(format!("{alg} needs a 128- or 256-bit key")));
                }
                let mut out = vec![0u8; key.len() + 15];
                let n = aws_kek(bits, kek)?
                    .wrap_with_padding(key, &mut out)
                    .map_err(|_| KeyError::Failed)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            E::A128Kw | E::A192Kw | E::A256Kw | E::CkmAesKeyWrap => {
                let (bits, kek) = self.kw_kek(alg)?;
                check_kw_input(key)?;
                let mut out = vec![0u8; key.len() + 8];
                let n = match bits {
                    192 => aes192_kw::wrap(kek, key, &mut out)?,
                    _ => aws_kek(bits, kek)?
                        .wrap(key, &mut out)
                        .map_err(|_| KeyError::Failed)?
                        .len(),
                };
                out.truncate(n);
                Ok(out)
            }
            _ => Err(bad(format!(
                "{alg} is not a key-wrap algorithm: use RSA-OAEP, RSA-OAEP-256, RSA1_5, A128KW/A192KW/A256KW or CKM_AES_KEY_WRAP(_PAD)"
            ))),
        }
    }

    pub fn unwrap(
        &self,
        alg: EncryptionAlgorithm,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        use EncryptionAlgorithm as E;
        match alg {
            E::RsaOaep | E::RsaOaep256 | E::Rsa1_5 => self.decrypt(alg, wrapped, None, None, None),
            E::CkmAesKeyWrapPad => {
                let (bits, kek) = self.kw_kek(alg)?;
                if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
                    return Err(bad(format!(
                        "an {alg} wrapped key is a multiple of 8 bytes, at least 16"
                    )));
                }
                if bits != 128 && bits != 256 {
                    return Err(bad(format!("{alg} needs a 128- or 256-bit key")));
                }
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let n = aws_kek(bits, kek)?
                    .unwrap_with_padding(wrapped, &mut out)
                    .map_err(|_| KeyError::Failed)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            E::A128Kw | E::A192Kw | E::A256Kw | E::CkmAesKeyWrap => {
                let (bits, kek) = self.kw_kek(alg)?;
                if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
                    return Err(bad(format!(
                        "an {alg} wrapped key is a multiple of 8 bytes, at least 24"
                    )));
                }
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let n = match bits {
                    192 => aes192_kw::unwrap(kek, wrapped, &mut out)?,
                    _ => aws_kek(bits, kek)?
                        .unwrap(wrapped, &mut out)
                        .map_err(|_| KeyError::Failed)?
                        .len(),
                };
                out.truncate(n);
                Ok(out)
            }
            _ => Err(bad(format!(
                "{alg} is not a key-wrap algorithm: use RSA-OAEP, RSA-OAEP-256, RSA1_5, A128KW/A192KW/A256KW or CKM_AES_KEY_WRAP(_PAD)"
            ))),
        }
    }

    fn check_signature_alg(&self, alg: SignatureAlgorithm) -> Result<(), KeyError> {
        match &self.0 {
            Inner::Rsa { .. } if alg.is_rsa() => Ok(()),
            Inner::Ec { curve, .. } if curve.signature_alg() == alg => Ok(()),
            Inner::Ec { curve, .. } => Err(bad(format!(
                "{alg} does not fit a {} key: use {}",
                curve.as_str(),
                curve.signature_alg()
            ))),
            Inner::Rsa { .. } => Err(bad(format!("{alg} does not fit an RSA key"))),
            Inner::Oct(_) => Err(bad("symmetric keys do not sign")),
        }
    }

    fn digest(alg: SignatureAlgorithm, digest: &[u8]) -> Result<Digest, KeyError> {
        let d = alg.digest_alg();
        Digest::import_less_safe(digest, d).map_err(|_| {
            bad(format!(
                "{alg} signs a {}-byte digest; got {} bytes",
                d.output_len(),
                digest.len()
            ))
        })
    }

    /// Signs a caller-computed digest.
    pub fn sign(&self, alg: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        use SignatureAlgorithm as S;
        self.check_signature_alg(alg)?;
        let d = Self::digest(alg, digest)?;
        match &self.0 {
            Inner::Rsa { pair, .. } => {
                let enc: &'static dyn signature::RsaEncoding = match alg {
                    S::RS256 => &signature::RSA_PKCS1_SHA256,
                    S::RS384 => &signature::RSA_PKCS1_SHA384,
                    S::RS512 => &signature::RSA_PKCS1_SHA512,
                    S::PS256 => &signature::RSA_PSS_SHA256,
                    S::PS384 => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign_digest(enc, &d, &mut sig)
                    .map_err(|_| KeyError::Failed)?;
                Ok(sig)
            }
            Inner::Ec { pair, .. } => Ok(pair
                .sign_digest(&d)
                .map_err(|_| KeyError::Failed)?
                .as_ref()
                .to_vec()),
            Inner::Oct(_) => Err(bad("symmetric keys do not sign")),
        }
    }

    /// Verifies a signature over a caller-computed digest.
    pub fn verify(
        &self,
        alg: SignatureAlgorithm,
        digest: &[u8],
        sig: &[u8],
    ) -> Result<bool, KeyError> {
        use SignatureAlgorithm as S;
        self.check_signature_alg(alg)?;
        let d = Self::digest(alg, digest)?;
        let ok = match &self.0 {
            Inner::Rsa { pair, .. } => {
                let params: &'static signature::RsaParameters = match alg {
                    S::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    S::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    S::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    S::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    S::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                signature::UnparsedPublicKey::new(params, pair.public_key().as_ref())
                    .verify_digest(&d, sig)
                    .is_ok()
            }
            Inner::Ec { curve, pair, .. } => {
                signature::UnparsedPublicKey::new(curve.verifying(), pair.public_key().as_ref())
                    .verify_digest(&d, sig)
                    .is_ok()
            }
            Inner::Oct(_) => return Err(bad("symmetric keys do not verify")),
        };
        Ok(ok)
    }
}

fn cbc_params(alg: EncryptionAlgorithm) -> (usize, bool) {
    use EncryptionAlgorithm as E;
    match alg {
        E::A128Cbc => (128, false),
        E::A192Cbc => (192, false),
        E::A256Cbc => (256, false),
        E::A128CbcPad => (128, true),
        E::A192CbcPad => (192, true),
        _ => (256, true),
    }
}

/// aws-lc's AES key wrap for a 128-bit key, else the 256-bit one (AES-192 is `aes192_kw`;
/// a key of another size is rejected by `AesKek::new`).
fn aws_kek(bits: usize, kek: &[u8]) -> Result<AesKek, KeyError> {
    let c = if bits == 128 {
        &key_wrap::AES_128
    } else {
        &key_wrap::AES_256
    };
    AesKek::new(c, kek).map_err(|_| bad("AES key rejected"))
}

fn kw_bits(alg: EncryptionAlgorithm) -> usize {
    match alg {
        EncryptionAlgorithm::A128Kw => 128,
        EncryptionAlgorithm::A192Kw => 192,
        _ => 256,
    }
}

fn check_kw_input(key: &[u8]) -> Result<(), KeyError> {
    if key.len() < 16 || !key.len().is_multiple_of(8) {
        return Err(bad(
            "AES key wrap takes a key of at least 16 bytes, a multiple of 8",
        ));
    }
    Ok(())
}

/// RFC 3394 key wrap with a 192-bit KEK (aws-lc-rs offers only 128 and 256), built on the
/// AES-192 block cipher in ECB mode over one block at a time.
mod aes192_kw {
    use super::{KeyError, bad};
    use aws_lc_rs::cipher::{
        self, DecryptingKey, DecryptionContext, EncryptingKey, UnboundCipherKey,
    };
    use zeroize::Zeroizing;

    const IV: [u8; 8] = [0xA6; 8];

    fn enc(kek: &[u8], block: &mut [u8; 16]) -> Result<(), KeyError> {
        let k = EncryptingKey::ecb(
            UnboundCipherKey::new(&cipher::AES_192, kek).map_err(|_| bad("AES key rejected"))?,
        )
        .map_err(|_| bad("AES key rejected"))?;
        k.encrypt(block).map_err(|_| KeyError::Failed)?;
        Ok(())
    }

    fn dec(kek: &[u8], block: &mut [u8; 16]) -> Result<(), KeyError> {
        let k = DecryptingKey::ecb(
            UnboundCipherKey::new(&cipher::AES_192, kek).map_err(|_| bad("AES key rejected"))?,
        )
        .map_err(|_| bad("AES key rejected"))?;
        k.decrypt(block, DecryptionContext::None)
            .map_err(|_| KeyError::Failed)?;
        Ok(())
    }

    /// One AES block from the 64-bit register `a` and a 64-bit half block.
    fn block(a: &[u8; 8], r: &[u8]) -> Zeroizing<[u8; 16]> {
        let mut b = Zeroizing::new([0u8; 16]);
        let (hi, lo) = b.split_at_mut(8);
        hi.copy_from_slice(a);
        lo.copy_from_slice(r);
        b
    }

    /// `a = MSB64(b) ^ t` and `r = LSB64(b)`.
    fn split(b: &[u8; 16], t: u64, a: &mut [u8; 8], r: &mut [u8]) {
        let (hi, lo) = b.split_at(8);
        for ((x, h), y) in a.iter_mut().zip(hi).zip(t.to_be_bytes()) {
            *x = h ^ y;
        }
        r.copy_from_slice(lo);
    }

    pub fn wrap(kek: &[u8], key: &[u8], out: &mut [u8]) -> Result<usize, KeyError> {
        let n = key.len() / 8;
        let mut a = IV;
        let mut r = Zeroizing::new(key.to_vec());
        for j in 0..6 {
            for (i, ri) in r.chunks_exact_mut(8).enumerate() {
                let mut b = block(&a, ri);
                enc(kek, &mut b)?;
                split(&b, (n * j + i + 1) as u64, &mut a, ri);
            }
        }
        let (head, tail) = out
            .get_mut(..8 + key.len())
            .ok_or(KeyError::Failed)?
            .split_at_mut(8);
        head.copy_from_slice(&a);
        tail.copy_from_slice(&r);
        Ok(key.len() + 8)
    }

    pub fn unwrap(kek: &[u8], wrapped: &[u8], out: &mut [u8]) -> Result<usize, KeyError> {
        let (first, rest) = wrapped
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("the wrapped key is too short"))?;
        let n = rest.len() / 8;
        let mut a = *first;
        let mut r = Zeroizing::new(rest.to_vec());
        for j in (0..6).rev() {
            for (i, ri) in r.chunks_exact_mut(8).enumerate().rev() {
                let t = (n * j + i + 1) as u64;
                for (x, y) in a.iter_mut().zip(t.to_be_bytes()) {
                    *x ^= y;
                }
                let mut b = block(&a, ri);
                dec(kek, &mut b)?;
                split(&b, 0, &mut a, ri);
            }
        }
        if !crate::crypto::ct_eq(&a, &IV) {
            return Err(KeyError::Failed);
        }
        out.get_mut(..r.len())
            .ok_or(KeyError::Failed)?
            .copy_from_slice(&r);
        Ok(r.len())
    }
}

#[cfg(test)]
mod tests;
