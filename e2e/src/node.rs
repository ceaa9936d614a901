//! A real node beside the control plane: containerd running pods through runc, the CNI bridge
//! plugin, kubelet, kube-proxy (nftables), CoreDNS and Rancher's local-path-provisioner, all as
//! processes of this machine, and the stack's images imported into containerd from archives (there
//! is no registry to pull from).
//!
//! The node is one per machine: its bridge, pod subnet and kube-proxy's nftables tables are the
//! host's. CoreDNS and the provisioner run as host processes rather than pods, which needs no
//! images of theirs; pods reach CoreDNS on the bridge's address, which the kubelet hands them as
//! their nameserver.

use std::{
    env, fmt, fs, io,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    core::v1::{ConfigMap, Namespace, Node, ServiceAccount},
    storage::v1::StorageClass,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::json;
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

use crate::{ControlPlane, Error, process::Process, wait::wait_for, workspace::free_port};

/// The folder with the node's binaries, which `cargo xtask test` sets.
pub const NODE_BIN_VAR: &str = "FLASHCARDS_E2E_NODE_BIN";

/// The folder of image archives (`docker save` format, one `.tar` each) to import, which `cargo
/// xtask test` sets.
pub const IMAGES_VAR: &str = "FLASHCARDS_E2E_IMAGES";

/// The pod sandbox image containerd is told to use; `cargo xtask images` builds it from the
/// statically linked `pause` in the node's binaries.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The full example's database and upstream model server, stand-ins built from `e2e/images/`.
pub const POSTGRES_IMAGE: &str = "localhost/flashcards-e2e-postgres:15";
pub const OPENAI_SERVER_IMAGE: &str = "localhost/flashcards-e2e-openai-server:0.3.36";

/// The image the provisioner's helper pods run (`mkdir`, `rm`): the local Debian base the stack's
/// images are built on.
pub const HELPER_IMAGE: &str = "localhost/flashcards-base:bookworm";

/// The node's name, its bridge and addresses. The bridge's address is the node's: the kubelet
/// reports it, the apiserver advertises it to pods, CoreDNS answers on it.
pub const NODE_NAME: &str = "flashcards-node";
const BRIDGE: &str = "fcnode0";
/// The kubelet's well-known port, which the Prometheus Operator's kubelet Service names (it
/// cannot be told another): one real node per machine.
pub const KUBELET_PORT: u16 = 10250;

/// The CNI network's name, which the bridge plugin writes into its iptables rules' comments.
const CNI_NETWORK: &str = "flashcards";
pub const NODE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const POD_SUBNET: &str = "10.88.0.0/24";
const SERVICE_SUBNET: &str = "10.96.0.0/16";

/// The StorageClass the provisioner serves, made the cluster's default.
pub const STORAGE_CLASS: &str = "local-path";
const PROVISIONER_NAMESPACE: &str = "local-path-storage";

/// How long the node may take to register and become Ready, and CoreDNS to sync.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// What must be in [`NODE_BIN_VAR`]'s folder.
const REQUIRED_FILES: [&str; 13] = [
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "bridge",
    "loopback",
    "host-local",
    "portmap",
    "coredns",
    "crictl",
    "local-path-provisioner",
];

/// A running node, torn down when dropped: its pods removed, its processes stopped, its mounts,
/// bridge and nftables tables gone. Its folder (with the logs) is kept if the thread is panicking.
pub struct RealNode {
    // Fields drop in order; `Drop` first removes the pods while containerd still runs.
    provisioner: Process,
    coredns: Process,
    kube_proxy: Process,
    kubelet: Process,
    containerd: Process,
    /// The kubelet's `/healthz` port on 127.0.0.1.
    kubelet_healthz: u16,
    bin: PathBuf,
    socket: PathBuf,
    dir: TempDir,
}

impl RealNode {
    /// Sets up the bridge, starts containerd and imports [`IMAGES_VAR`]'s archives, then the
    /// kubelet (returning once the node is Ready), kube-proxy, CoreDNS and the provisioner.
    /// `control_plane` must have been started with [`crate::Options::node_address`] set to
    /// [`NODE_ADDRESS`].
    pub async fn start(control_plane: &ControlPlane) -> Result<Self, Error> {
        Self::start_from(
            control_plane,
            &configured_dir(NODE_BIN_VAR)?,
            &configured_dir(IMAGES_VAR)?,
        )
        .await
    }

    /// [`Self::start`] with the binaries from `bin` and the image archives from `images`.
    pub async fn start_from(
        control_plane: &ControlPlane,
        bin: &Path,
        images: &Path,
    ) -> Result<Self, Error> {
        let bin = bin.to_owned();
        for file in REQUIRED_FILES {
            let path = bin.join(file);
            if !path.is_file() {
                return Err(Error::Missing { path });
            }
        }
        remove_network();
        mount_volumes()?;
        let dir = tempfile::Builder::new()
            .prefix(NODE_DIR_PREFIX)
            .tempdir()
            .map_err(Error::io("creating the node's folder"))?;
        let root = dir.path();
        for sub in [
            "logs",
            "cni/net.d",
            "cni/ipam",
            "pki",
            "kubelet",
            "pod-logs",
        ] {
            fs::create_dir_all(root.join(sub))
                .map_err(Error::io(format!("creating {sub} in {}", root.display())))?;
        }
        set_up_network()?;
        let log = |name: &str| root.join("logs").join(format!("{name}.log"));

        write(
            &root.join("cni/net.d/10-flashcards.conflist"),
            &cni_config(root).to_string(),
        )?;
        let socket = root.join("containerd/containerd.sock");
        write(
            &root.join("containerd.toml"),
            &containerd_config(root, &bin, &socket),
        )?;
        let mut containerd_command = Command::new(bin.join("containerd"));
        containerd_command
            .arg("--config")
            .arg(root.join("containerd.toml"))
            // The shim and the CNI plugins are found on PATH, iptables for the bridge's masquerade.
            .env("PATH", path_with(&bin));
        let mut containerd = Process::start("containerd", containerd_command, log("containerd"))?;
        wait_for("containerd answering", READY_TIMEOUT, async || {
            containerd.check_running()?;
            Ok::<_, Error>(ctr(&bin, &socket, &["version"]).ok())
        })
        .await?;
        import_images(&bin, &socket, images)?;
        link_cadvisor_socket(&socket)?;

        let pki = root.join("pki");
        let authority = control_plane.authority();
        let serving = authority.serving(NODE_NAME, &[&NODE_ADDRESS.to_string(), NODE_NAME])?;
        write(&pki.join("kubelet.crt"), &serving.cert)?;
        write(&pki.join("kubelet.key"), &serving.key)?;
        write(&pki.join("ca.crt"), control_plane.ca_pem())?;
        let kubeconfig = |user: &str| root.join(format!("{user}.kubeconfig"));
        // The users and groups that the bootstrap RBAC policy grants the node's and kube-proxy's
        // roles; CoreDNS and the provisioner are harness parts, like kwok, with full rights.
        control_plane.client_kubeconfig(
            &format!("system:node:{NODE_NAME}"),
            Some("system:nodes"),
            &kubeconfig("kubelet"),
        )?;
        control_plane.client_kubeconfig("system:kube-proxy", None, &kubeconfig("kube-proxy"))?;
        for harness_part in ["coredns", "local-path-provisioner"] {
            control_plane.client_kubeconfig(
                harness_part,
                Some("system:masters"),
                &kubeconfig(harness_part),
            )?;
        }
        write(&root.join("resolv.conf"), "")?;
        let kubelet_ports = (KUBELET_PORT, free_port()?);
        write(
            &root.join("kubelet.json"),
            &kubelet_config(root, &socket, kubelet_ports).to_string(),
        )?;
        let mut kubelet_command = Command::new(bin.join("kubelet"));
        kubelet_command
            .arg(format!("--config={}", root.join("kubelet.json").display()))
            .arg(format!("--kubeconfig={}", kubeconfig("kubelet").display()))
            .arg(format!("--root-dir={}", root.join("kubelet").display()))
            .arg(format!("--node-ip={NODE_ADDRESS}"))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .env("PATH", path_with(&bin));
        let mut kubelet = Process::start("kubelet", kubelet_command, log("kubelet"))?;
        let client = control_plane.client();
        let nodes: Api<Node> = Api::all(client.clone());
        wait_for(
            "the kubelet's node becoming Ready",
            READY_TIMEOUT,
            async || {
                kubelet.check_running()?;
                containerd.check_running()?;
                Ok::<_, Error>(nodes.get_opt(NODE_NAME).await?.filter(is_ready).map(drop))
            },
        )
        .await?;

        let proxy_ports = (free_port()?, free_port()?);
        let mut proxy_command = Command::new(bin.join("kube-proxy"));
        proxy_command
            .arg(format!(
                "--kubeconfig={}",
                kubeconfig("kube-proxy").display()
            ))
            .arg("--proxy-mode=nftables")
            .arg(format!("--cluster-cidr={POD_SUBNET}"))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!(
                "--healthz-bind-address=127.0.0.1:{}",
                proxy_ports.0
            ))
            .arg(format!(
                "--metrics-bind-address=127.0.0.1:{}",
                proxy_ports.1
            ))
            // The sandbox may not raise the host's conntrack table; its size is plenty here.
            .arg("--conntrack-max-per-core=0")
            .arg("--conntrack-min=0");
        let mut kube_proxy = Process::start("kube-proxy", proxy_command, log("kube-proxy"))?;
        wait_http(&mut kube_proxy, proxy_ports.0, "/healthz").await?;

        let dns_ready = free_port()?;
        write(
            &root.join("Corefile"),
            &corefile(&kubeconfig("coredns"), dns_ready),
        )?;
        let mut coredns_command = Command::new(bin.join("coredns"));
        coredns_command.arg("-conf").arg(root.join("Corefile"));
        let mut coredns = Process::start("coredns", coredns_command, log("coredns"))?;
        wait_http(&mut coredns, dns_ready, "/ready").await?;

        set_up_provisioner(&client).await?;
        let mut provisioner_command = Command::new(bin.join("local-path-provisioner"));
        provisioner_command
            .arg("start")
            .arg(format!(
                "--kubeconfig={}",
                kubeconfig("local-path-provisioner").display()
            ))
            .arg(format!("--namespace={PROVISIONER_NAMESPACE}"))
            .arg(format!("--helper-image={HELPER_IMAGE}"))
            .arg(format!("--service-account-name={PROVISIONER_ACCOUNT}"))
            .arg(format!("--configmap-name={PROVISIONER_CONFIG}"));
        let provisioner = Process::start(
            "local-path-provisioner",
            provisioner_command,
            log("local-path-provisioner"),
        )?;
        let node = Self {
            provisioner,
            coredns,
            kube_proxy,
            kubelet,
            containerd,
            kubelet_healthz: kubelet_ports.1,
            bin,
            socket,
            dir,
        };
        // Policies are enforced from the first pod on, as in a cluster with a network plugin.
        crate::network_policy::install(control_plane).await?;
        Ok(node)
    }

    /// The node's folder: its components' logs are in `logs/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Fails with the end of its log if any of the node's processes has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        for process in [
            &mut self.containerd,
            &mut self.kubelet,
            &mut self.kube_proxy,
            &mut self.coredns,
            &mut self.provisioner,
        ] {
            process.check_running()?;
        }
        Ok(())
    }

    /// The IPv4 address CoreDNS gives `name` (a fully qualified cluster name, such as
    /// `web.ns.svc.cluster.local`), asked as a pod would, on the node's address.
    pub async fn resolve(&self, name: &str) -> Result<Ipv4Addr, Error> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .await
            .map_err(Error::io("opening a UDP socket"))?;
        socket
            .send_to(&dns_query(name), (NODE_ADDRESS, 53))
            .await
            .map_err(Error::io(format!("asking CoreDNS for {name}")))?;
        let mut answer = [0_u8; 512];
        let length = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut answer))
            .await
            .map_err(|_elapsed| Error::TimedOut {
                what: format!("CoreDNS answering for {name}"),
                timeout: Duration::from_secs(5),
                last_error: None,
            })?
            .map_err(Error::io(format!("reading CoreDNS's answer for {name}")))?;
        first_address(&answer[..length]).ok_or_else(|| Error::Command {
            command: format!("DNS query for {name}"),
            stderr: "no A record in the answer".to_owned(),
        })
    }

    /// Gives an image the node has another name, as pushing a new tag to a registry would.
    pub fn tag_image(&self, source: &str, target: &str) -> Result<(), Error> {
        ctr(
            &self.bin,
            &self.socket,
            &["images", "tag", "--force", source, target],
        )
        .map(drop)
    }

    /// Stops the kubelet, restarts containerd, then starts the kubelet again, as upgrading the
    /// node's runtime does; returns once both answer. The containers' shims outlive containerd,
    /// so the pods go on running throughout.
    pub async fn restart_runtime(&mut self) -> Result<(), Error> {
        self.kubelet.stop();
        self.containerd.restart()?;
        let (bin, socket) = (self.bin.clone(), self.socket.clone());
        let containerd = &mut self.containerd;
        wait_for("containerd answering again", READY_TIMEOUT, async || {
            containerd.check_running()?;
            Ok::<_, Error>(ctr(&bin, &socket, &["version"]).ok())
        })
        .await?;
        self.kubelet.restart()?;
        wait_http(&mut self.kubelet, self.kubelet_healthz, "/healthz").await
    }

    /// `crictl` against the node's containerd, ready for more arguments.
    pub fn crictl(&self) -> Command {
        let mut command = Command::new(self.bin.join("crictl"));
        command.arg(format!(
            "--runtime-endpoint=unix://{}",
            self.socket.display()
        ));
        command
    }
}

