//! The monitoring files checked by the real tools (Debian's `prometheus` and
//! `prometheus-alertmanager`, which `cargo xtask test` installs): promtool checks the rules and the
//! Prometheus configuration and runs the alert unit tests in monitoring/tests/, amtool checks the
//! Alertmanager configuration; the rules a stack's PrometheusRule carries pass promtool too, and
//! every alert's runbook exists.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use flashcards_operator::{
    FlashcardStack, FlashcardStackSpec,
    alerts::{self, Scope},
    builders::monitoring::prometheus_rule,
    crd::AlertThresholds,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Runs `program args…` and fails with its output unless it succeeds.
fn check(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo(""))
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "{program}: {err} (install Debian's prometheus and prometheus-alertmanager; \
                 `cargo xtask test` does)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{program} {args:?}:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_rules_and_the_prometheus_configuration() {
    let rules = check(
        "promtool",
        &["check", "rules", "monitoring/alert_rules.yml"],
    );
    assert!(rules.contains("SUCCESS: 9 rules found"), "{rules}");
    check(
        "promtool",
        &["check", "config", "monitoring/prometheus.yml"],
    );
}

#[test]
fn every_alert_fires_after_its_duration_and_only_above_its_threshold() {
    let tests = check(
        "promtool",
        &["test", "rules", "monitoring/tests/alert_rules_test.yml"],
    );
    assert!(tests.contains("SUCCESS"), "{tests}");
}

#[test]
fn amtool_accepts_the_alertmanager_configuration() {
    check("amtool", &["check-config", "monitoring/alertmanager.yml"]);
}

#[test]
fn a_stacks_prometheus_rule_passes_promtool() {
    let mut spec = FlashcardStackSpec::default();
    spec.monitoring
        .prometheus_rule
        .thresholds
        .error_rate_critical = 0.1;
    let mut stack = FlashcardStack::new("study", spec);
    stack.metadata.namespace = Some("flashcards".to_owned());
    let rule = prometheus_rule(&stack);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, serde_yaml::to_string(&rule.data["spec"]).unwrap()).unwrap();
    let checked = check("promtool", &["check", "rules", file.to_str().unwrap()]);
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
}

#[test]
fn every_alert_has_its_runbook() {
    for rule in alerts::rules(&Scope::standalone(), &AlertThresholds::default()) {
        let runbook = std::fs::read_to_string(repo(&rule.runbook))
            .unwrap_or_else(|err| panic!("{}: {err}", rule.runbook));
        assert!(
            runbook.starts_with(&format!("# {} (", rule.name)),
            "{} does not start with its alert's name",
            rule.runbook
        );
        assert!(runbook.contains("**Fires when**") && runbook.contains("**Impact.**"));
    }
}
