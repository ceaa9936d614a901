//! Servers that live and die together, as `up`'s stack and `mlflow`'s server do: each in a process
//! group of its own, so that stopping it stops its own children too (a Python server's workers)
//! and no signal reaches it but through xtask; watched until a stop is requested (Ctrl-C, SIGTERM,
//! SIGHUP once [`interrupt::defer_stop_signals`] is called) or one of them exits; then all stopped.

use std::{
    ops::{Index, IndexMut},
    process::{Command, ExitStatus},
    thread,
    time::Duration,
};

use anyhow::Result;

use crate::{
    interrupt,
    server::{self, Server},
};

/// How often [`Supervisor::watch`] looks at the signals and the servers.
const POLL: Duration = Duration::from_millis(100);

/// The servers, stopped together when dropped, whatever the way out: a stop signal, a server that
/// exited, an error.
#[derive(Debug, Default)]
pub struct Supervisor {
    servers: Vec<Server>,
}

/// One of a [`Supervisor`]'s servers, which indexing it with this gives.
#[derive(Debug, Clone, Copy)]
pub struct Member(usize);

/// Why [`Supervisor::watch`] returned.
#[derive(Debug)]
pub enum Stop {
    /// A stop signal came.
    Requested,
    /// A server exited by itself.
    Exited { name: String, status: ExitStatus },
}

impl Supervisor {
    /// Starts a server in a process group of its own.
    pub fn start(&mut self, name: &str, command: &mut Command) -> Result<Member> {
        Ok(self.adopt(Server::start_group(name, command)?))
    }

    /// Watches and stops `server`, started with [`Server::start_group`], with the others.
    pub fn adopt(&mut self, server: Server) -> Member {
        self.servers.push(server);
        Member(self.servers.len() - 1)
    }

    /// Waits until a stop is requested or a server exits.
    pub fn watch(&mut self) -> Result<Stop> {
        loop {
            if interrupt::requested() {
                return Ok(Stop::Requested);
            }
            for server in &mut self.servers {
                if let Some(status) = server.exited()? {
                    return Ok(Stop::Exited {
                        name: server.name().to_owned(),
                        status,
                    });
                }
            }
            thread::sleep(POLL);
        }
    }
}

impl Index<Member> for Supervisor {
    type Output = Server;

    fn index(&self, member: Member) -> &Server {
        &self.servers[member.0]
    }
}

impl IndexMut<Member> for Supervisor {
    fn index_mut(&mut self, member: Member) -> &mut Server {
        &mut self.servers[member.0]
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // All at once: the wait is the slowest server's, not the sum of all.
        server::stop_all(&mut self.servers);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        env,
        io::{BufRead, BufReader},
        net::{Ipv4Addr, TcpListener},
        os::fd::OwnedFd,
        process::{Child, Command, Stdio},
        sync::mpsc::{self, Receiver},
        thread,
        time::{Duration, Instant},
    };

    use flashcards_e2e::workspace::free_port;
    use rustix::process::{
        Pid, Signal, kill_process, kill_process_group, test_kill_process, test_kill_process_group,
    };

    use super::{Stop, Supervisor};
    use crate::interrupt;

    /// The part a copy of this test binary plays in [`part`]: `supervisor` (what `up` does) or
    /// `server` (one of its servers).
    const PART: &str = "XTASK_SUPERVISE_TEST_PART";

    /// The port the `server` part listens on.
    const PORT: &str = "XTASK_SUPERVISE_TEST_PORT";

    /// What the parts print for the test to read, among the test harness's own lines.
    const MARK: &str = "supervise-test:";

    /// How long a run may take to start or to stop; both take well under a second.
    const DEADLINE: Duration = Duration::from_secs(20);

    #[test]
    fn each_stop_signal_stops_every_process_and_frees_the_port() {
        for signal in [Signal::TERM, Signal::INT, Signal::HUP] {
            let run = Run::start();
            kill_process(run.supervisor_pid(), signal).expect("signalling the supervisor");
            run.assert_stopped("stopped on request", &format!("{signal:?}"));
        }
    }

    #[test]
    fn a_server_that_exits_stops_the_others() {
        let run = Run::start();
        kill_process(run.sleeper(), Signal::KILL).expect("killing the sleeper");
        run.assert_stopped("sleeper exited", "the sleeper killed");
    }

    #[test]
    #[ignore = "a part that the other tests here start in a process of its own"]
    fn part() {
        match env::var(PART).as_deref() {
            Ok("supervisor") => supervisor(),
            Ok("server") => server(),
            _ => {}
        }
    }

