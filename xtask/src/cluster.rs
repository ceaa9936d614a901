//! `cargo xtask cluster up|down`: the e2e tests' one-node cluster (the control plane and a real
//! node, see the flashcards-e2e crate) with the operator installed by its chart and an example
//! stack, for trying the operator without a cluster of one's own.

use std::{
    fs,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use flashcards_e2e::{
    ControlPlane, NODE_ADDRESS, Options, RealNode,
    stack::{self, STACK, STACK_NAMESPACE},
};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use rustix::process::{Pid, Signal, kill_process, test_kill_process};

use crate::{cargo, control_plane, images, interrupt, node, paths};

/// `cargo xtask cluster`'s subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Build what is missing, start the cluster, install the operator's chart and apply an
    /// example FlashcardStack, then print the web app's URL and a KUBECONFIG and keep running
    /// until Ctrl-C or `cargo xtask cluster down`. Needs root (the node's network and mounts).
    Up {
        /// The example under manifests/examples to apply.
        #[arg(long, default_value = "minimal")]
        example: String,
    },
    /// Stop the cluster that `up` runs, and remove whatever a killed `up` left behind.
    Down,
}

/// How long `down` waits for `up` to tear its cluster down.
const DOWN_TIMEOUT: Duration = Duration::from_secs(90);

pub fn run(action: &Action) -> Result<()> {
    match action {
        Action::Up { example } => up(example),
        Action::Down => down(),
    }
}

/// Where `up` writes its process id, for `down`.
fn pid_file() -> Result<PathBuf> {
    Ok(paths::cache_dir()?.join("cluster/up.pid"))
}

/// Where `up` writes its control plane's folder, for `down` to clean up after a killed `up`.
fn control_plane_file() -> Result<PathBuf> {
    Ok(paths::cache_dir()?.join("cluster/control-plane"))
}

fn up(example: &str) -> Result<()> {
    interrupt::defer_stop_signals()?;
    let artifacts = control_plane::ensure_built(control_plane::DEFAULT_JOBS)?;
    let node_bin = node::ensure_built(control_plane::DEFAULT_JOBS)?;
    let images =
        images::ensure_for_tests(&node_bin, || cargo::build_dev(&images::service_packages()))?;
    interrupt::bail_if_requested()?;
    let pid_file = pid_file()?;
    if let Some(parent) = pid_file.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&pid_file, std::process::id().to_string())
        .with_context(|| format!("writing {}", pid_file.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(serve(artifacts.bin, &node_bin, &images, example));
    let _ignored = fs::remove_file(&pid_file);
    let _ignored = fs::remove_file(control_plane_file()?);
    served
}

/// Runs the cluster until a stop is requested; dropping the node and the control plane tears
/// them down.
async fn serve(
    bin: PathBuf,
    node_bin: &std::path::Path,
    images: &std::path::Path,
    example: &str,
) -> Result<()> {
    let started = Instant::now();
    let control_plane = ControlPlane::start_with(Options {
        bin: Some(bin),
        node_address: Some(NODE_ADDRESS),
    })
    .await?;
    let recorded = control_plane_file()?;
    fs::write(
        &recorded,
        control_plane.dir().as_os_str().as_encoded_bytes(),
    )
    .with_context(|| format!("writing {}", recorded.display()))?;
    let mut node = RealNode::start_from(&control_plane, node_bin, images).await?;
    stack::install_operator(&control_plane, || node.check_running()).await?;
    stack::apply_example(&control_plane, example)?;
    stack::wait_stack_ready(&control_plane, || node.check_running()).await?;
    let services: Api<Service> = Api::namespaced(control_plane.client(), STACK_NAMESPACE);
    let web = services.get(&format!("{STACK}-web")).await?;
    let address = web
        .spec
        .and_then(|spec| spec.cluster_ip)
        .context("the web Service has no cluster IP")?;
    println!(
        "\nthe {example} stack is Ready ({:.0?} from start):\n  web app: http://{address}:{}\n  \
         export KUBECONFIG={}\n  kubectl get flashcardstacks -A\nthe node's logs are in {}/logs; \
         stop with Ctrl-C or `cargo xtask cluster down`",
        started.elapsed(),
        flashcards_contracts::ports::WEB,
        control_plane.kubeconfig_path().display(),
        node.dir().display()
    );
    while !interrupt::requested() {
        node.check_running()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("stopping the cluster");
    Ok(())
}

fn down() -> Result<()> {
    let pid_file = pid_file()?;
    let running = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|pid| pid.trim().parse::<i32>().ok())
        .and_then(Pid::from_raw)
        .filter(|pid| is_cluster_up(*pid));
    if let Some(pid) = running {
        eprintln!("asking `cargo xtask cluster up` (process {pid:?}) to stop");
        kill_process(pid, Signal::TERM).context("signalling `cluster up`")?;
        let deadline = Instant::now() + DOWN_TIMEOUT;
        while test_kill_process(pid).is_ok() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(250));
        }
    }
    flashcards_e2e::remove_leftovers();
    let recorded = control_plane_file()?;
    if let Ok(dir) = fs::read_to_string(&recorded) {
        flashcards_e2e::remove_control_plane_leftovers(std::path::Path::new(dir.trim()));
        let _ignored = fs::remove_file(&recorded);
    }
    let _ignored = fs::remove_file(&pid_file);
    eprintln!("the cluster is down");
    Ok(())
}

/// Whether `pid` is a running `cluster up`: a pid file left by a killed one (or a reboot) may
/// name a process id that now belongs to something else, which must not be signalled.
fn is_cluster_up(pid: Pid) -> bool {
    let Ok(command_line) = fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())) else {
        return false;
    };
    let words: Vec<&[u8]> = command_line.split(|byte| *byte == 0).collect();
    test_kill_process(pid).is_ok()
        && words.iter().any(|word| word.ends_with(b"xtask"))
        && words
            .windows(2)
            .any(|pair| pair == [b"cluster".as_slice(), b"up".as_slice()])
}
