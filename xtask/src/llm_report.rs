//! `cargo xtask llm-report`: how good the generated cards are. Runs the LLM service's pipeline over
//! the passages in `services/llm/quality/passages.json` and, in the same run, a naive baseline (one
//! prompt asking the same model for N question/answer pairs as JSON), scored the same way: parse
//! rate, grounded rate, key facts covered by an atomic card, duplicates, answer leaks, time.

use std::{
    fs,
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use flashcards_e2e::workspace::free_port;
use flashcards_llm::pipeline::{
    cards::{Candidate, CardKind, extract_json},
    chunk::Chunk,
    ground::ground,
    quality::{Rejection, check, duplicates},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    cargo, http, interrupt,
    llama::{LlamaServer, Model},
    server::Server,
};

/// Cards asked for per passage, from both the pipeline and the baseline.
const CARDS_PER_PASSAGE: usize = 6;
const PASSAGES: &str = "services/llm/quality/passages.json";
/// Longest wait for one answer from a model on two cores.
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Models to score, in turn.
    #[arg(long, value_enum, num_args = 1.., default_values = ["smollm2", "qwen05b"])]
    models: Vec<Model>,
}

#[derive(Debug, Deserialize)]
struct Passages {
    passages: Vec<Passage>,
}

#[derive(Debug, Deserialize)]
struct Passage {
    title: String,
    text: String,
    key_facts: Vec<KeyFact>,
}

#[derive(Debug, Deserialize)]
struct KeyFact {
    words: Vec<String>,
}

pub fn run(options: &Options) -> Result<()> {
    interrupt::defer_ctrl_c()?;
    let passages: Passages = serde_json::from_str(
        &fs::read_to_string(PASSAGES).with_context(|| format!("reading {PASSAGES}"))?,
    )
    .with_context(|| format!("parsing {PASSAGES}"))?;
    cargo::build_release(&["-p", "flashcards-llm"])?;
    for model in &options.models {
        let llama = LlamaServer::start(*model)?;
        let llm_address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut service = Server::start(
            "flashcards-llm",
            Command::new(cargo::release_binary("flashcards-llm"))
                .arg("--listen")
                .arg(llm_address.to_string())
                .arg("--upstream-url")
                .arg(llama.url())
                .env("RUST_LOG", "warn"),
        )?;
        service.wait_ready(llm_address, "/readyz")?;
        let upstream: SocketAddr = llama
            .url()
            .trim_start_matches("http://")
            .parse()
            .context("reading the llama.cpp address")?;
        let mut pipeline = Score::default();
        let mut baseline = Score::default();
        for passage in &passages.passages {
            eprintln!("{:?}: {}", model, passage.title);
            pipeline.add(&score_pipeline(llm_address, passage)?);
            baseline.add(&score_baseline(upstream, passage)?);
            if interrupt::requested() {
                bail!("interrupted");
            }
        }
        print_report(
            llama.model_id(),
            passages.passages.len(),
            &pipeline,
            &baseline,
        );
    }
    Ok(())
}

/// Counts over one or more passages.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Score {
    pub passages: usize,
    /// Cards returned (pipeline) or pairs that parsed (baseline).
    pub cards: usize,
    /// Items the model wrote, readable or not.
    pub written: usize,
    /// Items that parsed into a card of a kind asked for.
    pub parsed: usize,
    /// Parsed items whose answer a sentence of the passage supports.
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
        self.cards += other.cards;
        self.written += other.written;
        self.parsed += other.parsed;
        self.grounded += other.grounded;
        self.leaks += other.leaks;
        self.duplicates += other.duplicates;
        self.key_facts += other.key_facts;
        self.covered += other.covered;
        self.seconds += other.seconds;
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Whether a card's text holds every word of the fact (as a prefix: `evaporat` matches
/// `evaporates`).
pub fn covers(card_text: &str, fact: &[String]) -> bool {
    let text = card_text.to_lowercase();
    fact.iter().all(|word| text.contains(&word.to_lowercase()))
}

fn covered_facts(cards: &[String], passage: &Passage) -> usize {
    passage
        .key_facts
        .iter()
        .filter(|fact| cards.iter().any(|card| covers(card, &fact.words)))
        .count()
}

