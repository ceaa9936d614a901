//! What the operator owns, as its watches see it: one watch per owned kind (selected by the label
//! every owned object carries), kept in memory. A reconcile reads the live objects from here and
//! sends requests only to change something, so an idle operator's requests do not grow with the
//! number of stacks or with resyncs; the same watches trigger the reconciles.

use std::{collections::BTreeMap, sync::Arc};

use futures::{StreamExt, stream::BoxStream};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store, store::WriterDropped},
        watcher,
    },
};

use crate::{
    apply::condense,
    builders::MANAGER,
    owned::{OwnedKind, Served},
};

/// A watch's events, for the controller to trigger the owners' reconciles from.
pub type Trigger = BoxStream<'static, Result<DynamicObject, watcher::Error>>;

/// The owned objects of every kind the cluster served when the watches began, their long strings
/// condensed.
#[derive(Default)]
pub struct Caches {
    served: Served,
    stores: BTreeMap<OwnedKind, Store<DynamicObject>>,
}

impl Caches {
    /// Starts nothing by itself: returns the caches and, per kind, the stream that fills its store
    /// as the controller polls it (objects in `namespace`, or in all).
    pub fn watch(
        client: &Client,
        namespace: Option<&str>,
        served: Served,
    ) -> (Self, Vec<(ApiResource, Trigger)>) {
        let config =
            watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
        let mut stores = BTreeMap::new();
        let mut triggers = Vec::new();
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
            let writer = reflector::store::Writer::new(resource.clone());
            stores.insert(kind, writer.as_reader());
            let trigger = watcher(api, config.clone())
                .default_backoff()
                // The field managers' bookkeeping is most of an object and never read here; long
                // strings are compared by digest (see `apply::condense`).
                .modify(|object: &mut DynamicObject| {
                    object.metadata.managed_fields = None;
                    condense(&mut object.data);
                })
                .reflect(writer)
                .touched_objects()
                .boxed();
            triggers.push((resource, trigger));
        }
        (Self { served, stores }, triggers)
    }

    /// The optional APIs the watches cover.
    pub fn served(&self) -> Served {
        self.served
    }

    /// Waits until every watch has listed its kind once.
    pub async fn ready(&self) -> Result<(), WriterDropped> {
        for store in self.stores.values() {
            store.wait_until_ready().await?;
        }
        Ok(())
    }

    /// The object `namespace/name` of `kind`, if the operator owns it.
    pub fn get(&self, kind: OwnedKind, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        let store = self.stores.get(&kind)?;
        store.get(&ObjectRef::new_with(name, kind.resource()).within(namespace))
    }

    /// Every cached object of `kind` in `namespace` that `keep` accepts.
    pub fn select(
        &self,
        kind: OwnedKind,
        namespace: &str,
        keep: impl Fn(&DynamicObject) -> bool,
    ) -> Vec<Arc<DynamicObject>> {
        self.stores.get(&kind).map_or_else(Vec::new, |store| {
            store.state_filter(|object| {
                object.namespace().as_deref() == Some(namespace) && keep(object)
            })
        })
    }
}
