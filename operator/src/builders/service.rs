//! A component's Service: ClusterIP with the named port `http`, which ServiceMonitors scrape.

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{Component, metadata, object_name, selector_labels};
use crate::crd::FlashcardStack;

pub fn service(stack: &FlashcardStack, component: Component) -> Service {
    Service {
        metadata: metadata(stack, component, object_name(stack, component)),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(stack, component)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: component.port(),
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

    #[test]
    fn services_select_their_component_on_the_named_port() {
        let service = service(&stack(FlashcardStackSpec::default()), Component::Backend);
        let spec = service.spec.expect("spec");
        let selector = spec.selector.expect("selector");
        assert_eq!(selector["app.kubernetes.io/component"], "backend");
        assert_eq!(selector["app.kubernetes.io/instance"], "study");
        let port = &spec.ports.expect("ports")[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8002));
    }
}
