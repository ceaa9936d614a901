//! `cargo xtask gen`: writes the files generated from Rust code (the FlashcardStack CRD, for now);
//! tests fail when a checked-in copy differs from what the code generates.

use std::{fs, path::Path};

use anyhow::{Context, Result};

/// Where the CRD is checked in: for `kubectl apply`, and in the Helm chart.
const CRD_COPIES: [&str; 2] = [
    "crds/flashcardstack.yaml",
    "charts/flashcards-operator/crds/flashcardstack.yaml",
];

pub fn run() -> Result<()> {
    let crd = flashcards_operator::crd::crd_yaml().context("rendering the CRD")?;
    for copy in CRD_COPIES {
        write(Path::new(copy), &crd)?;
    }
    Ok(())
}

fn write(path: &Path, content: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let unchanged = fs::read_to_string(path).is_ok_and(|old| old == content);
    if unchanged {
        eprintln!("{}: up to date", path.display());
    } else {
        fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{}: written", path.display());
    }
    Ok(())
}
