//! Bulk selection of secrets from a vault's listing — by name prefix, by tags, or both —
//! and the rule that turns a selected secret's name into a key (a Secret key for a
//! `SecretSync`, a file name for a CSI mount). Pure: the listing comes in, the choice goes
//! out; the operator and the provider share it so that one selector means the same in both.
//!
//! All or nothing: a selection that matches more than its bound is an error, never a
//! partial result, because a Secret or a mount missing some of "every secret tagged
//! app=web" is worse than none.

use crate::wire::object_id::ObjectId;
use crate::wire::secrets::SecretItem;
use std::collections::BTreeMap;

/// How a selected secret's name becomes a key.
#[derive(
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    schemars::JsonSchema,
)]
pub enum KeyNaming {
    /// The secret's name as it is.
    #[default]
    Name,
    /// The name without the selector's prefix.
    StripPrefix,
    /// Upper case with `-` as `_` (`db-password` → `DB_PASSWORD`), for `envFrom`.
    EnvVar,
}

impl KeyNaming {
    pub const ALL: [KeyNaming; 3] = [KeyNaming::Name, KeyNaming::StripPrefix, KeyNaming::EnvVar];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyNaming::Name => "Name",
            KeyNaming::StripPrefix => "StripPrefix",
            KeyNaming::EnvVar => "EnvVar",
        }
    }

    /// Parses a rule as written (case-insensitive).
    pub fn parse(s: &str) -> Option<KeyNaming> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// What to take from a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Names starting with this, ignoring case (vault names compare case-insensitively).
    pub name_prefix: Option<String>,
    /// Every one of these tags with exactly this value.
    pub tags: BTreeMap<String, String>,
    pub key_naming: KeyNaming,
    /// Put before every key after naming.
    pub key_prefix: Option<String>,
    /// The most secrets the selector may take.
    pub max_objects: usize,
}

/// One selected secret: its name in the vault and the key it is written under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error(
        "{what} matches {matched} secrets; at most {max} are taken (narrow it or raise its maximum)"
    )]
    TooMany {
        what: String,
        matched: usize,
        max: usize,
    },
    #[error("{what}: secret '{name}' would get an empty key under {rule}")]
    EmptyKey {
        what: String,
        name: String,
        rule: &'static str,
    },
    #[error("tag selector '{0}' is not key=value pairs separated by commas")]
    BadTags(String),
}

