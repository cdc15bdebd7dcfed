//! Every secrets endpoint through the typed client, with the API's exact shapes and codes.

use crate::common::*;
use kvault::clock::ManualClock;
use kvault::server::objects::SoftDelete;
use kvault::wire::{SecretAttributes, SecretUpdateParameters};
use serde_json::Value;

fn version_of(id: &str) -> String {
    id.rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn set_get_versions_update_list() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();

    let mut p = set("s3cret");
    p.content_type = Some("text/plain".into());
    p.tags = Some([("env".to_string(), "test".to_string())].into());
    p.attributes = Some(SecretAttributes {
        nbf: Some(1_735_689_600),
        ..Default::default()
    });
    let b1 = c.set_secret("Db-Password", &p).await.unwrap();
    assert_eq!(b1.value.as_deref(), Some("s3cret"));
    let v1 = version_of(&b1.id);
    assert_eq!(v1.len(), 32);
    assert!(
        b1.id
            .starts_with(&format!("{}/secrets/Db-Password/", v.url))
    );
    assert_eq!(b1.content_type.as_deref(), Some("text/plain"));
    assert_eq!(b1.attributes.nbf, Some(1_735_689_600));
    assert_eq!(b1.attributes.enabled, Some(true));
    assert_eq!(
        b1.attributes.recovery_level.as_deref(),
        Some("Recoverable+Purgeable")
    );
    assert_eq!(b1.attributes.recoverable_days, Some(90));
    assert!(b1.attributes.created.is_some());

    // Names are case-insensitive; the latest is the empty version segment.
    let b2 = c.set_secret("db-password", &set("second")).await.unwrap();
    let v2 = version_of(&b2.id);
    assert_ne!(v1, v2);
    let latest = c.get_secret("DB-PASSWORD", None).await.unwrap();
    assert_eq!(latest.value.as_deref(), Some("second"));
    let old = c.get_secret("db-password", Some(&v1)).await.unwrap();
    assert_eq!(old.value.as_deref(), Some("s3cret"));
    assert_eq!(old.tags.as_ref().unwrap()["env"], "test");

    let versions = c.list_secret_versions("db-password").await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(
        versions
            .iter()
            .all(|i| i.id.contains("/secrets/Db-Password/"))
    );

    // Update a specific version; the value is never returned by update.
    let upd = c
        .update_secret(
            "db-password",
            Some(&v1),
            &SecretUpdateParameters {
                content_type: Some("application/json".into()),
                tags: Some([("a".to_string(), "b".to_string())].into()),
                attributes: Some(SecretAttributes {
                    enabled: Some(false),
                    exp: Some(4_102_444_800),
                    ..Default::default()
                }),
            },
        )
        .await
        .unwrap();
    assert!(upd.value.is_none());
    assert_eq!(upd.attributes.enabled, Some(false));
    assert_eq!(upd.attributes.exp, Some(4_102_444_800));
    assert_eq!(upd.content_type.as_deref(), Some("application/json"));
    // A disabled version is refused with 403 SecretDisabled; the latest still works.
    let e = c.get_secret("db-password", Some(&v1)).await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(e.code(), Some("Forbidden"));
    assert_eq!(
        c.get_secret("db-password", None)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("second")
    );

    c.set_secret("other", &set("x")).await.unwrap();
    let list = c.list_secrets().await.unwrap();
    // Listings come in the listing index's order (the names' keyed HMAC, docs/storage.md),
    // not by name.
    let mut ids: Vec<&str> = list.iter().map(|i| i.id.as_str()).collect();
    ids.sort_by_key(|id| id.to_ascii_lowercase());
    assert_eq!(
        ids,
        vec![
            format!("{}/secrets/Db-Password", v.url).as_str(),
            format!("{}/secrets/other", v.url).as_str()
        ]
    );

    // Unknown secret and unknown version: 404 SecretNotFound.
    let e = c.get_secret("nope", None).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some("SecretNotFound")));
    let e = c
        .get_secret("other", Some("00000000000000000000000000000000"))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some("SecretNotFound")));
    v.stop().await;
}

