//! The KaTeX files embedded in the web app (`assets/katex/`) are those of the npm package pinned
//! in `vendor/package-lock.json`, byte for byte: the lock file is the one source of truth, and
//! `cargo xtask vendor` refreshes the copies from it. `cargo xtask test` runs `npm ci` in
//! `vendor/` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Every file under `dir`, as paths relative to it with `/` between folders.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap_or_else(|err| {
            panic!("listing {}: {err}", folder.display());
        }) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                found.push(
                    relative
                        .components()
                        .map(|part| part.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    found.sort();
    found
}

/// The version of `package` that `lock` (a package-lock.json) pins.
fn locked_version(lock: &Path, package: &str) -> String {
    let lock: serde_json::Value =
        serde_json::from_slice(&fs::read(lock).unwrap()).expect("package-lock.json is JSON");
    lock["packages"][format!("node_modules/{package}")]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("{package} is not in the lock file"))
        .to_owned()
}

#[test]
fn the_embedded_katex_is_the_npm_package_the_lock_file_pins() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vendor = manifest.join("vendor");
    let package = vendor.join("node_modules/katex");
    assert!(
        package.is_dir(),
        "{} is missing: run the tests with `cargo xtask test`, which runs `npm ci` in {}",
        package.display(),
        vendor.display()
    );
    let pinned = locked_version(&vendor.join("package-lock.json"), "katex");
    let installed: serde_json::Value =
        serde_json::from_slice(&fs::read(package.join("package.json")).unwrap()).unwrap();
    assert_eq!(
        installed["version"],
        pinned,
        "node_modules holds another KaTeX than the lock file pins: run `npm ci` in {}",
        vendor.display()
    );

    let copy = manifest.join("assets/katex");
    let copied = files_under(&copy);
    // The copy's layout is the package's dist/ (the stylesheet names its fonts relative to
    // itself), and the licence from the package's root.
    let source_of = |file: &str| -> PathBuf {
        if file == "LICENSE" {
            package.join(file)
        } else {
            package.join("dist").join(file)
        }
    };
    let mut stale = Vec::new();
    for file in &copied {
        let source = source_of(file);
        match fs::read(&source) {
            Ok(bytes) if bytes == fs::read(copy.join(file)).unwrap() => {}
            Ok(_) => stale.push(format!("{file} differs from {}", source.display())),
            Err(err) => stale.push(format!(
                "{file}: {} cannot be read: {err}",
                source.display()
            )),
        }
    }
    for font in files_under(&package.join("dist/fonts")) {
        let file = format!("fonts/{font}");
        if font.ends_with(".woff2") && !copied.contains(&file) {
            stale.push(format!(
                "{file} is in KaTeX {pinned} but not in assets/katex (add it to KATEX in src/assets.rs)"
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "the embedded KaTeX is not KaTeX {pinned} as npm installs it; run `cargo xtask vendor`:\n{}",
        stale.join("\n")
    );
}
