//! The operator's RBAC in the chart (read from manifests/install.yaml, which a drift test keeps
//! equal to the chart rendered) lets it manage every kind a stack owns, and its stacks' status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flashcards_operator::owned::OwnedKind;
use serde::Deserialize;
use serde_yaml::Value;

const MANAGING: [&str; 6] = ["get", "list", "watch", "create", "patch", "delete"];

fn cluster_role_rules() -> Vec<Value> {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/install.yaml"
    ))
    .unwrap();
    serde_yaml::Deserializer::from_str(&manifest)
        .map(|document| Value::deserialize(document).unwrap())
        .find(|object| {
            object["kind"] == "ClusterRole" && object["metadata"]["name"] == "flashcards-operator"
        })
        .expect("the operator's ClusterRole")["rules"]
        .as_sequence()
        .unwrap()
        .clone()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether some rule grants every verb of `verbs` on `group`/`resource`.
fn granted(rules: &[Value], group: &str, resource: &str, verbs: &[&str]) -> bool {
    rules.iter().any(|rule| {
        strings(&rule["apiGroups"]).contains(&group)
            && strings(&rule["resources"]).contains(&resource)
            && verbs
                .iter()
                .all(|verb| strings(&rule["verbs"]).contains(verb))
    })
}

#[test]
fn the_operator_may_manage_every_kind_it_owns() {
    let rules = cluster_role_rules();
    for &kind in OwnedKind::ALL {
        let resource = kind.resource();
        assert!(
            granted(&rules, &resource.group, &resource.plural, &MANAGING),
            "the chart's RBAC does not let the operator manage {} ({}/{})",
            resource.kind,
            resource.group,
            resource.plural
        );
    }
    assert!(granted(
        &rules,
        "flashcards.dev",
        "flashcardstacks",
        &["get", "list", "watch"]
    ));
    assert!(granted(
        &rules,
        "flashcards.dev",
        "flashcardstacks/status",
        &["patch"]
    ));
}

#[test]
fn a_kind_the_rules_leave_out_is_caught() {
    let rules = cluster_role_rules();
    assert!(
        !granted(&rules, "", "secrets", &["get"]),
        "it never reads Secrets"
    );
    assert!(!granted(&rules, "apps", "statefulsets", &MANAGING));
}
