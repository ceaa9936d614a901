//! Ctrl-C handling. The children (cargo test, servers, wrk) share our process group, so the
//! terminal sends them SIGINT too and they stop on their own; xtask must outlive them to stop
//! PostgreSQL, wait for the children and remove its folders, instead of dying first.
//!
//! `up` and `mlflow` run their servers in process groups of their own ([`crate::supervise`]), which
//! no signal reaches but through xtask: there SIGTERM (`kill`, a service manager) and SIGHUP (the
//! terminal closed) are deferred like Ctrl-C, for xtask to stop the servers before it exits.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// From now on SIGINT no longer ends xtask; it only sets [`requested`].
pub fn defer_ctrl_c() -> Result<()> {
    defer(&[SignalKind::interrupt()])
}

/// From now on SIGINT, SIGTERM and SIGHUP no longer end xtask; they only set [`requested`].
pub fn defer_stop_signals() -> Result<()> {
    defer(&[
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ])
}

fn defer(kinds: &[SignalKind]) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal runtime")?;
    {
        let _context = runtime.enter();
        for &kind in kinds {
            // Registering replaces the signal's default action for the rest of the process's life.
            let mut signals = signal(kind).with_context(|| format!("listening for {kind:?}"))?;
            runtime.spawn(async move {
                while signals.recv().await.is_some() {
                    REQUESTED.store(true, Ordering::SeqCst);
                }
            });
        }
    }
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    Ok(())
}

/// Whether Ctrl-C was pressed (or, after [`defer_stop_signals`], SIGTERM or SIGHUP came) since
/// the signals were deferred.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Fails if a stop was [`requested`]: before a step that would start something or take long.
pub fn bail_if_requested() -> Result<()> {
    if requested() {
        bail!("stopped on request");
    }
    Ok(())
}
