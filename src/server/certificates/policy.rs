//! The certificate policy: the cloud's stored defaults, validation, and what a policy asks of an
//! issued certificate.

use super::*;

pub(super) const DEFAULT_EKUS: [&str; 2] = ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"];

/// Fills a policy's gaps with the cloud's stored defaults and checks it.
pub fn complete_policy(given: &CertificatePolicy, now: i64) -> ApiResult<CertificatePolicy> {
    let mut p = given.clone();
    p.id = None;
    let mut kp = p.key_props.clone().unwrap_or_default();
    let kty = kp.kty.clone().unwrap_or_else(|| "RSA".into());
    match kty.as_str() {
        "RSA" => {
            let size = kp.key_size.unwrap_or(2048);
            if !matches!(size, 2048 | 3072 | 4096) {
                return Err(ApiError::bad(
                    "key_props.key_size must be 2048, 3072 or 4096 for RSA.",
                ));
            }
            kp.key_size = Some(size);
            kp.crv = None;
        }
        "EC" => {
            // The cloud echoes an EC policy's key_size (the curve's size) as given, and
            // names the curve from it when crv is absent.
            let crv = match (kp.crv.clone(), kp.key_size) {
                (Some(crv), _) => crv,
                (None, Some(size)) => ec_curve_of_size(size)
                    .ok_or_else(|| {
                        ApiError::bad("key_props.key_size must be 256, 384 or 521 for EC.")
                    })?
                    .into(),
                (None, None) => "P-256".into(),
            };
            let Some(curve_size) = ec_size_of_curve(&crv) else {
                return Err(ApiError::bad(
                    "key_props.crv must be P-256, P-384 or P-521 for a certificate.",
                ));
            };
            if kp.key_size.is_some_and(|size| size != curve_size) {
                return Err(ApiError::bad(format!(
                    "key_props.key_size must be {curve_size} for curve {crv}."
                )));
            }
            kp.crv = Some(crv);
        }
        "RSA-HSM" | "EC-HSM" => {
            return Err(ApiError::bad(format!(
                "Key type {kty} needs a hardware security module, and this vault has none."
            )));
        }
        other => {
            return Err(ApiError::bad(format!(
                "key_props.kty '{}' is not a certificate key type: use RSA or EC.",
                objects::printable(other)
            )));
        }
    }
    kp.kty = Some(kty);
    kp.exportable = Some(kp.exportable.unwrap_or(true));
    kp.reuse_key = Some(kp.reuse_key.unwrap_or(false));
    p.key_props = Some(kp);
    let ct = p
        .secret_props
        .as_ref()
        .and_then(|s| s.content_type.clone())
        .unwrap_or_else(|| PFX.into());
    if ct != PFX && ct != PEM {
        return Err(ApiError::bad(format!(
            "secret_props.contentType must be {PFX} or {PEM}."
        )));
    }
    p.secret_props = Some(SecretProperties {
        content_type: Some(ct),
    });
    if let Some(pm) = &p.platform_managed
        && pm.certificate_usage.trim().is_empty()
    {
        return Err(ApiError::bad(
            "platformManaged.certificateUsage must not be empty.",
        ));
    }
    // A platform-managed policy may leave the subject to the platform.
    if !names_a_subject(&p) && p.platform_managed.is_none() {
        return Err(ApiError::bad(
            "A certificate policy needs a subject or at least one SAN.",
        ));
    }
    let mut x = p.x509_props.clone().unwrap_or_default();
    let sans = x.sans.clone().unwrap_or_default();
    x.sans = Some(sans);
    if x.ekus.is_none() {
        x.ekus = Some(DEFAULT_EKUS.iter().map(|s| s.to_string()).collect());
    }
    if x.key_usage.is_none() {
        x.key_usage = Some(vec!["digitalSignature".into(), "keyEncipherment".into()]);
    }
    let months = x.validity_months.unwrap_or(12);
    if !(1..=1200).contains(&months) {
        return Err(ApiError::bad(
            "x509_props.validity_months must be 1 to 1200.",
        ));
    }
    x.validity_months = Some(months);
    if x.basic_constraints.is_none() {
        x.basic_constraints = Some(Default::default());
    }
    p.x509_props = Some(x);
    if p.lifetime_actions.is_none() {
        p.lifetime_actions = Some(vec![CertLifetimeAction {
            trigger: Trigger {
                lifetime_percentage: Some(80),
                days_before_expiry: None,
            },
            action: Action {
                action_type: "AutoRenew".into(),
            },
        }]);
    }
    for a in p.lifetime_actions.iter().flatten() {
        match (a.trigger.lifetime_percentage, a.trigger.days_before_expiry) {
            (Some(pct), None) if (1..=99).contains(&pct) => {}
            (None, Some(d)) if d >= 1 => {}
            _ => {
                return Err(ApiError::bad(
                    "A lifetime action's trigger needs exactly one of lifetime_percentage (1-99) and days_before_expiry.",
                ));
            }
        }
        if !matches!(a.action.action_type.as_str(), "AutoRenew" | "EmailContacts") {
            return Err(ApiError::bad(
                "A lifetime action is AutoRenew or EmailContacts.",
            ));
        }
    }
    let issuer = p.issuer.clone().unwrap_or_default();
    p.issuer = Some(IssuerParameters {
        name: Some(issuer.name.unwrap_or_else(|| "Self".into())),
        ..issuer
    });
    let mut attrs = p.attributes.clone().unwrap_or_default();
    attrs.enabled = Some(attrs.enabled.unwrap_or(true));
    attrs.created = attrs.created.or(Some(now));
    attrs.updated = Some(now);
    p.attributes = Some(CertificateAttributes {
        enabled: attrs.enabled,
        created: attrs.created,
        updated: attrs.updated,
        ..Default::default()
    });
    Ok(p)
}

