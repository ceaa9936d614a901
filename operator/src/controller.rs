//! The controller: for each FlashcardStack, apply what is desired and missing or changed (server-side
//! apply, one field manager), delete owned objects no longer desired, and write the status when it
//! changed. Everything it decides comes from the pure modules; this is the I/O around them.

use std::{
    collections::{BTreeSet, HashMap},
    fmt::Debug,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    },
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::{
    apply::needs_apply,
    builders::{Component, MANAGER, monitoring, object_name, stack_name},
    crd::FlashcardStack,
    desired::{Desired, desired},
    metrics::OperatorMetrics,
    status::{self, Observed},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialising {0}")]
    Json(#[from] serde_json::Error),
    #[error("the FlashcardStack has no namespace")]
    NoNamespace,
    #[error("a dynamic object without apiVersion and kind")]
    NoType,
    #[error("{0}")]
    ApiVersion(#[from] kube::core::gvk::ParseGroupVersionError),
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub metrics: OperatorMetrics,
    pub reporter: Reporter,
    /// Consecutive failures per stack, for the error backoff.
    failures: Mutex<HashMap<ObjectRef<FlashcardStack>, u32>>,
}

impl Context {
    pub fn new(client: Client, metrics: OperatorMetrics, reporter: Reporter) -> Arc<Self> {
        Arc::new(Self {
            client,
            metrics,
            reporter,
            failures: Mutex::default(),
        })
    }
}

/// How often a settled stack is looked at again: it notices monitoring CRDs installed later.
/// Looking writes nothing.
pub const RESYNC: Duration = Duration::from_secs(30);

pub async fn reconcile(stack: Arc<FlashcardStack>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&stack, &ctx).await;
    ctx.metrics
        .reconciled(result.is_ok(), started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ObjectRef::from(stack.as_ref()));
    }
    result
}

/// Retry after 1 s, doubling per consecutive failure up to 5 minutes.
pub fn error_policy(stack: Arc<FlashcardStack>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
    let count = failures.entry(ObjectRef::from(stack.as_ref())).or_insert(0);
    *count = count.saturating_add(1);
    let delay = backoff(*count);
    tracing::warn!(stack = %stack.name_any(), %error, ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// 1 s × 2^(failures − 1), at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}

async fn reconcile_inner(stack: &FlashcardStack, ctx: &Context) -> Result<Action, Error> {
    let namespace = stack.namespace().ok_or(Error::NoNamespace)?;
    let monitoring_crds = monitoring_crds_present(&ctx.client).await;
    if !stack.spec.paused {
        let grafana_api = grafana_api_present(&ctx.client).await;
        let wanted = desired(stack, monitoring_crds, grafana_api);
        let changed = apply_all(&ctx.client, &namespace, &wanted).await?;
        let pruned = prune(
            &ctx.client,
            &namespace,
            stack,
            &wanted,
            monitoring_crds,
            grafana_api,
        )
        .await?;
        if !changed.is_empty() || !pruned.is_empty() {
            publish(ctx, stack, &changed, &pruned).await;
        }
    }
    let observed = observe(&ctx.client, &namespace, stack).await?;
    let now = Timestamp::now().to_string();
    let new_status = status::compute(stack, &observed, monitoring_crds, &now);
    if status::changed(stack.status.as_ref(), &new_status) {
        let api: Api<FlashcardStack> = Api::namespaced(ctx.client.clone(), &namespace);
        api.patch_status(
            &stack.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": new_status})),
        )
        .await?;
    }
    Ok(Action::requeue(RESYNC))
}

/// Whether the Prometheus Operator's API group is served (a discovery read).
async fn monitoring_crds_present(client: &Client) -> bool {
    client
        .list_api_group_resources("monitoring.coreos.com/v1")
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.kind == "ServiceMonitor"))
}

/// Whether the grafana-operator's API is served (a discovery read).
async fn grafana_api_present(client: &Client) -> bool {
    let resource = monitoring::grafana_dashboard_resource();
    client
        .list_api_group_resources(&resource.api_version)
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.kind == resource.kind))
}

