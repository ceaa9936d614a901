//! An MLflow tracking server (PyPI `mlflow`, installed into a virtualenv of its own) on SQLite: the
//! tests' MLflow (`cargo xtask test` names it in FLASHCARDS_TEST_MLFLOW_URL), `cargo xtask up
//! --mlflow` and `cargo xtask mlflow`.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{self, Command, ExitCode, Stdio},
    time::Duration,
};

use anyhow::{Context, Result};
use flashcards_e2e::workspace::free_port;

use crate::{
    apt, interrupt,
    paths::{self, ScratchDir},
    server::{self, Server},
    supervise::{Stop, Supervisor},
    venv,
};

/// The server the services are tested against; the operator deploys the same version's image.
const MLFLOW: &str = "mlflow==2.22.0";

/// The virtualenv's folder under the cache, named after the version so an upgrade installs anew.
const MLFLOW_FOLDER: &str = "mlflow-2.22.0";

/// Caps on what `mlflow` itself leaves open: SQLAlchemy 2.1 removed a pool class that MLflow 2.22
/// imports, so `mlflow server` fails at start with it.
const CONSTRAINTS: [&str; 1] = ["sqlalchemy<2.1"];

/// Migrating a new SQLite store and starting gunicorn takes about 10 s on an idle 2-core machine;
/// a busy one (tests building) is slower.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// `cargo xtask mlflow`'s options.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    listen: SocketAddr,

    /// Folder for the runs (mlflow.db) and artifacts [default: ~/.local/share/flashcards/mlflow]
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// `cargo xtask mlflow`: the server in the foreground until Ctrl-C, for running the tests by hand
/// (`FLASHCARDS_TEST_MLFLOW_URL=http://127.0.0.1:5000 cargo test -p flashcards-ocr`) or pointing
/// services at it (`--mlflow-url`).
pub fn run(options: &Options) -> Result<ExitCode> {
    interrupt::defer_stop_signals()?;
    server::ensure_free(options.listen, "MLflow", "--listen")?;
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => data_dir()?,
    };
    let (server, url) = start_in(&data_dir, options.listen)?;
    let mut stack = Supervisor::default();
    stack.adopt(server);
    println!(
        "MLflow is running: {url}  (runs in {}) — Ctrl-C to stop",
        data_dir.display()
    );
    match stack.watch()? {
        Stop::Requested => Ok(ExitCode::SUCCESS),
        Stop::Exited { status, .. } => {
            eprintln!("the MLflow server stopped by itself ({status})");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where `cargo xtask up --mlflow` and `cargo xtask mlflow` keep runs between starts.
pub fn data_dir() -> Result<PathBuf> {
    Ok(paths::data_dir()?.join("mlflow"))
}

/// A throwaway MLflow server for the tests, stopped (gunicorn included) when dropped, and its
/// folder removed.
#[derive(Debug)]
pub struct MlflowServer {
    // Declared first so it stops before the folder goes.
    _server: Server,
    url: String,
    _scratch: ScratchDir,
}

impl MlflowServer {
    /// A free loopback port, a store in a scratch folder.
    pub fn start() -> Result<Self> {
        let scratch = ScratchDir::create(
            std::env::temp_dir().join(format!("flashcards-mlflow-{}", process::id())),
        )?;
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let (server, url) = launch(scratch.path(), listen, true)?;
        Ok(Self {
            _server: server,
            url,
            _scratch: scratch,
        })
    }

    /// `http://127.0.0.1:PORT`, what `--mlflow-url` takes.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A server whose runs stay in `dir` between starts, with its log on the terminal, stopped
/// (gunicorn included) when dropped; and its URL, what `--mlflow-url` takes.
pub fn start_in(dir: &Path, listen: SocketAddr) -> Result<(Server, String)> {
    launch(dir, listen, false)
}

fn launch(dir: &Path, listen: SocketAddr, quiet: bool) -> Result<(Server, String)> {
    let venv = ensure_installed()?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let mut command = Command::new(venv.join("bin").join("python"));
    command
        .args(server_args(&dir, listen))
        .current_dir(&dir)
        // MLflow reads these too; ours must win.
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_BACKEND_STORE_URI")
        .env_remove("MLFLOW_ARTIFACTS_DESTINATION");
    if quiet {
        // gunicorn's and alembic's start-up lines; errors still show.
        command.stdout(Stdio::null());
    }
    let mut server = Server::start_group("the MLflow server", &mut command)?;
    let address = server::reachable(listen);
    server.wait_ready_within(address, "/health", STARTUP_TIMEOUT)?;
    Ok((server, format!("http://{address}")))
}

/// `python -m mlflow server ...` on SQLite in `dir`, artifacts served from `dir/artifacts`, one
/// worker (the services send one request at a time each; more workers only cost memory).
fn server_args(dir: &Path, listen: SocketAddr) -> Vec<String> {
    vec![
        "-m".to_owned(),
        "mlflow".to_owned(),
        "server".to_owned(),
        "--host".to_owned(),
        listen.ip().to_string(),
        "--port".to_owned(),
        listen.port().to_string(),
        "--backend-store-uri".to_owned(),
        format!("sqlite:///{}", dir.join("mlflow.db").display()),
        "--artifacts-destination".to_owned(),
        dir.join("artifacts").display().to_string(),
        "--workers".to_owned(),
        "1".to_owned(),
    ]
}

/// The virtualenv with MLflow, installed from PyPI the first time (about a minute).
pub fn ensure_installed() -> Result<PathBuf> {
    let dir = paths::cache_dir()?.join(MLFLOW_FOLDER);
    if let Some(venv) = venv::ready(&dir, SERVER_CHECK) {
        return Ok(venv);
    }
    apt::ensure_apt_packages(&venv::PYTHON_PACKAGES)?;
    eprintln!(
        "installing {MLFLOW} from PyPI into {}: about a minute, the first time",
        dir.join("venv").display()
    );
    venv::install(
        &dir,
        MLFLOW,
        &[&[MLFLOW][..], &CONSTRAINTS].concat(),
        &[],
        SERVER_CHECK,
    )
}

/// The server's modules import: the check that the install is complete and usable (it fails, for
/// one, with the SQLAlchemy that [`CONSTRAINTS`] rules out).
const SERVER_CHECK: &str = "import mlflow.server, mlflow.store.db.utils";

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::server_args;

    #[test]
    fn the_server_stores_runs_in_its_folder_on_sqlite() {
        let args = server_args(Path::new("/tmp/x"), "127.0.0.1:5123".parse().expect("addr"));
        let line = args.join(" ");
        assert_eq!(
            line,
            "-m mlflow server --host 127.0.0.1 --port 5123 \
             --backend-store-uri sqlite:////tmp/x/mlflow.db \
             --artifacts-destination /tmp/x/artifacts --workers 1"
        );
    }
}
