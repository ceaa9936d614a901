//! Starting the control plane in a temporary folder, and stopping it.

use std::{
    collections::BTreeMap,
    env, fmt, fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::{
    api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::{Node, NodeStatus, ServiceAccount},
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};
use kube::{Api, Client, Config, api::PostParams};
use serde_json::json;
use tempfile::TempDir;

use crate::{
    Error,
    certs::{self, Authority, CertKey},
    kubeconfig,
    process::Process,
    wait::wait_for,
    workspace::free_port,
};

/// The folder with the binaries (and kwok's stages), which `cargo xtask test` sets.
pub const BIN_VAR: &str = "FLASHCARDS_E2E_BIN";

/// The folder with the Prometheus Operator's CRDs, one YAML file each, which `cargo xtask test`
/// sets.
pub const PROMETHEUS_CRDS_VAR: &str = "FLASHCARDS_E2E_PROMETHEUS_CRDS";

/// The grafana-operator's GrafanaDashboard CRD (one YAML file), which `cargo xtask test` sets.
pub const GRAFANA_CRD_VAR: &str = "FLASHCARDS_E2E_GRAFANA_DASHBOARD_CRD";

/// The annotation that puts a node in kwok's care: kwok manages only nodes that carry it.
pub const FAKE_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// The fake node that [`ControlPlane::start`] creates.
const FIRST_FAKE_NODE: &str = "kwok-node-0";

/// kwok's stage configuration, which `cargo xtask control-plane build` puts beside the binaries.
const KWOK_STAGES: &str = "kwok-stages.yaml";

/// What must be in [`BIN_VAR`]'s folder.
const REQUIRED_FILES: [&str; 7] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
    KWOK_STAGES,
];

/// Service cluster IPs, and the first one, the `kubernetes` Service's, which the apiserver's
/// serving certificate names.
const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";
const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// Where kwok takes pod IPs from.
const POD_CIDR: &str = "10.244.0.1/16";

/// How long each component may take to become ready: on a loaded 2-core machine the apiserver
/// alone takes tens of seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// How often readiness is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The fake nodes' lease duration, which kwok renews within, as a kubelet would: the node
/// lifecycle controller marks nodes without a fresh lease NotReady and evicts their pods.
const NODE_LEASE_SECONDS: &str = "40";

/// A running control plane, stopped and removed when dropped (kept, with the components' logs, if
/// the thread is panicking: a failed test leaves its evidence).
pub struct ControlPlane {
    // Fields drop in order: the components stop from the top down, then the folder goes.
    kwok: Process,
    authority: Authority,
    scheduler: Process,
    controller_manager: Process,
    apiserver: Process,
    etcd: Process,
    client: Client,
    server: String,
    /// The cluster CA (PEM), for the kubeconfigs handed out.
    ca: String,
    kubeconfig: PathBuf,
    audit_log: PathBuf,
    bin: PathBuf,
    dir: TempDir,
}

/// Paths in the temporary folder.
struct Layout {
    root: PathBuf,
}

impl Layout {
    fn pki(&self, file: &str) -> PathBuf {
        self.root.join("pki").join(file)
    }

    fn log(&self, component: &str) -> PathBuf {
        self.root.join("logs").join(format!("{component}.log"))
    }

    fn kubeconfig(&self, user: &str) -> PathBuf {
        self.root.join(format!("{user}.kubeconfig"))
    }
}

/// How the control plane is set up: for kwok's fake nodes (the default), or for a real node.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The binaries' folder; [`BIN_VAR`] names it when this is `None`.
    pub bin: Option<PathBuf>,
    /// An address of this machine that pods reach it on (a real node's): the apiserver listens on
    /// every address, advertises this one as the `kubernetes` Service's endpoint and names it in
    /// its certificate, and no fake node is made.
    pub node_address: Option<Ipv4Addr>,
}

