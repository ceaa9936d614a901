//! What can go wrong while starting, using or waiting on the control plane.

use std::{io, path::PathBuf, process::ExitStatus, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{var} is not set: run the e2e tests through `cargo xtask test`, which builds the \
         control plane and sets it (or set what `cargo xtask control-plane build` prints)"
    )]
    NotConfigured { var: &'static str },

    #[error(
        "{} is missing: rebuild it with `cargo xtask control-plane build`",
        path.display()
    )]
    Missing { path: PathBuf },

    #[error(
        "{name} is not built at {}: run the tests with `cargo test --workspace` (as `cargo xtask \
         test` does) or `cargo build -p <its package>` first",
        path.display()
    )]
    NotBuilt { name: String, path: PathBuf },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("invalid URL {url}: {source}")]
    Url {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },

    #[error("making the certificates: {0}")]
    Certificate(#[from] rcgen::Error),

    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),

    #[error("calling the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },

    #[error("{component} exited ({status}); the end of its log:\n{log}")]
    Exited {
        component: &'static str,
        status: ExitStatus,
        log: String,
    },

    #[error("{component} was not ready within {timeout:?}; the end of its log:\n{log}")]
    NotReady {
        component: &'static str,
        timeout: Duration,
        log: String,
    },

    #[error("{what}: not within {timeout:?}{}", last_error.as_ref().map(|error| format!(" (last error: {error})")).unwrap_or_default())]
    TimedOut {
        what: String,
        timeout: Duration,
        last_error: Option<String>,
    },
}

impl Error {
    /// An [`Error::Io`] saying what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