impl fmt::Debug for RealNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealNode")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        // The kubelet would restart the pods it sees removed; without it, removing every pod
        // sandbox through the CRI stops their containers and releases their network.
        self.provisioner.stop();
        self.kubelet.stop();
        let removed = self
            .crictl()
            .args(["rmp", "--all", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !removed.is_ok_and(|status| status.success()) {
            eprintln!("could not remove every pod of the node; containers may be left running");
        }
        self.containerd.stop();
        kill_leftovers(&self.dir.path().display().to_string());
        unmount_below(self.dir.path());
        unmount_below(Path::new(VOLUMES_DIR));
        unlink_cadvisor_socket();
        remove_network();
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the node's folder, with its components' logs, is kept: {}",
                self.dir.path().display()
            );
        }
    }
}

/// The node's folder in the temporary folder starts with this.
const NODE_DIR_PREFIX: &str = "flashcards-node-";

const PROVISIONER_ACCOUNT: &str = "local-path-provisioner-service-account";
const PROVISIONER_CONFIG: &str = "local-path-config";

fn configured_dir(var: &'static str) -> Result<PathBuf, Error> {
    let dir = env::var_os(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .ok_or(Error::NotConfigured { var })?;
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(Error::Missing { path: dir })
    }
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    fs::write(path, contents).map_err(Error::io(format!("writing {}", path.display())))
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display()
    )
}

