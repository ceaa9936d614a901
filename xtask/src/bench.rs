//! `cargo xtask bench`: load the backend's hot endpoints with wrk next to a bare axum
//! hello-world, the most any axum server could do here, and print how close the backend gets.

use std::{
    env, fs,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::{self, Command},
    thread,
};

use anyhow::{Context, Result, bail};
use flashcards_e2e::workspace::free_port;
use serde_json::json;

use crate::{
    apt, cargo, http, interrupt,
    paths::ScratchDir,
    server::Server,
    wrk::{self, Figures, Load, Target},
};

/// Cards seeded into the benchmark deck; reviews pick among them at random.
const CARDS: usize = 200;
/// The target the design sets for the backend's endpoints.
const GOAL: &str = "goal: >= 50% of ceiling and p99 < 10 ms on 2 cores";
const GOAL_RATIO: f64 = 0.5;
const GOAL_P99_MS: f64 = 10.0;

pub fn run(load: &Load) -> Result<()> {
    interrupt::defer_ctrl_c()?;
    apt::ensure_apt_packages(&[("wrk", "wrk")])?;
    cargo::build_release(&[
        "-p",
        "flashcards-backend",
        "--bin",
        "flashcards-backend",
        "--example",
        "hello_ceiling",
    ])?;
    let scratch =
        ScratchDir::create(env::temp_dir().join(format!("flashcards-bench-{}", process::id())))?;

    let database = scratch.path().join("bench.db");
    let backend_address = local_address()?;
    let mut backend = start_backend(backend_address, &database, &[])?;
    let ceiling_address = local_address()?;
    let mut ceiling = Server::start(
        "hello_ceiling",
        Command::new(cargo::release_example("hello_ceiling")).arg(ceiling_address.to_string()),
    )?;
    backend.wait_ready(backend_address, "/healthz")?;
    ceiling.wait_ready(ceiling_address, "/")?;

    let seeded = seed(backend_address)?;
    let authorization = format!("Authorization: Bearer {}", seeded.token);
    let review_script = scratch.path().join("review.lua");
    fs::write(&review_script, review_script_source(&seeded))
        .with_context(|| format!("writing {}", review_script.display()))?;
    let list_path = format!("/api/decks/{}/cards", seeded.deck);

    let mut results = vec![
        measure(
            load,
            &Target {
                name: "ceiling GET /",
                url: format!("http://{ceiling_address}/"),
                extra_args: Vec::new(),
            },
        )?,
        measure(
            load,
            &Target {
                name: "list deck cards",
                url: format!("http://{backend_address}{list_path}"),
                extra_args: vec!["-H".to_owned(), authorization.clone()],
            },
        )?,
    ];
    {
        // The same database read by a second backend without the card-page cache: what a list
        // costs when it goes to SQLite (a page's first read, or after a change to its deck). It is
        // stopped before the reviews, so two processes never compete for SQLite's write lock.
        let uncached_address = local_address()?;
        let mut uncached = start_backend(uncached_address, &database, &["--page-cache-mb", "0"])?;
        uncached.wait_ready(uncached_address, "/healthz")?;
        results.push(measure(
            load,
            &Target {
                name: "list, cache off",
                url: format!("http://{uncached_address}{list_path}"),
                extra_args: vec!["-H".to_owned(), authorization],
            },
        )?);
    }
    results.push(measure(
        load,
        &Target {
            name: "review a card",
            url: format!("http://{backend_address}/"),
            extra_args: vec!["-s".to_owned(), review_script.display().to_string()],
        },
    )?);
    print_report(load, &results);
    Ok(())
}

fn measure(load: &Load, target: &Target) -> Result<(&'static str, Figures)> {
    eprintln!("measuring {} ...", target.name);
    let figures = wrk::measure(load, target)?;
    if interrupt::requested() {
        bail!("interrupted");
    }
    Ok((target.name, figures))
}

/// The release backend on `address` over the SQLite file `database`, quiet but for warnings.
fn start_backend(address: SocketAddr, database: &Path, extra_args: &[&str]) -> Result<Server> {
    Server::start(
        "flashcards-backend",
        Command::new(cargo::release_binary("flashcards-backend"))
            .arg("--listen")
            .arg(address.to_string())
            .arg("--database-url")
            .arg(format!("sqlite://{}", database.display()))
            .args(extra_args)
            .env("RUST_LOG", "warn"),
    )
}

fn local_address() -> Result<SocketAddr> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))
}

/// What the benchmark user owns.
struct Seeded {
    token: String,
    deck: String,
    cards: Vec<String>,
}

/// A user with an API token and a deck of basic cards, made through the public API.
/// Registers the benchmark user with the backend and logs in: its session cookie's value.
pub fn bench_session(backend: SocketAddr) -> Result<String> {
    let credentials = json!({"email": "bench@example.org", "password": "bench-password"});
    http::request(
        backend,
        "POST",
        "/api/auth/register",
        &[],
        Some(&credentials),
    )?
    .expect_status(201, "registering the bench user")?;
    let login = http::request(backend, "POST", "/api/auth/login", &[], Some(&credentials))?
        .expect_status(200, "logging in")?;
    Ok(login
        .headers("set-cookie")
        .find_map(|cookie| cookie.strip_prefix("flashcards_session="))
        .and_then(|rest| rest.split(';').next())
        .context("login set no flashcards_session cookie")?
        .to_owned())
}