fn score_pipeline(service: SocketAddr, passage: &Passage) -> Result<Score> {
    let started = Instant::now();
    let response = http::request_within(
        service,
        "POST",
        "/v1/generate",
        &[],
        Some(&json!({"text": passage.text, "max_cards": CARDS_PER_PASSAGE})),
        MODEL_TIMEOUT,
    )?
    .expect_status(200, "generating cards")?;
    let seconds = started.elapsed().as_secs_f64();
    let answer: Value = serde_json::from_str(&response.body).context("reading the answer")?;
    let cards = answer["cards"].as_array().cloned().unwrap_or_default();
    let dropped = answer["dropped"].as_array().cloned().unwrap_or_default();
    let count = |reason: &str| dropped.iter().filter(|d| d["reason"] == reason).count();
    let unparsed = count("invalid_output") + count("wrong_kind");
    let written = cards.len() + dropped.len();
    let parsed = written - unparsed;
    let texts: Vec<String> = cards
        .iter()
        .map(|card| {
            ["front", "back", "text"]
                .iter()
                .filter_map(|field| card[field].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    Ok(Score {
        passages: 1,
        cards: cards.len(),
        written,
        parsed,
        grounded: parsed - count("ungrounded"),
        leaks: count("answer_leak"),
        duplicates: count("duplicate"),
        key_facts: passage.key_facts.len(),
        covered: covered_facts(&texts, passage),
        seconds,
    })
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
fn score_baseline(upstream: SocketAddr, passage: &Passage) -> Result<Score> {
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
        "Write {CARDS_PER_PASSAGE} flashcards as question and answer pairs about the text below. \
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
    let pairs: Vec<Pair> = items
        .into_iter()
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect();
    Ok(score_pairs(&pairs, passage, written, seconds))
}

/// Scores baseline pairs with the pipeline's own grounding and filters.
fn score_pairs(pairs: &[Pair], passage: &Passage, written: usize, seconds: f64) -> Score {
    let whole = Chunk {
        start: 0,
        end: passage.text.chars().count(),
        text: passage.text.clone(),
    };
    let candidates: Vec<Candidate> = pairs
        .iter()
        .map(|pair| Candidate {
            kind: CardKind::Basic,
            front: pair.question.clone(),
            back: pair.answer.clone(),
            quote: String::new(),
        })
        .collect();
    let grounded = candidates
        .iter()
        .filter(|card| ground(card, &whole).is_some())
        .count();
    let leaks = candidates
        .iter()
        .filter(|card| check(card) == Some(Rejection::AnswerLeak))
        .count();
    let atomic: Vec<String> = candidates
        .iter()
        .filter(|card| !matches!(check(card), Some(Rejection::NotAtomic | Rejection::Empty)))
        .map(|card| format!("{} {}", card.front, card.back))
        .collect();
    Score {
        passages: 1,
        cards: candidates.len(),
        written,
        parsed: candidates.len(),
        grounded,
        leaks,
        duplicates: duplicates(&candidates).into_iter().filter(|d| *d).count(),
        key_facts: passage.key_facts.len(),
        covered: covered_facts(&atomic, passage),
        seconds,
    }
}

fn print_report(model: &str, passages: usize, pipeline: &Score, baseline: &Score) {
    println!();
    println!(
        "model: {model}   passages: {passages}   cards asked per passage: {CARDS_PER_PASSAGE}"
    );
    println!(
        "{:<10} {:>11} {:>11} {:>13} {:>17} {:>11} {:>11} {:>13}",
        "",
        "cards/psg",
        "parse rate",
        "grounded rate",
        "key facts covered",
        "duplicates",
        "leak rate",
        "s/passage"
    );
    for (name, score) in [("pipeline", pipeline), ("baseline", baseline)] {
        #[allow(clippy::cast_precision_loss)]
        let per_passage = |value: f64| value / score.passages.max(1) as f64;
        #[allow(clippy::cast_precision_loss)]
        let cards = per_passage(score.cards as f64);
        println!(
            "{name:<10} {cards:>11.1} {:>10.0}% {:>12.0}% {:>9}/{:<3} {:>3.0}% {:>11} {:>10.0}% {:>13.1}",
            100.0 * ratio(score.parsed, score.written),
            100.0 * ratio(score.grounded, score.parsed),
            score.covered,
            score.key_facts,
            100.0 * ratio(score.covered, score.key_facts),
            score.duplicates,
            100.0 * ratio(score.leaks, score.parsed),
            per_passage(score.seconds),
        );
    }
    let beats = ratio(pipeline.grounded, pipeline.parsed)
        > ratio(baseline.grounded, baseline.parsed)
        && pipeline.covered > baseline.covered;
    println!(
        "pipeline beats the baseline on grounded rate and key-fact coverage: {}",
        if beats { "yes" } else { "no" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage() -> Passage {
        Passage {
            title: "t".into(),
            text: "Heat from the Sun evaporates water. Rivers carry it to the sea.".into(),
            key_facts: vec![
                KeyFact {
                    words: vec!["sun".into(), "evaporat".into()],
                },
                KeyFact {
                    words: vec!["river".into(), "sea".into()],
                },
            ],
        }
    }

    #[test]
    fn a_fact_is_covered_when_a_card_holds_all_its_words() {
        assert!(covers(
            "What does the Sun do? It evaporates water",
            &["sun".into(), "evaporat".into()]
        ));
        assert!(!covers(
            "What does the Sun do?",
            &["sun".into(), "evaporat".into()]
        ));
    }

    #[test]
    fn baseline_pairs_are_scored_with_the_pipelines_checks() {
        let pairs = [
            Pair {
                question: "What evaporates water?".into(),
                answer: "Heat from the Sun".into(),
            },
            Pair {
                question: "What is the capital of Peru?".into(),
                answer: "Lima".into(),
            },
            Pair {
                question: "Do rivers carry water to the sea?".into(),
                answer: "rivers".into(),
            },
        ];
        let score = score_pairs(&pairs, &passage(), 3, 1.0);
        assert_eq!(score.grounded, 2, "Lima is not in the text");
        assert_eq!(score.leaks, 1);
        assert_eq!(score.covered, 2);
        assert!((ratio(score.grounded, score.parsed) - 2.0 / 3.0).abs() < 1e-9);
    }
}
