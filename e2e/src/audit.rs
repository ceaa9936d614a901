//! Reading the control plane's audit log ([`crate::ControlPlane::audit_log_path`]): which
//! requests the operator sent, for the idle check and the scale benchmark.

use std::{collections::HashSet, fs, path::Path};

use crate::{Error, OPERATOR_USER};

/// One request as the audit log names it; `resource` is empty for discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: String,
    pub resource: String,
    pub name: String,
}

/// The requests of [`OPERATOR_USER`] logged after byte `from`, once each (a watch's events share
/// an audit ID).
pub fn operator_requests(audit_log: &Path, from: u64) -> Result<Vec<Request>, Error> {
    let audit =
        fs::read(audit_log).map_err(Error::io(format!("reading {}", audit_log.display())))?;
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(audit.len());
    let mut seen = HashSet::new();
    let mut requests = Vec::new();
    for line in String::from_utf8_lossy(&audit[start..]).lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .map_err(|err| Error::io("reading an audit event")(std::io::Error::other(err)))?;
        let id = event["auditID"].as_str().unwrap_or_default().to_owned();
        if event["user"]["username"] == OPERATOR_USER && seen.insert(id) {
            let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
            requests.push(Request {
                verb: text(&event["verb"]),
                resource: text(&event["objectRef"]["resource"]),
                name: text(&event["objectRef"]["name"]),
            });
        }
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_are_read_once_per_audit_id_and_only_the_operators() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(Error::io("a temporary folder"))?;
        let log = dir.path().join("audit.log");
        let line = |id: &str, user: &str, verb: &str, resource: Option<&str>| {
            let mut event = json!({"auditID": id, "user": {"username": user}, "verb": verb});
            if let Some(resource) = resource {
                event["objectRef"] = json!({"resource": resource, "name": "x"});
            }
            event.to_string()
        };
        let lines = [
            line("a", OPERATOR_USER, "watch", Some("deployments")),
            line("a", OPERATOR_USER, "watch", Some("deployments")),
            line("b", OPERATOR_USER, "update", Some("leases")),
            line("c", "admin", "get", Some("leases")),
            line("d", OPERATOR_USER, "get", None),
        ];
        fs::write(&log, lines.join("\n")).map_err(Error::io("writing the log"))?;
        let requests = operator_requests(&log, 0)?;
        let verbs: Vec<(&str, &str)> = requests
            .iter()
            .map(|request| (request.verb.as_str(), request.resource.as_str()))
            .collect();
        assert_eq!(
            verbs,
            [("watch", "deployments"), ("update", "leases"), ("get", "")]
        );
        Ok(())
    }
}
