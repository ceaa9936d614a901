//! Whether a desired object must be applied: only when the live object lacks something the
//! operator wants (a missing object, a field changed by hand). The server fills in defaults, so the
//! live object may hold more than the desired one; a reconcile that finds every desired field in
//! place sends no write at all.

use serde_json::Value;

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
    fn empty_desired_fields_match_absent_ones_and_numbers_match_by_value() {
        let desired =
            json!({"metadata": {"annotations": {}}, "spec": {"limit": 2.0, "optional": null}});
        assert!(!needs_apply(&desired, Some(&json!({"spec": {"limit": 2}}))));
    }
}
