//! Server processes for `up`, `bench`, `bench-ocr` and the tests' LLM: free ports, waiting until
//! they answer, stopping them.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::http;

/// How long a server may take to answer its first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where to connect to a server listening on `listen`: a wildcard address means this machine.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    }
}

/// How long a server started with [`Server::start_group`] may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server process, killed when dropped so that an error anywhere stops it too.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    /// Whether the child leads its own process group, which is stopped whole.
    group: bool,
}

impl Server {
    /// The process id of the server's first process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(name: &str, command: &mut Command) -> Result<Self> {
        Self::spawn(name, command, false)
    }

    /// [`Self::start`] for servers that run their work in processes of their own (MLflow runs
    /// gunicorn): the server gets its own process group, and dropping it stops the whole group,
    /// which killing the first process alone would not. Ctrl-C no longer reaches it; it stops
    /// when dropped.
    pub fn start_group(name: &str, command: &mut Command) -> Result<Self> {
        Self::spawn(name, command.process_group(0), true)
    }

    fn spawn(name: &str, command: &mut Command, group: bool) -> Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            group,
        })
    }

    /// Whether the server has exited.
    pub fn exited(&mut self) -> Result<bool> {
        Ok(self
            .child
            .try_wait()
            .with_context(|| format!("checking on {}", self.name))?
            .is_some())
    }

    /// Polls `GET path` until it answers 200, failing if the server exits or takes too long.
    pub fn wait_ready(&mut self, address: SocketAddr, path: &str) -> Result<()> {
        self.wait_ready_within(address, path, STARTUP_TIMEOUT)
    }

    /// [`Self::wait_ready`] for servers that need longer, such as those that load a model first.
    pub fn wait_ready_within(
        &mut self,
        address: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("checking on the server")? {
                bail!(
                    "{} exited ({status}) before answering GET {path}",
                    self.name
                );
            }
            if http::request(address, "GET", path, &[], None).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} did not answer GET http://{address}{path} within {timeout:?}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the server to exit by itself.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        self.child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))
    }
}

impl Server {
    /// SIGTERM to the group, time to stop, then SIGKILL to whatever is left of it.
    fn stop_group(&mut self) {
        let group = format!("-{}", self.child.id());
        signal_group("TERM", &group);
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // The first process is gone; its children get a moment to finish too.
        while started.elapsed() < STOP_TIMEOUT && signal_group("0", &group) {
            thread::sleep(Duration::from_millis(50));
        }
        signal_group("KILL", &group);
    }
}

/// `kill -<signal> -- -<pgid>`; whether some process of the group was there to signal.
fn signal_group(signal: &str, group: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .args(["--", group])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.group {
            self.stop_group();
        }
        // Errors here mean it has exited already; either way there is nothing left to stop.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
