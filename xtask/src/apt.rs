//! Installing missing system programs from Debian packages.

use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::system;

/// What building and running the services needs from Debian, as `(file or program, package)`:
/// libtesseract and its English data for the OCR service, poppler-utils for its PDFs, pkg-config to
/// find libtesseract at build time, the DejaVu and Comic Neue (handwriting-like) fonts and qpdf for
/// the generated OCR test corpus, and the `tesseract` program the OCR benchmark compares against; Prometheus (its `promtool` checks
/// and unit-tests the alert rules) and Alertmanager (`amtool` checks its configuration) for the
/// monitoring tests, with node-exporter, Redis and redis_exporter, whose series the System
/// Resources dashboard reads.
const SYSTEM_PACKAGES: [(&str, &str); 13] = [
    ("pkg-config", "pkg-config"),
    ("/usr/include/tesseract/capi.h", "libtesseract-dev"),
    (
        "/usr/share/tesseract-ocr/5/tessdata/eng.traineddata",
        "tesseract-ocr-eng",
    ),
    ("tesseract", "tesseract-ocr"),
    ("pdftoppm", "poppler-utils"),
    ("qpdf", "qpdf"),
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "fonts-dejavu-core",
    ),
    (
        flashcards_ocr_corpus::HANDWRITING_FONT_PATH,
        "fonts-comic-neue",
    ),
    ("promtool", "prometheus"),
    ("amtool", "prometheus-alertmanager"),
    ("prometheus-node-exporter", "prometheus-node-exporter"),
    ("prometheus-redis-exporter", "prometheus-redis-exporter"),
    ("redis-server", "redis-server"),
];

/// Installs whatever of [`SYSTEM_PACKAGES`] is missing.
pub fn ensure_system_packages() -> Result<()> {
    ensure_apt_packages(&SYSTEM_PACKAGES)
}

/// Makes sure each `(program, package)` is installed: `program` is a name on PATH or a path (see
/// [`system::locate`]). Missing packages are installed with apt-get when we are root; otherwise
/// this fails and names them.
pub fn ensure_apt_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<(&str, &str)> = wanted
        .iter()
        .copied()
        .filter(|(program, _)| system::locate(program).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    packages.dedup();
    let programs: Vec<&str> = missing.iter().map(|(program, _)| *program).collect();
    if !system::is_root()? {
        bail!(
            "{} not found: install the Debian package {} (sudo apt-get install {})",
            programs.join(", "),
            packages.join(" "),
            packages.join(" ")
        );
    }
    eprintln!("installing {} with apt-get", packages.join(" "));
    apt_get(&["update"])?;
    let install = ["install", "-y", "--no-install-recommends"];
    apt_get(&[&install[..], &packages].concat())?;
    for (program, package) in missing {
        ensure!(
            system::locate(program).is_some(),
            "installed {package}, but {program} is still missing"
        );
    }
    Ok(())
}

fn apt_get(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        // No prompts: this runs unattended in CI.
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    ensure!(
        status.success(),
        "`apt-get {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}
