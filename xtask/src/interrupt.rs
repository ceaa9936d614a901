//! Ctrl-C handling. The children (cargo test, servers, wrk) share our process group, so the
//! terminal sends them SIGINT too and they stop on their own; xtask must outlive them to stop
//! PostgreSQL, wait for the children and remove its folders, instead of dying first.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// From now on SIGINT no longer ends xtask; it only sets [`requested`].
pub fn defer_ctrl_c() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal runtime")?;
    // Registering replaces SIGINT's default action for the rest of the process's life.
    let mut sigint = {
        let _context = runtime.enter();
        signal(SignalKind::interrupt()).context("listening for SIGINT")?
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            while sigint.recv().await.is_some() {
                REQUESTED.store(true, Ordering::SeqCst);
            }
        });
    });
    Ok(())
}

/// Whether Ctrl-C was pressed since [`defer_ctrl_c`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