/// The free loopback ports that the components listen on.
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
    controller_manager: u16,
    scheduler: u16,
    kwok: u16,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from
    /// [`BIN_VAR`]'s folder, creates one fake node and returns once the node is Ready and the
    /// controllers have made the `default` ServiceAccount.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Options::default()).await
    }

    /// [`Self::start`] set up as `options` say.
    pub async fn start_with(options: Options) -> Result<Self, Error> {
        let bin = binaries(options.bin.clone())?;
        let dir = tempfile::Builder::new()
            .prefix("flashcards-e2e-")
            .tempdir()
            .map_err(Error::io("creating a temporary folder"))?;
        let layout = Layout {
            root: dir.path().to_owned(),
        };
        for sub in ["pki", "logs", "kwok", "helm"] {
            fs::create_dir_all(layout.root.join(sub)).map_err(Error::io(format!(
                "creating {sub} in {}",
                layout.root.display()
            )))?;
        }
        let ports = Ports {
            etcd_client: free_port()?,
            etcd_peer: free_port()?,
            apiserver: free_port()?,
            controller_manager: free_port()?,
            scheduler: free_port()?,
            kwok: free_port()?,
        };
        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        let authority = Authority::new()?;
        let ca = authority.cert_pem();
        let ca_der = authority.cert_der();
        write_pki(&layout, &authority, options.node_address)?;
        for (user, group) in [
            ("admin", Some("system:masters")),
            // The apiserver's own identity towards kubelets (logs, exec, port-forward).
            ("kube-apiserver-kubelet-client", Some("system:masters")),
            ("kube-controller-manager", None),
            ("kube-scheduler", None),
            // kwok updates the status of nodes and pods and renews leases: cluster-wide writes
            // that no built-in role grants together.
            ("kwok", Some("system:masters")),
        ] {
            // The components' users are those that the bootstrap RBAC policy grants their roles.
            let name = match user {
                "admin" | "kwok" | "kube-apiserver-kubelet-client" => user.to_owned(),
                component => format!("system:{component}"),
            };
            let cert = authority.client(&name, group)?;
            kubeconfig::write(&layout.kubeconfig(user), &server, &ca, &cert)?;
            if user == "kube-apiserver-kubelet-client" {
                write_cert_key(&layout, user, &cert)?;
            }
        }
        let audit_log = layout.root.join("audit.log");
        write_audit_policy(&layout.root.join("audit-policy.json"))?;

        let mut etcd = Process::start(
            "etcd",
            etcd_command(&bin, &layout, &ports),
            layout.log("etcd"),
        )?;
        let etcd_probe = probe_client(&format!("http://127.0.0.1:{}", ports.etcd_client), None)?;
        wait_ready(&mut etcd, &etcd_probe, "/health").await?;

        let mut apiserver = Process::start(
            "kube-apiserver",
            apiserver_command(&bin, &layout, &ports, &audit_log, options.node_address),
            layout.log("kube-apiserver"),
        )?;
        let kubeconfig = layout.kubeconfig("admin");
        let client = kubeconfig::client(&kubeconfig).await?;
        wait_ready(&mut apiserver, &client, "/readyz").await?;

        let mut controller_manager = Process::start(
            "kube-controller-manager",
            controller_manager_command(&bin, &layout, ports.controller_manager),
            layout.log("kube-controller-manager"),
        )?;
        let mut scheduler = Process::start(
            "kube-scheduler",
            scheduler_command(&bin, &layout, ports.scheduler),
            layout.log("kube-scheduler"),
        )?;
        let mut kwok = Process::start(
            "kwok",
            kwok_command(&bin, &layout, ports.kwok),
            layout.log("kwok"),
        )?;
        for (process, port) in [
            (&mut controller_manager, ports.controller_manager),
            (&mut scheduler, ports.scheduler),
        ] {
            let probe = probe_client(&format!("https://127.0.0.1:{port}"), Some(&ca_der))?;
            wait_ready(process, &probe, "/healthz").await?;
        }
        let kwok_probe = probe_client(&format!("http://127.0.0.1:{}", ports.kwok), None)?;
        wait_ready(&mut kwok, &kwok_probe, "/healthz").await?;

        let control_plane = Self {
            kwok,
            authority,
            scheduler,
            controller_manager,
            apiserver,
            etcd,
            client,
            server,
            ca,
            kubeconfig,
            audit_log,
            bin,
            dir,
        };
        if options.node_address.is_none() {
            control_plane.add_fake_node(FIRST_FAKE_NODE).await?;
        }
        // Pods need their namespace's default ServiceAccount (admission refuses them without);
        // the controller-manager makes it, so once it exists the controllers are running.
        let service_accounts: Api<ServiceAccount> =
            Api::namespaced(control_plane.client(), "default");
        wait_for(
            "the controller-manager creating the default ServiceAccount",
            READY_TIMEOUT,
            async || service_accounts.get_opt("default").await,
        )
        .await?;
        Ok(control_plane)
    }

    /// A client with cluster-admin rights (user `admin`, group `system:masters`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The folder holding the components' data, certificates and logs; removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin kubeconfig (JSON, certificates inline).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The apiserver's audit log, one JSON event per line, at Metadata level for every request
    /// except reads (get, list, watch): `user.username` and `verb` tell who wrote what. An event
    /// is written as its response completes, so it may land a moment after the client has the
    /// response; the apiserver flushes them all when it stops.
    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log
    }

    /// Writes a kubeconfig for ServiceAccount `namespace/name`, with a token from the TokenRequest
    /// API valid for an hour, and returns its path: a client acting with exactly the account's
    /// RBAC, as a pod running under it would.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, Error> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                // No audiences: the apiserver's own.
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await?;
        let token = issued
            .status
            .and_then(|status| status.token)
            .unwrap_or_default();
        let path = self
            .dir
            .path()
            .join(format!("{namespace}-{name}.kubeconfig"));
        kubeconfig::write_token(&path, &self.server, &self.ca, &token)?;
        Ok(path)
    }

    /// Starts `command` as a process whose output goes to `<name>.log` beside the components'
    /// logs (kept with them when a test fails); it is stopped when the returned value drops.
    pub fn start_process(&self, name: &'static str, command: Command) -> Result<Process, Error> {
        let log = self.dir.path().join("logs").join(format!("{name}.log"));
        Process::start(name, command, log)
    }

    /// The fake node that [`Self::start`] created; [`Self::add_fake_node`] makes more.
    pub fn fake_node_name(&self) -> &'static str {
        FIRST_FAKE_NODE
    }

    /// `kubectl --kubeconfig <admin kubeconfig>`, ready for more arguments.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// `helm` with the admin kubeconfig and its cache, configuration and data in the control
    /// plane's folder, so that no test touches `~/.cache/helm` and friends.
    pub fn helm(&self) -> Command {
        let helm_home = self.dir.path().join("helm");
        let mut command = Command::new(self.bin.join("helm"));
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_DATA_HOME", helm_home.join("data"));
        command
    }

    /// Creates a node that kwok manages (it carries [`FAKE_NODE_ANNOTATION`]) and waits until kwok
    /// has made it Ready. Pods scheduled there become Running and Ready without containers.
    pub async fn add_fake_node(&self, name: &str) -> Result<(), Error> {
        let nodes: Api<Node> = Api::all(self.client());
        nodes
            .create(&PostParams::default(), &fake_node(name))
            .await?;
        wait_for(
            format!("kwok making node {name} Ready"),
            READY_TIMEOUT,
            async || {
                let node = nodes.get(name).await?;
                Ok::<_, kube::Error>(is_ready(&node).then_some(()))
            },
        )
        .await
    }

    /// Fails with the end of its log if any component has exited: a crash that a test would
    /// otherwise only see as a timeout.
    pub fn check_running(&mut self) -> Result<(), Error> {
        for process in [
            &mut self.etcd,
            &mut self.apiserver,
            &mut self.controller_manager,
            &mut self.scheduler,
            &mut self.kwok,
        ] {
            process.check_running()?;
        }
        Ok(())
    }

    /// Stops the apiserver and starts it again with the same flags, certificates and port, then
    /// waits until it is ready. The other components and existing clients reconnect by
    /// themselves.
    pub async fn restart_apiserver(&mut self) -> Result<(), Error> {
        self.apiserver.restart()?;
        wait_ready(&mut self.apiserver, &self.client, "/readyz").await
    }
}

