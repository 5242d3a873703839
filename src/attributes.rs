//! Envoy attributes rules may read by name (`xds.route_name`, `connection.mtls`, `source.principal`, …):
//! the documented list, how each name maps to Envoy's property path, and how Envoy encodes its value.
//!
//! [`ATTRIBUTES`] is the table docs/attributes.md shows (tests/identity.rs keeps the two equal). A name is resolved once,
//! at compile time, into a [`Property`]: the path handed to `get_property`, how to turn the bytes into text, and
//! the phase in which to fetch it. Each property a document reads becomes one slot, so a request fetches it at
//! most once, and only when a rule reaches it. Encodings were read from Envoy 1.40 (tests/e2e_identity.rs pins
//! them): strings as their bytes, booleans as one byte, integers as 8 bytes little-endian.

use crate::error::Phase;

/// How Envoy encodes an attribute's value, and so how it becomes text for rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes of a string.
    Text,
    /// One byte, 0 or 1: reads as `false` or `true`.
    Bool,
    /// A signed 64-bit integer, 8 bytes little-endian: reads as its decimal digits.
    Int,
    /// The request's dynamic metadata, a serialized `envoy.config.core.v3.Metadata`: reads as the claims of the
    /// token `jwt_authn` verified (see [`crate::claims`]).
    JwtClaims,
}

/// When Envoy has a value. Values of the request (and of the connection, the route, the node) are fetched
/// when the request arrives and kept for response rules; response values only exist in the response phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Available {
    /// From the request headers on; kept for response rules.
    Request,
    /// From the response headers on.
    Response,
}

/// One attribute rules may name.
#[derive(Debug)]
pub struct Attribute {
    /// The name rules write: in `match.attributes` and as `${name}`.
    pub name: &'static str,
    /// Envoy's property path.
    pub envoy: &'static [&'static str],
    pub encoding: Encoding,
    pub available: Available,
    /// What it holds, for the documentation.
    pub meaning: &'static str,
}

const fn attribute(
    name: &'static str,
    envoy: &'static [&'static str],
    encoding: Encoding,
    available: Available,
    meaning: &'static str,
) -> Attribute {
    Attribute { name, envoy, encoding, available, meaning }
}

use Available::{Request as REQ, Response as RESP};
use Encoding::{Bool, Int, Text};

