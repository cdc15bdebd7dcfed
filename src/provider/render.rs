//! Pure rendering of fetched vault objects into file contents, with the semantics users of
//! the Azure provider know:
//!
//! * `cert` → the leaf certificate as PEM `CERTIFICATE`;
//! * `key` → the public key as PEM `PUBLIC KEY` (SubjectPublicKeyInfo; RSA and EC);
//! * `secret` of a certificate → the private key (PKCS#8 PEM) followed by the chain, leaf
//!   first; or with `objectFormat: pfx` the PFX as stored (base64; add
//!   `objectEncoding: base64` for the binary file);
//! * any other `secret` → its value, optionally hex- or base64-decoded.
//!
//! Contents are returned in zeroizing buffers; errors name the object, never its content.

use super::params::{ObjectEncoding, ObjectFormat, ObjectSpec};
use crate::wire::{JsonWebKey, from_b64url};
use base64::Engine;
use zeroize::Zeroizing;

pub const CONTENT_TYPE_PKCS12: &str = "application/x-pkcs12";
pub const CONTENT_TYPE_PEM: &str = "application/x-pem-file";

/// What the vault returned for one object version.
pub enum Material {
    Secret {
        value: Zeroizing<String>,
        content_type: Option<String>,
        /// The secret belongs to a certificate (its bundle carries `kid`).
        certificate_backed: bool,
    },
    /// The public members of the key.
    Key(Box<JsonWebKey>),
    /// The certificate's DER (`cer`).
    Cert(Vec<u8>),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Material::Secret { content_type, .. } => f
                .debug_struct("Secret")
                .field("content_type", content_type)
                .finish_non_exhaustive(),
            Material::Key(jwk) => f.debug_tuple("Key").field(&jwk.kty).finish(),
            Material::Cert(der) => f.debug_tuple("Cert").field(&der.len()).finish(),
        }
    }
}

/// Renders one object version into its file content.
pub fn render(spec: &ObjectSpec, material: &Material) -> Result<Zeroizing<Vec<u8>>, String> {
    let what = spec.describe();
    match material {
        Material::Cert(der) => Ok(pem("CERTIFICATE", der)),
        Material::Key(jwk) => {
            let spki = public_key_der(jwk).map_err(|m| format!("{what}: {m}"))?;
            Ok(pem("PUBLIC KEY", &spki))
        }
        Material::Secret {
            value,
            content_type,
            certificate_backed,
        } => {
            let ct = content_type.as_deref().unwrap_or("").trim();
            if *certificate_backed {
                render_certificate_secret(spec, value, ct)
            } else if spec.format == ObjectFormat::Pfx {
                Err(format!(
                    "{what}: objectFormat pfx applies to the secret of a certificate, and this secret belongs to none; drop objectFormat (and use objectEncoding: base64 for a base64 value)"
                ))
            } else {
                decode(spec, value.as_bytes())
            }
        }
    }
}

fn render_certificate_secret(
    spec: &ObjectSpec,
    value: &str,
    content_type: &str,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let what = spec.describe();
    let is_pem = content_type.eq_ignore_ascii_case(CONTENT_TYPE_PEM);
    match spec.format {
        ObjectFormat::Pfx if is_pem => Err(format!(
            "{what}: the certificate is stored as PEM ({CONTENT_TYPE_PEM}); objectFormat pfx needs a certificate whose policy's secret contentType is {CONTENT_TYPE_PKCS12}, or drop objectFormat"
        )),
        // The PFX as stored (base64 text); objectEncoding base64 gives the binary file.
        ObjectFormat::Pfx => decode(spec, value.as_bytes()),
        ObjectFormat::Pem => {
            if spec.encoding != ObjectEncoding::Utf8 {
                return Err(format!(
                    "{what}: objectEncoding applies to plain secrets and to objectFormat pfx; a certificate's PEM is written as is"
                ));
            }
            if is_pem {
                Ok(Zeroizing::new(value.as_bytes().to_vec()))
            } else {
                pfx_to_pem(value).map_err(|m| format!("{what}: {m}"))
            }
        }
    }
}

/// Applies `objectEncoding` to a secret value.
fn decode(spec: &ObjectSpec, value: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let what = spec.describe();
    match spec.encoding {
        ObjectEncoding::Utf8 => Ok(Zeroizing::new(value.to_vec())),
        ObjectEncoding::Hex => hex_decode(value)
            .ok_or_else(|| format!("{what} is not hexadecimal (objectEncoding: hex)")),
        ObjectEncoding::Base64 => base64_decode(value)
            .ok_or_else(|| format!("{what} is not base64 (objectEncoding: base64)")),
    }
}

