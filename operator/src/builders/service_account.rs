//! One ServiceAccount per component, so each can be granted (and audited) separately; none of
//! them needs the Kubernetes API, and pods do not mount its token.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::{Component, metadata, object_name};
use crate::crd::FlashcardStack;

pub fn service_account(stack: &FlashcardStack, component: Component) -> ServiceAccount {
    ServiceAccount {
        metadata: metadata(stack, component, object_name(stack, component)),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builders::tests::stack, crd::FlashcardStackSpec};

    #[test]
    fn tokens_are_not_mounted() {
        let account = service_account(&stack(FlashcardStackSpec::default()), Component::Web);
        assert_eq!(account.metadata.name.as_deref(), Some("study-web"));
        assert_eq!(account.automount_service_account_token, Some(false));
        let mut spec = FlashcardStackSpec::default();
        spec.mlflow.enabled = true;
        let mlflow = service_account(&stack(spec), Component::Mlflow);
        assert_eq!(mlflow.metadata.name.as_deref(), Some("study-mlflow"));
        assert_eq!(mlflow.automount_service_account_token, Some(false));
    }
}
