//! `cargo xtask up`: the web app in front of the backend (on SQLite), the OCR service and the LLM
//! service running its model itself, in release mode with embedded defaults, until Ctrl-C. No Python on the way: the model
//! comes from its PyPI wheels through [`models`].
//!
//! Ctrl-C, SIGTERM, SIGHUP and a server that exits all stop every server, each with its own
//! children ([`Supervisor`]), before xtask exits: the ports are free for the next `up`.
//!
//! MLflow is opt-in (`--mlflow`): it costs a minute's install the first time and a Python server's
//! memory, and the stack works without it. Without the flag the services still log to the server
//! named by MLFLOW_URL in the environment, which they inherit.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{Context, Result};
use flashcards_contracts::{
    flags::{self, backend, llm, web},
    ports,
};

use crate::{
    apt, cargo, interrupt, mlflow,
    models::{self, Model},
    paths,
    server::{ensure_free, reachable},
    supervise::{Stop, Supervisor},
};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Address and port for the web app, the address to open in a browser.
    #[arg(long, default_value_t = loopback(ports::WEB))]
    web_listen: SocketAddr,

    /// Address and port for the backend.
    #[arg(long, default_value_t = loopback(ports::BACKEND))]
    listen: SocketAddr,

    /// Address and port for the OCR service.
    #[arg(long, default_value_t = loopback(ports::OCR))]
    ocr_listen: SocketAddr,

    /// Address and port for the LLM service.
    #[arg(long, default_value_t = loopback(ports::LLM))]
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

/// The services' own port, on this machine only.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

pub fn run(options: &Options) -> Result<ExitCode> {
    interrupt::defer_stop_signals()?;
    let mlflow_listen = options.mlflow.then_some(options.mlflow_listen);
    for (listen, service, option) in [
        (options.web_listen, "the web app", "--web-listen"),
        (options.listen, "the backend", "--listen"),
        (options.ocr_listen, "the OCR service", "--ocr-listen"),
        (options.llm_listen, "the LLM service", "--llm-listen"),
    ]
    .into_iter()
    .chain(mlflow_listen.map(|listen| (listen, "MLflow", "--mlflow-listen")))
    {
        ensure_free(listen, service, option)?;
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
    // A SIGTERM or SIGHUP reaches us alone, not apt or cargo: stop before what comes next.
    interrupt::bail_if_requested()?;
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => paths::data_dir()?,
    };
    fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let database = data_dir.join("flashcards.db");
    eprintln!("database: {}", database.display());
    let mut stack = Supervisor::default();
    let mlflow_url = match mlflow_listen {
        Some(listen) => {
            let dir = match &options.data_dir {
                Some(dir) => dir.join("mlflow"),
                None => mlflow::data_dir()?,
            };
            let (server, url) = mlflow::start_in(&dir, listen)?;
            stack.adopt(server);
            println!("MLflow: {url} (runs in {})", dir.display());
            Some(url)
        }
        None => None,
    };
    let mlflow_args: Vec<String> = mlflow_url
        .map(|url| vec![flags::MLFLOW_URL.arg(), url])
        .unwrap_or_default();
    let model = models::ensure_model(options.llm_model)?;
    println!("LLM model: {} ({})", options.llm_model, model.display());
    let llm_address = reachable(options.llm_listen);
    let llm = stack.start(
        "flashcards-llm",
        Command::new(cargo::release_binary("flashcards-llm"))
            .arg(flags::LISTEN.arg())
            .arg(options.llm_listen.to_string())
            .arg(llm::MODEL.arg())
            .arg(&model)
            .args(&mlflow_args),
    )?;

    let ocr_address = reachable(options.ocr_listen);
    let ocr = stack.start(
        "flashcards-ocr",
        Command::new(cargo::release_binary("flashcards-ocr"))
            .arg(flags::LISTEN.arg())
            .arg(options.ocr_listen.to_string())
            .args(&mlflow_args),
    )?;
    let backend = stack.start(
        "flashcards-backend",
        Command::new(cargo::release_binary("flashcards-backend"))
            .arg(flags::LISTEN.arg())
            .arg(options.listen.to_string())
            .arg(backend::DATABASE_URL.arg())
            .arg(format!("sqlite://{}", database.display()))
            .arg(backend::OCR_URL.arg())
            .arg(format!("http://{ocr_address}"))
            .arg(backend::LLM_URL.arg())
            .arg(format!("http://{llm_address}")),
    )?;
    let address = reachable(options.listen);
    let web = stack.start(
        "flashcards-web",
        Command::new(cargo::release_binary("flashcards-web"))
            .arg(flags::LISTEN.arg())
            .arg(options.web_listen.to_string())
            .arg(web::BACKEND_URL.arg())
            .arg(format!("http://{address}")),
    )?;
    let web_address = reachable(options.web_listen);
    stack[backend].wait_ready(address, "/healthz")?;
    stack[ocr].wait_ready(ocr_address, "/readyz")?;
    stack[llm].wait_ready(llm_address, "/readyz")?;
    stack[web].wait_ready(web_address, "/healthz")?;
    println!(
        "flashcards is running: open http://{web_address}  (backend API docs: \
         http://{address}/docs; OCR service: http://{ocr_address}/docs; LLM service: \
         http://{llm_address}/docs) — Ctrl-C to stop"
    );
    match stack.watch()? {
        Stop::Requested => Ok(ExitCode::SUCCESS),
        Stop::Exited { name, status } => {
            eprintln!("{name} stopped ({status}): stopping the others");
            Ok(ExitCode::FAILURE)
        }
    }
}
