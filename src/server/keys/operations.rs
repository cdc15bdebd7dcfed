//! The cryptographic operations on a key version (encrypt, decrypt, wrap, unwrap, sign,
//! verify, release) and random bytes.

use super::*;

fn b64_field(v: &Option<String>, name: &str) -> ApiResult<Option<Vec<u8>>> {
    match v {
        None => Ok(None),
        Some(s) => from_b64url(s)
            .map(Some)
            .ok_or_else(|| ApiError::bad(format!("'{name}' is not base64url."))),
    }
}

fn required_b64(s: &str, name: &str) -> ApiResult<Vec<u8>> {
    from_b64url(s).ok_or_else(|| ApiError::bad(format!("'{name}' is not base64url.")))
}

/// The cloud's rules for using a key version: enabled, its key_ops, and its validity
/// window — expired or not-yet-valid keys still decrypt, unwrap and verify.
fn check_usable(v: &Version<KeyMeta>, op: KeyOp, now: i64) -> ApiResult<()> {
    let op_name = op.key_op().map_or("release", JwkOperation::as_str);
    if !v.enabled {
        return Err(ApiError::Forbidden {
            message: format!("Operation {op_name} is not allowed on a disabled key."),
            inner: Some("KeyDisabled"),
        });
    }
    if let Some(needed) = op.key_op()
        && !v.meta.key_ops.contains(&needed)
    {
        return Err(ApiError::Forbidden {
            message: format!(
                "Operation {} is not permitted by this key's key_ops.",
                needed.as_str()
            ),
            inner: Some("KeyOperationForbidden"),
        });
    }
    let protective = matches!(
        op,
        KeyOp::Encrypt | KeyOp::WrapKey | KeyOp::Sign | KeyOp::Release
    );
    if protective {
        if v.exp.is_some_and(|exp| now > exp) {
            return Err(ApiError::Forbidden {
                message: format!("Operation {op_name} is not allowed on an expired key."),
                inner: Some("KeyExpired"),
            });
        }
        if v.nbf.is_some_and(|nbf| now < nbf) {
            return Err(ApiError::Forbidden {
                message: format!(
                    "Operation {op_name} is not allowed on a key that is not yet valid."
                ),
                inner: Some("KeyNotYetValid"),
            });
        }
    }
    Ok(())
}

fn enc_alg(s: &str) -> ApiResult<EncryptionAlgorithm> {
    EncryptionAlgorithm::parse(s).ok_or_else(|| {
        ApiError::bad(format!(
            "Unknown or unsupported algorithm '{}'.",
            objects::printable(s)
        ))
    })
}

fn sig_alg(s: &str) -> ApiResult<SignatureAlgorithm> {
    SignatureAlgorithm::parse(s).ok_or_else(|| {
        ApiError::bad(format!(
            "Unknown or unsupported signature algorithm '{}'.",
            objects::printable(s)
        ))
    })
}

pub(super) async fn key_operation(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    version: Option<&str>,
    op: KeyOp,
    body: &[u8],
) -> ApiResult<Reply> {
    let head = FAMILY.live::<KeyMeta>(&state.store, name).await?;
    let v = FAMILY.pick(&head, name, version)?;
    check_usable(v, op, state.clock.now())?;
    let kid = kid(ctx, &head, v);
    if op == KeyOp::Release {
        let _req: KeyReleaseParameters = objects::parse_json(body)?;
        if !v.meta.exportable {
            return Err(ApiError::bad(
                "The key is not exportable and cannot be released.",
            ));
        }
        return Err(ApiError::Forbidden {
            message: "The key release policy is not satisfied: this vault has no attestation verifier, so no attestation token can satisfy a release policy yet.".into(),
            inner: Some("ReleasePolicyNotSatisfied"),
        });
    }
    let material = state
        .key_cache
        .load(&state.store, &head.name, &v.id)
        .await?;
    let rsa = v.meta.kty == KeyType::Rsa;
    let body = body.to_vec();
    let job = move || -> ApiResult<Reply> { run_operation(&material, op, kid, &body) };
    // RSA private-key operations take hundreds of microseconds: keep them off the workers.
    if rsa && matches!(op, KeyOp::Decrypt | KeyOp::UnwrapKey | KeyOp::Sign) {
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| ApiError::Internal)?
    } else {
        job()
    }
}

fn run_operation(material: &KeyMaterial, op: KeyOp, kid: String, body: &[u8]) -> ApiResult<Reply> {
    match op {
        KeyOp::Encrypt | KeyOp::Decrypt | KeyOp::WrapKey | KeyOp::UnwrapKey => {
            let p: KeyOperationsParameters = objects::parse_json(body)?;
            let alg = enc_alg(&p.alg)?;
            let value = Zeroizing::new(required_b64(&p.value, "value")?);
            let iv = b64_field(&p.iv, "iv")?;
            let aad = b64_field(&p.aad, "aad")?;
            let tag = b64_field(&p.tag, "tag")?;
            let result = match op {
                KeyOp::Encrypt => {
                    let out = material.encrypt(alg, &value, iv.as_deref(), aad.as_deref())?;
                    KeyOperationResult {
                        kid: Some(kid),
                        value: b64url(&out.value),
                        iv: out.iv.as_deref().map(b64url),
                        tag: out.tag.as_deref().map(b64url),
                        aad: aad.as_deref().map(b64url),
                    }
                }
                KeyOp::Decrypt => {
                    let out = material.decrypt(
                        alg,
                        &value,
                        iv.as_deref(),
                        aad.as_deref(),
                        tag.as_deref(),
                    )?;
                    KeyOperationResult {
                        kid: Some(kid),
                        value: b64url(&out),
                        ..Default::default()
                    }
                }
                KeyOp::WrapKey => KeyOperationResult {
                    kid: Some(kid),
                    value: b64url(&material.wrap(alg, &value)?),
                    ..Default::default()
                },
                _ => {
                    let out = material.unwrap(alg, &value)?;
                    KeyOperationResult {
                        kid: Some(kid),
                        value: b64url(&out),
                        ..Default::default()
                    }
                }
            };
            Reply::ok(&result)
        }
        KeyOp::Sign => {
            let p: KeySignParameters = objects::parse_json(body)?;
            let alg = sig_alg(&p.alg)?;
            let digest = required_b64(&p.value, "value")?;
            let sig = material.sign(alg, &digest)?;
            Reply::ok(&KeyOperationResult {
                kid: Some(kid),
                value: b64url(&sig),
                ..Default::default()
            })
        }
        KeyOp::Verify => {
            let p: KeyVerifyParameters = objects::parse_json(body)?;
            let alg = sig_alg(&p.alg)?;
            let digest = required_b64(&p.digest, "digest")?;
            let sig = required_b64(&p.value, "value")?;
            Reply::ok(&KeyVerifyResult {
                value: material.verify(alg, &digest, &sig)?,
            })
        }
        KeyOp::Release => Err(ApiError::Internal),
    }
}

pub(super) fn random_bytes(body: &[u8]) -> ApiResult<Reply> {
    let req: GetRandomBytesRequest = objects::parse_json(body)?;
    if !(1..=128).contains(&req.count) {
        return Err(ApiError::bad("count must be from 1 to 128."));
    }
    let mut buf = Zeroizing::new(vec![0u8; req.count as usize]);
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| ApiError::Internal)?;
    Reply::ok(&RandomBytes {
        value: b64url(&buf),
    })
}
