//! Pushing the layout with Debian's `skopeo`: daemonless, maintained by the containers project, and able to
//! copy an OCI layout to a registry byte for byte (`--preserve-digests`) and report the digest the registry
//! stored (`--digestfile`).

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long the registry gets to accept a connection before the push is called off.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long skopeo may take in all: a registry that accepts connections but never answers must not hang a
/// release script. A module of a few MB takes seconds.
const PUSH_TIMEOUT: &str = "5m";

/// Where an image goes: `host[:port]/repository[:tag]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host` or `host:port`, as written.
    pub registry: String,
    /// The rest: `repository[:tag]`.
    pub path: String,
}

impl Reference {
    /// Parses a push target. A leading `oci://` or `docker://` is accepted (a WasmPlugin url names images that
    /// way); a digest is not, since a registry names a pushed image by tag.
    pub fn parse(text: &str) -> Result<Reference, String> {
        let bare = text.strip_prefix("oci://").or_else(|| text.strip_prefix("docker://")).unwrap_or(text);
        if bare.contains('@') {
            return Err(format!("push to a tag (host:port/repo:tag), not to a digest: {text:?}"));
        }
        match bare.split_once('/') {
            Some((registry, path))
                if !path.is_empty()
                    && (registry.contains('.') || registry.contains(':') || registry == "localhost") =>
            {
                Ok(Reference { registry: registry.to_owned(), path: path.to_owned() })
            }
            _ => Err(format!(
                "--push takes host[:port]/repository[:tag] naming the registry, e.g. registry.example.com/platform/rulefilter:0.1.0, not {text:?}"
            )),
        }
    }

    /// `host:port`, with 443 when no port is written.
    fn address(&self) -> String {
        let has_port = self.registry.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()));
        if has_port {
            self.registry.clone()
        } else {
            format!("{}:443", self.registry)
        }
    }

    /// A registry on this machine, which talks plain HTTP and gets no certificate check.
    fn is_loopback(&self) -> bool {
        let host = self.registry.rsplit_once(':').map_or(self.registry.as_str(), |(host, _)| host);
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }

    pub fn full(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }
}

/// Fails with a clear message when nothing answers at the registry's address, before skopeo's longer one.
fn check_reachable(reference: &Reference) -> Result<(), String> {
    let address = reference.address();
    let down = |why: String| {
        format!("cannot reach the registry at {address} ({why}): is it running, and is {:?} right?", reference.full())
    };
    let addrs: Vec<_> = address.to_socket_addrs().map_err(|e| down(e.to_string()))?.collect();
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(down(last))
}

/// Copies the image skopeo reads as `source` (see [`Format::transport`](super::layout::Format::transport)) to
/// `reference` and returns the manifest digest the registry stored. `layout` is the image's folder; the
/// digest file is written beside it.
pub fn push(layout: &Path, source: &str, reference: &Reference, insecure: bool) -> Result<String, String> {
    check_reachable(reference)?;
    let digest_file = layout.with_extension("pushed-digest");
    let verify_tls = !(insecure || reference.is_loopback());
    let mut command = Command::new("skopeo");
    command
        .arg(format!("--command-timeout={PUSH_TIMEOUT}"))
        .arg("copy")
        .arg(format!("--dest-tls-verify={verify_tls}"))
        .arg("--preserve-digests")
        .arg("--digestfile")
        .arg(&digest_file)
        .arg(source)
        .arg(format!("docker://{}", reference.full()));
    let status = command.status().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            "skopeo is not installed; `apt-get install skopeo` (Debian/Ubuntu) provides it".to_owned()
        }
        _ => format!("cannot run skopeo: {e}"),
    })?;
    if !status.success() {
        return Err(format!("skopeo could not push to {} ({status}); its message is above", reference.full()));
    }
    let pushed = std::fs::read_to_string(&digest_file)
        .map_err(|e| format!("skopeo wrote no digest to {}: {e}", digest_file.display()))?;
    // Best effort: the digest is read, the file is only a courier.
    let _ = std::fs::remove_file(&digest_file);
    Ok(pushed.trim().to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_reference_names_its_registry() {
        let r = Reference::parse("oci://127.0.0.1:5000/platform/rulefilter:0.1.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.path, "platform/rulefilter:0.1.0");
        assert_eq!(r.address(), "127.0.0.1:5000");
        assert!(r.is_loopback());
        let r = Reference::parse("registry.example.com/rulefilter").unwrap();
        assert_eq!(r.address(), "registry.example.com:443");
        assert!(!r.is_loopback());
    }

    #[test]
    fn a_reference_without_a_registry_or_with_a_digest_is_refused() {
        assert!(Reference::parse("rulefilter:0.1.0").unwrap_err().contains("naming the registry"));
        assert!(Reference::parse("library/rulefilter").is_err());
        assert!(Reference::parse("r.example.com/x@sha256:00").unwrap_err().contains("not to a digest"));
    }
}
