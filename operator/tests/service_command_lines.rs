//! The operator and the services must agree on every command line: each one the operator builds,
//! for every component it runs and every shape of stack, is parsed here by that service's own
//! clap parser, with each environment variable the operator sets standing in as the flag that
//! reads it. A flag the operator passes that a service lacks, a variable no flag reads, or a
//! required flag left out fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::{CommandFactory, Parser};
use flashcards_operator::{
    FlashcardStack, FlashcardStackSpec,
    crd::{LocalModelSpec, PostgresSpec, SecretKeyRef, UpstreamSpec},
    desired::desired,
    owned::Served,
};
use k8s_openapi::api::core::v1::Container;

fn stack(spec: FlashcardStackSpec) -> FlashcardStack {
    let mut stack = FlashcardStack::new("study", spec);
    stack.metadata.namespace = Some("flashcards".to_owned());
    stack.metadata.uid = Some("uid-1".to_owned());
    stack
}

fn secret(name: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: name.to_owned(),
        key: "value".to_owned(),
    }
}

/// Every shape of stack that changes a command line.
fn stacks() -> Vec<(&'static str, FlashcardStack)> {
    let default = FlashcardStackSpec::default();
    let mut local = default.clone();
    local.llm.local = Some(LocalModelSpec {
        model: "smollm2-135m-instruct".to_owned(),
        ..LocalModelSpec::default()
    });
    let mut upstream = default.clone();
    upstream.llm.upstream = Some(UpstreamSpec {
        url: "http://ollama:11434".to_owned(),
        model: Some("qwen2.5:0.5b".to_owned()),
        api_key_secret_ref: Some(secret("llm-key")),
    });
    let mut everything = upstream.clone();
    everything.backend.database.postgres = Some(PostgresSpec {
        secret_ref: secret("db"),
    });
    everything.backend.admin_emails = vec!["ops@example.org".to_owned()];
    everything.backend.alerts_webhook_token_secret_ref = Some(secret("webhook"));
    everything.backend.secure_cookies = true;
    everything.mlflow.enabled = true;
    everything.redis.enabled = true;
    vec![
        ("default", stack(default)),
        ("local model", stack(local)),
        ("upstream", stack(upstream)),
        ("postgres, mlflow, redis, admins", stack(everything)),
    ]
}

/// The container's arguments, then each environment variable as the flag of `T` that reads it
/// (a Secret's value is a stand-in); panics naming a variable no flag of `T` reads.
fn command_line<T: CommandFactory>(binary: &str, container: &Container) -> Vec<String> {
    let command = T::command();
    let mut argv = vec![binary.to_owned()];
    argv.extend(container.args.clone().unwrap_or_default());
    for variable in container.env.clone().unwrap_or_default() {
        let arg = command
            .get_arguments()
            .find(|arg| {
                arg.get_env()
                    .is_some_and(|env| env == variable.name.as_str())
            })
            .unwrap_or_else(|| panic!("{binary} reads no {} from its environment", variable.name));
        let flag = arg.get_long().expect("a long flag");
        let value = variable.value.unwrap_or_else(|| "from-a-secret".to_owned());
        // A switch read from the environment (`SECURE_COOKIES=true`) is the bare flag.
        if arg.get_action().takes_values() {
            argv.push(format!("--{flag}={value}"));
        } else if value == "true" {
            argv.push(format!("--{flag}"));
        }
    }
    argv
}

fn parses<T: Parser>(binary: &str, container: &Container, stack: &str) {
    let argv = command_line::<T>(binary, container);
    if let Err(err) = T::try_parse_from(&argv) {
        panic!("{stack}: {binary} refuses {argv:?}:\n{err}");
    }
}

#[test]
fn every_command_line_the_operator_builds_is_one_its_service_accepts() {
    let mut checked = Vec::new();
    for (shape, stack) in stacks() {
        let every_api = Served {
            prometheus_operator: true,
            alertmanager_config: true,
            grafana_operator: true,
        };
        for deployment in desired(&stack, every_api).deployments {
            let pod = deployment.spec.template.spec.unwrap();
            for container in &pod.containers {
                let image = container.image.clone().unwrap_or_default();
                let binary = image
                    .rsplit('/')
                    .next()
                    .and_then(|name| name.split(':').next())
                    .unwrap_or_default();
                match binary {
                    "flashcards-backend" => {
                        parses::<flashcards_backend::Args>(binary, container, shape);
                    }
                    "flashcards-ocr" => parses::<flashcards_ocr::Args>(binary, container, shape),
                    "flashcards-llm" => parses::<flashcards_llm::Args>(binary, container, shape),
                    "flashcards-web" => parses::<flashcards_web::Args>(binary, container, shape),
                    _ => continue,
                }
                checked.push(format!("{shape}: {binary}"));
            }
        }
    }
    // The four Rust services in each of the four shapes.
    assert_eq!(checked.len(), 16, "{checked:?}");
}

#[test]
fn a_flag_the_service_lacks_is_caught() {
    let container = Container {
        args: Some(vec!["--no-such-flag".to_owned()]),
        ..Container::default()
    };
    let argv = command_line::<flashcards_ocr::Args>("flashcards-ocr", &container);
    assert!(flashcards_ocr::Args::try_parse_from(argv).is_err());
    let local_and_upstream = Container {
        args: Some(
            ["--model", "/models/m.gguf", "--upstream-url", "http://x"]
                .map(str::to_owned)
                .to_vec(),
        ),
        ..Container::default()
    };
    let argv = command_line::<flashcards_llm::Args>("flashcards-llm", &local_and_upstream);
    assert!(flashcards_llm::Args::try_parse_from(argv).is_err());
}