#[tokio::test]
async fn soft_delete_recover_purge_and_reserved_names() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    c.set_secret("gone", &set("1")).await.unwrap();
    c.set_secret("gone", &set("2")).await.unwrap();

    let d = c.delete_secret("gone").await.unwrap();
    assert_eq!(
        d.deletion.recovery_id.as_deref(),
        Some(format!("{}/deletedsecrets/gone", v.url).as_str())
    );
    let deleted = d.deletion.deleted_date.unwrap();
    assert_eq!(d.deletion.scheduled_purge_date, Some(deleted + 90 * 86_400));
    assert!(d.secret.value.is_none());

    let e = c.get_secret("gone", None).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(c.list_secrets().await.unwrap().len(), 0);
    assert_eq!(c.list_secret_versions("gone").await.unwrap().len(), 0);
    let gd = c.get_deleted_secret("gone").await.unwrap();
    assert_eq!(gd.deletion.deleted_date, Some(deleted));
    assert_eq!(c.list_deleted_secrets().await.unwrap().len(), 1);

    // The name is reserved while deleted.
    let e = c.set_secret("GONE", &set("3")).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("Conflict")));
    let e = c.delete_secret("gone").await.unwrap_err();
    assert_eq!(e.status(), Some(404));

    // Recover brings back every version.
    c.recover_deleted_secret("gone").await.unwrap();
    assert_eq!(
        c.get_secret("gone", None).await.unwrap().value.as_deref(),
        Some("2")
    );
    assert_eq!(c.list_secret_versions("gone").await.unwrap().len(), 2);
    let e = c.recover_deleted_secret("gone").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some("SecretNotFound")));

    // Purge only applies to deleted secrets, answers 204, and frees the name.
    let e = c.purge_deleted_secret("gone").await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    c.delete_secret("gone").await.unwrap();
    c.purge_deleted_secret("gone").await.unwrap();
    assert_eq!(
        c.get_deleted_secret("gone").await.unwrap_err().status(),
        Some(404)
    );
    c.set_secret("gone", &set("fresh")).await.unwrap();
    assert_eq!(c.list_secret_versions("gone").await.unwrap().len(), 1);

    // The raw purge status is exactly 204.
    c.delete_secret("gone").await.unwrap();
    let r = v
        .http()
        .delete(v.at("/deletedsecrets/gone?api-version=7.4"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    v.stop().await;
}

#[tokio::test]
async fn purge_protection_and_custom_retention() {
    let fx = Fixture::new();
    let v = fx
        .start(Options {
            soft_delete: SoftDelete {
                retention_days: 7,
                purge_protection: true,
            },
            ..Default::default()
        })
        .await;
    let c = v.client();
    let b = c.set_secret("p", &set("1")).await.unwrap();
    assert_eq!(
        b.attributes.recovery_level.as_deref(),
        Some("CustomizedRecoverable")
    );
    assert_eq!(b.attributes.recoverable_days, Some(7));
    let d = c.delete_secret("p").await.unwrap();
    assert_eq!(
        d.deletion.scheduled_purge_date.unwrap() - d.deletion.deleted_date.unwrap(),
        7 * 86_400
    );
    let e = c.purge_deleted_secret("p").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(403), Some("Forbidden")));
    c.recover_deleted_secret("p").await.unwrap();
    v.stop().await;
}

#[tokio::test]
async fn the_sweeper_purges_when_retention_ends_even_under_purge_protection() {
    let fx = Fixture::new();
    let clock = ManualClock::new(1_800_000_000);
    let v = fx
        .start(Options {
            soft_delete: SoftDelete {
                retention_days: 7,
                purge_protection: true,
            },
            clock: Some(clock.clone()),
            ..Default::default()
        })
        .await;
    let c = v.client();
    c.set_secret("old", &set("1")).await.unwrap();
    c.set_secret("young", &set("1")).await.unwrap();
    c.delete_secret("old").await.unwrap();
    clock.advance(3 * 86_400);
    c.delete_secret("young").await.unwrap();
    clock.advance(4 * 86_400);
    // "old" reached its scheduled purge date; "young" has 3 days left.
    let purged = kvault::server::sweeper::sweep_once(v.state.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        c.get_deleted_secret("old").await.unwrap_err().status(),
        Some(404)
    );
    assert!(c.get_deleted_secret("young").await.is_ok());
    c.set_secret("old", &set("reborn")).await.unwrap();
    v.stop().await;
}

