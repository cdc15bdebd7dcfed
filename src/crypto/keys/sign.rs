//! Signing and verifying caller-computed digests: RSA (PKCS#1 v1.5, PSS) and ECDSA.

use super::*;

impl KeyMaterial {
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
