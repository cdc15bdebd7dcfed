//! Import of a PFX or PEM file.

use super::*;

pub(super) async fn import(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    body: &[u8],
) -> ApiResult<Reply> {
    objects::validate_name(name)?;
    let p: CertificateImportParameters = objects::parse_json(body)?;
    objects::validate_tags(&p.tags)?;
    let raw = Zeroizing::new(if p.value.trim_start().starts_with("-----BEGIN") {
        p.value.as_bytes().to_vec()
    } else {
        from_std_b64(&p.value)
            .ok_or_else(|| ApiError::bad("value must be a base64 PFX or PEM file."))?
    });
    let is_pem =
        raw.starts_with(b"-----BEGIN") || raw.windows(10).take(64).any(|w| w == b"-----BEGIN");
    let imported = if is_pem {
        x509::import_pem(&raw)?
    } else {
        x509::import_pfx(&raw, p.pwd.as_deref().unwrap_or(""))?
    };
    let now = state.clock.now();
    let parsed = x509::parse(
        imported
            .chain
            .first()
            .ok_or_else(|| ApiError::bad("The certificate holds no X.509 certificate."))?,
    )?;
    // The stored policy: the given one, completed from what the certificate says.
    let mut given = p.policy.clone().unwrap_or_default();
    let kp = given.key_props.get_or_insert_with(KeyProperties::default);
    kp.kty = Some(imported.key.kty().as_str().into());
    match imported.key.kty() {
        KeyType::Ec => kp.crv = imported.key.curve().map(|c| c.as_str().into()),
        _ => kp.key_size = Some(imported.key.size_bits()),
    }
    let sp = given
        .secret_props
        .get_or_insert_with(SecretProperties::default);
    if sp.content_type.is_none() {
        sp.content_type = Some(if is_pem { PEM } else { PFX }.into());
    }
    let x = given.x509_props.get_or_insert_with(X509Properties::default);
    if x.subject.is_none() {
        x.subject = Some(parsed.subject.clone());
    }
    if x.validity_months.is_none() {
        x.validity_months =
            Some((((parsed.exp - parsed.nbf) / (30 * 86_400)).clamp(1, 1200)) as u32);
    }
    if given.issuer.is_none() {
        given.issuer = Some(IssuerParameters {
            name: Some("Unknown".into()),
            ..Default::default()
        });
    }
    let policy = complete_policy(&given, now)?;
    let preserve_order = p.preserve_cert_order.unwrap_or(false);
    let issued = Issued {
        version: crate::crypto::new_version_id().map_err(|_| ApiError::Internal)?,
        key: imported.key,
        chain: if preserve_order {
            imported.as_given
        } else {
            imported.chain
        },
        preserve_order,
        policy,
        enabled: p
            .attributes
            .as_ref()
            .and_then(|a| a.enabled)
            .unwrap_or(true),
        tags: p.tags.clone(),
        now,
    };
    let head = with_trio(state, name, |trio| {
        trio.check_free(name)?;
        stage_issued(state, name, trio, &issued, None)
    })
    .await?;
    current_reply(ctx, &head)
}