/// Applies each desired object that is missing or differs; returns `Kind/name` of those applied.
async fn apply_all(
    client: &Client,
    namespace: &str,
    wanted: &Desired,
) -> Result<Vec<String>, Error> {
    let mut changed = Vec::new();
    for object in &wanted.service_accounts {
        ensure(client, namespace, object, &mut changed).await?;
    }
    for object in &wanted.claims {
        ensure(client, namespace, object, &mut changed).await?;
    }
    for object in &wanted.deployments {
        ensure(client, namespace, object, &mut changed).await?;
    }
    for object in &wanted.services {
        ensure(client, namespace, object, &mut changed).await?;
    }
    for object in &wanted.budgets {
        ensure(client, namespace, object, &mut changed).await?;
    }
    for object in &wanted.network_policies {
        ensure(client, namespace, object, &mut changed).await?;
    }
    for object in &wanted.dashboards {
        ensure(client, namespace, object, &mut changed).await?;
    }
    for object in wanted.monitoring.iter().chain(&wanted.grafana_dashboards) {
        ensure_dynamic(client, namespace, object, &mut changed).await?;
    }
    Ok(changed)
}

async fn ensure<K>(
    client: &Client,
    namespace: &str,
    desired: &K,
    changed: &mut Vec<String>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = desired.name_any();
    let live = api.get_opt(&name).await?;
    let live = live.map(|live| serde_json::to_value(&live)).transpose()?;
    if needs_apply(&serde_json::to_value(desired)?, live.as_ref()) {
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(desired),
        )
        .await?;
        changed.push(format!("{}/{name}", K::kind(&())));
    }
    Ok(())
}

async fn ensure_dynamic(
    client: &Client,
    namespace: &str,
    desired: &DynamicObject,
    changed: &mut Vec<String>,
) -> Result<(), Error> {
    let types = desired.types.as_ref().ok_or(Error::NoType)?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::try_from(types)?);
    let kind = &resource.kind;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let name = desired.name_any();
    let live = api.get_opt(&name).await?;
    let live = live.map(|live| serde_json::to_value(&live)).transpose()?;
    if needs_apply(&serde_json::to_value(desired)?, live.as_ref()) {
        let applied = api
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(desired),
            )
            .await;
        match applied {
            // The grafana-operator refuses a changed instanceSelector: delete the dashboard, and a
            // later reconcile creates it anew once the grafana-operator has let it go.
            Err(kube::Error::Api(status))
                if status.is_invalid()
                    && live.is_some()
                    && resource.group == monitoring::GRAFANA_GROUP =>
            {
                api.delete(&name, &DeleteParams::default()).await?;
                changed.push(format!("{kind}/{name} (deleted to be replaced)"));
            }
            applied => {
                applied?;
                changed.push(format!("{kind}/{name}"));
            }
        }
    }
    Ok(())
}

/// The label selector of everything this operator made for `stack`.
fn owned_selector(stack: &FlashcardStack) -> String {
    format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGER}",
        stack_name(stack)
    )
}

fn owned_by(object: &impl Resource, stack: &FlashcardStack) -> bool {
    let uid = stack.metadata.uid.as_deref();
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|owner| Some(owner.uid.as_str()) == uid)
}

/// Deletes owned objects that are no longer desired; returns `Kind/name` of those deleted. Kinds
/// whose API is not served (`monitoring_crds`, `grafana_api`) are left alone.
async fn prune(
    client: &Client,
    namespace: &str,
    stack: &FlashcardStack,
    wanted: &Desired,
    monitoring_crds: bool,
    grafana_api: bool,
) -> Result<Vec<String>, Error> {
    let mut pruning = Pruning {
        client,
        namespace,
        stack,
        deleted: Vec::new(),
    };
    // Deployments first, so that pods stop before what they use goes.
    pruning
        .typed::<Deployment>(names(&wanted.deployments))
        .await?;
    pruning.typed::<Service>(names(&wanted.services)).await?;
    pruning
        .typed::<NetworkPolicy>(names(&wanted.network_policies))
        .await?;
    pruning
        .typed::<ServiceAccount>(names(&wanted.service_accounts))
        .await?;
    pruning
        .typed::<PodDisruptionBudget>(names(&wanted.budgets))
        .await?;
    let mut claims = names(&wanted.claims);
    claims.extend(wanted.kept_claims.iter().cloned());
    pruning.typed::<PersistentVolumeClaim>(claims).await?;
    pruning
        .typed::<ConfigMap>(names(&wanted.dashboards))
        .await?;
    let dynamic = [
        (monitoring_crds, monitoring::service_monitor_resource()),
        (monitoring_crds, monitoring::prometheus_rule_resource()),
        (grafana_api, monitoring::grafana_dashboard_resource()),
    ];
    for (served, resource) in dynamic {
        if !served {
            continue;
        }
        let wanted: BTreeSet<String> = wanted
            .monitoring
            .iter()
            .chain(&wanted.grafana_dashboards)
            .filter(|object| {
                object
                    .types
                    .as_ref()
                    .is_some_and(|types| types.kind == resource.kind)
            })
            .map(ResourceExt::name_any)
            .collect();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        pruning.unwanted(&api, &resource.kind, &wanted).await?;
    }
    Ok(pruning.deleted)
}

