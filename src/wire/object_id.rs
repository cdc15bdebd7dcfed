//! Object identifiers as the API returns them: `https://{vault}/{collection}/{name}[/{version}]`
//! (`id` of secrets and certificates, `kid` of keys), parsed once instead of split by hand.

/// The parts of an object identifier. `version` is `None` for an unversioned id (items of
/// deleted-object listings, a certificate's `kid` before issuance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectId<'a> {
    /// `https://host[:port]`.
    pub origin: &'a str,
    /// `secrets`, `keys`, `certificates`, or their `deleted…` forms.
    pub collection: &'a str,
    pub name: &'a str,
    pub version: Option<&'a str>,
}

const COLLECTIONS: &[&str] = &[
    "secrets",
    "keys",
    "certificates",
    "deletedsecrets",
    "deletedkeys",
    "deletedcertificates",
];

impl<'a> ObjectId<'a> {
    /// `None` unless `id` is an absolute URL whose path is a collection, a name and at most
    /// a version (one trailing slash allowed).
    pub fn parse(id: &'a str) -> Option<ObjectId<'a>> {
        let scheme_end = id.find("://")? + 3;
        let path_start = scheme_end + id.get(scheme_end..)?.find('/')?;
        let origin = id.get(..path_start)?;
        let path = id.get(path_start + 1..)?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut segments = path.split('/');
        let collection = segments.next()?;
        let name = segments.next().filter(|n| !n.is_empty())?;
        let version = segments.next().filter(|v| !v.is_empty());
        if segments.next().is_some()
            || !COLLECTIONS
                .iter()
                .any(|c| c.eq_ignore_ascii_case(collection))
        {
            return None;
        }
        Some(ObjectId {
            origin,
            collection,
            name,
            version,
        })
    }

    /// The object's name, or `id` itself when it is not an object identifier (for display).
    pub fn name_of(id: &str) -> &str {
        ObjectId::parse(id).map_or(id, |o| o.name)
    }

    /// The version an identifier names, if any.
    pub fn version_of(id: &str) -> Option<&str> {
        ObjectId::parse(id).and_then(|o| o.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_into_their_parts() {
        let id = ObjectId::parse("https://v.example:8443/secrets/db/0123abc").unwrap();
        assert_eq!(
            id,
            ObjectId {
                origin: "https://v.example:8443",
                collection: "secrets",
                name: "db",
                version: Some("0123abc"),
            }
        );
        assert_eq!(
            ObjectId::version_of("https://v/keys/a/0123abc/"),
            Some("0123abc")
        );
        assert_eq!(ObjectId::version_of("https://v/deletedkeys/a"), None);
        assert_eq!(ObjectId::name_of("https://v/deletedcertificates/c"), "c");
        assert_eq!(ObjectId::name_of("https://v/certificates/c/"), "c");
    }

    #[test]
    fn other_urls_are_not_object_ids() {
        for id in [
            "db",
            "https://v",
            "https://v/",
            "https://v/secrets",
            "https://v/secrets/",
            "https://v/secrets/a/b/c",
            "https://v/certificates/issuers/x/y",
            "https://v/other/a",
        ] {
            assert_eq!(ObjectId::parse(id), None, "{id}");
        }
        assert_eq!(ObjectId::name_of("db"), "db");
    }
}
