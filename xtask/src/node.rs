//! The binaries of a real Kubernetes node for the end-to-end tests: kubelet and kube-proxy,
//! containerd with its runc shim, runc, the CNI plugins, CoreDNS, crictl, Rancher's
//! local-path-provisioner, kube-network-policies, the Prometheus Operator, Prometheus and the pod
//! sandbox's `pause`, built from their Go modules (and `pause` from its C source in the Kubernetes module) at pinned
//! versions into `~/.cache/flashcards/node/<versions>/bin`, like the control plane's.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, ensure};

use crate::{
    apt,
    control_plane::{self, Build, KUBERNETES, Pin},
    paths,
};

const CONTAINERD: Pin = Pin {
    module: "github.com/containerd/containerd/v2",
    version: "v2.4.2",
};
const RUNC: Pin = Pin {
    module: "github.com/opencontainers/runc",
    version: "v1.5.3",
};
const CNI_PLUGINS: Pin = Pin {
    module: "github.com/containernetworking/plugins",
    version: "v1.10.0",
};
const COREDNS: Pin = Pin {
    module: "github.com/coredns/coredns",
    version: "v1.15.0",
};
/// `crictl`, through which the e2e harness removes every pod sandbox when it stops the node.
const CRI_TOOLS: Pin = Pin {
    module: "sigs.k8s.io/cri-tools",
    version: "v1.37.0",
};
/// The PVC provisioner kind uses: a folder on the node per volume, made by a helper pod.
const LOCAL_PATH_PROVISIONER: Pin = Pin {
    module: "github.com/rancher/local-path-provisioner",
    version: "v0.0.30",
};

/// NetworkPolicy enforcement, as kind runs it; the e2e harness builds its image from the binary.
const NETWORK_POLICIES: Pin = Pin {
    module: "sigs.k8s.io/kube-network-policies",
    version: "v0.8.0",
};
/// The binary's name in the node's folder, for the image build.
pub const NETWORK_POLICIES_BINARY: &str = "kube-network-policies";

/// The Prometheus Operator, as kube-prometheus-stack runs it, with the config reloader it adds
/// to every Prometheus and Alertmanager pod.
const PROMETHEUS_OPERATOR: Pin = Pin {
    module: "github.com/prometheus-operator/prometheus-operator",
    version: "v0.85.0",
};
pub const PROMETHEUS_OPERATOR_BINARY: &str = "prometheus-operator";
/// Prometheus 3.5 (module v0.305), the operator's default: Debian's 2.42 is built without
/// Kubernetes service discovery.
const PROMETHEUS: Pin = Pin {
    module: "github.com/prometheus/prometheus",
    version: "v0.305.0",
};
pub const PROMETHEUS_BINARY: &str = "prometheus";
pub const CONFIG_RELOADER_BINARY: &str = "prometheus-config-reloader";

/// The pod sandbox's process, compiled from the Kubernetes module's own source.
const PAUSE_SOURCE: &str = "build/pause/linux/pause.c";
pub const PAUSE: &str = "pause";

