//! `cargo xtask llm-report`: how good the generated cards are, as a learner would judge them. Runs
//! the LLM service's pipeline over the passages in `services/llm/quality/passages.json` (or
//! `--passages`) and, in the same run, a naive baseline (one prompt asking the same model and
//! server for N question/answer pairs as JSON), both scored by [`score`]: cards delivered per card
//! asked, parse rate, grounded rate, key facts covered, duplicates, answer leaks, time; in total
//! and per subject. Every run is logged to MLflow, experiment `flashcards-quality`, one MLflow run
//! per model.

mod score;

use std::{
    collections::BTreeMap,
    fs,
    net::SocketAddr,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use flashcards_bootstrap::mlflow::{self as tracking, RunRecord};
use flashcards_e2e::workspace::free_port;
use flashcards_llm::pipeline::cards::extract_json;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    cargo, http, interrupt,
    llama::{self, LlamaServer},
    mlflow,
    models::Model,
    server::Server,
};
use score::{KeyFact, StudyCard};

/// Where `--passages` points by default.
const PASSAGES: &str = "services/llm/quality/passages.json";
/// Longest wait for one answer from a model on two cores.
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
/// The MLflow experiment every report is logged to.
const EXPERIMENT: &str = "flashcards-quality";

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Models to score, in turn.
    #[arg(long, value_enum, num_args = 1.., default_values = ["smollm2", "qwen05b"])]
    models: Vec<Model>,
    /// Cards asked per passage, from both the pipeline and the baseline.
    #[arg(long, default_value_t = 4)]
    cards: usize,
    /// The passages and their key facts (JSON, see the default file for the format).
    #[arg(long, default_value = PASSAGES)]
    passages: PathBuf,
    /// Print every card with the key facts it covers, passage by passage.
    #[arg(long)]
    show_cards: bool,
    /// Leave the baseline out (quicker, when trying a change to the pipeline).
    #[arg(long)]
    skip_baseline: bool,
    /// What runs the model for the pipeline: llama.cpp's server, or the LLM service itself
    /// (`--model`, services/llm-runtime). The baseline always asks llama.cpp.
    #[arg(long, value_enum, default_value = "llama-cpp")]
    runtime: Runtime,
    /// MLflow tracking server to log the run to [default: one started here, keeping its runs in
    /// ~/.local/share/flashcards/mlflow like `cargo xtask up --mlflow`].
    #[arg(long, env = "MLFLOW_URL")]
    mlflow_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Runtime {
    /// llama.cpp's server, which the service asks as its upstream.
    LlamaCpp,
    /// The service's own runtime on the same GGUF file.
    Local,
}

