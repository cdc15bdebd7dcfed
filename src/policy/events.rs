//! Event notifications as the policy document holds them: subscriptions (HTTPS webhooks
//! that receive CloudEvents with the cloud key vault's event types), their filters and the
//! near-expiry threshold. Pure: the server delivers, the operator compiles, nothing here
//! does I/O.
//!
//! The authentication header's value is write-only: `PolicyDocument::redacted` drops it
//! (what `GET /_kvault/policy` returns), a push that omits it keeps the stored one
//! (`PolicyDocument::keep_header_values_from`), and no `Debug` form shows it.

use super::error::PolicyError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Subscriptions per vault.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// The cloud's threshold: near-expiry events 30 days before expiry.
pub const DEFAULT_NEAR_EXPIRY_DAYS: u32 = 30;
pub const MAX_NEAR_EXPIRY_DAYS: u32 = 365;
/// How long an undelivered event may wait at most (a week).
pub const MAX_TTL_MINUTES: u32 = 7 * 24 * 60;
pub const MAX_CA_BUNDLE_BYTES: usize = 64 * 1024;
const MAX_ENDPOINT_LEN: usize = 2048;
const MAX_SUBJECT_PREFIX_LEN: usize = 256;
const MAX_HEADER_VALUE_LEN: usize = 4096;

/// The `events` section of the policy document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSettings {
    /// Days before a current version's expiry from which it is near expiry (default 30, as
    /// in the cloud); each subscription may ask for another number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near_expiry_days: Option<u32>,
    #[serde(default)]
    pub subscriptions: Vec<EventSubscription>,
}

/// One webhook: where events go and which ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSubscription {
    /// Unique in the vault (a DNS label); dead letters and metrics name it.
    pub name: String,
    /// An `https://` URL; events are POSTed there.
    pub endpoint: String,
    /// Event types delivered (full `Microsoft.KeyVault.…` names or the short ones); empty:
    /// all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_event_types: Vec<EventType>,
    /// Only events whose subject (the object's name) starts with this, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_begins_with: Option<String>,
    /// A header sent with every delivery (e.g. `Authorization: Bearer …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<AuthHeader>,
    /// This subscription's near-expiry threshold (default: the section's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near_expiry_days: Option<u32>,
    /// PEM certificates trusted for the endpoint instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// How long an event may wait for a 2xx before it is dead-lettered (default: the
    /// server's setting, 24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<u32>,
}

/// A header name and its (write-only) value.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthHeader {
    pub name: String,
    /// Absent when read back; absent in a push: keep the stored value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<HeaderSecret>,
}

impl std::fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHeader")
            .field("name", &self.name)
            .field("value", &self.value)
            .finish()
    }
}

/// A header value: wiped on drop, never shown by `Debug`.
#[derive(Clone, PartialEq)]
pub struct HeaderSecret(Zeroizing<String>);

impl HeaderSecret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }
    /// The value itself: for the delivery request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HeaderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for HeaderSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HeaderSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(Zeroizing::new(String::deserialize(d)?)))
    }
}

/// What happened to an object (or the vault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Occurrence {
    NewVersionCreated,
    NearExpiry,
    Expired,
}

/// The object families events are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventObject {
    Secret,
    Key,
    Certificate,
}

impl EventObject {
    /// The data's `ObjectType`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventObject::Secret => "Secret",
            EventObject::Key => "Key",
            EventObject::Certificate => "Certificate",
        }
    }
}