fn names<K: Resource>(objects: &[K]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|object| object.meta().name.clone())
        .collect()
}

/// One stack's pruning: what it has deleted so far.
struct Pruning<'a> {
    client: &'a Client,
    namespace: &'a str,
    stack: &'a FlashcardStack,
    deleted: Vec<String>,
}

impl Pruning<'_> {
    /// Deletes the owned objects of kind `K` not named in `wanted`.
    async fn typed<K>(&mut self, wanted: BTreeSet<String>) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + DeserializeOwned,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        self.unwanted(&api, &K::kind(&()), &wanted).await
    }

    /// Deletes the objects `api` lists that the stack owns and `wanted` does not name.
    async fn unwanted<K>(
        &mut self,
        api: &Api<K>,
        kind: &str,
        wanted: &BTreeSet<String>,
    ) -> Result<(), Error>
    where
        K: Resource + Clone + Debug + DeserializeOwned,
    {
        let list = api
            .list(&ListParams::default().labels(&owned_selector(self.stack)))
            .await?;
        for object in list.items {
            let name = object.name_any();
            if owned_by(&object, self.stack) && !wanted.contains(&name) {
                api.delete(&name, &DeleteParams::default()).await?;
                self.deleted.push(format!("{kind}/{name}"));
            }
        }
        Ok(())
    }
}

/// Ready and desired replicas of the Deployment of each component the stack runs.
async fn observe(
    client: &Client,
    namespace: &str,
    stack: &FlashcardStack,
) -> Result<Vec<Observed>, Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut observed = Vec::new();
    for component in Component::enabled_in(stack) {
        let live = api.get_opt(&object_name(stack, component)).await?;
        observed.push(Observed::of(
            component,
            component.replicas(stack),
            live.as_ref(),
        ));
    }
    Ok(observed)
}

async fn publish(ctx: &Context, stack: &FlashcardStack, changed: &[String], pruned: &[String]) {
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let mut note = String::new();
    if !changed.is_empty() {
        note.push_str(&format!("applied {}", changed.join(", ")));
    }
    if !pruned.is_empty() {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!("deleted {}", pruned.join(", ")));
    }
    let event = Event {
        type_: EventType::Normal,
        reason: "Reconciled".to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Apply".to_owned(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &stack.object_ref(&())).await {
        tracing::warn!(%err, "publishing an event");
    }
}

/// Runs the controller until `shutdown` completes: FlashcardStacks in `namespace` (or all), and the
/// objects they own (found by the label every owned object carries).
pub async fn run(
    client: Client,
    namespace: Option<&str>,
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    use futures::StreamExt;
    use kube::runtime::{Controller, watcher};

    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        }
    }
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    Controller::new(
        api::<FlashcardStack>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<Deployment>(&client, namespace), owned.clone())
    .owns(api::<Service>(&client, namespace), owned.clone())
    .owns(api::<ServiceAccount>(&client, namespace), owned.clone())
    .owns(
        api::<PersistentVolumeClaim>(&client, namespace),
        owned.clone(),
    )
    .owns(api::<ConfigMap>(&client, namespace), owned.clone())
    .owns(api::<NetworkPolicy>(&client, namespace), owned.clone())
    .owns(api::<PodDisruptionBudget>(&client, namespace), owned)
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, context)
    .for_each(|result| async move {
        if let Err(err) = result {
            tracing::debug!(%err, "reconcile stream");
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(40), Duration::from_secs(300));
    }
}