/// Runs a command to its end; its stderr becomes the error.
fn run(command: &mut Command) -> Result<String, Error> {
    let description = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io(format!("running {description}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: description,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

fn ctr(bin: &Path, socket: &Path, args: &[&str]) -> Result<String, Error> {
    run(Command::new(bin.join("ctr"))
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io"])
        .args(args))
}

/// The bridge with the node's address, forwarding on, bridged traffic through the netfilter hooks
/// (kube-proxy's rules must see pod-to-Service traffic between pods on the same bridge).
fn set_up_network() -> Result<(), Error> {
    run(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]))?;
    run(Command::new("ip").args(["addr", "add", &format!("{NODE_ADDRESS}/24"), "dev", BRIDGE]))?;
    run(Command::new("ip").args(["link", "set", BRIDGE, "up"]))?;
    // Service addresses from this machine go out over the bridge, from the node's address.
    run(Command::new("ip").args([
        "route",
        "replace",
        SERVICE_SUBNET,
        "dev",
        BRIDGE,
        "src",
        &NODE_ADDRESS.to_string(),
    ]))?;
    let bridge_netfilter = Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables");
    if !bridge_netfilter.exists() {
        run(Command::new("modprobe").arg("br_netfilter"))?;
    }
    for (path, value) in [
        ("/proc/sys/net/ipv4/ip_forward", "1"),
        ("/proc/sys/net/bridge/bridge-nf-call-iptables", "1"),
    ] {
        write(Path::new(path), value)?;
    }
    queue_pod_connections()
}

/// The nfqueue kube-network-policies reads (its `--nfqueue-id`).
pub const POLICY_QUEUE: u16 = 98;
/// The mangle chain that sends new pod connections to [`POLICY_QUEUE`].
const POLICY_CHAIN: &str = "FLASHCARDS-POLICY";

/// Sends the first packet of every connection forwarded to or from a pod to
/// [`POLICY_QUEUE`], where kube-network-policies accepts or drops it. It would install the same
/// with nftables, but this kernel has no `CONFIG_NFT_QUEUE`; iptables' NFQUEUE target reaches the
/// same queue. Forwarded only: traffic between a pod and its node is always allowed, as
/// NetworkPolicy defines it. `--queue-bypass` accepts while nothing reads the queue, as a
/// cluster without a policy enforcer would.
fn queue_pod_connections() -> Result<(), Error> {
    let mangle = |args: &[&str]| run(Command::new("iptables").args(["-t", "mangle"]).args(args));
    let queue = POLICY_QUEUE.to_string();
    mangle(&["-N", POLICY_CHAIN])?;
    mangle(&[
        "-A",
        POLICY_CHAIN,
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "RETURN",
    ])?;
    mangle(&[
        "-A",
        POLICY_CHAIN,
        "-j",
        "NFQUEUE",
        "--queue-num",
        &queue,
        "--queue-bypass",
    ])?;
    for direction in ["-d", "-s"] {
        mangle(&["-A", "FORWARD", direction, POD_SUBNET, "-j", POLICY_CHAIN])?;
    }
    Ok(())
}

/// What a node that was not stopped in order leaves behind (its runner killed, say): its
/// components, pod processes, runc shims, mounts, the bridge, kube-proxy's tables and the
/// kubelet's and bridge plugin's iptables chains. Every node's, since there is
/// one per machine.
pub fn remove_leftovers() {
    kill_leftovers(NODE_DIR_PREFIX);
    let temp = env::temp_dir();
    if let Ok(entries) = fs::read_dir(&temp) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(NODE_DIR_PREFIX)
            {
                unmount_below(&entry.path());
                let _ignored = fs::remove_dir_all(entry.path());
            }
        }
    }
    unmount_below(Path::new(VOLUMES_DIR));
    unlink_cadvisor_socket();
    remove_network();
}

