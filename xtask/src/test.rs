//! `cargo xtask test`: the whole workspace's tests against a throwaway PostgreSQL, llama.cpp's
//! server with each reference model, a throwaway MLflow server and the e2e tests' Kubernetes binaries (built once), ending
//! with one summary line.

use std::{
    env,
    io::{self, BufRead, BufReader, Write},
    path::PathBuf,
    process::{ExitCode, Stdio},
};

use anyhow::{Context, Result};

use crate::{
    anki, apt, browser, cargo, control_plane, images, interrupt, llama::LlamaServer,
    mlflow::MlflowServer, models::Model, node, npm, postgres::Cluster, summary::Totals, vendor,
};

/// The variable through which the test suites find PostgreSQL.
const POSTGRES_URL_VAR: &str = "FLASHCARDS_TEST_POSTGRES_URL";

/// The variables through which the test suites find an OpenAI-compatible LLM server and the GGUF
/// file it serves (for tests that run the model themselves). When FLASHCARDS_TEST_LLM_URL is set,
/// xtask starts no server and passes the model variable on only if it is set too.
const LLM_URL_VAR: &str = "FLASHCARDS_TEST_LLM_URL";
const LLM_MODEL_VAR: &str = "FLASHCARDS_TEST_LLM_MODEL";

/// The same for the second reference model, Qwen2.5-Coder-0.5B-Instruct, which the LLM runtime's
/// parity tests also run.
const QWEN_URL_VAR: &str = "FLASHCARDS_TEST_QWEN_URL";
const QWEN_MODEL_VAR: &str = "FLASHCARDS_TEST_QWEN_MODEL";

/// The variable through which the Anki package tests find a python with Anki's library.
const ANKI_PYTHON_VAR: &str = "FLASHCARDS_TEST_ANKI_PYTHON";

/// The variable through which the OCR, LLM and bootstrap tests find an MLflow tracking server.
const MLFLOW_URL_VAR: &str = "FLASHCARDS_TEST_MLFLOW_URL";

/// Free disk a cold build and run of every test needs: target/ alone reached 9.8 GiB on
/// 2026-12-05, with the caches and the test servers' folders beside it.
const DISK_NEEDED_GIB: u64 = 16;

pub fn run(cargo_args: &[String]) -> ExitCode {
    report_free_disk();
    let (cargo_succeeded, totals) = run_suites(cargo_args).unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        (false, Totals::default())
    });
    // By now PostgreSQL, the LLM and MLflow servers are stopped and their folders gone, so this
    // really is the last line.
    println!("{}", totals.summary(cargo_succeeded));
    if totals.ok(cargo_succeeded) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Says how much disk is free where the build goes, and warns when a cold build may not fit: a
/// full disk otherwise shows only as a compiler's I/O error somewhere in the build.
fn report_free_disk() {
    let Ok(stat) = rustix::fs::statvfs(".") else {
        return;
    };
    let free_gib = stat.f_bavail.saturating_mul(stat.f_frsize) >> 30;
    eprintln!("free disk here: {free_gib} GiB");
    if free_gib < DISK_NEEDED_GIB {
        eprintln!(
            "warning: a cold build of every test needs about {DISK_NEEDED_GIB} GiB; with {free_gib} \
             GiB free it may stop with \"No space left on device\""
        );
    }
}

/// llama.cpp's server with `model`, unless `url_var` names one already running.
fn reference_server(model: Model, url_var: &str) -> Result<Option<LlamaServer>> {
    // An empty value is no server: `VAR= cargo xtask test` starts one.
    if env::var(url_var).is_ok_and(|url| !url.trim().is_empty()) {
        eprintln!("using the LLM server from {url_var}");
        return Ok(None);
    }
    let server = LlamaServer::start(model)?;
    eprintln!(
        "test LLM server (llama.cpp, {}) is up at {}",
        server.model_id(),
        server.url()
    );
    Ok(Some(server))
}

/// `cargo test` of every target with `flags`, then the user's `cargo_args` (which may end in `--
/// <test binary arguments>`): the same build when building and when running, so that running
/// reuses what building made.
fn cargo_test(flags: &[&str], cargo_args: &[String]) -> std::process::Command {
    let mut command = cargo::command();
    command
        .args(["test", "--workspace", "--all-targets"])
        .args(flags)
        .args(cargo_args);
    // A CI run builds once from nothing: incremental state would only fill the disk.
    if env::var_os("CI").is_some() {
        command.env("CARGO_INCREMENTAL", "0");
    }
    command
}

