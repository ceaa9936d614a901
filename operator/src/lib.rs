//! The flashcards operator: the `FlashcardStack` custom resource, pure builders of every object a
//! stack needs, and (in later work) the controller that applies them and reports status.

pub mod alerts;
pub mod apply;
pub mod builders;
pub mod controller;
pub mod crd;
pub mod dashboards;
pub mod desired;
pub mod leader;
pub mod metrics;
pub mod monitoring_files;
pub mod status;

pub use crd::{FlashcardStack, FlashcardStackSpec, FlashcardStackStatus};
