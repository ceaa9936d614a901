//! `cargo xtask bench-operator`: the operator's scale on the kwok node. Many FlashcardStacks
//! (the minimal example, renamed) are created at once; it prints the time from the first create
//! to all of them Ready, the operator's peak memory and CPU time meanwhile, and the API requests it
//! sends per idle minute afterwards (from the apiserver's audit log), beside the goals.

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use flashcards_e2e::{
    ControlPlane, Options as ClusterOptions, audit,
    stack::{self, repository_path},
    wait_for,
    workspace::free_port,
};
use flashcards_operator::FlashcardStack;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::PersistentVolume};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;

use crate::{cargo, control_plane, interrupt};

/// The goals issue #20 sets for 100 stacks.
const GOAL_READY: Duration = Duration::from_secs(60);
const GOAL_RSS_MIB: f64 = 64.0;

/// The namespace the stacks go in, and the chart's release namespace.
const NAMESPACE: &str = "scale";
/// The minimal example's components, one Deployment each.
const COMPONENTS: usize = 4;
const RELEASE_NAMESPACE: &str = "flashcards-system";

#[derive(Debug, clap::Args)]
pub struct Options {
    /// How many FlashcardStacks to create at once.
    #[arg(long, default_value_t = 100)]
    stacks: usize,
    /// How long to count the operator's requests once every stack is Ready.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
}

pub fn run(options: &Options) -> Result<()> {
    interrupt::defer_ctrl_c()?;
    let artifacts = control_plane::ensure_built(control_plane::DEFAULT_JOBS)?;
    cargo::build_release(&["-p", "flashcards-operator", "--bin", "flashcards-operator"])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let figures = runtime.block_on(measure(artifacts.bin, options))?;
    figures.print(options);
    Ok(())
}

struct Figures {
    to_applied: Duration,
    to_ready: Duration,
    peak_rss_mib: f64,
    cpu_to_ready: Duration,
    idle_requests: BTreeMap<String, usize>,
    idle_minutes: f64,
}

impl Figures {
    fn print(&self, options: &Options) {
        let idle_total: usize = self.idle_requests.values().sum();
        let per_minute = idle_total as f64 / self.idle_minutes;
        println!(
            "\noperator at scale: {} FlashcardStacks created at once on the kwok node",
            options.stacks
        );
        println!(
            "  apply to all applied    {:>8.1} s     (every stack's Deployments written)",
            self.to_applied.as_secs_f64()
        );
        println!(
            "  apply to all Ready      {:>8.1} s     goal < {} s",
            self.to_ready.as_secs_f64(),
            GOAL_READY.as_secs()
        );
        println!(
            "  peak RSS                {:>8.1} MiB   goal < {GOAL_RSS_MIB} MiB",
            self.peak_rss_mib
        );
        println!(
            "  CPU until all Ready     {:>8.1} s     ({:.2} cores on average)",
            self.cpu_to_ready.as_secs_f64(),
            self.cpu_to_ready.as_secs_f64() / self.to_ready.as_secs_f64().max(f64::EPSILON)
        );
        println!(
            "  API requests, idle      {per_minute:>8.1} /min  goal: not growing with the stacks"
        );
        for (kind, count) in &self.idle_requests {
            println!("      {kind:<40} {count}");
        }
    }
}

