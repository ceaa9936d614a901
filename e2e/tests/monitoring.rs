//! The monitoring path end to end, with the real parts on loopback: the OCR, LLM and backend
//! services run as processes; Debian's Prometheus scrapes them every second with the generated
//! rules (ServiceDown's `for` shortened to 2 s for the test, the rest as generated); Debian's
//! Alertmanager has the generated route, pointed at the backend's webhook with a bearer token.
//!
//! After traffic, every expression of the rules and dashboards parses in Prometheus, every
//! application metric they name is one the services really export (read from their `/metrics`),
//! the OCR and LLM services count successful logging to the test's MLflow server, and every
//! Application/OCR/LLM panel returns data. Debian's node-exporter and Redis with redis_exporter
//! run too: the System Resources dashboard's node and Redis queries name metrics they export and
//! return data (its cAdvisor panels need a kubelet, which this test does not have). Stopping the
//! OCR service fires ServiceDown, which reaches the backend and shows in `GET /api/alerts`;
//! starting it again resolves it there.

use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use flashcards_e2e::{
    Process, wait_for,
    workspace::{binary, free_port},
};
use flashcards_operator::{
    alerts::{self, Scope},
    crd::AlertThresholds,
    dashboards,
    monitoring_files::{alertmanager_config, prometheus_config},
};
use reqwest::Client;
use serde_json::{Value, json};

const ADMIN: &str = "admin@example.org";
const PASSWORD: &str = "correct horse battery";
const WEBHOOK_TOKEN: &str = "e2e-webhook-token";
/// How long each step may take: scrapes and evaluations are every second, Alertmanager waits a
/// second before notifying.
const STEP: Duration = Duration::from_secs(60);
/// The dashboards whose panels must all have data after the traffic below (the others show
/// cAdvisor, node-exporter, Redis and MLflow series, which this test does not run).
const APPLICATION_DASHBOARDS: [&str; 3] = ["application-overview", "ocr-service", "llm-service"];

/// A service of the stack as a local process on a free port.
struct Service {
    job: &'static str,
    port: u16,
    process: Process,
}

