//! A real Kubernetes control plane for end-to-end tests, run as local processes: etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler and kwok, which fakes the kubelets of
//! nodes that exist only as API objects, so that scheduled pods become Running and Ready without
//! containers.
//!
//! The binaries come from `cargo xtask control-plane build`, which builds them from their Go
//! modules; `cargo xtask test` builds them and names their folder in `FLASHCARDS_E2E_BIN` (the
//! Prometheus Operator's CRDs in `FLASHCARDS_E2E_PROMETHEUS_CRDS`, the grafana-operator's
//! GrafanaDashboard CRD in `FLASHCARDS_E2E_GRAFANA_DASHBOARD_CRD`).
//!
//! A [`RealNode`] runs beside it for the tests that need real pods: containerd, runc, the CNI
//! bridge, kubelet, kube-proxy, CoreDNS and a volume provisioner, with the stack's images imported
//! from the archives `cargo xtask test` builds (`FLASHCARDS_E2E_NODE_BIN`,
//! `FLASHCARDS_E2E_IMAGES`).
//!
//! ```no_run
//! # async fn example() -> Result<(), flashcards_e2e::Error> {
//! let control_plane = flashcards_e2e::ControlPlane::start().await?;
//! let client = control_plane.client();
//! # Ok(())
//! # }
//! ```

pub mod audit;
mod certs;
mod control_plane;
mod error;
pub mod full_example;
pub mod install_manifest;
mod kubeconfig;
pub mod learner;
pub mod load;
pub mod network_policy;
mod node;
mod process;
pub mod prometheus_operator;
pub mod stack;
mod wait;
pub mod workspace;

pub use control_plane::{
    BIN_VAR, ControlPlane, FAKE_NODE_ANNOTATION, GRAFANA_CRD_VAR, OPERATOR_USER, Options,
    PROMETHEUS_CRDS_VAR, grafana_dashboard_crd, helm_binary, prometheus_crds,
    remove_control_plane_leftovers,
};
pub use error::Error;
pub use node::{
    HELPER_IMAGE, IMAGES_VAR, NODE_ADDRESS, NODE_BIN_VAR, NODE_NAME, OPENAI_SERVER_IMAGE,
    PAUSE_IMAGE, POSTGRES_IMAGE, RealNode, STORAGE_CLASS, remove_leftovers,
};
pub use process::Process;
pub use wait::wait_for;
