//! Certificates: issuing (rcgen), certificate signing requests, parsing (x509-parser),
//! PKCS#12 (p12-keystore) and PEM bundles in both directions.

use super::keys::{Curve, KeyMaterial, KeyType};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use std::net::IpAddr;
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct X509Error(pub String);

fn err(s: impl Into<String>) -> X509Error {
    X509Error(s.into())
}

/// What to put into a certificate (from a certificate policy).
#[derive(Debug, Clone, Default)]
pub struct CertRequest {
    pub subject: String,
    pub dns_names: Vec<String>,
    pub emails: Vec<String>,
    pub upns: Vec<String>,
    pub uris: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// The API's names: digitalSignature, keyEncipherment …
    pub key_usage: Vec<String>,
    /// OIDs, e.g. 1.3.6.1.5.5.7.3.1.
    pub ekus: Vec<String>,
    pub validity_months: u32,
    pub ca: bool,
    /// Unix seconds: the certificate is valid from shortly before this.
    pub now: i64,
}

/// Who signs.
pub enum Signer<'a> {
    SelfSigned,
    /// A CA certificate (DER) and its key.
    Ca {
        cert_der: &'a [u8],
        key: &'a KeyMaterial,
    },
}

fn sign_alg(key: &KeyMaterial) -> Result<&'static SignatureAlgorithm, X509Error> {
    Ok(match (key.kty(), key.curve()) {
        (KeyType::Rsa, _) => &rcgen::PKCS_RSA_SHA256,
        (KeyType::Ec, Some(Curve::P256)) => &rcgen::PKCS_ECDSA_P256_SHA256,
        (KeyType::Ec, Some(Curve::P384)) => &rcgen::PKCS_ECDSA_P384_SHA384,
        (KeyType::Ec, Some(Curve::P521)) => &rcgen::PKCS_ECDSA_P521_SHA512,
        (KeyType::Ec, _) => {
            return Err(err(
                "certificates need an RSA key or an EC key on P-256, P-384 or P-521",
            ));
        }
        (KeyType::Oct, _) => return Err(err("certificates need an RSA or EC key")),
    })
}

fn rc_key(key: &KeyMaterial) -> Result<KeyPair, X509Error> {
    let pkcs8 = key
        .pkcs8()
        .ok_or_else(|| err("certificates need an RSA or EC key"))?;
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), sign_alg(key)?)
        .map_err(|e| err(format!("the key cannot sign certificates: {e}")))
}

/// `CN=a, O=b, OU=c, C=US, L=x, ST=y` (RFC 4514, with `\,`-style escapes) into a
/// distinguished name, parsed by `x509-cert`'s `Name`. Kept from the cloud's and .NET's
/// habits: spaces after a comma, keywords in any case, `S` for `ST`, `E`/`EMAIL` for
/// `emailAddress`. The attributes keep the string's order; a multi-valued RDN (`+`) is
/// written as one RDN per attribute (rcgen has no multi-valued RDNs).
pub fn parse_subject(s: &str) -> Result<DistinguishedName, X509Error> {
    use std::str::FromStr;
    let name = x509_cert::name::Name::from_str(&rfc4514_keywords(s)).map_err(|e| {
        err(format!(
            "the subject '{s}' is not a distinguished name: {e}"
        ))
    })?;
    let mut dn = DistinguishedName::new();
    // RFC 4514 strings list the RDNs last to first; `Name` holds them first to last.
    let rdns: Vec<_> = name.as_ref().iter().collect();
    for rdn in rdns.into_iter().rev() {
        for atv in rdn.as_ref().iter() {
            let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
            let value = std::str::from_utf8(atv.value.value())
                .map_err(|_| err(format!("the subject '{s}' has a value that is not text")))?;
            dn.push(DnType::from_oid(&arcs), value);
        }
    }
    if dn.iter().next().is_none() {
        return Err(err("the subject is empty"));
    }
    Ok(dn)
}

