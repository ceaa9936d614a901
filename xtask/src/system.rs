//! Facts about the machine: whether we are root, and where a program is installed.

use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{Context, Result, ensure};

/// Whether xtask runs with effective user id 0.
pub fn is_root() -> Result<bool> {
    let output = Command::new("id")
        .arg("-u")
        .output()
        .context("running `id -u`")?;
    ensure!(
        output.status.success(),
        "`id -u` failed ({})",
        output.status
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Finds a program: a bare name is looked up on PATH; a path may have one `*` component (Debian
/// puts versions there, as in `/usr/lib/postgresql/*/bin/initdb`), in which case the highest
/// version wins.
pub fn locate(program: &str) -> Option<PathBuf> {
    if !program.contains('/') {
        return env::split_paths(&env::var_os("PATH")?)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file());
    }
    let Some((parent, rest)) = program.split_once("/*/") else {
        return Some(PathBuf::from(program)).filter(|path| path.is_file());
    };
    fs::read_dir(parent)
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| {
            let version = version_key(&entry.file_name().to_string_lossy());
            (version, entry.path().join(rest))
        })
        .filter(|(_, path)| path.is_file())
        .max()
        .map(|(_, path)| path)
}

/// Orders version folders such as `9.6` and `15` by their major number first.
fn version_key(name: &str) -> (u32, String) {
    let major = name
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    (major, name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn newer_major_versions_sort_higher() {
        assert!(version_key("15") > version_key("9.6"));
        assert!(version_key("17") > version_key("15"));
    }
}