/// Kills every process whose command line names `marker` (the node's components and runc shims
/// name files in the node's folder), then every process left in the pods' cgroups: stopping
/// containerd leaves both, and a killed runner leaves its components too.
fn kill_leftovers(marker: &str) {
    kill_processes_naming(marker);
    let mut folders = vec![PathBuf::from("/sys/fs/cgroup/pids/kubepods")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                folders.push(entry.path());
            }
        }
        let procs = fs::read_to_string(folder.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .lines()
            .filter_map(|line| line.trim().parse::<i32>().ok())
        {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ignored = kill_process(pid, Signal::KILL);
            }
        }
    }
}

/// Kills (SIGKILL) every process but this one whose command line contains `marker`.
pub(crate) fn kill_processes_naming(marker: &str) {
    let own = rustix::process::getpid();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        let Ok(command_line) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&command_line).contains(marker) && pid != own {
            let _ignored = kill_process(pid, Signal::KILL);
        }
    }
}

/// Removes the bridge and kube-proxy's tables, whether this run or an interrupted one made them.
fn remove_network() {
    let quiet = |command: &mut Command| {
        let _ignored = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
    };
    quiet(Command::new("ip").args(["link", "del", BRIDGE]));
    for family in ["ip", "ip6"] {
        quiet(Command::new("nft").args(["delete", "table", family, "kube-proxy"]));
    }
    for tool in ["iptables", "ip6tables"] {
        for table in ["nat", "filter", "mangle"] {
            remove_node_chains(tool, table);
        }
    }
}