    /// This test binary running [`part`] alone, as `part`.
    fn copy_of_this_test_binary(part: &str) -> Command {
        let mut command = Command::new(env::current_exe().expect("the test binary's path"));
        command
            .args([
                "--exact",
                "supervise::tests::part",
                "--include-ignored",
                "--nocapture",
            ])
            .env(PART, part);
        command
    }

    /// What `up` does, with two servers: one with a worker (see [`server`]) and a lone `sleep`.
    fn supervisor() {
        interrupt::defer_stop_signals().expect("deferring the stop signals");
        let mut stack = Supervisor::default();
        let server = stack
            .start("server", &mut copy_of_this_test_binary("server"))
            .expect("starting the server");
        let sleeper = stack
            .start("sleeper", Command::new("sleep").arg("600"))
            .expect("starting the sleeper");
        println!(
            "{MARK}groups {} {}",
            stack[server].pid(),
            stack[sleeper].pid()
        );
        let stop = stack.watch().expect("watching the servers");
        drop(stack);
        match stop {
            Stop::Requested => println!("{MARK}stopped on request"),
            Stop::Exited { name, .. } => println!("{MARK}{name} exited"),
        }
    }

    /// A server whose worker shares its listening socket, as gunicorn's do: the port is free only
    /// once both are gone.
    fn server() {
        let port: u16 = env::var(PORT)
            .expect("the port")
            .parse()
            .expect("a port number");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("listening");
        let socket = OwnedFd::from(listener.try_clone().expect("copying the socket"));
        let mut worker = Command::new("sleep")
            .arg("600")
            .stdin(socket)
            .spawn()
            .expect("starting the worker");
        println!("{MARK}worker {}", worker.id());
        // As a master does, until a signal ends it.
        let _ = worker.wait();
    }

    /// The supervisor part running, its servers up.
    struct Run {
        supervisor: Child,
        lines: Receiver<String>,
        port: u16,
        /// The server's and the sleeper's.
        groups: [Pid; 2],
        worker: Pid,
    }

    impl Run {
        fn start() -> Self {
            let port = free_port().expect("a free port");
            let mut supervisor = copy_of_this_test_binary("supervisor")
                .env(PORT, port.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .expect("starting the supervisor");
            let stdout = supervisor.stdout.take().expect("the supervisor's stdout");
            let (sender, lines) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(line) = line.strip_prefix(MARK) {
                        let _ = sender.send(line.to_owned());
                    }
                }
            });
            let (mut groups, mut worker) = (None, None);
            while groups.is_none() || worker.is_none() {
                let line = lines
                    .recv_timeout(DEADLINE)
                    .expect("the supervisor's servers starting");
                let pids: Vec<Pid> = line
                    .split(' ')
                    .skip(1)
                    .map(|pid| Pid::from_raw(pid.parse().expect("a pid")).expect("a pid"))
                    .collect();
                match (line.split(' ').next(), &pids[..]) {
                    (Some("groups"), &[server, sleeper]) => groups = Some([server, sleeper]),
                    (Some("worker"), &[pid]) => worker = Some(pid),
                    _ => panic!("unexpected line {line:?}"),
                }
            }
            Self {
                supervisor,
                lines,
                port,
                groups: groups.expect("the groups"),
                worker: worker.expect("the worker"),
            }
        }

        fn supervisor_pid(&self) -> Pid {
            Pid::from_child(&self.supervisor)
        }

        /// The sleeper's process, whose id its group has.
        fn sleeper(&self) -> Pid {
            self.groups[1]
        }

        /// Waits for the supervisor to exit, then checks it said `how` and left nothing behind.
        fn assert_stopped(mut self, how: &str, after: &str) {
            let started = Instant::now();
            let status = loop {
                if let Some(status) = self.supervisor.try_wait().expect("checking on it") {
                    break status;
                }
                if started.elapsed() > DEADLINE {
                    let _ = self.supervisor.kill();
                    for group in self.groups {
                        let _ = kill_process_group(group, Signal::KILL);
                    }
                    panic!("the supervisor was still running {DEADLINE:?} after {after}");
                }
                thread::sleep(Duration::from_millis(20));
            };
            assert!(
                status.success(),
                "the supervisor failed ({status}) after {after}"
            );
            assert_eq!(
                self.lines.recv_timeout(DEADLINE).as_deref(),
                Ok(how),
                "after {after}"
            );
            for group in self.groups {
                assert!(
                    test_kill_process_group(group).is_err(),
                    "a process of group {group:?} is left after {after}"
                );
            }
            assert!(
                test_kill_process(self.worker).is_err(),
                "the worker is left after {after}"
            );
            TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).unwrap_or_else(|err| {
                panic!("port {} still taken after {after}: {err}", self.port)
            });
        }
    }
}
