//! Kubeconfig files for the components and the tests, and clients built from them.

use std::{fs, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

use crate::{Error, certs::CertKey};

/// Writes a kubeconfig that reaches `server` as the holder of `client`, trusting `ca` (PEM).
pub fn write(path: &Path, server: &str, ca: &str, client: &CertKey) -> Result<(), Error> {
    let user = json!({
        "client-certificate-data": STANDARD.encode(&client.cert),
        "client-key-data": STANDARD.encode(&client.key),
    });
    write_user(path, server, ca, user)
}

/// Writes a kubeconfig that reaches `server` with a bearer `token`, trusting `ca` (PEM).
pub fn write_token(path: &Path, server: &str, ca: &str, token: &str) -> Result<(), Error> {
    write_user(path, server, ca, json!({ "token": token }))
}

/// The kubeconfig is JSON, which is YAML too; the credentials are inline so the file stands alone.
fn write_user(path: &Path, server: &str, ca: &str, user: serde_json::Value) -> Result<(), Error> {
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "e2e",
            "cluster": {
                "server": server,
                "certificate-authority-data": STANDARD.encode(ca),
            },
        }],
        "users": [{
            "name": "e2e",
            "user": user,
        }],
        "contexts": [{
            "name": "e2e",
            "context": { "cluster": "e2e", "user": "e2e" },
        }],
        "current-context": "e2e",
    });
    fs::write(path, kubeconfig.to_string())
        .map_err(Error::io(format!("writing {}", path.display())))
}

/// A client for the kubeconfig at `path`.
pub async fn client(path: &Path) -> Result<Client, Error> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}
