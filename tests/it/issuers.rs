//! Issuer-bound identities on a vault that trusts several issuers: only the cluster issuer
//! asserts service accounts, and a grant matches only tokens of the issuer it names.

use crate::common::*;
use jsonwebtoken::Algorithm;
use kvault::policy::PolicyDocument;
use kvault::server::auth::IssuerConfig;
use kvault::server::config::{ServerConfig, parse_principal};
use serde_json::{Value, json};

const PEOPLE_A: &str = "https://people-a.test";
const PEOPLE_B: &str = "https://people-b.test";
const OPERATOR_SA: &str = "system:serviceaccount:kvault-system:kvault-operator";

/// A people's issuer (as `--issuer` gives it) with its own keys.
struct PeopleIssuer {
    issuer: &'static str,
    keys: TestIssuer,
}

impl PeopleIssuer {
    fn new(fx: &Fixture, issuer: &'static str) -> Self {
        let dir = fx.dir.path().join(issuer.trim_start_matches("https://"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            issuer,
            keys: TestIssuer::new(&dir),
        }
    }

    fn config(&self) -> IssuerConfig {
        IssuerConfig::parse(&format!(
            "{}={}",
            self.issuer,
            self.keys.jwks_path.display()
        ))
        .unwrap()
    }

    fn token(&self, fx: &Fixture, sub: &str, extra: Value) -> String {
        let n = now();
        let mut c = json!({"iss": self.issuer, "aud": fx.url(), "sub": sub, "iat": n, "nbf": n, "exp": n + 3600});
        if let (Some(obj), Some(more)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                obj.insert(k.clone(), v.clone());
            }
        }
        self.keys.sign(Algorithm::ES256, "ec", &c)
    }
}

async fn policy_status(v: &TestVault, token: &str) -> u16 {
    v.http()
        .get(v.at("/_kvault/policy"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_people_issuer_cannot_assert_the_operators_service_account() {
    let fx = Fixture::new();
    let people = PeopleIssuer::new(&fx, PEOPLE_A);
    let mut config: ServerConfig = fx.config(&Options {
        policy: None,
        ..Default::default()
    });
    // The fixture's issuer is the cluster issuer; the people's issuer comes as `--issuer`.
    config.issuers.push(people.config());
    config.admins = vec![parse_principal("ServiceAccount kvault-system/kvault-operator").unwrap()];
    let v = fx.start_with(config).await;

    // The operator's real token (from the cluster issuer) is the control plane …
    assert_eq!(
        policy_status(&v, &fx.token_for(OPERATOR_SA, json!({}))).await,
        200
    );
    // … the same subject from the people's issuer is just a user named like it.
    let forged = people.token(&fx, OPERATOR_SA, json!({}));
    assert_eq!(policy_status(&v, &forged).await, 403);
    let everyone_admin = json!({"generation": 9, "roleAssignments": [
        {"principal": {"kind": "Group", "name": "everyone"}, "role": "Key Vault Administrator"}
    ]});
    let r = v
        .http()
        .put(v.at("/_kvault/policy"))
        .bearer_auth(&forged)
        .json(&everyone_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Nor does it pass for the service account on the data plane.
    let sa_reader: PolicyDocument = serde_json::from_value(json!({"generation": 2, "roleAssignments": [
        {"principal": {"kind": "ServiceAccount", "namespace": "kvault-system", "name": "kvault-operator"}, "role": "Key Vault Secrets Officer"}
    ]}))
    .unwrap();
    v.client_with(&fx.token_for(OPERATOR_SA, json!({})))
        .put_policy(&sa_reader)
        .await
        .unwrap();
    let real = v.client_with(&fx.token_for(OPERATOR_SA, json!({})));
    assert!(real.list_secrets().await.is_ok());
    let fake = v.client_with(&forged);
    assert_eq!(fake.list_secrets().await.unwrap_err().status(), Some(403));
    // A policy whose issuers leave no one to speak for the control plane is refused.
    let r = v
        .http()
        .put(v.at("/_kvault/policy"))
        .bearer_auth(fx.token_for(OPERATOR_SA, json!({})))
        .json(&json!({"generation": 3, "identity": {"issuers": [
            {"issuer": PEOPLE_A, "jwksFile": people.keys.jwks_path}
        ]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("would match no token")),
        "{body}"
    );
    assert_eq!(
        policy_status(&v, &fx.token_for(OPERATOR_SA, json!({}))).await,
        200
    );
    v.stop().await;
}

#[tokio::test]
async fn a_grant_is_bound_to_the_issuer_it_names() {
    let fx = Fixture::new();
    let a = PeopleIssuer::new(&fx, PEOPLE_A);
    let b = PeopleIssuer::new(&fx, PEOPLE_B);
    let two_people = |initial: Option<PolicyDocument>| {
        let mut config = fx.config(&Options {
            policy: initial,
            ..Default::default()
        });
        config.issuers.extend([a.config(), b.config()]);
        config.admins = vec![parse_principal(&format!("User {OPERATOR} issuer={ISSUER}")).unwrap()];
        config
    };

    // A policy at start whose grant could be either people's issuer stops the start.
    let ambiguous = kvault::server::dev_policy("alice");
    let e = match kvault::server::Server::start(two_people(Some(ambiguous))).await {
        Ok(_) => panic!("an ambiguous initial policy was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("names no issuer"), "{e}");
    assert!(e.contains("User alice"), "{e}");

    let v = fx.start_with(two_people(None)).await;
    let op = v.client_with(&fx.token_for(OPERATOR, json!({})));
    let bound: PolicyDocument = serde_json::from_value(json!({"generation": 2, "roleAssignments": [
        {"principal": {"kind": "User", "name": "dev-admin", "issuer": PEOPLE_A}, "role": "Key Vault Secrets Officer"},
        {"principal": {"kind": "Group", "name": "team-g", "issuer": PEOPLE_A}, "role": "Key Vault Secrets User"}
    ], "throttling": {"enabled": false}}))
    .unwrap();
    op.put_policy(&bound).await.unwrap();

    // Issuer A's dev-admin and team-g member get A's grants.
    let a_admin = v.client_with(&a.token(&fx, "dev-admin", json!({})));
    a_admin.set_secret("db", &set("s3cret")).await.unwrap();
    let a_member = v.client_with(&a.token(&fx, "carol", json!({"groups": ["team-g"]})));
    assert!(a_member.get_secret("db", None).await.is_ok());
    // Issuer B's dev-admin and team-g member are other people: nothing.
    let b_admin = v.client_with(&b.token(&fx, "dev-admin", json!({})));
    assert_eq!(
        b_admin.list_secrets().await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(
        b_admin.get_secret("db", None).await.unwrap_err().status(),
        Some(403)
    );
    let b_member = v.client_with(&b.token(&fx, "carol", json!({"groups": ["team-g"]})));
    assert_eq!(
        b_member.get_secret("db", None).await.unwrap_err().status(),
        Some(403)
    );

    // A pushed grant that names no issuer, on this two-people vault: 400, naming the grant.
    let r = v
        .http()
        .put(v.at("/_kvault/policy"))
        .bearer_auth(fx.token_for(OPERATOR, json!({})))
        .json(&json!({"generation": 3, "roleAssignments": [
            {"principal": {"kind": "User", "name": "dev-admin"}, "role": "Key Vault Reader"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadParameter", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("roleAssignments[0] (User dev-admin)"),
        "{message}"
    );
    assert!(message.contains("names no issuer"), "{message}");
    assert_eq!(op.get_policy().await.unwrap().applied_generation, 2);
    v.stop().await;
}
