//! Authentication: every kind of bad token is a 401 with the challenge, before anything else.

use crate::common::*;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_challenge() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let iss = &fx.issuer;
    let aud = v.url.clone();
    let n = now();

    let mut claims = iss.claims(&aud, "alice");
    claims["exp"] = json!(n - 3600);
    let expired = iss.sign(Algorithm::ES256, "ec", &claims);
    let mut claims = iss.claims(&aud, "alice");
    claims["nbf"] = json!(n + 3600);
    let not_yet = iss.sign(Algorithm::ES256, "ec", &claims);
    let wrong_aud = iss.sign(
        Algorithm::ES256,
        "ec",
        &iss.claims("https://other.vault", "alice"),
    );
    let mut claims = iss.claims(&aud, "alice");
    claims["iss"] = json!("https://evil.test");
    let wrong_iss = iss.sign(Algorithm::ES256, "ec", &claims);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&iss.claims(&aud, "alice"))
    );
    // The classic confusion attack: HS256 keyed with the issuer's RSA public key.
    let public_pem = iss.rsa.public_key_pem();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa".into());
    let hs256 = jsonwebtoken::encode(
        &h,
        &iss.claims(&aud, "alice"),
        &EncodingKey::from_secret(public_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("not-a-key".into());
    let unknown_kid =
        jsonwebtoken::encode(&h, &iss.claims(&aud, "alice"), &iss.encoding_key("ec")).unwrap();
    // Signed by a key the issuer never published, under a published kid.
    let stranger = rcgen::KeyPair::generate().unwrap();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec".into());
    let forged = jsonwebtoken::encode(
        &h,
        &iss.claims(&aud, "alice"),
        &EncodingKey::from_ec_pem(stranger.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let valid = iss.sign(Algorithm::ES256, "ec", &iss.claims(&aud, "alice"));
    let tampered = {
        let parts: Vec<&str> = valid.split('.').collect();
        let mut c = iss.claims(&aud, "mallory");
        c["exp"] = json!(n + 7200);
        format!("{}.{}.{}", parts[0], b64(&c), parts[2])
    };

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("empty bearer", Some("Bearer ".into())),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("garbage", Some("Bearer garbage".into())),
        ("three garbage parts", Some("Bearer a.b.c".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("not yet valid", Some(format!("Bearer {not_yet}"))),
        ("wrong audience", Some(format!("Bearer {wrong_aud}"))),
        ("wrong issuer", Some(format!("Bearer {wrong_iss}"))),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        (
            "HS256 with the RSA public key",
            Some(format!("Bearer {hs256}")),
        ),
        ("unknown kid", Some(format!("Bearer {unknown_kid}"))),
        ("forged signature", Some(format!("Bearer {forged}"))),
        ("tampered claims", Some(format!("Bearer {tampered}"))),
    ];
    let http = v.http();
    // Seed a secret so a leak of existence would be observable.
    v.client()
        .set_secret(
            "exists",
            &kvault::wire::SecretSetParameters {
                value: "v".into(),
                content_type: None,
                tags: None,
                attributes: None,
            },
        )
        .await
        .unwrap();
    for (what, auth) in cases {
        for path in [
            "/secrets/exists/?api-version=7.4",
            "/secrets/missing/?api-version=7.4",
            "/nothing?api-version=bad",
        ] {
            let mut req = http.get(v.at(path));
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{what} {path}");
            let challenge = r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(
                challenge,
                format!(
                    "Bearer authorization=\"{}/kvault\", resource=\"https://kvault.localhost:{}\"",
                    v.url, v.port
                )
            );
            let (_, code) = error_code(r).await;
            assert_eq!(code, "Unauthorized", "{what}");
        }
    }
    // A body-less first request with a content type (what the SDKs send) gets the challenge.
    let r = http
        .put(v.at("/secrets/x?api-version=7.4"))
        .header("content-type", "application/json")
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    v.stop().await;
}

#[tokio::test]
async fn every_allowed_algorithm_and_the_challenge_audiences_are_accepted() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let iss = &fx.issuer;
    let resource = format!("https://kvault.localhost:{}", v.port);
    let cases = [
        (Algorithm::RS256, "rsa", v.url.clone()),
        (Algorithm::RS384, "rsa", v.url.clone()),
        (Algorithm::RS512, "rsa", v.url.clone()),
        (Algorithm::PS256, "rsa", v.url.clone()),
        (Algorithm::PS384, "rsa", v.url.clone()),
        (Algorithm::PS512, "rsa", v.url.clone()),
        (Algorithm::ES256, "ec", v.url.clone()),
        (Algorithm::ES384, "ec384", v.url.clone()),
        (Algorithm::ES256, "ec", resource.clone()),
        (Algorithm::ES256, "ec", format!("{resource}/.default")),
    ];
    for (alg, kid, aud) in cases {
        let token = iss.sign(alg, kid, &iss.claims(&aud, "alice"));
        let r = v
            .http()
            .get(v.at("/secrets?api-version=7.4"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{alg:?} aud {aud}");
    }
    // Service-account and application tokens authenticate too (and, with no grant, are
    // then refused by authorization: 403, not 401).
    for sub in ["system:serviceaccount:team-a:web", "some-app"] {
        let mut c = iss.claims(&v.url, sub);
        c["azp"] = json!("some-app");
        let token = iss.sign(Algorithm::ES256, "ec", &c);
        let e = v.client_with(&token).list_secrets().await.unwrap_err();
        assert_eq!(e.status(), Some(403), "{sub}");
    }
    v.stop().await;
}

#[tokio::test]
async fn a_new_issuer_key_is_picked_up_on_an_unknown_kid() {
    let fx = Fixture::new();
    // Start with only the RSA key published.
    fx.issuer.write_jwks(&["rsa"]);
    let v = fx.start(Options::default()).await;
    let token = fx
        .issuer
        .sign(Algorithm::ES256, "ec", &fx.issuer.claims(&v.url, "alice"));
    assert_eq!(
        v.client_with(&token)
            .list_secrets()
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    // The issuer rotates: the EC key appears in the JWKS; the next request refreshes.
    fx.issuer.write_jwks(&["rsa", "ec"]);
    assert!(v.client_with(&token).list_secrets().await.is_ok());
    v.stop().await;
}
