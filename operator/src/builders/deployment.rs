//! A component's Deployment, every pod under the restricted Pod Security Standard (non-root,
//! read-only root filesystem, no capabilities, RuntimeDefault seccomp, no API token). The flashcards
//! services get probes on `/healthz` and `/readyz` and the services' shared command line (`--listen`,
//! the backend's `--database-url`/`--ocr-url`/`--llm-url`/`--redis-url`, the LLM service's
//! `--upstream-url` or `--model`, `--mlflow-url`); Redis and MLflow come from `third_party`.

mod third_party;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
            HTTPGetAction, Lifecycle, LifecycleHandler, PersistentVolumeClaimVolumeSource,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector,
            SecurityContext, SleepAction, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{Component, metadata, model_image, object_name, pvc, selector_labels};
use flashcards_contracts::flags::{self, backend, llm, ocr, web};

use crate::crd::{FlashcardStack, LocalModelSpec};

/// The unprivileged user of every flashcards image (distroless "nonroot"), and MLflow's.
pub const RUN_AS_USER: i64 = 65532;
const DATA_DIR: &str = "/data";
const MODELS_DIR: &str = "/models";

/// What differs between the pods of components: their containers and volumes, and the uid (and
/// gid) they run as.
struct Pod {
    /// Run to completion, in order, before the containers start.
    init_containers: Vec<Container>,
    containers: Vec<Container>,
    volumes: Vec<Volume>,
    run_as: i64,
}

