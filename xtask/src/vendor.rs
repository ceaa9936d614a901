//! `cargo xtask vendor`: copies the browser libraries the web app embeds out of their npm
//! packages, pinned in services/web/vendor/package-lock.json, into services/web/assets/. Today
//! that is KaTeX: its script, the auto-render extension, its stylesheet, its WOFF2 fonts (every
//! browser the app supports reads WOFF2, so the older formats the stylesheet also names are never
//! fetched) and its licence. To move to another version: `npm install --save-exact katex@X` in
//! services/web/vendor, then this; the web app's drift test (`services/web/tests/vendored.rs`)
//! fails until the copies match, and names any font to add to or remove from its `assets.rs`.

use std::{fs, path::Path};

use anyhow::{Context, Result};

use crate::{apt, npm, paths};

/// The npm folder of the web app's vendored libraries, relative to the workspace root.
pub const NPM_DIR: &str = "services/web/vendor";
/// Where the web app embeds KaTeX from, relative to the workspace root.
const KATEX_COPY: &str = "services/web/assets/katex";
/// KaTeX's files the pages use besides its fonts: their paths in the npm package and in the copy.
const KATEX_FILES: [(&str, &str); 4] = [
    ("dist/katex.min.js", "katex.min.js"),
    (
        "dist/contrib/auto-render.min.js",
        "contrib/auto-render.min.js",
    ),
    ("dist/katex.min.css", "katex.min.css"),
    ("LICENSE", "LICENSE"),
];
/// The fonts' folder, the same in the package's dist/ and in the copy, as the stylesheet names
/// them relative to itself.
const FONTS: &str = "fonts";

pub fn run() -> Result<()> {
    apt::ensure_apt_packages(&[("node", "nodejs"), ("npm", "npm")])?;
    let package = npm::ci(NPM_DIR)?.join("node_modules/katex");
    let copy = paths::workspace_root().join(KATEX_COPY);
    // Afresh, so a font the new version dropped does not linger.
    if copy.exists() {
        fs::remove_dir_all(&copy).with_context(|| format!("removing {}", copy.display()))?;
    }
    let mut copied = 0;
    for (from, to) in KATEX_FILES {
        copy_file(&package.join(from), &copy.join(to))?;
        copied += 1;
    }
    let fonts = package.join("dist").join(FONTS);
    for entry in fs::read_dir(&fonts).with_context(|| format!("listing {}", fonts.display()))? {
        let font = entry
            .with_context(|| format!("listing {}", fonts.display()))?
            .path();
        if font
            .extension()
            .is_some_and(|extension| extension == "woff2")
        {
            let name = font.file_name().context("a font file without a name")?;
            copy_file(&font, &copy.join(FONTS).join(name))?;
            copied += 1;
        }
    }
    let manifest = package.join("package.json");
    let version = fs::read(&manifest)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|manifest| manifest["version"].as_str().map(str::to_owned))
        .with_context(|| format!("reading the version in {}", manifest.display()))?;
    eprintln!("{KATEX_COPY}: KaTeX {version}, {copied} files");
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