/// Every attribute by name; docs/attributes.md has the same table (tests/identity.rs compares them).
pub const ATTRIBUTES: &[Attribute] = &[
    attribute("xds.route_name", &["xds", "route_name"], Text, REQ, "the name of the route Envoy chose"),
    attribute("xds.virtual_host_name", &["xds", "virtual_host_name"], Text, REQ, "the name of the chosen route's virtual host"),
    attribute("xds.cluster_name", &["xds", "cluster_name"], Text, REQ, "the cluster the chosen route sends to"),
    attribute("xds.filter_chain_name", &["xds", "filter_chain_name"], Text, REQ, "the name of the listener's filter chain the connection took"),
    attribute("xds.listener_direction", &["xds", "listener_direction"], Int, REQ, "the listener's traffic direction: 0 unspecified, 1 inbound, 2 outbound (Istio sets it)"),
    attribute("node.id", &["xds", "node", "id"], Text, REQ, "the proxy's node id (Istio: `sidecar~IP~POD.NAMESPACE~…`)"),
    attribute("node.cluster", &["xds", "node", "cluster"], Text, REQ, "the proxy's node cluster (Istio: `WORKLOAD.NAMESPACE`)"),
    attribute("plugin_name", &["plugin_name"], Text, REQ, "the filter's `config.name` (Istio: `NAMESPACE.NAME~istio-translated-wasmplugin`)"),
    attribute("request.id", &["request", "id"], Text, REQ, "the request's `x-request-id`, as Envoy made or kept it"),
    attribute("request.protocol", &["request", "protocol"], Text, REQ, "`HTTP/1.0`, `HTTP/1.1`, `HTTP/2` or `HTTP/3`"),
    attribute("connection.mtls", &["connection", "mtls"], Bool, REQ, "`true` when the client presented a certificate the listener verified, else `false`"),
    attribute("connection.requested_server_name", &["connection", "requested_server_name"], Text, REQ, "the TLS server name (SNI) the client asked for; needs the `tls_inspector` listener filter (Istio gateways and sidecars have it)"),
    attribute("connection.tls_version", &["connection", "tls_version"], Text, REQ, "`TLSv1.2`, `TLSv1.3`; absent without TLS"),
    attribute("connection.subject_peer_certificate", &["connection", "subject_peer_certificate"], Text, REQ, "the client certificate's subject, e.g. `CN=web`"),
    attribute("connection.uri_san_peer_certificate", &["connection", "uri_san_peer_certificate"], Text, REQ, "the client certificate's first URI SAN"),
    attribute("connection.dns_san_peer_certificate", &["connection", "dns_san_peer_certificate"], Text, REQ, "the client certificate's first DNS SAN"),
    attribute("connection.sha256_peer_certificate", &["connection", "sha256_peer_certificate"], Text, REQ, "the client certificate's SHA-256 fingerprint, hex"),
    attribute("connection.subject_local_certificate", &["connection", "subject_local_certificate"], Text, REQ, "the subject of the certificate the listener presented"),
    attribute("connection.dns_san_local_certificate", &["connection", "dns_san_local_certificate"], Text, REQ, "the first DNS SAN of the certificate the listener presented"),
    attribute("connection.id", &["connection", "id"], Int, REQ, "the downstream connection's number"),
    attribute("source.principal", &["connection", "uri_san_peer_certificate"], Text, REQ, "the caller's SPIFFE id, `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT` (the client certificate's URI SAN); absent without mTLS"),
    attribute("source.namespace", &["connection", "uri_san_peer_certificate"], Text, REQ, "the namespace in the caller's SPIFFE id"),
    attribute("source.service_account", &["connection", "uri_san_peer_certificate"], Text, REQ, "the service account in the caller's SPIFFE id"),
    attribute("source.trust_domain", &["connection", "uri_san_peer_certificate"], Text, REQ, "the trust domain of the caller's SPIFFE id"),
    attribute("source.address", &["source", "address"], Text, REQ, "the downstream peer, `IP:PORT` (Envoy's remote address, as `match.source` reads it)"),
    attribute("source.port", &["source", "port"], Int, REQ, "the downstream peer's port"),
    attribute("destination.address", &["destination", "address"], Text, REQ, "the address the connection reached, `IP:PORT`"),
    attribute("destination.port", &["destination", "port"], Int, REQ, "the port the connection reached"),
    attribute("response.code_details", &["response", "code_details"], Text, RESP, "why Envoy answered as it did: `via_upstream`, `direct_response`, `route_not_found` …"),
    attribute("upstream.address", &["upstream", "address"], Text, RESP, "the upstream host that answered, `IP:PORT`"),
];

/// `node.metadata.KEY`: a value of the proxy's node metadata (Istio: `NAMESPACE`, `CLUSTER_ID`, `LABELS.app`,
/// `WORKLOAD_NAME` …); `.` goes into nested maps. Strings only.
pub const NODE_METADATA: &str = "node.metadata.";

/// A part of a SPIFFE id (`spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpiffePart {
    TrustDomain,
    Namespace,
    ServiceAccount,
}

impl SpiffePart {
    /// This part of `id`, if `id` is a SPIFFE id in Istio's shape.
    pub fn of(self, id: &str) -> Option<&str> {
        let rest = id.strip_prefix("spiffe://")?;
        let (domain, path) = rest.split_once('/')?;
        let mut segments = path.split('/');
        let value = match (segments.next(), segments.next(), segments.next(), segments.next(), segments.next()) {
            (Some("ns"), Some(namespace), Some("sa"), Some(account), None) => match self {
                SpiffePart::TrustDomain => domain,
                SpiffePart::Namespace => namespace,
                SpiffePart::ServiceAccount => account,
            },
            _ => return None,
        };
        (!value.is_empty()).then_some(value)
    }
}

