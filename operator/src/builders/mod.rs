//! Pure builders of the objects a stack owns, one module per kind. No client: each takes the stack
//! and returns what should exist; the reconciler applies them.

pub mod deployment;
pub mod monitoring;
pub mod network_policy;
pub mod pdb;
pub mod pvc;
pub mod service;
pub mod service_account;

use std::collections::BTreeMap;

use flashcards_contracts::ports;
use k8s_openapi::{
    api::core::v1::ResourceRequirements,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::Resource;

use crate::crd::{ComponentSpec, FlashcardStack};

/// Registry and repository prefix when the stack names none.
pub const DEFAULT_REGISTRY: &str = "ghcr.io/flashcards";
/// The image tag when the stack names no version: the operator's own.
pub const OPERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const MANAGER: &str = "flashcards-operator";
/// Third-party images when the stack names none, pinned so that an operator version runs known
/// releases (Redis to a minor release, whose tag takes its patches; 7.2 is the last under the BSD
/// licence).
pub const REDIS_IMAGE: &str = "redis:7.2-alpine";
pub const REDIS_EXPORTER_IMAGE: &str = "oliver006/redis_exporter:v1.67.0";
pub const MLFLOW_IMAGE: &str = "ghcr.io/mlflow/mlflow:v2.22.0";
/// redis_exporter's port (its default), named `metrics`.
pub const REDIS_EXPORTER_PORT: i32 = 9121;

/// What a stack runs, each a Deployment behind a Service: the four flashcards services, and Redis
/// and MLflow when the stack enables them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Backend,
    Ocr,
    Llm,
    Web,
    Redis,
    Mlflow,
}

impl Component {
    pub const ALL: [Self; 6] = [
        Self::Backend,
        Self::Ocr,
        Self::Llm,
        Self::Web,
        Self::Redis,
        Self::Mlflow,
    ];

    /// The components `stack` runs, in [`Component::ALL`]'s order.
    pub fn enabled_in(stack: &FlashcardStack) -> impl Iterator<Item = Self> + '_ {
        Self::ALL
            .into_iter()
            .filter(|component| component.enabled(stack))
    }

    /// Whether `stack` runs this component: the flashcards services always, Redis and MLflow when
    /// their spec says so.
    pub fn enabled(self, stack: &FlashcardStack) -> bool {
        match self {
            Self::Backend | Self::Ocr | Self::Llm | Self::Web => true,
            Self::Redis => stack.spec.redis.enabled,
            Self::Mlflow => stack.spec.mlflow.enabled,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Backend => "backend",
            Self::Ocr => "ocr",
            Self::Llm => "llm",
            Self::Web => "web",
            Self::Redis => "redis",
            Self::Mlflow => "mlflow",
        }
    }

    /// The port each service listens on by default; Redis's and MLflow's usual ones.
    pub fn port(self) -> i32 {
        match self {
            Self::Ocr => i32::from(ports::OCR),
            Self::Llm => i32::from(ports::LLM),
            Self::Backend => i32::from(ports::BACKEND),
            Self::Web => i32::from(ports::WEB),
            Self::Redis => 6379,
            Self::Mlflow => 5000,
        }
    }

    /// The name of [`Component::port`] on containers and Services.
    pub fn port_name(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            _ => "http",
        }
    }

    /// The named port Prometheus scrapes on `/metrics`, if any: the services' own, redis_exporter's
    /// when it runs; MLflow has none.
    pub fn metrics_port(self, stack: &FlashcardStack) -> Option<&'static str> {
        match self {
            Self::Backend | Self::Ocr | Self::Llm | Self::Web => Some("http"),
            Self::Redis => stack.spec.redis.exporter_enabled().then_some("metrics"),
            Self::Mlflow => None,
        }
    }

    /// The spec of a flashcards service; Redis and MLflow have their own.
    fn service_spec(self, stack: &FlashcardStack) -> Option<&ComponentSpec> {
        match self {
            Self::Backend => Some(&stack.spec.backend.component),
            Self::Ocr => Some(&stack.spec.ocr.component),
            Self::Llm => Some(&stack.spec.llm.component),
            Self::Web => Some(&stack.spec.web.component),
            Self::Redis | Self::Mlflow => None,
        }
    }

    /// Replicas to run: none while the stack is stopped, else the spec's (default 1). Redis and
    /// MLflow run one: neither shares its state between replicas.
    pub fn replicas(self, stack: &FlashcardStack) -> i32 {
        if stack.spec.stopped {
            0
        } else {
            self.service_spec(stack)
                .and_then(|spec| spec.replicas)
                .unwrap_or(1)
                .max(0)
        }
    }

    pub fn resources(self, stack: &FlashcardStack) -> Option<&ResourceRequirements> {
        match self {
            Self::Redis => stack.spec.redis.resources.as_ref(),
            Self::Mlflow => stack.spec.mlflow.resources.as_ref(),
            _ => self.service_spec(stack)?.resources.as_ref(),
        }
    }

    /// The main container's image: a flashcards service's from the stack's registry and version,
    /// Redis's and MLflow's pinned upstream ones, unless the spec names its own.
    pub fn image(self, stack: &FlashcardStack) -> String {
        let named = match self {
            Self::Redis => stack.spec.redis.image.as_ref(),
            Self::Mlflow => stack.spec.mlflow.image.as_ref(),
            _ => self
                .service_spec(stack)
                .and_then(|spec| spec.image.as_ref()),
        };
        if let Some(image) = named {
            return image.clone();
        }
        match self {
            Self::Redis => REDIS_IMAGE.to_owned(),
            Self::Mlflow => MLFLOW_IMAGE.to_owned(),
            _ => own_image(stack, &format!("flashcards-{}", self.name())),
        }
    }
}

