//! The controller: for each FlashcardStack, apply what is desired and missing or changed (server-side
//! apply, one field manager), delete owned objects no longer desired, and write the status when it
//! changed. Everything it decides comes from the pure modules; this is the I/O around them.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use k8s_openapi::{api::apps::v1::Deployment, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
    },
};
use serde_json::json;

use crate::{
    apply::{fingerprinted, needs_apply},
    builders::{Component, MANAGER, monitoring, object_name, stack_name},
    crd::FlashcardStack,
    desired::{Desired, desired},
    metrics::OperatorMetrics,
    owned::{OwnedKind, Served},
    status::{self, Observed},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call about one object (or, with no name, one kind) failed.
    #[error("{action} {kind} {name} in {namespace}: {source}")]
    Object {
        action: &'static str,
        kind: String,
        name: String,
        namespace: String,
        source: Box<kube::Error>,
    },
    #[error("serialising the desired {kind} objects: {source}")]
    Json {
        kind: String,
        source: serde_json::Error,
    },
    #[error("the FlashcardStack has no namespace")]
    NoNamespace,
}

/// What a failed call was about, for [`Error::Object`].
struct About<'a> {
    action: &'static str,
    resource: &'a ApiResource,
    name: &'a str,
    namespace: &'a str,
}

impl About<'_> {
    fn error(&self, source: kube::Error) -> Error {
        Error::Object {
            action: self.action,
            kind: self.resource.kind.clone(),
            name: self.name.to_owned(),
            namespace: self.namespace.to_owned(),
            source: Box::new(source),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub metrics: OperatorMetrics,
    pub reporter: Reporter,
    /// Consecutive failures per stack, for the error backoff.
    failures: Mutex<HashMap<ObjectRef<FlashcardStack>, u32>>,
    /// The optional APIs the last reconcile found served; the watches follow it.
    served: tokio::sync::watch::Sender<Served>,
}

impl Context {
    pub fn new(client: Client, metrics: OperatorMetrics, reporter: Reporter) -> Arc<Self> {
        Arc::new(Self {
            client,
            metrics,
            reporter,
            failures: Mutex::default(),
            served: tokio::sync::watch::Sender::new(Served::default()),
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
    let served = served(&ctx.client).await;
    // Monitoring CRDs installed (or removed) since the watches began: they are set up anew.
    ctx.served
        .send_if_modified(|known| std::mem::replace(known, served) != served);
    if !stack.spec.paused {
        let wanted = desired(stack, served.prometheus_operator, served.grafana_operator);
        let changed = apply_all(&ctx.client, &namespace, &wanted, served).await?;
        let pruned = prune(&ctx.client, &namespace, stack, &wanted, served).await?;
        if !changed.is_empty() || !pruned.is_empty() {
            publish(ctx, stack, &changed, &pruned).await;
        }
    }
    let observed = observe(&ctx.client, &namespace, stack).await?;
    let now = Timestamp::now().to_string();
    let new_status = status::compute(stack, &observed, served.prometheus_operator, &now);
    if status::changed(stack.status.as_ref(), &new_status) {
        let api: Api<FlashcardStack> = Api::namespaced(ctx.client.clone(), &namespace);
        let name = stack.name_any();
        // Server-side apply of the status alone, under the same field manager as the objects.
        let patch = json!({
            "apiVersion": FlashcardStack::api_version(&()),
            "kind": FlashcardStack::kind(&()),
            "status": new_status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| {
            About {
                action: "writing the status of",
                resource: &ApiResource::erase::<FlashcardStack>(&()),
                name: &name,
                namespace: &namespace,
            }
            .error(source)
        })?;
    }
    Ok(Action::requeue(RESYNC))
}

/// Which optional APIs the cluster serves now (discovery reads): monitoring CRDs installed after
/// the operator started are noticed at the next resync.
pub async fn served(client: &Client) -> Served {
    Served {
        prometheus_operator: api_served(client, &monitoring::service_monitor_resource()).await,
        grafana_operator: api_served(client, &monitoring::grafana_dashboard_resource()).await,
    }
}

async fn api_served(client: &Client, resource: &ApiResource) -> bool {
    client
        .list_api_group_resources(&resource.api_version)
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.kind == resource.kind))
}

/// Applies each desired object that is missing or differs, kind by kind in [`OwnedKind::ALL`]'s
/// order; returns `Kind/name` of those applied.
async fn apply_all(
    client: &Client,
    namespace: &str,
    wanted: &Desired,
    served: Served,
) -> Result<Vec<String>, Error> {
    let mut changed = Vec::new();
    for &kind in OwnedKind::ALL {
        if !served.serves(kind) {
            continue;
        }
        let resource = kind.resource();
        let objects = wanted.of_kind(kind).map_err(|source| Error::Json {
            kind: resource.kind.clone(),
            source,
        })?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for object in &objects {
            ensure(&api, &resource, namespace, object, &mut changed).await?;
        }
    }
    Ok(changed)
}

async fn ensure(
    api: &Api<DynamicObject>,
    resource: &ApiResource,
    namespace: &str,
    desired: &DynamicObject,
    changed: &mut Vec<String>,
) -> Result<(), Error> {
    let kind = &resource.kind;
    let name = desired.name_any();
    let about = |action| About {
        action,
        resource,
        name: &name,
        namespace,
    };
    let live = api
        .get_opt(&name)
        .await
        .map_err(|source| about("reading").error(source))?;
    let json = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map_err(|source| Error::Json {
            kind: kind.clone(),
            source,
        })
    };
    let desired_value = fingerprinted(json(serde_json::to_value(desired))?);
    let live = live
        .map(|live| json(serde_json::to_value(&live)))
        .transpose()?;
    if !needs_apply(&desired_value, live.as_ref()) {
        return Ok(());
    }
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired_value),
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
            api.delete(&name, &DeleteParams::default())
                .await
                .map_err(|source| about("deleting").error(source))?;
            changed.push(format!("{kind}/{name} (deleted to be replaced)"));
        }
        applied => {
            applied.map_err(|source| about("applying").error(source))?;
            changed.push(format!("{kind}/{name}"));
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

/// Deletes owned objects that are no longer desired, kind by kind in the reverse of
/// [`OwnedKind::ALL`] (pods stop before what they use goes); returns `Kind/name` of those deleted.
/// Kinds whose API is not served are left alone.
async fn prune(
    client: &Client,
    namespace: &str,
    stack: &FlashcardStack,
    wanted: &Desired,
    served: Served,
) -> Result<Vec<String>, Error> {
    let mut deleted = Vec::new();
    for &kind in OwnedKind::ALL.iter().rev() {
        if !served.serves(kind) {
            continue;
        }
        let resource = kind.resource();
        let mut keep: BTreeSet<String> = wanted
            .of_kind(kind)
            .map_err(|source| Error::Json {
                kind: resource.kind.clone(),
                source,
            })?
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        keep.extend(wanted.kept(kind).iter().cloned());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let failed = |action, name: &str, source| {
            About {
                action,
                resource: &resource,
                name,
                namespace,
            }
            .error(source)
        };
        let owned = api
            .list(&ListParams::default().labels(&owned_selector(stack)))
            .await
            .map_err(|source| failed("listing", "(all owned)", source))?;
        for object in owned.items {
            let name = object.name_any();
            if owned_by(&object, stack) && !keep.contains(&name) {
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map_err(|source| failed("deleting", &name, source))?;
                deleted.push(format!("{}/{name}", resource.kind));
            }
        }
    }
    Ok(deleted)
}

/// Ready and desired replicas of the Deployment of each component the stack runs.
async fn observe(
    client: &Client,
    namespace: &str,
    stack: &FlashcardStack,
) -> Result<Vec<Observed>, Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut observed = Vec::new();
    let resource = ApiResource::erase::<Deployment>(&());
    for component in Component::enabled_in(stack) {
        let name = object_name(stack, component);
        let live = api.get_opt(&name).await.map_err(|source| {
            About {
                action: "reading",
                resource: &resource,
                name: &name,
                namespace,
            }
            .error(source)
        })?;
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

/// Runs the controller until `shutdown` completes: FlashcardStacks in `namespace` (or all), and
/// every kind they own of the APIs the cluster serves (found by the label every owned object
/// carries), so a hand edit or a deletion of any of them is put right at once. When a reconcile
/// finds an optional API come or go (monitoring CRDs installed after the operator), the watches
/// are set up anew.
pub async fn run(
    client: Client,
    namespace: Option<&str>,
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use futures::StreamExt;

    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    loop {
        let watching = served(&client).await;
        context.served.send_replace(watching);
        tracing::info!(
            prometheus_operator = watching.prometheus_operator,
            grafana_operator = watching.grafana_operator,
            "watching FlashcardStacks and what they own"
        );
        let mut stop = stopping.clone();
        let mut served_now = context.served.subscribe();
        let restart = async move {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => {}
                _ = served_now.wait_for(|now| *now != watching) => {
                    tracing::info!("the cluster's optional APIs changed: watching anew");
                }
            }
        };
        controller(&client, namespace, watching)
            .graceful_shutdown_on(restart)
            .run(reconcile, error_policy, context.clone())
            .for_each(|result| async move {
                if let Err(err) = result {
                    tracing::debug!(%err, "reconcile stream");
                }
            })
            .await;
        if *stopping.borrow() {
            break;
        }
    }
}

/// A controller of the stacks in `namespace` (or all) watching every owned kind `served` serves.
fn controller(
    client: &Client,
    namespace: Option<&str>,
    served: Served,
) -> kube::runtime::Controller<FlashcardStack> {
    use kube::runtime::{Controller, watcher};

    let stacks = match namespace {
        Some(namespace) => Api::<FlashcardStack>::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let mut controller = Controller::new(stacks, watcher::Config::default());
    for &kind in OwnedKind::ALL {
        if !served.serves(kind) {
            continue;
        }
        let resource = kind.resource();
        let api = match namespace {
            Some(namespace) => {
                Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
            }
            None => Api::all_with(client.clone(), &resource),
        };
        controller = controller.owns_with(api, resource, owned.clone());
    }
    controller
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
