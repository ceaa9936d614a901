//! `cargo xtask bench-ocr`: OCR throughput of the service's warm Tesseract engines against the
//! `tesseract` program started once per image, which is what the Python stack in the monitoring
//! guide does through pytesseract, on the same generated images; then the accuracy of both on
//! photographed pages (see [`accuracy`]).

mod accuracy;

use std::{
    env, fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{self, Command},
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, ensure};
use flashcards_e2e::workspace::free_port;
use flashcards_ocr_corpus::Sample;
use serde_json::Value;

use crate::{apt, cargo, http, interrupt, paths::ScratchDir, server::Server};

/// Images each side recognises.
const IMAGES: usize = 50;
/// Client threads on each side, one per core of the project's 2-core machine; the service gets as
/// many engines.
const CLIENTS: usize = 2;
/// Requests the service lets wait for an engine; the clients never have more than [`CLIENTS`]
/// in flight, so none is refused.
const QUEUE: usize = 8;
/// The issue's target: the service recognises at least this many times as many images per second.
const GOAL_RATIO: f64 = 2.0;
/// GNU time, for the CLI's CPU seconds; a shell's `time` keyword cannot write a chosen format.
const TIME: &str = "/usr/bin/time";
/// The service restarts itself with this set to 1; pytesseract's tesseract runs without it.
const OPENMP_LIMIT: &str = "OMP_THREAD_LIMIT";
/// How much of a differing text the report shows.
const SHOWN_CHARS: usize = 160;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Only the accuracy comparison on photographed pages, not the throughput one.
    #[arg(long)]
    pub accuracy_only: bool,
}

pub fn run(options: &Options) -> Result<()> {
    interrupt::defer_ctrl_c()?;
    apt::ensure_system_packages()?;
    apt::ensure_apt_packages(&[(TIME, "time")])?;
    cargo::build_release(&["-p", "flashcards-ocr", "--bin", "flashcards-ocr"])?;
    let scratch = ScratchDir::create(
        env::temp_dir().join(format!("flashcards-bench-ocr-{}", process::id())),
    )?;
    if !options.accuracy_only {
        throughput(scratch.path())?;
    }
    let degraded =
        flashcards_ocr_corpus::degraded().context("generating the photographed pages")?;
    accuracy::run(&degraded, scratch.path())?;
    Ok(())
}

