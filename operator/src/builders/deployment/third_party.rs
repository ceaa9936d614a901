//! The pods of Redis and MLflow, from their upstream images under the same restricted profile as
//! the flashcards services: Redis as an in-memory cache with redis_exporter beside it, MLflow as a
//! tracking server keeping runs in SQLite and artifacts on the stack's volume.

use k8s_openapi::{
    api::core::v1::{Container, Probe, TCPSocketAction},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    Pod, RUN_AS_USER, claim_volume, container_port, empty_dir, http_probe, mount, restricted, value,
};
use crate::{
    builders::{Component, REDIS_EXPORTER_IMAGE, REDIS_EXPORTER_PORT, pvc},
    crd::FlashcardStack,
};

/// The official Redis image's `redis` user, which the image's files belong to.
const REDIS_USER: i64 = 999;
/// Where MLflow keeps its database and artifacts: the stack's volume.
const MLFLOW_DIR: &str = "/mlflow";

pub(super) fn redis(stack: &FlashcardStack) -> Pod {
    let port = Component::Redis.port_name();
    let tcp_probe = |period_seconds| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.to_owned()),
            host: None,
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let mut containers = vec![Container {
        name: "redis".to_owned(),
        image: Some(Component::Redis.image(stack)),
        // A cache: no snapshots and no append-only file, so nothing is written and a restart
        // starts empty. The image's entrypoint prepends `redis-server` to arguments like these.
        args: Some(
            ["--save", "", "--appendonly", "no"]
                .map(str::to_owned)
                .to_vec(),
        ),
        ports: Some(vec![container_port(port, Component::Redis.port())]),
        liveness_probe: Some(tcp_probe(10)),
        readiness_probe: Some(tcp_probe(5)),
        resources: Component::Redis.resources(stack).cloned(),
        security_context: Some(restricted()),
        // The image's working directory, writable should a client ask for a snapshot anyway.
        volume_mounts: Some(vec![mount("data", "/data")]),
        ..Container::default()
    }];
    if stack.spec.redis.exporter_enabled() {
        containers.push(Container {
            name: "redis-exporter".to_owned(),
            image: Some(
                stack
                    .spec
                    .redis
                    .exporter_image
                    .clone()
                    .unwrap_or_else(|| REDIS_EXPORTER_IMAGE.to_owned()),
            ),
            env: Some(vec![value(
                "REDIS_ADDR",
                format!("redis://localhost:{}", Component::Redis.port()),
            )]),
            ports: Some(vec![container_port("metrics", REDIS_EXPORTER_PORT)]),
            liveness_probe: Some(http_probe("/health", "metrics", 10)),
            readiness_probe: Some(http_probe("/health", "metrics", 5)),
            security_context: Some(restricted()),
            ..Container::default()
        });
    }
    Pod {
        init_containers: Vec::new(),
        containers,
        volumes: vec![empty_dir("data")],
        run_as: REDIS_USER,
    }
}

