//! The controller: for each FlashcardStack, apply what is desired and missing or changed (server-side
//! apply, one field manager), delete owned objects no longer desired, and write the status when it
//! changed. It reads the live objects from its watches' caches, never from the API, so its requests
//! are the changes it makes. Everything it decides comes from the pure modules; this is the I/O
//! around them.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use k8s_openapi::{api::apps::v1::Deployment, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
    },
};
use serde_json::json;

use crate::{
    apply::{condense, fingerprinted, needs_apply},
    builders::{Component, MANAGER, monitoring, object_name, stack_name},
    cache::Caches,
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
    #[error("the watches of the owned objects stopped")]
    WatchesStopped,
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
    /// The optional APIs discovery last found served; the watches follow it.
    served: tokio::sync::watch::Sender<Served>,
    /// The current watches' caches of the owned objects.
    caches: RwLock<Arc<Caches>>,
}

impl Context {
    pub fn new(client: Client, metrics: OperatorMetrics, reporter: Reporter) -> Arc<Self> {
        Arc::new(Self {
            client,
            metrics,
            reporter,
            failures: Mutex::default(),
            served: tokio::sync::watch::Sender::new(Served::default()),
            caches: RwLock::default(),
        })
    }
}

/// How often a settled stack is looked at again, from the caches: it sends no request unless
/// something must change. The watches trigger a reconcile on every change of what a stack owns.
pub const RESYNC: Duration = Duration::from_secs(300);

/// How many stacks are reconciled at once: enough to keep the apiserver busy, few enough that a
/// hundred stacks applied together do not all hold their desired objects in memory at the same
/// time.
pub const RECONCILE_CONCURRENCY: u16 = 8;

/// How often discovery asks whether the monitoring CRDs are served (installed after the
/// operator, say): three requests (ServiceMonitor's, AlertmanagerConfig's and GrafanaDashboard's
/// API groups), however many stacks there are.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

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
    let caches = ctx
        .caches
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    caches.ready().await.map_err(|_| Error::WatchesStopped)?;
    // What the watches cover; when discovery finds more, they are set up anew.
    let served = caches.served();
    if !stack.spec.paused {
        let wanted = desired(stack, served);
        let changed = apply_all(&ctx.client, &caches, &namespace, &wanted).await?;
        let pruned = prune(&ctx.client, &caches, &namespace, stack, &wanted).await?;
        if !changed.is_empty() || !pruned.is_empty() {
            publish(ctx, stack, &changed, &pruned).await;
        }
    }
    let observed = observe(&caches, &namespace, stack)?;
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

/// Which optional APIs the cluster serves now (discovery reads); where discovery fails (the
/// apiserver restarting, say) the answer `known` before stands, so the watches are not torn down
/// for nothing.
pub async fn served(client: &Client, known: Served) -> Served {
    Served {
        prometheus_operator: api_served(client, &monitoring::service_monitor_resource())
            .await
            .unwrap_or(known.prometheus_operator),
        alertmanager_config: api_served(client, &monitoring::alertmanager_config_resource())
            .await
            .unwrap_or(known.alertmanager_config),
        grafana_operator: api_served(client, &monitoring::grafana_dashboard_resource())
            .await
            .unwrap_or(known.grafana_operator),
    }
}

/// Whether the kind is served; `None` when discovery could not tell.
async fn api_served(client: &Client, resource: &ApiResource) -> Option<bool> {
    match client.list_api_group_resources(&resource.api_version).await {
        Ok(list) => Some(list.resources.iter().any(|r| r.kind == resource.kind)),
        Err(kube::Error::Api(status)) if status.is_not_found() => Some(false),
        Err(err) => {
            tracing::debug!(%err, api = %resource.api_version, "discovery");
            None
        }
    }
}

/// Applies each desired object that is missing or differs, kind by kind in [`OwnedKind::ALL`]'s
/// order; returns `Kind/name` of those applied.
async fn apply_all(
    client: &Client,
    caches: &Caches,
    namespace: &str,
    wanted: &Desired,
) -> Result<Vec<String>, Error> {
    let mut changed = Vec::new();
    for &kind in OwnedKind::ALL {
        if !caches.served().serves(kind) {
            continue;
        }
        let resource = kind.resource();
        let objects = wanted.of_kind(kind).map_err(|source| Error::Json {
            kind: resource.kind.clone(),
            source,
        })?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for object in &objects {
            let live = caches.get(kind, namespace, &object.name_any());
            ensure(
                &api,
                &resource,
                namespace,
                object,
                live.as_deref(),
                &mut changed,
            )
            .await?;
        }
    }
    Ok(changed)
}

