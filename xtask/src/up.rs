//! `cargo xtask up`: the backend (on SQLite) and the OCR service in release mode, with embedded
//! defaults, until Ctrl-C.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{Context, Result};

use crate::{apt, cargo, interrupt, paths, server::Server};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Address and port for the backend.
    #[arg(long, default_value = "127.0.0.1:8002")]
    listen: SocketAddr,

    /// Address and port for the OCR service.
    #[arg(long, default_value = "127.0.0.1:8000")]
    ocr_listen: SocketAddr,

    /// Folder for flashcards.db [default: ~/.local/share/flashcards]
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(options: &Options) -> Result<ExitCode> {
    interrupt::defer_ctrl_c()?;
    // Another server on a port would answer /healthz in ours' place.
    for listen in [options.listen, options.ocr_listen] {
        TcpListener::bind(listen).with_context(|| {
            format!("cannot listen on {listen} (is flashcards already running?)")
        })?;
    }
    apt::ensure_system_packages()?;
    cargo::build_release(&["-p", "flashcards-backend", "-p", "flashcards-ocr"])?;
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => paths::data_dir()?,
    };
    fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let database = data_dir.join("flashcards.db");
    eprintln!("database: {}", database.display());

    let ocr_address = reachable(options.ocr_listen);
    let mut ocr = Server::start(
        "flashcards-ocr",
        Command::new(cargo::release_binary("flashcards-ocr"))
            .arg("--listen")
            .arg(options.ocr_listen.to_string()),
    )?;
    let mut backend = Server::start(
        "flashcards-backend",
        Command::new(cargo::release_binary("flashcards-backend"))
            .arg("--listen")
            .arg(options.listen.to_string())
            .arg("--database-url")
            .arg(format!("sqlite://{}", database.display()))
            .arg("--ocr-url")
            .arg(format!("http://{ocr_address}")),
    )?;
    let address = reachable(options.listen);
    backend.wait_ready(address, "/healthz")?;
    ocr.wait_ready(ocr_address, "/readyz")?;
    println!(
        "flashcards is running: http://{address}  (API docs: http://{address}/docs; \
         OCR service: http://{ocr_address}/docs) — Ctrl-C to stop"
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

/// Where to connect to a server listening on `listen`: a wildcard address means this machine.
fn reachable(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    }
}
