//! The keys API over real TLS: lifecycle, every algorithm, rotation, and cross-checks
//! against independent implementations (the `openssl` command and published test vectors).

use crate::common::*;
use kvault::client::VaultClient;
use kvault::clock::ManualClock;
use kvault::wire::{
    JsonWebKey, KeyAttributes, KeyCreateParameters, KeyImportParameters, KeyOperationsParameters,
    KeyRotationPolicy, KeySignParameters, KeyUpdateParameters, KeyVerifyParameters, b64url,
    from_b64url,
};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn create(kty: &str) -> KeyCreateParameters {
    KeyCreateParameters {
        kty: kty.into(),
        ..Default::default()
    }
}

fn sha(bits: u32, data: &[u8]) -> Vec<u8> {
    let alg = match bits {
        256 => &aws_lc_rs::digest::SHA256,
        384 => &aws_lc_rs::digest::SHA384,
        _ => &aws_lc_rs::digest::SHA512,
    };
    aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// --- a minimal DER writer, to hand public keys to openssl ---

fn der_len(n: usize) -> Vec<u8> {
    if n < 128 {
        vec![n as u8]
    } else {
        let b: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|x| *x == 0)
            .collect();
        let mut out = vec![0x80 | b.len() as u8];
        out.extend(b);
        out
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(body.len()));
    out.extend_from_slice(body);
    out
}

fn der_int(b: &[u8]) -> Vec<u8> {
    let b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
    let mut v = Vec::new();
    if b.first().is_none_or(|x| x & 0x80 != 0) {
        v.push(0);
    }
    v.extend(b);
    der(0x02, &v)
}

fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let alg = unhex("300d06092a864886f70d0101010500");
    let mut key = der_int(n);
    key.extend(der_int(e));
    let mut bits = vec![0u8];
    bits.extend(der(0x30, &key));
    let mut body = alg;
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