/// What a name resolves to: the property to fetch, and for the `source.*` identity parts, which part of the
/// SPIFFE id to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub property: Property,
    pub spiffe: Option<SpiffePart>,
}

/// A value fetched from Envoy with `get_property`: one slot per distinct property a document reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Envoy's property path in the form `get_property` takes, its parts separated by NUL
    /// (`xds\0route_name`): made once when the document compiles, handed to the host as it is.
    pub path: Box<str>,
    pub encoding: Encoding,
    pub available: Available,
}

impl Property {
    /// The request's dynamic metadata, where `jwt_authn` leaves the verified token's claims.
    pub fn jwt_claims() -> Self {
        Property { path: "metadata".into(), encoding: Encoding::JwtClaims, available: Available::Request }
    }

    /// The phase whose callback fetches it.
    pub fn phase(&self) -> Phase {
        match self.available {
            Available::Request => Phase::Request,
            Available::Response => Phase::Response,
        }
    }

    /// The path as Envoy's attribute name, `connection.mtls`, for traces.
    pub fn dotted(&self) -> String {
        self.path.replace('\0', ".")
    }
}

/// Resolves an attribute name; the error says why and suggests the nearest known name.
pub fn resolve(name: &str) -> Result<Resolved, String> {
    if let Some(key) = name.strip_prefix(NODE_METADATA) {
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!("`{name}`: name a node metadata key, e.g. `node.metadata.NAMESPACE`"));
        }
        let path =
            crate::join::join(&["xds", "node", "metadata"].into_iter().chain(key.split('.')).collect::<Vec<_>>(), "\0")
                .into();
        let property = Property { path, encoding: Encoding::Text, available: Available::Request };
        return Ok(Resolved { property, spiffe: None });
    }
    let Some(known) = ATTRIBUTES.iter().find(|a| a.name == name) else {
        return Err(unknown(name));
    };
    let spiffe = match known.name {
        "source.namespace" => Some(SpiffePart::Namespace),
        "source.service_account" => Some(SpiffePart::ServiceAccount),
        "source.trust_domain" => Some(SpiffePart::TrustDomain),
        _ => None,
    };
    let path = crate::join::join(known.envoy, "\0").into();
    Ok(Resolved { property: Property { path, encoding: known.encoding, available: known.available }, spiffe })
}

/// Whether `name` is meant as an attribute: its first part is one of the attribute families. Template
/// references use it to tell a misspelt attribute from an unknown reference.
pub fn is_attribute_family(name: &str) -> bool {
    let head = name.split('.').next().unwrap_or_default();
    ATTRIBUTES.iter().any(|a| a.name.split('.').next() == Some(head))
}

/// What people call some attributes, for suggestions that spelling alone would not find.
const ALSO_KNOWN_AS: &[(&str, &str)] = &[
    ("sni", "connection.requested_server_name"),
    ("server_name", "connection.requested_server_name"),
    ("route", "xds.route_name"),
    ("cluster", "xds.cluster_name"),
    ("virtual_host", "xds.virtual_host_name"),
    ("spiffe", "source.principal"),
    ("san", "connection.uri_san_peer_certificate"),
];

fn unknown(name: &str) -> String {
    let last = name.rsplit('.').next().unwrap_or_default();
    if let Some((_, known)) = ALSO_KNOWN_AS.iter().find(|(alias, _)| *alias == last) {
        return format!("unknown attribute `{name}`; did you mean `{known}`?");
    }
    let nearest = ATTRIBUTES
        .iter()
        .map(|a| a.name)
        .chain(["node.metadata.KEY"])
        .map(|known| (edit_distance(name, known), known))
        .min_by_key(|(distance, _)| *distance);
    let mut message = format!("unknown attribute `{name}`");
    match nearest {
        Some((distance, known)) if distance <= name.len().max(known.len()) / 3 + 1 => {
            message.push_str(&format!("; did you mean `{known}`?"));
        }
        _ => message.push_str("; see docs/attributes.md for the list"),
    }
    message
}