pub fn deployment(stack: &FlashcardStack, component: Component) -> Deployment {
    let name = object_name(stack, component);
    let pod = match component {
        Component::Redis => third_party::redis(stack),
        Component::Mlflow => third_party::mlflow(stack),
        Component::Backend | Component::Ocr | Component::Llm | Component::Web => {
            service_pod(stack, component)
        }
    };
    Deployment {
        metadata: metadata(stack, component, name.clone()),
        spec: DeploymentSpec {
            replicas: Some(component.replicas(stack)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(stack, component)),
                match_expressions: None,
            },
            strategy: Some(strategy(stack, component)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(super::labels(stack, component)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(pod.run_as),
                        run_as_group: Some(pod.run_as),
                        fs_group: Some(pod.run_as),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: (!pod.init_containers.is_empty())
                        .then_some(pod.init_containers),
                    containers: pod.containers,
                    volumes: Some(pod.volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

/// A SQLite file takes one writer: the old pod must stop before the new one starts. Anything
/// else rolls one new pod in before an old one goes, so an upgrade never lowers the number of
/// Ready pods (the Kubernetes default would allow it from four replicas on).
fn strategy(stack: &FlashcardStack, component: Component) -> DeploymentStrategy {
    if single_writer(stack, component) {
        return DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            rolling_update: None,
        };
    }
    DeploymentStrategy {
        type_: Some("RollingUpdate".to_owned()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    }
}

/// How long a stopping service pod keeps serving before it is sent SIGTERM. The pod leaves the
/// Service's endpoints as it starts stopping, but kube-proxy (and every other node's) takes a
/// moment to stop sending it new connections; without this pause those would be refused.
pub const DRAIN_SECONDS: i64 = 5;

/// Whether the component keeps a SQLite file: the backend without PostgreSQL, and MLflow.
fn single_writer(stack: &FlashcardStack, component: Component) -> bool {
    match component {
        Component::Backend => stack.spec.backend.database.postgres.is_none(),
        Component::Mlflow => true,
        Component::Ocr | Component::Llm | Component::Web | Component::Redis => false,
    }
}

fn service_pod(stack: &FlashcardStack, component: Component) -> Pod {
    // Read-only root filesystem: temporary files (PDF pages, uploads) go here.
    let mut volumes = vec![empty_dir("tmp")];
    let mut mounts = vec![mount("tmp", "/tmp")];
    if let Some((claim, path)) = data_volume(stack, component) {
        volumes.push(claim_volume("data", claim));
        mounts.push(mount("data", path));
    }
    let mut init_containers = Vec::new();
    if let (Component::Llm, Some(local)) = (component, stack.spec.llm.local_model()) {
        let (volume, copy) = model_copy(stack, &local);
        volumes.push(volume);
        init_containers.push(copy);
        mounts.push(VolumeMount {
            read_only: Some(true),
            ..mount(MODEL_VOLUME, MODELS_DIR)
        });
    }
    let port = component.port_name();
    let container = Container {
        name: component.name().to_owned(),
        image: Some(component.image(stack)),
        args: Some(args(stack, component)),
        env: Some(env(stack, component)),
        ports: Some(vec![container_port(port, component.port())]),
        liveness_probe: Some(http_probe("/healthz", port, 10)),
        readiness_probe: Some(http_probe("/readyz", port, 5)),
        resources: component.resources(stack).cloned(),
        security_context: Some(restricted()),
        volume_mounts: Some(mounts),
        // The kubelet's own sleep: the images have no shell to run one.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: DRAIN_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        ..Container::default()
    };
    Pod {
        init_containers,
        containers: vec![container],
        volumes,
        run_as: RUN_AS_USER,
    }
}

/// The volume the LLM pod reads its model from.
const MODEL_VOLUME: &str = "model";
/// Where the copying container sees that volume.
const MODEL_COPY_DIR: &str = "/copy";

/// The local model's volume (an emptyDir as large as `storage` allows) and the init container that
/// copies the GGUF file into it from the model image, which carries it at
/// `/models/<model>.gguf`. Works on any node and any runtime; nothing is downloaded.
fn model_copy(stack: &FlashcardStack, local: &LocalModelSpec) -> (Volume, Container) {
    let volume = Volume {
        name: MODEL_VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(local.storage.clone()),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    };
    let file = format!("{}.gguf", local.model);
    let copy = Container {
        name: "model".to_owned(),
        image: Some(model_image(stack, local)),
        command: Some(vec![
            "cp".to_owned(),
            format!("{MODELS_DIR}/{file}"),
            format!("{MODEL_COPY_DIR}/{file}"),
        ]),
        security_context: Some(restricted()),
        volume_mounts: Some(vec![mount(MODEL_VOLUME, MODEL_COPY_DIR)]),
        ..Container::default()
    };
    (volume, copy)
}

/// A container's share of the restricted profile; the pod sets the user and seccomp.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn claim_volume(name: &str, claim: String) -> Volume {
    Volume {
        name: name.to_owned(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim,
            read_only: None,
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn value(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value),
        value_from: None,
    }
}

/// The claim and mount path of a component's persistent data: the backend's SQLite file.
fn data_volume(stack: &FlashcardStack, component: Component) -> Option<(String, &'static str)> {
    match component {
        Component::Backend if stack.spec.backend.database.postgres.is_none() => {
            Some((pvc::claim_name(stack, component), DATA_DIR))
        }
        _ => None,
    }
}

fn http_probe(path: &str, port: &str, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The in-cluster URL of a component's Service.
pub fn service_url(stack: &FlashcardStack, component: Component) -> String {
    let scheme = match component {
        Component::Redis => "redis",
        _ => "http",
    };
    format!(
        "{scheme}://{}:{}",
        object_name(stack, component),
        component.port()
    )
}

fn args(stack: &FlashcardStack, component: Component) -> Vec<String> {
    let mut args = vec![
        flags::LISTEN.arg(),
        format!("0.0.0.0:{}", component.port()),
        flags::LOG_FORMAT.arg(),
        "json".to_owned(),
    ];
    match component {
        Component::Backend => {
            if stack.spec.backend.database.postgres.is_none() {
                args.push(backend::DATABASE_URL.arg());
                args.push(format!("sqlite://{DATA_DIR}/flashcards.db"));
            }
            args.push(backend::OCR_URL.arg());
            args.push(service_url(stack, Component::Ocr));
            args.push(backend::LLM_URL.arg());
            args.push(service_url(stack, Component::Llm));
            // Replicas share the login throttle and rate limits through the stack's Redis.
            if stack.spec.redis.enabled {
                args.push(backend::REDIS_URL.arg());
                args.push(service_url(stack, Component::Redis));
            }
        }
        Component::Llm => {
            // `local_model` is `None` exactly when an upstream is named.
            if let Some(local) = stack.spec.llm.local_model() {
                args.push(llm::MODEL.arg());
                args.push(format!("{MODELS_DIR}/{}.gguf", local.model));
            } else if let Some(upstream) = &stack.spec.llm.upstream {
                args.push(llm::UPSTREAM_URL.arg());
                args.push(upstream.url.clone());
                if let Some(model) = &upstream.model {
                    args.push(llm::UPSTREAM_MODEL.arg());
                    args.push(model.clone());
                }
            }
        }
        Component::Ocr | Component::Web | Component::Redis | Component::Mlflow => {}
    }
    if stack.spec.mlflow.enabled && matches!(component, Component::Ocr | Component::Llm) {
        args.push(flags::MLFLOW_URL.arg());
        args.push(service_url(stack, Component::Mlflow));
    }
    args
}

fn env(stack: &FlashcardStack, component: Component) -> Vec<EnvVar> {
    let from_secret = |name: &str, secret: &crate::crd::SecretKeyRef| EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    };
    let mut env = Vec::new();
    match component {
        Component::Backend => {
            let spec = &stack.spec.backend;
            if let Some(postgres) = &spec.database.postgres {
                env.push(from_secret(backend::DATABASE_URL.env, &postgres.secret_ref));
            }
            if !spec.admin_emails.is_empty() {
                env.push(value(
                    backend::ADMIN_EMAILS.env,
                    spec.admin_emails.join(","),
                ));
            }
            if let Some(token) = &spec.alerts_webhook_token_secret_ref {
                env.push(from_secret(backend::ALERTS_TOKEN.env, token));
            }
            if spec.secure_cookies {
                env.push(value(backend::SECURE_COOKIES.env, "true".to_owned()));
            }
        }
        Component::Ocr => {
            let spec = &stack.spec.ocr;
            if let Some(language) = spec.languages.first() {
                env.push(value(ocr::DEFAULT_LANGUAGE.env, language.clone()));
            }
            if let Some(min) = spec.min_confidence {
                env.push(value(ocr::MIN_CONFIDENCE.env, min.to_string()));
            }
        }
        Component::Llm => {
            if let Some(secret) = stack
                .spec
                .llm
                .upstream
                .as_ref()
                .and_then(|upstream| upstream.api_key_secret_ref.as_ref())
            {
                env.push(from_secret(llm::UPSTREAM_API_KEY.env, secret));
            }
        }
        Component::Web => {
            env.push(value(
                web::BACKEND_URL.env,
                service_url(stack, Component::Backend),
            ));
        }
        Component::Redis | Component::Mlflow => {}
    }
    env
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;
    use crate::{
        builders::tests::stack,
        crd::{FlashcardStackSpec, PostgresSpec, SecretKeyRef, UpstreamSpec},
    };

    fn container(deployment: &Deployment) -> &Container {
        &deployment
            .spec
            .template
            .spec
            .as_ref()
            .expect("pod")
            .containers[0]
    }

    #[test]
    fn pods_run_restricted() {
        let deployment = deployment(&stack(FlashcardStackSpec::default()), Component::Ocr);
        let pod = deployment.spec.template.spec.as_ref().expect("pod");
        let pod_security = pod.security_context.as_ref().expect("pod security");
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.run_as_user, Some(RUN_AS_USER));
        assert_eq!(
            pod_security
                .seccomp_profile
                .as_ref()
                .map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        let security = container(&deployment)
            .security_context
            .as_ref()
            .expect("security");
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        let probes = (
            container(&deployment)
                .liveness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref()),
            container(&deployment)
                .readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref()),
        );
        assert_eq!(probes.0.and_then(|g| g.path.as_deref()), Some("/healthz"));
        assert_eq!(probes.1.and_then(|g| g.path.as_deref()), Some("/readyz"));
    }

    #[test]
    fn every_container_of_every_component_runs_restricted() {
        let mut spec = FlashcardStackSpec::default();
        spec.redis.enabled = true;
        spec.mlflow.enabled = true;
        let stack = stack(spec);
        for component in Component::ALL {
            let deployment = deployment(&stack, component);
            let pod = deployment.spec.template.spec.as_ref().expect("pod");
            assert_eq!(pod.automount_service_account_token, Some(false));
            assert_eq!(
                pod.service_account_name.as_deref(),
                deployment.metadata.name.as_deref()
            );
            let pod_security = pod.security_context.as_ref().expect("pod security");
            assert_eq!(pod_security.run_as_non_root, Some(true));
            assert!(pod_security.run_as_user.is_some_and(|uid| uid > 0));
            assert_eq!(
                pod_security
                    .seccomp_profile
                    .as_ref()
                    .map(|p| p.type_.as_str()),
                Some("RuntimeDefault"),
                "{component:?}"
            );
            for container in &pod.containers {
                assert_eq!(
                    container.security_context,
                    Some(restricted()),
                    "{component:?}/{}",
                    container.name
                );
                assert!(container.liveness_probe.is_some());
                assert!(container.readiness_probe.is_some());
            }
        }
    }

    #[test]
    fn the_backend_gets_sqlite_on_a_volume_or_postgres_from_a_secret() {
        let sqlite = deployment(&stack(FlashcardStackSpec::default()), Component::Backend);
        let args = container(&sqlite).args.clone().expect("args");
        assert!(
            args.windows(2)
                .any(|w| w == ["--database-url", "sqlite:///data/flashcards.db"])
        );
        assert!(
            args.windows(2)
                .any(|w| w == ["--ocr-url", "http://study-ocr:8000"])
        );
        assert!(
            args.windows(2)
                .any(|w| w == ["--llm-url", "http://study-llm:8001"])
        );
        assert!(
            !args.contains(&"--redis-url".to_owned()),
            "no Redis unless enabled"
        );
        assert_eq!(
            sqlite
                .spec
                .strategy
                .as_ref()
                .and_then(|s| s.type_.as_deref()),
            Some("Recreate")
        );

        let mut spec = FlashcardStackSpec::default();
        spec.backend.database.postgres = Some(PostgresSpec {
            secret_ref: SecretKeyRef {
                name: "study-db".into(),
                key: "uri".into(),
            },
        });
        spec.backend.component.replicas = Some(2);
        spec.redis.enabled = true;
        let postgres = deployment(&stack(spec), Component::Backend);
        let container = container(&postgres);
        assert!(
            container
                .args
                .clone()
                .expect("args")
                .windows(2)
                .any(|w| w == ["--redis-url", "redis://study-redis:6379"]),
            "replicas share their counts through the stack's Redis"
        );
        assert!(
            !container
                .args
                .clone()
                .expect("args")
                .contains(&"--database-url".to_owned())
        );
        let env = container.env.clone().expect("env");
        let secret = env[0]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("from a secret");
        assert_eq!(
            (env[0].name.as_str(), secret.name.as_str()),
            ("DATABASE_URL", "study-db")
        );
        assert_eq!(postgres.spec.replicas, Some(2));
        let rolling = postgres
            .spec
            .strategy
            .clone()
            .and_then(|strategy| strategy.rolling_update)
            .expect("a rolling update");
        assert_eq!(
            (rolling.max_surge, rolling.max_unavailable),
            (Some(IntOrString::Int(1)), Some(IntOrString::Int(0))),
            "an upgrade adds a pod before it takes one away"
        );
        let drain = container
            .lifecycle
            .as_ref()
            .and_then(|lifecycle| lifecycle.pre_stop.as_ref())
            .and_then(|pre_stop| pre_stop.sleep.as_ref())
            .map(|sleep| sleep.seconds);
        assert_eq!(drain, Some(DRAIN_SECONDS), "a stopping pod drains first");
    }

    #[test]
    fn the_backend_learns_its_administrators_and_the_webhook_token() {
        let plain = deployment(&stack(FlashcardStackSpec::default()), Component::Backend);
        let names: Vec<String> = container(&plain)
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|var| var.name)
            .collect();
        assert!(!names.contains(&"ADMIN_EMAILS".to_owned()));
        assert!(!names.contains(&"ALERTS_WEBHOOK_TOKEN".to_owned()));
        assert!(!names.contains(&"SECURE_COOKIES".to_owned()));

        let mut spec = FlashcardStackSpec::default();
        spec.backend.admin_emails = vec!["sre@example.org".into(), "ops@example.org".into()];
        spec.backend.secure_cookies = true;
        spec.backend.alerts_webhook_token_secret_ref = Some(SecretKeyRef {
            name: "study-alerts".into(),
            key: "token".into(),
        });
        let configured = deployment(&stack(spec), Component::Backend);
        let env = container(&configured).env.clone().expect("env");
        let admins = env
            .iter()
            .find(|v| v.name == "ADMIN_EMAILS")
            .expect("admins");
        assert_eq!(
            admins.value.as_deref(),
            Some("sre@example.org,ops@example.org")
        );
        let secure = env.iter().find(|v| v.name == "SECURE_COOKIES");
        assert_eq!(secure.and_then(|v| v.value.as_deref()), Some("true"));
        let token = env
            .iter()
            .find(|v| v.name == "ALERTS_WEBHOOK_TOKEN")
            .and_then(|v| v.value_from.as_ref())
            .and_then(|from| from.secret_key_ref.as_ref())
            .expect("the token from a Secret");
        assert_eq!(
            (token.name.as_str(), token.key.as_str()),
            ("study-alerts", "token")
        );
    }

    #[test]
    fn a_local_model_is_copied_from_its_image_into_the_llm_pod() {
        let mut spec = FlashcardStackSpec {
            version: Some("0.3.0".into()),
            image_registry: Some("registry.local/flashcards/".into()),
            ..FlashcardStackSpec::default()
        };
        let llm = deployment(&stack(spec.clone()), Component::Llm);
        let pod = llm.spec.template.spec.clone().expect("pod");
        let copy = &pod.init_containers.as_ref().expect("an init container")[0];
        assert_eq!(
            copy.image.as_deref(),
            Some("registry.local/flashcards/flashcards-model-qwen2.5-coder-0.5b-instruct:0.3.0")
        );
        assert_eq!(
            copy.command.clone().expect("command"),
            [
                "cp",
                "/models/qwen2.5-coder-0.5b-instruct.gguf",
                "/copy/qwen2.5-coder-0.5b-instruct.gguf"
            ]
        );
        let copy_security = copy.security_context.as_ref().expect("restricted");
        assert_eq!(copy_security.read_only_root_filesystem, Some(true));
        assert_eq!(copy_security.allow_privilege_escalation, Some(false));
        let volume = pod
            .volumes
            .as_ref()
            .and_then(|volumes| volumes.iter().find(|volume| volume.name == "model"))
            .expect("the model volume");
        let empty_dir = volume.empty_dir.as_ref().expect("an emptyDir, no claim");
        assert_eq!(empty_dir.size_limit, Some(Quantity("2Gi".into())));
        let server = &pod.containers[0];
        let model_mount = server
            .volume_mounts
            .as_ref()
            .and_then(|mounts| mounts.iter().find(|mount| mount.name == "model"))
            .expect("mounted");
        assert_eq!(
            (model_mount.mount_path.as_str(), model_mount.read_only),
            ("/models", Some(true))
        );
        assert!(
            server
                .args
                .clone()
                .expect("args")
                .windows(2)
                .any(|w| w == ["--model", "/models/qwen2.5-coder-0.5b-instruct.gguf"])
        );

        spec.llm.local = Some(LocalModelSpec {
            model: "smollm2-135m-instruct".into(),
            image: Some("models.example/smollm2@sha256:abc".into()),
            storage: Quantity("300Mi".into()),
        });
        let llm = deployment(&stack(spec), Component::Llm);
        let pod = llm.spec.template.spec.expect("pod");
        let copy = &pod.init_containers.expect("an init container")[0];
        assert_eq!(
            copy.image.as_deref(),
            Some("models.example/smollm2@sha256:abc")
        );
        assert_eq!(
            copy.command.clone().expect("command")[1],
            "/models/smollm2-135m-instruct.gguf"
        );
    }

    #[test]
    fn the_llm_service_points_at_its_upstream_with_the_key_from_a_secret() {
        let mut spec = FlashcardStackSpec::default();
        spec.llm.upstream = Some(UpstreamSpec {
            url: "http://ollama:11434".into(),
            model: Some("qwen".into()),
            api_key_secret_ref: Some(SecretKeyRef {
                name: "llm".into(),
                key: "key".into(),
            }),
        });
        spec.mlflow.enabled = true;
        let llm = deployment(&stack(spec), Component::Llm);
        let container = container(&llm);
        let args = container.args.clone().expect("args");
        assert!(
            args.windows(2)
                .any(|w| w == ["--upstream-url", "http://ollama:11434"])
        );
        assert!(args.windows(2).any(|w| w == ["--upstream-model", "qwen"]));
        assert!(
            args.windows(2)
                .any(|w| w == ["--mlflow-url", "http://study-mlflow:5000"])
        );
        let env = container.env.clone().expect("env");
        assert_eq!(env[0].name, "UPSTREAM_API_KEY");
        assert!(env[0].value.is_none(), "the key never appears in the spec");
    }
}
