//! `cargo bench --bench crypto`: the keys API's cryptographic operations (sign, verify,
//! encrypt, decrypt, wrapKey, unwrapKey) through the full HTTPS API of a real `kvault dev`
//! process, next to the same operations done directly with aws-lc-rs in this process, on one
//! thread: the limit the API is compared against.
//!
//! It prints figures and asserts nothing about speed. See bench/README.md.

// Test code may panic: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use anyhow::{Context, bail};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap};
use aws_lc_rs::rsa::{self, OaepPrivateDecryptingKey, OaepPublicEncryptingKey};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use common::*;
use kvault::crypto::keys::{Curve, EncryptionAlgorithm, KeyMaterial, SignatureAlgorithm};
use serde_json::{Value, json};
use std::hint::black_box;
use std::process::{Command, ExitCode};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const DEFAULT_SECS: f64 = 2.0;
const DEFAULT_CONNS: [usize; 2] = [1, 16];
/// The message whose SHA-256 digest every sign and verify uses.
const MESSAGE: &[u8] = b"kvault crypto bench";

fn main() -> ExitCode {
    // `cargo bench` passes `--bench` (and any filter after `--`); there is nothing to filter.
    match run_bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crypto bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The operations.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    SignEs256,
    VerifyEs256,
    SignRs256,
    VerifyRs256,
    EncryptOaep,
    DecryptOaep,
    EncryptGcm,
    DecryptGcm,
    WrapKw,
    UnwrapKw,
    WrapOaep,
    UnwrapOaep,
}

