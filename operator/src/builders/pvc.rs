//! PersistentVolumeClaims: the backend's SQLite file (when not on PostgreSQL) and MLflow's runs and
//! artifacts (when enabled). A local model needs none: it is copied from its image.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements},
    apimachinery::pkg::api::resource::Quantity,
};

use super::{Component, metadata, object_name};
use crate::crd::FlashcardStack;

pub fn claim_name(stack: &FlashcardStack, component: Component) -> String {
    format!("{}-data", object_name(stack, component))
}

/// Every claim the stack needs.
pub fn claims(stack: &FlashcardStack) -> Vec<PersistentVolumeClaim> {
    let mut claims = Vec::new();
    if let Some(sqlite) = stack.spec.backend.database.sqlite.clone().or_else(|| {
        stack
            .spec
            .backend
            .database
            .postgres
            .is_none()
            .then(|| crate::crd::SqliteSpec {
                storage: Quantity("1Gi".to_owned()),
            })
    }) {
        claims.push(claim(stack, Component::Backend, sqlite.storage));
    }
    if stack.spec.mlflow.enabled {
        let size = stack
            .spec
            .mlflow
            .storage
            .clone()
            .unwrap_or_else(|| Quantity("1Gi".to_owned()));
        claims.push(claim(stack, Component::Mlflow, size));
    }
    claims
}

/// Claims never pruned, desired or not: user data is not worth losing to a spec change. Moving
/// the backend to PostgreSQL keeps the SQLite file (to migrate from, or to move back to), and
/// disabling MLflow keeps its runs for when it is enabled again. Such claims stay owned by the
/// stack and go with it. (A model claim of earlier versions is pruned: the model now comes from
/// its image.)
pub fn kept(stack: &FlashcardStack) -> Vec<String> {
    vec![
        claim_name(stack, Component::Backend),
        claim_name(stack, Component::Mlflow),
    ]
}

fn claim(stack: &FlashcardStack, component: Component, size: Quantity) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: metadata(stack, component, claim_name(stack, component)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), size)])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        builders::tests::stack,
        crd::{FlashcardStackSpec, LocalModelSpec, PostgresSpec, SecretKeyRef},
    };

    #[test]
    fn sqlite_gets_a_volume_postgres_and_models_do_not() {
        let names = |spec: FlashcardStackSpec| -> Vec<String> {
            claims(&stack(spec))
                .into_iter()
                .filter_map(|claim| claim.metadata.name)
                .collect()
        };
        assert_eq!(
            names(FlashcardStackSpec::default()),
            ["study-backend-data"],
            "SQLite; the default local model comes from its image"
        );
        let mut spec = FlashcardStackSpec::default();
        spec.backend.database.postgres = Some(PostgresSpec {
            secret_ref: SecretKeyRef {
                name: "db".into(),
                key: "uri".into(),
            },
        });
        spec.llm.local = Some(LocalModelSpec::default());
        assert!(names(spec).is_empty());
    }

    #[test]
    fn mlflow_gets_a_volume_when_enabled_which_is_kept_when_disabled() {
        let mut spec = FlashcardStackSpec::default();
        spec.llm.upstream = Some(crate::crd::UpstreamSpec {
            url: "http://ollama:11434".into(),
            model: None,
            api_key_secret_ref: None,
        });
        assert_eq!(claims(&stack(spec.clone())).len(), 1, "SQLite alone");
        assert_eq!(
            kept(&stack(spec.clone())),
            ["study-backend-data", "study-mlflow-data"],
            "user data outlives a spec change"
        );
        spec.mlflow.enabled = true;
        let with_mlflow = claims(&stack(spec.clone()));
        assert_eq!(
            with_mlflow[1].metadata.name.as_deref(),
            Some("study-mlflow-data")
        );
        let size = |claim: &PersistentVolumeClaim| {
            claim
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .map(|requests| requests["storage"].0.clone())
        };
        assert_eq!(size(&with_mlflow[1]).as_deref(), Some("1Gi"));
        spec.mlflow.storage = Some(Quantity("5Gi".into()));
        assert_eq!(size(&claims(&stack(spec))[1]).as_deref(), Some("5Gi"));
    }
}