/// `<registry>/<name>:<version>`: one of the project's images, from the stack's registry and
/// version.
fn own_image(stack: &FlashcardStack, name: &str) -> String {
    let registry = stack
        .spec
        .image_registry
        .as_deref()
        .unwrap_or(DEFAULT_REGISTRY)
        .trim_end_matches('/');
    let version = stack.spec.version.as_deref().unwrap_or(OPERATOR_VERSION);
    format!("{registry}/{name}:{version}")
}

/// `<stack>-<component>`: the name of a component's Deployment, Service and ServiceAccount.
pub fn object_name(stack: &FlashcardStack, component: Component) -> String {
    format!("{}-{}", stack_name(stack), component.name())
}

pub fn stack_name(stack: &FlashcardStack) -> String {
    stack.metadata.name.clone().unwrap_or_default()
}

/// Labels that select a component's pods: stable for the life of the stack.
pub fn selector_labels(stack: &FlashcardStack, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "flashcards".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), stack_name(stack)),
        (
            "app.kubernetes.io/component".to_owned(),
            component.name().to_owned(),
        ),
    ])
}

/// The common `app.kubernetes.io/*` labels of every owned object.
pub fn labels(stack: &FlashcardStack, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector_labels(stack, component);
    labels.insert(
        "app.kubernetes.io/part-of".to_owned(),
        "flashcards".to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGER.to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/version".to_owned(),
        stack
            .spec
            .version
            .clone()
            .unwrap_or_else(|| OPERATOR_VERSION.to_owned()),
    );
    labels
}