const OPS: [Op; 12] = [
    Op::SignEs256,
    Op::VerifyEs256,
    Op::SignRs256,
    Op::VerifyRs256,
    Op::EncryptOaep,
    Op::DecryptOaep,
    Op::EncryptGcm,
    Op::DecryptGcm,
    Op::WrapKw,
    Op::UnwrapKw,
    Op::WrapOaep,
    Op::UnwrapOaep,
];

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::SignEs256 => "sign ES256",
            Op::VerifyEs256 => "verify ES256",
            Op::SignRs256 => "sign RS256",
            Op::VerifyRs256 => "verify RS256",
            Op::EncryptOaep => "encrypt RSA-OAEP-256",
            Op::DecryptOaep => "decrypt RSA-OAEP-256",
            Op::EncryptGcm => "encrypt A256GCM",
            Op::DecryptGcm => "decrypt A256GCM",
            Op::WrapKw => "wrapKey A256KW",
            Op::UnwrapKw => "unwrapKey A256KW",
            Op::WrapOaep => "wrapKey RSA-OAEP-256",
            Op::UnwrapOaep => "unwrapKey RSA-OAEP-256",
        }
    }

    /// What the direct (raw aws-lc-rs) measurement calls.
    fn raw_call(self) -> &'static str {
        match self {
            Op::SignEs256 => "EcdsaKeyPair::sign_digest (P-256, fixed)",
            Op::VerifyEs256 | Op::VerifyRs256 => "ParsedPublicKey::verify_digest_sig",
            Op::SignRs256 => "RsaKeyPair::sign_digest (PKCS#1 SHA-256)",
            Op::EncryptOaep | Op::WrapOaep => "OaepPublicEncryptingKey::encrypt",
            Op::DecryptOaep | Op::UnwrapOaep => "OaepPrivateDecryptingKey::decrypt",
            Op::EncryptGcm => "rand::fill (iv) + LessSafeKey::seal_in_place_separate_tag",
            Op::DecryptGcm => "LessSafeKey::open_in_place",
            Op::WrapKw => "AesKek::wrap",
            Op::UnwrapKw => "AesKek::unwrap",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Direct measurement: the same operations in this process, on one thread.
// ---------------------------------------------------------------------------------------------

/// Key material and inputs for the direct measurements, prepared once. `raw_*` are aws-lc-rs
/// objects parsed once (the limit); `lib_*` are kvault's own `KeyMaterial` in its stored
/// form, which the server parses again for every request.
struct Material {
    digest: Digest,
    digest_bytes: Vec<u8>,
    plaintext: [u8; 32],

    raw_ec: EcdsaKeyPair,
    raw_ec_public: ParsedPublicKey,
    raw_es_sig: Vec<u8>,
    raw_rsa: RsaKeyPair,
    raw_rsa_public: ParsedPublicKey,
    raw_rs_sig: Vec<u8>,
    raw_oaep_public: OaepPublicEncryptingKey,
    raw_oaep_private: OaepPrivateDecryptingKey,
    raw_oaep_ct: Vec<u8>,
    raw_gcm: LessSafeKey,
    raw_gcm_iv: [u8; 12],
    raw_gcm_ct_tag: Vec<u8>,
    raw_kek: Zeroizing<[u8; 32]>,
    raw_kw_wrapped: Vec<u8>,

    lib_ec: Zeroizing<Vec<u8>>,
    lib_rsa: Zeroizing<Vec<u8>>,
    lib_oct: Zeroizing<Vec<u8>>,
    lib_es_sig: Vec<u8>,
    lib_rs_sig: Vec<u8>,
    lib_oaep_ct: Vec<u8>,
    lib_gcm: (Vec<u8>, Vec<u8>, Vec<u8>),
    lib_kw_wrapped: Vec<u8>,
    lib_oaep_wrapped: Vec<u8>,
}

const OAEP: &rsa::OaepAlgorithm = &rsa::OAEP_SHA256_MGF1SHA256;

impl Material {
    fn new() -> anyhow::Result<Self> {
        let digest_bytes = digest::digest(&digest::SHA256, MESSAGE).as_ref().to_vec();
        let digest = Digest::import_less_safe(&digest_bytes, &digest::SHA256)
            .map_err(|_| anyhow::anyhow!("importing the digest"))?;
        let mut plaintext = [0u8; 32];
        aws_lc_rs::rand::fill(&mut plaintext)?;

        // Raw aws-lc-rs objects.
        let raw_ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?;
        let raw_ec_public = ParsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            raw_ec.public_key().as_ref(),
        )?;
        let raw_es_sig = raw_ec.sign_digest(&digest)?.as_ref().to_vec();
        let raw_rsa = RsaKeyPair::generate(rsa::KeySize::Rsa2048)?;
        let raw_rsa_public = ParsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            raw_rsa.public_key().as_ref(),
        )?;
        let mut raw_rs_sig = vec![0u8; raw_rsa.public_modulus_len()];
        raw_rsa.sign_digest(&signature::RSA_PKCS1_SHA256, &digest, &mut raw_rs_sig)?;
        let der: Pkcs8V1Der = raw_rsa.as_der()?;
        let private = rsa::PrivateDecryptingKey::from_pkcs8(der.as_ref())?;
        let raw_oaep_public = OaepPublicEncryptingKey::new(private.public_key())?;
        let raw_oaep_private = OaepPrivateDecryptingKey::new(private)?;
        let mut raw_oaep_ct = vec![0u8; raw_oaep_public.ciphertext_size()];
        let n = raw_oaep_public
            .encrypt(OAEP, &plaintext, &mut raw_oaep_ct, None)?
            .len();
        raw_oaep_ct.truncate(n);
        let mut raw_kek = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(raw_kek.as_mut())?;
        let raw_gcm = LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, raw_kek.as_ref())?);
        let mut raw_gcm_iv = [0u8; 12];
        aws_lc_rs::rand::fill(&mut raw_gcm_iv)?;
        let mut raw_gcm_ct_tag = plaintext.to_vec();
        raw_gcm.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(raw_gcm_iv),
            Aad::empty(),
            &mut raw_gcm_ct_tag,
        )?;
        let mut raw_kw_wrapped = vec![0u8; plaintext.len() + 8];
        AesKek::new(&key_wrap::AES_256, raw_kek.as_ref())?.wrap(&plaintext, &mut raw_kw_wrapped)?;

        // kvault's KeyMaterial, as stored.
        let ec = KeyMaterial::generate_ec(Curve::P256)?;
        let rsa_key = KeyMaterial::generate_rsa(2048, None)?;
        let oct = KeyMaterial::generate_oct(256)?;
        let lib_es_sig = ec.sign(SignatureAlgorithm::ES256, &digest_bytes)?;
        let lib_rs_sig = rsa_key.sign(SignatureAlgorithm::RS256, &digest_bytes)?;
        let lib_oaep_ct = rsa_key
            .encrypt(EncryptionAlgorithm::RsaOaep256, &plaintext, None, None)?
            .value;
        let gcm = oct.encrypt(EncryptionAlgorithm::A256Gcm, &plaintext, None, None)?;
        let lib_gcm = (
            gcm.value,
            gcm.iv.context("A256GCM returned no iv")?,
            gcm.tag.context("A256GCM returned no tag")?,
        );
        let lib_kw_wrapped = oct.wrap(EncryptionAlgorithm::A256Kw, &plaintext)?;
        let lib_oaep_wrapped = rsa_key.wrap(EncryptionAlgorithm::RsaOaep256, &plaintext)?;

        let m = Material {
            digest,
            digest_bytes,
            plaintext,
            raw_ec,
            raw_ec_public,
            raw_es_sig,
            raw_rsa,
            raw_rsa_public,
            raw_rs_sig,
            raw_oaep_public,
            raw_oaep_private,
            raw_oaep_ct,
            raw_gcm,
            raw_gcm_iv,
            raw_gcm_ct_tag,
            raw_kek,
            raw_kw_wrapped,
            lib_ec: ec.to_stored(),
            lib_rsa: rsa_key.to_stored(),
            lib_oct: oct.to_stored(),
            lib_es_sig,
            lib_rs_sig,
            lib_oaep_ct,
            lib_gcm,
            lib_kw_wrapped,
            lib_oaep_wrapped,
        };
        // Every prepared input must be valid, or the loops would measure failures.
        for op in OPS {
            m.raw_once(op)
                .with_context(|| format!("direct {}", op.label()))?;
            m.lib_once(op)
                .with_context(|| format!("kvault lib {}", op.label()))?;
        }
        Ok(m)
    }

    /// One operation with aws-lc-rs objects prepared once.
    fn raw_once(&self, op: Op) -> anyhow::Result<()> {
        match op {
            Op::SignEs256 => {
                black_box(self.raw_ec.sign_digest(&self.digest)?);
            }
            Op::VerifyEs256 => self
                .raw_ec_public
                .verify_digest_sig(&self.digest, &self.raw_es_sig)?,
            Op::SignRs256 => {
                let mut sig = vec![0u8; self.raw_rsa.public_modulus_len()];
                self.raw_rsa
                    .sign_digest(&signature::RSA_PKCS1_SHA256, &self.digest, &mut sig)?;
                black_box(sig);
            }
            Op::VerifyRs256 => self
                .raw_rsa_public
                .verify_digest_sig(&self.digest, &self.raw_rs_sig)?,
            Op::EncryptOaep | Op::WrapOaep => {
                let mut out = vec![0u8; self.raw_oaep_public.ciphertext_size()];
                black_box(
                    self.raw_oaep_public
                        .encrypt(OAEP, &self.plaintext, &mut out, None)?,
                );
            }
            Op::DecryptOaep | Op::UnwrapOaep => {
                let mut out = Zeroizing::new(vec![0u8; self.raw_oaep_private.min_output_size()]);
                let pt = self
                    .raw_oaep_private
                    .decrypt(OAEP, &self.raw_oaep_ct, &mut out, None)?;
                anyhow::ensure!(*pt == self.plaintext, "RSA-OAEP-256 round trip");
            }
            Op::EncryptGcm => {
                // The API draws a fresh iv for every encryption; so does this.
                let mut iv = [0u8; 12];
                aws_lc_rs::rand::fill(&mut iv)?;
                let mut buf = self.plaintext.to_vec();
                let tag = self.raw_gcm.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::empty(),
                    &mut buf,
                )?;
                black_box(&buf);
                black_box(&tag);
            }
            Op::DecryptGcm => {
                let mut buf = Zeroizing::new(self.raw_gcm_ct_tag.clone());
                let pt = self.raw_gcm.open_in_place(
                    Nonce::assume_unique_for_key(self.raw_gcm_iv),
                    Aad::empty(),
                    &mut buf,
                )?;
                anyhow::ensure!(*pt == self.plaintext, "A256GCM round trip");
            }
            Op::WrapKw => {
                let mut out = vec![0u8; self.plaintext.len() + 8];
                black_box(
                    AesKek::new(&key_wrap::AES_256, self.raw_kek.as_ref())?
                        .wrap(&self.plaintext, &mut out)?,
                );
            }
            Op::UnwrapKw => {
                let mut out = Zeroizing::new(vec![0u8; self.raw_kw_wrapped.len()]);
                let pt = AesKek::new(&key_wrap::AES_256, self.raw_kek.as_ref())?
                    .unwrap(&self.raw_kw_wrapped, &mut out)?;
                anyhow::ensure!(*pt == self.plaintext, "A256KW round trip");
            }
        }
        Ok(())
    }

    /// One operation as the server's handler runs it: `KeyMaterial::from_stored` on the
    /// (already unsealed) stored bytes, then the `KeyMaterial` method. Without HTTP, JSON,
    /// base64 and the store.
    fn lib_once(&self, op: Op) -> anyhow::Result<()> {
        use EncryptionAlgorithm as E;
        use SignatureAlgorithm as S;
        let d = &self.digest_bytes;
        let pt = &self.plaintext[..];
        match op {
            Op::SignEs256 => {
                black_box(KeyMaterial::from_stored(&self.lib_ec)?.sign(S::ES256, d)?);
            }
            Op::VerifyEs256 => anyhow::ensure!(
                KeyMaterial::from_stored(&self.lib_ec)?.verify(S::ES256, d, &self.lib_es_sig)?,
                "ES256 verify"
            ),
            Op::SignRs256 => {
                black_box(KeyMaterial::from_stored(&self.lib_rsa)?.sign(S::RS256, d)?);
            }
            Op::VerifyRs256 => anyhow::ensure!(
                KeyMaterial::from_stored(&self.lib_rsa)?.verify(S::RS256, d, &self.lib_rs_sig)?,
                "RS256 verify"
            ),
            Op::EncryptOaep => {
                black_box(KeyMaterial::from_stored(&self.lib_rsa)?.encrypt(
                    E::RsaOaep256,
                    pt,
                    None,
                    None,
                )?);
            }
            Op::DecryptOaep => {
                let out = KeyMaterial::from_stored(&self.lib_rsa)?.decrypt(
                    E::RsaOaep256,
                    &self.lib_oaep_ct,
                    None,
                    None,
                    None,
                )?;
                anyhow::ensure!(out.as_slice() == pt, "RSA-OAEP-256 round trip");
            }
            Op::EncryptGcm => {
                black_box(KeyMaterial::from_stored(&self.lib_oct)?.encrypt(
                    E::A256Gcm,
                    pt,
                    None,
                    None,
                )?);
            }
            Op::DecryptGcm => {
                let (value, iv, tag) = &self.lib_gcm;
                let out = KeyMaterial::from_stored(&self.lib_oct)?.decrypt(
                    E::A256Gcm,
                    value,
                    Some(iv),
                    None,
                    Some(tag),
                )?;
                anyhow::ensure!(out.as_slice() == pt, "A256GCM round trip");
            }
            Op::WrapKw => {
                black_box(KeyMaterial::from_stored(&self.lib_oct)?.wrap(E::A256Kw, pt)?);
            }
            Op::UnwrapKw => {
                let out = KeyMaterial::from_stored(&self.lib_oct)?
                    .unwrap(E::A256Kw, &self.lib_kw_wrapped)?;
                anyhow::ensure!(out.as_slice() == pt, "A256KW round trip");
            }
            Op::WrapOaep => {
                black_box(KeyMaterial::from_stored(&self.lib_rsa)?.wrap(E::RsaOaep256, pt)?);
            }
            Op::UnwrapOaep => {
                let out = KeyMaterial::from_stored(&self.lib_rsa)?
                    .unwrap(E::RsaOaep256, &self.lib_oaep_wrapped)?;
                anyhow::ensure!(out.as_slice() == pt, "RSA-OAEP-256 unwrap round trip");
            }
        }
        Ok(())
    }
}

