//! A throwaway PostgreSQL cluster for the tests: its own folder, port and socket, removed after.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{self, Command},
};

use anyhow::{Context, Result, bail};
use flashcards_e2e::workspace::free_port;

use crate::{
    apt,
    paths::{self, ScratchDir},
    system,
};

/// Debian's initdb; the version folder depends on the release.
const INITDB: &str = "/usr/lib/postgresql/*/bin/initdb";

/// A running cluster, stopped and deleted when dropped.
#[derive(Debug)]
pub struct Cluster {
    bin_dir: PathBuf,
    /// Root may not run the server, so the tools then run as the `postgres` user.
    as_postgres: bool,
    port: u16,
    // Dropped after `drop` has stopped the server, which removes the folder.
    dir: ScratchDir,
}

impl Cluster {
    pub fn start() -> Result<Self> {
        apt::ensure_apt_packages(&[(INITDB, "postgresql")])?;
        let initdb = system::locate(INITDB).context("initdb not found")?;
        let bin_dir = initdb
            .parent()
            .context("initdb has no parent folder")?
            .to_owned();
        let as_postgres = system::is_root()?;
        let cluster = Self {
            bin_dir,
            as_postgres,
            port: free_port()?,
            dir: make_dir(as_postgres)?,
        };
        cluster.init()?;
        cluster.start_server()?;
        eprintln!(
            "test PostgreSQL is up at {} (in {})",
            cluster.url(),
            cluster.dir.path().display()
        );
        Ok(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn init(&self) -> Result<()> {
        let initdb = |locale: &str| {
            let mut command = self.tool("initdb");
            command.arg("-D").arg(self.data()).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                locale,
            ]);
            run_quiet(&mut command)
        };
        let Err(first) = initdb("--locale=C.UTF-8") else {
            return Ok(());
        };
        // Some systems lack C.UTF-8; the C locale works everywhere.
        if self.data().exists() {
            fs::remove_dir_all(self.data()).context("removing the failed initdb's data")?;
        }
        initdb("--no-locale")
            .with_context(|| format!("initdb failed with --locale=C.UTF-8 ({first:#}) and"))
    }

    fn start_server(&self) -> Result<()> {
        let log = self.dir.path().join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.socket_dir().display()
        );
        let mut command = self.tool("pg_ctl");
        command
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-o", &options, "start"]);
        if let Err(err) = run_quiet(&mut command) {
            let log =
                fs::read_to_string(&log).unwrap_or_else(|read| format!("(unreadable: {read})"));
            bail!("{err:#}\nserver log:\n{log}");
        }
        Ok(())
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn tool(&self, name: &str) -> Command {
        let program = self.bin_dir.join(name);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into our working directory.
        command.current_dir(self.dir.path());
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // No postmaster.pid means no server is running (initdb or start failed): nothing to stop.
        if !self.data().join("postmaster.pid").exists() {
            return;
        }
        let mut command = self.tool("pg_ctl");
        command
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"]);
        if let Err(err) = run_quiet(&mut command) {
            eprintln!("warning: could not stop the test PostgreSQL: {err:#}");
        }
    }
}

/// Creates the cluster's folder with its socket folder, owned by `postgres` when we are root.
fn make_dir(as_postgres: bool) -> Result<ScratchDir> {
    let name = format!("pg-test-{}", process::id());
    let preferred = new_dir(paths::cache_dir()?.join(&name), as_postgres)?;
    if !as_postgres || postgres_can_write(preferred.path())? {
        return Ok(preferred);
    }
    // Root's home is usually private (0700), so the postgres user cannot reach the cache there.
    drop(preferred);
    new_dir(
        env::temp_dir().join(format!("flashcards-{name}")),
        as_postgres,
    )
}

fn new_dir(path: PathBuf, as_postgres: bool) -> Result<ScratchDir> {
    let dir = ScratchDir::create(path)?;
    let socket_dir = dir.path().join("sock");
    fs::create_dir(&socket_dir).with_context(|| format!("creating {}", socket_dir.display()))?;
    if as_postgres {
        run_quiet(
            Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path()),
        )?;
    }
    Ok(dir)
}

fn postgres_can_write(dir: &Path) -> Result<bool> {
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-w"])
        .arg(dir)
        .status()
        .context("running runuser")?;
    Ok(status.success())
}

/// Runs `command` with its output captured, which becomes part of the error if it fails.
fn run_quiet(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