fn seed(backend: SocketAddr) -> Result<Seeded> {
    let session = bench_session(backend)?;
    let cookie = format!("flashcards_session={session}");
    let token = http::request(
        backend,
        "POST",
        "/api/auth/tokens",
        &[("Cookie", &cookie)],
        Some(&json!({"name": "bench"})),
    )?
    .expect_status(201, "creating an API token")?
    .json_str("token")?;

    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let deck = http::request(
        backend,
        "POST",
        "/api/decks",
        &auth,
        Some(&json!({"name": "bench"})),
    )?
    .expect_status(201, "creating the deck")?
    .json_str("id")?;
    let cards_path = format!("/api/decks/{deck}/cards");
    let cards = (1..=CARDS)
        .map(|n| {
            let card = json!({"front": format!("Question {n}"), "back": format!("Answer {n}")});
            http::request(backend, "POST", &cards_path, &auth, Some(&card))?
                .expect_status(201, "creating a card")?
                .json_str("id")
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Seeded { token, deck, cards })
}

/// A wrk script that reviews a random seeded card with "good" on every request. The requests are
/// formatted once, at start: formatting one per request cost wrk about as much CPU as the backend
/// spent on HTTP, and on two cores the load generator's CPU is taken from the server.
fn review_script_source(seeded: &Seeded) -> String {
    let ids: Vec<String> = seeded.cards.iter().map(|id| format!("{id:?}")).collect();
    format!(
        r#"local ids = {{ {ids} }}
local headers = {{ ["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}" }}
local body = '{{"rating":"good"}}'
local requests = {{}}
init = function(args)
  for i, id in ipairs(ids) do
    requests[i] = wrk.format("POST", "/api/cards/" .. id .. "/review", headers, body)
  end
end
request = function()
  return requests[math.random(#requests)]
end
"#,
        ids = ids.join(", "),
        token = seeded.token
    )
}

fn print_report(load: &Load, results: &[(&str, Figures)]) {
    let cores = thread::available_parallelism().map_or(0, |cores| cores.get());
    let ceiling = results
        .first()
        .map_or(0.0, |(_, figures)| figures.requests_per_sec);
    println!();
    println!("cores: {cores}   wrk: {}", load.describe());
    println!(
        "{:<18} {:>10} {:>9} {:>11} {:>8} {:>14}",
        "target", "req/s", "p99 ms", "of ceiling", "non-2xx", "socket errors"
    );
    for (name, figures) in results {
        println!(
            "{name:<18} {:>10.1} {:>9.2} {:>10.1}% {:>8} {:>14}",
            figures.requests_per_sec,
            figures.p99_ms,
            100.0 * figures.requests_per_sec / ceiling,
            figures.non_2xx,
            figures.socket_errors
        );
    }
    for (name, figures) in results.iter().filter(|(_, figures)| figures.has_errors()) {
        println!(
            "! {name}: {} non-2xx responses and {} socket errors: its figures count failed requests",
            figures.non_2xx, figures.socket_errors
        );
    }
    println!("{GOAL}");
    for (name, figures) in results.iter().skip(1) {
        println!("{name}: {}", verdict(figures, ceiling));
    }
}

/// PASS or MISS against [`GOAL`], with the reasons for a miss; a run with errors never passes.
fn verdict(figures: &Figures, ceiling_requests_per_sec: f64) -> String {
    let ratio = figures.requests_per_sec / ceiling_requests_per_sec;
    let mut misses = Vec::new();
    if ratio.is_nan() || ratio < GOAL_RATIO {
        misses.push(format!("{:.1}% of ceiling", 100.0 * ratio));
    }
    if figures.p99_ms >= GOAL_P99_MS {
        misses.push(format!("p99 {:.2} ms", figures.p99_ms));
    }
    if figures.has_errors() {
        misses.push("errors".to_owned());
    }
    if misses.is_empty() {
        "PASS".to_owned()
    } else {
        format!("MISS ({})", misses.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::verdict;
    use crate::wrk::Figures;

    fn figures(requests_per_sec: f64, p99_ms: f64, non_2xx: u64) -> Figures {
        Figures {
            requests_per_sec,
            p99_ms,
            non_2xx,
            socket_errors: 0,
        }
    }

    #[test]
    fn passes_only_when_fast_enough_tight_enough_and_clean() {
        assert_eq!(verdict(&figures(6_000.0, 4.0, 0), 10_000.0), "PASS");
        assert_eq!(
            verdict(&figures(4_000.0, 12.5, 3), 10_000.0),
            "MISS (40.0% of ceiling, p99 12.50 ms, errors)"
        );
    }
}