/// Operations done back to back on one thread for a fixed time.
#[derive(Clone, Copy)]
struct Measured {
    ops: u64,
    elapsed: Duration,
}

impl Measured {
    fn ops_per_sec(self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn us_per_op(self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.ops as f64
    }
}

/// Runs `f` back to back for `secs` on this thread. The clock is read once per batch, sized
/// so a batch takes about 200 µs, so that reading it costs nothing next to fast operations.
fn measure(secs: Duration, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Measured> {
    // Warm-up and calibration.
    let t = Instant::now();
    for _ in 0..3 {
        f()?;
    }
    let one = (t.elapsed() / 3).as_nanos().max(1);
    let batch = (200_000 / one).clamp(1, 4096) as u64;
    let start = Instant::now();
    let deadline = start + secs;
    let mut ops = 0;
    while Instant::now() < deadline {
        for _ in 0..batch {
            f()?;
        }
        ops += batch;
    }
    Ok(Measured {
        ops,
        elapsed: start.elapsed(),
    })
}

struct Direct {
    raw: Measured,
    lib: Measured,
}

// ---------------------------------------------------------------------------------------------
// Setup: the binary, the child process, /proc readings (as in bench/load.rs).
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// The API side: creating the keys, preparing one valid request per operation.
// ---------------------------------------------------------------------------------------------

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// One operation's request, sent unchanged for the whole phase.
struct ApiRequest {
    url: reqwest::Url,
    body: Bytes,
    /// The `value` a correct response carries (verify: `true`; decrypt and unwrap: the
    /// plaintext), checked on every response. None: any 2xx will do.
    expect: Option<Value>,
}

struct Api {
    origin: String,
    auth: reqwest::header::HeaderValue,
    client: reqwest::Client,
}

impl Api {
    fn url(&self, path: &str) -> anyhow::Result<reqwest::Url> {
        let url = format!("{}{path}?api-version={API_VERSION}", self.origin);
        reqwest::Url::parse(&url).with_context(|| format!("parsing {url}"))
    }

    /// A setup request: any failure stops the bench, quoting the status and body.
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .client
            .post(self.url(path)?)
            .header(reqwest::header::AUTHORIZATION, self.auth.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body)?)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("POST {path}: reading the body"))?;
        if !status.is_success() {
            bail!(
                "POST {path} with {body} answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("POST {path}: the answer is not JSON"))
    }

    /// Creates a key and returns the path of its version, `/keys/<name>/<version>`.
    async fn create_key(&self, name: &str, params: Value) -> anyhow::Result<(String, String)> {
        let bundle = self.post(&format!("/keys/{name}/create"), &params).await?;
        let kid = bundle
            .pointer("/key/kid")
            .and_then(Value::as_str)
            .with_context(|| format!("creating {name}: no key.kid in {bundle}"))?
            .to_string();
        let path = kid
            .find("/keys/")
            .map(|i| kid[i..].to_string())
            .filter(|p| p.split('/').filter(|s| !s.is_empty()).count() == 3)
            .with_context(|| format!("creating {name}: kid {kid} is not a versioned key id"))?;
        Ok((kid, path))
    }

    fn request(
        &self,
        path: &str,
        body: &Value,
        expect: Option<Value>,
    ) -> anyhow::Result<ApiRequest> {
        Ok(ApiRequest {
            url: self.url(path)?,
            body: Bytes::from(serde_json::to_vec(body)?),
            expect,
        })
    }
}

fn str_field(v: &Value, name: &str) -> anyhow::Result<String> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("no '{name}' in {v}"))
}

