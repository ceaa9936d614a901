//! What the services' tests share: the MLflow server `cargo xtask test` starts and reading its runs
//! back, stand-ins for a dependency that is down or stalls, reading a sample off `/metrics`, and
//! running a service's binary ([`binary`]).
//! Only with the `test-support` feature, which the services enable for their tests alone.

pub mod binary;

use serde_json::Value;
use tokio::net::TcpListener;

/// The tracking server named in FLASHCARDS_TEST_MLFLOW_URL.
///
/// # Panics
/// When the variable is not set, saying how to set it.
pub fn mlflow_url() -> String {
    std::env::var("FLASHCARDS_TEST_MLFLOW_URL").expect(
        "FLASHCARDS_TEST_MLFLOW_URL is not set: run the tests with `cargo xtask test`, which starts \
         an MLflow server, or start one with `cargo xtask mlflow` and set the variable to its URL",
    )
}

/// A URL where nothing listens.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    format!("http://{}", listener.local_addr().expect("its address"))
}

/// A server that accepts connections and never answers.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn stalled_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// The text `GET <base>/metrics` answers through `client`.
///
/// # Panics
/// When the request fails or the body is not text.
pub async fn scrape(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the /metrics body")
}

/// The value of the sample named exactly `series` (metric name and labels, as `/metrics` writes
/// them) in a Prometheus text exposition, 0 when absent.
///
/// # Panics
/// When the sample's value is not a number.
pub fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| {
            value
                .trim()
                .parse()
                .unwrap_or_else(|err| panic!("{series} has the value {value:?}: {err}"))
        })
}

/// The value under `key` in a run's `data.params`, `data.metrics` or `data.tags` (`list`), as
/// MLflow's REST API returns runs (see [`crate::mlflow::search_runs`]); `Null` when absent.
pub fn run_entry<'a>(run: &'a Value, list: &str, key: &str) -> &'a Value {
    run["data"][list]
        .as_array()
        .and_then(|entries| entries.iter().find(|entry| entry["key"] == key))
        .map_or(&Value::Null, |entry| &entry["value"])
}

/// The run whose tag `key` is `value`.
///
/// # Panics
/// When there is none, listing the runs there are.
pub fn run_tagged<'a>(runs: &'a [Value], key: &str, value: &str) -> &'a Value {
    runs.iter()
        .find(|run| run_entry(run, "tags", key) == value)
        .unwrap_or_else(|| panic!("no run tagged {key}={value} in {runs:#?}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sample_is_found_by_its_whole_series_only() {
        let exposition = "# TYPE requests counter\nrequests_total{route=\"/a\"} 3\n\
                          requests_total{route=\"/ab\"} 5\n";
        assert_eq!(sample(exposition, r#"requests_total{route="/ab"}"#), 5.0);
        assert_eq!(sample(exposition, r#"requests_total{route="/a"}"#), 3.0);
        assert_eq!(sample(exposition, r#"requests_total{route="/"}"#), 0.0);
    }

    #[test]
    fn run_entries_are_read_by_key_and_runs_by_tag() {
        let runs = [
            json!({"data": {"tags": [{"key": "outcome", "value": "error"}]}}),
            json!({"data": {"tags": [{"key": "outcome", "value": "success"}],
                            "metrics": [{"key": "cards", "value": 2.0}]}}),
        ];
        let success = run_tagged(&runs, "outcome", "success");
        assert_eq!(run_entry(success, "metrics", "cards"), 2.0);
        assert_eq!(run_entry(success, "params", "model"), &Value::Null);
        assert_eq!(run_entry(&runs[0], "metrics", "cards"), &Value::Null);
    }
}