/// Levenshtein distance, on bytes (names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.bytes().enumerate() {
            let substitute = previous.get(j).copied().unwrap_or(usize::MAX).saturating_add(usize::from(ca != cb));
            let delete = previous.get(j + 1).copied().unwrap_or(usize::MAX).saturating_add(1);
            let insert = current.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or_default()
}

/// The text rules see for a property's bytes; `None` when the bytes are not what the encoding promises.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Option<String> {
    match encoding {
        Encoding::Text => Some(String::from_utf8_lossy(bytes).into_owned()),
        Encoding::Bool => match bytes {
            [0] => Some("false".to_owned()),
            [1] => Some("true".to_owned()),
            _ => None,
        },
        Encoding::Int => {
            let raw: [u8; 8] = bytes.try_into().ok()?;
            Some(i64::from_le_bytes(raw).to_string())
        }
        Encoding::JwtClaims => crate::claims::from_metadata(bytes),
    }
}

/// The bytes Envoy would hand over for `text` (the simulated proxy's side of [`decode`]); `None` when the
/// text is no value of that encoding.
pub fn encode(text: &str, encoding: Encoding) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Text => Some(text.as_bytes().to_vec()),
        Encoding::Bool => match text {
            "true" => Some(vec![1]),
            "false" => Some(vec![0]),
            _ => None,
        },
        Encoding::Int => text.parse::<i64>().ok().map(|n| n.to_le_bytes().to_vec()),
        Encoding::JwtClaims => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_envoy_paths() {
        let route = resolve("xds.route_name").unwrap();
        assert_eq!(route.property.dotted(), "xds.route_name");
        let namespace = resolve("node.metadata.LABELS.app").unwrap();
        assert_eq!(namespace.property.dotted(), "xds.node.metadata.LABELS.app");
        assert_eq!(resolve("source.namespace").unwrap().spiffe, Some(SpiffePart::Namespace));
        assert_eq!(resolve("response.code_details").unwrap().property.phase(), Phase::Response);
    }

    #[test]
    fn unknown_names_suggest_the_nearest() {
        assert_eq!(resolve("xds.route").unwrap_err(), "unknown attribute `xds.route`; did you mean `xds.route_name`?");
        assert_eq!(
            resolve("connection.sni").unwrap_err(),
            "unknown attribute `connection.sni`; did you mean `connection.requested_server_name`?"
        );
        assert_eq!(
            resolve("weather.today").unwrap_err(),
            "unknown attribute `weather.today`; see docs/attributes.md for the list"
        );
        assert!(resolve("node.metadata.").is_err());
        assert!(resolve("node.metadata.a..b").is_err());
    }

    #[test]
    fn values_decode_as_envoy_encodes_them() {
        assert_eq!(decode(&[1], Encoding::Bool).as_deref(), Some("true"));
        assert_eq!(decode(&[0], Encoding::Bool).as_deref(), Some("false"));
        assert_eq!(decode(&[2], Encoding::Bool), None);
        assert_eq!(decode(&443i64.to_le_bytes(), Encoding::Int).as_deref(), Some("443"));
        assert_eq!(decode(&[1, 2], Encoding::Int), None);
        for (text, encoding) in [("true", Encoding::Bool), ("-7", Encoding::Int), ("route-api", Encoding::Text)] {
            assert_eq!(decode(&encode(text, encoding).unwrap(), encoding).as_deref(), Some(text));
        }
    }

    #[test]
    fn spiffe_parts() {
        let id = "spiffe://cluster.local/ns/prod/sa/web";
        assert_eq!(SpiffePart::Namespace.of(id), Some("prod"));
        assert_eq!(SpiffePart::ServiceAccount.of(id), Some("web"));
        assert_eq!(SpiffePart::TrustDomain.of(id), Some("cluster.local"));
        assert_eq!(SpiffePart::Namespace.of("spiffe://td/ns/prod"), None);
        assert_eq!(SpiffePart::Namespace.of("https://td/ns/prod/sa/web"), None);
        assert_eq!(SpiffePart::Namespace.of("spiffe://td/ns//sa/web"), None);
    }
}
