//! Running wrk and reading its report.

use std::process::Command;

use anyhow::{Context, Result, ensure};

/// How long each target is loaded before measuring, so connections and caches are warm.
const WARM_UP: &str = "2s";

/// wrk's load settings, the same for every target.
#[derive(Debug, Clone, clap::Args)]
pub struct Load {
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,

    /// Open connections, spread over the threads.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,

    /// How long to measure each target, in wrk's syntax (10s, 1m).
    #[arg(long, default_value = "10s")]
    pub duration: String,
}

impl Load {
    /// The wrk flags, as printed with the results.
    pub fn describe(&self) -> String {
        format!(
            "-t{} -c{} -d{} --latency (after a {WARM_UP} warm-up)",
            self.threads, self.connections, self.duration
        )
    }
}

/// One thing to load: a URL plus extra wrk arguments (headers, a Lua script).
#[derive(Debug)]
pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub extra_args: Vec<String>,
}

/// What a wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub requests_per_sec: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
    pub socket_errors: u64,
}

impl Figures {
    pub fn has_errors(&self) -> bool {
        self.non_2xx > 0 || self.socket_errors > 0
    }
}

/// Warms `target` up, then measures it.
pub fn measure(load: &Load, target: &Target) -> Result<Figures> {
    run(load, WARM_UP, target)?;
    let report = run(load, &load.duration, target)?;
    parse(&report).with_context(|| format!("reading wrk's report for {}:\n{report}", target.name))
}

fn run(load: &Load, duration: &str, target: &Target) -> Result<String> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{duration}"))
        .arg("--latency")
        .args(&target.extra_args)
        .arg(&target.url)
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "wrk failed on {} ({}):\n{stdout}{}",
        target.name,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

/// Reads `Requests/sec`, the 99th percentile of the `Latency Distribution` block, the
/// `Non-2xx or 3xx responses` count and the `Socket errors` (both absent when zero).
pub fn parse(report: &str) -> Result<Figures> {
    let mut requests_per_sec = None;
    let mut p99_ms = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in report.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = value.trim().parse::<f64>().ok();
        } else if let Some(value) = line.strip_prefix("99%") {
            p99_ms = latency_ms(value.trim());
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = value.trim().parse().context("reading the non-2xx count")?;
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 2, write 0, timeout 5"
            socket_errors = counts
                .split(',')
                .filter_map(|count| count.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    Ok(Figures {
        requests_per_sec: requests_per_sec.context("no Requests/sec line")?,
        p99_ms: p99_ms.context("no 99% latency line (was --latency given?)")?,
        non_2xx,
        socket_errors,
    })
}

/// Converts wrk's latency such as `812.00us`, `12.34ms` or `1.05s` to milliseconds.
fn latency_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let per_ms = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(number * per_ms)
}

#[cfg(test)]
mod tests {
    use super::{Figures, latency_ms, parse};

    const CLEAN: &str = "\
Running 5s test @ http://127.0.0.1:40123/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.50us  120.11us   4.20ms   91.02%
    Req/Sec    76.80k     3.10k   80.12k    88.00%
  Latency Distribution
     50%  398.00us
     75%  450.00us
     90%  520.00us
     99%  812.00us
  382110 requests in 5.00s, 47.37MB read
Requests/sec:  76410.51
Transfer/sec:      9.47MB
";

    const WITH_ERRORS: &str = "\
Running 5s test @ http://127.0.0.1:40124/api/cards/x/review
  1 threads and 32 connections
  Latency Distribution
     50%    5.10ms
     75%    7.00ms
     90%    9.80ms
     99%    1.05s
  9123 requests in 5.00s, 3.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 17
Requests/sec:   1824.60
Transfer/sec:    634.20KB
";

    #[test]
    fn reads_a_clean_report() -> anyhow::Result<()> {
        let figures = parse(CLEAN)?;
        assert_eq!(figures.requests_per_sec, 76410.51);
        assert!((figures.p99_ms - 0.812).abs() < 1e-9);
        assert!(!figures.has_errors());
        Ok(())
    }

    #[test]
    fn counts_errors_and_reads_seconds() -> anyhow::Result<()> {
        assert_eq!(
            parse(WITH_ERRORS)?,
            Figures {
                requests_per_sec: 1824.60,
                p99_ms: 1050.0,
                non_2xx: 17,
                socket_errors: 7,
            }
        );
        Ok(())
    }

    #[test]
    fn latency_units() {
        assert_eq!(latency_ms("12.34ms"), Some(12.34));
        assert_eq!(latency_ms("2.00m"), Some(120_000.0));
        assert_eq!(latency_ms("12.34"), None);
        assert_eq!(latency_ms("3.00xs"), None);
    }

    #[test]
    fn a_report_without_latency_distribution_is_an_error() {
        assert!(parse("Requests/sec:  10.00\n").is_err());
    }
}