impl Runtime {
    /// The `runtime` param of the MLflow run.
    fn describe(self) -> String {
        match self {
            Self::LlamaCpp => format!("llama.cpp server ({})", llama::LLAMA_CPP_PYTHON),
            Self::Local => "flashcards-llm-runtime (in process)".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Passages {
    passages: Vec<Passage>,
}

#[derive(Debug, Deserialize)]
struct Passage {
    title: String,
    subject: String,
    text: String,
    key_facts: Vec<KeyFact>,
}

pub fn run(options: &Options) -> Result<()> {
    interrupt::defer_ctrl_c()?;
    let path = &options.passages;
    let passages: Passages = serde_json::from_str(
        &fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    cargo::build_release(&["-p", "flashcards-llm"])?;
    let local_mlflow = match &options.mlflow_url {
        Some(_) => None,
        None => Some(mlflow::start_in(
            &mlflow::data_dir()?,
            SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        )?),
    };
    let mlflow_url = match (&options.mlflow_url, &local_mlflow) {
        (Some(url), _) => url.clone(),
        (None, Some((_, url))) => url.clone(),
        (None, None) => unreachable!("a server is started when no URL is given"),
    };
    let mut reports = Vec::new();
    for model in &options.models {
        let report = score_model(*model, &passages.passages, options)?;
        report.print();
        let run_id = log_to_mlflow(&mlflow_url, &report, &options.passages)?;
        println!("logged to MLflow at {mlflow_url}, experiment {EXPERIMENT}, run {run_id}");
        reports.push(report);
    }
    if reports.len() > 1 {
        print_side_by_side(&reports);
    }
    Ok(())
}

/// What one model's pipeline and baseline did over the passages.
struct Report {
    model: String,
    runtime: Runtime,
    prompt_version: String,
    cards_asked: usize,
    pipeline: BTreeMap<String, Score>,
    baseline: BTreeMap<String, Score>,
}

/// One model's pipeline and baseline over the passages. llama.cpp gets every core: nothing else
/// runs meanwhile, and the time per passage is one of the figures.
fn score_model(model: Model, passages: &[Passage], options: &Options) -> Result<Report> {
    let cards = options.cards;
    let llama = LlamaServer::start_alone(model)?;
    let llm_address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut command = Command::new(cargo::release_binary("flashcards-llm"));
    command
        .arg("--listen")
        .arg(llm_address.to_string())
        .env("RUST_LOG", "warn");
    match options.runtime {
        Runtime::LlamaCpp => command
            .arg("--upstream-url")
            .arg(llama.url())
            .arg("--upstream-timeout-secs")
            .arg(MODEL_TIMEOUT.as_secs().to_string()),
        Runtime::Local => command.arg("--model").arg(llama.model_path()),
    };
    let mut service = Server::start("flashcards-llm", &mut command)?;
    service.wait_ready(llm_address, "/readyz")?;
    let upstream: SocketAddr = llama
        .url()
        .trim_start_matches("http://")
        .parse()
        .context("reading the llama.cpp address")?;
    let mut report = Report {
        model: llama.model_id().to_owned(),
        runtime: options.runtime,
        prompt_version: String::new(),
        cards_asked: cards,
        pipeline: BTreeMap::new(),
        baseline: BTreeMap::new(),
    };
    for passage in passages {
        eprintln!("{model}: {}", passage.title);
        let (pipeline, prompt_version) =
            score_pipeline(llm_address, passage, cards, options.show_cards)?;
        report.prompt_version = prompt_version;
        add(&mut report.pipeline, &passage.subject, &pipeline);
        if !options.skip_baseline {
            let baseline = score_baseline(upstream, passage, cards)?;
            add(&mut report.baseline, &passage.subject, &baseline);
        }
        if interrupt::requested() {
            bail!("interrupted");
        }
    }
    Ok(report)
}

fn add(scores: &mut BTreeMap<String, Score>, subject: &str, score: &Score) {
    scores.entry(subject.to_owned()).or_default().add(score);
}

/// Counts over one or more passages.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Score {
    pub passages: usize,
    pub asked: usize,
    /// Cards the learner gets (the baseline's parsed pairs, at most as many as asked).
    pub delivered: usize,
    /// Model replies (pipeline) or pairs (baseline) written, readable or not.
    pub written: usize,
    pub parsed: usize,
    /// Delivered cards whose question and answer a sentence of the passage supports.
    pub grounded: usize,
    pub leaks: usize,
    pub duplicates: usize,
    pub key_facts: usize,
    pub covered: usize,
    pub seconds: f64,
}

impl Score {
    fn add(&mut self, other: &Self) {
        self.passages += other.passages;
        self.asked += other.asked;
        self.delivered += other.delivered;
        self.written += other.written;
        self.parsed += other.parsed;
        self.grounded += other.grounded;
        self.leaks += other.leaks;
        self.duplicates += other.duplicates;
        self.key_facts += other.key_facts;
        self.covered += other.covered;
        self.seconds += other.seconds;
    }

    /// The cards of one passage, judged.
    fn of(
        passage: &Passage,
        asked: usize,
        cards: &[StudyCard],
        written: usize,
        parsed: usize,
        seconds: f64,
    ) -> Self {
        let sentences = score::sentences(&passage.text);
        Self {
            passages: 1,
            asked,
            delivered: cards.len(),
            written,
            parsed,
            grounded: cards
                .iter()
                .filter(|card| score::grounded(card, &sentences))
                .count(),
            leaks: cards.iter().filter(|card| score::leaks(card)).count(),
            duplicates: score::duplicates(cards),
            key_facts: passage.key_facts.len(),
            covered: passage
                .key_facts
                .iter()
                .filter(|fact| cards.iter().any(|card| score::covers(card, fact)))
                .count(),
            seconds,
        }
    }

    /// The figures of the report, by name: the table's columns and the MLflow metrics; a rate
    /// of nothing (no model reply to parse, no card to ground) is `None`.
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    fn figures(&self) -> [(&'static str, Option<f64>); 9] {
        let per_passage = |value: f64| Some(value / self.passages.max(1) as f64);
        [
            ("delivered_per_asked", ratio(self.delivered, self.asked)),
            ("parse_rate", ratio(self.parsed, self.written)),
            ("grounded_rate", ratio(self.grounded, self.delivered)),
            ("key_fact_coverage", ratio(self.covered, self.key_facts)),
            ("key_facts_covered", Some(self.covered as f64)),
            ("duplicates", Some(self.duplicates as f64)),
            ("leak_rate", ratio(self.leaks, self.delivered)),
            ("seconds_per_passage", per_passage(self.seconds)),
            ("cards_per_passage", per_passage(self.delivered as f64)),
        ]
    }
}

fn total(scores: &BTreeMap<String, Score>) -> Score {
    let mut total = Score::default();
    for score in scores.values() {
        total.add(score);
    }
    total
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[derive(Debug, Deserialize)]
struct Generated {
    cards: Vec<Value>,
    dropped: Vec<Value>,
    prompt_version: String,
    usage: Usage,
}

#[derive(Debug, Deserialize)]
struct Usage {
    calls: usize,
}

/// A card of the LLM service's answer as the learner sees it.
fn study_card(card: &Value) -> StudyCard {
    match card["kind"].as_str() {
        Some("cloze") => StudyCard::cloze(card["text"].as_str().unwrap_or_default()),
        _ => StudyCard::basic(
            card["front"].as_str().unwrap_or_default(),
            card["back"].as_str().unwrap_or_default(),
        ),
    }
}

fn score_pipeline(
    service: SocketAddr,
    passage: &Passage,
    asked: usize,
    show: bool,
) -> Result<(Score, String)> {
    let started = Instant::now();
    let response = http::request_within(
        service,
        "POST",
        "/v1/generate",
        &[],
        Some(&json!({"text": passage.text, "max_cards": asked})),
        MODEL_TIMEOUT,
    )?
    .expect_status(200, "generating cards")?;
    let seconds = started.elapsed().as_secs_f64();
    let answer: Generated = serde_json::from_str(&response.body).context("reading the answer")?;
    let unreadable = answer
        .dropped
        .iter()
        .filter(|dropped| dropped["reason"] == "invalid_output")
        .count();
    let cards: Vec<StudyCard> = answer.cards.iter().map(study_card).collect();
    let parsed = answer.usage.calls.saturating_sub(unreadable);
    if show {
        show_cards(passage, &cards, &answer.dropped);
    }
    Ok((
        Score::of(passage, asked, &cards, answer.usage.calls, parsed, seconds),
        answer.prompt_version,
    ))
}

/// The passage's cards, each with what it covers, then the key facts no card covers.
fn show_cards(passage: &Passage, cards: &[StudyCard], dropped: &[Value]) {
    println!("\n== {} ({})", passage.title, passage.subject);
    for card in cards {
        let covered: Vec<&str> = passage
            .key_facts
            .iter()
            .filter(|fact| score::covers(card, fact))
            .map(|fact| fact.answer.as_str())
            .collect();
        let mark = if covered.is_empty() { " " } else { "+" };
        println!("{mark} {} -> {}", card.question, card.answer);
    }
    for fact in &passage.key_facts {
        if !cards.iter().any(|card| score::covers(card, fact)) {
            println!("  missed: {} -> {}", fact.question, fact.answer);
        }
    }
    for item in dropped {
        println!(
            "  dropped ({}): {} -> {}",
            item["reason"].as_str().unwrap_or_default(),
            item["front"].as_str().unwrap_or_default(),
            item["back"].as_str().unwrap_or_default()
        );
    }
}

#[derive(Debug, Deserialize)]
struct Pairs {
    pairs: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Pair {
    question: String,
    answer: String,
}

/// The naive way: one prompt, N pairs as JSON, nothing checked but the JSON.
fn score_baseline(upstream: SocketAddr, passage: &Passage, asked: usize) -> Result<Score> {
    let schema = json!({
        "type": "object",
        "properties": {"pairs": {"type": "array", "items": {
            "type": "object",
            "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
            "required": ["question", "answer"]
        }}},
        "required": ["pairs"]
    });
    let prompt = format!(
        "Write {asked} flashcards as question and answer pairs about the text below. \
         Reply with JSON: {{\"pairs\": [{{\"question\": \"...\", \"answer\": \"...\"}}]}}\n\n{}",
        passage.text
    );
    let started = Instant::now();
    let response = http::request_within(
        upstream,
        "POST",
        "/v1/chat/completions",
        &[],
        Some(&json!({
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 768,
            "temperature": 0.0,
            "response_format": {"type": "json_object", "schema": schema},
        })),
        MODEL_TIMEOUT,
    )?
    .expect_status(200, "asking the baseline")?;
    let seconds = started.elapsed().as_secs_f64();
    let answer: Value = serde_json::from_str(&response.body).context("reading the completion")?;
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    let items: Vec<Value> = extract_json(content)
        .ok()
        .and_then(|json| serde_json::from_str::<Pairs>(json).ok())
        .map(|pairs| pairs.pairs)
        .unwrap_or_default();
    let written = items.len().max(1);
    let cards: Vec<StudyCard> = items
        .into_iter()
        .filter_map(|item| serde_json::from_value::<Pair>(item).ok())
        .map(|pair| StudyCard::basic(&pair.question, &pair.answer))
        .collect();
    let parsed = cards.len();
    let delivered: Vec<StudyCard> = cards.into_iter().take(asked).collect();
    Ok(Score::of(
        passage, asked, &delivered, written, parsed, seconds,
    ))
}

const HEADERS: [&str; 9] = [
    "delivered/asked",
    "parse",
    "grounded",
    "coverage",
    "covered",
    "dups",
    "leaks",
    "s/passage",
    "cards/psg",
];

fn row(name: &str, score: &Score) -> String {
    let figures = score.figures();
    let percent = |at: usize| {
        figures[at]
            .1
            .map_or("-".to_owned(), |value| format!("{:.0}%", 100.0 * value))
    };
    let number = |at: usize| {
        figures[at]
            .1
            .map_or("-".to_owned(), |value| format!("{value:.1}"))
    };
    format!(
        "{name:<22} {:>16} {:>6} {:>8} {:>8} {:>4}/{:<4} {:>4} {:>6} {:>9} {:>9}",
        percent(0),
        percent(1),
        percent(2),
        percent(3),
        score.covered,
        score.key_facts,
        score.duplicates,
        percent(6),
        number(7),
        number(8),
    )
}

fn header(first: &str) -> String {
    format!(
        "{first:<22} {:>16} {:>6} {:>8} {:>8} {:>9} {:>4} {:>6} {:>9} {:>9}",
        HEADERS[0],
        HEADERS[1],
        HEADERS[2],
        HEADERS[3],
        HEADERS[4],
        HEADERS[5],
        HEADERS[6],
        HEADERS[7],
        HEADERS[8]
    )
}

impl Report {
    fn print(&self) {
        let (pipeline, baseline) = (total(&self.pipeline), total(&self.baseline));
        println!();
        println!(
            "model: {}   runtime: {}   prompt: {}   passages: {}   cards asked per passage: {}",
            self.model,
            self.runtime.describe(),
            self.prompt_version,
            pipeline.passages,
            self.cards_asked
        );
        println!("{}", header(""));
        println!("{}", row("pipeline", &pipeline));
        println!("{}", row("baseline", &baseline));
        println!();
        println!("{}", header("subject (pipeline)"));
        for (subject, score) in &self.pipeline {
            println!("{}", row(subject, score));
        }
        println!();
        println!("{}", header("subject (baseline)"));
        for (subject, score) in &self.baseline {
            println!("{}", row(subject, score));
        }
    }
}

/// Both models' totals in one table, as the issue's goal compares them.
fn print_side_by_side(reports: &[Report]) {
    println!();
    println!("{}", header("all models"));
    for report in reports {
        let short = report
            .model
            .split('-')
            .take(2)
            .collect::<Vec<_>>()
            .join("-");
        println!(
            "{}",
            row(&format!("{short} pipeline"), &total(&report.pipeline))
        );
        println!(
            "{}",
            row(&format!("{short} baseline"), &total(&report.baseline))
        );
    }
}

/// One MLflow run for the model: what was run (params) and every figure of the tables (metrics,
/// `pipeline.<figure>`, `baseline.<figure>` and `pipeline.<figure>.<subject>`).
fn log_to_mlflow(url: &str, report: &Report, passages: &std::path::Path) -> Result<String> {
    let (pipeline, baseline) = (total(&report.pipeline), total(&report.baseline));
    let mut record = RunRecord::finished(
        "llm-report",
        Duration::from_secs_f64(pipeline.seconds + baseline.seconds),
    )
    .param("model", &report.model)
    .param("runtime", report.runtime.describe())
    .param("prompt_version", &report.prompt_version)
    .param("cards_asked_per_passage", report.cards_asked)
    .param("passages", pipeline.passages)
    .param("passages_file", passages.display())
    .param("kinds", "basic,cloze")
    .param("temperature", flashcards_llm::backend::TEMPERATURE)
    .param(
        "baseline",
        if baseline.passages == 0 {
            "skipped"
        } else {
            "one prompt asking for N question/answer pairs as JSON"
        },
    );
    for (run, score) in [("pipeline", &pipeline), ("baseline", &baseline)] {
        if score.passages == 0 {
            continue;
        }
        for (figure, value) in score.figures() {
            if let Some(value) = value {
                record = record.metric(format!("{run}.{figure}"), value);
            }
        }
    }
    for (run, scores) in [
        ("pipeline", &report.pipeline),
        ("baseline", &report.baseline),
    ] {
        for (subject, score) in scores {
            let subject = subject.replace(' ', "_");
            for (figure, value) in score.figures() {
                if let Some(value) = value {
                    record = record.metric(format!("{run}.{figure}.{subject}"), value);
                }
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for the MLflow client")?;
    runtime
        .block_on(tracking::log_now(
            url,
            EXPERIMENT,
            "cargo xtask llm-report",
            &record,
        ))
        .with_context(|| format!("logging the report to MLflow at {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage() -> Passage {
        Passage {
            title: "t".into(),
            subject: "geography".into(),
            text: "Heat from the Sun evaporates water. Rivers carry it to the sea.".into(),
            key_facts: vec![
                KeyFact {
                    question: "What evaporates water?".into(),
                    answer: "Heat from the Sun".into(),
                    also: vec!["the Sun".into()],
                },
                KeyFact {
                    question: "Where do rivers carry water?".into(),
                    answer: "the sea".into(),
                    also: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn cards_are_judged_as_a_learner_sees_them() {
        let cards = [
            StudyCard::basic("What evaporates water?", "the Sun"),
            StudyCard::basic("What is the capital of Peru?", "Lima"),
            StudyCard::basic("Do rivers carry water to the sea?", "rivers"),
        ];
        let score = Score::of(&passage(), 4, &cards, 3, 3, 1.0);
        assert_eq!(score.delivered, 3);
        assert_eq!(score.grounded, 2, "Lima is not in the text");
        assert_eq!(score.leaks, 1);
        assert_eq!(
            score.covered, 1,
            "the river card answers 'rivers', not 'the sea'"
        );
        let figures: BTreeMap<&str, Option<f64>> = score.figures().into_iter().collect();
        assert_eq!(figures["delivered_per_asked"], Some(0.75));
        assert_eq!(figures["key_fact_coverage"], Some(0.5));
        assert_eq!(Score::default().figures()[1], ("parse_rate", None));
    }

    #[test]
    fn a_cloze_card_of_the_service_is_read_as_question_and_answer() {
        let card =
            study_card(&json!({"kind": "cloze", "text": "Rivers carry it to {{c1::the sea}}."}));
        assert_eq!(card.answer, "the sea");
        let basic = study_card(&json!({"kind": "basic", "front": "Q?", "back": "A"}));
        assert_eq!(basic, StudyCard::basic("Q?", "A"));
    }

    #[test]
    fn the_checked_in_passages_meet_the_issue_s_measure() {
        let path = crate::paths::workspace_root().join(PASSAGES);
        let passages: Passages =
            serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("parse");
        assert!(passages.passages.len() >= 25);
        let subjects: std::collections::BTreeSet<&str> = passages
            .passages
            .iter()
            .map(|p| p.subject.as_str())
            .collect();
        for subject in [
            "biology",
            "chemistry",
            "physics",
            "mathematics",
            "history",
            "geography",
            "economics",
            "law",
            "computer science",
            "vocabulary",
            "german",
            "ocr-noisy",
        ] {
            assert!(subjects.contains(subject), "{subject}");
        }
        for passage in &passages.passages {
            assert!(!passage.key_facts.is_empty(), "{}", passage.title);
        }
    }
}
