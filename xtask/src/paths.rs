//! Where things live: the workspace, the per-user cache and data folders, and scratch folders.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// The workspace root, which holds `xtask/`.
pub fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// `~/.cache/flashcards` (or under `$XDG_CACHE_HOME`).
pub fn cache_dir() -> Result<PathBuf> {
    Ok(xdg_dir("XDG_CACHE_HOME", ".cache")?.join("flashcards"))
}

/// `~/.cache/flashcards/models`: the GGUF models, shared by every task that needs one.
pub fn models_dir() -> Result<PathBuf> {
    Ok(cache_dir()?.join("models"))
}

/// `~/.local/share/flashcards` (or under `$XDG_DATA_HOME`).
pub fn data_dir() -> Result<PathBuf> {
    Ok(xdg_dir("XDG_DATA_HOME", ".local/share")?.join("flashcards"))
}

fn xdg_dir(variable: &str, under_home: &str) -> Result<PathBuf> {
    match env::var_os(variable) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => {
            let home = env::var_os("HOME").context("HOME is not set")?;
            Ok(PathBuf::from(home).join(under_home))
        }
    }
}

/// A folder that is deleted with everything in it when dropped, so errors leave nothing behind.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `path` empty; a leftover with the same name (same process id) is removed first.
    pub fn create(path: PathBuf) -> Result<Self> {
        if path.exists() {
            fs::remove_dir_all(&path)
                .with_context(|| format!("removing the leftover {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Keeps the folder after all, renamed to `dest`, which must not exist.
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.0, dest)
            .with_context(|| format!("renaming {} to {}", self.0.display(), dest.display()))?;
        // An empty path tells drop that there is nothing left to remove.
        self.0 = PathBuf::new();
        Ok(())
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        if let Err(err) = fs::remove_dir_all(&self.0) {
            eprintln!("warning: could not remove {}: {err}", self.0.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{env, fs, process};

    use super::ScratchDir;

    #[test]
    fn a_persisted_scratch_dir_survives_under_its_new_name() -> anyhow::Result<()> {
        let base = env::temp_dir().join(format!("xtask-paths-test-{}", process::id()));
        let scratch = ScratchDir::create(base.join("partial"))?;
        fs::write(scratch.path().join("file"), "kept")?;
        let kept = base.join("kept");
        scratch.persist(&kept)?;
        assert_eq!(fs::read_to_string(kept.join("file"))?, "kept");
        assert!(!base.join("partial").exists());
        fs::remove_dir_all(&base)?;
        Ok(())
    }
}