/// Removes the iptables chains a node that was killed before its pods were removed leaves
/// behind: the bridge plugin's per-pod masquerade chains (their rules carry our network's name)
/// and the kubelet's own `KUBE-` chains. Other programs' chains are left alone.
fn remove_node_chains(tool: &str, table: &str) {
    let Ok(listed) = Command::new(tool).args(["-t", table, "-S"]).output() else {
        return;
    };
    let rules = String::from_utf8_lossy(&listed.stdout);
    let ours = node_chains(&rules, CNI_NETWORK);
    let builtin = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
    let created = rules.lines().filter_map(|line| line.strip_prefix("-N "));
    for chain in builtin.into_iter().chain(created) {
        let Ok(numbered) = Command::new(tool)
            .args(["-t", table, "-L", chain, "-n", "--line-numbers"])
            .output()
        else {
            continue;
        };
        let numbered = String::from_utf8_lossy(&numbered.stdout);
        // Highest first, so the numbers still to delete stay valid.
        for number in jumps_to(&numbered, &ours).into_iter().rev() {
            let _ignored = Command::new(tool)
                .args(["-t", table, "-D", chain, &number.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    for chain in &ours {
        for action in ["-F", "-X"] {
            let _ignored = Command::new(tool)
                .args(["-t", table, action, chain])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The chains in an `iptables -S` listing that belong to the node: `KUBE-` chains, the policy
/// queue's, and the `CNI-` chains that rules commented with `network`'s name jump to.
fn node_chains(listing: &str, network: &str) -> Vec<String> {
    let marker = format!("name: \\\"{network}\\\"");
    let mut chains: Vec<String> = listing
        .lines()
        .filter_map(|line| line.strip_prefix("-N "))
        .filter(|chain| chain.starts_with("KUBE-") || *chain == POLICY_CHAIN)
        .map(str::to_owned)
        .collect();
    for line in listing.lines().filter(|line| line.contains(&marker)) {
        if let Some(target) = line
            .split(" -j ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            && target.starts_with("CNI-")
            && !chains.iter().any(|chain| chain == target)
        {
            chains.push(target.to_owned());
        }
    }
    chains
}

/// The rule numbers in an `iptables -L CHAIN -n --line-numbers` listing whose target is one of
/// `chains`, in ascending order.
fn jumps_to(listing: &str, chains: &[String]) -> Vec<u32> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let number = fields.next()?.parse().ok()?;
            let target = fields.next()?;
            chains.iter().any(|chain| chain == target).then_some(number)
        })
        .collect()
}

/// Unmounts whatever is still mounted below `dir` (volumes, the pods' network namespaces,
/// containerd's snapshots), deepest first.
fn unmount_below(dir: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in points {
        let _ignored = Command::new("umount")
            .args(["--lazy", point])
            .stderr(Stdio::null())
            .status();
    }
}

/// The bridge plugin with host-local addresses from the pod subnet, masquerading what leaves it,
/// and portmap for host ports.
fn cni_config(root: &Path) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                // A pod reaching itself through its own Service.
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{
                        "subnet": POD_SUBNET,
                        "rangeStart": "10.88.0.10",
                        "gateway": NODE_ADDRESS.to_string(),
                    }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": root.join("cni/ipam").display().to_string(),
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    })
}

/// containerd 2's configuration: everything under the node's folder, the CRI plugin with our
/// runc, the local pause image pinned, and the two settings this sandbox needs: the pods' OOM
/// score may not go below containerd's own (no CAP_SYS_RESOURCE), and network namespaces are
/// mounted under the state folder, which the teardown unmounts.
fn containerd_config(root: &Path, bin: &Path, socket: &Path) -> String {
    let containerd = root.join("containerd");
    format!(
        r#"version = 3
root = "{root}"
state = "{state}"

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{pause}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["{bin}"]
  conf_dir = "{cni}"

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  BinaryName = "{runc}"
  SystemdCgroup = false
"#,
        root = containerd.join("root").display(),
        state = containerd.join("state").display(),
        socket = socket.display(),
        pause = PAUSE_IMAGE,
        bin = bin.display(),
        cni = root.join("cni/net.d").display(),
        runc = bin.join("runc").display(),
    )
}

/// Imports every archive in `images` into containerd's `k8s.io` namespace, where the CRI finds
/// images.
fn import_images(bin: &Path, socket: &Path, images: &Path) -> Result<(), Error> {
    let mut archives: Vec<PathBuf> = fs::read_dir(images)
        .map_err(Error::io(format!("listing {}", images.display())))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "tar"))
        .collect();
    archives.sort();
    for archive in archives {
        let started = Instant::now();
        ctr(
            bin,
            socket,
            &["images", "import", &archive.display().to_string()],
        )?;
        eprintln!(
            "imported {} into the node in {:.1?}",
            archive.display(),
            started.elapsed()
        );
    }
    Ok(())
}