fn hex_decode(s: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let s = s.trim_ascii();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for pair in s.chunks(2) {
        let [hi, lo] = pair else { return None };
        out.push(nibble(*hi)? << 4 | nibble(*lo)?);
    }
    Some(out)
}

/// Standard or URL-safe alphabet, padded or not, whitespace (line breaks) ignored.
fn base64_decode(s: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        s.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    let trimmed = compact
        .strip_suffix(b"==")
        .or_else(|| compact.strip_suffix(b"="))
        .unwrap_or(&compact);
    STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .ok()
        .map(Zeroizing::new)
}

fn pem(label: &str, der: &[u8]) -> Zeroizing<Vec<u8>> {
    let s = crate::crypto::pem::encode(label, der);
    Zeroizing::new(s.as_bytes().to_vec())
}

/// A base64 PFX (no password, or an empty one, as the vault issues them) to the private
/// key as PKCS#8 PEM followed by the chain, leaf first.
pub fn pfx_to_pem(value: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
    let der = base64_decode(value.as_bytes())
        .ok_or("the certificate's secret is not base64 PKCS#12 (PFX)")?;
    let store = KeyStore::from_pkcs12(&der, "", Pkcs12ImportPolicy::Relaxed)
        .map_err(|_| "the certificate's secret is not a PKCS#12 (PFX) file kvault can open without a password")?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("the certificate's PFX holds no private key")?;
    let mut out = Zeroizing::new(Vec::new());
    out.extend_from_slice(pem("PRIVATE KEY", chain.key().as_der()).as_slice());
    for cert in chain.certs() {
        out.extend_from_slice(pem("CERTIFICATE", cert.as_der()).as_slice());
    }
    Ok(out)
}

// --- SubjectPublicKeyInfo from a JWK -----------------------------------------------------

const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_SECP256K1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(bytes.iter().skip(skip));
    }
    out.extend_from_slice(content);
    out
}

/// A positive INTEGER from big-endian magnitude bytes.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let m = magnitude.get(skip..).unwrap_or_default();
    let mut content = Vec::with_capacity(m.len() + 1);
    if m.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(m);
    der(0x02, &content)
}