#[tokio::test]
async fn paging_beyond_one_page() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    for i in 0..30 {
        c.set_secret(&format!("s{i:02}"), &set("v")).await.unwrap();
    }
    for _ in 0..27 {
        c.set_secret("many", &set("v")).await.unwrap();
    }
    assert_eq!(c.list_secrets().await.unwrap().len(), 31);
    let versions = c.list_secret_versions("many").await.unwrap();
    let mut ids: Vec<String> = versions.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 27);

    // The first page has 25 items and a nextLink on the vault's origin; maxresults works.
    let http = v.http();
    let page: Value = http
        .get(v.at("/secrets?api-version=7.4"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["value"].as_array().unwrap().len(), 25);
    let next = page["nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/secrets?", v.url)), "{next}");
    let page: Value = http
        .get(v.at("/secrets?api-version=7.4&maxresults=10"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["value"].as_array().unwrap().len(), 10);
    // Deleted listing pages too.
    for i in 0..26 {
        c.delete_secret(&format!("s{i:02}")).await.unwrap();
    }
    assert_eq!(c.list_deleted_secrets().await.unwrap().len(), 26);
    v.stop().await;
}

#[tokio::test]
async fn backup_restore_and_foreign_or_tampered_blobs() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let c = v.client();
    c.set_secret("b", &set("one")).await.unwrap();
    c.set_secret("b", &set("two")).await.unwrap();
    let blob = c.backup_secret("b").await.unwrap();
    assert!(!blob.contains(['+', '/', '=']));

    // Restore refuses while the name exists (live or deleted).
    let e = c.restore_secret(&blob).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("Conflict")));
    c.delete_secret("b").await.unwrap();
    let e = c.restore_secret(&blob).await.unwrap_err();
    assert_eq!(e.status(), Some(409));
    c.purge_deleted_secret("b").await.unwrap();

    let restored = c.restore_secret(&blob).await.unwrap();
    assert!(restored.value.is_none());
    assert_eq!(
        c.get_secret("b", None).await.unwrap().value.as_deref(),
        Some("two")
    );
    let versions = c.list_secret_versions("b").await.unwrap();
    assert_eq!(versions.len(), 2);
    let first = version_of(&versions[0].id);
    assert_eq!(
        c.get_secret("b", Some(&first))
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("one")
    );

    // A flipped character anywhere is refused with 400.
    let mut chars: Vec<char> = blob.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    c.delete_secret("b").await.unwrap();
    c.purge_deleted_secret("b").await.unwrap();
    let e = c.restore_secret(&tampered).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(400), Some("BadParameter")));
    let e = c.restore_secret("not-a-backup").await.unwrap_err();
    assert_eq!(e.status(), Some(400));

    // A vault with another master key refuses the blob.
    let other = Fixture::new();
    let ov = other.start(Options::default()).await;
    let e = ov.client().restore_secret(&blob).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(400), Some("BadParameter")));
    ov.stop().await;
    v.stop().await;
}

#[tokio::test]
async fn responses_carry_request_ids_and_the_wire_shapes() {
    let fx = Fixture::new();
    let v = fx.start(Options::default()).await;
    let http = v.http();
    let r = http
        .put(v.at("/secrets/shape?api-version=2026-04-01"))
        .bearer_auth(&v.token)
        .header("x-ms-client-request-id", "abc-123")
        .json(&serde_json::json!({"value": "v", "tags": {"t": "1"}, "contentType": "text/plain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("x-ms-request-id"));
    assert_eq!(r.headers()["x-ms-client-request-id"], "abc-123");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["value"], "v");
    assert_eq!(body["contentType"], "text/plain");
    assert_eq!(body["tags"]["t"], "1");
    assert_eq!(body["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
    assert!(body["attributes"]["created"].is_i64());
    assert!(body.get("kid").is_none());

    // GET with no trailing slash is the latest version too; health needs no token.
    let r = http
        .get(v.at("/secrets/shape?api-version=7.0"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http.get(v.at("/_kvault/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    v.stop().await;
}
