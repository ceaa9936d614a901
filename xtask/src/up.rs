//! `cargo xtask up`: the backend in release mode on SQLite, with embedded defaults, until Ctrl-C.

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

    /// Folder for flashcards.db [default: ~/.local/share/flashcards]
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(options: &Options) -> Result<ExitCode> {
    interrupt::defer_ctrl_c()?;
    // Another server on the port would answer /healthz in our backend's place.
    TcpListener::bind(options.listen).with_context(|| {
        format!(
            "cannot listen on {} (is flashcards already running?)",
            options.listen
        )
    })?;
    apt::ensure_system_packages()?;
    cargo::build_release(&["-p", "flashcards-backend"])?;
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => paths::data_dir()?,
    };
    fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let database = data_dir.join("flashcards.db");
    eprintln!("database: {}", database.display());

    let mut backend = Server::start(
        "flashcards-backend",
        Command::new(cargo::release_binary("flashcards-backend"))
            .arg("--listen")
            .arg(options.listen.to_string())
            .arg("--database-url")
            .arg(format!("sqlite://{}", database.display())),
    )?;
    let address = reachable(options.listen);
    backend.wait_ready(address, "/healthz")?;
    println!(
        "flashcards is running: http://{address}  (API docs: http://{address}/docs) — Ctrl-C to stop"
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
