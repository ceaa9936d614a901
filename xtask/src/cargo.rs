//! Running cargo on the workspace and finding what it built.

use std::{env, ffi::OsString, path::PathBuf, process::Command};

use anyhow::{Context, Result, ensure};

use crate::paths::workspace_root;

/// `cargo` (the one running xtask, if any) in the workspace root.
pub fn command() -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(workspace_root());
    command
}

/// `cargo build --release <args>`, with cargo's output on the terminal.
pub fn build_release(args: &[&str]) -> Result<()> {
    let status = command()
        .args(["build", "--release"])
        .args(args)
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "`cargo build --release {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}

/// `cargo build <args>` in the dev profile (the test build's own binaries), with cargo's output
/// on the terminal.
pub fn build_dev(args: &[&str]) -> Result<()> {
    let status = command()
        .arg("build")
        .args(args)
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "`cargo build {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}

/// A binary built by [`build_dev`].
pub fn dev_binary(name: &str) -> PathBuf {
    target_dir().join("debug").join(name)
}

/// A binary built by [`build_release`].
pub fn release_binary(name: &str) -> PathBuf {
    target_dir().join("release").join(name)
}

/// An example built by [`build_release`] with `--example`.
pub fn release_example(name: &str) -> PathBuf {
    target_dir().join("release").join("examples").join(name)
}

fn target_dir() -> PathBuf {
    // Cargo runs in the workspace root, so a relative CARGO_TARGET_DIR is relative to it.
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    workspace_root().join(target)
}
