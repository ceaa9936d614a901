//! The Kubernetes control plane for the end-to-end tests (`e2e/`): etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kubectl, kwok and helm, built from their Go modules at
//! pinned versions into `~/.cache/flashcards/control-plane/<versions>/bin`, plus the Prometheus
//! Operator's CRDs, found in the Go module cache.
//!
//! Each binary is built in a small wrapper module that xtask writes next to the binaries: the
//! projects' own build scripts need git checkouts and Docker, while `go build` of a module version
//! needs only the Go module proxy.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{self, Command},
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

use crate::{
    cargo, images, node,
    paths::{self, ScratchDir},
};

/// Every pinned version, in one place; the cache folder is named after them. Kubernetes is the
/// newest minor that k8s-openapi 0.29 knows (`v1_37`) and whose go.mod asks for no newer Go than
/// 1.26; etcd is the 3.7 line that Kubernetes 1.37 is released with (its build/dependencies.yaml
/// names 3.7.0).
pub const KUBERNETES: Pin = Pin {
    module: "k8s.io/kubernetes",
    version: "v1.37.2",
};
const ETCD: Pin = Pin {
    module: "go.etcd.io/etcd/server/v3",
    version: "v3.7.3",
};
const KWOK: Pin = Pin {
    module: "sigs.k8s.io/kwok",
    version: "v0.8.0",
};
const HELM: Pin = Pin {
    module: "helm.sh/helm/v3",
    version: "v3.22.0",
};
/// Only its CRDs are used. The Go module proxy serves no newer version of this (root) module.
const PROMETHEUS_OPERATOR: Pin = Pin {
    module: "github.com/prometheus-operator/prometheus-operator",
    version: "v0.85.0",
};

/// Where the Prometheus Operator module keeps its CRDs, one YAML file each.
const PROMETHEUS_CRDS_SUBDIR: &str = "example/prometheus-operator-crd";

/// Only its GrafanaDashboard CRD is used: the operator's dashboards as CRs, validated by the
/// apiserver against the real schema.
const GRAFANA_OPERATOR: Pin = Pin {
    module: "github.com/grafana/grafana-operator/v5",
    version: "v5.18.0",
};
const GRAFANA_DASHBOARD_CRD: &str =
    "config/crd/bases/grafana.integreatly.org_grafanadashboards.yaml";

/// kwok ships no behaviour of its own: its stages, read from its module, make fake nodes Ready
/// (and keep their leases fresh) and pods Running, Ready, completed and deleted, as kwokctl's
/// defaults do. Joined into [`KWOK_STAGES`] beside the binaries.
const KWOK_STAGE_FILES: [&str; 5] = [
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
];

/// The file in the binaries' folder that holds kwok's stages (the e2e harness passes it to kwok).
const KWOK_STAGES: &str = "kwok-stages.yaml";

/// The wrapper modules and what each builds, as `(binary, package)`.
const BUILDS: [Build; 4] = [
    Build {
        name: "kubernetes",
        cgo: false,
        tags: "",
        pin: KUBERNETES,
        binaries: &[
            ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
            (
                "kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
            ),
            ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
            ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
        ],
    },
    // The module's root package is etcd's main (etcdmain.Main), the server binary.
    Build {
        name: "etcd",
        cgo: false,
        tags: "",
        pin: ETCD,
        binaries: &[("etcd", "go.etcd.io/etcd/server/v3")],
    },
    Build {
        name: "kwok",
        cgo: false,
        tags: "",
        pin: KWOK,
        binaries: &[("kwok", "sigs.k8s.io/kwok/cmd/kwok")],
    },
    Build {
        name: "helm",
        cgo: false,
        tags: "",
        pin: HELM,
        binaries: &[("helm", "helm.sh/helm/v3/cmd/helm")],
    },
];

/// Go packages compiled at once (`go build -p`) unless told otherwise: this project's machine has
/// two cores.
pub const DEFAULT_JOBS: usize = 2;