fn spki(algorithm: &[u8], public_key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(public_key);
    let mut body = der(0x30, algorithm);
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

fn member(v: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let s = v
        .as_deref()
        .ok_or_else(|| format!("the key has no '{name}'"))?;
    from_b64url(s).ok_or_else(|| format!("the key's '{name}' is not base64url"))
}

/// The DER SubjectPublicKeyInfo of an RSA or EC JWK.
pub fn public_key_der(jwk: &JsonWebKey) -> Result<Vec<u8>, String> {
    let kty = jwk.kty.as_deref().unwrap_or("");
    match kty {
        "RSA" | "RSA-HSM" => {
            let n = member(&jwk.n, "n")?;
            let e = member(&jwk.e, "e")?;
            let mut seq = der_uint(&n);
            seq.extend(der_uint(&e));
            let mut alg = OID_RSA_ENCRYPTION.to_vec();
            alg.extend_from_slice(&[0x05, 0x00]);
            Ok(spki(&alg, &der(0x30, &seq)))
        }
        "EC" | "EC-HSM" => {
            let crv = jwk.crv.as_deref().unwrap_or("");
            let (oid, len) = match crv {
                "P-256" => (OID_P256, 32),
                "P-384" => (OID_P384, 48),
                "P-521" => (OID_P521, 66),
                "P-256K" | "SECP256K1" => (OID_SECP256K1, 32),
                other => return Err(format!("the key's curve '{other}' is not supported")),
            };
            let mut point = vec![0x04];
            for (coord, name) in [(&jwk.x, "x"), (&jwk.y, "y")] {
                let c = member(coord, name)?;
                let c = c
                    .get(c.iter().take_while(|b| **b == 0).count()..)
                    .unwrap_or_default();
                if c.len() > len {
                    return Err(format!("the key's '{name}' is too long for {crv}"));
                }
                point.extend(std::iter::repeat_n(0u8, len - c.len()));
                point.extend_from_slice(c);
            }
            let mut alg = OID_EC_PUBLIC_KEY.to_vec();
            alg.extend_from_slice(oid);
            Ok(spki(&alg, &point))
        }
        "oct" | "oct-HSM" => Err(
            "it is a symmetric (oct) key, which has no public part to mount; only RSA and EC keys can be mounted".into(),
        ),
        other => Err(format!("the key type '{other}' is not supported")),
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A test certificate for every renderer's tests.
    use base64::Engine;

    /// A CA and a leaf signed by it: the leaf's key (PKCS#8 PEM), the leaf and CA PEMs, and the
    /// vault's two ways of storing the certificate's secret (PEM bundle, base64 PFX).
    pub struct CertFixture {
        pub key_pem: String,
        pub leaf_pem: String,
        pub ca_pem: String,
        pub pem_bundle: String,
        pub pfx_b64: String,
    }

    pub fn cert_fixture() -> CertFixture {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "ca");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["leaf.test".into()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "leaf");
        let leaf = p.signed_by(&key, &issuer).unwrap();
        let chain = PrivateKeyChain::new(
            b"id".to_vec(),
            PrivateKey::from_der(&key.serialize_der()).unwrap(),
            [
                Certificate::from_der(leaf.der()).unwrap(),
                Certificate::from_der(ca_cert.der()).unwrap(),
            ],
        );
        let mut ks = KeyStore::new();
        ks.add_entry("leaf", KeyStoreEntry::PrivateKeyChain(chain));
        let pfx = ks.writer("").write().unwrap();
        let key_pem = key.serialize_pem();
        let (leaf_pem, ca_pem) = (leaf.pem(), ca_cert.pem());
        CertFixture {
            pem_bundle: format!("{key_pem}{leaf_pem}{ca_pem}"),
            pfx_b64: base64::engine::general_purpose::STANDARD.encode(pfx),
            key_pem,
            leaf_pem,
            ca_pem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::params::{ObjectType, parse_objects};
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair;

    fn spec(yaml: &str) -> ObjectSpec {
        parse_objects(yaml, 0o644).unwrap().objects.remove(0)
    }

    fn secret(value: &str, ct: Option<&str>, cert: bool) -> Material {
        Material::Secret {
            value: Zeroizing::new(value.into()),
            content_type: ct.map(str::to_string),
            certificate_backed: cert,
        }
    }

    #[test]
    fn secret_encodings() {
        let s = |enc: &str| {
            spec(&format!(
                "- objectName: s\n  objectType: secret\n  objectEncoding: {enc}"
            ))
        };
        let out = |enc: &str, v: &str| render(&s(enc), &secret(v, None, false));
        assert_eq!(
            out("utf-8", "héllo\n").unwrap().as_slice(),
            "héllo\n".as_bytes()
        );
        assert_eq!(
            out("hex", "00ff10Ab").unwrap().as_slice(),
            &[0, 0xff, 0x10, 0xab]
        );
        assert_eq!(
            out("base64", "AP8QqQ==").unwrap().as_slice(),
            &[0, 0xff, 0x10, 0xa9]
        );
        assert_eq!(
            out("base64", "AP8QqQ").unwrap().as_slice(),
            &[0, 0xff, 0x10, 0xa9]
        );
        assert_eq!(out("base64", "_-8").unwrap().as_slice(), &[0xff, 0xef]);
        assert_eq!(
            out("base64", "AP8Q\nqQ==\n").unwrap().as_slice(),
            &[0, 0xff, 0x10, 0xa9]
        );
        let e = out("hex", "0g-secretvalue").unwrap_err();
        assert!(
            e.contains("not hexadecimal") && !e.contains("secretvalue"),
            "{e}"
        );
        assert!(out("hex", "abc").is_err());
        let e = out("base64", "%%%secretvalue").unwrap_err();
        assert!(
            e.contains("not base64") && !e.contains("secretvalue"),
            "{e}"
        );
    }

    #[test]
    fn pfx_format_needs_a_certificate_secret() {
        let s = spec("- objectName: s\n  objectType: secret\n  objectFormat: pfx");
        let e = render(&s, &secret("AAAA", Some(CONTENT_TYPE_PKCS12), false)).unwrap_err();
        assert!(e.contains("belongs to none"), "{e}");
        let e = render(&s, &secret("-----BEGIN", Some(CONTENT_TYPE_PEM), true)).unwrap_err();
        assert!(e.contains("stored as PEM"), "{e}");
        // As stored, or decoded to the binary file.
        assert_eq!(
            render(&s, &secret("AAEC", Some(CONTENT_TYPE_PKCS12), true))
                .unwrap()
                .as_slice(),
            b"AAEC"
        );
        let s = spec(
            "- objectName: s\n  objectType: secret\n  objectFormat: pfx\n  objectEncoding: base64",
        );
        assert_eq!(
            render(&s, &secret("AAEC", Some(CONTENT_TYPE_PKCS12), true))
                .unwrap()
                .as_slice(),
            &[0, 1, 2]
        );
    }

    fn pfx_fixture() -> (String, String, String) {
        let f = super::fixture::cert_fixture();
        (f.pfx_b64, f.leaf_pem, f.ca_pem)
    }

    #[test]
    fn certificate_secret_becomes_key_and_chain_pem() {
        let (pfx, leaf, ca) = pfx_fixture();
        let s = spec("- objectName: tls\n  objectType: secret");
        let out = render(&s, &secret(&pfx, Some(CONTENT_TYPE_PKCS12), true)).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
        let certs: Vec<_> = text.match_indices("-----BEGIN CERTIFICATE-----").collect();
        assert_eq!(certs.len(), 2);
        let norm = |s: &str| s.replace(['\r', '\n'], "");
        let body = norm(text);
        let (l, c) = (norm(&leaf), norm(&ca));
        let (li, ci) = (body.find(&l).unwrap(), body.find(&c).unwrap());
        assert!(li < ci, "leaf first");
        // PEM-stored certificates are returned as stored.
        let pem_value = format!(
            "{}{}",
            "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n", leaf
        );
        assert_eq!(
            render(&s, &secret(&pem_value, Some(CONTENT_TYPE_PEM), true))
                .unwrap()
                .as_slice(),
            pem_value.as_bytes()
        );
        let e = render(&s, &secret("bm90IGEgcGZ4", Some(CONTENT_TYPE_PKCS12), true)).unwrap_err();
        assert!(e.contains("PKCS#12"), "{e}");
        let s = spec("- objectName: tls\n  objectType: secret\n  objectEncoding: hex");
        assert!(render(&s, &secret(&pfx, Some(CONTENT_TYPE_PKCS12), true)).is_err());
    }

    #[test]
    fn certificates_are_pem() {
        let s = spec("- objectName: tls\n  objectType: cert");
        assert_eq!(s.kind, ObjectType::Cert);
        let out = render(&s, &Material::Cert(vec![1, 2, 3])).unwrap();
        assert_eq!(
            out.as_slice(),
            b"-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n"
        );
    }

    #[test]
    fn rsa_public_key_matches_aws_lc() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let jwk = JsonWebKey {
            kty: Some("RSA".into()),
            n: Some(crate::wire::b64url(&c.n)),
            e: Some(crate::wire::b64url(&c.e)),
            ..Default::default()
        };
        let expected: PublicKeyX509Der = pair.public_key().as_der().unwrap();
        assert_eq!(public_key_der(&jwk).unwrap(), expected.as_ref());
        let s = spec("- objectName: k\n  objectType: key");
        let out = render(&s, &Material::Key(Box::new(jwk))).unwrap();
        assert!(out.starts_with(b"-----BEGIN PUBLIC KEY-----\n"));
    }

    #[test]
    fn ec_public_keys_match_aws_lc() {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P256K1_SHA256_FIXED_SIGNING,
            ECDSA_P384_SHA384_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair,
        };
        for (alg, crv, len) in [
            (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
            (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
            (&ECDSA_P521_SHA512_FIXED_SIGNING, "P-521", 66),
            (&ECDSA_P256K1_SHA256_FIXED_SIGNING, "P-256K", 32),
        ] {
            let pair = EcdsaKeyPair::generate(alg).unwrap();
            let point = pair.public_key().as_ref();
            let jwk = JsonWebKey {
                kty: Some("EC".into()),
                crv: Some(crv.into()),
                x: Some(crate::wire::b64url(&point[1..1 + len])),
                y: Some(crate::wire::b64url(&point[1 + len..])),
                ..Default::default()
            };
            let expected: PublicKeyX509Der = pair.public_key().as_der().unwrap();
            assert_eq!(public_key_der(&jwk).unwrap(), expected.as_ref(), "{crv}");
        }
    }

    #[test]
    fn symmetric_and_broken_keys_fail_clearly() {
        let s = spec("- objectName: k\n  objectType: key");
        let oct = JsonWebKey {
            kty: Some("oct".into()),
            ..Default::default()
        };
        let e = render(&s, &Material::Key(Box::new(oct))).unwrap_err();
        assert!(e.contains("key 'k'") && e.contains("symmetric"), "{e}");
        let rsa = JsonWebKey {
            kty: Some("RSA".into()),
            n: Some("AQAB".into()),
            ..Default::default()
        };
        assert!(
            render(&s, &Material::Key(Box::new(rsa)))
                .unwrap_err()
                .contains("'e'")
        );
        let ec = JsonWebKey {
            kty: Some("EC".into()),
            crv: Some("P-999".into()),
            ..Default::default()
        };
        assert!(
            render(&s, &Material::Key(Box::new(ec)))
                .unwrap_err()
                .contains("P-999")
        );
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der_uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0x00, 0x01]), vec![0x02, 0x01, 0x01]);
    }
}