/// Creates the three keys and builds one valid request per operation, from inputs the API
/// itself produced (a signature to verify, ciphertexts to decrypt, wrapped keys to unwrap).
async fn prepare(api: &Api) -> anyhow::Result<(Vec<String>, Vec<(Op, ApiRequest)>)> {
    let (ec_kid, ec) = api
        .create_key("bench-ec", json!({"kty": "EC", "crv": "P-256"}))
        .await?;
    let (rsa_kid, rsa) = api
        .create_key("bench-rsa", json!({"kty": "RSA", "key_size": 2048}))
        .await?;
    let (oct_kid, oct) = api
        .create_key("bench-oct", json!({"kty": "oct", "key_size": 256}))
        .await?;

    let digest = b64(digest::digest(&digest::SHA256, MESSAGE).as_ref());
    let mut plaintext = [0u8; 32];
    aws_lc_rs::rand::fill(&mut plaintext)?;
    let pt = b64(&plaintext);
    let pt_value = Some(Value::String(pt.clone()));

    let mut reqs = Vec::new();
    for (op, key, alg) in [
        (Op::SignEs256, &ec, "ES256"),
        (Op::SignRs256, &rsa, "RS256"),
    ] {
        let sign = json!({"alg": alg, "value": digest});
        let sig = str_field(&api.post(&format!("{key}/sign"), &sign).await?, "value")?;
        reqs.push((op, api.request(&format!("{key}/sign"), &sign, None)?));
        let verify_op = if op == Op::SignEs256 {
            Op::VerifyEs256
        } else {
            Op::VerifyRs256
        };
        let verify = json!({"alg": alg, "digest": digest, "value": sig});
        reqs.push((
            verify_op,
            api.request(&format!("{key}/verify"), &verify, Some(Value::Bool(true)))?,
        ));
    }

    let encrypt = json!({"alg": "RSA-OAEP-256", "value": pt});
    let ct = str_field(
        &api.post(&format!("{rsa}/encrypt"), &encrypt).await?,
        "value",
    )?;
    reqs.push((
        Op::EncryptOaep,
        api.request(&format!("{rsa}/encrypt"), &encrypt, None)?,
    ));
    reqs.push((
        Op::DecryptOaep,
        api.request(
            &format!("{rsa}/decrypt"),
            &json!({"alg": "RSA-OAEP-256", "value": ct}),
            pt_value.clone(),
        )?,
    ));

    let encrypt = json!({"alg": "A256GCM", "value": pt});
    let out = api.post(&format!("{oct}/encrypt"), &encrypt).await?;
    reqs.push((
        Op::EncryptGcm,
        api.request(&format!("{oct}/encrypt"), &encrypt, None)?,
    ));
    let decrypt = json!({
        "alg": "A256GCM",
        "value": str_field(&out, "value")?,
        "iv": str_field(&out, "iv")?,
        "tag": str_field(&out, "tag")?,
    });
    reqs.push((
        Op::DecryptGcm,
        api.request(&format!("{oct}/decrypt"), &decrypt, pt_value.clone())?,
    ));

    for (wrap_op, unwrap_op, key, alg) in [
        (Op::WrapKw, Op::UnwrapKw, &oct, "A256KW"),
        (Op::WrapOaep, Op::UnwrapOaep, &rsa, "RSA-OAEP-256"),
    ] {
        let wrap = json!({"alg": alg, "value": pt});
        let wrapped = str_field(&api.post(&format!("{key}/wrapkey"), &wrap).await?, "value")?;
        reqs.push((
            wrap_op,
            api.request(&format!("{key}/wrapkey"), &wrap, None)?,
        ));
        reqs.push((
            unwrap_op,
            api.request(
                &format!("{key}/unwrapkey"),
                &json!({"alg": alg, "value": wrapped}),
                pt_value.clone(),
            )?,
        ));
    }
    reqs.sort_by_key(|(op, _)| OPS.iter().position(|o| o == op));
    Ok((vec![ec_kid, rsa_kid, oct_kid], reqs))
}