/// A Go module at a version.
#[derive(Debug, Clone, Copy)]
pub struct Pin {
    pub module: &'static str,
    pub version: &'static str,
}

/// A wrapper module that requires `pin` and builds `binaries` from it.
#[derive(Debug)]
pub struct Build {
    /// The wrapper's folder and module name.
    pub name: &'static str,
    pub pin: Pin,
    /// Whether the packages need cgo (a C toolchain); otherwise the binaries are static.
    pub cgo: bool,
    /// Build tags, comma-separated.
    pub tags: &'static str,
    pub binaries: &'static [(&'static str, &'static str)],
}

/// `cargo xtask control-plane`'s subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Build what is missing, the control plane's and a real node's binaries (the first time
    /// about 30 minutes on two cores) and the images the node runs, and print the variables
    /// that the e2e tests read, for running `cargo test -p flashcards-e2e` by hand.
    Build {
        /// Go packages compiled in parallel (`go build -p`).
        #[arg(long, default_value_t = DEFAULT_JOBS)]
        jobs: usize,
    },
}

/// What the e2e tests need: the binaries' folder, the Prometheus Operator's CRDs and the
/// grafana-operator's GrafanaDashboard CRD.
#[derive(Debug)]
pub struct Artifacts {
    pub bin: PathBuf,
    pub prometheus_crds: PathBuf,
    pub grafana_dashboard_crd: PathBuf,
}

/// The variables through which the e2e tests find the [`Artifacts`].
pub const BIN_VAR: &str = "FLASHCARDS_E2E_BIN";
pub const PROMETHEUS_CRDS_VAR: &str = "FLASHCARDS_E2E_PROMETHEUS_CRDS";
pub const GRAFANA_CRD_VAR: &str = "FLASHCARDS_E2E_GRAFANA_DASHBOARD_CRD";

pub fn run(command: &Action) -> Result<()> {
    match command {
        Action::Build { jobs } => {
            let artifacts = ensure_built(*jobs)?;
            let node_bin = node::ensure_built(*jobs)?;
            let images = images::ensure_for_tests(&node_bin, || {
                cargo::build_dev(&images::service_packages())
            })?;
            println!("{BIN_VAR}={}", artifacts.bin.display());
            println!("{}={}", node::BIN_VAR, node_bin.display());
            println!("{}={}", flashcards_e2e::IMAGES_VAR, images.display());
            println!(
                "{PROMETHEUS_CRDS_VAR}={}",
                artifacts.prometheus_crds.display()
            );
            println!(
                "{GRAFANA_CRD_VAR}={}",
                artifacts.grafana_dashboard_crd.display()
            );
            Ok(())
        }
    }
}

/// Builds the binaries unless the cache has them, and finds the CRDs; prints how long it took.
pub fn ensure_built(jobs: usize) -> Result<Artifacts> {
    let started = Instant::now();
    let dir = paths::cache_dir()?
        .join("control-plane")
        .join(cache_folder_name(&BUILDS));
    let bin = dir.join("bin");
    if !is_complete(&BUILDS, &bin, &[KWOK_STAGES]) {
        build_all(&BUILDS, &dir, jobs, "the control plane", |bin| {
            write_kwok_stages(&bin.join(KWOK_STAGES))
        })?;
    }
    let prometheus_crds = prometheus_crds()?;
    let grafana_dashboard_crd = grafana_dashboard_crd()?;
    eprintln!(
        "control plane binaries ready in {:.1?}: {}",
        started.elapsed(),
        bin.display()
    );
    Ok(Artifacts {
        bin,
        prometheus_crds,
        grafana_dashboard_crd,
    })
}

/// `kubernetes-1.37.2_etcd-3.7.3_kwok-0.8.0_helm-3.22.0`: a new pin builds into a new folder.
pub fn cache_folder_name(builds: &[Build]) -> String {
    let names: Vec<String> = builds
        .iter()
        .map(|build| {
            format!(
                "{}-{}",
                build.name,
                build.pin.version.trim_start_matches('v')
            )
        })
        .collect();
    names.join("_")
}

