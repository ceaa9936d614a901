//! This workspace's own programs for the tests that run them as processes (the operator, the
//! services): where `cargo test --workspace` built them, and free ports to give them.

use std::{
    env, fs,
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

/// A free TCP port on 127.0.0.1 for a process to listen on later, below the kernel's ephemeral
/// range: a port the kernel picked (`bind` to port 0) is an ephemeral one, which any outgoing
/// connection may take as its own before the process binds it, and the control plane's
/// components make many (a scheduler once failed with "address already in use" that way). A
/// port below the range is only ever taken by an explicit bind; one is drawn at random, and
/// checked free by binding it.
pub fn free_port() -> Result<u16, Error> {
    let ephemeral_start = ephemeral_start();
    let low = 10_000;
    if ephemeral_start > low + 1_000 {
        for _ in 0..200 {
            let port = low + random_below(ephemeral_start - low);
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(port);
            }
        }
    }
    // No room below the range, or all tried were taken: let the kernel pick.
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(Error::io("reading the free port"))?
        .port())
}

/// The first port of the kernel's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_start() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A number below `bound` from the standard library's random hasher keys.
fn random_below(bound: u16) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let draw = RandomState::new().hash_one(std::process::id());
    u16::try_from(draw % u64::from(bound)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_bindable_and_outside_the_ephemeral_range() {
        let ephemeral_start = ephemeral_start();
        let ports: Vec<u16> = (0..20).map(|_| free_port().expect("a port")).collect();
        for port in &ports {
            assert!(*port < ephemeral_start, "{port}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, *port)).expect("still free");
        }
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert!(distinct.len() > 15, "drawn at random: {ports:?}");
    }
}