/// What a real node takes from the control plane.
impl ControlPlane {
    /// The CA that signs every certificate in the cluster.
    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The CA's certificate (PEM).
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca
    }

    /// Writes a kubeconfig at `path` for a client certificate of `user` in `group`.
    pub(crate) fn client_kubeconfig(
        &self,
        user: &str,
        group: Option<&str>,
        path: &Path,
    ) -> Result<(), Error> {
        let cert = self.authority.client(user, group)?;
        kubeconfig::write(path, &self.server, &self.ca, &cert)
    }
}

impl fmt::Debug for ControlPlane {
    // kube's Client has no Debug; where the control plane lives says what matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the control plane's folder, with the components' logs, is kept: {}",
                self.dir.path().display()
            );
        }
    }
}

/// The Prometheus Operator's CRD folder from [`PROMETHEUS_CRDS_VAR`].
/// What a control plane whose runner was killed leaves behind: its components, still running,
/// and its folder `dir` ([`ControlPlane::dir`]).
pub fn remove_control_plane_leftovers(dir: &Path) {
    crate::node::kill_processes_naming(&dir.display().to_string());
    let _ignored = fs::remove_dir_all(dir);
}

pub fn prometheus_crds() -> Result<PathBuf, Error> {
    let dir = configured(PROMETHEUS_CRDS_VAR)?;
    if !dir.is_dir() {
        return Err(Error::Missing { path: dir });
    }
    Ok(dir)
}

