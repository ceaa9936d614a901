//! `cargo xtask bench-web`: the web app as Lighthouse and wrk see it. A stack of release binaries
//! (web, backend on SQLite, OCR, and the LLM service running SmolLM2 itself) is seeded with a deck
//! of cards and a page of notes made into drafts; Lighthouse (npm `lighthouse@12.2.3`, Debian's
//! chromium) scores the deck, study and drafts pages for performance, accessibility and best
//! practices (goal: 95 each); wrk loads the study page and the backend's own
//! `GET /api/decks/{id}/study` it renders, side by side (goal: the page costs at most 2× the call).
//! Prints figures, asserts nothing.

use std::{
    env, fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{self, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use flashcards_e2e::workspace::free_port;
use serde_json::{Value, json};

use crate::{
    apt, cargo, http, interrupt,
    models::{self, Model},
    paths::{self, ScratchDir},
    server::Server,
    wrk::{self, Load, Target},
};

const LIGHTHOUSE: &str = "lighthouse@12.2.3";
const LIGHTHOUSE_FOLDER: &str = "lighthouse-12.2.3";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The goals.
const SCORE_GOAL: f64 = 95.0;
const COST_GOAL: f64 = 2.0;
/// Cards in the seeded deck, all due.
const CARDS: usize = 30;
/// Longest wait for the page of notes to become drafts.
const GENERATION_TIMEOUT: Duration = Duration::from_secs(600);

pub fn run(load: &Load) -> Result<()> {
    interrupt::defer_ctrl_c()?;
    apt::ensure_apt_packages(&[
        ("wrk", "wrk"),
        (CHROMIUM, "chromium"),
        ("node", "nodejs"),
        ("npm", "npm"),
    ])?;
    let lighthouse = ensure_lighthouse()?;
    cargo::build_release(&[
        "-p",
        "flashcards-web",
        "-p",
        "flashcards-backend",
        "-p",
        "flashcards-ocr",
        "-p",
        "flashcards-llm",
    ])?;
    let model = models::ensure_model(Model::SmolLm2)?;
    let scratch = ScratchDir::create(
        env::temp_dir().join(format!("flashcards-bench-web-{}", process::id())),
    )?;

    let [ocr, llm, backend, web] = [(); 4].map(|()| local_address());
    let (ocr, llm, backend, web) = (ocr?, llm?, backend?, web?);
    let quiet = |command: &mut Command| {
        command.env("RUST_LOG", "warn");
    };
    let mut servers = Vec::new();
    let mut start =
        |name: &str, args: Vec<String>, address: SocketAddr, ready: &str| -> Result<()> {
            let mut command = Command::new(cargo::release_binary(name));
            command.arg("--listen").arg(address.to_string()).args(args);
            quiet(&mut command);
            let mut server = Server::start(name, &mut command)?;
            server.wait_ready(address, ready)?;
            servers.push(server);
            Ok(())
        };
    start("flashcards-ocr", Vec::new(), ocr, "/readyz")?;
    start(
        "flashcards-llm",
        vec!["--model".to_owned(), model.display().to_string()],
        llm,
        "/readyz",
    )?;
    start(
        "flashcards-backend",
        vec![
            "--database-url".to_owned(),
            format!("sqlite://{}", scratch.path().join("bench.db").display()),
            "--ocr-url".to_owned(),
            format!("http://{ocr}"),
            "--llm-url".to_owned(),
            format!("http://{llm}"),
        ],
        backend,
        "/healthz",
    )?;
    start(
        "flashcards-web",
        vec!["--backend-url".to_owned(), format!("http://{backend}")],
        web,
        "/healthz",
    )?;

    let seeded = seed(backend)?;
    let cookie = format!("flashcards_session={}", seeded.session);
    let pages = [
        ("deck", format!("/decks/{}", seeded.deck)),
        ("study", format!("/decks/{}/study", seeded.deck)),
        ("drafts", format!("/documents/{}/drafts", seeded.document)),
    ];
    let mut scores = Vec::new();
    for (name, path) in &pages {
        eprintln!("Lighthouse on the {name} page ...");
        let url = format!("http://{web}{path}");
        scores.push((
            *name,
            lighthouse_scores(&lighthouse, &url, &cookie, scratch.path())?,
        ));
        if interrupt::requested() {
            bail!("interrupted");
        }
    }

    let header = vec!["-H".to_owned(), format!("Cookie: {cookie}")];
    eprintln!("measuring the study page ...");
    let page = wrk::measure(
        load,
        &Target {
            name: "study page",
            url: format!("http://{web}/decks/{}/study", seeded.deck),
            extra_args: header.clone(),
        },
    )?;
    eprintln!("measuring the backend's study queue ...");
    let api = wrk::measure(
        load,
        &Target {
            name: "study queue API",
            url: format!("http://{backend}/api/decks/{}/study", seeded.deck),
            extra_args: header,
        },
    )?;
    drop(servers);

    println!(
        "\nLighthouse 12.2.3 (its default mobile settings), Debian's chromium; goal ≥ {SCORE_GOAL} each\n"
    );
    println!(
        "{:<8} {:>12} {:>14} {:>15}",
        "page", "performance", "accessibility", "best-practices"
    );
    for (name, [performance, accessibility, practices]) in &scores {
        println!("{name:<8} {performance:>12.0} {accessibility:>14.0} {practices:>15.0}");
    }
    println!("\nwrk {}\n", load.describe());
    println!("{:<44} {:>10} {:>10}", "target", "req/s", "p99 ms");
    for (name, figures) in [
        ("study page (web app, rendered)", &page),
        ("GET /api/decks/{id}/study (backend)", &api),
    ] {
        println!(
            "{name:<44} {:>10.0} {:>10.2}{}",
            figures.requests_per_sec,
            figures.p99_ms,
            if figures.has_errors() {
                "  (errors!)"
            } else {
                ""
            }
        );
    }
    let cost = api.requests_per_sec / page.requests_per_sec.max(f64::MIN_POSITIVE);
    println!(
        "\nthe page costs {cost:.2}× the API call it renders (by req/s); goal ≤ {COST_GOAL}× {}",
        if cost <= COST_GOAL { "✓" } else { "✗" }
    );
    Ok(())
}

fn local_address() -> Result<SocketAddr> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))
}