macro_rules! event_types {
    ($($variant:ident),* $(,)?) => {
        /// The cloud key vault's event types (Event Grid names).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The full name, e.g. `Microsoft.KeyVault.SecretNearExpiry`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => concat!("Microsoft.KeyVault.", stringify!($variant)),)*
                }
            }

            /// The short name, e.g. `SecretNearExpiry`.
            pub fn short(self) -> &'static str {
                match self {
                    $(EventType::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

event_types!(
    SecretNewVersionCreated,
    SecretNearExpiry,
    SecretExpired,
    KeyNewVersionCreated,
    KeyNearExpiry,
    KeyExpired,
    CertificateNewVersionCreated,
    CertificateNearExpiry,
    CertificateExpired,
    VaultAccessPolicyChanged,
);

impl EventType {
    /// A full or short name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        let short = match s.get(..19) {
            Some(p) if p.eq_ignore_ascii_case("Microsoft.KeyVault.") => &s[19..],
            _ => s,
        };
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.short().eq_ignore_ascii_case(short))
    }

    pub fn for_object(object: EventObject, what: Occurrence) -> Self {
        use EventObject as O;
        use Occurrence as W;
        match (object, what) {
            (O::Secret, W::NewVersionCreated) => Self::SecretNewVersionCreated,
            (O::Secret, W::NearExpiry) => Self::SecretNearExpiry,
            (O::Secret, W::Expired) => Self::SecretExpired,
            (O::Key, W::NewVersionCreated) => Self::KeyNewVersionCreated,
            (O::Key, W::NearExpiry) => Self::KeyNearExpiry,
            (O::Key, W::Expired) => Self::KeyExpired,
            (O::Certificate, W::NewVersionCreated) => Self::CertificateNewVersionCreated,
            (O::Certificate, W::NearExpiry) => Self::CertificateNearExpiry,
            (O::Certificate, W::Expired) => Self::CertificateExpired,
        }
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventType::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown event type '{s}': use one of {}",
                EventType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

fn err(s: impl Into<String>) -> PolicyError {
    PolicyError(s.into())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An HTTP header name (RFC 9110 token) that a delivery may set.
fn valid_header_name(s: &str) -> bool {
    const RESERVED: [&str; 7] = [
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
    ];
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
        && !s.to_ascii_lowercase().starts_with("ce-")
}

fn valid_header_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HEADER_VALUE_LEN
        && s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

impl EventSubscription {
    /// Whether this subscription takes events of type `t` about `subject`.
    pub fn wants(&self, t: EventType, subject: &str) -> bool {
        let type_ok =
            self.included_event_types.is_empty() || self.included_event_types.contains(&t);
        let subject_ok = match self.subject_begins_with.as_deref() {
            None | Some("") => true,
            Some(prefix) => subject
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
        };
        type_ok && subject_ok
    }

    /// Seconds before expiry from which a version is near expiry for this subscription.
    pub fn near_expiry_secs(&self, settings: &EventSettings) -> i64 {
        i64::from(self.near_expiry_days.unwrap_or(settings.near_expiry_days())) * 86_400
    }

    fn validate(&self) -> Result<(), PolicyError> {
        let n = &self.name;
        if !is_dns_label(n) {
            return Err(err(format!(
                "event subscription name '{n}' must be a DNS label (a-z, 0-9, '-', at most 63)"
            )));
        }
        if self.endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(err(format!(
                "event subscription '{n}': endpoint is too long"
            )));
        }
        let url = reqwest::Url::parse(&self.endpoint)
            .map_err(|_| err(format!("event subscription '{n}': endpoint is not a URL")))?;
        if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
            return Err(err(format!(
                "event subscription '{n}': endpoint must be an https:// URL with a host"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err(format!(
                "event subscription '{n}': put credentials in authHeader, not in the endpoint URL"
            )));
        }
        if self
            .subject_begins_with
            .as_ref()
            .is_some_and(|p| p.len() > MAX_SUBJECT_PREFIX_LEN)
        {
            return Err(err(format!(
                "event subscription '{n}': subjectBeginsWith is longer than {MAX_SUBJECT_PREFIX_LEN}"
            )));
        }
        if let Some(h) = &self.auth_header {
            if !valid_header_name(&h.name) {
                return Err(err(format!(
                    "event subscription '{n}': authHeader.name '{}' is not a header name a delivery may set",
                    h.name
                )));
            }
            // Never echo the value.
            if h.value
                .as_ref()
                .is_some_and(|v| !valid_header_value(v.expose()))
            {
                return Err(err(format!(
                    "event subscription '{n}': authHeader.value must be 1-{MAX_HEADER_VALUE_LEN} printable ASCII characters"
                )));
            }
        }
        if let Some(d) = self.near_expiry_days {
            check_days(d, &format!("event subscription '{n}': nearExpiryDays"))?;
        }
        if let Some(t) = self.ttl_minutes
            && !(1..=MAX_TTL_MINUTES).contains(&t)
        {
            return Err(err(format!(
                "event subscription '{n}': ttlMinutes {t} is outside 1-{MAX_TTL_MINUTES}"
            )));
        }
        if let Some(pem) = &self.ca_bundle {
            if pem.len() > MAX_CA_BUNDLE_BYTES {
                return Err(err(format!(
                    "event subscription '{n}': caBundle is larger than {MAX_CA_BUNDLE_BYTES} bytes"
                )));
            }
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|_| {
                err(format!(
                    "event subscription '{n}': caBundle is not PEM certificates"
                ))
            })?;
            if certs.is_empty() {
                return Err(err(format!(
                    "event subscription '{n}': caBundle holds no certificate"
                )));
            }
        }
        Ok(())
    }
}

fn check_days(d: u32, what: &str) -> Result<(), PolicyError> {
    if (1..=MAX_NEAR_EXPIRY_DAYS).contains(&d) {
        Ok(())
    } else {
        Err(err(format!(
            "{what} {d} is outside 1-{MAX_NEAR_EXPIRY_DAYS}"
        )))
    }
}

impl EventSettings {
    pub fn near_expiry_days(&self) -> u32 {
        self.near_expiry_days.unwrap_or(DEFAULT_NEAR_EXPIRY_DAYS)
    }

    /// The subscriptions that take events of type `t` about `subject`.
    pub fn matching(
        &self,
        t: EventType,
        subject: &str,
    ) -> impl Iterator<Item = &EventSubscription> {
        self.subscriptions
            .iter()
            .filter(move |s| s.wants(t, subject))
    }

    pub fn subscription(&self, name: &str) -> Option<&EventSubscription> {
        self.subscriptions.iter().find(|s| s.name == name)
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.subscriptions.len() > MAX_SUBSCRIPTIONS {
            return Err(err(format!(
                "{} event subscriptions: a vault allows at most {MAX_SUBSCRIPTIONS}",
                self.subscriptions.len()
            )));
        }
        if let Some(d) = self.near_expiry_days {
            check_days(d, "events.nearExpiryDays")?;
        }
        for (i, s) in self.subscriptions.iter().enumerate() {
            s.validate()?;
            if self.subscriptions.iter().take(i).any(|o| o.name == s.name) {
                return Err(err(format!(
                    "event subscription name '{}' is used twice",
                    s.name
                )));
            }
        }
        Ok(())
    }
}

impl EventSettings {
    /// Drops every authentication-header value (what is shown and logged).
    pub fn redact(&mut self) {
        for s in &mut self.subscriptions {
            if let Some(h) = s.auth_header.as_mut() {
                h.value = None;
            }
        }
    }

    /// A subscription pushed without its header value keeps the value `stored` has for the
    /// same subscription and header name (so a document read back can be pushed again).
    pub fn keep_header_values_from(&mut self, stored: Option<&EventSettings>) {
        let stored_subs = stored
            .map(|e| e.subscriptions.as_slice())
            .unwrap_or_default();
        for s in &mut self.subscriptions {
            let Some(h) = s.auth_header.as_mut() else {
                continue;
            };
            if h.value.is_some() {
                continue;
            }
            h.value = stored_subs
                .iter()
                .filter(|o| o.name == s.name)
                .filter_map(|o| o.auth_header.as_ref())
                .find(|o| o.name.eq_ignore_ascii_case(&h.name))
                .and_then(|o| o.value.clone());
        }
    }

    /// The first subscription whose authentication header has no value.
    pub fn subscription_without_header_value(&self) -> Option<&str> {
        self.subscriptions
            .iter()
            .find(|s| s.auth_header.as_ref().is_some_and(|h| h.value.is_none()))
            .map(|s| s.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::PolicyDocument;
    use serde_json::json;

    fn doc(events: serde_json::Value) -> PolicyDocument {
        serde_json::from_value(json!({"generation": 1, "events": events})).unwrap()
    }

    fn sub(extra: serde_json::Value) -> serde_json::Value {
        let mut s = json!({"name": "ops", "endpoint": "https://hooks.example.test/kv"});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    }

    #[test]
    fn type_names_are_the_clouds_and_short_names_are_accepted() {
        assert_eq!(EventType::ALL.len(), 10);
        assert_eq!(
            EventType::SecretNearExpiry.as_str(),
            "Microsoft.KeyVault.SecretNearExpiry"
        );
        assert_eq!(
            EventType::parse("microsoft.keyvault.keyexpired"),
            Some(EventType::KeyExpired)
        );
        assert_eq!(
            EventType::parse("VaultAccessPolicyChanged"),
            Some(EventType::VaultAccessPolicyChanged)
        );
        assert_eq!(EventType::parse("SecretDeleted"), None);
        let t: Vec<EventType> =
            serde_json::from_value(json!(["CertificateNewVersionCreated"])).unwrap();
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!(["Microsoft.KeyVault.CertificateNewVersionCreated"])
        );
        assert!(serde_json::from_value::<Vec<EventType>>(json!(["Nope"])).is_err());
        assert_eq!(
            EventType::for_object(EventObject::Key, Occurrence::NearExpiry),
            EventType::KeyNearExpiry
        );
    }

    #[test]
    fn old_documents_without_events_still_parse_and_compile() {
        let d: PolicyDocument = serde_json::from_value(json!({"generation": 3})).unwrap();
        assert!(d.events.is_none());
        d.compile(&[]).unwrap();
        assert!(!serde_json::to_string(&d).unwrap().contains("events"));
    }

    #[test]
    fn filters_match_types_and_subject_prefixes_ignoring_case() {
        let d = doc(json!({"subscriptions": [
            sub(json!({"includedEventTypes": ["SecretNearExpiry", "SecretExpired"], "subjectBeginsWith": "DB-"})),
            sub(json!({"name": "all"})),
        ]}));
        let e = d.events.as_ref().unwrap();
        let names = |t, s| e.matching(t, s).map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(EventType::SecretNearExpiry, "db-password"),
            ["ops", "all"]
        );
        assert_eq!(names(EventType::SecretNearExpiry, "api-key"), ["all"]);
        assert_eq!(names(EventType::KeyNearExpiry, "db-key"), ["all"]);
        assert_eq!(names(EventType::SecretExpired, "d"), ["all"]);
    }

    #[test]
    fn near_expiry_days_default_to_the_clouds_thirty() {
        let d = doc(
            json!({"subscriptions": [sub(json!({})), sub(json!({"name": "b", "nearExpiryDays": 7}))]}),
        );
        let e = d.events.as_ref().unwrap();
        assert_eq!(e.subscriptions[0].near_expiry_secs(e), 30 * 86_400);
        assert_eq!(e.subscriptions[1].near_expiry_secs(e), 7 * 86_400);
        let d = doc(json!({"nearExpiryDays": 10, "subscriptions": [sub(json!({}))]}));
        let e = d.events.as_ref().unwrap();
        assert_eq!(e.subscriptions[0].near_expiry_secs(e), 10 * 86_400);
    }

    #[test]
    fn invalid_subscriptions_are_refused_without_echoing_header_values() {
        let bad = [
            sub(json!({"endpoint": "http://hooks.example.test/kv"})),
            sub(json!({"endpoint": "not a url"})),
            sub(json!({"endpoint": "https://user:pw@hooks.example.test/"})),
            sub(json!({"name": "Ops"})),
            sub(json!({"nearExpiryDays": 0})),
            sub(json!({"ttlMinutes": 0})),
            sub(json!({"caBundle": "not pem"})),
            sub(json!({"authHeader": {"name": "Host", "value": "x"}})),
            sub(json!({"authHeader": {"name": "bad name", "value": "x"}})),
            sub(json!({"authHeader": {"name": "Authorization", "value": "line\nbreak-s3cr3t"}})),
        ];
        for s in bad {
            let d = doc(json!({"subscriptions": [s.clone()]}));
            let e = d.compile(&[]).expect_err(&s.to_string());
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
        }
        let twice = doc(json!({"subscriptions": [sub(json!({})), sub(json!({}))]}));
        assert!(twice.compile(&[]).is_err());
        let many: Vec<_> = (0..17)
            .map(|i| sub(json!({"name": format!("s{i}")})))
            .collect();
        assert!(doc(json!({"subscriptions": many})).compile(&[]).is_err());
        doc(json!({"subscriptions": [sub(json!({"authHeader": {"name": "Authorization", "value": "Bearer x"}}))]}))
            .compile(&[])
            .unwrap();
    }

    #[test]
    fn the_example_policy_and_event_are_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events");
        let text = std::fs::read(dir.join("policy.json")).unwrap();
        let d: PolicyDocument = serde_json::from_slice(&text).unwrap();
        d.compile(&[]).unwrap();
        let e = d.events.as_ref().unwrap();
        assert_eq!(e.subscriptions.len(), 2);
        assert_eq!(
            e.matching(EventType::SecretNearExpiry, "db-password")
                .count(),
            2
        );
        assert_eq!(e.matching(EventType::SecretExpired, "api-key").count(), 1);
        // The example event is what the server sends.
        let event: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("event.json")).unwrap()).unwrap();
        let parsed: crate::server::events::CloudEvent =
            serde_json::from_value(event.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), event);
        assert!(EventType::parse(&parsed.type_).is_some());
    }

    #[test]
    fn header_values_are_write_only() {
        let stored = doc(
            json!({"subscriptions": [sub(json!({"authHeader": {"name": "Authorization", "value": "Bearer s3cr3t"}}))]}),
        );
        assert!(!format!("{stored:?}").contains("s3cr3t"));
        let shown = stored.redacted();
        assert!(!serde_json::to_string(&shown).unwrap().contains("s3cr3t"));
        assert_eq!(shown.subscription_without_header_value(), Some("ops"));
        // Pushed back as read: the stored value is kept.
        let mut again = shown.clone();
        again.keep_header_values_from(&stored);
        assert_eq!(again, stored);
        // Another header name does not inherit it.
        let mut renamed = shown;
        if let Some(h) = renamed.events.as_mut().unwrap().subscriptions[0]
            .auth_header
            .as_mut()
        {
            h.name = "X-Api-Key".into();
        }
        renamed.keep_header_values_from(&stored);
        assert_eq!(renamed.subscription_without_header_value(), Some("ops"));
    }
}
