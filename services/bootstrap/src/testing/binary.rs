//! A service's binary run as an operator runs it: `--help`, start-up with JSON logs, plain HTTP
//! requests, and SIGTERM.

use std::{
    io::{BufRead, BufReader, Lines, Read, Write},
    net::TcpStream,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long a service may take to exit after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// The environment variables of the flags every service shares ([`crate::CommonArgs`]).
const SHARED_VARIABLES: [&str; 3] = ["LISTEN", "LOG_FORMAT", "BODY_LIMIT_BYTES"];

/// The environment variables of the MLflow flags ([`crate::config::MlflowArgs`]), which only the
/// services that log to MLflow take.
pub const MLFLOW_VARIABLES: [&str; 4] = [
    "MLFLOW_URL",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_QUEUE",
    "MLFLOW_TIMEOUT_SECS",
];

/// The binary's `--help` text, checked to name the shared flags' environment variables and each of
/// `own` the way clap does (`[env: NAME`).
///
/// # Panics
/// When `--help` fails or a variable is missing, showing the text.
pub fn help_naming(binary: &str, own: &[&str]) -> String {
    let output = Command::new(binary)
        .arg("--help")
        .output()
        .unwrap_or_else(|err| panic!("running {binary} --help: {err}"));
    assert!(
        output.status.success(),
        "{binary} --help: {}",
        output.status
    );
    let help = String::from_utf8(output.stdout).expect("--help is UTF-8");
    for variable in SHARED_VARIABLES.iter().chain(own) {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "{variable} missing from:\n{help}"
        );
    }
    help
}

/// A started service. Dropping it kills the process, so a failed assertion leaves nothing running.
pub struct Service {
    child: Child,
    logs: Lines<BufReader<ChildStdout>>,
    address: String,
}

impl Service {
    /// Starts `command` listening on a free loopback port with JSON logs at `info`, and waits for
    /// the log line announcing `http://<address>`.
    ///
    /// # Panics
    /// When it cannot start or exits before announcing its address.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the service");
        let mut logs = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let address = logs
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| announced_address(&line))
            .expect("the service exited before announcing its address");
        Self {
            child,
            logs,
            address,
        }
    }

    /// `http://<address>` the service announced.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The whole HTTP/1.0 response (status line, headers, body) to `GET path`.
    ///
    /// # Panics
    /// When the connection fails.
    pub fn get(&self, path: &str) -> String {
        self.http("GET", path, &[], "")
    }

    /// The whole HTTP/1.0 response to `POST path` with a JSON body.
    ///
    /// # Panics
    /// When the connection fails.
    pub fn post_json(&self, path: &str, body: &str) -> String {
        self.http("POST", path, &[("Content-Type", "application/json")], body)
    }

    /// The whole HTTP/1.0 response to a request with these extra headers and body.
    ///
    /// # Panics
    /// When the connection fails.
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: test\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        let mut stream = TcpStream::connect(&self.address).expect("connecting to the service");
        stream
            .write_all(request.as_bytes())
            .expect("sending the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("reading the response");
        response
    }

    /// Sends SIGTERM and waits for a successful exit; returns the log lines written after start-up.
    ///
    /// # Panics
    /// When the signal cannot be sent, or the service is still running after 10 s or exits with a
    /// failure.
    pub fn stop_with_sigterm(mut self) -> Vec<String> {
        let kill = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(kill.success(), "kill -TERM: {kill}");
        let status = self.wait(STOP_WITHIN);
        assert!(status.success(), "exit status {status}");
        self.logs.by_ref().map_while(Result::ok).collect()
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the service") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {within:?} after SIGTERM"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `host:port` in a JSON log line whose message says `http://host:port`.
fn announced_address(line: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let url = event["message"].as_str()?.split("http://").nth(1)?;
    Some(url.split_whitespace().next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_comes_from_the_announcing_message() {
        let line = r#"{"level":"INFO","message":"svc listening on http://127.0.0.1:4321 (API docs at /docs)"}"#;
        assert_eq!(announced_address(line).as_deref(), Some("127.0.0.1:4321"));
        assert_eq!(announced_address(r#"{"message":"starting"}"#), None);
        assert_eq!(announced_address("not json http://x:1"), None);
    }
}
