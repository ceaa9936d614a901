//! What the web app's browser test needs: Debian's Chromium and Node, and the npm packages pinned
//! in services/web/tests/browser/package-lock.json (playwright-core, axe-core).

use std::path::PathBuf;

use anyhow::Result;

use crate::{apt, npm};

/// The browser test's folder, relative to the workspace root.
const TOOLS_DIR: &str = "services/web/tests/browser";

/// Chromium (the browser the test drives) and Node with npm (what drives it).
const PACKAGES: [(&str, &str); 3] = [
    ("/usr/bin/chromium", "chromium"),
    ("node", "nodejs"),
    ("npm", "npm"),
];

/// Installs what is missing; returns the test's folder.
pub fn ensure_tools() -> Result<PathBuf> {
    apt::ensure_apt_packages(&PACKAGES)?;
    npm::ci(TOOLS_DIR)
}
