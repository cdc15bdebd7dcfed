use super::*;
use crate::provider::params::{DEFAULT_PERMISSION, ObjectEncoding};
use crate::provider::render::{CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

fn spec(name: &str) -> ObjectSpec {
    ObjectSpec {
        name: name.into(),
        kind: ObjectType::Secret,
        version: None,
        history: 0,
        alias: None,
        format: ObjectFormat::Pem,
        encoding: ObjectEncoding::Utf8,
        mode: DEFAULT_PERMISSION,
    }
}

fn secret(value: &str) -> Material {
    Material::Secret {
        value: Zeroizing::new(value.into()),
        content_type: None,
        certificate_backed: false,
    }
}

fn cert_secret(value: &str, content_type: &str) -> Material {
    Material::Secret {
        value: Zeroizing::new(value.into()),
        content_type: Some(content_type.into()),
        certificate_backed: true,
    }
}

fn plain(pairs: &[(&str, &str)]) -> Vec<(String, ObjectSpec, Material)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), spec(k), secret(v)))
        .collect()
}

fn templates(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn text(d: &RenderedData, key: &str) -> String {
    String::from_utf8(d.data[key].to_vec()).unwrap()
}

fn opaque(
    t: &[(&str, &str)],
    merge: MergePolicy,
    fetched: Vec<(String, ObjectSpec, Material)>,
) -> Result<RenderedData, RenderError> {
    render_data(SecretType::Opaque, merge, &templates(t), fetched)
}

use crate::provider::render::fixture::cert_fixture;

fn norm(s: &str) -> String {
    s.replace(['\r', '\n'], "")
}

// --- objects, merge policy ----------------------------------------------------------------

#[test]
fn objects_become_keys() {
    let mut fetched = plain(&[("user", "app"), ("password", "s3cret")]);
    let mut hexed = spec("raw");
    hexed.encoding = ObjectEncoding::Hex;
    fetched.push(("raw.bin".into(), hexed, secret("00ff")));
    let d = opaque(&[], MergePolicy::Replace, fetched).unwrap();
    assert_eq!(
        d.data.keys().collect::<Vec<_>>(),
        vec!["password", "raw.bin", "user"]
    );
    assert_eq!(text(&d, "user"), "app");
    assert_eq!(d.data["raw.bin"].as_slice(), &[0, 0xff]);
    assert_eq!(d.hash, data_hash(SecretType::Opaque, &d.data));
    // Debug shows keys, never values.
    let dbg = format!("{d:?}");
    assert!(dbg.contains("password") && !dbg.contains("s3cret"), "{dbg}");
}

#[test]
fn object_errors_name_the_key_and_object_not_the_value() {
    let mut hexed = spec("raw");
    hexed.encoding = ObjectEncoding::Hex;
    let e = opaque(
        &[],
        MergePolicy::Replace,
        vec![("raw.bin".into(), hexed, secret("zz-topsecret"))],
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(
        m.starts_with("Secret key 'raw.bin': secret 'raw' is not hexadecimal"),
        "{m}"
    );
    assert!(!m.contains("topsecret"));
    assert_eq!(e.reason(), "InvalidSpec");
    let mut dup = plain(&[("a", "1")]);
    dup.extend(plain(&[("a", "2")]));
    assert_eq!(
        opaque(&[], MergePolicy::Replace, dup).unwrap_err(),
        RenderError::DuplicateKey("a".into())
    );
}

#[test]
fn merge_policy() {
    let fetched = || plain(&[("user", "app"), ("password", "pw"), ("dsn", "object-dsn")]);
    let t = [("dsn", "{{ objects.user }}@db"), ("extra", "x")];
    let replace = opaque(&t, MergePolicy::Replace, fetched()).unwrap();
    assert_eq!(
        replace.data.keys().collect::<Vec<_>>(),
        vec!["dsn", "extra"]
    );
    assert_eq!(text(&replace, "dsn"), "app@db");
    let merge = opaque(&t, MergePolicy::Merge, fetched()).unwrap();
    assert_eq!(
        merge.data.keys().collect::<Vec<_>>(),
        vec!["dsn", "extra", "password", "user"]
    );
    // The template wins over the object of the same key.
    assert_eq!(text(&merge, "dsn"), "app@db");
    // Without templates the merge policy does nothing.
    let none = opaque(&[], MergePolicy::Replace, fetched()).unwrap();
    assert_eq!(none.data.len(), 3);
    assert_eq!(
        none.hash,
        opaque(&[], MergePolicy::Merge, fetched()).unwrap().hash
    );
}

// --- templates ----------------------------------------------------------------------------

#[test]
fn a_dsn_from_several_objects() {
    let d = opaque(
        &[(
            "DATABASE_URL",
            "postgres://{{ objects.user }}:{{ objects.password }}@db/app",
        )],
        MergePolicy::Replace,
        plain(&[("user", "app"), ("password", "p@ss")]),
    )
    .unwrap();
    assert_eq!(text(&d, "DATABASE_URL"), "postgres://app:p@ss@db/app");
    // urlencode for passwords with URL characters in them (as in Jinja2, `/` is kept).
    let d = opaque(
        &[(
            "u",
            "postgres://{{ objects.user }}:{{ objects.password | urlencode }}@db/app",
        )],
        MergePolicy::Replace,
        plain(&[("user", "app"), ("password", "p@ss/w:rd")]),
    )
    .unwrap();
    assert_eq!(text(&d, "u"), "postgres://app:p%40ss/w%3Ard@db/app");
}

#[test]
fn keys_with_dashes_and_dots_by_subscript() {
    let d = opaque(
        &[(
            "out",
            "{{ objects['db-password'] }}|{{ objects['app.conf'] }}",
        )],
        MergePolicy::Replace,
        plain(&[("db-password", "pw"), ("app.conf", "conf")]),
    )
    .unwrap();
    assert_eq!(text(&d, "out"), "pw|conf");
}

#[test]
fn base64_filters_and_objects_b64() {
    let mut bin = spec("bin");
    bin.encoding = ObjectEncoding::Base64;
    let mut fetched = plain(&[("user", "app"), ("enc", "aGVsbG8=")]);
    fetched.push(("bin".into(), bin, secret("AP8=")));
    let d = opaque(
        &[
            ("enc", "{{ objects.user | b64encode }}"),
            ("dec", "{{ objects.enc | b64decode }}"),
            ("b64", "{{ objects_b64.bin }},{{ objects_b64.user }}"),
            ("bin-absent", "{{ 'yes' if 'bin' in objects else 'no' }}"),
            ("auth", "{{ (objects.user ~ ':' ~ 'pw') | b64encode }}"),
        ],
        MergePolicy::Replace,
        fetched,
    )
    .unwrap();
    assert_eq!(text(&d, "enc"), "YXBw");
    assert_eq!(text(&d, "dec"), "hello");
    // Binary values are only in objects_b64; text values are in both.
    assert_eq!(text(&d, "b64"), "AP8=,YXBw");
    assert_eq!(text(&d, "bin-absent"), "no");
    assert_eq!(text(&d, "auth"), "YXBwOnB3");
}

#[test]
fn b64decode_refuses_bad_input_without_showing_it() {
    let e = opaque(
        &[("x", "{{ objects.v | b64decode }}")],
        MergePolicy::Replace,
        plain(&[("v", "%%%not-base64-secret")]),
    )
    .unwrap_err();
    assert_eq!(e.reason(), "TemplateError");
    let m = e.to_string();
    assert!(m.starts_with("template 'x': "), "{m}");
    assert!(m.contains("not base64"), "{m}");
    assert!(!m.contains("secret"), "{m}");
    // Base64 of bytes that are not text.
    let e = opaque(
        &[("x", "{{ 'AP8=' | b64decode }}")],
        MergePolicy::Replace,
        vec![],
    )
    .unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}

#[test]
fn tojson_is_there() {
    let d = opaque(
        &[("j", "{{ {'password': objects.p} | tojson }}")],
        MergePolicy::Replace,
        plain(&[("p", "a\"b")]),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&d.data["j"]).unwrap();
    assert_eq!(v["password"], "a\"b");
}

#[test]
fn undefined_is_an_error_not_empty() {
    for t in [
        "{{ objects.pasword }}",
        "{{ objects['nope'] }}",
        "{{ nothing }}",
        "{% if objects.nope %}x{% endif %}",
    ] {
        let e = opaque(
            &[("k", t)],
            MergePolicy::Replace,
            plain(&[("password", "hunter22")]),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("template 'k': undefined value"), "{t}: {m}");
        assert!(!m.contains("hunter22"), "{m}");
    }
    // Optional objects, said so explicitly, are fine.
    let d = opaque(
        &[
            ("a", "{% if 'nope' in objects %}x{% else %}none{% endif %}"),
            (
                "b",
                "{% if objects.nope is defined %}x{% else %}none{% endif %}",
            ),
            ("c", "{{ objects.nope | default('none') }}"),
        ],
        MergePolicy::Replace,
        plain(&[("password", "hunter22")]),
    )
    .unwrap();
    for k in ["a", "b", "c"] {
        assert_eq!(text(&d, k), "none", "{k}");
    }
}

#[test]
fn syntax_errors_name_template_and_line() {
    let e = opaque(
        &[("cfg", "line one\n{{ objects.user ")],
        MergePolicy::Replace,
        plain(&[("user", "app")]),
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(m.starts_with("template 'cfg': syntax error"), "{m}");
    assert!(m.contains("(line 2)"), "{m}");
}

#[test]
fn error_details_that_would_show_a_value_are_withheld() {
    let forbidden = [Zeroizing::new("hunter22".to_string())];
    let e = minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        "cannot do that with hunter22",
    );
    let m = template_message(&e, &forbidden);
    assert_eq!(
        m,
        "invalid operation: (detail withheld: it would show a value)"
    );
    let e = minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        "unable to calculate 9 * 9",
    );
    assert!(template_message(&e, &[]).contains("withheld"));
    let e = minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "x".repeat(2000));
    assert!(template_message(&e, &[]).chars().count() <= MAX_TEMPLATE_MESSAGE + 1);
    // End to end: an overflowing product of a value.
    let e = opaque(
        &[(
            "k",
            "{{ objects.n | int * 99999999999999999999999999999999999999 }}",
        )],
        MergePolicy::Replace,
        plain(&[("n", "987654321987654321")]),
    )
    .unwrap_err();
    assert!(!e.to_string().contains("987654321"), "{e}");
}