/// Sends one request and reads the whole response. `Ok(true)` for a 2xx with the expected
/// value, `Ok(false)` for another status or value (the first one is recorded in
/// `first_error`), `Err` when no response came.
async fn send_one(
    client: &reqwest::Client,
    auth: &reqwest::header::HeaderValue,
    req: &ApiRequest,
    first_error: &OnceLock<String>,
) -> Result<bool, ()> {
    let sent = client
        .post(req.url.clone())
        .header(reqwest::header::AUTHORIZATION, auth.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(req.body.clone())
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let _ = first_error.set(format!("transport: {}", e.without_url()));
            return Err(());
        }
    };
    let status = resp.status();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            let _ = first_error.set(format!("reading the body: {}", e.without_url()));
            return Err(());
        }
    };
    let text = || {
        String::from_utf8_lossy(&body)
            .chars()
            .take(300)
            .collect::<String>()
    };
    if !status.is_success() {
        let _ = first_error.set(format!("HTTP {status}: {}", text()));
        return Ok(false);
    }
    if let Some(expect) = &req.expect {
        let got = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|mut v| v.get_mut("value").map(Value::take));
        if got.as_ref() != Some(expect) {
            let _ = first_error.set(format!(
                "HTTP {status} but not the expected value {expect}: {}",
                text()
            ));
            return Ok(false);
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// The load generator (the same shape as bench/load.rs).
// ---------------------------------------------------------------------------------------------

struct Ctx {
    ca: Vec<reqwest::Certificate>,
    port: u16,
    pid: u32,
    auth: reqwest::header::HeaderValue,
    secs: Duration,
    clk_tck: u64,
}

struct PhaseResult {
    op: Op,
    conns: usize,
    /// Successful operations.
    completed: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
    first_error: Option<String>,
}

impl PhaseResult {
    fn ops_per_sec(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
    fn server_us_per_op(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.server_cpu.as_secs_f64() * 1e6 / self.completed as f64)
    }
    fn client_us_per_op(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.client_cpu.as_secs_f64() * 1e6 / self.completed as f64)
    }
    /// API ops/s per server core used (ops/s ÷ (server CPU s ÷ wall s)), divided by the
    /// direct single-core ops/s. Equal to direct µs/op ÷ server µs/op.
    fn per_core_ratio(&self, direct: Measured) -> Option<f64> {
        let cores_used = self.server_cpu.as_secs_f64() / self.elapsed.as_secs_f64();
        (self.completed > 0 && cores_used > 0.0)
            .then(|| self.ops_per_sec() / cores_used / direct.ops_per_sec())
    }
}

