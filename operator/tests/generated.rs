//! The checked-in CRD copies and monitoring/ files are exactly what the Rust code generates
//! (`cargo xtask gen` rewrites them).

#![allow(clippy::unwrap_used)]

use std::path::Path;

use flashcards_operator::{crd::crd_yaml, monitoring_files};

#[test]
fn checked_in_crds_match_the_types() {
    let generated = crd_yaml().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for copy in [
        "crds/flashcardstack.yaml",
        "charts/flashcards-operator/crds/flashcardstack.yaml",
    ] {
        let checked_in = std::fs::read_to_string(root.join(copy))
            .unwrap_or_else(|err| panic!("{copy}: {err}; run `cargo xtask gen`"));
        assert!(
            checked_in == generated,
            "{copy} differs from what operator/src/crd.rs generates: run `cargo xtask gen`"
        );
    }
}

#[test]
fn checked_in_monitoring_files_match_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in monitoring_files::files().unwrap() {
        let checked_in = std::fs::read_to_string(root.join(&file.path))
            .unwrap_or_else(|err| panic!("{}: {err}; run `cargo xtask gen`", file.path));
        assert!(
            checked_in == file.content,
            "{} differs from what the operator's code generates: run `cargo xtask gen`",
            file.path
        );
    }
}
