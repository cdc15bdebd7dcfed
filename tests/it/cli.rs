//! The real `kvault` binary: `dev` start/stop/restart, `token`, `secret …`, and a bad
//! `server` configuration.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_kvault");

fn dev_env(state: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(state.join("dev.env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

fn kvault(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs the binary with a standard output whose reader is already gone (as after `| head
/// -1` has read its line): every write to it fails with EPIPE.
fn kvault_closed_stdout(env: &[(String, String)], args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// Runs the binary with `input` on its standard input.
fn kvault_stdin(env: &[(String, String)], args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The stored value of a secret, exactly (from the JSON bundle, not the printed line).
fn stored_value(env: &[(String, String)], name: &str) -> String {
    let o = kvault(env, &["secret", "get", name, "-o", "json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["value"].as_str().unwrap().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Dev(std::process::Child);
impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_dev(state: &Path, port: u16) -> Dev {
    let dev = Dev(Command::new(BIN)
        .args(["dev", "--listen", &format!("127.0.0.1:{port}")])
        // Not the default port+1, which another test may hold.
        .args(["--identity-listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if state.join("dev.env").exists()
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return dev;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("kvault dev did not come up");
}

fn sigterm(dev: &mut Dev) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &dev.0.id().to_string()])
        .status()
        .unwrap();
    for _ in 0..200 {
        if let Some(status) = dev.0.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("kvault dev ignored SIGTERM");
}

#[test]
fn dev_secret_cli_round_trip_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let mut dev = start_dev(&state, port);

    let env = dev_env(&state);
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "KVAULT_URL",
        "KVAULT_TOKEN",
        "KVAULT_CA_FILE",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
        "KVAULT_STATE_DIR",
    ] {
        assert!(keys.contains(&k), "{k} missing from dev.env");
    }
    // After `source dev.env`, `kvault token` finds the state from any directory.
    assert_eq!(
        env.iter().find(|(k, _)| k == "KVAULT_STATE_DIR").unwrap().1,
        std::fs::canonicalize(&state).unwrap().to_str().unwrap()
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["token", "--user", "alice"])
        .current_dir(elsewhere.path())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o).trim().split('.').count(), 3, "{o:?}");
    assert_eq!(
        env.iter().find(|(k, _)| k == "KVAULT_URL").unwrap().1,
        format!("https://dev.kvault.localhost:{port}")
    );
    use std::os::unix::fs::PermissionsExt;
    for private in ["dev.env", "master.key", "issuer-key.pem", "ca-key.pem"] {
        let mode = std::fs::metadata(state.join(private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{private} is readable by others");
    }

    let o = kvault(
        &env,
        &["secret", "set", "greeting", "hello", "--tag", "a=b"],
    );
    assert!(o.status.success(), "{o:?}");
    let o = kvault(&env, &["secret", "get", "greeting"]);
    assert_eq!(stdout(&o).trim(), "hello");
    let o = kvault(&env, &["secret", "get", "greeting", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tags"]["a"], "b");
    assert!(stdout(&kvault(&env, &["secret", "list"])).contains("greeting"));
    // -o yaml and --field: the same answer as YAML, or one member of it.
    let o = kvault(&env, &["secret", "get", "greeting", "-o", "yaml"]);
    assert!(stdout(&o).lines().any(|l| l == "value: hello"), "{o:?}");
    let o = kvault(&env, &["secret", "get", "greeting", "--field", "value"]);
    assert_eq!(stdout(&o), "hello\n", "{o:?}");
    let o = kvault(&env, &["secret", "get", "greeting", "--field", "tags.a"]);
    assert_eq!(stdout(&o), "b\n", "{o:?}");
    // -o tsv and -o table: a tab in a value is escaped, one item stays one line.
    let o = kvault(
        &env,
        &["secret", "set", "tabbed", "v", "--content-type", "a\tb\nc"],
    );
    assert!(o.status.success(), "{o:?}");
    let o = kvault(&env, &["secret", "list", "-o", "tsv"]);
    let text = stdout(&o);
    assert_eq!(
        text.lines().next(),
        Some("name\tenabled\tupdated\texpires\tcontent-type"),
        "{o:?}"
    );
    let row = text.lines().find(|l| l.starts_with("tabbed\t")).unwrap();
    assert!(row.ends_with("\ta\\tb\\nc"), "{row:?}");
    assert_eq!(row.split('\t').count(), 5, "{row:?}");
    let o = kvault(&env, &["secret", "versions", "greeting", "-o", "table"]);
    assert!(stdout(&o).contains("VERSION"), "{o:?}");
    let o = kvault(&env, &["secret", "get", "greeting", "-o", "tsv"]);
    let text = stdout(&o);
    let header: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split('\t').collect();
    let at = header.iter().position(|h| *h == "value").unwrap();
    assert_eq!(row[at], "hello", "{o:?}");
    let o = kvault(&env, &["secret", "list", "--field", "id"]);
    assert!(
        stdout(&o).lines().any(|l| l.ends_with("/secrets/greeting")),
        "{o:?}"
    );
    let o = kvault(&env, &["secret", "get", "greeting", "--field", "nope"]);
    assert_eq!(o.status.code(), Some(9), "{o:?}");
    let o = kvault(&env, &["secret", "backup", "greeting"]);
    let blob = stdout(&o).trim().to_string();
    assert!(blob.len() > 40);

    // Values from standard input lose exactly one trailing line ending; --file and the
    // argument or --value store what they are given.
    for (input, stored) in [("x\n", "x"), ("x\r\n", "x"), ("x", "x"), ("x\n\n", "x\n")] {
        let o = kvault_stdin(&env, &["secret", "set", "piped"], input.as_bytes());
        assert!(o.status.success(), "{o:?}");
        assert_eq!(stored_value(&env, "piped"), stored, "{input:?}");
        let o = kvault_stdin(
            &env,
            &["secret", "set", "piped", "--file", "-"],
            input.as_bytes(),
        );
        assert!(o.status.success(), "{o:?}");
        assert_eq!(stored_value(&env, "piped"), stored, "--file - {input:?}");
    }
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    let o = kvault(
        &env,
        &["secret", "set", "filed", "--file", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stored_value(&env, "filed"), "from a file\n");
    assert!(
        kvault(&env, &["secret", "set", "flagged", "--value", "v\n"])
            .status
            .success()
    );
    assert_eq!(stored_value(&env, "flagged"), "v\n");
    assert_eq!(
        kvault(&env, &["secret", "set", "flagged", "a", "--value", "b"])
            .status
            .code(),
        Some(2)
    );

    // Times: RFC 3339, durations from now, and Unix seconds as before.
    let o = kvault(
        &env,
        &[
            "secret",
            "set",
            "timed",
            "v",
            "--nbf",
            "1h",
            "--exp",
            "2030-01-01T00:00:00Z",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let o = kvault(&env, &["secret", "get", "timed", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["attributes"]["exp"], 1_893_456_000, "{v}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let nbf = v["attributes"]["nbf"].as_i64().unwrap();
    assert!((nbf - (now + 3600)).abs() < 120, "nbf {nbf}, now {now}");
    let o = kvault(
        &env,
        &[
            "secret",
            "update",
            "timed",
            "--exp",
            "1900000000",
            "--nbf",
            "2029-06-01",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let o = kvault(&env, &["secret", "get", "timed", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["attributes"]["exp"], 1_900_000_000, "{v}");
    assert_eq!(v["attributes"]["nbf"], 1_874_966_400, "{v}");
    let o = kvault(&env, &["secret", "set", "timed", "v", "--exp", "soon"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));

    // `kvault … | head -1`: a closed standard output ends the command quietly, status 0.
    for args in [
        &["secret", "list"][..],
        &["secret", "get", "greeting"],
        &["secret", "get", "greeting", "-o", "json"],
        &["secret", "backup", "greeting"],
        &["crd"],
    ] {
        let o = kvault_closed_stdout(&env, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.is_empty(), "{args:?} printed: {err}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {o:?}");
    }

    // Errors: the vault's code and message, and an exit status by class (docs/cli.md).
    let o = kvault(&env, &["secret", "get", "missing"]);
    assert_eq!(o.status.code(), Some(3), "not found: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("SecretNotFound"), "{err}");
    // A command line clap refuses: 2; a local error (no vault URL): 9.
    // The usage line of a missing argument does not suggest a token on the command line,
    // though KVAULT_TOKEN is set.
    let o = kvault(&env, &["secret", "get"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Usage: kvault secret get"), "{err}");
    assert!(!err.contains("--token <"), "{err}");
    let help = stdout(&kvault(&env, &["secret", "set", "--help"]));
    assert!(!help.contains("--token <"), "{help}");
    assert!(help.contains("--token-file"), "{help}");
    let no_url: Vec<_> = env
        .iter()
        .filter(|(k, _)| k != "KVAULT_URL")
        .cloned()
        .collect();
    assert_eq!(
        kvault(&no_url, &["secret", "get", "greeting"])
            .status
            .code(),
        Some(9)
    );

    // Tokens for other principals work; a token from nowhere does not.
    let o = kvault(
        &[],
        &[
            "token",
            "--state-dir",
            state.to_str().unwrap(),
            "--sa",
            "team-a/web",
        ],
    );
    let token = stdout(&o).trim().to_string();
    assert_eq!(token.split('.').count(), 3);
    let mut sa_env = env.clone();
    sa_env.retain(|(k, _)| k != "KVAULT_TOKEN");
    sa_env.push(("KVAULT_TOKEN".into(), token));
    // Authenticated, but the dev policy grants only the administrator: 403 Forbidden.
    let o = kvault(&sa_env, &["secret", "list"]);
    assert_eq!(o.status.code(), Some(5), "forbidden: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Forbidden") && err.contains("ServiceAccount team-a/web"),
        "{err}"
    );
    let mut bad_env = env.clone();
    bad_env.retain(|(k, _)| k != "KVAULT_TOKEN");
    bad_env.push(("KVAULT_TOKEN".into(), "nope".into()));
    let o = kvault(&bad_env, &["secret", "list"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Unauthorized"));
    assert_eq!(o.status.code(), Some(4), "unauthorized: {o:?}");

    // SIGTERM stops it cleanly; a restart keeps the data (and the same master key).
    assert!(sigterm(&mut dev).success());
    let master = std::fs::read(state.join("master.key")).unwrap();
    let mut dev = start_dev(&state, port);
    assert_eq!(std::fs::read(state.join("master.key")).unwrap(), master);
    let env = dev_env(&state);
    assert_eq!(
        stdout(&kvault(&env, &["secret", "get", "greeting"])).trim(),
        "hello"
    );
    assert!(
        kvault(&env, &["secret", "delete", "greeting"])
            .status
            .success()
    );
    // The name of a deleted but recoverable secret cannot be reused: 409, exit status 6.
    let o = kvault(&env, &["secret", "set", "greeting", "again"]);
    assert_eq!(o.status.code(), Some(6), "conflict: {o:?}");
    assert!(
        kvault(&env, &["secret", "purge", "greeting"])
            .status
            .success()
    );
    let restore = Command::new(BIN)
        .args(["secret", "restore"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    restore
        .stdin
        .as_ref()
        .unwrap()
        .write_all(blob.as_bytes())
        .unwrap();
    assert!(restore.wait_with_output().unwrap().status.success());
    assert_eq!(
        stdout(&kvault(&env, &["secret", "get", "greeting"])).trim(),
        "hello"
    );
    assert!(sigterm(&mut dev).success());
}

#[test]
fn a_bad_server_configuration_fails_with_one_line_before_listening() {
    let fx = Fixture::new();
    let port = free_port();
    let base = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--url", "https://v.kvault.localhost"])
            .arg("--data-dir")
            .arg(fx.data_dir())
            .arg("--cluster-issuer")
            .arg(format!("{ISSUER}={}", fx.issuer.jwks_path.display()))
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("KVAULT_URL");
        c
    };
    let cert = fx.certs.cert.to_str().unwrap().to_string();
    let key = fx.certs.key.to_str().unwrap().to_string();
    let mk = fx.master_key.to_str().unwrap().to_string();
    let other_key = fx.dir.path().join("b-key.pem");
    make_certs(fx.dir.path(), "b");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--tls-key", &key, "--master-key-file", &mk],
            "tls-cert",
        ),
        (
            vec![
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                &key,
                "--master-key-file",
                &mk,
            ],
            "/nonexistent.pem",
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                other_key.to_str().unwrap(),
                "--master-key-file",
                &mk,
            ],
            "does not match",
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--master-key-file",
                "/nonexistent.key",
            ],
            "master key",
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--master-key-file",
                &mk,
                "--tls-min-version",
                "1.1",
            ],
            "tls-min-version",
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--master-key-file",
                &mk,
                "--retention-days",
                "3",
            ],
            "retention-days",
        ),
    ];
    for (args, needle) in cases {
        let o = base(&args).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn secret_values_and_tokens_appear_in_no_log_or_audit_output() {
    let fx = Fixture::new();
    let policy = fx.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::to_vec(&kvault::server::dev_policy("alice")).unwrap(),
    )
    .unwrap();
    let out_path = fx.dir.path().join("stdout.log");
    let err_path = fx.dir.path().join("stderr.log");
    let child = Command::new(BIN)
        .args(["server", "--listen", &format!("127.0.0.1:{}", fx.port)])
        .args(["--url", &fx.url()])
        .arg("--tls-cert")
        .arg(&fx.certs.cert)
        .arg("--tls-key")
        .arg(&fx.certs.key)
        .arg("--data-dir")
        .arg(fx.data_dir())
        .arg("--master-key-file")
        .arg(&fx.master_key)
        .arg("--cluster-issuer")
        .arg(format!("{ISSUER}={}", fx.issuer.jwks_path.display()))
        .arg("--policy-file")
        .arg(&policy)
        .args(["--metrics-listen", "127.0.0.1:0", "--audit-log", "stdout"])
        // As verbose as the server gets.
        .env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut child = Dev(child);
    let token = fx.issuer.sign(
        jsonwebtoken::Algorithm::ES256,
        "ec",
        &fx.issuer.claims(&fx.url(), "alice"),
    );
    let ca = fx.certs.ca_pem.to_str().unwrap().to_string();
    let env = vec![
        ("KVAULT_URL".to_string(), fx.url()),
        ("KVAULT_TOKEN".to_string(), token.clone()),
        ("KVAULT_CA_FILE".to_string(), ca),
    ];
    let marker = "log-marker-secret-value-41c7";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let o = kvault(&env, &["secret", "set", "logged", marker]);
        if o.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server never came up: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stdout(&kvault(&env, &["secret", "get", "logged"])).trim(),
        marker
    );
    let o = kvault(&env, &["secret", "get", "logged", "-o", "json"]);
    assert!(stdout(&o).contains(marker));
    let status = sigterm(&mut child);
    assert!(status.success());
    let audit = std::fs::read_to_string(&out_path).unwrap();
    let logs = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        audit
            .lines()
            .filter(|l| l.contains("\"operation\":\"GetSecret\""))
            .count()
            >= 2,
        "{audit}"
    );
    assert!(logs.lines().count() > 5, "expected trace logs, got: {logs}");
    for (what, text) in [("audit output", &audit), ("logs", &logs)] {
        assert!(
            !text.contains(marker),
            "the secret value appeared in the {what}"
        );
        assert!(!text.contains(&token), "the token appeared in the {what}");
        // Nor any recognisable piece of the token's signature.
        let sig = token.rsplit('.').next().unwrap();
        assert!(
            !text.contains(&sig[..20]),
            "token material appeared in the {what}"
        );
    }
}

#[test]
fn cert_and_key_commands_through_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let mut dev = start_dev(&state, port);
    let env = dev_env(&state);
    let o = kvault(
        &env,
        &[
            "cert",
            "create",
            "web",
            "--subject",
            "CN=web.example.test",
            "--dns",
            "web.example.test",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("completed"));
    let out = dir.path().join("out");
    let o = kvault(
        &env,
        &["cert", "get", "web", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{o:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "key.pem is private");
    let cert = out.join("cert.pem");
    let verify = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            cert.to_str().unwrap(),
            cert.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(verify.status.success());
    // The key.pem matches the certificate.
    let k = Command::new("openssl")
        .args([
            "pkey",
            "-in",
            out.join("key.pem").to_str().unwrap(),
            "-pubout",
        ])
        .output()
        .unwrap();
    let c = Command::new("openssl")
        .args(["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout"])
        .output()
        .unwrap();
    assert_eq!(k.stdout, c.stdout);
    assert!(stdout(&kvault(&env, &["cert", "list"])).contains("web"));
    // An RFC 4514 subject with an escaped comma is one common name.
    let o = kvault(
        &env,
        &[
            "cert",
            "create",
            "doe",
            "--subject",
            r"CN=Doe\, John,O=Acme",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let o = kvault(&env, &["cert", "get", "doe", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v["cer"].as_str().unwrap(),
    )
    .unwrap();
    let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn: Vec<&str> = x
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["Doe, John"]);
    assert_eq!(
        x.subject()
            .iter_organization()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "Acme"
    );
    // -o tsv: a header line, then one tab-separated row per item; -o table: bordered.
    let o = kvault(&env, &["cert", "list", "-o", "tsv"]);
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("name\tenabled\tupdated\texpires"),
        "{o:?}"
    );
    assert!(lines.any(|l| l.starts_with("web\ttrue\t")), "{o:?}");
    let o = kvault(&env, &["cert", "list", "-o", "table"]);
    let text = stdout(&o);
    assert!(text.contains("NAME") && text.contains("EXPIRES"), "{o:?}");
    assert!(text.lines().any(|l| l.starts_with("| web ")), "{o:?}");
    let o = kvault(&env, &["cert", "versions", "web", "-o", "tsv"]);
    assert_eq!(stdout(&o).lines().count(), 2, "{o:?}");

    // Keys: create, sign a file, verify it.
    assert!(
        kvault(
            &env,
            &["key", "create", "signer", "--kty", "EC", "--curve", "P-256"]
        )
        .status
        .success()
    );
    // Keys list through the same listing code as certificates; a key shows as one row.
    let o = kvault(&env, &["key", "list", "-o", "tsv"]);
    assert!(
        stdout(&o).lines().any(|l| l.starts_with("signer\ttrue\t")),
        "{o:?}"
    );
    let o = kvault(&env, &["key", "get", "signer", "-o", "tsv"]);
    let text = stdout(&o);
    assert_eq!(
        text.lines().next(),
        Some("kid\tkty\tcurve\toperations\tenabled\tcreated\texpires"),
        "{o:?}"
    );
    assert!(
        text.lines().nth(1).unwrap().contains("\tEC\tP-256\t"),
        "{o:?}"
    );
    let o = kvault(&env, &["key", "list", "--deleted", "-o", "tsv"]);
    assert_eq!(stdout(&o), "name\tdeleted\tpurge-after\n", "{o:?}");
    let doc = dir.path().join("doc.txt");
    std::fs::write(&doc, b"sign me").unwrap();
    let o = kvault(
        &env,
        &[
            "key",
            "sign",
            "signer",
            "--alg",
            "ES256",
            "--file",
            doc.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let sig = stdout(&o).trim().to_string();
    let o = kvault(
        &env,
        &[
            "key",
            "verify",
            "signer",
            "--alg",
            "ES256",
            "--file",
            doc.to_str().unwrap(),
            "--signature",
            &sig,
        ],
    );
    assert!(o.status.success() && stdout(&o).contains("valid"), "{o:?}");
    std::fs::write(&doc, b"tampered").unwrap();
    let o = kvault(
        &env,
        &[
            "key",
            "verify",
            "signer",
            "--alg",
            "ES256",
            "--file",
            doc.to_str().unwrap(),
            "--signature",
            &sig,
        ],
    );
    // A signature that does not verify is a negative answer: exit status 1.
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(sigterm(&mut dev).success());
}

#[test]
fn a_wrong_ca_and_a_stopped_vault_are_told_apart_by_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let mut dev = start_dev(&state, port);
    let env = dev_env(&state);
    let token = env
        .iter()
        .find(|(k, _)| k == "KVAULT_TOKEN")
        .unwrap()
        .1
        .clone();
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).trim().to_string();

    // Another CA than the one that signed the vault's certificate.
    let other = make_certs(dir.path(), "other");
    let mut wrong_ca = env.clone();
    wrong_ca.retain(|(k, _)| k != "KVAULT_CA_FILE");
    wrong_ca.push((
        "KVAULT_CA_FILE".into(),
        other.ca_pem.to_str().unwrap().to_string(),
    ));
    let o = kvault(&wrong_ca, &["secret", "get", "greeting"]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "TLS failure is unavailable: {o:?}"
    );
    let untrusted = stderr(&o);

    assert!(sigterm(&mut dev).success());
    let o = kvault(&env, &["secret", "get", "greeting"]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "a stopped vault is unavailable: {o:?}"
    );
    let stopped = stderr(&o);

    assert_ne!(untrusted, stopped);
    for err in [&untrusted, &stopped] {
        assert!(err.starts_with("kvault: cannot reach the vault: "), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert_eq!(
            err.matches("error sending request").count(),
            1,
            "each cause once: {err}"
        );
        assert!(!err.contains(&token), "the token is in the error: {err}");
    }
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "the wrong CA is named: {untrusted}"
    );
    assert!(!untrusted.to_lowercase().contains("refused"), "{untrusted}");
    assert!(
        stopped.to_lowercase().contains("refused"),
        "the stopped vault is named: {stopped}"
    );
    assert!(!stopped.to_lowercase().contains("certificate"), "{stopped}");
}

#[test]
fn completion_scripts_name_the_subcommands() {
    let o = kvault(&[], &["completion", "bash"]);
    assert!(o.status.success(), "{o:?}");
    let script = stdout(&o);
    assert!(script.contains("_kvault()"), "{script}");
    assert!(
        script.contains("complete -F _kvault"),
        "not a bash completion"
    );
    let top = script
        .lines()
        .find(|l| l.contains("opts=\"") && l.contains(" secret "))
        .expect("a line with the top-level subcommands");
    for sub in [
        "secret",
        "key",
        "cert",
        "policy",
        "token",
        "dev",
        "completion",
    ] {
        assert!(top.contains(&format!(" {sub} ")), "{sub} missing: {top}");
    }
    // The secret subcommands, and a flag of one of them.
    assert!(
        script.contains("kvault__subcmd__secret,set)"),
        "no `secret set`"
    );
    assert!(script.contains("--token-file"), "no --token-file");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let o = kvault(&[], &["completion", shell]);
        assert!(o.status.success(), "{shell}: {o:?}");
        assert!(stdout(&o).contains("secret"), "{shell}");
    }
    // An unknown shell is a usage error.
    assert_eq!(kvault(&[], &["completion", "tcsh"]).status.code(), Some(2));
}
