use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn aes192_key_wrap_matches_rfc_3394() {
    let kek = unhex("000102030405060708090A0B0C0D0E0F1011121314151617");
    let k = KeyMaterial::import(ImportParts {
        kty: Some(KeyType::Oct),
        k: Some(Zeroizing::new(kek)),
        ..Default::default()
    })
    .unwrap();
    // RFC 3394 §4.2 and §4.4.
    for (data, expected) in [
        (
            "00112233445566778899AABBCCDDEEFF",
            "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D",
        ),
        (
            "00112233445566778899AABBCCDDEEFF0001020304050607",
            "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2",
        ),
    ] {
        let wrapped = k.wrap(EncryptionAlgorithm::A192Kw, &unhex(data)).unwrap();
        assert_eq!(wrapped, unhex(expected));
        let back = k.unwrap(EncryptionAlgorithm::A192Kw, &wrapped).unwrap();
        assert_eq!(back.as_slice(), unhex(data).as_slice());
        let mut bad = wrapped.clone();
        bad[3] ^= 1;
        assert_eq!(
            k.unwrap(EncryptionAlgorithm::A192Kw, &bad).unwrap_err(),
            KeyError::Failed
        );
    }
}

#[test]
fn aes_wrap_128_and_256_match_rfc_3394() {
    let k128 = KeyMaterial::import(ImportParts {
        kty: Some(KeyType::Oct),
        k: Some(Zeroizing::new(unhex("000102030405060708090A0B0C0D0E0F"))),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        k128.wrap(
            EncryptionAlgorithm::A128Kw,
            &unhex("00112233445566778899AABBCCDDEEFF")
        )
        .unwrap(),
        unhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    );
    let k256 = KeyMaterial::import(ImportParts {
        kty: Some(KeyType::Oct),
        k: Some(Zeroizing::new(unhex(
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        ))),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        k256.wrap(
            EncryptionAlgorithm::A256Kw,
            &unhex("00112233445566778899AABBCCDDEEFF")
        )
        .unwrap(),
        unhex("64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7")
    );
    // The wrong key size for the algorithm is refused.
    assert!(matches!(
        k128.wrap(EncryptionAlgorithm::A256Kw, &[0u8; 16]),
        Err(KeyError::Bad(_))
    ));
}

#[test]
fn rsa_encrypt_decrypt_sign_verify_every_algorithm() {
    let k = KeyMaterial::generate_rsa(2048, Some(65537)).unwrap();
    assert_eq!(k.size_bits(), 2048);
    for alg in [
        EncryptionAlgorithm::RsaOaep,
        EncryptionAlgorithm::RsaOaep256,
        EncryptionAlgorithm::Rsa1_5,
    ] {
        let c = k.encrypt(alg, b"attack at dawn", None, None).unwrap();
        assert_eq!(c.value.len(), 256);
        assert_eq!(
            k.decrypt(alg, &c.value, None, None, None)
                .unwrap()
                .as_slice(),
            b"attack at dawn"
        );
        let w = k.wrap(alg, &[7u8; 32]).unwrap();
        assert_eq!(k.unwrap(alg, &w).unwrap().as_slice(), &[7u8; 32]);
        assert!(k.decrypt(alg, &c.value[..100], None, None, None).is_err());
    }
    for alg in [
        SignatureAlgorithm::RS256,
        SignatureAlgorithm::RS384,
        SignatureAlgorithm::RS512,
        SignatureAlgorithm::PS256,
        SignatureAlgorithm::PS384,
        SignatureAlgorithm::PS512,
    ] {
        let d = digest::digest(alg.digest_alg(), b"message");
        let sig = k.sign(alg, d.as_ref()).unwrap();
        assert!(k.verify(alg, d.as_ref(), &sig).unwrap());
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(!k.verify(alg, d.as_ref(), &bad).unwrap());
        // A digest of the wrong length is refused, not signed.
        assert!(matches!(
            k.sign(alg, &d.as_ref()[1..]),
            Err(KeyError::Bad(_))
        ));
    }
    assert!(matches!(
        k.sign(SignatureAlgorithm::ES256, &[0; 32]),
        Err(KeyError::Bad(_))
    ));
    assert!(KeyMaterial::generate_rsa(1024, None).is_err());
    assert!(KeyMaterial::generate_rsa(2048, Some(3)).is_err());
    // Stored form round-trips.
    let back = KeyMaterial::from_stored(&k.to_stored()).unwrap();
    assert_eq!(back.public_parts(), k.public_parts());
}

#[test]
fn ec_sign_verify_every_curve_and_import() {
    for (curve, alg) in [
        (Curve::P256, SignatureAlgorithm::ES256),
        (Curve::P384, SignatureAlgorithm::ES384),
        (Curve::P521, SignatureAlgorithm::ES512),
        (Curve::P256K, SignatureAlgorithm::ES256K),
    ] {
        let k = KeyMaterial::generate_ec(curve).unwrap();
        let d = digest::digest(alg.digest_alg(), b"hello");
        let sig = k.sign(alg, d.as_ref()).unwrap();
        assert_eq!(sig.len(), 2 * curve.coordinate_len());
        assert!(k.verify(alg, d.as_ref(), &sig).unwrap());
        let other = if alg == SignatureAlgorithm::ES256 {
            SignatureAlgorithm::ES384
        } else {
            SignatureAlgorithm::ES256
        };
        assert!(matches!(k.sign(other, d.as_ref()), Err(KeyError::Bad(_))));
        let p = k.public_parts();
        assert_eq!(p.x.as_ref().unwrap().len(), curve.coordinate_len());
        let back = KeyMaterial::from_stored(&k.to_stored()).unwrap();
        assert!(back.verify(alg, d.as_ref(), &sig).unwrap());
        // Encryption is not an EC operation.
        assert!(
            k.encrypt(EncryptionAlgorithm::RsaOaep, b"x", None, None)
                .is_err()
        );
    }
}

#[test]
fn aes_gcm_and_cbc_round_trips_and_tamper() {
    for bits in [128u32, 192, 256] {
        let k = KeyMaterial::generate_oct(bits).unwrap();
        let gcm = match bits {
            128 => EncryptionAlgorithm::A128Gcm,
            192 => EncryptionAlgorithm::A192Gcm,
            _ => EncryptionAlgorithm::A256Gcm,
        };
        let c = k
            .encrypt(gcm, b"secret data", None, Some(b"header"))
            .unwrap();
        let (iv, tag) = (c.iv.clone().unwrap(), c.tag.clone().unwrap());
        assert_eq!((iv.len(), tag.len()), (12, 16));
        let p = k
            .decrypt(gcm, &c.value, Some(&iv), Some(b"header"), Some(&tag))
            .unwrap();
        assert_eq!(p.as_slice(), b"secret data");
        assert_eq!(
            k.decrypt(gcm, &c.value, Some(&iv), Some(b"other"), Some(&tag))
                .unwrap_err(),
            KeyError::Failed
        );
        assert!(k.decrypt(gcm, &c.value, Some(&iv), None, None).is_err());
        for (plain_alg, pad_alg) in [
            (
                EncryptionAlgorithm::A128Cbc,
                EncryptionAlgorithm::A128CbcPad,
            ),
            (
                EncryptionAlgorithm::A192Cbc,
                EncryptionAlgorithm::A192CbcPad,
            ),
            (
                EncryptionAlgorithm::A256Cbc,
                EncryptionAlgorithm::A256CbcPad,
            ),
        ] {
            if cbc_params(plain_alg).0 != bits as usize {
                continue;
            }
            let c = k
                .encrypt(pad_alg, b"not a block multiple", None, None)
                .unwrap();
            assert_eq!(c.value.len(), 32);
            let p = k
                .decrypt(pad_alg, &c.value, c.iv.as_deref(), None, None)
                .unwrap();
            assert_eq!(p.as_slice(), b"not a block multiple");
            let iv = [9u8; 16];
            let c = k.encrypt(plain_alg, &[1u8; 32], Some(&iv), None).unwrap();
            assert_eq!(c.iv.as_deref(), Some(&iv[..]));
            assert_eq!(
                k.decrypt(plain_alg, &c.value, Some(&iv), None, None)
                    .unwrap()
                    .as_slice(),
                &[1u8; 32]
            );
            assert!(k.encrypt(plain_alg, b"short", None, None).is_err());
            assert!(
                k.decrypt(plain_alg, &c.value[..20], Some(&iv), None, None)
                    .is_err()
            );
        }
    }
    assert!(KeyMaterial::generate_oct(64).is_err());
}

#[test]
fn imports_need_private_members_and_consistency() {
    let rsa = KeyMaterial::generate_rsa(2048, None).unwrap();
    let pub_only = rsa.public_parts();
    assert!(matches!(
        KeyMaterial::import(ImportParts {
            kty: Some(KeyType::Rsa),
            n: pub_only.n.clone(),
            e: pub_only.e.clone(),
            ..Default::default()
        }),
        Err(KeyError::Bad(m)) if m.contains("private member")
    ));
    let ec = KeyMaterial::generate_ec(Curve::P256).unwrap();
    let p = ec.public_parts();
    assert!(
        KeyMaterial::import(ImportParts {
            kty: Some(KeyType::Ec),
            crv: Some(Curve::P256),
            x: p.x.clone(),
            y: p.y.clone(),
            d: Some(Zeroizing::new(vec![1u8; 32])),
            ..Default::default()
        })
        .is_err(),
        "a private key that does not match x/y is refused"
    );
    assert!(
        KeyMaterial::import(ImportParts {
            kty: Some(KeyType::Oct),
            k: Some(Zeroizing::new(vec![0u8; 20])),
            ..Default::default()
        })
        .is_err()
    );
    assert!(KeyMaterial::from_stored(b"Zjunk").is_err());
    assert!(KeyMaterial::from_stored(b"").is_err());
}

#[test]
fn ckm_aes_key_wrap_variants() {
    let k = KeyMaterial::import(ImportParts {
        kty: Some(KeyType::Oct),
        k: Some(Zeroizing::new(unhex(
            "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
        ))),
        ..Default::default()
    })
    .unwrap();
    // RFC 5649 §6 needs a 192-bit KEK, which aws-lc-rs lacks for padded wrap: refused clearly.
    assert!(matches!(
        k.wrap(
            EncryptionAlgorithm::CkmAesKeyWrapPad,
            &unhex("c37b7e6492584340bed12207808941155068f738")
        ),
        Err(KeyError::Bad(_))
    ));
    // The unpadded variant follows the key's size (here AES-192, RFC 3394).
    let w = k
        .wrap(EncryptionAlgorithm::CkmAesKeyWrap, &[3u8; 16])
        .unwrap();
    assert_eq!(
        k.unwrap(EncryptionAlgorithm::CkmAesKeyWrap, &w)
            .unwrap()
            .as_slice(),
        &[3u8; 16]
    );
    let k256 = KeyMaterial::generate_oct(256).unwrap();
    for len in [1usize, 7, 20, 32] {
        let data = vec![9u8; len];
        let w = k256
            .wrap(EncryptionAlgorithm::CkmAesKeyWrapPad, &data)
            .unwrap();
        assert_eq!(w.len() % 8, 0);
        assert_eq!(
            k256.unwrap(EncryptionAlgorithm::CkmAesKeyWrapPad, &w)
                .unwrap()
                .as_slice(),
            data.as_slice()
        );
    }
}
