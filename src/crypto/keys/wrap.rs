//! Key wrapping: RSA encryption of key bytes, AES key wrap (RFC 3394) and key wrap with padding
//! (RFC 5649), with the AES-192 KEK aws-lc-rs lacks built here.

use super::*;

impl KeyMaterial {
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

pub(super) fn kw_bits(alg: EncryptionAlgorithm) -> usize {
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