pub(super) fn mlflow(stack: &FlashcardStack) -> Pod {
    let port = Component::Mlflow.port_name();
    let command = vec![
        "mlflow".to_owned(),
        "server".to_owned(),
        "--host".to_owned(),
        "0.0.0.0".to_owned(),
        "--port".to_owned(),
        Component::Mlflow.port().to_string(),
        "--backend-store-uri".to_owned(),
        format!("sqlite:///{MLFLOW_DIR}/mlflow.db"),
        // Clients upload artifacts through the server (`mlflow-artifacts:`), which keeps them here.
        "--artifacts-destination".to_owned(),
        format!("{MLFLOW_DIR}/artifacts"),
        // The services log a few runs a minute; each extra worker is another Python process's
        // memory.
        "--workers".to_owned(),
        "1".to_owned(),
    ];
    let container = Container {
        name: "mlflow".to_owned(),
        image: Some(Component::Mlflow.image(stack)),
        command: Some(command),
        // The uid has no home in the image: Python's and MLflow's caches go to the emptyDir.
        env: Some(vec![value("HOME", "/tmp".to_owned())]),
        ports: Some(vec![container_port(port, Component::Mlflow.port())]),
        // The first start creates and migrates the database; slow volumes get five minutes
        // before liveness counts.
        startup_probe: Some(Probe {
            failure_threshold: Some(60),
            ..http_probe("/health", port, 5)
        }),
        liveness_probe: Some(http_probe("/health", port, 10)),
        readiness_probe: Some(http_probe("/health", port, 5)),
        resources: Component::Mlflow.resources(stack).cloned(),
        security_context: Some(restricted()),
        volume_mounts: Some(vec![mount("tmp", "/tmp"), mount("data", MLFLOW_DIR)]),
        ..Container::default()
    };
    Pod {
        init_containers: Vec::new(),
        containers: vec![container],
        volumes: vec![
            empty_dir("tmp"),
            claim_volume("data", pvc::claim_name(stack, Component::Mlflow)),
        ],
        run_as: RUN_AS_USER,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::ResourceRequirements};

    use super::*;
    use crate::{
        builders::{deployment::deployment, tests::stack},
        crd::FlashcardStackSpec,
    };

    fn enabled() -> FlashcardStackSpec {
        let mut spec = FlashcardStackSpec::default();
        spec.redis.enabled = true;
        spec.mlflow.enabled = true;
        spec
    }

    fn pod(deployment: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
        deployment.spec.template.spec.as_ref().expect("pod")
    }

    fn probe_target(probe: Option<&Probe>) -> (Option<String>, Option<IntOrString>) {
        let probe = probe.expect("probe");
        match (&probe.http_get, &probe.tcp_socket) {
            (Some(get), _) => (get.path.clone(), Some(get.port.clone())),
            (None, Some(tcp)) => (None, Some(tcp.port.clone())),
            (None, None) => (None, None),
        }
    }

    #[test]
    fn redis_keeps_nothing_on_disk_and_its_exporter_watches_it() {
        let mut spec = enabled();
        spec.redis.resources = Some(ResourceRequirements::default());
        let redis = deployment(&stack(spec), Component::Redis);
        assert_eq!(redis.metadata.name.as_deref(), Some("study-redis"));
        assert_eq!(redis.spec.replicas, Some(1));
        assert_eq!(
            redis
                .spec
                .strategy
                .as_ref()
                .and_then(|strategy| strategy.type_.as_deref()),
            Some("RollingUpdate"),
            "nothing on disk to hand over"
        );
        let pod = pod(&redis);
        let security = pod.security_context.as_ref().expect("pod security");
        assert_eq!(security.run_as_user, Some(REDIS_USER));
        assert_eq!(security.run_as_non_root, Some(true));
        let [server, exporter] = pod.containers.as_slice() else {
            panic!("two containers: {:?}", pod.containers);
        };

        assert_eq!(server.name, "redis");
        assert_eq!(server.image.as_deref(), Some("redis:7.2-alpine"));
        assert_eq!(
            server.args.clone().expect("args"),
            ["--save", "", "--appendonly", "no"]
        );
        let port = &server.ports.as_ref().expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("redis"), 6379)
        );
        for probe in [&server.liveness_probe, &server.readiness_probe] {
            assert_eq!(
                probe_target(probe.as_ref()),
                (None, Some(IntOrString::String("redis".into()))),
                "a TCP probe on the named port"
            );
        }
        assert!(server.resources.is_some(), "the spec's resources");
        let mounts = server.volume_mounts.clone().expect("mounts");
        assert_eq!(mounts[0].mount_path, "/data");
        let volumes = pod.volumes.clone().expect("volumes");
        assert!(volumes[0].empty_dir.is_some(), "{volumes:?}");

        assert_eq!(exporter.name, "redis-exporter");
        assert_eq!(
            exporter.image.as_deref(),
            Some("oliver006/redis_exporter:v1.67.0")
        );
        let env = exporter.env.clone().expect("env");
        assert_eq!(
            (env[0].name.as_str(), env[0].value.as_deref()),
            ("REDIS_ADDR", Some("redis://localhost:6379"))
        );
        let port = &exporter.ports.as_ref().expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("metrics"), 9121)
        );
        for probe in [&exporter.liveness_probe, &exporter.readiness_probe] {
            assert_eq!(
                probe_target(probe.as_ref()),
                (
                    Some("/health".into()),
                    Some(IntOrString::String("metrics".into()))
                )
            );
        }
    }

    #[test]
    fn redis_runs_alone_without_its_exporter_and_takes_named_images() {
        let mut spec = enabled();
        spec.redis.exporter = Some(false);
        let alone = deployment(&stack(spec.clone()), Component::Redis);
        assert_eq!(pod(&alone).containers.len(), 1);
        spec.redis.exporter = None;
        spec.redis.exporter_image = Some("mirror.local/redis_exporter:v1".into());
        let mirrored = deployment(&stack(spec), Component::Redis);
        assert_eq!(
            pod(&mirrored).containers[1].image.as_deref(),
            Some("mirror.local/redis_exporter:v1")
        );
    }

    #[test]
    fn mlflow_serves_runs_from_its_volume() {
        let mlflow = deployment(&stack(enabled()), Component::Mlflow);
        assert_eq!(mlflow.metadata.name.as_deref(), Some("study-mlflow"));
        let spec = &mlflow.spec;
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
            Some("Recreate"),
            "one writer of the SQLite file"
        );
        let pod = pod(&mlflow);
        assert_eq!(
            pod.security_context.as_ref().and_then(|s| s.run_as_user),
            Some(RUN_AS_USER)
        );
        let [server] = pod.containers.as_slice() else {
            panic!("one container: {:?}", pod.containers);
        };
        assert_eq!(
            server.image.as_deref(),
            Some("ghcr.io/mlflow/mlflow:v2.22.0")
        );
        assert_eq!(
            server.command.clone().expect("command").join(" "),
            "mlflow server --host 0.0.0.0 --port 5000 \
             --backend-store-uri sqlite:////mlflow/mlflow.db \
             --artifacts-destination /mlflow/artifacts --workers 1"
        );
        let env = server.env.clone().expect("env");
        assert_eq!(
            (env[0].name.as_str(), env[0].value.as_deref()),
            ("HOME", Some("/tmp"))
        );
        let port = &server.ports.as_ref().expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("http"), 5000)
        );
        for probe in [
            &server.startup_probe,
            &server.liveness_probe,
            &server.readiness_probe,
        ] {
            assert_eq!(
                probe_target(probe.as_ref()),
                (
                    Some("/health".into()),
                    Some(IntOrString::String("http".into()))
                )
            );
        }
        let mounts: Vec<(String, String)> = server
            .volume_mounts
            .clone()
            .expect("mounts")
            .into_iter()
            .map(|m| (m.name, m.mount_path))
            .collect();
        assert_eq!(
            mounts,
            [
                ("tmp".to_owned(), "/tmp".to_owned()),
                ("data".to_owned(), "/mlflow".to_owned())
            ]
        );
        let volumes = pod.volumes.clone().expect("volumes");
        assert!(volumes[0].empty_dir.is_some());
        assert_eq!(
            volumes[1]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("study-mlflow-data")
        );
    }
}