#[test]
fn auto_escaping_never_applies() {
    let d = opaque(
        &[
            ("index.html", "{{ objects.v }}"),
            ("config.json", "{{ objects.v }}"),
        ],
        MergePolicy::Replace,
        plain(&[("v", "<a&\"b\">")]),
    )
    .unwrap();
    assert_eq!(text(&d, "index.html"), "<a&\"b\">");
    assert_eq!(text(&d, "config.json"), "<a&\"b\">");
}

#[test]
fn template_output_is_bounded() {
    let e = opaque(
        &[(
            "big",
            "{% for i in range(2000) %}{{ objects.v }}{% endfor %}",
        )],
        MergePolicy::Replace,
        plain(&[("v", &"x".repeat(1024))]),
    )
    .unwrap_err();
    assert!(
        matches!(&e, RenderError::TooLarge { what, max, .. } if what.contains("'big'") && *max == MAX_TEMPLATE_OUTPUT),
        "{e}"
    );
    assert_eq!(e.reason(), "TemplateError");
    // A loop that would spin runs out of fuel.
    let e = opaque(
        &[(
            "spin",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        )],
        MergePolicy::Replace,
        vec![],
    )
    .unwrap_err();
    assert!(e.to_string().contains("fuel"), "{e}");
}

#[test]
fn secret_data_is_bounded() {
    let half = "x".repeat(MAX_SECRET_DATA / 2);
    let e = opaque(
        &[],
        MergePolicy::Replace,
        plain(&[("a", &half), ("b", &half)]),
    )
    .unwrap_err();
    assert!(
        matches!(e, RenderError::TooLarge { size, max: MAX_SECRET_DATA, .. } if size == MAX_SECRET_DATA + 2),
        "{e}"
    );
    assert_eq!(e.reason(), "TooManyObjects");
    let fits = "x".repeat(MAX_SECRET_DATA / 2 - 1);
    assert!(
        opaque(
            &[],
            MergePolicy::Replace,
            plain(&[("a", &fits), ("b", &fits)])
        )
        .is_ok()
    );
}