impl Service {
    fn start(dir: &Path, job: &'static str, binary_name: &str, args: &[String]) -> Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(binary(binary_name)?);
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("RUST_LOG", "info")
            // The OCR engines would only compete for two cores.
            .env("OMP_THREAD_LIMIT", "1");
        let process = Process::start(job, command, dir.join(format!("{job}.log")))?;
        Ok(Self { job, port, process })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&mut self, client: &Client) -> Result<()> {
        let url = self.url("/readyz");
        let deadline = Instant::now() + STEP;
        loop {
            self.process.check_running()?;
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} not ready: {}", self.job, self.process.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Prometheus's HTTP API.
struct Prometheus {
    client: Client,
    base: String,
}

impl Prometheus {
    /// The result of an instant query; an error names Prometheus's own complaint (a parse error
    /// comes back as 400 `bad_data`).
    async fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let response: Value = self
            .client
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            response["status"] == "success",
            "{expr}: {}",
            response["error"]
        );
        Ok(response["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// The prefixes of the services' own metric names.
const APPLICATION_PREFIXES: &[&str] = &[
    "http_",
    "ocr_",
    "llm_",
    "flashcard_",
    "flashcards_",
    "user_sessions_",
    "mlflow_log_",
];

/// The prefixes of node-exporter's and redis_exporter's metric names, which this test runs too.
const EXPORTER_PREFIXES: &[&str] = &["node_", "redis_"];

/// The metric names an expression uses that start with one of `prefixes`, outside quoted label
/// values.
fn metrics_named(expr: &str, prefixes: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in expr.chars().chain([' ']) {
        if quoted {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => escaped = false,
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if prefixes.iter().any(|p| word.starts_with(p)) {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
        quoted = c == '"';
    }
    names
}

/// The series names in a `/metrics` exposition.
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// A dashboard query with Grafana's variables filled in as "everything".
fn instant(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$namespace", ".*")
        .replace("$instance", ".*")
        .replace("$node", ".*")
        .replace("${datasource}", "")
}

/// The administrator's account, made the way whoever runs the stack makes it (registration
/// refuses the emails in ADMIN_EMAILS).
fn add_admin(database_url: &str) -> Result<()> {
    let mut child = Command::new(binary("flashcards-backend")?)
        .args(["add-user", "--email", ADMIN])
        .env("DATABASE_URL", database_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting flashcards-backend add-user")?;
    writeln!(
        child.stdin.take().context("add-user's stdin")?,
        "{PASSWORD}"
    )?;
    let output = child.wait_with_output().context("waiting for add-user")?;
    ensure!(
        output.status.success(),
        "add-user: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The backend's alerts as the administrator sees them.
async fn alerts(admin: &Client, backend: &Service) -> Result<Vec<Value>> {
    let response = admin.get(backend.url("/api/alerts")).send().await?;
    ensure!(response.status().is_success(), "{}", response.text().await?);
    let body: Value = response.json().await?;
    Ok(body["items"].as_array().cloned().unwrap_or_default())
}

/// The OCR ServiceDown alert in the backend with `status`, if there.
fn ocr_down(alerts: &[Value], status: &str) -> Option<Value> {
    alerts
        .iter()
        .find(|alert| {
            alert["labels"]["alertname"] == "ServiceDown"
                && alert["labels"]["job"] == "flashcards-ocr"
                && alert["status"] == status
        })
        .cloned()
}

/// node-exporter, Redis and redis_exporter as processes on free ports.
struct Exporters {
    node_port: u16,
    redis_exporter_port: u16,
    // Kept for their lifetime: dropping one stops it.
    _processes: Vec<Process>,
}

impl Exporters {
    async fn start(dir: &Path) -> Result<Self> {
        let node_port = free_port()?;
        let redis_port = free_port()?;
        let redis_exporter_port = free_port()?;
        let mut node = Command::new("prometheus-node-exporter");
        node.arg(format!("--web.listen-address=127.0.0.1:{node_port}"));
        let mut redis = Command::new("redis-server");
        redis
            .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir);
        let mut exporter = Command::new("prometheus-redis-exporter");
        exporter
            .arg(format!("--redis.addr=redis://127.0.0.1:{redis_port}"))
            .arg(format!(
                "--web.listen-address=127.0.0.1:{redis_exporter_port}"
            ));
        let processes = vec![
            Process::start("node-exporter", node, dir.join("node-exporter.log"))?,
            Process::start("redis", redis, dir.join("redis.log"))?,
            Process::start("redis-exporter", exporter, dir.join("redis-exporter.log"))?,
        ];
        // One key, so that Redis reports a keyspace.
        let mut answer = String::new();
        let deadline = Instant::now() + STEP;
        while !answer.starts_with("+OK") {
            ensure!(Instant::now() < deadline, "Redis did not answer: {answer}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            answer = redis_command(redis_port, "SET flashcards:e2e 1").unwrap_or_default();
        }
        Ok(Self {
            node_port,
            redis_exporter_port,
            _processes: processes,
        })
    }
}

/// Sends one inline command to Redis and returns its first reply line.
fn redis_command(port: u16, command: &str) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_alerts_reach_the_backend_and_every_panel_has_data() -> Result<()> {
    let llm_upstream = std::env::var("FLASHCARDS_TEST_LLM_URL")
        .context("FLASHCARDS_TEST_LLM_URL is not set: run the tests through `cargo xtask test`")?;
    let mlflow = std::env::var("FLASHCARDS_TEST_MLFLOW_URL").context(
        "FLASHCARDS_TEST_MLFLOW_URL is not set: run the tests through `cargo xtask test`",
    )?;
    let dir = tempfile::tempdir()?;
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;

    let tracking = ["--mlflow-url".to_owned(), mlflow];
    let mut ocr = Service::start(dir.path(), "flashcards-ocr", "flashcards-ocr", &tracking)?;
    let mut llm = Service::start(
        dir.path(),
        "flashcards-llm",
        "flashcards-llm",
        &[&tracking[..], &["--upstream-url".to_owned(), llm_upstream]].concat(),
    )?;
    let database_url = format!("sqlite://{}/flashcards.db", dir.path().display());
    add_admin(&database_url)?;
    let mut backend = Service::start(
        dir.path(),
        "flashcards-backend",
        "flashcards-backend",
        &[
            "--database-url".to_owned(),
            database_url,
            "--ocr-url".to_owned(),
            ocr.url(""),
            "--llm-url".to_owned(),
            llm.url(""),
            "--admin-emails".to_owned(),
            ADMIN.to_owned(),
            "--alerts-token".to_owned(),
            WEBHOOK_TOKEN.to_owned(),
        ],
    )?;
    for service in [&mut ocr, &mut llm, &mut backend] {
        service.wait_ready(&client).await?;
    }

    // Alertmanager, notifying the backend at once (the guide's route with 1 s waits).
    let alertmanager_port = free_port()?;
    let alertmanager_dir = dir.path().join("alertmanager");
    fs::create_dir_all(&alertmanager_dir)?;
    let config = alertmanager_config(&backend.url("/alerts"), "1s", "1s")?;
    let mut config: serde_yaml::Value = serde_yaml::from_str(&config)?;
    config["receivers"][0]["webhook_configs"][0]["http_config"] =
        serde_yaml::to_value(json!({"authorization": {"credentials": WEBHOOK_TOKEN}}))?;
    fs::write(
        alertmanager_dir.join("alertmanager.yml"),
        serde_yaml::to_string(&config)?,
    )?;
    let mut alertmanager_command = Command::new("prometheus-alertmanager");
    alertmanager_command
        .arg(format!(
            "--config.file={}",
            alertmanager_dir.join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", alertmanager_dir.display()))
        .arg(format!(
            "--web.listen-address=127.0.0.1:{alertmanager_port}"
        ))
        .arg("--cluster.listen-address=");
    let mut alertmanager = Process::start(
        "alertmanager",
        alertmanager_command,
        dir.path().join("alertmanager.log"),
    )?;

    // Prometheus with the generated rules; ServiceDown waits 2 s instead of a minute.
    let prometheus_port = free_port()?;
    let prometheus_dir = dir.path().join("prometheus");
    fs::create_dir_all(&prometheus_dir)?;
    let mut group = alerts::group(&Scope::standalone(), &AlertThresholds::default());
    for rule in group["rules"].as_array_mut().context("rules")? {
        if rule["alert"] == "ServiceDown" {
            rule["for"] = json!("2s");
        }
    }
    fs::write(
        prometheus_dir.join("alert_rules.yml"),
        serde_yaml::to_string(&json!({"groups": [group]}))?,
    )?;
    // What the System Resources dashboard reads besides cAdvisor: node-exporter, and Redis with
    // redis_exporter (Debian's), Redis holding one key.
    let exporters = Exporters::start(dir.path()).await?;
    let mut targets: Vec<(String, String)> = [&ocr, &llm, &backend]
        .iter()
        .map(|service| {
            (
                service.job.to_owned(),
                format!("127.0.0.1:{}", service.port),
            )
        })
        .collect();
    targets.push((
        "node".to_owned(),
        format!("127.0.0.1:{}", exporters.node_port),
    ));
    targets.push((
        "redis".to_owned(),
        format!("127.0.0.1:{}", exporters.redis_exporter_port),
    ));
    fs::write(
        prometheus_dir.join("prometheus.yml"),
        prometheus_config(&targets, &format!("127.0.0.1:{alertmanager_port}"), "1s")?,
    )?;
    let mut prometheus_command = Command::new("prometheus");
    prometheus_command
        .arg(format!(
            "--config.file={}",
            prometheus_dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            prometheus_dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"));
    let mut prometheus_process = Process::start(
        "prometheus",
        prometheus_command,
        dir.path().join("prometheus.log"),
    )?;
    let prometheus = Prometheus {
        client: client.clone(),
        base: format!("http://127.0.0.1:{prometheus_port}"),
    };

    // Traffic through each service: a user studies, a page is read, cards are generated, and a
    // few requests fail.
    let admin = Client::builder().cookie_store(true).build()?;
    let credentials = json!({"email": ADMIN, "password": PASSWORD});
    let login = admin
        .post(backend.url("/api/auth/login"))
        .json(&credentials)
        .send()
        .await?;
    ensure!(login.status().is_success(), "{}", login.text().await?);
    let deck: Value = admin
        .post(backend.url("/api/decks"))
        .json(&json!({"name": "Biology"}))
        .send()
        .await?
        .json()
        .await?;
    let deck = deck["id"].as_str().context("a deck id")?.to_owned();
    let card: Value = admin
        .post(backend.url(&format!("/api/decks/{deck}/cards")))
        .json(&json!({"front": "What do mitochondria make?", "back": "ATP"}))
        .send()
        .await?
        .json()
        .await?;
    let card = card["id"].as_str().context("a card id")?.to_owned();
    for _ in 0..3 {
        admin
            .get(backend.url(&format!("/api/decks/{deck}/cards")))
            .send()
            .await?;
    }
    let reviewed = admin
        .post(backend.url(&format!("/api/cards/{card}/review")))
        .json(&json!({"rating": "good"}))
        .send()
        .await?;
    ensure!(reviewed.status().is_success(), "{}", reviewed.text().await?);
    let missing = admin
        .get(backend.url("/api/decks/no-such-deck"))
        .send()
        .await?;
    ensure!(missing.status() == 404);

    let page = flashcards_ocr_corpus::clean_png()?;
    let read = client
        .post(ocr.url("/v1/ocr"))
        .header("content-type", page.content_type)
        .body(page.bytes.clone())
        .send()
        .await?;
    ensure!(read.status().is_success(), "{}", read.text().await?);
    let refused = client
        .post(ocr.url("/v1/ocr"))
        .header("content-type", "image/png")
        .body(b"not a png".to_vec())
        .send()
        .await?;
    ensure!(refused.status().is_client_error());

    let generated = client
        .post(llm.url("/v1/generate"))
        .json(&json!({
            "text": "Mitochondria are the organelles that produce most of the cell's ATP \
                     through oxidative phosphorylation. The nucleus holds the cell's DNA.",
            "max_cards": 2,
        }))
        .send()
        .await?;
    ensure!(
        generated.status().is_success(),
        "{}",
        generated.text().await?
    );
    let empty = client
        .post(llm.url("/v1/generate"))
        .json(&json!({"text": "  "}))
        .send()
        .await?;
    ensure!(empty.status().is_client_error());

    // Every service scraped, twice at least, so rates have data.
    wait_for("Prometheus scraping the services", STEP, async || {
        let up = prometheus
            .query(r#"count_over_time(up[1m]) >= 3"#)
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        Ok::<_, std::io::Error>((up.len() == 5).then_some(()))
    })
    .await?;

    // Every expression parses and names only metrics the services export.
    let mut exports = BTreeSet::new();
    for service in [&ocr, &llm, &backend] {
        let text = client
            .get(service.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        exports.extend(exported(&text));
    }
    let mut exporter_series = BTreeSet::new();
    for port in [exporters.node_port, exporters.redis_exporter_port] {
        let text = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        exporter_series.extend(exported(&text));
    }
    let rules = alerts::rules(&Scope::standalone(), &AlertThresholds::default());
    let mut expressions: Vec<(String, String)> = rules
        .iter()
        .map(|rule| (format!("alert {}", rule.name), rule.expr.clone()))
        .collect();
    for dashboard in dashboards::all() {
        for expr in dashboards::queries(&dashboard) {
            expressions.push((format!("dashboard {}", dashboard.file), instant(&expr)));
        }
    }
    for (source, expr) in &expressions {
        prometheus.query(expr).await.context(source.clone())?;
        for metric in metrics_named(expr, APPLICATION_PREFIXES) {
            ensure!(
                exports.contains(&metric),
                "{source} uses {metric}, which no service exports: {expr}"
            );
        }
        for metric in metrics_named(expr, EXPORTER_PREFIXES) {
            ensure!(
                exporter_series.contains(&metric),
                "{source} uses {metric}, which node-exporter and redis_exporter do not export: \
                 {expr}"
            );
        }
    }

    // The OCR and LLM services logged their work to MLflow, and say so.
    wait_for("MLflow logging counted", STEP, async || {
        let logged = prometheus
            .query(r#"sum by (job) (mlflow_log_requests_total{outcome="success"}) > 0"#)
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        Ok::<_, std::io::Error>((logged.len() == 2).then_some(()))
    })
    .await?;

    // Every Application, OCR and LLM panel has data, and so do the node and Redis panels.
    for dashboard in dashboards::all() {
        let application = APPLICATION_DASHBOARDS.contains(&dashboard.file);
        for expr in dashboards::queries(&dashboard) {
            if !application && metrics_named(&expr, EXPORTER_PREFIXES).is_empty() {
                continue;
            }
            // A rate needs two scrapes of a series, which may have begun with the last request.
            let query = instant(&expr);
            let data = wait_for(
                format!("data for {query} ({})", dashboard.file),
                STEP,
                async || {
                    let result = prometheus
                        .query(&query)
                        .await
                        .map_err(|err| std::io::Error::other(err.to_string()))?;
                    Ok::<_, std::io::Error>((!result.is_empty()).then_some(()))
                },
            )
            .await;
            ensure!(
                data.is_ok(),
                "dashboard {}: no data for {query}",
                dashboard.file
            );
        }
    }

    // The OCR service stops: ServiceDown fires, Alertmanager posts it to the backend.
    ocr.process.stop();
    let firing = wait_for("ServiceDown in GET /api/alerts", STEP, async || {
        let seen = alerts(&admin, &backend)
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        Ok::<_, std::io::Error>(ocr_down(&seen, "firing"))
    })
    .await;
    let firing = match firing {
        Ok(alert) => alert,
        Err(err) => bail!(
            "{err}\nalertmanager: {}\nprometheus: {}\nbackend: {}",
            alertmanager.log_tail(),
            prometheus_process.log_tail(),
            backend.process.log_tail()
        ),
    };
    ensure!(firing["labels"]["severity"] == "critical", "{firing}");
    ensure!(
        firing["annotations"]["runbook_url"] == "monitoring/runbooks/ServiceDown.md",
        "{firing}"
    );

    // Back up: the resolved notification arrives.
    ocr.process.restart()?;
    ocr.wait_ready(&client).await?;
    wait_for(
        "ServiceDown resolved in GET /api/alerts",
        STEP,
        async || {
            let seen = alerts(&admin, &backend)
                .await
                .map_err(|err| std::io::Error::other(err.to_string()))?;
            Ok::<_, std::io::Error>(ocr_down(&seen, "resolved"))
        },
    )
    .await?;

    // Only the administrator reads them.
    let student = Client::builder().cookie_store(true).build()?;
    let other = json!({"email": "student@example.org", "password": PASSWORD});
    student
        .post(backend.url("/api/auth/register"))
        .json(&other)
        .send()
        .await?;
    student
        .post(backend.url("/api/auth/login"))
        .json(&other)
        .send()
        .await?;
    let forbidden = student.get(backend.url("/api/alerts")).send().await?;
    ensure!(forbidden.status() == 403, "{}", forbidden.status());

    alertmanager.check_running()?;
    prometheus_process.check_running()?;
    Ok(())
}

#[test]
fn application_metric_names_are_found_outside_label_values() {
    let names = metrics_named(
        r#"sum(rate(http_requests_total{route="/ocr_x", job=~"$job"}[5m])) / ocr_operations_total"#,
        APPLICATION_PREFIXES,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["http_requests_total", "ocr_operations_total"]
    );
    let exposition = "# HELP x\nhttp_requests_total{a=\"b\"} 1\nup 1\n";
    assert!(exported(exposition).contains("http_requests_total"));
}
