//! Administrators: the accounts whose emails the operator of the stack lists in `ADMIN_EMAILS`. No
//! roles in the database: who runs the stack decides, in its configuration, who may see it.

use std::{collections::BTreeSet, sync::Arc};

use axum::{extract::FromRequestParts, http::request::Parts};
use flashcards_bootstrap::ApiError;
use sqlx::Row;

use super::{CurrentUser, normalised};
use crate::{AppState, db::QueryResultExt};

/// The administrators' emails, compared as accounts are ([`normalised`]).
#[derive(Debug, Clone, Default)]
pub struct Admins(Arc<BTreeSet<String>>);

impl Admins {
    /// Empty entries (a trailing comma) are skipped.
    pub fn new<S: AsRef<str>>(emails: impl IntoIterator<Item = S>) -> Self {
        Self(Arc::new(
            emails
                .into_iter()
                .map(|email| normalised(email.as_ref()))
                .filter(|email| !email.is_empty())
                .collect(),
        ))
    }

    pub fn contains(&self, email: &str) -> bool {
        self.0.contains(&normalised(email))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A signed-in administrator; other users get 403, nobody signed in 401.
#[derive(Debug, Clone)]
pub struct Admin(pub CurrentUser);

fn not_admin() -> ApiError {
    ApiError::Forbidden("only the stack's administrators (ADMIN_EMAILS) may see this".to_owned())
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if state.admins.is_empty() {
            return Err(not_admin());
        }
        let email: String = sqlx::query("SELECT email FROM users WHERE id = $1")
            .bind(&user.id)
            .fetch_one(&state.db.read)
            .await
            .db("loading user")?
            .try_get(0)
            .db("reading user")?;
        if state.admins.contains(&email) {
            Ok(Self(user))
        } else {
            Err(not_admin())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_match_whatever_their_case_and_spacing() {
        let admins = Admins::new([" Ops@Example.org", "", "root@example.org "]);
        assert_eq!(admins.len(), 2);
        assert!(admins.contains("ops@example.org"));
        assert!(admins.contains("ROOT@example.org"));
        assert!(!admins.contains("ada@example.org"));
        assert!(Admins::default().is_empty());
    }
}