/// Whether `bin` has every binary and the `extra` files: a folder from an older layout is rebuilt.
pub fn is_complete(builds: &[Build], bin: &Path, extra: &[&str]) -> bool {
    builds
        .iter()
        .flat_map(|build| build.binaries)
        .map(|(binary, _)| *binary)
        .chain(extra.iter().copied())
        .all(|file| bin.join(file).is_file())
}

/// Builds every wrapper module, then `finish` (the extra files), into a scratch folder that
/// becomes `dir` once complete, so an interrupted build never leaves a folder that looks ready.
pub fn build_all(
    builds: &[Build],
    dir: &Path,
    jobs: usize,
    what: &str,
    finish: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let parent = dir.parent().context("the cache folder has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let file_name = dir
        .file_name()
        .context("the cache folder has no name")?
        .to_string_lossy();
    let partial =
        ScratchDir::create(parent.join(format!("{file_name}.partial-{}", process::id())))?;
    eprintln!(
        "building {what} ({}) from Go modules into {}: about 15 minutes on two cores the first \
         time",
        cache_folder_name(builds),
        dir.display()
    );
    let started = Instant::now();
    let bin = partial.path().join("bin");
    for build in builds {
        let module_dir = partial.path().join("modules").join(build.name);
        write_wrapper(build, &module_dir)?;
        for (binary, package) in build.binaries {
            let step = Instant::now();
            go_build(&module_dir, build, package, &bin.join(binary), jobs)?;
            eprintln!("built {binary} in {:.0?}", step.elapsed());
        }
    }
    finish(&bin)?;
    let extra: Vec<String> = fs::read_dir(&bin)
        .with_context(|| format!("listing {}", bin.display()))?
        .filter_map(|entry| Some(entry.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    if dir.exists() {
        // Another xtask may have finished the same build meanwhile; keep its folder then.
        if is_complete(builds, &dir.join("bin"), &extra) {
            return Ok(());
        }
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    partial.persist(dir)?;
    eprintln!("built {what} in {:.0?}", started.elapsed());
    Ok(())
}

/// Writes the wrapper's go.mod: it requires the pinned module and nothing else; `go build
/// -mod=mod` resolves the rest with the pinned module's own requirements and records go.sum.
fn write_wrapper(build: &Build, module_dir: &Path) -> Result<()> {
    fs::create_dir_all(module_dir).with_context(|| format!("creating {}", module_dir.display()))?;
    let mut go_mod = format!(
        "// Written by `cargo xtask control-plane build`.\nmodule flashcards.invalid/{}\n\ngo 1.26.0\n\nrequire {} {}\n",
        build.name, build.pin.module, build.pin.version
    );
    if build.pin.module == KUBERNETES.module {
        go_mod.push_str(&staging_replacements()?);
    }
    let path = module_dir.join("go.mod");
    fs::write(&path, go_mod).with_context(|| format!("writing {}", path.display()))
}

/// k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0
/// and points them at its own `staging/` folder, which a dependency's replacements cannot do; each
/// is published as its own module at v0.<minor>.<patch> instead, so the wrapper replaces them
/// with those.
fn staging_replacements() -> Result<String> {
    let kubernetes_go_mod = fs::read_to_string(module_go_mod(KUBERNETES)?)
        .context("reading k8s.io/kubernetes's go.mod")?;
    let staging = staging_modules(&kubernetes_go_mod);
    ensure!(
        !staging.is_empty(),
        "found no staging modules in k8s.io/kubernetes {}'s go.mod",
        KUBERNETES.version
    );
    let version = staging_version(KUBERNETES.version)?;
    let mut replace = String::from("\nreplace (\n");
    for module in staging {
        writeln!(replace, "\t{module} => {module} {version}")
            .context("formatting a replacement")?;
    }
    replace.push_str(")\n");
    Ok(replace)
}

/// The modules that a k8s.io/kubernetes go.mod both requires and replaces with a `./staging/`
/// folder: those it does not require (sample-controller, ...) are not published at every version.
fn staging_modules(go_mod: &str) -> Vec<&str> {
    let replaced: Vec<&str> = go_mod
        .lines()
        .filter_map(|line| {
            let (module, target) = line.trim().split_once("=>")?;
            target
                .trim()
                .starts_with("./staging/")
                .then_some(module.trim())
        })
        .collect();
    replaced
        .into_iter()
        .filter(|module| {
            go_mod.lines().any(|line| {
                let mut words = line.split_whitespace();
                words.next() == Some(module) && words.next() == Some("v0.0.0")
            })
        })
        .collect()
}

/// `v1.37.2` → `v0.37.2`.
fn staging_version(kubernetes: &str) -> Result<String> {
    match kubernetes.strip_prefix("v1.") {
        Some(rest) => Ok(format!("v0.{rest}")),
        None => bail!("unexpected Kubernetes version {kubernetes}"),
    }
}

/// The `-ldflags` for a build: without the version stamps Kubernetes reports v0.0.0-master, which
/// its own version checks (and kubectl's) reject or misread.
fn ldflags(build: &Build) -> Result<String> {
    // -s -w: no symbol table or DWARF, for smaller binaries and a faster link.
    let mut flags = String::from("-s -w");
    let version = build.pin.version;
    if build.pin.module == KUBERNETES.module {
        let mut parts = version.trim_start_matches('v').split('.');
        let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
            bail!("unexpected Kubernetes version {version}");
        };
        for package in [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ] {
            for (name, value) in [
                ("gitVersion", version),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
            ] {
                write!(flags, " -X {package}.{name}={value}").context("formatting ldflags")?;
            }
        }
    } else {
        let stamp = match build.name {
            "helm" => Some("helm.sh/helm/v3/internal/version.version"),
            "containerd" => Some("github.com/containerd/containerd/v2/version.Version"),
            "runc" => Some("main.version"),
            _ => None,
        };
        if let Some(variable) = stamp {
            write!(flags, " -X {variable}={version}").context("formatting ldflags")?;
        }
    }
    Ok(flags)
}

/// `go build` of one main package into `output`, inside the wrapper module.
fn go_build(
    module_dir: &Path,
    build: &Build,
    package: &str,
    output: &Path,
    jobs: usize,
) -> Result<()> {
    let mut command = go(module_dir);
    command
        // -buildvcs=false: the wrapper has no VCS to stamp, whatever folder the cache is in.
        .args([
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-p",
            &jobs.to_string(),
        ])
        .arg("-ldflags")
        .arg(ldflags(build)?)
        .arg(format!("-tags={}", build.tags))
        .arg("-o")
        .arg(output)
        .arg(package)
        // Static binaries unless the package needs C; -mod=mod lets go add the go.sum lines.
        .env("CGO_ENABLED", if build.cgo { "1" } else { "0" })
        .env("GOFLAGS", "-mod=mod");
    let status = command
        .status()
        .context("running go: Go 1.26 or newer must be on PATH")?;
    ensure!(
        status.success(),
        "`go build {package}` in {} failed ({status})",
        module_dir.display()
    );
    Ok(())
}

/// `go` in `dir`, with the Go on PATH whatever go.mod files say (no toolchain downloads) and no
/// go.work from above.
fn go(dir: &Path) -> Command {
    let mut command = Command::new("go");
    command
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env_remove("GOFLAGS");
    command
}

/// Joins [`KWOK_STAGE_FILES`] from kwok's module into one YAML stream at `path`.
fn write_kwok_stages(path: &Path) -> Result<()> {
    let module = module_dir(KWOK)?;
    let mut stages = String::new();
    for file in KWOK_STAGE_FILES {
        let stage = fs::read_to_string(module.join(file))
            .with_context(|| format!("reading {file} from {}", module.display()))?;
        stages.push_str("---\n");
        stages.push_str(&stage);
    }
    fs::write(path, stages).with_context(|| format!("writing {}", path.display()))
}

/// What `go mod download -json` says about a module.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Download {
    dir: Option<PathBuf>,
    go_mod: Option<PathBuf>,
    error: Option<String>,
}

/// Downloads a module version into the module cache (or finds it there).
fn download(pin: Pin) -> Result<Download> {
    // Outside any module, so that no go.mod around changes what is downloaded.
    let mut command = go(&std::env::temp_dir());
    let output = command
        .args(["mod", "download", "-json"])
        .arg(format!("{}@{}", pin.module, pin.version))
        .output()
        .context("running go: Go 1.26 or newer must be on PATH")?;
    let info: Download = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "`go mod download {}@{}` failed ({}): {}",
            pin.module,
            pin.version,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if let Some(error) = &info.error {
        bail!("downloading {}@{}: {error}", pin.module, pin.version);
    }
    ensure!(
        output.status.success(),
        "`go mod download {}@{}` failed ({})",
        pin.module,
        pin.version,
        output.status
    );
    Ok(info)
}

/// The module's folder in the Go module cache (downloaded the first time).
pub fn module_dir(pin: Pin) -> Result<PathBuf> {
    download(pin)?
        .dir
        .with_context(|| format!("go mod download names no folder for {}", pin.module))
}

fn module_go_mod(pin: Pin) -> Result<PathBuf> {
    download(pin)?
        .go_mod
        .with_context(|| format!("go mod download names no go.mod for {}", pin.module))
}

/// The Prometheus Operator's CRD folder in the Go module cache (downloaded the first time).
fn prometheus_crds() -> Result<PathBuf> {
    let dir = download(PROMETHEUS_OPERATOR)?
        .dir
        .context("go mod download names no folder for the Prometheus Operator")?
        .join(PROMETHEUS_CRDS_SUBDIR);
    ensure!(
        dir.is_dir(),
        "{} {} has no {PROMETHEUS_CRDS_SUBDIR}",
        PROMETHEUS_OPERATOR.module,
        PROMETHEUS_OPERATOR.version
    );
    Ok(dir)
}

fn grafana_dashboard_crd() -> Result<PathBuf> {
    let file = download(GRAFANA_OPERATOR)?
        .dir
        .context("go mod download names no folder for the grafana-operator")?
        .join(GRAFANA_DASHBOARD_CRD);
    ensure!(
        file.is_file(),
        "{} {} has no {GRAFANA_DASHBOARD_CRD}",
        GRAFANA_OPERATOR.module,
        GRAFANA_OPERATOR.version
    );
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::{BUILDS, cache_folder_name, staging_modules, staging_version};

    #[test]
    fn staging_modules_are_those_required_and_replaced_with_a_folder() {
        let go_mod = "module k8s.io/kubernetes\n\nrequire (\n\tgithub.com/x/y v1.0.0\n\t\
            k8s.io/api v0.0.0\n\tk8s.io/client-go v0.0.0\n)\n\nreplace (\n\t\
            k8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\t\
            k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller\n\t\
            github.com/x/y => github.com/x/z v1.0.0\n)\n";
        assert_eq!(staging_modules(go_mod), ["k8s.io/api", "k8s.io/client-go"]);
    }

    #[test]
    fn staging_modules_take_the_minor_and_patch() -> anyhow::Result<()> {
        assert_eq!(staging_version("v1.37.2")?, "v0.37.2");
        assert!(staging_version("v2.0.0").is_err());
        Ok(())
    }

    #[test]
    fn the_cache_folder_names_every_version() {
        assert_eq!(
            cache_folder_name(&BUILDS),
            "kubernetes-1.37.2_etcd-3.7.3_kwok-0.8.0_helm-3.22.0"
        );
    }
}
