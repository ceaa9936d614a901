//! `ocr-corpus <dir>`: writes the OCR test corpus and a `manifest.json` describing it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use flashcards_ocr_corpus::{Corpus, FONT_ENV, FONT_PATH, Sample};
use serde_json::{Value, json};

/// Writes every corpus sample, benchmark images under bench/, the photographed-page conditions
/// under degraded/, and manifest.json (name, file, content type, condition and the exact text of
/// each page).
#[derive(Parser)]
struct Args {
    /// Directory to write into; created if missing.
    dir: PathBuf,
    /// Font file to render with.
    #[arg(long, env = FONT_ENV, default_value = FONT_PATH)]
    font: PathBuf,
    /// Number of benchmark images.
    #[arg(long, default_value_t = 50)]
    bench: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let corpus = Corpus::with_font(&args.font)?;
    let bench_dir = args.dir.join("bench");
    fs::create_dir_all(&bench_dir).with_context(|| format!("creating {}", bench_dir.display()))?;

    let samples = corpus
        .all()?
        .into_iter()
        .map(|sample| write(&args.dir, Path::new(""), sample))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bench = corpus
        .bench_images(args.bench)?
        .into_iter()
        .map(|sample| write(&args.dir, Path::new("bench"), sample))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let degraded_dir = args.dir.join("degraded");
    fs::create_dir_all(&degraded_dir)
        .with_context(|| format!("creating {}", degraded_dir.display()))?;
    let degraded = corpus
        .degraded()?
        .into_iter()
        .map(|sample| write(&args.dir, Path::new("degraded"), sample))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let manifest_path = args.dir.join("manifest.json");
    let manifest = json!({
        "font": args.font,
        "samples": samples,
        "bench": bench,
        "degraded": degraded,
    });
    fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)? + "\n",
    )
    .with_context(|| format!("writing {}", manifest_path.display()))?;
    println!(
        "wrote {} samples, {} benchmark images and {} degraded pages to {}",
        samples.len(),
        bench.len(),
        degraded.len(),
        args.dir.display()
    );
    Ok(())
}

/// Writes `sample` to `root/subdir` and returns its manifest entry, with a `/`-separated path
/// relative to `root`.
fn write(root: &Path, subdir: &Path, sample: Sample) -> anyhow::Result<Value> {
    let relative = subdir.join(&sample.file_name);
    let path = root.join(&relative);
    fs::write(&path, &sample.bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(json!({
        "name": sample.name,
        "file": relative,
        "content_type": sample.content_type,
        "condition": sample.condition,
        "pages": sample.pages,
    }))
}