/// The kubelet: client certificates checked against the cluster CA and tokens by the apiserver,
/// the cgroupfs driver on this host's cgroup v1/v2 hybrid (which the kubelet refuses unless told
/// not to), CoreDNS on the node's address, and eviction thresholds that a shared CI disk does not
/// trip.
fn kubelet_config(root: &Path, socket: &Path, (port, healthz): (u16, u16)) -> serde_json::Value {
    let pki = |file: &str| root.join("pki").join(file).display().to_string();
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_ADDRESS.to_string(),
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "tlsCertFile": pki("kubelet.crt"),
        "tlsPrivateKeyFile": pki("kubelet.key"),
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true },
            "x509": { "clientCAFile": pki("ca.crt") },
        },
        "authorization": { "mode": "Webhook" },
        "containerRuntimeEndpoint": format!("unix://{}", socket.display()),
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": false,
        "failSwapOn": false,
        "clusterDNS": [NODE_ADDRESS.to_string()],
        "clusterDomain": "cluster.local",
        "resolvConf": root.join("resolv.conf").display().to_string(),
        "podCIDR": POD_SUBNET,
        "podLogsDir": root.join("pod-logs").display().to_string(),
        "serializeImagePulls": false,
        // Volume usage every 10 s rather than every minute, for the disk alerts' tests.
        "volumeStatsAggPeriod": "10s",
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
    })
}

/// CoreDNS answers the cluster's names on the node's address from the apiserver, and nothing
/// else: this machine has no upstream resolver for pods.
fn corefile(kubeconfig: &Path, ready_port: u16) -> String {
    format!(
        ".:53 {{\n    bind {NODE_ADDRESS}\n    errors\n    ready 127.0.0.1:{ready_port}\n    \
         kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        kubeconfig {}\n        \
         pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }}\n    cache 30\n}}\n",
        kubeconfig.display()
    )
}