/// The service against the CLI on [`IMAGES`] benchmark images.
fn throughput(scratch: &Path) -> Result<()> {
    let samples =
        flashcards_ocr_corpus::bench_images(IMAGES).context("generating the benchmark images")?;
    let files = samples
        .iter()
        .map(|sample| {
            let path = scratch.join(&sample.file_name);
            fs::write(&path, &sample.bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect::<Result<Vec<PathBuf>>>()?;

    eprintln!("measuring flashcards-ocr ...");
    let service = measure_service(&samples)?;
    eprintln!("measuring the tesseract CLI ...");
    // Also the CLI's warm-up: its language data is in the page cache before the timed run.
    let first = files.first().context("no benchmark images")?;
    let cli_cpu_seconds = cli_cpu_seconds(first, scratch)?;
    let cli = measure(&files, |image| tesseract(image))?;
    print_report(&samples, &service, &cli, cli_cpu_seconds);
    Ok(())
}

/// What one side read, in image order, and how long it took.
struct Run {
    texts: Vec<String>,
    elapsed: Duration,
}

impl Run {
    fn images_per_sec(&self) -> f64 {
        self.texts.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// The release service with one engine per client, ready; it stops when dropped.
fn start_service() -> Result<(Server, SocketAddr)> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let mut service = Server::start(
        "flashcards-ocr",
        Command::new(cargo::release_binary("flashcards-ocr"))
            .arg("--listen")
            .arg(address.to_string())
            .args(["--engines", &CLIENTS.to_string()])
            .args(["--queue", &QUEUE.to_string()])
            .env("RUST_LOG", "warn"),
    )?;
    service.wait_ready(address, "/readyz")?;
    Ok((service, address))
}

/// Starts the service, warms it up, measures it and stops it, so that it takes no CPU from the
/// CLI's run.
fn measure_service(samples: &[Sample]) -> Result<Run> {
    let (_service, address) = start_service()?;
    let images: Vec<&[u8]> = samples
        .iter()
        .map(|sample| sample.bytes.as_slice())
        .collect();
    // Not timed: one request per client, so each engine has read a page before the clock starts.
    measure(&images[..CLIENTS.min(images.len())], |png| {
        recognize(address, png)
    })?;
    measure(&images, |png| recognize(address, png))
}

/// Recognises every item on [`CLIENTS`] threads, each taking the next item nobody has taken, and
/// times it all from the first start to the last answer. The texts come back in item order.
fn measure<T: Sync>(items: &[T], recognize: impl Fn(&T) -> Result<String> + Sync) -> Result<Run> {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let done = thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                scope.spawn(|| {
                    let mut texts = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(index) else {
                            return Ok(texts);
                        };
                        let outcome = if interrupt::requested() {
                            Err(anyhow!("interrupted"))
                        } else {
                            recognize(item)
                        };
                        match outcome {
                            Ok(text) => texts.push((index, text)),
                            Err(err) => {
                                // Leaves nothing for the other clients, so the run ends soon.
                                next.store(items.len(), Ordering::SeqCst);
                                return Err(err);
                            }
                        }
                    }
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|client| match client.join() {
                Ok(outcome) => outcome,
                Err(_) => Err(anyhow!("a client thread panicked")),
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let elapsed = started.elapsed();
    let mut texts: Vec<(usize, String)> = done.into_iter().flatten().collect();
    texts.sort_by_key(|(index, _)| *index);
    Ok(Run {
        texts: texts.into_iter().map(|(_, text)| text).collect(),
        elapsed,
    })
}

/// The service's text of the image's only page; `min_confidence=0` keeps every word, as the CLI
/// does.
fn recognize(address: SocketAddr, png: &[u8]) -> Result<String> {
    let response = http::send(
        address,
        "POST",
        "/v1/ocr?min_confidence=0",
        &[("Content-Type", "image/png")],
        png,
    )?
    .expect_status(200, "POST /v1/ocr")?;
    first_page_text(&response.body)
}

fn first_page_text(body: &str) -> Result<String> {
    let body: Value =
        serde_json::from_str(body).with_context(|| format!("parsing the OCR response {body}"))?;
    body.pointer("/pages/0/text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no pages[0].text in the OCR response {body}"))
}

/// What pytesseract's `image_to_string` runs: the program with its defaults (page segmentation 3,
/// English, OpenMP on every core) on an image file.
fn tesseract_command(image: &Path) -> Command {
    let mut command = Command::new("tesseract");
    command.arg(image).arg("stdout").env_remove(OPENMP_LIMIT);
    command
}

fn tesseract(image: &Path) -> Result<String> {
    let output = tesseract_command(image)
        .output()
        .context("running tesseract")?;
    ensure!(
        output.status.success(),
        "tesseract {} failed ({}): {}",
        image.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).context("tesseract printed text that is not UTF-8")
}

/// User plus system CPU seconds of one CLI run on `image`, as GNU time counts them. Its report goes
/// to a file, because tesseract writes its own messages to stderr.
fn cli_cpu_seconds(image: &Path, scratch: &Path) -> Result<f64> {
    let report = scratch.join("time.txt");
    let tesseract = tesseract_command(image);
    // GNU time passes its own environment on, so the limit is left out of it too.
    let output = Command::new(TIME)
        .arg("-o")
        .arg(&report)
        .args(["-f", "%U %S"])
        .arg(tesseract.get_program())
        .args(tesseract.get_args())
        .env_remove(OPENMP_LIMIT)
        .output()
        .context("running tesseract under /usr/bin/time")?;
    ensure!(
        output.status.success(),
        "tesseract {} under {TIME} failed ({}): {}",
        image.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text =
        fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?;
    parse_cpu_seconds(&text).with_context(|| format!("reading {TIME}'s report {text:?}"))
}

/// Sums the `%U %S` fields on the report's last line (earlier lines tell of a failed command).
fn parse_cpu_seconds(report: &str) -> Option<f64> {
    let mut fields = report
        .lines()
        .last()?
        .split_whitespace()
        .map(|field| field.parse::<f64>().ok());
    Some(fields.next()?? + fields.next()??)
}

fn print_report(samples: &[Sample], service: &Run, cli: &Run, cli_cpu_seconds: f64) {
    let expected: Vec<String> = samples
        .iter()
        .map(|sample| fold_whitespace(sample.pages.first().map_or("", String::as_str)))
        .collect();
    let service_texts: Vec<String> = service.texts.iter().map(|t| fold_whitespace(t)).collect();
    let cli_texts: Vec<String> = cli.texts.iter().map(|t| fold_whitespace(t)).collect();
    let identical = service_texts
        .iter()
        .zip(&cli_texts)
        .filter(|(a, b)| a == b)
        .count();
    let cores = thread::available_parallelism().map_or(0, |cores| cores.get());
    println!();
    println!(
        "images: {}   clients: {CLIENTS}   cores: {cores}",
        samples.len()
    );
    println!("{:<33} {:>8} {:>15}", "target", "images/s", "mean accuracy");
    let rows = [
        (
            format!("flashcards-ocr ({CLIENTS} warm engines)"),
            service,
            &service_texts,
        ),
        ("tesseract CLI per image".to_owned(), cli, &cli_texts),
    ];
    for (name, run, texts) in rows {
        println!(
            "{name:<33} {:>8.2} {:>15.3}",
            run.images_per_sec(),
            mean_accuracy(&expected, texts)
        );
    }
    println!(
        "{}",
        ratio_line(service.images_per_sec(), cli.images_per_sec())
    );
    println!("identical text: {identical}/{}", samples.len());
    println!(
        "tesseract CLI CPU per image: {cli_cpu_seconds:.2} s (user + sys of one run on {}, {TIME})",
        samples
            .first()
            .map_or("", |sample| sample.file_name.as_str())
    );
    let differing = samples
        .iter()
        .zip(service_texts.iter().zip(&cli_texts))
        .find(|(_, (a, b))| a != b);
    if let Some((sample, (service_text, cli_text))) = differing {
        println!(
            "first difference, {} (whitespace folded):",
            sample.file_name
        );
        println!(
            "  flashcards-ocr: {:?}",
            truncate(service_text, SHOWN_CHARS)
        );
        println!("  tesseract CLI:  {:?}", truncate(cli_text, SHOWN_CHARS));
    }
}

/// `text` with every run of whitespace (newlines and the CLI's closing form feed included) turned
/// into one space, and none at either end: the two sides lay out lines and blocks differently.
fn fold_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Character accuracy of `actual` against `expected`, both whitespace-folded: 1 − edit distance /
/// expected length, at least 0 (a reading with more noise than text scores nothing, not less).
fn accuracy(expected: &str, actual: &str) -> f64 {
    let length = expected.chars().count();
    if length == 0 {
        return if actual.is_empty() { 1.0 } else { 0.0 };
    }
    (1.0 - levenshtein(expected, actual) as f64 / length as f64).max(0.0)
}

fn mean_accuracy(expected: &[String], actual: &[String]) -> f64 {
    let total: f64 = expected
        .iter()
        .zip(actual)
        .map(|(expected, actual)| accuracy(expected, actual))
        .sum();
    total / expected.len() as f64
}

/// Characters inserted, deleted or replaced to turn `a` into `b`.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // Distances from a's prefix so far to each prefix of b, one row at a time.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, b_char) in b.iter().enumerate() {
            let replace = diagonal + usize::from(a_char != *b_char);
            diagonal = row[j + 1];
            row[j + 1] = replace.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The throughput ratio and PASS or MISS against [`GOAL_RATIO`].
fn ratio_line(service_images_per_sec: f64, cli_images_per_sec: f64) -> String {
    let ratio = service_images_per_sec / cli_images_per_sec;
    let verdict = if ratio >= GOAL_RATIO { "PASS" } else { "MISS" };
    format!("ratio: {ratio:.2}x   goal: >= {GOAL_RATIO}x   {verdict}")
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{
        accuracy, first_page_text, fold_whitespace, levenshtein, parse_cpu_seconds, ratio_line,
        truncate,
    };

    #[test]
    fn folds_lines_blocks_and_form_feeds_into_single_spaces() {
        assert_eq!(
            fold_whitespace("  Cells divide\n\nby  mitosis.\n\u{c}"),
            "Cells divide by mitosis."
        );
        assert_eq!(fold_whitespace(" \n\t"), "");
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("naïve", "naive"), 1);
        assert_eq!(levenshtein("same", "same"), 0);
    }

    #[test]
    fn accuracy_is_one_minus_the_error_rate_never_below_zero() {
        assert_eq!(accuracy("abcd", "abcd"), 1.0);
        assert_eq!(accuracy("abcd", "abxd"), 0.75);
        assert_eq!(accuracy("ab", "xyzxyz"), 0.0);
        assert_eq!(accuracy("", ""), 1.0);
        assert_eq!(accuracy("", "noise"), 0.0);
    }

    #[test]
    fn ratio_passes_from_twice_the_cli() {
        assert_eq!(ratio_line(5.0, 2.5), "ratio: 2.00x   goal: >= 2x   PASS");
        assert_eq!(ratio_line(4.5, 2.5), "ratio: 1.80x   goal: >= 2x   MISS");
        assert_eq!(ratio_line(0.0, 0.0), "ratio: NaNx   goal: >= 2x   MISS");
    }

    #[test]
    fn reads_gnu_time_reports() {
        assert_eq!(parse_cpu_seconds("0.81 0.07\n"), Some(0.81 + 0.07));
        assert_eq!(
            parse_cpu_seconds("Command exited with non-zero status 1\n0.01 0.00\n"),
            Some(0.01)
        );
        assert_eq!(parse_cpu_seconds("0.81\n"), None);
        assert_eq!(parse_cpu_seconds(""), None);
    }

    #[test]
    fn takes_the_first_page_text() -> anyhow::Result<()> {
        let body = r#"{"pages":[{"page":1,"text":"Hello\nworld"}],"total_ms":1.0}"#;
        assert_eq!(first_page_text(body)?, "Hello\nworld");
        assert!(first_page_text(r#"{"pages":[]}"#).is_err());
        Ok(())
    }

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
    }
}
