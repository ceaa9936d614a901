//! A component's Service: ClusterIP with named ports: `http` for the flashcards services (which
//! ServiceMonitors scrape) and MLflow; `redis`, and `metrics` while redis_exporter runs, for Redis.

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{Component, REDIS_EXPORTER_PORT, metadata, object_name, selector_labels};
use crate::crd::FlashcardStack;

pub fn service(stack: &FlashcardStack, component: Component) -> Service {
    let mut ports = vec![port(component.port_name(), component.port())];
    if component == Component::Redis && stack.spec.redis.exporter_enabled() {
        ports.push(port("metrics", REDIS_EXPORTER_PORT));
    }
    Service {
        metadata: metadata(stack, component, object_name(stack, component)),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(stack, component)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: number,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

    fn ports(spec: FlashcardStackSpec, component: Component) -> Vec<(String, i32)> {
        service(&stack(spec), component)
            .spec
            .and_then(|spec| spec.ports)
            .expect("ports")
            .into_iter()
            .map(|port| (port.name.unwrap_or_default(), port.port))
            .collect()
    }

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

    #[test]
    fn redis_serves_metrics_while_its_exporter_runs_and_mlflow_http() {
        let mut spec = FlashcardStackSpec::default();
        spec.redis.enabled = true;
        assert_eq!(
            ports(spec.clone(), Component::Redis),
            [("redis".to_owned(), 6379), ("metrics".to_owned(), 9121)]
        );
        spec.redis.exporter = Some(false);
        assert_eq!(
            ports(spec.clone(), Component::Redis),
            [("redis".to_owned(), 6379)]
        );
        assert_eq!(ports(spec, Component::Mlflow), [("http".to_owned(), 5000)]);
    }
}