async fn ensure(
    api: &Api<DynamicObject>,
    resource: &ApiResource,
    namespace: &str,
    desired: &DynamicObject,
    live: Option<&DynamicObject>,
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
    let json = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map_err(|source| Error::Json {
            kind: kind.clone(),
            source,
        })
    };
    let desired_value = fingerprinted(json(serde_json::to_value(desired))?);
    let live = live
        .map(|live| json(serde_json::to_value(live)))
        .transpose()?;
    // The cached live object's long strings are digests: the desired one's are compared so too.
    let mut compared = desired_value.clone();
    condense(&mut compared);
    if !needs_apply(&compared, live.as_ref()) {
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

/// Whether `object` is one this operator made for `stack`: its instance label and its owner.
fn owned_by(object: &impl Resource, stack: &FlashcardStack) -> bool {
    let instance = stack_name(stack);
    let labelled = object
        .meta()
        .labels
        .as_ref()
        .and_then(|labels| labels.get("app.kubernetes.io/instance"))
        .is_some_and(|label| *label == instance);
    let uid = stack.metadata.uid.as_deref();
    labelled
        && object
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
    caches: &Caches,
    namespace: &str,
    stack: &FlashcardStack,
    wanted: &Desired,
) -> Result<Vec<String>, Error> {
    let mut deleted = Vec::new();
    for &kind in OwnedKind::ALL.iter().rev() {
        if !caches.served().serves(kind) {
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
        let unwanted = caches.select(kind, namespace, |object| {
            owned_by(object, stack) && !keep.contains(&object.name_any())
        });
        for object in unwanted {
            let name = object.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                // Gone already: the cache had not seen the deletion yet.
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                removed => {
                    removed.map_err(|source| failed("deleting", &name, source))?;
                    deleted.push(format!("{}/{name}", resource.kind));
                }
            }
        }
    }
    Ok(deleted)
}

/// Ready and desired replicas of the Deployment of each component the stack runs.
fn observe(
    caches: &Caches,
    namespace: &str,
    stack: &FlashcardStack,
) -> Result<Vec<Observed>, Error> {
    let mut observed = Vec::new();
    for component in Component::enabled_in(stack) {
        let name = object_name(stack, component);
        let live = caches
            .get(OwnedKind::Deployment, namespace, &name)
            .map(|object| {
                serde_json::to_value(&*object).and_then(serde_json::from_value::<Deployment>)
            })
            .transpose()
            .map_err(|source| Error::Json {
                kind: "Deployment".to_owned(),
                source,
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
/// carries, and cached), so a hand edit or a deletion of any of them is put right at once. When
/// discovery finds an optional API come or go (monitoring CRDs installed after the operator), the
/// watches are set up anew.
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
    context
        .served
        .send_replace(served(&client, Served::default()).await);
    let discovery = {
        let (client, context) = (client.clone(), context.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DISCOVERY_INTERVAL).await;
                let known = *context.served.borrow();
                let now = served(&client, known).await;
                context.served.send_if_modified(|known| {
                    let changed = *known != now;
                    *known = now;
                    changed
                });
            }
        })
    };
    loop {
        let watching = *context.served.borrow();
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
        let (caches, triggers) = Caches::watch(&client, namespace, watching);
        *context
            .caches
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(caches);
        controller(&client, namespace, triggers)
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
    discovery.abort();
}

/// A controller of the stacks in `namespace` (or all), triggered by the owned objects' watches.
fn controller(
    client: &Client,
    namespace: Option<&str>,
    triggers: Vec<(ApiResource, crate::cache::Trigger)>,
) -> kube::runtime::Controller<FlashcardStack> {
    use kube::runtime::{Controller, controller::Config, watcher};

    let stacks = match namespace {
        Some(namespace) => Api::<FlashcardStack>::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    // A reconcile's own writes come back as a burst of events: one reconcile answers them all.
    let mut controller = Controller::new(stacks, watcher::Config::default()).with_config(
        Config::default()
            .debounce(Duration::from_millis(200))
            .concurrency(RECONCILE_CONCURRENCY),
    );
    for (resource, trigger) in triggers {
        controller = controller.owns_stream_with(trigger, resource);
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
