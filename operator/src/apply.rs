//! Whether a desired object must be applied: only when the live object lacks something the
//! operator wants (a missing object, a field changed by hand, or a changed desired object, which its
//! fingerprint annotation tells). The server fills in defaults, so the live object may hold more
//! than the desired one; a reconcile that finds every desired field in place sends no write at all.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The annotation holding the fingerprint of the desired object last applied.
pub const APPLIED: &str = "flashcards.dev/applied";

/// `desired` with the fingerprint of its own content in the [`APPLIED`] annotation. Dropping a
/// field from the desired object (a monitoring label, a component's resources) changes the
/// fingerprint, so the object is applied again, and server-side apply, under the one field manager,
/// removes the field the operator no longer sets; the containment check alone would never see it.
pub fn fingerprinted(mut desired: Value) -> Value {
    let digest = Sha256::digest(desired.to_string().as_bytes());
    let fingerprint: String = digest[..12]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if let Some(metadata) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !annotations.is_object() {
            *annotations = Value::Object(Map::new());
        }
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(APPLIED.to_owned(), Value::String(fingerprint));
        }
    }
    desired
}

/// Strings longer than this are kept as their digest in the watch caches (dashboards' JSON in
/// ConfigMaps, mostly): a hundred stacks' dashboards would otherwise be most of the operator's
/// memory.
pub const CONDENSE_OVER: usize = 1024;

/// `value` with every string longer than [`CONDENSE_OVER`] bytes replaced by `sha256:` and its
/// digest. Applied to a cached live object and to the desired one before they are compared,
/// equal strings stay equal and a changed one still differs.
pub fn condense(value: &mut Value) {
    match value {
        Value::String(text) if text.len() > CONDENSE_OVER => {
            let digest = Sha256::digest(text.as_bytes());
            let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            *text = format!("sha256:{hex}");
        }
        Value::Array(items) => items.iter_mut().for_each(condense),
        Value::Object(map) => map.values_mut().for_each(condense),
        _ => {}
    }
}

/// `true` when `live` is absent or does not contain every field of `desired` with the same value.
pub fn needs_apply(desired: &Value, live: Option<&Value>) -> bool {
    live.is_none_or(|live| !contains(live, desired))
}

/// Whether `whole` holds `part`: objects by key (extra keys allowed), arrays element by element
/// (same length, since a shorter list is a change), anything else by equality. Numbers compare by
/// value, so `1` and `1.0` agree.
pub fn contains(whole: &Value, part: &Value) -> bool {
    match (whole, part) {
        (Value::Object(whole), Value::Object(part)) => part.iter().all(|(key, value)| {
            match whole.get(key) {
                Some(found) => contains(found, value),
                // An absent field equals an empty or null desired one.
                None => is_empty(value),
            }
        }),
        (Value::Array(whole), Value::Array(part)) => {
            whole.len() == part.len() && whole.iter().zip(part).all(|(w, p)| contains(w, p))
        }
        (Value::Number(whole), Value::Number(part)) => whole.as_f64() == part.as_f64(),
        _ => whole == part,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().all(is_empty),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_defaults_do_not_count_as_changes() {
        let desired = json!({"spec": {"replicas": 1, "template": {"containers": [{"name": "ocr", "image": "a:1"}]}}});
        let live = json!({"metadata": {"resourceVersion": "9"}, "spec": {"replicas": 1, "progressDeadlineSeconds": 600,
            "template": {"containers": [{"name": "ocr", "image": "a:1", "terminationMessagePath": "/dev/termination-log"}]}}});
        assert!(!needs_apply(&desired, Some(&live)));
    }

    #[test]
    fn hand_edits_missing_objects_and_list_changes_do() {
        let desired = json!({"spec": {"replicas": 1, "ports": [{"name": "http"}]}});
        assert!(needs_apply(&desired, None));
        assert!(needs_apply(
            &desired,
            Some(&json!({"spec": {"replicas": 5, "ports": [{"name": "http"}]}}))
        ));
        assert!(needs_apply(
            &desired,
            Some(&json!({"spec": {"replicas": 1, "ports": []}}))
        ));
        assert!(needs_apply(
            &desired,
            Some(&json!({"spec": {"replicas": 1, "ports": [{"name": "http"}, {"name": "extra"}]}}))
        ));
    }

    #[test]
    fn a_field_dropped_from_the_desired_object_is_applied_again() {
        let before = fingerprinted(json!({
            "metadata": {"name": "study-backend", "labels": {"release": "prom", "app": "backend"}},
            "spec": {"interval": "30s"}
        }));
        let after = fingerprinted(json!({
            "metadata": {"name": "study-backend", "labels": {"app": "backend"}},
            "spec": {"interval": "30s"}
        }));
        assert_ne!(
            before["metadata"]["annotations"][APPLIED],
            after["metadata"]["annotations"][APPLIED]
        );
        // The live object as the last apply left it, with a server default.
        let mut live = before.clone();
        live["spec"]["scheme"] = json!("http");
        assert!(
            !needs_apply(&before, Some(&live)),
            "nothing changed: no write"
        );
        assert!(needs_apply(&after, Some(&live)), "the label must go");
    }

    #[test]
    fn the_fingerprint_depends_only_on_the_content() {
        let object = || json!({"metadata": {"name": "a", "annotations": null}, "spec": {"x": 1}});
        let first = fingerprinted(object());
        assert_eq!(first, fingerprinted(object()));
        let fingerprint = first["metadata"]["annotations"][APPLIED]
            .as_str()
            .unwrap_or_default();
        assert_eq!(fingerprint.len(), 24);
        assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn empty_desired_fields_match_absent_ones_and_numbers_match_by_value() {
        let desired =
            json!({"metadata": {"annotations": {}}, "spec": {"limit": 2.0, "optional": null}});
        assert!(!needs_apply(&desired, Some(&json!({"spec": {"limit": 2}}))));
    }

    #[test]
    fn long_strings_compare_by_digest() {
        let dashboard = "{\"panels\": []}".repeat(200);
        let mut live = json!({"data": {"a.json": dashboard.clone(), "short": "x"}});
        condense(&mut live);
        assert_eq!(live["data"]["short"], "x");
        assert!(
            live["data"]["a.json"]
                .as_str()
                .is_some_and(|s| s.starts_with("sha256:"))
        );
        let mut same = json!({"data": {"a.json": dashboard.clone()}});
        condense(&mut same);
        assert!(!needs_apply(&same, Some(&live)));
        let mut changed = json!({"data": {"a.json": format!("{dashboard} ")}});
        condense(&mut changed);
        assert!(needs_apply(&changed, Some(&live)));
    }
}
