//! This workspace's own programs for the tests that run them as processes (the operator, the
//! services): where `cargo test --workspace` built them, and free ports to give them.

use std::{
    env,
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
};

use crate::Error;

/// The binary `name` beside the running test's executable (`target/<profile>/deps/<test>` →
/// `target/<profile>/<name>`), where `cargo test --workspace` builds every binary of the
/// workspace's packages that have integration tests; `FLASHCARDS_E2E_BIN_<NAME>` (upper case,
/// `-` as `_`) points elsewhere.
pub fn binary(name: &str) -> Result<PathBuf, Error> {
    let var = format!(
        "FLASHCARDS_E2E_BIN_{}",
        name.to_uppercase().replace('-', "_")
    );
    if let Some(path) = env::var_os(&var) {
        return Ok(path.into());
    }
    let exe = env::current_exe().map_err(Error::io("locating the test executable"))?;
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .ok_or_else(|| Error::NotBuilt {
            name: name.to_owned(),
            path: exe.clone(),
        })?;
    if !path.is_file() {
        return Err(Error::NotBuilt {
            name: name.to_owned(),
            path,
        });
    }
    Ok(path)
}

/// A free TCP port on 127.0.0.1: the kernel picks one for a listener that we close at once.
/// Another process could take it before ours binds it, which is unlikely enough.
pub fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(Error::io("reading the free port"))?
        .port())
}