fn ec_spki(curve: &str, x: &[u8], y: &[u8]) -> Vec<u8> {
    let curve_oid = match curve {
        "P-256" => "06082a8648ce3d030107",
        "P-384" => "06052b81040022",
        "P-521" => "06052b81040023",
        _ => panic!("{curve}"),
    };
    let mut alg = unhex("06072a8648ce3d0201");
    alg.extend(unhex(curve_oid));
    let mut bits = vec![0u8, 4];
    bits.extend_from_slice(x);
    bits.extend_from_slice(y);
    let mut body = der(0x30, &alg);
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

fn write_pem(path: &Path, der_bytes: &[u8]) {
    std::fs::write(
        path,
        kvault::crypto::pem::encode("PUBLIC KEY", der_bytes).as_bytes(),
    )
    .unwrap();
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl")
}

fn jwk_bytes(v: &Option<String>) -> Vec<u8> {
    from_b64url(v.as_deref().unwrap()).unwrap()
}

async fn sign(c: &VaultClient, name: &str, alg: &str, digest: &[u8]) -> Vec<u8> {
    let r = c
        .sign(
            name,
            None,
            &KeySignParameters {
                alg: alg.into(),
                value: b64url(digest),
            },
        )
        .await
        .unwrap();
    from_b64url(&r.value).unwrap()
}

async fn op(
    c: &VaultClient,
    name: &str,
    op: &str,
    alg: &str,
    value: &[u8],
    extra: Value,
) -> Result<Value, kvault::client::ClientError> {
    let p = KeyOperationsParameters {
        alg: alg.into(),
        value: b64url(value),
        iv: extra["iv"].as_str().map(Into::into),
        aad: extra["aad"].as_str().map(Into::into),
        tag: extra["tag"].as_str().map(Into::into),
    };
    c.key_operation(name, None, op, &p)
        .await
        .map(|r| serde_json::to_value(r).unwrap())
}

#[tokio::test]
async fn rsa_signatures_and_ciphertexts_cross_check_with_openssl() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let dir = fx.dir.path();
    let mut p = create("RSA");
    p.key_size = Some(2048);
    let b = c.create_key("rsa", &p).await.unwrap();
    assert!(b.key.d.is_none() && b.key.p.is_none(), "no private members");
    assert_eq!(b.key.key_ops.as_ref().unwrap().len(), 6);
    let pem = dir.join("rsa.pem");
    write_pem(&pem, &rsa_spki(&jwk_bytes(&b.key.n), &jwk_bytes(&b.key.e)));
    let msg = dir.join("msg");
    std::fs::write(&msg, b"the message").unwrap();

    for (alg, bits, pss) in [
        ("RS256", 256, false),
        ("RS384", 384, false),
        ("RS512", 512, false),
        ("PS256", 256, true),
        ("PS384", 384, true),
        ("PS512", 512, true),
    ] {
        let digest = sha(bits, b"the message");
        let sig = sign(&c, "rsa", alg, &digest).await;
        let sig_path = dir.join(format!("{alg}.sig"));
        std::fs::write(&sig_path, &sig).unwrap();
        let mut args = vec![
            "dgst".to_string(),
            format!("-sha{bits}"),
            "-verify".into(),
            pem.to_str().unwrap().into(),
            "-signature".into(),
            sig_path.to_str().unwrap().into(),
        ];
        if pss {
            args.extend([
                "-sigopt".into(),
                "rsa_padding_mode:pss".into(),
                "-sigopt".into(),
                "rsa_pss_saltlen:digest".into(),
            ]);
        }
        args.push(msg.to_str().unwrap().into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = openssl(&args);
        assert!(
            out.status.success(),
            "{alg}: openssl says {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // kvault's verify agrees, and refuses a flipped bit.
        let mut bad = sig.clone();
        bad[7] ^= 1;
        for (s, expected) in [(&sig, true), (&bad, false)] {
            let ok = c
                .verify(
                    "rsa",
                    None,
                    &KeyVerifyParameters {
                        alg: alg.into(),
                        digest: b64url(&digest),
                        value: b64url(s),
                    },
                )
                .await
                .unwrap();
            assert_eq!(ok, expected, "{alg}");
        }
    }

    // Ciphertexts made by openssl with the public key decrypt in kvault.
    for (alg, opts) in [
        (
            "RSA-OAEP",
            vec!["rsa_padding_mode:oaep", "rsa_oaep_md:sha1"],
        ),
        (
            "RSA-OAEP-256",
            vec![
                "rsa_padding_mode:oaep",
                "rsa_oaep_md:sha256",
                "rsa_mgf1_md:sha256",
            ],
        ),
        ("RSA1_5", vec!["rsa_padding_mode:pkcs1"]),
    ] {
        let plain = dir.join("plain");
        std::fs::write(&plain, b"32 bytes of symmetric key stuff!").unwrap();
        let ct = dir.join(format!("{alg}.ct"));
        let mut args = vec![
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            pem.to_str().unwrap(),
            "-in",
            plain.to_str().unwrap(),
            "-out",
            ct.to_str().unwrap(),
        ];
        for o in &opts {
            args.extend(["-pkeyopt", o]);
        }
        let out = openssl(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ct_bytes = std::fs::read(&ct).unwrap();
        for which in ["decrypt", "unwrapkey"] {
            let r = op(&c, "rsa", which, alg, &ct_bytes, json!({}))
                .await
                .unwrap();
            assert_eq!(
                from_b64url(r["value"].as_str().unwrap()).unwrap(),
                b"32 bytes of symmetric key stuff!",
                "{alg} {which}"
            );
        }
        // And kvault's own ciphertexts round-trip.
        let r = op(&c, "rsa", "encrypt", alg, b"hello", json!({}))
            .await
            .unwrap();
        let ct = from_b64url(r["value"].as_str().unwrap()).unwrap();
        let back = op(&c, "rsa", "decrypt", alg, &ct, json!({})).await.unwrap();
        assert_eq!(
            from_b64url(back["value"].as_str().unwrap()).unwrap(),
            b"hello"
        );
        // A truncated ciphertext is a 400, never a 500.
        let e = op(&c, "rsa", "decrypt", alg, &ct[..100], json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400), "{alg}");
    }
    v.stop().await;
}

/// r‖s to a DER ECDSA-Sig-Value.
fn ecdsa_der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let mut body = der_int(r);
    body.extend(der_int(s));
    der(0x30, &body)
}

#[tokio::test]
async fn ec_signatures_verify_with_openssl_on_every_nist_curve() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let dir = fx.dir.path();
    let msg = dir.join("msg");
    std::fs::write(&msg, b"ec message").unwrap();
    for (curve, alg, bits) in [
        ("P-256", "ES256", 256),
        ("P-384", "ES384", 384),
        ("P-521", "ES512", 512),
    ] {
        let mut p = create("EC");
        p.crv = Some(curve.into());
        let name = format!("ec{bits}");
        let b = c.create_key(&name, &p).await.unwrap();
        assert_eq!(b.key.crv.as_deref(), Some(curve));
        assert!(b.key.d.is_none());
        let pem = dir.join(format!("{name}.pem"));
        write_pem(
            &pem,
            &ec_spki(curve, &jwk_bytes(&b.key.x), &jwk_bytes(&b.key.y)),
        );
        let sig = sign(&c, &name, alg, &sha(bits, b"ec message")).await;
        let sig_path = dir.join(format!("{name}.sig"));
        std::fs::write(&sig_path, ecdsa_der(&sig)).unwrap();
        let out = openssl(&[
            "dgst",
            &format!("-sha{bits}"),
            "-verify",
            pem.to_str().unwrap(),
            "-signature",
            sig_path.to_str().unwrap(),
            msg.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{alg}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // The wrong algorithm for the curve, or a digest of the wrong size: 400.
        let other = if alg == "ES256" { "ES384" } else { "ES256" };
        let e = c
            .sign(
                &name,
                None,
                &KeySignParameters {
                    alg: other.into(),
                    value: b64url(&sha(256, b"x")),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400));
        let e = c
            .sign(
                &name,
                None,
                &KeySignParameters {
                    alg: alg.into(),
                    value: b64url(&[1u8; 20]),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400));
        // EC keys do not encrypt.
        let e = op(&c, &name, "encrypt", "RSA-OAEP", b"x", json!({}))
            .await
            .unwrap_err();
        assert_eq!(
            e.status(),
            Some(403),
            "key_ops of an EC key are sign/verify"
        );
    }
    // secp256k1 signs and verifies through the API.
    let mut p = create("EC");
    p.crv = Some("P-256K".into());
    c.create_key("k1", &p).await.unwrap();
    let d = sha(256, b"bitcoin");
    let sig = sign(&c, "k1", "ES256K", &d).await;
    assert!(
        c.verify(
            "k1",
            None,
            &KeyVerifyParameters {
                alg: "ES256K".into(),
                digest: b64url(&d),
                value: b64url(&sig)
            }
        )
        .await
        .unwrap()
    );
    v.stop().await;
}

#[tokio::test]
async fn symmetric_keys_match_published_vectors_and_openssl() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let import = |name: &'static str, k: Vec<u8>| {
        let c = c.clone();
        async move {
            c.import_key(
                name,
                &KeyImportParameters {
                    key: JsonWebKey {
                        kty: Some("oct".into()),
                        k: Some(b64url(&k)),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        }
    };
    // AES-GCM, NIST GCM test case 4 (AES-128, 60-byte plaintext, 20-byte AAD).
    let b = import("gcm", unhex("feffe9928665731c6d6a8f9467308308")).await;
    assert!(b.key.k.is_none(), "the symmetric key is never returned");
    let ct = unhex(
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
    );
    let tag = unhex("5bc94fbc3221a5db94fae95ae7121a47");
    let r = op(
        &c,
        "gcm",
        "decrypt",
        "A128GCM",
        &ct,
        json!({
            "iv": b64url(&unhex("cafebabefacedbaddecaf888")),
            "aad": b64url(&unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")),
            "tag": b64url(&tag),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        from_b64url(r["value"].as_str().unwrap()).unwrap(),
        unhex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        )
    );
    // A wrong tag or AAD is a 400 and reveals nothing.
    let e = op(
        &c,
        "gcm",
        "decrypt",
        "A128GCM",
        &ct,
        json!({
            "iv": b64url(&unhex("cafebabefacedbaddecaf888")),
            "tag": b64url(&tag),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), Some(400));
    // Encrypt returns iv and tag; decrypt round-trips.
    let r = op(
        &c,
        "gcm",
        "encrypt",
        "A128GCM",
        b"attack at dawn",
        json!({"aad": b64url(b"hdr")}),
    )
    .await
    .unwrap();
    let back = op(
        &c,
        "gcm",
        "decrypt",
        "A128GCM",
        &from_b64url(r["value"].as_str().unwrap()).unwrap(),
        json!({
            "iv": r["iv"], "tag": r["tag"], "aad": b64url(b"hdr")
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        from_b64url(back["value"].as_str().unwrap()).unwrap(),
        b"attack at dawn"
    );

    // AES-256-CBC with PKCS#7 padding against `openssl enc`.
    let key = unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
    import("cbc", key.clone()).await;
    let iv = unhex("000102030405060708090a0b0c0d0e0f");
    let r = op(
        &c,
        "cbc",
        "encrypt",
        "A256CBCPAD",
        b"not a multiple of sixteen",
        json!({"iv": b64url(&iv)}),
    )
    .await
    .unwrap();
    let ours = from_b64url(r["value"].as_str().unwrap()).unwrap();
    let plain = fx.dir.path().join("cbc.txt");
    std::fs::write(&plain, b"not a multiple of sixteen").unwrap();
    let out = openssl(&[
        "enc",
        "-aes-256-cbc",
        "-K",
        "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        "-iv",
        "000102030405060708090a0b0c0d0e0f",
        "-in",
        plain.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(
        ours, out.stdout,
        "kvault's A256CBCPAD equals openssl's aes-256-cbc"
    );
    // Unpadded CBC needs whole blocks.
    let e = op(&c, "cbc", "encrypt", "A256CBC", b"short", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));

    // AES key wrap, RFC 3394 §4.6 (256-bit KEK, 256-bit key).
    import(
        "kw",
        unhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"),
    )
    .await;
    let r = op(
        &c,
        "kw",
        "wrapkey",
        "A256KW",
        &unhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        from_b64url(r["value"].as_str().unwrap()).unwrap(),
        unhex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
    );
    // The wrong algorithm for the key: 400.
    let e = op(&c, "kw", "wrapkey", "A128KW", &[0u8; 16], json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    let e = op(&c, "kw", "sign", "RS256", &[0u8; 32], json!({})).await;
    assert!(e.is_err());
    v.stop().await;
}

#[tokio::test]
async fn lifecycle_import_update_key_ops_and_bad_input() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let mut p = create("EC");
    p.crv = Some("P-256".into());
    p.tags = Some([("team".to_string(), "a".to_string())].into());
    let b1 = c.create_key("life", &p).await.unwrap();
    let b2 = c.create_key("life", &p).await.unwrap();
    assert_ne!(b1.key.kid, b2.key.kid);
    assert_eq!(c.list_key_versions("life").await.unwrap().len(), 2);
    assert_eq!(c.get_key("LIFE", None).await.unwrap().key.kid, b2.key.kid);
    let v1 = b1
        .key
        .kid
        .as_ref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(c.get_key("life", Some(&v1)).await.unwrap().key.x, b1.key.x);

    // key_ops are enforced: without "sign", signing is 403.
    c.update_key(
        "life",
        None,
        &KeyUpdateParameters {
            key_ops: Some(vec!["verify".into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = c
        .sign(
            "life",
            None,
            &KeySignParameters {
                alg: "ES256".into(),
                value: b64url(&sha(256, b"x")),
            },
        )
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(403), Some("Forbidden")));
    // Disabled: 403. Expired: sign refused, verify allowed.
    c.update_key(
        "life",
        Some(&v1),
        &KeyUpdateParameters {
            attributes: Some(KeyAttributes {
                enabled: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = c
        .sign(
            "life",
            Some(&v1),
            &KeySignParameters {
                alg: "ES256".into(),
                value: b64url(&sha(256, b"x")),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    let mut p3 = p.clone();
    p3.attributes = Some(KeyAttributes {
        exp: Some(now() - 10),
        ..Default::default()
    });
    c.create_key("expired", &p3).await.unwrap();
    let e = c
        .sign(
            "expired",
            None,
            &KeySignParameters {
                alg: "ES256".into(),
                value: b64url(&sha(256, b"x")),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert!(
        !c.verify(
            "expired",
            None,
            &KeyVerifyParameters {
                alg: "ES256".into(),
                digest: b64url(&sha(256, b"x")),
                value: b64url(&[0u8; 64])
            }
        )
        .await
        .unwrap()
    );

    // Malformed imports and creations are 400s.
    let http = v.http();
    let bad_jwks = [
        json!({"key": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
        json!({"key": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}}),
        json!({"key": {"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA", "d": "AA"}}),
        json!({"key": {"kty": "oct", "k": "AAAA"}}),
        json!({"key": {"kty": "oct", "k": "!!!not base64!!!"}}),
        json!({"key": {"kty": "RSA-HSM", "n": "AQAB", "e": "AQAB"}}),
        json!({"key": {"kty": "oct"}, "Hsm": true}),
        json!({"key": {}}),
        json!({"nokey": 1}),
    ];
    for body in bad_jwks {
        let r = http
            .put(v.at("/keys/imp?api-version=7.4"))
            .bearer_auth(&v.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (400, "BadParameter".to_string()),
            "{body}"
        );
    }
    let bad_creates = [
        json!({"kty": "RSA", "key_size": 1024}),
        json!({"kty": "RSA", "public_exponent": 3}),
        json!({"kty": "EC", "crv": "P-224"}),
        json!({"kty": "EC-HSM", "crv": "P-256"}),
        json!({"kty": "DSA"}),
        json!({"kty": "oct", "key_size": 64}),
        json!({"kty": "EC", "crv": "P-256", "key_ops": ["encrypt"]}),
        json!({"kty": "RSA", "key_ops": ["fly"]}),
        json!({"kty": "RSA", "attributes": {"exportable": true}}),
        json!({"kty": "RSA", "release_policy": {"data": "e30"}}),
        json!({"kty": 5}),
    ];
    for body in bad_creates {
        let r = http
            .post(v.at("/keys/bad/create?api-version=7.4"))
            .bearer_auth(&v.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(r).await,
            (400, "BadParameter".to_string()),
            "{body}"
        );
    }
    // Unknown algorithms, bad base64, missing fields: 400 on every operation.
    for (path, body) in [
        ("/keys/life//sign", json!({"alg": "ES999", "value": "AA"})),
        ("/keys/life//sign", json!({"alg": "ES256", "value": "%%%"})),
        ("/keys/life//verify", json!({"alg": "ES256", "value": "AA"})),
        (
            "/keys/life//encrypt",
            json!({"alg": "ROT13", "value": "AA"}),
        ),
        ("/keys/life//decrypt", json!({"value": "AA"})),
    ] {
        let r = http
            .post(v.at(&format!("{path}?api-version=7.4")))
            .bearer_auth(&v.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, _) = error_code(r).await;
        assert!(status == 400 || status == 403, "{path} {body}: {status}");
    }
    // Random bytes.
    assert_eq!(c.random_bytes(16).await.unwrap().len(), 16);
    assert_eq!(c.random_bytes(0).await.unwrap_err().status(), Some(400));
    assert_eq!(c.random_bytes(129).await.unwrap_err().status(), Some(400));

    // Delete, reserved name, recover, purge, backup/restore with every version.
    let blob = c.backup_key("life").await.unwrap();
    c.delete_key("life").await.unwrap();
    assert_eq!(
        c.get_key("life", None).await.unwrap_err().code(),
        Some("KeyNotFound")
    );
    assert_eq!(
        c.create_key("life", &p).await.unwrap_err().status(),
        Some(409)
    );
    assert_eq!(c.list_deleted_keys().await.unwrap().len(), 1);
    c.recover_deleted_key("life").await.unwrap();
    c.delete_key("life").await.unwrap();
    c.purge_deleted_key("life").await.unwrap();
    let restored = c.restore_key(&blob).await.unwrap();
    assert_eq!(restored.key.kid, b2.key.kid);
    assert_eq!(c.list_key_versions("life").await.unwrap().len(), 2);
    // A key backup is not a secret backup.
    let e = c.restore_secret(&blob).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    // Release: the release policy cannot be satisfied without attestation.
    let r = http
        .post(v.at("/keys/life//release?api-version=7.4"))
        .bearer_auth(&v.token)
        .json(&json!({"target": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    v.stop().await;
}

#[tokio::test]
async fn rotation_policies_and_the_scheduler_on_an_injected_clock() {
    let fx = Fixture::new();
    let clock = ManualClock::new(1_900_000_000);
    let v = fx
        .start(Options {
            clock: Some(clock.clone()),
            ..Default::default()
        })
        .await;
    let c = v.client();
    let mut p = create("RSA");
    p.key_size = Some(3072);
    p.key_ops = Some(vec!["sign".into(), "verify".into()]);
    let first = c.create_key("rot", &p).await.unwrap();

    // The default policy before one is set.
    let default = c.get_rotation_policy("rot").await.unwrap();
    assert_eq!(
        default.lifetime_actions.as_ref().unwrap()[0]
            .action
            .action_type,
        "Notify"
    );
    assert!(default.id.unwrap().ends_with("/keys/rot/rotationpolicy"));

    let policy: KeyRotationPolicy = serde_json::from_value(json!({
        "lifetimeActions": [
            {"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Rotate"}},
            {"trigger": {"timeBeforeExpiry": "P10D"}, "action": {"type": "Notify"}}],
        "attributes": {"expiryTime": "P90D"}
    }))
    .unwrap();
    let stored = c.set_rotation_policy("rot", &policy).await.unwrap();
    assert_eq!(
        stored.attributes.as_ref().unwrap().expiry_time.as_deref(),
        Some("P90D")
    );
    // An update without expiryTime keeps it.
    let mut again = policy.clone();
    again.attributes = None;
    let stored = c.set_rotation_policy("rot", &again).await.unwrap();
    assert_eq!(
        stored.attributes.unwrap().expiry_time.as_deref(),
        Some("P90D")
    );
    let bad: KeyRotationPolicy = serde_json::from_value(json!({
        "lifetimeActions": [{"trigger": {"timeAfterCreate": "P1D"}, "action": {"type": "Rotate"}}]
    }))
    .unwrap();
    assert_eq!(
        c.set_rotation_policy("rot", &bad)
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );

    let state = v.state.clone().unwrap();
    // Not due yet.
    clock.advance(29 * 86_400);
    assert_eq!(
        kvault::server::keys::rotation::run_once(&state)
            .await
            .unwrap(),
        (0, 0)
    );
    // Due: one rotation; running again (as after a restart) does not rotate twice.
    clock.advance(2 * 86_400);
    assert_eq!(
        kvault::server::keys::rotation::run_once(&state)
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(
        kvault::server::keys::rotation::run_once(&state)
            .await
            .unwrap(),
        (0, 0)
    );
    let versions = c.list_key_versions("rot").await.unwrap();
    assert_eq!(versions.len(), 2);
    let rotated = c.get_key("rot", None).await.unwrap();
    assert_ne!(rotated.key.kid, first.key.kid);
    assert_eq!(rotated.key.key_ops, first.key.key_ops);
    assert_eq!(jwk_bytes(&rotated.key.n).len() * 8, 3072);
    // The new version expires per the policy's expiryTime.
    assert_eq!(
        rotated.attributes.exp,
        Some(clock_now(&clock) + 90 * 86_400)
    );
    // A Notify-only policy: it fires 10 days before the current version expires, once.
    let notify: KeyRotationPolicy = serde_json::from_value(json!({
        "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P10D"}, "action": {"type": "Notify"}}],
        "attributes": {"expiryTime": "P90D"}
    })).unwrap();
    c.set_rotation_policy("rot", &notify).await.unwrap();
    clock.advance(80 * 86_400 - 1);
    assert_eq!(
        kvault::server::keys::rotation::run_once(&state)
            .await
            .unwrap(),
        (0, 0)
    );
    clock.advance(1);
    assert_eq!(
        kvault::server::keys::rotation::run_once(&state)
            .await
            .unwrap(),
        (0, 1)
    );
    assert_eq!(
        kvault::server::keys::rotation::run_once(&state)
            .await
            .unwrap(),
        (0, 0)
    );

    // Manual rotation.
    let before = c.list_key_versions("rot").await.unwrap().len();
    c.rotate_key("rot").await.unwrap();
    assert_eq!(c.list_key_versions("rot").await.unwrap().len(), before + 1);
    v.stop().await;
}

fn clock_now(c: &ManualClock) -> i64 {
    use kvault::clock::Clock;
    c.now()
}

#[tokio::test]
async fn key_permissions_are_enforced_per_operation() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    let mut p = create("EC");
    p.crv = Some("P-256".into());
    c.create_key("k", &p).await.unwrap();
    let op_client = v.client_with(&fx.token_for(OPERATOR, json!({})));
    let doc: kvault::policy::PolicyDocument = serde_json::from_value(json!({
        "generation": 2, "throttling": {"enabled": false},
        "roleAssignments": [
            {"principal": {"kind": "User", "name": "alice"}, "role": "Key Vault Administrator"},
            {"principal": {"kind": "User", "name": "svc"}, "role": "Key Vault Crypto User", "scope": "/keys/k"},
            {"principal": {"kind": "User", "name": "reader"}, "role": "Key Vault Reader"}
        ]
    })).unwrap();
    op_client.put_policy(&doc).await.unwrap();
    let svc = v.client_with(&fx.token_for("svc", json!({})));
    let reader = v.client_with(&fx.token_for("reader", json!({})));
    let d = b64url(&sha(256, b"m"));
    assert!(
        svc.sign(
            "k",
            None,
            &KeySignParameters {
                alg: "ES256".into(),
                value: d.clone()
            }
        )
        .await
        .is_ok()
    );
    assert_eq!(
        svc.create_key("k", &p).await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(svc.delete_key("k").await.unwrap_err().status(), Some(403));
    assert_eq!(svc.list_keys().await.unwrap_err().status(), Some(403));
    assert!(reader.get_key("k", None).await.is_ok());
    assert!(reader.list_keys().await.is_ok());
    assert_eq!(
        reader
            .sign(
                "k",
                None,
                &KeySignParameters {
                    alg: "ES256".into(),
                    value: d
                }
            )
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert_eq!(
        reader.random_bytes(8).await.unwrap_err().status(),
        Some(403)
    );
    v.stop().await;
}
