//! `npm ci` in the workspace's npm folders (the browser test's tools, the web app's vendored
//! libraries), run only when the folder's lock file changed since its last install. npm's cache
//! lives under ~/.cache/flashcards/npm.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context, Result, ensure};
use sha2::{Digest, Sha256};

use crate::paths;

/// Where `npm ci`'s lock file digest is kept, inside node_modules, so a removed node_modules
/// takes its record with it.
const INSTALLED_LOCK: &str = "node_modules/.flashcards-lock-sha256";

/// Installs the packages pinned in `folder`'s package-lock.json (`folder` relative to the
/// workspace root) unless that lock file is the one last installed; returns the folder.
pub fn ci(folder: &str) -> Result<PathBuf> {
    let dir = paths::workspace_root().join(folder);
    let lock = fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("reading {folder}/package-lock.json"))?;
    let digest: String = Sha256::digest(&lock)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let marker = dir.join(INSTALLED_LOCK);
    if fs::read_to_string(&marker).is_ok_and(|installed| installed == digest) {
        return Ok(dir);
    }
    eprintln!("installing the npm packages pinned in {folder} (npm ci)");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .env("npm_config_cache", paths::cache_dir()?.join("npm"))
        .status()
        .context("running npm ci")?;
    ensure!(status.success(), "npm ci in {folder} failed: {status}");
    fs::write(&marker, digest).with_context(|| format!("writing {}", marker.display()))?;
    Ok(dir)
}