/// Lighthouse from npm, installed once under ~/.cache/flashcards/; its CLI script.
fn ensure_lighthouse() -> Result<PathBuf> {
    let dir = paths::cache_dir()?.join(LIGHTHOUSE_FOLDER);
    let cli = dir.join("node_modules/lighthouse/cli/index.js");
    if cli.is_file() {
        return Ok(cli);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("installing {LIGHTHOUSE} from npm into {}", dir.display());
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(LIGHTHOUSE)
        .env("npm_config_cache", paths::cache_dir()?.join("npm"))
        .status()
        .context("running npm install")?;
    ensure!(
        status.success(),
        "npm install {LIGHTHOUSE} failed: {status}"
    );
    ensure!(
        cli.is_file(),
        "{} is missing after npm install",
        cli.display()
    );
    Ok(cli)
}

/// Performance, accessibility and best-practices scores (0–100) of `url`, signed in by `cookie`.
fn lighthouse_scores(cli: &Path, url: &str, cookie: &str, scratch: &Path) -> Result<[f64; 3]> {
    let report = scratch.join("lighthouse.json");
    let profile = scratch.join(format!("chromium-{}", fs::read_dir(scratch)?.count()));
    let chrome_flags = format!(
        "--headless --no-sandbox --disable-gpu --disable-background-networking \
         --disable-component-update --disable-sync --no-first-run --user-data-dir={}",
        profile.display()
    );
    let output = Command::new("node")
        .arg(cli)
        .arg(url)
        .arg("--output=json")
        .arg(format!("--output-path={}", report.display()))
        .arg("--quiet")
        .arg("--only-categories=performance,accessibility,best-practices")
        .arg(format!("--chrome-flags={chrome_flags}"))
        .arg(format!("--extra-headers={}", json!({"Cookie": cookie})))
        .env("CHROME_PATH", CHROMIUM)
        .output()
        .context("running Lighthouse")?;
    ensure!(
        output.status.success(),
        "Lighthouse failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(
        &fs::read(&report).with_context(|| format!("reading {}", report.display()))?,
    )
    .context("reading Lighthouse's report")?;
    let final_url = report["finalDisplayedUrl"].as_str().unwrap_or_default();
    ensure!(
        final_url.ends_with(url.rsplit_once(':').map_or(url, |(_, rest)| rest)),
        "Lighthouse landed on {final_url}, not {url} (was the session refused?)"
    );
    let score = |category: &str| -> Result<f64> {
        report["categories"][category]["score"]
            .as_f64()
            .map(|score| score * 100.0)
            .with_context(|| format!("no {category} score in Lighthouse's report"))
    };
    Ok([
        score("performance")?,
        score("accessibility")?,
        score("best-practices")?,
    ])
}

/// What the benchmark user owns: a session, a deck of due cards, and a document with drafts.
struct Seeded {
    session: String,
    deck: String,
    document: String,
}

/// Waits until the document or job at `path` is `done`.
fn wait_until_done(
    backend: SocketAddr,
    auth: &[(&str, &str)],
    path: &str,
    what: &str,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let status = http::request(backend, "GET", path, auth, None)?
            .expect_status(200, what)?
            .json_str("status")?;
        match status.as_str() {
            "done" => return Ok(()),
            "failed" | "failed_retryable" => bail!("{what} failed"),
            _ if started.elapsed() > GENERATION_TIMEOUT => bail!("{what} took over 10 min"),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
        if interrupt::requested() {
            bail!("interrupted");
        }
    }
}

fn seed(backend: SocketAddr) -> Result<Seeded> {
    let session = crate::bench::bench_session(backend)?;
    let cookie = format!("flashcards_session={session}");
    let auth = [("Cookie", cookie.as_str())];
    let deck = http::request(
        backend,
        "POST",
        "/api/decks",
        &auth,
        Some(&json!({"name": "Biology"})),
    )?
    .expect_status(201, "creating the deck")?
    .json_str("id")?;
    for n in 1..=CARDS {
        let card = json!({"front": format!("Question {n}: what does chlorophyll absorb?"),
                          "back": format!("Answer {n}: red and blue light"), "tags": ["bio"]});
        http::request(
            backend,
            "POST",
            &format!("/api/decks/{deck}/cards"),
            &auth,
            Some(&card),
        )?
        .expect_status(201, "creating a card")?;
    }
    let notes = flashcards_ocr_corpus::clean_png().context("rendering a page of notes")?;
    let boundary = "flashcards-bench-web-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
         Content-Type: {}\r\n\r\n",
        notes.file_name, notes.content_type
    )
    .into_bytes();
    body.extend_from_slice(&notes.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let document = http::send(
        backend,
        "POST",
        "/api/documents",
        &[("Content-Type", &content_type), ("Cookie", &cookie)],
        &body,
    )?
    .expect_status(201, "uploading the page of notes")?
    .json_str("id")?;
    // The upload is answered before the page is read.
    wait_until_done(
        backend,
        &auth,
        &format!("/api/documents/{document}"),
        "reading the notes",
    )?;
    let job = http::request(
        backend,
        "POST",
        &format!("/api/documents/{document}/generate"),
        &auth,
        Some(&json!({"deck_id": deck, "max_cards": 4})),
    )?
    .expect_status(202, "starting generation")?
    .json_str("id")?;
    wait_until_done(
        backend,
        &auth,
        &format!("/api/jobs/{job}"),
        "making the drafts",
    )?;
    Ok(Seeded {
        session,
        deck,
        document,
    })
}
