//! Server processes for `up`, `bench`, `bench-ocr` and the tests' LLM: free ports, waiting until
//! they answer, stopping them.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    process::{Child, Command, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::http;

/// How long a server may take to answer its first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A free TCP port on 127.0.0.1. Binding port 0 lets the kernel choose; someone else could take
/// it before our server binds it, which is unlikely enough for local runs.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener
        .local_addr()
        .context("reading the free port")?
        .port())
}

/// Where to connect to a server listening on `listen`: a wildcard address means this machine.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    }
}

/// A running server process, killed when dropped so that an error anywhere stops it too.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
}

impl Server {
    pub fn start(name: &str, command: &mut Command) -> Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
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

impl Drop for Server {
    fn drop(&mut self) {
        // Errors here mean it has exited already; either way there is nothing left to stop.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