/// The RFC 4514 string `x509-cert` reads, from the forms people write: the spaces around
/// an (unescaped) `,` or `+` dropped, the RFC 4514 keywords upper-cased, and the aliases `S`
/// and `E`/`EMAIL`/`EMAILADDRESS`. Values (escapes included) pass through unchanged.
fn rfc4514_keywords(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut segment = String::new();
    let mut escaped = false;
    let flush = |segment: &mut String, out: &mut String| {
        let seg = segment.trim_start();
        // A trailing space stays when it is escaped (`\ `).
        let seg = if seg.ends_with("\\ ") {
            seg
        } else {
            seg.trim_end()
        };
        match seg.split_once('=') {
            Some((k, v)) => {
                let k = k.trim();
                let upper = k.to_ascii_uppercase();
                out.push_str(match upper.as_str() {
                    "S" => "ST",
                    "E" | "EMAIL" | "EMAILADDRESS" => "1.2.840.113549.1.9.1",
                    "CN" | "O" | "OU" | "C" | "L" | "ST" | "DC" | "STREET" | "UID" => &upper,
                    // Other names (serialNumber, title …) as RFC 4514 spells them.
                    _ => k,
                });
                out.push('=');
                out.push_str(v.trim_start());
            }
            None => out.push_str(seg),
        }
        segment.clear();
    };
    for c in s.chars() {
        if escaped {
            escaped = false;
            segment.push(c);
        } else if c == '\\' {
            escaped = true;
            segment.push(c);
        } else if c == ',' || c == '+' {
            flush(&mut segment, &mut out);
            out.push(c);
        } else {
            segment.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

/// `t` plus `months` calendar months (jiff: the day is clamped to the month's last, so
/// 31 January plus one month is the last day of February).
fn add_months(t: time::OffsetDateTime, months: u32) -> Result<time::OffsetDateTime, X509Error> {
    use k8s_openapi::jiff::{Timestamp, ToSpan, tz::TimeZone};
    let out_of_range = || err("validity out of range");
    let start = Timestamp::new(t.unix_timestamp(), 0).map_err(|_| out_of_range())?;
    let end = start
        .to_zoned(TimeZone::UTC)
        .checked_add(i64::from(months).months())
        .map_err(|_| out_of_range())?;
    time::OffsetDateTime::from_unix_timestamp(end.timestamp().as_second())
        .map_err(|_| out_of_range())
}

fn params(req: &CertRequest) -> Result<CertificateParams, X509Error> {
    let mut p = CertificateParams::default();
    // A policy may name only SANs (the cloud allows it): an empty subject is an empty name.
    p.distinguished_name = match req.subject.trim() {
        "" => DistinguishedName::new(),
        subject => parse_subject(subject)?,
    };
    let ia5 = |s: &String| {
        s.clone()
            .try_into()
            .map_err(|_| err(format!("'{s}' is not valid in a certificate (ASCII only)")))
    };
    for d in &req.dns_names {
        p.subject_alt_names.push(SanType::DnsName(ia5(d)?));
    }
    for e in &req.emails {
        p.subject_alt_names.push(SanType::Rfc822Name(ia5(e)?));
    }
    for u in &req.uris {
        p.subject_alt_names.push(SanType::URI(ia5(u)?));
    }
    for ip in &req.ip_addresses {
        p.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    for upn in &req.upns {
        p.subject_alt_names.push(SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            rcgen::OtherNameValue::Utf8String(upn.clone()),
        )));
    }
    for ku in &req.key_usage {
        p.key_usages.push(match ku.as_str() {
            "digitalSignature" => KeyUsagePurpose::DigitalSignature,
            "nonRepudiation" => KeyUsagePurpose::ContentCommitment,
            "keyEncipherment" => KeyUsagePurpose::KeyEncipherment,
            "dataEncipherment" => KeyUsagePurpose::DataEncipherment,
            "keyAgreement" => KeyUsagePurpose::KeyAgreement,
            "keyCertSign" => KeyUsagePurpose::KeyCertSign,
            "cRLSign" => KeyUsagePurpose::CrlSign,
            "encipherOnly" => KeyUsagePurpose::EncipherOnly,
            "decipherOnly" => KeyUsagePurpose::DecipherOnly,
            other => return Err(err(format!("unknown key usage '{other}'"))),
        });
    }
    for oid in &req.ekus {
        let arcs: Vec<u64> = oid
            .split('.')
            .map(|a| a.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| err(format!("'{oid}' is not an extended key usage OID")))?;
        if arcs.len() < 2 {
            return Err(err(format!("'{oid}' is not an extended key usage OID")));
        }
        p.extended_key_usages.push(match oid.as_str() {
            "1.3.6.1.5.5.7.3.1" => ExtendedKeyUsagePurpose::ServerAuth,
            "1.3.6.1.5.5.7.3.2" => ExtendedKeyUsagePurpose::ClientAuth,
            "1.3.6.1.5.5.7.3.3" => ExtendedKeyUsagePurpose::CodeSigning,
            "1.3.6.1.5.5.7.3.4" => ExtendedKeyUsagePurpose::EmailProtection,
            "1.3.6.1.5.5.7.3.8" => ExtendedKeyUsagePurpose::TimeStamping,
            "1.3.6.1.5.5.7.3.9" => ExtendedKeyUsagePurpose::OcspSigning,
            _ => ExtendedKeyUsagePurpose::Other(arcs),
        });
    }
    p.is_ca = if req.ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    let now = time::OffsetDateTime::from_unix_timestamp(req.now).map_err(|_| err("bad time"))?;
    // A little slack for clocks that run behind.
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = add_months(now, req.validity_months.max(1))?;
    let serial = super::random::<16>().map_err(|_| err("random generation failed"))?;
    let mut serial = serial.to_vec();
    // A positive INTEGER: the top bit clear.
    if let Some(first) = serial.first_mut() {
        *first &= 0x7f;
    }
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// Issues a certificate for `subject_key`.
pub fn issue(
    req: &CertRequest,
    subject_key: &KeyMaterial,
    signer: Signer<'_>,
) -> Result<Vec<u8>, X509Error> {
    let p = params(req)?;
    let subject = rc_key(subject_key)?;
    let cert = match signer {
        Signer::SelfSigned => p
            .self_signed(&subject)
            .map_err(|e| err(format!("issuing the certificate failed: {e}")))?,
        Signer::Ca { cert_der, key } => {
            let ca_key = rc_key(key)?;
            let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der), ca_key)
                .map_err(|e| err(format!("the issuer's CA certificate is unusable: {e}")))?;
            p.signed_by(&subject, &issuer)
                .map_err(|e| err(format!("issuing the certificate failed: {e}")))?
        }
    };
    Ok(cert.der().to_vec())
}

/// A PKCS#10 certificate signing request for `key` (DER).
pub fn csr(req: &CertRequest, key: &KeyMaterial) -> Result<Vec<u8>, X509Error> {
    let mut p = params(req)?;
    // A CSR carries neither a serial number nor an issuer's key identifier.
    p.serial_number = None;
    p.use_authority_key_identifier_extension = false;
    let k = rc_key(key)?;
    let csr = p
        .serialize_request(&k)
        .map_err(|e| err(format!("building the CSR failed: {e}")))?;
    Ok(csr.der().to_vec())
}

/// What the API reports about a certificate.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    pub nbf: i64,
    pub exp: i64,
    pub subject: String,
    pub spki: Vec<u8>,
    pub is_ca: bool,
}

