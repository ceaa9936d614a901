//! Partial updates (PATCH bodies, draft edits): an absent field keeps the stored value. A field that
//! may be cleared is `Option<Option<T>>`, with `null` clearing it ([`nullable`]); every other field
//! refuses `null` ([`not_null`]) rather than reading it as "keep", so a client that meant to clear a
//! required field learns it cannot instead of getting a 200 that changed nothing.

use serde::{Deserialize, Deserializer};

/// For `#[serde(default, deserialize_with = "not_null")]` on an `Option<T>`: absent is `None`,
/// `null` is an error naming the field.
pub fn not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// For `#[serde(default, deserialize_with = "nullable")]` on an `Option<Option<T>>`: absent is
/// `None`, `null` is `Some(None)`.
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Changes {
        #[serde(default, deserialize_with = "not_null")]
        name: Option<String>,
        #[serde(default, deserialize_with = "nullable")]
        note: Option<Option<String>>,
    }

    fn parse(json: &str) -> Result<Changes, String> {
        serde_json::from_str(json).map_err(|err| err.to_string())
    }

    #[test]
    fn absent_fields_are_kept_and_null_clears_only_what_may_be_cleared() {
        let absent = parse("{}").expect("absent");
        assert_eq!((absent.name, absent.note), (None, None));
        let given = parse(r#"{"name": "a", "note": "b"}"#).expect("given");
        assert_eq!(given.name.as_deref(), Some("a"));
        assert_eq!(given.note, Some(Some("b".to_owned())));
        assert_eq!(
            parse(r#"{"note": null}"#).expect("cleared").note,
            Some(None)
        );
        let refused = parse(r#"{"name": null}"#).expect_err("null name");
        assert!(refused.contains("invalid type: null"), "{refused}");
    }
}
