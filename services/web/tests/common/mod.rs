//! What the web app's tests share: the real backend binary on a fresh SQLite file with this
//! crate's binary in front of it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use flashcards_bootstrap::testing::binary::Service;

pub const WEB: &str = env!("CARGO_BIN_EXE_flashcards-web");
pub const PASSWORD: &str = "correct horse battery";

/// The backend on a fresh SQLite file, and the web app in front of it; with [`Stack::start_full`]
/// also the OCR service and the LLM service.
pub struct Stack {
    pub web: Service,
    pub backend: Service,
    _services: Vec<Service>,
    pub dir: tempfile::TempDir,
}

/// The backend's upload limit in these tests, so that an oversized upload is quick to make.
pub const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;

/// This crate's binary in front of the backend at `backend_url` (one that is down, for some tests).
pub fn web_before(backend_url: &str) -> Service {
    let mut command = Command::new(WEB);
    command.args(["--backend-url", backend_url]);
    Service::start(command)
}

fn workspace_binary(name: &str) -> Command {
    Command::new(flashcards_e2e::workspace::binary(name).unwrap())
}

impl Stack {
    /// With no OCR or LLM service (their URLs refuse connections): uploads are stored but not
    /// read.
    pub fn start(name: &str) -> Self {
        let nothing = "http://127.0.0.1:9".to_owned();
        let urls = [
            "--ocr-url".to_owned(),
            nothing.clone(),
            "--llm-url".to_owned(),
            nothing,
        ];
        Self::start_with(name, Vec::new(), &urls)
    }

    /// With `email` an administrator (`ADMIN_EMAILS`), made with `flashcards-backend add-user` as
    /// whoever runs the stack makes one, with `password`.
    pub fn start_with_administrator(name: &str, email: &str, password: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("flashcards-web-{name}-"))
            .tempdir()
            .unwrap();
        let database = format!("sqlite://{}", dir.path().join("cards.db").display());
        let mut add_user = workspace_binary("flashcards-backend");
        let mut child = add_user
            .args(["add-user", "--email", email])
            .env("DATABASE_URL", &database)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        }
        assert!(child.wait().unwrap().success(), "add-user failed");
        let mut command = workspace_binary("flashcards-backend");
        command
            .arg("--database-url")
            .arg(&database)
            .env("ADMIN_EMAILS", email);
        let backend = Service::start(command);
        let web = web_before(&backend.url());
        Self {
            web,
            backend,
            _services: Vec::new(),
            dir,
        }
    }

    /// With the real OCR service and the LLM service in front of the test LLM (llama.cpp's
    /// server with SmolLM2, which `cargo xtask test` starts and names in FLASHCARDS_TEST_LLM_URL).
    pub fn start_full(name: &str) -> Self {
        let upstream = std::env::var("FLASHCARDS_TEST_LLM_URL").expect(
            "FLASHCARDS_TEST_LLM_URL is not set: run the tests with `cargo xtask test`, which \
             starts llama.cpp's server with SmolLM2",
        );
        let ocr = Service::start(workspace_binary("flashcards-ocr"));
        let mut llm = workspace_binary("flashcards-llm");
        llm.args(["--upstream-url", &upstream]);
        let llm = Service::start(llm);
        let urls = [
            "--ocr-url".to_owned(),
            ocr.url(),
            "--llm-url".to_owned(),
            llm.url(),
        ];
        Self::start_with(name, vec![ocr, llm], &urls)
    }

    fn start_with(name: &str, services: Vec<Service>, backend_args: &[String]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("flashcards-web-{name}-"))
            .tempdir()
            .unwrap();
        let mut command = workspace_binary("flashcards-backend");
        command
            .arg("--database-url")
            .arg(format!(
                "sqlite://{}",
                dir.path().join("cards.db").display()
            ))
            .arg("--max-upload-bytes")
            .arg(MAX_UPLOAD_BYTES.to_string())
            .args(backend_args);
        let backend = Service::start(command);
        let web = web_before(&backend.url());
        Self {
            web,
            backend,
            _services: services,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.web.url())
    }
}
