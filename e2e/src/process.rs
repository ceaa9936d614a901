//! A child process (a control plane component, or the program under test): its log file, its
//! health, stopping it.
//!
//! The components stay in the test's process group, so a Ctrl-C in the terminal stops them with
//! the test instead of leaving them running; on drop each gets SIGTERM, then SIGKILL if it lingers.

use std::{
    fs::{self, OpenOptions},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use rustix::process::{Pid, Signal, kill_process};

use crate::Error;

/// How long a component may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How much of a component's log an error shows.
const LOG_TAIL_BYTES: usize = 4000;

#[derive(Debug)]
pub struct Process {
    name: &'static str,
    command: Command,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Starts `command` with its output appended to `log`.
    pub fn start(name: &'static str, command: Command, log: PathBuf) -> Result<Self, Error> {
        let mut process = Self {
            name,
            command,
            log,
            child: None,
        };
        process.spawn()?;
        Ok(process)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The process id while it runs, for reading its figures from `/proc`.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(Error::io(format!("opening {}", self.log.display())))?;
        let stderr = log
            .try_clone()
            .map_err(Error::io(format!("opening {}", self.log.display())))?;
        let child = self
            .command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(Error::io(format!(
                "starting {} ({})",
                self.name,
                Path::new(self.command.get_program()).display()
            )))?;
        self.child = Some(child);
        Ok(())
    }

    /// Stops the process and starts it again with the same command.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.spawn()
    }

    /// Fails if the process has exited, with the end of its log.
    pub fn check_running(&mut self) -> Result<(), Error> {
        let exited = match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(Error::io(format!("checking on {}", self.name)))?,
            None => None,
        };
        match exited {
            Some(status) => Err(Error::Exited {
                component: self.name,
                status,
                log: self.log_tail(),
            }),
            None => Ok(()),
        }
    }

    /// The last few kilobytes of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let Ok(bytes) = fs::read(&self.log) else {
            return format!("(no log at {})", self.log.display());
        };
        let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; waits for the exit either way.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            // An error means it exited meanwhile; the wait below reaps it either way.
            let _ = kill_process(Pid::from_child(&child), Signal::TERM);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
