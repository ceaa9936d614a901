//! Command-line and environment configuration shared by every service.
//!
//! Each service flattens [`CommonArgs`] (and [`MlflowArgs`] if it logs to MLflow) into its own clap
//! parser and calls [`parse`] with its port, so `--help` shows the right `--listen` default for that
//! service and every flag names its env variable.

use std::net::SocketAddr;

use clap::{ArgMatches, Args, Parser, ValueEnum};
use flashcards_contracts::flags;

/// Flags every service takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Address and port to listen on (the default port is the service's own).
    #[arg(long = flags::LISTEN.long, env = flags::LISTEN.env)]
    pub listen: SocketAddr,

    /// Log line format.
    #[arg(long = flags::LOG_FORMAT.long, env = flags::LOG_FORMAT.env, value_enum,
          default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Largest accepted request body, in bytes; larger bodies get 413.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
}

/// Flags of the services that log experiment data to MLflow (OCR, LLM); the others do not take
/// them.
#[derive(Debug, Clone, Args)]
pub struct MlflowArgs {
    /// MLflow tracking server the service logs its runs to, e.g. `http://mlflow:5000`
    /// (`user:password@` is sent as basic auth); without it nothing is logged.
    /// Logging is queued and never blocks or fails a request. Its value is not shown in `--help`,
    /// as it may hold a password.
    #[arg(long = flags::MLFLOW_URL.long, env = flags::MLFLOW_URL.env, hide_env_values = true)]
    pub mlflow_url: Option<String>,

    /// MLflow experiment the runs go to, created if missing [default: flashcards-<service>].
    #[arg(long, env = "MLFLOW_EXPERIMENT_NAME")]
    pub mlflow_experiment: Option<String>,

    /// Runs that may wait to be sent to MLflow; beyond that they are dropped (and counted).
    #[arg(long, env = "MLFLOW_QUEUE", default_value_t = 256)]
    pub mlflow_queue: usize,

    /// Longest wait for one MLflow API call, in seconds; a run whose call fails is not retried.
    #[arg(long, env = "MLFLOW_TIMEOUT_SECS", default_value_t = 5)]
    pub mlflow_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Parses the process arguments into `T`, with `--listen` defaulting to `0.0.0.0:<default_port>`.
pub fn parse<T: Parser>(default_port: u16) -> T {
    parse_from::<T, _, _>(std::env::args_os(), default_port).unwrap_or_else(|err| err.exit())
}

/// [`parse`] over explicit arguments (the first one is the program name), for tests.
pub fn parse_from<T, I, A>(args: I, default_port: u16) -> Result<T, clap::Error>
where
    T: Parser,
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    let mut command = T::command().mut_arg("listen", |arg| {
        arg.required(false)
            .default_value(format!("0.0.0.0:{default_port}"))
    });
    let matches: ArgMatches = command.try_get_matches_from_mut(args)?;
    T::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        mlflow: MlflowArgs,
    }

    #[derive(Debug, Parser)]
    struct Untracked {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn listen_defaults_to_the_service_port() {
        let demo: Demo = parse_from(["demo"], 8002).expect("defaults parse");
        assert_eq!(demo.common.listen, "0.0.0.0:8002".parse().expect("addr"));
        assert_eq!(demo.common.log_format, LogFormat::Text);
        assert_eq!(demo.common.body_limit_bytes, 1024 * 1024);
        assert_eq!(demo.mlflow.mlflow_url, None);
        assert_eq!(demo.mlflow.mlflow_queue, 256);
        assert_eq!(demo.mlflow.mlflow_timeout_secs, 5);
    }

    #[test]
    fn a_service_that_does_not_log_to_mlflow_refuses_its_flags() {
        let err =
            parse_from::<Untracked, _, _>(["demo", "--mlflow-url", "http://mlflow:5000"], 8002)
                .expect_err("not a flag of this service");
        assert!(err.to_string().contains("--mlflow-url"), "{err}");
    }

    #[test]
    fn flags_override_defaults() {
        let demo: Demo = parse_from(
            ["demo", "--listen", "127.0.0.1:9", "--log-format", "json"],
            8002,
        )
        .expect("flags parse");
        assert_eq!(demo.common.listen, "127.0.0.1:9".parse().expect("addr"));
        assert_eq!(demo.common.log_format, LogFormat::Json);
    }

    #[test]
    fn help_names_env_variables_and_defaults() {
        let err = parse_from::<Demo, _, _>(["demo", "--help"], 8000).expect_err("help exits");
        let help = err.to_string();
        assert!(help.contains("[env: LISTEN=]"), "{help}");
        assert!(help.contains("[default: 0.0.0.0:8000]"), "{help}");
        assert!(help.contains("[env: MLFLOW_URL]"), "{help}");
    }

    #[test]
    fn a_bad_address_is_a_clear_error() {
        let err = parse_from::<Demo, _, _>(["demo", "--listen", "nowhere"], 8000)
            .expect_err("bad address");
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
