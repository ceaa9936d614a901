//! Python virtualenvs in the cache, installed from PyPI once: the llama.cpp server's and MLflow's.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{self, Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, ensure};

use crate::paths::ScratchDir;

/// Debian's python3 can only create virtualenvs with python3-venv, which provides ensurepip.
pub const PYTHON_PACKAGES: [(&str, &str); 2] = [
    ("python3", "python3"),
    ("/usr/lib/*/ensurepip/__init__.py", "python3-venv"),
];

/// `dir/venv` when `python -c check` succeeds in it: an install that completed.
pub fn ready(dir: &Path, check: &str) -> Option<PathBuf> {
    let venv = dir.join("venv");
    python_runs(&python(&venv), check).then_some(venv)
}

/// Installs `packages` (pip arguments) into `dir/venv` with `env` set for pip, and checks that
/// `python -c check` then succeeds; `what` names it in messages. Built under another name and
/// renamed when complete, so an interrupted install never leaves a virtualenv that looks ready;
/// its scripts keep the old name in their #! lines, which is why callers run `python -m`.
pub fn install(
    dir: &Path,
    what: &str,
    packages: &[&str],
    env: &[(&str, String)],
    check: &str,
) -> Result<PathBuf> {
    let venv = dir.join("venv");
    let started = Instant::now();
    let partial = ScratchDir::create(dir.join(format!("venv.partial-{}", process::id())))?;
    run_step(
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(partial.path()),
    )?;
    run_step(
        Command::new(python(partial.path()))
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(packages)
            .envs(env.iter().map(|(key, value)| (key, value))),
    )?;
    if venv.exists() {
        // Another xtask may have finished the same install meanwhile; keep its virtualenv then.
        if let Some(venv) = ready(dir, check) {
            return Ok(venv);
        }
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    partial.persist(&venv)?;
    ensure!(
        python_runs(&python(&venv), check),
        "installed {what} into {}, but `{check}` fails there",
        venv.display()
    );
    eprintln!("installed {what} in {:.0?}", started.elapsed());
    Ok(venv)
}

/// The virtualenv's python.
pub fn python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Whether `python -c code` succeeds; a missing python is a no.
pub fn python_runs(python: &Path, code: &str) -> bool {
    Command::new(python)
        .args(["-c", code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs `command` with its output on the terminal.
pub fn run_step(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    ensure!(status.success(), "{command:?} failed ({status})");
    Ok(())
}
