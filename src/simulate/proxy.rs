//! The Envoy the simulated proxy stands for: the listener, routes and node of the e2e suite's Envoy
//! (`crate::local::envoy`), as Envoy's attributes describe them, so a case reads the same `xds.route_name` or
//! `node.metadata.NAMESPACE` offline as through Envoy. The connection is plain HTTP/1.1 from the request's
//! source unless the request gives other attribute values.

use super::{first, Request};
use crate::attributes;

/// Envoy property paths (dotted) and their bytes, as Envoy 1.40 encodes them.
pub(super) fn attributes(request: &Request, headers: &[(String, String)], source: &str) -> Vec<(String, Vec<u8>)> {
    let (virtual_host, route, cluster) = route(request, headers);
    let text = |path: &str, value: &str| (path.to_owned(), value.as_bytes().to_vec());
    let int = |path: &str, value: i64| (path.to_owned(), value.to_le_bytes().to_vec());
    let mut values = vec![
        text("xds.route_name", route),
        text("xds.virtual_host_name", virtual_host),
        text("xds.cluster_name", cluster),
        int("xds.listener_direction", 0),
        text("xds.node.id", "sidecar~127.0.0.1~rulefilter-e2e.default~default.svc.cluster.local"),
        text("xds.node.cluster", "rulefilter-e2e.default"),
        text("xds.node.metadata.NAMESPACE", "default"),
        text("xds.node.metadata.CLUSTER_ID", "Kubernetes"),
        text("xds.node.metadata.LABELS.app", "rulefilter-e2e"),
        text("request.protocol", "HTTP/1.1"),
        ("connection.mtls".to_owned(), vec![0]),
        text("source.address", source),
    ];
    if let Some(id) = first(headers, "x-request-id") {
        values.push(text("request.id", id));
    }
    if let Some(port) = source.rsplit_once(':').and_then(|(_, port)| port.parse::<i64>().ok()) {
        values.push(int("source.port", port));
    }
    for (name, value) in &request.attributes {
        let Ok(resolved) = attributes::resolve(name) else { continue };
        let Some(bytes) = attributes::encode(value, resolved.property.encoding) else { continue };
        let path = resolved.property.dotted();
        values.retain(|(known, _)| *known != path);
        values.push((path, bytes));
    }
    values
}

/// The virtual host, route and cluster the e2e Envoy's route table picks for the request as it arrives.
fn route(request: &Request, headers: &[(String, String)]) -> (&'static str, &'static str, &'static str) {
    let path = request.path.split('?').next().unwrap_or_default();
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let host = request.authority.split(':').next().unwrap_or_default();
    if host.eq_ignore_ascii_case("second.internal") {
        ("second", "second-host", "second")
    } else if first(headers, "x-route-to") == Some("second") {
        ("all", "second-header", "second")
    } else if under("/second") {
        ("all", "second-path", "second")
    } else if under("/api") {
        ("all", "api", "upstream")
    } else {
        ("all", "default", "upstream")
    }
}
