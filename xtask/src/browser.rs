//! What the web app's browser test needs: Debian's Chromium and Node, and the npm packages pinned
//! in services/web/tests/browser/package-lock.json (playwright-core, axe-core), installed with
//! `npm ci` when the lock file changed since the last install. npm's cache lives under
//! ~/.cache/flashcards/npm.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context, Result, ensure};
use sha2::{Digest, Sha256};

use crate::{apt, paths};

/// The browser test's folder, relative to the workspace root.
const TOOLS_DIR: &str = "services/web/tests/browser";
/// Where `npm ci`'s lock file digest is kept, inside node_modules, so a removed node_modules
/// takes its record with it.
const INSTALLED_LOCK: &str = "node_modules/.flashcards-lock-sha256";

/// Chromium (the browser the test drives) and Node with npm (what drives it).
const PACKAGES: [(&str, &str); 3] = [
    ("/usr/bin/chromium", "chromium"),
    ("node", "nodejs"),
    ("npm", "npm"),
];

/// Installs what is missing; returns the test's folder.
pub fn ensure_tools() -> Result<PathBuf> {
    apt::ensure_apt_packages(&PACKAGES)?;
    let dir = paths::workspace_root().join(TOOLS_DIR);
    let lock = fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("reading {TOOLS_DIR}/package-lock.json"))?;
    let digest: String = Sha256::digest(&lock)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let marker = dir.join(INSTALLED_LOCK);
    if fs::read_to_string(&marker).is_ok_and(|installed| installed == digest) {
        return Ok(dir);
    }
    eprintln!("installing the browser test's npm packages (npm ci in {TOOLS_DIR})");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .env("npm_config_cache", paths::cache_dir()?.join("npm"))
        .status()
        .context("running npm ci")?;
    ensure!(status.success(), "npm ci in {TOOLS_DIR} failed: {status}");
    fs::write(&marker, digest).with_context(|| format!("writing {}", marker.display()))?;
    Ok(dir)
}