pub(super) fn ec_size_of_curve(crv: &str) -> Option<u32> {
    match crv {
        "P-256" => Some(256),
        "P-384" => Some(384),
        "P-521" => Some(521),
        _ => None,
    }
}

pub(super) fn ec_curve_of_size(size: u32) -> Option<&'static str> {
    match size {
        256 => Some("P-256"),
        384 => Some("P-384"),
        521 => Some("P-521"),
        _ => None,
    }
}

/// Whether the vault can issue under this policy: a platform-managed policy without a subject
/// or SAN names a certificate only the cloud's platform issuer makes.
pub(super) fn names_a_subject(p: &CertificatePolicy) -> bool {
    let x = p.x509_props.clone().unwrap_or_default();
    let sans = x.sans.unwrap_or_default();
    x.subject.as_deref().is_some_and(|s| !s.is_empty())
        || [
            &sans.dns_names,
            &sans.emails,
            &sans.upns,
            &sans.uris,
            &sans.ip_addresses,
        ]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
}

pub fn request_from_policy(p: &CertificatePolicy, now: i64) -> ApiResult<CertRequest> {
    let x = p.x509_props.clone().unwrap_or_default();
    let sans = x.sans.clone().unwrap_or_default();
    let ips = sans
        .ip_addresses
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            s.parse().map_err(|_| {
                ApiError::bad(format!("'{}' is not an IP address.", objects::printable(s)))
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(CertRequest {
        subject: x.subject.unwrap_or_default(),
        dns_names: sans.dns_names.unwrap_or_default(),
        emails: sans.emails.unwrap_or_default(),
        upns: sans.upns.unwrap_or_default(),
        uris: sans.uris.unwrap_or_default(),
        ip_addresses: ips,
        key_usage: x.key_usage.unwrap_or_default(),
        ekus: x.ekus.unwrap_or_default(),
        validity_months: x.validity_months.unwrap_or(12),
        ca: x.basic_constraints.is_some_and(|b| b.ca),
        now,
    })
}

pub(super) fn policy_of(ctx: &RequestContext, head: &CertHead) -> CertificatePolicy {
    let mut p = head
        .certificate
        .as_ref()
        .map(|c| c.policy.clone())
        .unwrap_or_default();
    p.id = Some(format!("{}/certificates/{}/policy", ctx.origin, head.name));
    p
}