/// The `helm` in [`BIN_VAR`]'s folder.
pub fn helm_binary() -> Result<PathBuf, Error> {
    let helm = configured(BIN_VAR)?.join("helm");
    if !helm.is_file() {
        return Err(Error::Missing { path: helm });
    }
    Ok(helm)
}

/// The GrafanaDashboard CRD file from [`GRAFANA_CRD_VAR`].
pub fn grafana_dashboard_crd() -> Result<PathBuf, Error> {
    let file = configured(GRAFANA_CRD_VAR)?;
    if !file.is_file() {
        return Err(Error::Missing { path: file });
    }
    Ok(file)
}

/// [`BIN_VAR`]'s folder, checked for every file the control plane needs.
fn binaries(bin: Option<PathBuf>) -> Result<PathBuf, Error> {
    let bin = match bin {
        Some(bin) => bin,
        None => configured(BIN_VAR)?,
    };
    for file in REQUIRED_FILES {
        let path = bin.join(file);
        if !path.is_file() {
            return Err(Error::Missing { path });
        }
    }
    Ok(bin)
}

fn configured(var: &'static str) -> Result<PathBuf, Error> {
    env::var_os(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .ok_or(Error::NotConfigured { var })
}

/// The CA, the serving certificates and the service account keys, as the components read them.
fn write_pki(
    layout: &Layout,
    authority: &Authority,
    node_address: Option<Ipv4Addr>,
) -> Result<(), Error> {
    write(&layout.pki("ca.crt"), &authority.cert_pem())?;
    let node_address = node_address.map(|address| address.to_string());
    let mut names = vec![
        "127.0.0.1",
        "localhost",
        KUBERNETES_SERVICE_IP,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    names.extend(node_address.as_deref());
    let apiserver = authority.serving("kube-apiserver", &names)?;
    write_cert_key(layout, "kube-apiserver", &apiserver)?;
    for component in ["kube-controller-manager", "kube-scheduler"] {
        let cert = authority.serving(component, &["127.0.0.1", "localhost"])?;
        write_cert_key(layout, component, &cert)?;
    }
    let (private, public) = certs::service_account_keys()?;
    write(&layout.pki("service-account.key"), &private)?;
    write(&layout.pki("service-account.pub"), &public)
}

fn write_cert_key(layout: &Layout, name: &str, cert_key: &CertKey) -> Result<(), Error> {
    write(&layout.pki(&format!("{name}.crt")), &cert_key.cert)?;
    write(&layout.pki(&format!("{name}.key")), &cert_key.key)
}

/// The user the chart's ServiceAccount authenticates as: the operator, installed by the chart.
pub const OPERATOR_USER: &str = "system:serviceaccount:flashcards-system:flashcards-operator";

/// Audit every request but other users' reads, at Metadata level (who, what, which object, the
/// response code), so tests can count writes by user and every request of the operator.
fn write_audit_policy(path: &Path) -> Result<(), Error> {
    let policy = json!({
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            { "level": "Metadata", "users": [OPERATOR_USER] },
            { "level": "None", "verbs": ["get", "list", "watch"] },
            { "level": "Metadata" },
        ],
    });
    write(path, &policy.to_string())
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    fs::write(path, contents).map_err(Error::io(format!("writing {}", path.display())))
}

fn etcd_command(bin: &Path, layout: &Layout, ports: &Ports) -> Command {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let mut command = Command::new(bin.join("etcd"));
    command
        .arg("--name=e2e")
        .arg(format!("--data-dir={}", layout.root.join("etcd").display()))
        // Plain HTTP on loopback: only the apiserver talks to it, and TLS would only slow it.
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=e2e={peer}"))
        // The data is thrown away after the test; fsync would only make every write wait.
        .arg("--unsafe-no-fsync")
        .arg("--log-level=warn");
    command
}

fn apiserver_command(
    bin: &Path,
    layout: &Layout,
    ports: &Ports,
    audit_log: &Path,
    node_address: Option<Ipv4Addr>,
) -> Command {
    let pki = |file: &str| layout.pki(file).display().to_string();
    let mut command = Command::new(bin.join("kube-apiserver"));
    command.arg(format!(
        "--etcd-servers=http://127.0.0.1:{}",
        ports.etcd_client
    ));
    match node_address {
        // Pods reach the apiserver through the `kubernetes` Service, whose endpoint is this address.
        // The node's name resolves nowhere: logs and exec reach its kubelet by its address.
        Some(address) => command
            .arg("--bind-address=0.0.0.0")
            .arg(format!("--advertise-address={address}"))
            .arg("--kubelet-preferred-address-types=InternalIP,Hostname"),
        // The `kubernetes` Service's endpoints would name 127.0.0.1, which Endpoints refuse;
        // nothing reaches the apiserver through that Service without a real node.
        None => command
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg("--endpoint-reconciler-type=none"),
    };
    command
        .arg(format!("--secure-port={}", ports.apiserver))
        .arg(format!(
            "--kubelet-client-certificate={}",
            pki("kube-apiserver-kubelet-client.crt")
        ))
        .arg(format!(
            "--kubelet-client-key={}",
            pki("kube-apiserver-kubelet-client.key")
        ))
        .arg(format!("--tls-cert-file={}", pki("kube-apiserver.crt")))
        .arg(format!(
            "--tls-private-key-file={}",
            pki("kube-apiserver.key")
        ))
        .arg(format!("--client-ca-file={}", pki("ca.crt")))
        .arg("--authorization-mode=Node,RBAC")
        .arg(format!(
            "--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"
        ))
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg(format!(
            "--service-account-key-file={}",
            pki("service-account.pub")
        ))
        .arg(format!(
            "--service-account-signing-key-file={}",
            pki("service-account.key")
        ))
        .arg("--allow-privileged=true")
        .arg(format!(
            "--audit-policy-file={}",
            layout.root.join("audit-policy.json").display()
        ))
        .arg(format!("--audit-log-path={}", audit_log.display()));
    command
}

/// The flags that the controller-manager and the scheduler share: their kubeconfig (also for
/// checking the tokens and permissions of whoever calls their own HTTPS endpoints), their
/// CA-signed serving certificate on a loopback port, and no leader election, which with one
/// instance only slows startup and would make them exit while the apiserver restarts.
fn component_command(bin: &Path, layout: &Layout, name: &str, port: u16) -> Command {
    let kubeconfig = layout.kubeconfig(name).display().to_string();
    let mut command = Command::new(bin.join(name));
    command
        .arg(format!("--kubeconfig={kubeconfig}"))
        .arg(format!("--authentication-kubeconfig={kubeconfig}"))
        .arg(format!("--authorization-kubeconfig={kubeconfig}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg(format!(
            "--tls-cert-file={}",
            layout.pki(&format!("{name}.crt")).display()
        ))
        .arg(format!(
            "--tls-private-key-file={}",
            layout.pki(&format!("{name}.key")).display()
        ))
        .arg("--leader-elect=false");
    command
}

fn controller_manager_command(bin: &Path, layout: &Layout, port: u16) -> Command {
    let mut command = component_command(bin, layout, "kube-controller-manager", port);
    command
        // Every controller that is on by default, the garbage collector among them; Kubernetes
        // 1.37's controller-manager has no cloud controllers left to leave out.
        .arg("--controllers=*")
        // Each controller acts as its own service account, as in a real cluster, so audit
        // events name the controller.
        .arg("--use-service-account-credentials=true")
        .arg(format!(
            "--service-account-private-key-file={}",
            layout.pki("service-account.key").display()
        ))
        .arg(format!("--root-ca-file={}", layout.pki("ca.crt").display()))
        .args(CLIENT_RATE);
    command
}

/// The controller-manager's and scheduler's request rate, as clusters of some size set it: at the
/// default 20 per second the ReplicaSet controller alone needs a minute for the pods of a hundred
/// stacks, and the cluster, not the operator, would be what the scale benchmark measures.
const CLIENT_RATE: [&str; 2] = ["--kube-api-qps=100", "--kube-api-burst=200"];

fn scheduler_command(bin: &Path, layout: &Layout, port: u16) -> Command {
    let mut command = component_command(bin, layout, "kube-scheduler", port);
    command.args(CLIENT_RATE);
    command
}

fn kwok_command(bin: &Path, layout: &Layout, port: u16) -> Command {
    let (key, value) = FAKE_NODE_ANNOTATION;
    let mut command = Command::new(bin.join("kwok"));
    command
        .arg(format!(
            "--kubeconfig={}",
            layout.kubeconfig("kwok").display()
        ))
        .arg(format!("--config={}", bin.join(KWOK_STAGES).display()))
        .arg("--manage-all-nodes=false")
        .arg(format!(
            "--manage-nodes-with-annotation-selector={key}={value}"
        ))
        .arg(format!(
            "--node-lease-duration-seconds={NODE_LEASE_SECONDS}"
        ))
        .arg(format!("--cidr={POD_CIDR}"))
        .arg(format!("--server-address=127.0.0.1:{port}"))
        // kwok also loads ~/.kwok/kwok.yaml when it exists; a HOME of our own keeps it out.
        .env("HOME", layout.root.join("kwok"));
    command
}

/// A client for a component's own endpoint: plain HTTP, or HTTPS trusting `ca` (DER).
fn probe_client(url: &str, ca: Option<&[u8]>) -> Result<Client, Error> {
    let uri = url.parse().map_err(|source| Error::Url {
        url: url.to_owned(),
        source,
    })?;
    let mut config = Config::new(uri);
    if let Some(ca) = ca {
        config.root_cert = Some(vec![ca.to_vec()]);
    }
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(5));
    Ok(Client::try_from(config)?)
}

/// Waits until `GET path` through `probe` succeeds, failing early with the component's log if it
/// exits.
async fn wait_ready(process: &mut Process, probe: &Client, path: &str) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        process.check_running()?;
        if let Ok(request) = http::Request::get(path).body(Vec::new())
            && probe.request_text(request).await.is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::NotReady {
                component: process.name(),
                timeout: READY_TIMEOUT,
                log: process.log_tail(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A node for kwok: its annotation, the usual well-known labels and room for plenty of pods.
fn fake_node(name: &str) -> Node {
    let (key, value) = FAKE_NODE_ANNOTATION;
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity("32".to_owned())),
        ("memory".to_owned(), Quantity("256Gi".to_owned())),
        ("pods".to_owned(), Quantity("110".to_owned())),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
                ("kubernetes.io/hostname".to_owned(), name.to_owned()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                ("type".to_owned(), "kwok".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            ..NodeStatus::default()
        }),
        ..Node::default()
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
