//! Anki's own library (`anki` from PyPI) for the tests that check our Anki packages with it,
//! installed into a virtualenv under ~/.cache/flashcards/ the first time.

use std::path::PathBuf;

use anyhow::Result;

use crate::{apt, paths, venv};

/// The release the issue names; its wheel is built for manylinux 2.35 (Debian 12 has glibc 2.36).
const ANKI: &str = "anki==26.9.3";
const ANKI_FOLDER: &str = "anki-26.9.3";
/// What must import for the tests' script to run.
const CHECK: &str = "from anki.collection import Collection, ImportAnkiPackageRequest";

/// The virtualenv's python, with Anki's library installed.
pub fn ensure_installed() -> Result<PathBuf> {
    let dir = paths::cache_dir()?.join(ANKI_FOLDER);
    if let Some(venv) = venv::ready(&dir, CHECK) {
        return Ok(venv::python(&venv));
    }
    apt::ensure_apt_packages(&venv::PYTHON_PACKAGES)?;
    eprintln!(
        "installing {ANKI} from PyPI into {}",
        dir.join("venv").display()
    );
    let venv = venv::install(&dir, ANKI, &[ANKI], &[], CHECK)?;
    Ok(venv::python(&venv))
}