const BUILDS: [Build; 10] = [
    Build {
        name: "kubernetes",
        pin: KUBERNETES,
        cgo: false,
        tags: "",
        binaries: &[
            ("kubelet", "k8s.io/kubernetes/cmd/kubelet"),
            ("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"),
        ],
    },
    Build {
        name: "containerd",
        pin: CONTAINERD,
        cgo: false,
        // No btrfs snapshotter (it needs cgo and libbtrfs); overlayfs and native remain.
        tags: "no_btrfs",
        binaries: &[
            (
                "containerd",
                "github.com/containerd/containerd/v2/cmd/containerd",
            ),
            (
                "containerd-shim-runc-v2",
                "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
            ),
            ("ctr", "github.com/containerd/containerd/v2/cmd/ctr"),
        ],
    },
    // runc's nsenter is C, and pods may ask for the RuntimeDefault seccomp profile.
    Build {
        name: "runc",
        pin: RUNC,
        cgo: true,
        tags: "seccomp",
        binaries: &[("runc", "github.com/opencontainers/runc")],
    },
    Build {
        name: "cni-plugins",
        pin: CNI_PLUGINS,
        cgo: false,
        tags: "",
        binaries: &[
            (
                "bridge",
                "github.com/containernetworking/plugins/plugins/main/bridge",
            ),
            (
                "loopback",
                "github.com/containernetworking/plugins/plugins/main/loopback",
            ),
            (
                "host-local",
                "github.com/containernetworking/plugins/plugins/ipam/host-local",
            ),
            (
                "portmap",
                "github.com/containernetworking/plugins/plugins/meta/portmap",
            ),
        ],
    },
    // The module's root package is CoreDNS's main, with every in-tree plugin.
    Build {
        name: "coredns",
        pin: COREDNS,
        cgo: false,
        tags: "",
        binaries: &[("coredns", "github.com/coredns/coredns")],
    },
    Build {
        name: "cri-tools",
        pin: CRI_TOOLS,
        cgo: false,
        tags: "",
        binaries: &[("crictl", "sigs.k8s.io/cri-tools/cmd/crictl")],
    },
    Build {
        name: "local-path-provisioner",
        pin: LOCAL_PATH_PROVISIONER,
        cgo: false,
        tags: "",
        binaries: &[(
            "local-path-provisioner",
            "github.com/rancher/local-path-provisioner",
        )],
    },
    Build {
        name: "kube-network-policies",
        pin: NETWORK_POLICIES,
        cgo: false,
        tags: "",
        binaries: &[(
            NETWORK_POLICIES_BINARY,
            "sigs.k8s.io/kube-network-policies/cmd",
        )],
    },
    Build {
        name: "prometheus-operator",
        pin: PROMETHEUS_OPERATOR,
        cgo: false,
        tags: "",
        binaries: &[
            (
                PROMETHEUS_OPERATOR_BINARY,
                "github.com/prometheus-operator/prometheus-operator/cmd/operator",
            ),
            (
                CONFIG_RELOADER_BINARY,
                "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader",
            ),
        ],
    },
    Build {
        name: "prometheus",
        pin: PROMETHEUS,
        cgo: false,
        tags: "netgo",
        binaries: &[(
            PROMETHEUS_BINARY,
            "github.com/prometheus/prometheus/cmd/prometheus",
        )],
    },
];

/// The variable through which the e2e tests find the node's binaries.
pub const BIN_VAR: &str = flashcards_e2e::NODE_BIN_VAR;

/// What the running node needs from Debian beside its own binaries, as `(program, package)`:
/// `nft` for kube-proxy's nftables mode and the node's clean-up, `iptables` for the bridge
/// plugin's masquerade and the policy queue, `modprobe` where `br_netfilter` is not loaded yet.
const HOST_PACKAGES: [(&str, &str); 3] = [
    ("nft", "nftables"),
    ("iptables", "iptables"),
    ("modprobe", "kmod"),
];

/// Installs whatever of [`HOST_PACKAGES`] is missing.
pub fn ensure_host_packages() -> Result<()> {
    apt::ensure_apt_packages(&HOST_PACKAGES)
}

/// Builds the node's binaries unless the cache has them, and installs what they need from the
/// host; returns their folder.
pub fn ensure_built(jobs: usize) -> Result<PathBuf> {
    let started = Instant::now();
    ensure_host_packages()?;
    let dir = paths::cache_dir()?
        .join("node")
        .join(control_plane::cache_folder_name(&BUILDS));
    let bin = dir.join("bin");
    if !control_plane::is_complete(&BUILDS, &bin, &[PAUSE]) {
        // runc links libseccomp; the static pause needs only the C library.
        apt::ensure_apt_packages(&[("/usr/include/seccomp.h", "libseccomp-dev"), ("gcc", "gcc")])?;
        control_plane::build_all(&BUILDS, &dir, jobs, "the node", |bin| {
            build_pause(&bin.join(PAUSE))
        })?;
    }
    eprintln!(
        "node binaries ready in {:.1?}: {}",
        started.elapsed(),
        bin.display()
    );
    Ok(bin)
}

/// `gcc -static` of the pause source: the sandbox image holds only this file.
fn build_pause(output: &Path) -> Result<()> {
    let module = control_plane::module_dir(KUBERNETES)?;
    let source = module.join(PAUSE_SOURCE);
    let status = Command::new("gcc")
        .args(["-Os", "-static", "-Wall", "-o"])
        .arg(output)
        .arg(&source)
        // The version the pause program prints with -v.
        .arg(format!("-DVERSION={}", KUBERNETES.version))
        .status()
        .context("running gcc")?;
    ensure!(
        status.success(),
        "gcc could not build {} ({status})",
        source.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{BUILDS, control_plane};

    #[test]
    fn the_cache_folder_names_every_version() {
        assert_eq!(
            control_plane::cache_folder_name(&BUILDS),
            "kubernetes-1.37.2_containerd-2.4.2_runc-1.5.3_cni-plugins-1.10.0_coredns-1.15.0_\
             cri-tools-1.37.0_local-path-provisioner-0.0.30_kube-network-policies-0.8.0_\
             prometheus-operator-0.85.0_prometheus-0.305.0"
        );
    }
}