impl Selector {
    /// Describes the selector for messages (names and tags, never values).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.name_prefix {
            parts.push(format!("prefix '{p}'"));
        }
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("tags {}", tags.join(",")));
        }
        match parts.is_empty() {
            true => "the selector of all secrets".into(),
            false => format!("the selector of {}", parts.join(" and ")),
        }
    }

    /// Whether a listed secret is taken. Disabled secrets cannot be read and are left
    /// out; so are the secrets behind certificates (`managed`), which hold private keys
    /// and are named explicitly when wanted.
    pub fn matches(&self, name: &str, item: &SecretItem) -> bool {
        if item.attributes.enabled == Some(false) || item.managed == Some(true) {
            return false;
        }
        if let Some(p) = &self.name_prefix
            && !starts_with_ignore_case(name, p)
        {
            return false;
        }
        self.tags.iter().all(|(k, v)| {
            item.tags
                .as_ref()
                .and_then(|t| t.get(k))
                .is_some_and(|have| have == v)
        })
    }

    /// The key of a selected secret's name.
    pub fn key_for(&self, name: &str) -> Result<String, SelectError> {
        let base = match self.key_naming {
            KeyNaming::Name => name.to_string(),
            KeyNaming::StripPrefix => {
                let cut = self
                    .name_prefix
                    .as_deref()
                    .filter(|p| starts_with_ignore_case(name, p))
                    .map_or(0, str::len);
                name[cut..].trim_start_matches('-').to_string()
            }
            KeyNaming::EnvVar => env_var_name(name),
        };
        if base.is_empty() {
            return Err(SelectError::EmptyKey {
                what: self.describe(),
                name: name.to_string(),
                rule: self.key_naming.as_str(),
            });
        }
        Ok(format!(
            "{}{base}",
            self.key_prefix.as_deref().unwrap_or("")
        ))
    }

    /// The secrets of `listing` this selector takes, in name order, each with its key.
    pub fn select(&self, listing: &[SecretItem]) -> Result<Vec<Selected>, SelectError> {
        let mut names: Vec<&str> = listing
            .iter()
            .filter_map(|item| {
                let name = ObjectId::parse(&item.id)?.name;
                self.matches(name, item).then_some(name)
            })
            .collect();
        names.sort_by_key(|n| n.to_ascii_lowercase());
        names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        if names.len() > self.max_objects {
            return Err(SelectError::TooMany {
                what: self.describe(),
                matched: names.len(),
                max: self.max_objects,
            });
        }
        names
            .into_iter()
            .map(|name| {
                Ok(Selected {
                    name: name.to_string(),
                    key: self.key_for(name)?,
                })
            })
            .collect()
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `db-password` → `DB_PASSWORD`; a leading digit gets a `_` before it, since an
/// environment variable's name cannot start with one.
pub fn env_var_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A tag selector as one string, `app=web,tier=front` (the provider's parameters are
/// strings). Whitespace around keys and values is ignored; an empty string selects no tag.
pub fn parse_tags(s: &str) -> Result<BTreeMap<String, String>, SelectError> {
    let mut tags = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| SelectError::BadTags(s.to_string()))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || tags.insert(k.to_string(), v.to_string()).is_some() {
            return Err(SelectError::BadTags(s.to_string()));
        }
    }
    if tags.len() > crate::wire::MAX_TAGS {
        return Err(SelectError::BadTags(s.to_string()));
    }
    Ok(tags)
}

