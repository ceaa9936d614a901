//! Server processes for `up`, `bench`, `bench-ocr` and the tests' LLM: free ports, waiting until
//! they answer, stopping them.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Stdio},
    slice, thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rustix::process::{
    Pid, Signal, WaitOptions, getpid, kill_process, kill_process_group, set_child_subreaper,
    test_kill_process_group, waitpgid,
};

use crate::{http, interrupt};

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

/// Fails unless `listen` is free, with what to do if it is taken: another server on the port would
/// answer the health checks in `service`'s place, or `service` would fail once started, after a
/// build. `option` is the one that moves `service` elsewhere.
pub fn ensure_free(listen: SocketAddr, service: &str, option: &str) -> Result<()> {
    match TcpListener::bind(listen) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
            bail!("{}", port_in_use(listen.port(), service, option))
        }
        Err(err) => {
            Err(err).with_context(|| format!("cannot listen on {listen} for {service} ({option})"))
        }
    }
}

fn port_in_use(port: u16, service: &str, option: &str) -> String {
    format!(
        "port {port} ({service}) is in use: stop whatever holds it (`ss -ltnp 'sport = :{port}'` \
         shows it) or give {service} another port with {option}"
    )
}

/// How long a server started with [`Server::start_group`] may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long what is left of a server may take to go after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

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
        // A process of the group orphaned by its parent comes to us to reap, rather than to an
        // init that reaps late or never (a container's): only then is the group seen empty.
        set_child_subreaper(Some(getpid())).context("becoming our children's subreaper")?;
        command
            .process_group(0)
            // Reading the terminal from outside its foreground group would stop it (SIGTTIN).
            .stdin(Stdio::null());
        Self::spawn(name, command, true)
    }

    fn spawn(name: &str, command: &mut Command, group: bool) -> Result<Self> {
        interrupt::bail_if_requested()?;
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            group,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the server's first process exited, if it has.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("checking on {}", self.name))
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
            if interrupt::requested() {
                bail!("stopped on request while waiting for {}", self.name);
            }
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
    fn signal(&self, signal: Signal) {
        let pid = Pid::from_child(&self.child);
        // An error means that nothing is left to signal.
        let _ = if self.group {
            kill_process_group(pid, signal)
        } else {
            kill_process(pid, signal)
        };
    }

    /// Whether nothing of the server is left: its first process reaped and, for a group, every
    /// other process of the group gone too.
    fn gone(&mut self) -> bool {
        if let Ok(None) = self.child.try_wait() {
            return false;
        }
        if !self.group {
            return true;
        }
        let group = Pid::from_child(&self.child);
        // Reaps the group's orphans, ours as their subreaper; the first process is reaped above,
        // where `Child` keeps its status.
        while let Ok(Some(_)) = waitpgid(group, WaitOptions::NOHANG) {}
        test_kill_process_group(group).is_err()
    }
}

/// Stops the servers together: SIGTERM to each one's group (a server started with
/// [`Server::start`], alone in ours, gets SIGKILL), time to stop, then SIGKILL to whatever is
/// left.
pub fn stop_all(servers: &mut [Server]) {
    for server in servers.iter_mut() {
        if !server.gone() {
            server.signal(if server.group {
                Signal::TERM
            } else {
                Signal::KILL
            });
        }
    }
    if wait_gone(servers, STOP_TIMEOUT) {
        return;
    }
    for server in servers.iter_mut() {
        if !server.gone() {
            server.signal(Signal::KILL);
        }
    }
    wait_gone(servers, KILL_TIMEOUT);
}

/// Waits up to `timeout` for nothing to be left of the servers; whether nothing is.
fn wait_gone(servers: &mut [Server], timeout: Duration) -> bool {
    let started = Instant::now();
    loop {
        if servers.iter_mut().all(Server::gone) {
            return true;
        }
        if started.elapsed() > timeout {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_all(slice::from_mut(self));
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};

    use super::{ensure_free, port_in_use};

    #[test]
    fn a_taken_port_fails_the_check() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listening");
        let listen = taken.local_addr().expect("the address");
        let err = ensure_free(listen, "the backend", "--listen").expect_err("a taken port");
        assert_eq!(
            err.to_string(),
            port_in_use(listen.port(), "the backend", "--listen")
        );
    }

    #[test]
    fn a_port_in_use_is_named_with_its_service_and_what_to_do() {
        assert_eq!(
            port_in_use(8002, "the backend", "--listen"),
            "port 8002 (the backend) is in use: stop whatever holds it \
             (`ss -ltnp 'sport = :8002'` shows it) or give the backend another port with --listen"
        );
    }
}