/// The stack as controlling owner: children are garbage-collected with it.
pub fn owner_reference(stack: &FlashcardStack) -> OwnerReference {
    OwnerReference {
        api_version: FlashcardStack::api_version(&()).into_owned(),
        kind: FlashcardStack::kind(&()).into_owned(),
        name: stack_name(stack),
        uid: stack.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of a component's object named `name`.
pub fn metadata(stack: &FlashcardStack, component: Component, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: stack.metadata.namespace.clone(),
        labels: Some(labels(stack, component)),
        owner_references: Some(vec![owner_reference(stack)]),
        ..ObjectMeta::default()
    }
}

/// The image carrying the local model's GGUF file: the one `spec.llm.local.image` names, else
/// `<registry>/flashcards-model-<model>:<version>` beside the services' images.
pub fn model_image(stack: &FlashcardStack, local: &crate::crd::LocalModelSpec) -> String {
    local
        .image
        .clone()
        .unwrap_or_else(|| own_image(stack, &format!("flashcards-model-{}", local.model)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::FlashcardStackSpec;

    /// A stack named `study` in namespace `flashcards` with the given spec.
    pub fn stack(spec: FlashcardStackSpec) -> FlashcardStack {
        let mut stack = FlashcardStack::new("study", spec);
        stack.metadata.namespace = Some("flashcards".to_owned());
        stack.metadata.uid = Some("uid-1".to_owned());
        stack
    }

    #[test]
    fn images_default_to_the_registry_and_the_operator_version() {
        let mut spec = FlashcardStackSpec::default();
        assert_eq!(
            Component::Ocr.image(&stack(spec.clone())),
            format!("ghcr.io/flashcards/flashcards-ocr:{OPERATOR_VERSION}")
        );
        spec.version = Some("1.2.3".into());
        spec.image_registry = Some("registry.local/fc/".into());
        spec.web.component.image = Some("web:custom".into());
        let stack = stack(spec);
        assert_eq!(
            Component::Backend.image(&stack),
            "registry.local/fc/flashcards-backend:1.2.3"
        );
        assert_eq!(Component::Web.image(&stack), "web:custom");
    }

    #[test]
    fn stopping_scales_to_zero_and_replicas_default_to_one() {
        let mut spec = FlashcardStackSpec::default();
        spec.ocr.component.replicas = Some(3);
        assert_eq!(Component::Ocr.replicas(&stack(spec.clone())), 3);
        assert_eq!(Component::Llm.replicas(&stack(spec.clone())), 1);
        spec.stopped = true;
        assert_eq!(Component::Ocr.replicas(&stack(spec)), 0);
    }

    #[test]
    fn redis_and_mlflow_run_when_enabled_with_pinned_images_and_one_replica() {
        let mut spec = FlashcardStackSpec::default();
        let names = |stack: &FlashcardStack| -> Vec<&str> {
            Component::enabled_in(stack).map(Component::name).collect()
        };
        assert_eq!(
            names(&stack(spec.clone())),
            ["backend", "ocr", "llm", "web"]
        );
        spec.redis.enabled = true;
        assert_eq!(
            names(&stack(spec.clone())),
            ["backend", "ocr", "llm", "web", "redis"]
        );
        spec.mlflow.enabled = true;
        let both = stack(spec.clone());
        assert_eq!(
            names(&both),
            ["backend", "ocr", "llm", "web", "redis", "mlflow"]
        );
        assert_eq!(Component::Redis.image(&both), REDIS_IMAGE);
        assert_eq!(Component::Mlflow.image(&both), MLFLOW_IMAGE);
        assert_eq!(Component::Redis.replicas(&both), 1);
        assert_eq!(Component::Mlflow.replicas(&both), 1);
        assert_eq!(Component::Redis.metrics_port(&both), Some("metrics"));
        assert_eq!(Component::Mlflow.metrics_port(&both), None);
        assert_eq!(Component::Web.metrics_port(&both), Some("http"));

        spec.redis.image = Some("mirror.local/redis:7.4".into());
        spec.redis.exporter = Some(false);
        spec.mlflow.resources = Some(ResourceRequirements::default());
        spec.stopped = true;
        let custom = stack(spec);
        assert_eq!(Component::Redis.image(&custom), "mirror.local/redis:7.4");
        assert_eq!(Component::Redis.metrics_port(&custom), None);
        assert!(Component::Mlflow.resources(&custom).is_some());
        assert_eq!(Component::Redis.replicas(&custom), 0);
        assert_eq!(Component::Mlflow.replicas(&custom), 0);
    }

    #[test]
    fn the_crd_documents_the_pinned_images() {
        let yaml = crate::crd::crd_yaml().expect("renders");
        for image in [REDIS_IMAGE, REDIS_EXPORTER_IMAGE, MLFLOW_IMAGE] {
            assert!(
                yaml.contains(image),
                "{image} is not the documented default"
            );
        }
    }

    #[test]
    fn children_are_owned_and_labelled() {
        let stack = stack(FlashcardStackSpec::default());
        let meta = metadata(&stack, Component::Llm, object_name(&stack, Component::Llm));
        assert_eq!(meta.name.as_deref(), Some("study-llm"));
        assert_eq!(meta.namespace.as_deref(), Some("flashcards"));
        let owner = &meta.owner_references.expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("FlashcardStack", "uid-1", Some(true))
        );
        let labels = meta.labels.expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "llm");
        assert_eq!(labels["app.kubernetes.io/managed-by"], MANAGER);
    }
}
