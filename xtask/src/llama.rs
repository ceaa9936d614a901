//! llama.cpp's OpenAI-compatible server (PyPI `llama-cpp-python[server]`, built from source into a
//! virtualenv) serving one of our GGUF models: the reference the tests and benchmarks hold our
//! runtime against, and `cargo xtask llama`.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context, Result};
use flashcards_e2e::workspace::free_port;
use serde_json::Value;

use crate::{
    apt, http, interrupt,
    models::{self, Model},
    paths,
    server::{self, Server},
    venv::{self, python_runs},
};

/// What is built into the virtualenv; the server's flags below are those of this version.
pub const LLAMA_CPP_PYTHON: &str = "llama-cpp-python[server]==0.3.36";

/// The virtualenv's folder under the cache, named after the version and the instruction set so
/// that a change of either builds anew.
const LLAMA_CPP_FOLDER: &str = "llama-cpp-0.3.36-x86-64-v3";

/// llama.cpp built for x86-64-v3 (AVX2, FMA, F16C), not for the CPU at hand: the reference's
/// numbers are then the same on every machine the tests run on, and they are the numbers our
/// AVX2 kernels compute (greedy parity turns on their last bits). Elsewhere cmake ignores them.
const LLAMA_CPP_CMAKE_ARGS: &str = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
     -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF";

/// What building llama.cpp needs, as `(program, Debian package)`: cmake, C and C++ compilers, and
/// make, cmake's generator when ninja is not at hand. No Python headers: the package builds a
/// plain shared library that Python loads with ctypes.
const BUILD_PACKAGES: [(&str, &str); 5] = [
    ("python3", "python3"),
    ("cmake", "cmake"),
    ("make", "make"),
    ("gcc", "gcc"),
    ("g++", "g++"),
];

/// Debian's python3 can only create virtualenvs with python3-venv, which provides ensurepip.
const ENSUREPIP: (&str, &str) = ("/usr/lib/*/ensurepip/__init__.py", "python3-venv");

/// Context window, in tokens, for every request.
const CONTEXT_TOKENS: u32 = 2048;

/// How long the server may take to load the model and answer; a loaded 2-core machine is slow.
const LOAD_TIMEOUT: Duration = Duration::from_secs(180);

/// `cargo xtask llama`'s options.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The model to serve.
    #[arg(long, value_enum, default_value = "smollm2")]
    model: Model,

    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
}

/// `cargo xtask llama`: the server in the foreground, with its logs, until Ctrl-C.
pub fn run(options: &Options) -> Result<ExitCode> {
    interrupt::defer_ctrl_c()?;
    // Fail now rather than after a build of several minutes.
    TcpListener::bind(options.listen)
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let mut llama = LlamaServer::start_on(
        options.model,
        options.listen,
        true,
        shared_threads(),
        Kernels::Stock,
    )?;
    println!(
        "llama.cpp server is running: {}  (model {:?}, OpenAI API under /v1) — Ctrl-C to stop",
        llama.url(),
        llama.model_id()
    );
    // Ctrl-C reaches the server directly (same process group); it shuts down and we return.
    let status = llama.server.wait()?;
    if status.success() || interrupt::requested() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("the llama.cpp server stopped: {status}");
        Ok(ExitCode::FAILURE)
    }
}

/// A running llama.cpp server, stopped when dropped.
#[derive(Debug)]
pub struct LlamaServer {
    server: Server,
    url: String,
    model_id: String,
    model_path: PathBuf,
}

/// Which of llama.cpp's matrix kernels the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernels {
    /// The stock kernels only. llama.cpp also has a tiled kernel for K-quant products of 8
    /// tokens or more, faster on long prompts but adding in another order.
    Stock,
    /// Whatever llama.cpp finds fastest.
    Fastest,
}

/// The variable by which ggml's CPU backend turns its tiled K-quant kernel off (`0`).
const TILED_KERNELS_VAR: &str = "GGML_CPU_TILED_MM";

