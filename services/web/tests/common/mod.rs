//! What the web app's tests share: the real backend binary on a fresh SQLite file with this
//! crate's binary in front of it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use flashcards_bootstrap::testing::binary::Service;

pub const WEB: &str = env!("CARGO_BIN_EXE_flashcards-web");
pub const PASSWORD: &str = "correct horse battery";

/// The backend on a fresh SQLite file, and the web app in front of it.
pub struct Stack {
    pub web: Service,
    _backend: Service,
    _dir: tempfile::TempDir,
}

/// This crate's binary in front of the backend at `backend_url` (one that is down, for some tests).
pub fn web_before(backend_url: &str) -> Service {
    let mut command = Command::new(WEB);
    command.args(["--backend-url", backend_url]);
    Service::start(command)
}

impl Stack {
    pub fn start(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("flashcards-web-{name}-"))
            .tempdir()
            .unwrap();
        let backend = flashcards_e2e::workspace::binary("flashcards-backend").unwrap();
        let mut command = Command::new(backend);
        command.arg("--database-url").arg(format!(
            "sqlite://{}",
            dir.path().join("cards.db").display()
        ));
        let backend = Service::start(command);
        let web = web_before(&backend.url());
        Self {
            web,
            _backend: backend,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.web.url())
    }
}