// --- hash ---------------------------------------------------------------------------------

#[test]
fn hash_is_deterministic_and_sensitive() {
    let h = |pairs: &[(&str, &[u8])], t: SecretType| {
        let d: BTreeMap<String, Zeroizing<Vec<u8>>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Zeroizing::new(v.to_vec())))
            .collect();
        data_hash(t, &d)
    };
    let base = h(&[("a", b"1"), ("b", b"2")], SecretType::Opaque);
    assert_eq!(base.len(), 64);
    assert!(
        base.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(base, h(&[("b", b"2"), ("a", b"1")], SecretType::Opaque));
    for other in [
        h(&[("a", b"1"), ("b", b"3")], SecretType::Opaque),
        h(&[("a", b"1"), ("c", b"2")], SecretType::Opaque),
        h(&[("a", b"1")], SecretType::Opaque),
        h(&[("a", b"1"), ("b", b"2")], SecretType::DockerConfigJson),
        // Framing: moving bytes between key and value changes the hash.
        h(&[("a", b"1"), ("b2", b"")], SecretType::Opaque),
        h(&[("a1", b""), ("b", b"2")], SecretType::Opaque),
    ] {
        assert_ne!(base, other);
    }
    assert_ne!(
        h(&[], SecretType::Opaque),
        h(&[("", b"")], SecretType::Opaque)
    );
    // The rendered data's hash is the same on every render.
    let r = || {
        opaque(
            &[("t", "{{ objects.a }}")],
            MergePolicy::Merge,
            plain(&[("a", "1")]),
        )
        .unwrap()
        .hash
    };
    assert_eq!(r(), r());
}

