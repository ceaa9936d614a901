//! The flashcards operator: the `FlashcardStack` custom resource, pure builders of every object a
//! stack needs, and the controller that applies them, prunes what is no longer wanted and reports
//! status.

pub mod alerts;
pub mod apply;
pub mod builders;
pub mod cache;
pub mod controller;
pub mod crd;
pub mod dashboards;
pub mod desired;
pub mod leader;
pub mod metrics;
pub mod monitoring_files;
pub mod owned;
pub mod status;

pub use crd::{FlashcardStack, FlashcardStackSpec, FlashcardStackStatus};