impl LlamaServer {
    /// Builds what is missing and starts the server on a free loopback port, quietly: only its
    /// warnings and errors reach the terminal. Its kernels are llama.cpp's stock ones, whose
    /// numbers the local runtime reproduces bit for bit: the reference of the parity tests.
    pub fn start(model: Model) -> Result<Self> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        Self::start_on(model, listen, false, shared_threads(), Kernels::Stock)
    }

    /// Like [`LlamaServer::start`], with all cores and llama.cpp's fastest kernels: for
    /// measurements that run nothing beside it.
    pub fn start_alone(model: Model) -> Result<Self> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        Self::start_on(model, listen, false, cores(), Kernels::Fastest)
    }

    fn start_on(
        model: Model,
        listen: SocketAddr,
        verbose: bool,
        threads: usize,
        kernels: Kernels,
    ) -> Result<Self> {
        let venv = ensure_server()?;
        let model_path = models::ensure_model(model)?;
        let mut command = Command::new(venv::python(&venv));
        command
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model_path)
            .args(["--model_alias", model.name()])
            .args(["--host", &listen.ip().to_string()])
            .args(["--port", &listen.port().to_string()])
            .args(["--n_ctx", &CONTEXT_TOKENS.to_string()])
            .args(["--n_threads", &threads.to_string()])
            .args(["--n_threads_batch", &threads.to_string()])
            // By default a new request cuts off a streaming one; concurrent tests wait instead.
            .args(["--interrupt_requests", "false"])
            .args(["--verbose", if verbose { "true" } else { "false" }])
            // The server also reads its settings from the environment: HOST and PORT override
            // the flags, CONFIG_FILE replaces them all and API_KEY would lock us out.
            .env_remove("HOST")
            .env_remove("PORT")
            .env_remove("CONFIG_FILE")
            .env_remove("API_KEY");
        if kernels == Kernels::Stock {
            command.env(TILED_KERNELS_VAR, "0");
        }
        if !verbose {
            // Uvicorn's access log, a line per request.
            command.stdout(Stdio::null());
        }
        let mut server = Server::start("the llama.cpp server", &mut command)?;
        let address = server::reachable(listen);
        server.wait_ready_within(address, "/v1/models", LOAD_TIMEOUT)?;
        let models = http::request(address, "GET", "/v1/models", &[], None)?
            .expect_status(200, "listing the llama.cpp server's models")?;
        Ok(Self {
            server,
            url: format!("http://{address}"),
            model_id: first_model_id(&models.body)?,
            model_path,
        })
    }

    /// `http://127.0.0.1:PORT`, without `/v1`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The model id that `GET /v1/models` reports.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The GGUF file it serves.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// The server's process id, for its memory use.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }
}

/// The virtualenv with llama-cpp-python's server, built the first time (several minutes).
pub fn ensure_server() -> Result<PathBuf> {
    let dir = paths::cache_dir()?.join(LLAMA_CPP_FOLDER);
    if let Some(venv) = venv::ready(&dir, SERVER_CHECK) {
        return Ok(venv);
    }
    apt::ensure_apt_packages(&BUILD_PACKAGES)?;
    if !python_runs(Path::new("python3"), "import ensurepip") {
        apt::ensure_apt_packages(&[ENSUREPIP])?;
    }
    eprintln!(
        "building {LLAMA_CPP_PYTHON} from source into {}: this takes several minutes the first time",
        dir.join("venv").display()
    );
    venv::install(
        &dir,
        LLAMA_CPP_PYTHON,
        &[LLAMA_CPP_PYTHON],
        &[
            ("CMAKE_BUILD_PARALLEL_LEVEL", cores().to_string()),
            ("CMAKE_ARGS", LLAMA_CPP_CMAKE_ARGS.to_owned()),
            // pip's wheel cache is keyed by version, not by CMAKE_ARGS: a wheel built for
            // another instruction set must not be reused.
            ("PIP_NO_CACHE_DIR", "1".to_owned()),
        ],
        SERVER_CHECK,
    )
}

const SERVER_CHECK: &str = "import llama_cpp.server";

/// Half the cores: llama.cpp's threads wait for each other at every step, so one that shares
/// its core with another busy process (a test, a build) stalls them all. On 2 cores with other
/// work running, 2 threads fell from 88 to as low as 4 tokens/s; 1 thread held 60-67.
fn shared_threads() -> usize {
    (cores() / 2).max(1)
}

fn cores() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}

/// The first model's id in a `GET /v1/models` answer.
fn first_model_id(body: &str) -> Result<String> {
    let models: Value =
        serde_json::from_str(body).with_context(|| format!("parsing the model list {body}"))?;
    models
        .pointer("/data/0/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no model id in {body}"))
}

#[cfg(test)]
mod tests {
    use super::first_model_id;

    #[test]
    fn reads_the_model_id() -> anyhow::Result<()> {
        let body = r#"{"object":"list","data":[{"id":"SmolLM2-135M-Instruct","object":"model",
            "owned_by":"me","permissions":[]}]}"#;
        assert_eq!(first_model_id(body)?, "SmolLM2-135M-Instruct");
        assert!(first_model_id(r#"{"object":"list","data":[]}"#).is_err());
        assert!(first_model_id("<html>").is_err());
        Ok(())
    }
}