// --- kubernetes.io/tls --------------------------------------------------------------------

#[test]
fn tls_from_a_pfx_certificate_secret() {
    let f = cert_fixture();
    let fetched = vec![(
        "tls".to_string(),
        spec("web-tls"),
        cert_secret(&f.pfx_b64, CONTENT_TYPE_PKCS12),
    )];
    let d = render_data(
        SecretType::Tls,
        MergePolicy::Replace,
        &BTreeMap::new(),
        fetched,
    )
    .unwrap();
    // The combined key was split: only tls.crt and tls.key remain.
    assert_eq!(
        d.data.keys().collect::<Vec<_>>(),
        vec!["tls.crt", "tls.key"]
    );
    let key = text(&d, "tls.key");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    assert!(!key.contains("CERTIFICATE"));
    let crt = text(&d, "tls.crt");
    assert!(!crt.contains("PRIVATE KEY"));
    assert_eq!(crt.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    let (body, leaf, ca) = (norm(&crt), norm(&f.leaf_pem), norm(&f.ca_pem));
    assert!(
        body.find(&leaf).unwrap() < body.find(&ca).unwrap(),
        "leaf first"
    );
}

#[test]
fn tls_from_a_pem_certificate_secret_with_other_objects() {
    let f = cert_fixture();
    let mut ca = spec("web-tls");
    ca.kind = ObjectType::Cert;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(f.ca_pem.as_bytes()).unwrap();
    use rustls::pki_types::pem::PemObject;
    let fetched = vec![
        (
            "bundle".to_string(),
            spec("web-tls"),
            cert_secret(&f.pem_bundle, CONTENT_TYPE_PEM),
        ),
        ("ca.crt".to_string(), ca, Material::Cert(der.to_vec())),
    ];
    let d = render_data(
        SecretType::Tls,
        MergePolicy::Replace,
        &BTreeMap::new(),
        fetched,
    )
    .unwrap();
    assert_eq!(
        d.data.keys().collect::<Vec<_>>(),
        vec!["ca.crt", "tls.crt", "tls.key"]
    );
    assert_eq!(norm(&text(&d, "tls.key")), norm(&f.key_pem));
    assert_eq!(
        norm(&text(&d, "tls.crt")),
        norm(&format!("{}{}", f.leaf_pem, f.ca_pem))
    );
}

#[test]
fn tls_from_templates_needs_no_certificate() {
    let t = templates(&[
        ("tls.crt", "{{ objects.crt }}"),
        ("tls.key", "{{ objects.key }}"),
    ]);
    let d = render_data(
        SecretType::Tls,
        MergePolicy::Replace,
        &t,
        plain(&[("crt", "CRT"), ("key", "KEY")]),
    )
    .unwrap();
    assert_eq!(text(&d, "tls.crt"), "CRT");
    // A template for one of the two; the certificate gives the other.
    let f = cert_fixture();
    let t = templates(&[("tls.crt", "{{ objects.chain }}")]);
    let fetched = vec![
        (
            "bundle".to_string(),
            spec("web-tls"),
            cert_secret(&f.pem_bundle, CONTENT_TYPE_PEM),
        ),
        ("chain".to_string(), spec("chain"), secret("CHAIN")),
    ];
    let d = render_data(SecretType::Tls, MergePolicy::Replace, &t, fetched).unwrap();
    assert_eq!(text(&d, "tls.crt"), "CHAIN");
    assert_eq!(norm(&text(&d, "tls.key")), norm(&f.key_pem));
}

#[test]
fn tls_without_one_certificate_explains_what_is_needed() {
    let tls = |fetched, t: &[(&str, &str)]| {
        render_data(
            SecretType::Tls,
            MergePolicy::Replace,
            &templates(t),
            fetched,
        )
        .unwrap_err()
        .to_string()
    };
    let e = tls(plain(&[("a", "b")]), &[]);
    assert!(
        e.starts_with(
            "kubernetes.io/tls: the Secret needs tls.crt and tls.key: name one certificate's secret"
        ),
        "{e}"
    );
    let f = cert_fixture();
    let two = vec![
        (
            "one".to_string(),
            spec("one"),
            cert_secret(&f.pem_bundle, CONTENT_TYPE_PEM),
        ),
        (
            "two".to_string(),
            spec("two"),
            cert_secret(&f.pem_bundle, CONTENT_TYPE_PEM),
        ),
    ];
    let e = tls(two, &[]);
    assert!(
        e.contains("2 certificate secrets are given (one, two)"),
        "{e}"
    );
    // A pfx-format object is not split (it is a PFX file, not PEM).
    let mut pfx = spec("web-tls");
    pfx.format = ObjectFormat::Pfx;
    let e = tls(
        vec![(
            "p".into(),
            pfx,
            cert_secret(&f.pfx_b64, CONTENT_TYPE_PKCS12),
        )],
        &[],
    );
    assert!(e.contains("name one certificate's secret"), "{e}");
    // Present but empty.
    let e = tls(
        plain(&[("c", "C")]),
        &[("tls.crt", "{{ objects.c }}"), ("tls.key", "  ")],
    );
    assert!(e.starts_with("kubernetes.io/tls: tls.key is empty"), "{e}");
    // A certificate secret with no private key in it (PEM as stored by someone).
    let e = tls(
        vec![(
            "c".into(),
            spec("c"),
            cert_secret(&f.leaf_pem, CONTENT_TYPE_PEM),
        )],
        &[],
    );
    assert!(e.contains("holds no private key"), "{e}");
    assert!(!e.contains("BEGIN"), "{e}");
}

#[test]
fn splitting_pem() {
    let key = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----";
    let c1 = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----";
    let c2 = "-----BEGIN CERTIFICATE-----\nCCCC\n-----END CERTIFICATE-----";
    let pem = format!("junk\n{c1}\r\n{key}\nmore junk\n{c2}");
    let (k, chain) = split_key_and_chain(pem.as_bytes()).unwrap();
    assert_eq!(k.as_slice(), format!("{key}\n").as_bytes());
    assert_eq!(chain.as_slice(), format!("{c1}\n{c2}\n").as_bytes());
    let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nA\n-----END ENCRYPTED PRIVATE KEY-----";
    assert!(
        split_key_and_chain(format!("{enc}{c1}").as_bytes())
            .unwrap_err()
            .contains("encrypted")
    );
    assert!(
        split_key_and_chain(format!("{key}{key}{c1}").as_bytes())
            .unwrap_err()
            .contains("more than one")
    );
    assert!(
        split_key_and_chain(key.as_bytes())
            .unwrap_err()
            .contains("no certificate")
    );
    assert!(
        split_key_and_chain(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
            .unwrap_err()
            .contains("has no end")
    );
}

// --- kubernetes.io/dockerconfigjson -------------------------------------------------------

#[test]
fn docker_config_json() {
    let dc = |pairs: &[(&str, &str)]| {
        render_data(
            SecretType::DockerConfigJson,
            MergePolicy::Replace,
            &BTreeMap::new(),
            plain(pairs),
        )
    };
    let ok = r#"{"auths":{"registry.example":{"auth":"dXNlcjpwdw=="}}}"#;
    let d = dc(&[(".dockerconfigjson", ok)]).unwrap();
    assert_eq!(text(&d, ".dockerconfigjson"), ok);
    let e = dc(&[("config", ok)]).unwrap_err().to_string();
    assert!(e.contains("needs a .dockerconfigjson key"), "{e}");
    let e = dc(&[(".dockerconfigjson", "{\"auths\": hunter2}")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not JSON (line 1"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    for bad in [r#"{"auth":{}}"#, r#"{"auths":"hunter2"}"#, r#"["auths"]"#] {
        let e = dc(&[(".dockerconfigjson", bad)]).unwrap_err().to_string();
        assert!(e.contains("with an \"auths\" object"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
    // From a template, the usual way.
    let t = templates(&[(
        ".dockerconfigjson",
        r#"{"auths":{"r.example":{"auth":"{{ (objects.user ~ ':' ~ objects.pw) | b64encode }}"}}}"#,
    )]);
    let d = render_data(
        SecretType::DockerConfigJson,
        MergePolicy::Replace,
        &t,
        plain(&[("user", "u"), ("pw", "p")]),
    )
    .unwrap();
    assert!(text(&d, ".dockerconfigjson").contains("dTpw"));
}

// --- the Secret and its ownership ---------------------------------------------------------

fn rendered() -> RenderedData {
    opaque(&[], MergePolicy::Replace, plain(&[("a", "1")])).unwrap()
}

#[test]
fn desired_secret_for_server_side_apply() {
    let d = rendered();
    let labels = templates(&[("team", "web"), ("kvault.dev/secret-sync", "spoof")]);
    let annotations = templates(&[("note", "x"), ("kvault.dev/data-hash", "spoof")]);
    let s = desired_secret(
        "app",
        "uid-1",
        "team",
        "app-secrets",
        SecretType::Opaque,
        &labels,
        &annotations,
        DeletionPolicy::Delete,
        &d,
    );
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "Secret");
    assert_eq!(v["type"], "Opaque");
    assert_eq!(v["metadata"]["name"], "app-secrets");
    assert_eq!(v["metadata"]["namespace"], "team");
    assert_eq!(v["data"]["a"], "MQ==");
    let m = &v["metadata"];
    assert_eq!(m["labels"]["team"], "web");
    assert_eq!(m["labels"]["kvault.dev/secret-sync"], "app");
    assert_eq!(
        m["labels"]["app.kubernetes.io/managed-by"],
        "kvault-operator"
    );
    assert_eq!(m["annotations"]["note"], "x");
    assert_eq!(m["annotations"]["kvault.dev/data-hash"], d.hash.as_str());
    assert_eq!(
        m["ownerReferences"],
        serde_json::json!([{
            "apiVersion": "kvault.dev/v1alpha1", "kind": "SecretSync", "name": "app",
            "uid": "uid-1", "controller": true, "blockOwnerDeletion": true
        }])
    );
    let orphan = desired_secret(
        "app",
        "uid-1",
        "team",
        "app-secrets",
        SecretType::Tls,
        &BTreeMap::new(),
        &BTreeMap::new(),
        DeletionPolicy::Orphan,
        &d,
    );
    assert!(orphan.metadata.owner_references.is_none());
    assert_eq!(orphan.type_.as_deref(), Some("kubernetes.io/tls"));
}

fn existing(owner_uid: Option<(&str, bool)>, label: Option<&str>, manager: Option<&str>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("app-secrets".into()),
            owner_references: owner_uid.map(|(uid, controller)| {
                vec![OwnerReference {
                    api_version: "kvault.dev/v1alpha1".into(),
                    kind: "SecretSync".into(),
                    name: "app".into(),
                    uid: uid.into(),
                    controller: Some(controller),
                    block_owner_deletion: Some(true),
                }]
            }),
            labels: label.map(|l| templates(&[(SYNC_LABEL, l)])),
            managed_fields: manager.map(|m| {
                vec![ManagedFieldsEntry {
                    manager: Some(m.into()),
                    operation: Some("Apply".into()),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn ownership_rules() {
    let own = |s: Option<&Secret>| ownership(s, "app", "uid-1");
    assert_eq!(own(None), Ownership::Absent);
    assert_eq!(
        own(Some(&existing(Some(("uid-1", true)), None, None))),
        Ownership::Ours
    );
    // Another SecretSync (or a recreated one of the same name) as controller.
    assert_eq!(
        own(Some(&existing(
            Some(("uid-2", true)),
            Some("app"),
            Some(SYNC_FIELD_MANAGER)
        ))),
        Ownership::Foreign
    );
    // Orphan policy: the label and our field manager together.
    assert_eq!(
        own(Some(&existing(None, Some("app"), Some(SYNC_FIELD_MANAGER)))),
        Ownership::Ours
    );
    // A non-controller owner does not stand in the way.
    assert_eq!(
        own(Some(&existing(
            Some(("uid-9", false)),
            Some("app"),
            Some(SYNC_FIELD_MANAGER)
        ))),
        Ownership::Ours
    );
    assert_eq!(
        own(Some(&existing(None, Some("app"), Some("kubectl")))),
        Ownership::Foreign
    );
    assert_eq!(
        own(Some(&existing(
            None,
            Some("other"),
            Some(SYNC_FIELD_MANAGER)
        ))),
        Ownership::Foreign
    );
    assert_eq!(
        own(Some(&existing(None, None, Some(SYNC_FIELD_MANAGER)))),
        Ownership::Foreign
    );
    assert_eq!(own(Some(&existing(None, None, None))), Ownership::Foreign);
}