/// A listed secret with these tags, enabled (for the tests of every selection's user).
#[cfg(test)]
pub(crate) fn listed(name: &str, tags: &[(&str, &str)]) -> SecretItem {
    SecretItem {
        id: format!("https://v.example/secrets/{name}"),
        attributes: crate::wire::secrets::SecretAttributes {
            enabled: Some(true),
            ..Default::default()
        },
        tags: (!tags.is_empty()).then(|| {
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        content_type: None,
        managed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::listed as item;

    fn selector(prefix: Option<&str>, tags: &[(&str, &str)], naming: KeyNaming) -> Selector {
        Selector {
            name_prefix: prefix.map(String::from),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            key_naming: naming,
            key_prefix: None,
            max_objects: 100,
        }
    }

    fn keys(s: &Selector, listing: &[SecretItem]) -> Vec<(String, String)> {
        s.select(listing)
            .unwrap()
            .into_iter()
            .map(|x| (x.name, x.key))
            .collect()
    }

    #[test]
    fn a_prefix_selects_ignoring_case_and_keys_follow_the_rule() {
        let listing = [
            item("web-db", &[]),
            item("Web-Api", &[]),
            item("worker-db", &[]),
            item("web", &[]),
        ];
        let s = selector(Some("web-"), &[], KeyNaming::Name);
        assert_eq!(
            keys(&s, &listing),
            vec![
                ("Web-Api".into(), "Web-Api".into()),
                ("web-db".into(), "web-db".into())
            ]
        );
        let s = selector(Some("web-"), &[], KeyNaming::StripPrefix);
        assert_eq!(
            keys(&s, &listing),
            vec![
                ("Web-Api".into(), "Api".into()),
                ("web-db".into(), "db".into())
            ]
        );
        let s = selector(Some("WEB"), &[], KeyNaming::EnvVar);
        assert_eq!(
            keys(&s, &listing),
            vec![
                ("web".into(), "WEB".into()),
                ("Web-Api".into(), "WEB_API".into()),
                ("web-db".into(), "WEB_DB".into())
            ]
        );
    }

    #[test]
    fn strip_prefix_refuses_a_name_that_is_only_the_prefix() {
        let s = selector(Some("web"), &[], KeyNaming::StripPrefix);
        let err = s
            .select(&[item("web", &[]), item("web-a", &[])])
            .unwrap_err();
        assert!(matches!(err, SelectError::EmptyKey { ref name, .. } if name == "web"));
        assert!(err.to_string().contains("StripPrefix"), "{err}");
    }

    #[test]
    fn tags_must_all_match_exactly() {
        let listing = [
            item("a", &[("app", "web"), ("tier", "front")]),
            item("b", &[("app", "web")]),
            item("c", &[("app", "Web"), ("tier", "front")]),
            item("d", &[]),
        ];
        let s = selector(None, &[("app", "web"), ("tier", "front")], KeyNaming::Name);
        assert_eq!(keys(&s, &listing), vec![("a".into(), "a".into())]);
        let s = selector(None, &[("app", "web")], KeyNaming::Name);
        assert_eq!(keys(&s, &listing).len(), 2);
        let all = selector(None, &[], KeyNaming::Name);
        assert_eq!(keys(&all, &listing).len(), 4);
    }

    #[test]
    fn disabled_and_certificate_backed_secrets_are_left_out() {
        let mut disabled = item("off", &[]);
        disabled.attributes.enabled = Some(false);
        let mut managed = item("tls", &[]);
        managed.managed = Some(true);
        let s = selector(None, &[], KeyNaming::Name);
        assert_eq!(
            keys(&s, &[disabled, managed, item("on", &[])]),
            vec![("on".into(), "on".into())]
        );
    }

    #[test]
    fn more_than_the_bound_is_an_error_not_a_part() {
        let listing: Vec<SecretItem> = (0..5).map(|i| item(&format!("s-{i}"), &[])).collect();
        let mut s = selector(Some("s-"), &[], KeyNaming::Name);
        s.max_objects = 5;
        assert_eq!(s.select(&listing).unwrap().len(), 5);
        s.max_objects = 4;
        let err = s.select(&listing).unwrap_err();
        assert_eq!(
            err,
            SelectError::TooMany {
                what: "the selector of prefix 's-'".into(),
                matched: 5,
                max: 4
            }
        );
    }

    #[test]
    fn the_key_prefix_comes_after_naming() {
        let mut s = selector(Some("db-"), &[], KeyNaming::EnvVar);
        s.key_prefix = Some("APP_".into());
        assert_eq!(s.key_for("db-user").unwrap(), "APP_DB_USER");
        s.key_naming = KeyNaming::StripPrefix;
        assert_eq!(s.key_for("db-user").unwrap(), "APP_user");
    }

    #[test]
    fn env_var_names_never_start_with_a_digit() {
        assert_eq!(env_var_name("1st-key"), "_1ST_KEY");
        assert_eq!(env_var_name("a-b-c"), "A_B_C");
    }

    #[test]
    fn unparsable_ids_are_skipped() {
        let mut bad = item("x", &[]);
        bad.id = "not a url".into();
        let s = selector(None, &[], KeyNaming::Name);
        assert!(s.select(&[bad]).unwrap().is_empty());
    }

    #[test]
    fn tag_strings_parse_and_refuse_junk() {
        assert_eq!(
            parse_tags(" app = web , tier=front ").unwrap(),
            BTreeMap::from([
                ("app".to_string(), "web".to_string()),
                ("tier".to_string(), "front".to_string())
            ])
        );
        assert!(parse_tags("").unwrap().is_empty());
        assert!(parse_tags("app").is_err());
        assert!(parse_tags("=web").is_err());
        assert!(parse_tags("a=1,a=2").is_err());
        assert_eq!(parse_tags("empty=").unwrap()["empty"], "");
    }

    #[test]
    fn rules_parse_case_insensitively() {
        assert_eq!(KeyNaming::parse("envvar"), Some(KeyNaming::EnvVar));
        assert_eq!(
            KeyNaming::parse("StripPrefix"),
            Some(KeyNaming::StripPrefix)
        );
        assert_eq!(KeyNaming::parse("upper"), None);
    }
}
