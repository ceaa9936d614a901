//! `cargo xtask gen`: writes the files generated from code — the FlashcardStack CRD from the Rust
//! types, the monitoring/ files from the operator's alert rules, then manifests/install.yaml from the Helm chart (which holds that CRD) with the helm
//! that `cargo xtask control-plane build` makes; tests fail when a checked-in copy differs.

use std::{fs, path::Path};

use anyhow::{Context, Result};

use crate::control_plane;

/// Where the CRD is checked in: for `kubectl apply`, and in the Helm chart.
const CRD_COPIES: [&str; 2] = [
    "crds/flashcardstack.yaml",
    "charts/flashcards-operator/crds/flashcardstack.yaml",
];

const CHART: &str = "charts/flashcards-operator";
const INSTALL_MANIFEST: &str = "manifests/install.yaml";

pub fn run() -> Result<()> {
    let crd = flashcards_operator::crd::crd_yaml().context("rendering the CRD")?;
    for copy in CRD_COPIES {
        write(Path::new(copy), &crd)?;
    }
    for file in
        flashcards_operator::monitoring_files::files().context("rendering the monitoring files")?
    {
        write(Path::new(&file.path), &file.content)?;
    }
    let helm = control_plane::ensure_built(control_plane::DEFAULT_JOBS)?
        .bin
        .join("helm");
    let install = flashcards_e2e::install_manifest::render(&helm, Path::new(CHART))
        .context("rendering the chart")?;
    write(Path::new(INSTALL_MANIFEST), &install)
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