/// The provisioner's namespace, its helper pods' account, its configuration (volumes in
/// `/var/lib/flashcards-node/local-path/<pv>`, world-writable so any pod user can write), and the
/// default StorageClass.
async fn set_up_provisioner(client: &Client) -> Result<(), Error> {
    let post = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &post,
            &Namespace {
                metadata: named(PROVISIONER_NAMESPACE),
                ..Namespace::default()
            },
        )
        .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), PROVISIONER_NAMESPACE);
    accounts
        .create(
            &post,
            &ServiceAccount {
                metadata: named(PROVISIONER_ACCOUNT),
                ..ServiceAccount::default()
            },
        )
        .await?;
    let config = json!({
        "nodePathMap": [{
            "node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
            "paths": [VOLUMES_DIR],
        }],
    });
    let helper_pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "helper-pod" },
        "spec": {
            "containers": [{
                "name": "helper-pod",
                "image": HELPER_IMAGE,
                "imagePullPolicy": "Never",
            }],
        },
    });
    let data = [
        ("config.json", config.to_string()),
        ("helperPod.yaml", helper_pod.to_string()),
        (
            "setup",
            "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n".to_owned(),
        ),
        (
            "teardown",
            "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n".to_owned(),
        ),
    ];
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), PROVISIONER_NAMESPACE);
    config_maps
        .create(
            &post,
            &ConfigMap {
                metadata: named(PROVISIONER_CONFIG),
                data: Some(
                    data.into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect(),
                ),
                ..ConfigMap::default()
            },
        )
        .await?;
    let classes: Api<StorageClass> = Api::all(client.clone());
    let mut metadata = named(STORAGE_CLASS);
    metadata.annotations = Some(
        [
            (
                "storageclass.kubernetes.io/is-default-class".to_owned(),
                "true".to_owned(),
            ),
            // `local` volumes, not `hostPath` ones: the kubelet reports their usage
            // (`kubelet_volume_stats_*`), which the disk alerts read.
            ("defaultVolumeType".to_owned(), "local".to_owned()),
        ]
        .into(),
    );
    classes
        .create(
            &post,
            &StorageClass {
                metadata,
                provisioner: "rancher.io/local-path".to_owned(),
                reclaim_policy: Some("Delete".to_owned()),
                // The provisioner makes the folder on the node the pod is scheduled to.
                volume_binding_mode: Some("WaitForFirstConsumer".to_owned()),
                ..StorageClass::default()
            },
        )
        .await?;
    Ok(())
}

/// Where the provisioner's volumes live on the node: outside the node's temporary folder, since
/// the helper pods create and remove them as root.
pub const VOLUMES_DIR: &str = "/var/lib/flashcards-node/local-path";
/// The size of the tmpfs the volumes share. The kubelet reports a `local` volume's file system,
/// so a small one of their own lets a test fill a volume for the disk alerts (as a full disk
/// would), and nothing a test wrote outlives the node.
pub const VOLUMES_SIZE_BYTES: u64 = 512 << 20;

/// A fresh tmpfs at [`VOLUMES_DIR`] (whatever an earlier run left there is dropped first).
fn mount_volumes() -> Result<(), Error> {
    unmount_below(Path::new(VOLUMES_DIR));
    fs::create_dir_all(VOLUMES_DIR).map_err(Error::io(format!("creating {VOLUMES_DIR}")))?;
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={VOLUMES_SIZE_BYTES},mode=0755"))
        .args(["flashcards-volumes", VOLUMES_DIR]))
    .map(drop)
}

/// Where the kubelet's built-in cAdvisor dials containerd: it has no flag for another socket, and
/// without containerd it reports bare cgroups, with no `namespace`, `pod` or `container` labels
/// for the dashboards and alerts to select.
const CADVISOR_CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

/// Points [`CADVISOR_CONTAINERD_SOCKET`] at the node's containerd, replacing a link an earlier
/// node left but never another containerd's socket.
fn link_cadvisor_socket(socket: &Path) -> Result<(), Error> {
    let link = Path::new(CADVISOR_CONTAINERD_SOCKET);
    unlink_cadvisor_socket();
    if link.exists() {
        return Err(Error::Io {
            context: format!(
                "linking {CADVISOR_CONTAINERD_SOCKET} to the node's containerd: another containerd \
                 serves it, and the kubelet's cAdvisor would read that one's containers"
            ),
            source: io::ErrorKind::AlreadyExists.into(),
        });
    }
    if let Some(parent) = link.parent() {
        fs::create_dir_all(parent).map_err(Error::io(format!("creating {}", parent.display())))?;
    }
    std::os::unix::fs::symlink(socket, link)
        .map_err(Error::io(format!("linking {CADVISOR_CONTAINERD_SOCKET}")))
}

/// Removes [`CADVISOR_CONTAINERD_SOCKET`] if it is a node's link.
fn unlink_cadvisor_socket() {
    let link = Path::new(CADVISOR_CONTAINERD_SOCKET);
    let ours =
        fs::read_link(link).is_ok_and(|target| target.to_string_lossy().contains(NODE_DIR_PREFIX));
    if ours {
        let _ignored = fs::remove_file(link);
    }
}

fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

