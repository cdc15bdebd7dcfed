//! Encryption and decryption: RSA (OAEP, PKCS#1 v1.5) and AES (GCM, CBC, CBC with padding).

use super::wrap::kw_bits;
use super::*;

impl KeyMaterial {
    pub(super) fn oct(&self, bits: usize, alg: EncryptionAlgorithm) -> Result<&[u8], KeyError> {
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
                    None => crate::crypto::random::<12>()
                        .map_err(|_| bad("random generation failed"))?,
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
                    None => crate::crypto::random::<16>()
                        .map_err(|_| bad("random generation failed"))?,
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
    pub(super) fn kw_kek(&self, alg: EncryptionAlgorithm) -> Result<(usize, &[u8]), KeyError> {
        use EncryptionAlgorithm as E;
        let bits = match alg {
            E::CkmAesKeyWrap | E::CkmAesKeyWrapPad => self.kek_bits(alg)?,
            _ => kw_bits(alg),
        };
        Ok((bits, self.oct(bits, alg)?))
    }

    pub(super) fn kek_bits(&self, alg: EncryptionAlgorithm) -> Result<usize, KeyError> {
        match &self.0 {
            Inner::Oct(k) => Ok(k.len() * 8),
            _ => Err(bad(format!("{alg} needs a symmetric (oct) key"))),
        }
    }

    pub(super) fn cipher_key(
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
}

pub(super) fn cbc_params(alg: EncryptionAlgorithm) -> (usize, bool) {
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