/// Runs cargo test; returns whether it succeeded and the summed results. The cluster, the LLM and
/// the MLflow server, if we started them, are stopped when this returns, whatever happened.
fn run_suites(cargo_args: &[String]) -> Result<(bool, Totals)> {
    interrupt::defer_ctrl_c()?;
    apt::ensure_system_packages()?;
    browser::ensure_tools()?;
    // The web app's vendored libraries, which its drift test compares with the embedded copies.
    npm::ci(vendor::NPM_DIR)?;
    let anki_python = match env::var_os(ANKI_PYTHON_VAR) {
        Some(_) => None,
        None => Some(anki::ensure_installed()?),
    };
    // First, as it may take long the first time: the servers below would only wait for it.
    let control_plane = match env::var_os(control_plane::BIN_VAR) {
        Some(_) => {
            eprintln!(
                "using the control plane binaries from {}",
                control_plane::BIN_VAR
            );
            None
        }
        None => Some(control_plane::ensure_built(control_plane::DEFAULT_JOBS)?),
    };
    let node_bin = match env::var_os(node::BIN_VAR) {
        Some(bin) => {
            eprintln!("using the node binaries from {}", node::BIN_VAR);
            node::ensure_host_packages()?;
            PathBuf::from(bin)
        }
        None => node::ensure_built(control_plane::DEFAULT_JOBS)?,
    };
    let node_images = match env::var_os(flashcards_e2e::IMAGES_VAR) {
        Some(images) => {
            eprintln!(
                "using the node's images from {}",
                flashcards_e2e::IMAGES_VAR
            );
            PathBuf::from(images)
        }
        // The test build itself first: the images take its binaries, and `cargo test` below
        // then finds everything built.
        None => images::ensure_for_tests(&node_bin, || {
            let status = cargo_test(&["--no-run"], cargo_args)
                .status()
                .context("running cargo test --no-run")?;
            anyhow::ensure!(status.success(), "building the tests failed ({status})");
            Ok(())
        })?,
    };
    let llm = reference_server(Model::SmolLm2, LLM_URL_VAR)?;
    let qwen = reference_server(Model::Qwen05b, QWEN_URL_VAR)?;
    let mlflow = match env::var_os(MLFLOW_URL_VAR) {
        Some(_) => {
            eprintln!("using the MLflow server from {MLFLOW_URL_VAR}");
            None
        }
        None => {
            let mlflow = MlflowServer::start()?;
            eprintln!("test MLflow server is up at {}", mlflow.url());
            Some(mlflow)
        }
    };
    let cluster = match env::var_os(POSTGRES_URL_VAR) {
        Some(_) => {
            eprintln!("using PostgreSQL from {POSTGRES_URL_VAR}");
            None
        }
        None => Some(Cluster::start()?),
    };
    // --no-fail-fast: one failing suite should not hide the results of the others.
    let mut command = cargo_test(&["--no-fail-fast"], cargo_args);
    command
        // The OCR tests run several Tesseract engines at once; OpenMP threads inside each would
        // only compete with them (the service binary sets the same limit on itself).
        .env("OMP_THREAD_LIMIT", "1")
        .stdout(Stdio::piped());
    if let Some(cluster) = &cluster {
        command.env(POSTGRES_URL_VAR, cluster.url());
    }
    command
        .env(node::BIN_VAR, &node_bin)
        .env(flashcards_e2e::IMAGES_VAR, &node_images);
    if let Some(artifacts) = &control_plane {
        command
            .env(control_plane::BIN_VAR, &artifacts.bin)
            .env(
                control_plane::PROMETHEUS_CRDS_VAR,
                &artifacts.prometheus_crds,
            )
            .env(
                control_plane::GRAFANA_CRD_VAR,
                &artifacts.grafana_dashboard_crd,
            );
    }
    for (server, url_var, model_var) in [
        (&llm, LLM_URL_VAR, LLM_MODEL_VAR),
        (&qwen, QWEN_URL_VAR, QWEN_MODEL_VAR),
    ] {
        if let Some(server) = server {
            command
                .env(url_var, server.url())
                .env(model_var, server.model_path());
        }
    }
    if let Some(mlflow) = &mlflow {
        command.env(MLFLOW_URL_VAR, mlflow.url());
    }
    if let Some(python) = &anki_python {
        command.env(ANKI_PYTHON_VAR, python);
    }
    let mut child = command.spawn().context("starting cargo test")?;
    let stdout = child
        .stdout
        .take()
        .context("cargo test's stdout is not piped")?;
    // cargo's own messages go to stderr, untouched; test binaries print results on stdout, which
    // we copy through line by line while counting.
    let mut totals = Totals::default();
    let mut reader = BufReader::new(stdout);
    let mut terminal = io::stdout().lock();
    let mut line = Vec::new();
    while reader
        .read_until(b'\n', &mut line)
        .context("reading cargo test's output")?
        > 0
    {
        terminal
            .write_all(&line)
            .and_then(|()| terminal.flush())
            .context("writing to stdout")?;
        totals.add_line(&String::from_utf8_lossy(&line));
        line.clear();
    }
    let status = child.wait().context("waiting for cargo test")?;
    Ok((status.success(), totals))
}
