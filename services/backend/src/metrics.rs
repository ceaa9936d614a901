//! The backend's own metrics, with the monitoring guide's names.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::alerts::AlertStatus;

/// What `flashcard_operations_total{operation}` counts: card create/read/update/delete (a list read
/// is one read) and reviews of study items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Read,
    Update,
    Delete,
    Review,
}

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Review => "review",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AlertLabels {
    status: &'static str,
}

#[derive(Clone, Default)]
pub struct BackendMetrics {
    operations: Family<OperationLabels, Counter>,
    sessions_active: Gauge,
    alerts_received: Family<AlertLabels, Counter>,
}

impl BackendMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "flashcard_operations",
            "Operations on flashcards by kind of operation",
            metrics.operations.clone(),
        );
        registry.register(
            "user_sessions_active",
            "Login sessions that have not expired or been logged out",
            metrics.sessions_active.clone(),
        );
        registry.register(
            "flashcards_alerts_received",
            "Alerts received in Alertmanager's webhook notifications, by their status",
            metrics.alerts_received.clone(),
        );
        // Both series exist from the start, so a rate over them is 0 rather than absent.
        for status in [AlertStatus::Firing, AlertStatus::Resolved] {
            drop(metrics.alerts_received.get_or_create(&AlertLabels {
                status: status.as_str(),
            }));
        }
        metrics
    }

    pub fn operation(&self, operation: Operation) {
        self.operations
            .get_or_create(&OperationLabels {
                operation: operation.label(),
            })
            .inc();
    }

    pub fn set_sessions_active(&self, count: i64) {
        self.sessions_active.set(count);
    }

    /// One alert of a stored webhook notification.
    pub fn alert_received(&self, status: AlertStatus) {
        self.alerts_received
            .get_or_create(&AlertLabels {
                status: status.as_str(),
            })
            .inc();
    }
}
