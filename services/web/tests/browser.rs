//! The learner's walk through the app in Debian's Chromium, driven by playwright-core
//! (`browser/journey.mjs`), against the real binaries (web, backend, OCR, and the LLM service in
//! front of the test LLM), with a rendered page of notes to upload, axe-core on every page and
//! screenshots at 390 and 1280 px in `target/web-screenshots/`. `cargo xtask test` installs
//! Chromium and the pinned npm packages first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{path::Path, process::Command};

use common::{MAX_UPLOAD_BYTES, Stack, web_before};

#[test]
fn a_learner_walks_through_the_app_in_chromium_with_no_accessibility_violations() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = manifest.join("tests/browser");
    assert!(
        tools.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "Chromium or the browser test's npm packages are missing: run the tests with \
         `cargo xtask test`, which installs both"
    );
    let stack = Stack::start_full("browser");
    let notes = flashcards_ocr_corpus::clean_png().expect("rendering a page of notes");
    let upload = stack.dir.path().join(&notes.file_name);
    std::fs::write(&upload, &notes.bytes).unwrap();
    // The discard port: nothing answers there.
    let down = web_before("http://127.0.0.1:9");
    let screenshots = manifest.join("../../target/web-screenshots");
    let output = Command::new("node")
        .arg("journey.mjs")
        .current_dir(&tools)
        .env("WEB_URL", stack.web.url())
        .env("DOWN_URL", down.url())
        .env("SCREENSHOTS", &screenshots)
        .env("UPLOAD_FILE", &upload)
        .env("UPLOAD_LIMIT", MAX_UPLOAD_BYTES.to_string())
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser journey failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("no serious or critical accessibility violations"),
        "{stdout}"
    );
}