async fn measure(bin: std::path::PathBuf, options: &Options) -> Result<Figures> {
    let control_plane = ControlPlane::start_with(ClusterOptions {
        bin: Some(bin),
        node_address: None,
    })
    .await?;
    let client = control_plane.client();
    // The chart's CRD and RBAC; the operator runs here as a process with the chart's
    // ServiceAccount token, since kwok's pods run nothing.
    stack::succeed(
        control_plane
            .helm()
            .args(["install", "flashcards"])
            .arg(repository_path("charts/flashcards-operator"))
            .args(["--namespace", RELEASE_NAMESPACE, "--create-namespace"])
            .args(["--set", "replicas=0", "--wait=false"]),
    )?;
    stack::succeed(control_plane.kubectl().args([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/flashcardstacks.flashcards.dev",
    ]))?;
    stack::ensure_namespace(&control_plane, NAMESPACE)?;

    // Claims without a class bind to these, as a provisioner's volumes would.
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    for index in 0..options.stacks {
        let name = format!("scale-{index:03}");
        let volume = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": format!("/var/lib/scale/{name}")},
            },
        }))?;
        volumes.create(&PostParams::default(), &volume).await?;
    }
    // Room for every stack's pods on fake nodes (110 pods each).
    for index in 0..options.stacks.div_ceil(25) {
        control_plane
            .add_fake_node(&format!("kwok-scale-{index}"))
            .await?;
    }

    let kubeconfig = control_plane
        .service_account_kubeconfig(RELEASE_NAMESPACE, "flashcards-operator")
        .await?;
    let mut command = Command::new(cargo::release_binary("flashcards-operator"));
    command
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .args(["--listen", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--lease-namespace", RELEASE_NAMESPACE])
        .args(["--identity", "bench-operator"]);
    let mut operator = control_plane.start_process("flashcards-operator", command)?;
    let pid = operator.id().context("the operator is not running")?;
    let sampler = Sampler::start(pid);
    // The operator's start (lease, watches) is not part of the figure.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The example as kubectl reads it (JSON out), so the stacks are exactly what a user applies.
    let example = stack::succeed(
        control_plane
            .kubectl()
            .args(["create", "--dry-run=client", "-o", "json", "-f"])
            .arg(repository_path("manifests/examples/minimal.yaml")),
    )?;
    let example: FlashcardStack =
        serde_json::from_str(&example).context("reading the minimal example")?;
    let stacks: Api<FlashcardStack> = Api::namespaced(client.clone(), NAMESPACE);
    let cpu_before = cpu_time(pid)?;
    let started = Instant::now();
    let mut creates = tokio::task::JoinSet::new();
    for index in 0..options.stacks {
        let mut stack = example.clone();
        stack.metadata.name = Some(format!("stack-{index:03}"));
        stack.metadata.namespace = Some(NAMESPACE.to_owned());
        let stacks = stacks.clone();
        creates.spawn(async move { stacks.create(&PostParams::default(), &stack).await });
    }
    while let Some(created) = creates.join_next().await {
        created.context("creating a stack")??;
    }
    let wanted = options.stacks;
    // The operator's own part: every stack's Deployments written.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let mut applied_at = None;
    wait_for(
        format!("{wanted} stacks Ready"),
        Duration::from_secs(600),
        async || {
            operator
                .check_running()
                .map_err(|err| std::io::Error::other(err.to_string()))?;
            let listed = stacks
                .list(&ListParams::default())
                .await
                .map_err(std::io::Error::other)?;
            if applied_at.is_none() {
                let written = deployments
                    .list_metadata(&ListParams::default())
                    .await
                    .map_err(std::io::Error::other)?;
                if written.items.len() >= wanted * COMPONENTS {
                    applied_at = Some(started.elapsed());
                }
            }
            let ready = listed.items.iter().filter(|stack| is_ready(stack)).count();
            Ok::<_, std::io::Error>((ready == wanted).then_some(()))
        },
    )
    .await?;
    let to_ready = started.elapsed();
    let to_applied = applied_at.unwrap_or(to_ready);
    let cpu_to_ready = cpu_time(pid)?.saturating_sub(cpu_before);

    // Idle: nothing changes; whatever the operator sends now is its steady cost.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let audit = control_plane.audit_log_path();
    let from = fs::metadata(audit)
        .context("reading the audit log's size")?
        .len();
    let idle = Duration::from_secs(options.idle_seconds);
    tokio::time::sleep(idle).await;
    operator.check_running()?;
    let idle_requests = requests_by_kind(audit, from)?;
    let peak_rss_mib = sampler.stop();
    ensure!(
        peak_rss_mib > 0.0,
        "no memory sample of the operator was taken"
    );
    Ok(Figures {
        to_applied,
        to_ready,
        peak_rss_mib,
        cpu_to_ready,
        idle_requests,
        idle_minutes: idle.as_secs_f64() / 60.0,
    })
}

fn is_ready(stack: &FlashcardStack) -> bool {
    let Some(status) = &stack.status else {
        return false;
    };
    status.observed_generation == stack.metadata.generation
        && status
            .conditions
            .iter()
            .any(|condition| condition.r#type == "Ready" && condition.status == "True")
}

/// The operator's requests in the audit log after byte `from`, counted per `verb resource`.
fn requests_by_kind(audit_log: &Path, from: u64) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for request in audit::operator_requests(audit_log, from)? {
        let resource = if request.resource.is_empty() {
            "(discovery)"
        } else {
            &request.resource
        };
        *counts
            .entry(format!("{} {resource}", request.verb))
            .or_insert(0) += 1;
    }
    Ok(counts)
}

/// User plus system CPU time of process `pid`.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> Result<u64> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .with_context(|| format!("field {index} of /proc/{pid}/stat"))
    };
    // utime and stime are the 14th and 15th fields, 12th and 13th after the name.
    let total = ticks(11)? + ticks(12)?;
    let per_second = rustix::param::clock_ticks_per_second();
    Ok(Duration::from_secs_f64(total as f64 / per_second as f64))
}

/// Samples the operator's resident memory every 100 ms; the kernel's own peak (`VmHWM`) is read
/// at the end too, so a spike between samples counts.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    pid: u32,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            let peak_kib = peak_kib.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_kib(pid, "VmRSS:") {
                        peak_kib.fetch_max(rss, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Self {
            stop,
            peak_kib,
            pid,
            thread: Some(thread),
        }
    }

    /// The peak in MiB.
    fn stop(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ignored = thread.join();
        }
        let sampled = self.peak_kib.load(Ordering::Relaxed);
        let kernel = status_kib(self.pid, "VmHWM:").unwrap_or(0);
        sampled.max(kernel) as f64 / 1024.0
    }
}

/// A `kB` line of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}
