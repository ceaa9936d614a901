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

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::{ComponentSpec, FlashcardStack};

/// Registry and repository prefix when the stack names none.
pub const DEFAULT_REGISTRY: &str = "ghcr.io/flashcards";
/// The image tag when the stack names no version: the operator's own.
pub const OPERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const MANAGER: &str = "flashcards-operator";

/// The services of a stack, each a Deployment behind a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Backend,
    Ocr,
    Llm,
    Web,
}

impl Component {
    pub const ALL: [Self; 4] = [Self::Backend, Self::Ocr, Self::Llm, Self::Web];

    pub fn name(self) -> &'static str {
        match self {
            Self::Backend => "backend",
            Self::Ocr => "ocr",
            Self::Llm => "llm",
            Self::Web => "web",
        }
    }

    /// The port of DESIGN.md's service table.
    pub fn port(self) -> i32 {
        match self {
            Self::Ocr => 8000,
            Self::Llm => 8001,
            Self::Backend => 8002,
            Self::Web => 8080,
        }
    }

    pub fn spec(self, stack: &FlashcardStack) -> &ComponentSpec {
        match self {
            Self::Backend => &stack.spec.backend.component,
            Self::Ocr => &stack.spec.ocr.component,
            Self::Llm => &stack.spec.llm.component,
            Self::Web => &stack.spec.web.component,
        }
    }

    /// Replicas to run: none while the stack is stopped, else the spec's (default 1).
    pub fn replicas(self, stack: &FlashcardStack) -> i32 {
        if stack.spec.stopped {
            0
        } else {
            self.spec(stack).replicas.unwrap_or(1).max(0)
        }
    }

    pub fn image(self, stack: &FlashcardStack) -> String {
        self.spec(stack).image.clone().unwrap_or_else(|| {
            let registry = stack
                .spec
                .image_registry
                .as_deref()
                .unwrap_or(DEFAULT_REGISTRY)
                .trim_end_matches('/');
            let version = stack.spec.version.as_deref().unwrap_or(OPERATOR_VERSION);
            format!("{registry}/flashcards-{}:{version}", self.name())
        })
    }
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