pub fn parse(der: &[u8]) -> Result<ParsedCert, X509Error> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| err("the certificate is not valid DER X.509"))?;
    if !rest.is_empty() {
        return Err(err("trailing data after the certificate"));
    }
    Ok(ParsedCert {
        nbf: cert.validity().not_before.timestamp(),
        exp: cert.validity().not_after.timestamp(),
        subject: cert.subject().to_string(),
        spki: cert.public_key().raw.to_vec(),
        is_ca: cert.is_ca(),
    })
}

/// SHA-1 thumbprint (the API's `x5t`).
pub fn thumbprint(der: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .to_vec()
}

/// Whether the certificate certifies this key.
pub fn key_matches(cert_der: &[u8], key: &KeyMaterial) -> Result<bool, X509Error> {
    let parsed = parse(cert_der)?;
    Ok(key.spki_der().is_some_and(|spki| spki == parsed.spki))
}

/// A PKCS#12 file with the key (if any) and the chain, leaf first, under an empty password.
pub fn pfx(key: Option<&KeyMaterial>, chain: &[Vec<u8>]) -> Result<Vec<u8>, X509Error> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let certs = chain
        .iter()
        .map(|c| Certificate::from_der(c).map_err(|e| err(format!("certificate for PKCS#12: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut store = KeyStore::new();
    match key.and_then(|k| k.pkcs8()) {
        Some(pkcs8) => {
            let pk =
                PrivateKey::from_der(pkcs8).map_err(|e| err(format!("key for PKCS#12: {e}")))?;
            // PKCS#12 readers link the key to the first certificate of its chain, so the key's
            // own certificate leads even when the caller's order put it elsewhere.
            let mut certs = certs;
            if let Some(pos) = chain
                .iter()
                .position(|c| key.is_some_and(|k| key_matches(c, k).unwrap_or(false)))
                && pos > 0
            {
                let leaf = certs.remove(pos);
                certs.insert(0, leaf);
            }
            let id = certs
                .first()
                .map(|c| thumbprint(c.as_der()))
                .unwrap_or_default();
            store.add_entry(
                "1",
                KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(id, pk, certs)),
            );
        }
        None => {
            for (i, c) in certs.into_iter().enumerate() {
                store.add_entry(&i.to_string(), KeyStoreEntry::Certificate(c));
            }
        }
    }
    store
        .writer("")
        .write()
        .map_err(|e| err(format!("writing PKCS#12 failed: {e}")))
}

/// PEM: the private key (PKCS#8), then the chain, leaf first.
pub fn pem_bundle(key: Option<&KeyMaterial>, chain: &[Vec<u8>]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    if let Some(pkcs8) = key.and_then(|k| k.pkcs8()) {
        out.push_str(&super::pem::encode("PRIVATE KEY", pkcs8));
    }
    for c in chain {
        out.push_str(&super::pem::encode("CERTIFICATE", c));
    }
    out
}

/// A key and its chain from an import.
pub struct Imported {
    pub key: KeyMaterial,
    /// Leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The same certificates in the order the file holds them (kept when a caller asks the
    /// vault to preserve the order).
    pub as_given: Vec<Vec<u8>>,
}

/// The certificates of one `x5c` entry of a merge. The cloud takes standard base64 of DER,
/// and also base64 of PEM text or of the base64 body of a PEM block (what the SDKs' own
/// merge tests send); a PEM block given as the entry itself is taken too.
pub fn x5c_entry(entry: &str) -> Result<Vec<Vec<u8>>, X509Error> {
    const BAD: &str = "an x5c entry must be base64 of a DER certificate (or of PEM text)";
    let pem_certs = |text: &[u8]| -> Result<Vec<Vec<u8>>, X509Error> {
        let mut certs = Vec::new();
        for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(text) {
            let (kind, der) = item.map_err(|_| err("the PEM data in an x5c entry is malformed"))?;
            if kind == SectionKind::Certificate {
                parse(&der)?;
                certs.push(der);
            }
        }
        if certs.is_empty() {
            return Err(err("an x5c entry's PEM text has no certificate"));
        }
        Ok(certs)
    };
    if entry.contains("-----BEGIN") {
        return pem_certs(entry.as_bytes());
    }
    let bytes = base64_lenient(entry).ok_or_else(|| err(BAD))?;
    if bytes.first() == Some(&0x30) {
        parse(&bytes)?;
        return Ok(vec![bytes]);
    }
    // Text inside: PEM, or the base64 body of a PEM block.
    let text = std::str::from_utf8(&bytes).map_err(|_| err(BAD))?;
    if text.contains("-----BEGIN") {
        return pem_certs(text.as_bytes());
    }
    let der = base64_lenient(text).ok_or_else(|| err(BAD))?;
    parse(&der)?;
    Ok(vec![der])
}

/// Standard base64 with or without padding and line breaks, or base64url: how clients
/// encode certificates in practice.
fn base64_lenient(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if clean.is_empty() {
        return None;
    }
    let unpadded = clean.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
        .ok()
}

/// Orders a chain leaf first: the certificate whose key is `key` leads, then each issuer.
fn order_chain(key: &KeyMaterial, mut certs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, X509Error> {
    let pos = certs
        .iter()
        .position(|c| key_matches(c, key).unwrap_or(false))
        .ok_or_else(|| err("no certificate in the file matches the private key"))?;
    let leaf = certs.remove(pos);
    let mut out = vec![leaf];
    out.extend(certs);
    Ok(out)
}

pub fn import_pfx(data: &[u8], password: &str) -> Result<Imported, X509Error> {
    use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
    let store = KeyStore::from_pkcs12(data, password, Pkcs12ImportPolicy::Relaxed)
        .map_err(|_| err("the PFX could not be opened (corrupt, or the password is wrong)"))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| err("the PFX has no private key"))?;
    let key = KeyMaterial::from_pkcs8(chain.key().as_der()).map_err(|e| err(e.to_string()))?;
    let mut certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    if certs.is_empty() {
        // Some writers keep certificates as separate entries.
        for (_, entry) in store.entries() {
            if let p12_keystore::KeyStoreEntry::Certificate(c) = entry {
                certs.push(c.as_der().to_vec());
            }
        }
    }
    for c in &certs {
        parse(c)?;
    }
    let as_given = certs.clone();
    let chain = order_chain(&key, certs)?;
    Ok(Imported {
        key,
        chain,
        as_given,
    })
}

pub fn import_pem(text: &[u8]) -> Result<Imported, X509Error> {
    let mut key = None;
    let mut certs = Vec::new();
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(text) {
        let (kind, der) = item.map_err(|_| err("the PEM data is malformed"))?;
        match kind {
            SectionKind::Certificate => {
                parse(&der)?;
                certs.push(der);
            }
            SectionKind::PrivateKey => {
                key = Some(KeyMaterial::from_pkcs8(&der).map_err(|e| err(e.to_string()))?);
            }
            SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                key =
                    Some(KeyMaterial::from_traditional_der(&der).map_err(|e| err(e.to_string()))?);
            }
            _ => {}
        }
    }
    let key = key.ok_or_else(|| err("the PEM data has no private key"))?;
    if certs.is_empty() {
        return Err(err("the PEM data has no certificate"));
    }
    let as_given = certs.clone();
    let chain = order_chain(&key, certs)?;
    Ok(Imported {
        key,
        chain,
        as_given,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(subject: &str) -> CertRequest {
        CertRequest {
            subject: subject.into(),
            dns_names: vec!["www.example.test".into()],
            emails: vec!["ops@example.test".into()],
            upns: vec!["alice@example.test".into()],
            uris: vec![],
            ip_addresses: vec!["10.0.0.1".parse().unwrap()],
            key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
            ekus: vec!["1.3.6.1.5.5.7.3.1".into()],
            validity_months: 12,
            ca: false,
            now: 1_800_000_000,
        }
    }

    #[test]
    fn x5c_entries_in_every_encoding_the_cloud_takes() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let der = issue(&req("CN=x5c"), &key, Signer::SelfSigned).unwrap();
        let pem = crate::crypto::pem::encode("CERTIFICATE", &der).to_string();
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n");
        for entry in [
            b64.encode(&der),
            b64.encode(pem.as_bytes()),
            b64.encode(body.as_bytes()),
            pem.clone(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der),
        ] {
            assert_eq!(x5c_entry(&entry).unwrap(), vec![der.clone()], "{entry}");
        }
        let two = format!("{pem}{pem}");
        assert_eq!(x5c_entry(&b64.encode(two.as_bytes())).unwrap().len(), 2);
        for junk in [
            "",
            "!!!",
            &b64.encode(b"hello"),
            &b64.encode([0x30, 0x03, 1, 2, 3]),
        ] {
            assert!(x5c_entry(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn self_signed_certificates_parse_and_match_their_keys() {
        for key in [
            KeyMaterial::generate_rsa(2048, None).unwrap(),
            KeyMaterial::generate_ec(Curve::P256).unwrap(),
            KeyMaterial::generate_ec(Curve::P384).unwrap(),
        ] {
            let der = issue(&req("CN=web, O=kvault"), &key, Signer::SelfSigned).unwrap();
            let p = parse(&der).unwrap();
            assert!(p.subject.contains("CN=web"), "{}", p.subject);
            assert!(p.exp - p.nbf > 360 * 86_400 && p.exp - p.nbf < 370 * 86_400);
            assert!(key_matches(&der, &key).unwrap());
            let other = KeyMaterial::generate_ec(Curve::P256).unwrap();
            assert!(!key_matches(&der, &other).unwrap());
            assert_eq!(thumbprint(&der).len(), 20);
        }
        let k1 = KeyMaterial::generate_ec(Curve::P256K).unwrap();
        assert!(issue(&req("CN=x"), &k1, Signer::SelfSigned).is_err());
    }

    #[test]
    fn pfx_and_pem_round_trip() {
        let ca_key = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let mut ca_req = req("CN=Test CA");
        ca_req.ca = true;
        ca_req.key_usage = vec!["keyCertSign".into(), "cRLSign".into()];
        let ca = issue(&ca_req, &ca_key, Signer::SelfSigned).unwrap();
        let leaf_key = KeyMaterial::generate_rsa(2048, None).unwrap();
        let leaf = issue(
            &req("CN=leaf"),
            &leaf_key,
            Signer::Ca {
                cert_der: &ca,
                key: &ca_key,
            },
        )
        .unwrap();
        let chain = vec![leaf.clone(), ca.clone()];

        let p12 = pfx(Some(&leaf_key), &chain).unwrap();
        let back = import_pfx(&p12, "").unwrap();
        assert_eq!(back.chain[0], leaf);
        assert!(key_matches(&back.chain[0], &back.key).unwrap());

        // The chain may come in any order; the leaf is the one that matches the key.
        let pem = pem_bundle(Some(&leaf_key), &[ca.clone(), leaf.clone()]);
        let back = import_pem(pem.as_bytes()).unwrap();
        assert_eq!(back.chain[0], leaf);

        assert!(import_pfx(b"garbage", "").is_err());
        assert!(import_pfx(&p12, "wrong").is_err());
        assert!(
            import_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
        // A key with someone else's certificate.
        let other = KeyMaterial::generate_rsa(2048, None).unwrap();
        assert!(import_pem(pem_bundle(Some(&other), &[leaf]).as_bytes()).is_err());
    }

    #[test]
    fn csr_and_subjects() {
        let key = KeyMaterial::generate_ec(Curve::P256).unwrap();
        let der = csr(&req("CN=pending, OU=team, C=US"), &key).unwrap();
        assert!(!der.is_empty());
        assert!(parse_subject("CN").is_err());
        assert!(parse_subject("XX=1").is_err());
        assert!(parse_subject("").is_err());
        let t = time::OffsetDateTime::from_unix_timestamp(1_706_659_200).unwrap(); // 2024-01-31
        let feb = add_months(t, 1).unwrap();
        assert_eq!((feb.month(), feb.day()), (time::Month::February, 29));
        let next = add_months(t, 13).unwrap();
        assert_eq!(
            (next.year(), next.month(), next.day()),
            (2025, time::Month::February, 28)
        );
        assert_eq!(add_months(t, 12).unwrap().unix_timestamp(), 1_738_281_600);
    }

    /// The subject as a certificate made from it shows it (RFC 4514, openssl's order).
    fn issued_subject(subject: &str) -> String {
        let dn = parse_subject(subject).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        x.subject().to_string()
    }

    #[test]
    fn subjects_are_rfc_4514_names_with_escapes() {
        let dn = parse_subject(r"CN=Doe\, John,O=Acme").unwrap();
        let entries: Vec<_> = dn.iter().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            dn.get(&DnType::CommonName),
            Some(&rcgen::DnValue::Utf8String("Doe, John".into()))
        );
        assert_eq!(
            dn.get(&DnType::OrganizationName),
            Some(&rcgen::DnValue::Utf8String("Acme".into()))
        );
        // (x509-parser prints the names unescaped, in the certificate's order.)
        assert_eq!(
            issued_subject(r"CN=Doe\, John,O=Acme"),
            "CN=Doe, John, O=Acme"
        );
        // The forms people (and the cloud's docs) write keep working.
        assert_eq!(
            issued_subject("cn=web.example.test, O=Example , s=Bavaria, E=a@example.test"),
            issued_subject("CN=web.example.test,O=Example,ST=Bavaria,emailAddress=a@example.test")
        );
        assert!(issued_subject("CN=a, OU=team, C=US").starts_with("CN=a"));
        let dn = parse_subject(r"CN=a\+b+OU=x, DC=example, DC=test").unwrap();
        assert_eq!(
            dn.get(&DnType::CommonName),
            Some(&rcgen::DnValue::Utf8String("a+b".into()))
        );
        assert!(parse_subject("CN=a,,O=b").is_err());
        let dn = parse_subject("CN=a, serialNumber=42").unwrap();
        assert_eq!(dn.iter().count(), 2);
    }
}