async fn run_phase(
    ctx: &Arc<Ctx>,
    op: Op,
    req: &Arc<ApiRequest>,
    conns: usize,
) -> anyhow::Result<PhaseResult> {
    let warm_url = format!("{}/_kvault/health", origin(ctx.port));
    let clients = (0..conns)
        .map(|_| Ok((http_client(&ctx.ca, ctx.port)?, warm_url.clone())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let phase = LoadPhase {
        label: format!("{} at {conns} connections", op.label()),
        clients,
        server_pids: vec![ctx.pid],
        secs: ctx.secs,
        clk_tck: ctx.clk_tck,
        // Only a correct answer is a completed operation.
        refused_complete: false,
    };
    let (ctx2, req) = (ctx.clone(), req.clone());
    let load = run_load(phase, move |_, client, first_error| {
        let (ctx, req) = (ctx2.clone(), req.clone());
        async move { send_one(&client, &ctx.auth, &req, &first_error).await }
    })
    .await?;
    Ok(PhaseResult {
        op,
        conns,
        completed: load.completed,
        errors: load.errors,
        elapsed: load.elapsed,
        p50: load.p50,
        p99: load.p99,
        server_cpu: load.server_cpu,
        client_cpu: load.client_cpu,
        first_error: load.first_error,
    })
}

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

fn run_bench() -> anyhow::Result<()> {
    kvault::install_crypto_provider();
    let bin = kvault_bin()?;
    let secs = env_secs(DEFAULT_SECS)?;
    let conns = env_conns(&DEFAULT_CONNS)?;
    let clk_tck = clock_ticks_per_sec();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    println!("kvault crypto bench");
    println!("  binary         {}", bin.display());
    if bin.components().any(|c| c.as_os_str() == "debug") {
        println!("  WARNING        this looks like a debug build; figures will be meaningless");
    }
    println!("  cores          {cores}");
    // Other work on the machine (a build, say) shares the cores and skews every figure.
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        let l: Vec<&str> = l.split_whitespace().take(3).collect();
        println!("  load average   {} (before the run)", l.join(" "));
    }
    println!("  phase length   {:.1} s (BENCH_SECS)", secs.as_secs_f64());
    println!(
        "  clock ticks    {clk_tck}/s (CPU resolution {} ms per reading)",
        1000 / clk_tck
    );
    println!(
        "  connections    {}",
        conns
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The limit first, while nothing else runs: each operation with aws-lc-rs on this
    // thread, then as kvault's KeyMaterial.
    let material = Material::new().context("preparing the direct measurements")?;
    let mut direct = Vec::new();
    for op in OPS {
        eprintln!(
            "direct {:<24} 1 thread for 2 x {:.1} s ...",
            op.label(),
            secs.as_secs_f64()
        );
        let raw = measure(secs, || material.raw_once(op))?;
        let lib = measure(secs, || material.lib_once(op))?;
        direct.push((op, Direct { raw, lib }));
    }
    drop(material);

    // Declared before the vault so it is removed last, after the vault is stopped.
    let tmp = tempfile::Builder::new()
        .prefix("kvault-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let state = tmp.path().join("state");
    let port = free_port()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("dev")
        .arg("--state-dir")
        .arg(&state)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--url")
        .arg(origin(port))
        .env_remove("KVAULT_STATE_DIR")
        .env("RUST_LOG", "warn");
    let mut vault = ChildGuard::spawn("vault", cmd, tmp.path().join("vault.log"))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let results = rt.block_on(async {
        let DevVault { ca, auth } = dev_ready(&mut vault, &state, port).await?;
        let setup = http_client(&ca, port)?;

        let api = Api {
            origin: origin(port),
            auth: auth.clone(),
            client: setup,
        };
        let (kids, reqs) = prepare(&api)
            .await
            .context("preparing the keys and inputs")?;
        for kid in &kids {
            println!("  key            {kid}");
        }
        // Each prepared request must succeed once before it is measured.
        for (op, req) in &reqs {
            let first_error = OnceLock::new();
            if send_one(&api.client, &api.auth, req, &first_error).await != Ok(true) {
                bail!(
                    "{} failed before the measurement: POST {} {} -> {}",
                    op.label(),
                    req.url.path(),
                    String::from_utf8_lossy(&req.body),
                    first_error.get().map_or("?", String::as_str)
                );
            }
        }
        println!();

        let ctx = Arc::new(Ctx {
            ca,
            port,
            pid: vault.pid(),
            auth,
            secs,
            clk_tck,
        });
        let mut results = Vec::new();
        for (op, req) in reqs {
            let req = Arc::new(req);
            for &n in &conns {
                eprintln!(
                    "API    {:<24} {n:>4} conns for {:.1} s ...",
                    op.label(),
                    secs.as_secs_f64()
                );
                vault.check_alive()?;
                results.push(run_phase(&ctx, op, &req, n).await?);
            }
        }
        anyhow::Ok(results)
    })?;
    drop(rt);
    drop(vault);
    drop(tmp);
    print_report(&results, &direct, secs);
    Ok(())
}

fn print_report(results: &[PhaseResult], direct: &[(Op, Direct)], secs: Duration) {
    let direct_of = |op: Op| direct.iter().find(|(o, _)| *o == op).map(|(_, d)| d);
    println!(
        "{:<24} {:>5} {:>8} {:>7} {:>7} {:>6} {:>9} {:>10} {:>12} {:>10}",
        "operation",
        "conns",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "srv µs/op",
        "clnt µs/op",
        "direct µs/op",
        "core ratio"
    );
    let mut last_op = None;
    for r in results {
        if last_op.is_some() && last_op != Some(r.op) {
            println!();
        }
        last_op = Some(r.op);
        let d = direct_of(r.op);
        println!(
            "{:<24} {:>5} {:>8.0} {:>7.3} {:>7.3} {:>6} {:>9} {:>10} {:>12} {:>10}",
            r.op.label(),
            r.conns,
            r.ops_per_sec(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors,
            fmt_opt(r.server_us_per_op(), 1),
            fmt_opt(r.client_us_per_op(), 1),
            fmt_opt(d.map(|d| d.raw.us_per_op()), 2),
            fmt_opt(d.and_then(|d| r.per_core_ratio(d.raw)), 3),
        );
    }
    let errors: Vec<&PhaseResult> = results.iter().filter(|r| r.first_error.is_some()).collect();
    if !errors.is_empty() {
        println!();
        for r in errors {
            println!(
                "first error in {} at {} conns: {}",
                r.op.label(),
                r.conns,
                r.first_error.as_deref().unwrap_or_default()
            );
        }
    }
    println!();
    println!(
        "srv µs/op    = vault process CPU (user+sys, all threads) during the phase / successful ops"
    );
    println!(
        "direct µs/op = the same operation with aws-lc-rs in this process, 1 thread, keys parsed once"
    );
    println!(
        "core ratio   = (API ops/s / server cores used) / direct ops/s = direct µs/op / srv µs/op"
    );

    println!();
    println!(
        "direct, 1 thread, {:.1} s each          ops/s    µs/op   lib µs/op  aws-lc-rs call",
        secs.as_secs_f64()
    );
    for (op, d) in direct {
        println!(
            "  {:<34} {:>9.0} {:>8.2} {:>11.2}  {}",
            op.label(),
            d.raw.ops_per_sec(),
            d.raw.us_per_op(),
            d.lib.us_per_op(),
            op.raw_call()
        );
    }
    println!(
        "lib µs/op = KeyMaterial::from_stored + the KeyMaterial operation, as the server's handler \
         runs it per request (no HTTP, JSON, base64 or store)"
    );

    println!();
    println!("design targets (DESIGN.md §12), reported here, not checked:");
    let find = |op: Op| results.iter().filter(move |r| r.op == op);
    let es: Vec<String> = find(Op::SignEs256)
        .map(|r| {
            format!(
                "{} µs at {} conns",
                fmt_opt(r.server_us_per_op(), 1),
                r.conns
            )
        })
        .collect();
    println!(
        "  ECDSA P-256 sign through the API: target ≤ 40 µs server CPU per request; measured srv µs/op {}",
        es.join(", ")
    );
    let rs: Vec<String> = find(Op::SignRs256)
        .map(|r| {
            let ratio = direct_of(r.op).and_then(|d| r.per_core_ratio(d.raw));
            format!(
                "{} at {} conns",
                ratio.map_or_else(|| "n/a".to_string(), |v| format!("{:.0}%", v * 100.0)),
                r.conns
            )
        })
        .collect();
    println!(
        "  RSA-2048 sign through the API: target ≥ 85% of raw aws-lc throughput per core; measured core ratio {}",
        rs.join(", ")
    );
    let total_errors: u64 = results.iter().map(|r| r.errors).sum();
    if total_errors > 0 {
        println!();
        println!("WARNING: {total_errors} API requests failed; see the first errors above");
    }
}