/// A recursive DNS query for `name`'s A record (RFC 1035 §4.1).
fn dns_query(name: &str) -> Vec<u8> {
    // ID, flags (recursion desired), one question, no other records.
    let mut query = vec![0x46, 0x43, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        // Cluster names are short ASCII labels: at most 63 bytes each.
        query.push(u8::try_from(label.len()).unwrap_or(63));
        query.extend(label.bytes().take(63));
    }
    // The root, type A, class IN.
    query.extend([0, 0, 1, 0, 1]);
    query
}

/// The first A record's address in a DNS answer, if any.
fn first_address(answer: &[u8]) -> Option<Ipv4Addr> {
    let count = |at: usize| Some(u16::from_be_bytes([*answer.get(at)?, *answer.get(at + 1)?]));
    let questions = count(4)?;
    let answers = count(6)?;
    let mut at = 12;
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let length = *answer.get(at)?;
            if length == 0 {
                return Some(at + 1);
            }
            // A compression pointer ends the name in two bytes.
            if length & 0xC0 == 0xC0 {
                return Some(at + 2);
            }
            at += 1 + usize::from(length);
        }
    };
    for _ in 0..questions {
        at = skip_name(at)? + 4;
    }
    for _ in 0..answers {
        at = skip_name(at)?;
        let kind = count(at)?;
        let length = usize::from(count(at + 8)?);
        let data = answer.get(at + 10..at + 10 + length)?;
        if kind == 1 && length == 4 {
            return Some(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + length;
    }
    None
}

/// Waits until a plain-HTTP `GET path` on loopback `port` answers 200; an exit of `process` is
/// the error the timeout reports.
async fn wait_http(process: &mut Process, port: u16, path: &str) -> Result<(), Error> {
    let name = process.name();
    wait_for(
        format!("{name} answering GET {path} on port {port}"),
        READY_TIMEOUT,
        async || {
            process.check_running()?;
            Ok::<_, Error>(http_ok(port, path).await.then_some(()))
        },
    )
    .await
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200 (HTTP/1.0: the server closes after it).
async fn http_ok(port: u16, path: &str) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(Duration::from_secs(2), exchange).await {
        Ok(Ok(response)) => response
            .split(|byte| *byte == b'\n')
            .next()
            .is_some_and(|status| status.windows(5).any(|word| word == b" 200 ")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{dns_query, first_address, jumps_to, node_chains};

    #[test]
    fn a_dns_query_names_each_label() {
        let query = dns_query("web.ns.svc.cluster.local");
        assert_eq!(&query[12..16], b"\x03web");
        assert!(query.ends_with(b"\x05local\x00\x00\x01\x00\x01"));
    }

    #[test]
    fn the_first_a_record_is_read_past_the_question_and_a_cname() {
        let mut answer = dns_query("web.ns.svc.cluster.local");
        // One answer before this one: flags say it is a response with two answers.
        answer[2] = 0x81;
        answer[3] = 0x80;
        answer[7] = 2;
        // A CNAME pointing back at the question's name, then the A record.
        answer.extend([0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 30, 0, 2, 0xC0, 12]);
        answer.extend([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, 7]);
        assert_eq!(first_address(&answer), Some(Ipv4Addr::new(10, 96, 0, 7)));
        assert_eq!(first_address(&answer[..answer.len() - 1]), None);
    }

    #[test]
    fn the_node_chains_are_the_kubelets_and_those_of_our_network() {
        let listing = "-P POSTROUTING ACCEPT\n-N CNI-aa\n-N CNI-bb\n-N KUBE-KUBELET-CANARY\n-N NETAVARK-1\n-N FLASHCARDS-POLICY\n\
            -A POSTROUTING -s 10.88.0.10/32 -m comment --comment \"name: \\\"flashcards\\\" id: \\\"x\\\"\" -j CNI-aa\n\
            -A POSTROUTING -s 10.89.0.2/32 -m comment --comment \"name: \\\"podman\\\" id: \\\"y\\\"\" -j CNI-bb\n";
        assert_eq!(
            node_chains(listing, "flashcards"),
            ["KUBE-KUBELET-CANARY", "FLASHCARDS-POLICY", "CNI-aa"]
        );
    }

    #[test]
    fn rule_numbers_are_those_jumping_to_the_chains() {
        let listing = "Chain POSTROUTING (policy ACCEPT)\nnum  target     prot opt source               destination\n\
            1    CNI-aa     all  --  10.88.0.10           0.0.0.0/0\n\
            2    MASQUERADE all  --  10.89.0.0/24         0.0.0.0/0\n\
            3    KUBE-X     all  --  0.0.0.0/0            0.0.0.0/0\n";
        let chains = ["CNI-aa".to_owned(), "KUBE-X".to_owned()];
        assert_eq!(jumps_to(listing, &chains), [1, 3]);
    }
}
