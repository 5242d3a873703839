//! How the filter's header edits reach a real Envoy (1.40, V8): each edit is one host call as the rule makes
//! it, and a header the phase's map does not hold is set by `proxy_add_header_map_value` (cheaper for Envoy
//! than a replace, which first looks for the old values). Many edits in both phases, and what they must keep:
//! pseudo-headers (`:method`, `:path`, `:authority`, `:status`), repeated headers in order (`set-cookie`,
//! a request header), the body's length, routing on a rewritten path, a local reply with a request rule's
//! response headers, the debug header; over HTTP/1.1 and HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use support::http2::{self, H2Upstream};
use support::{echo_named, options, options_for, start, ClientRequest, Echoed, Plugin};

/// Sixteen `name-i: value-i` pairs, for a flow mapping.
fn sixteen(name: &str, value: &str) -> String {
    (0..16).map(|i| format!("{name}-{i}: {value}-{i}")).collect::<Vec<_>>().join(", ")
}

fn document() -> String {
    format!(
        r#"
debug_header: x-rules-matched
request:
  - name: refused
    match: {{path: /refused}}
    actions:
      - request_headers: {{set: {{{request}}}}}
      - response_headers: {{set: {{{reply}}}, add: {{set-cookie: "r=1; Path=/"}}}}
      - respond: {{status: 403, content_type: text/plain, body: "refused\n"}}
  - name: many-edits
    match: {{path: {{prefix: /batch/}}}}
    actions:
      - request_headers: {{set: {{{request}}}, add: {{x-multi: from-filter}}, remove: [x-drop]}}
      - rewrite: {{path_prefix: {{from: /batch/, to: /second/}}}}
response:
  - name: many-response-edits
    actions:
      - response_headers: {{set: {{{response}}}, add: {{set-cookie: "c=3; Path=/"}}, remove: [x-upstream]}}
"#,
        request = sixteen("x-req", "value"),
        reply = sixteen("x-reply", "value"),
        response = sixteen("x-resp", "value"),
    )
}

fn plugin(name: &str) -> Plugin {
    let document: serde_yaml::Value = serde_yaml::from_str(&document()).unwrap();
    Plugin::new(name, Some(support::document_json(&document)))
}

fn has_sixteen(values: impl Fn(&str) -> Vec<String>, name: &str) {
    for i in 0..16 {
        assert_eq!(values(&format!("{name}-{i}")), [format!("value-{i}")], "{name}-{i}");
    }
}

#[test]
fn many_edits_keep_pseudo_headers_repeats_lengths_and_routing_over_http1() {
    // The routes send paths under /second/ to the second upstream: the rewrite must re-route.
    let first = echo_named("first");
    let second = echo_named("second");
    let envoy = start(options(plugin("batched"), &first).second_upstream(second.addr));

    let response = ClientRequest::new("POST", "/batch/page?x=1")
        .host("shop.example.com")
        .header("x-multi", "one")
        .header("x-multi", "two")
        .header("x-drop", "gone")
        .header("x-echo-header", "set-cookie: a=1; Path=/")
        .header("x-echo-header", "set-cookie: b=2; Path=/")
        .body(b"hello")
        .send(envoy.listener);
    assert_eq!(response.status, 200, "{response:?}");
    assert!(first.seen_paths().is_empty(), "the rewritten request went to the first upstream");
    let echoed = response.echoed();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/second/page?x=1");
    assert_eq!(echoed["body"], "hello");
    assert_eq!(second.received()[0].header("host"), Some("shop.example.com"));
    assert_eq!(response.upstream_header_values("content-length"), ["5"]);
    assert_eq!(response.upstream_header_values("x-multi"), ["one", "two", "from-filter"]);
    assert!(response.upstream_header_values("x-drop").is_empty());
    has_sixteen(|name| response.upstream_header_values(name), "x-req");

    // The response: the upstream's two cookies and ours, in order; its length still frames the body.
    assert_eq!(response.header_values("set-cookie"), ["a=1; Path=/", "b=2; Path=/", "c=3; Path=/"], "{response:?}");
    assert_eq!(response.header_values("content-type"), ["application/json"]);
    assert_eq!(response.header("content-length"), Some(response.body.len().to_string().as_str()));
    assert_eq!(response.header("x-upstream"), None);
    assert_eq!(response.header("x-rules-matched"), Some("many-edits, many-response-edits"));
    has_sixteen(|name| response.header_values(name).iter().map(|v| (*v).to_owned()).collect(), "x-resp");

    // A local reply after request edits: the request rule's response headers and the debug header reach it.
    let refused = ClientRequest::new("GET", "/refused").send(envoy.listener);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.body, "refused\n");
    assert_eq!(refused.header("content-length"), Some("8"));
    assert_eq!(refused.header_values("content-type"), ["text/plain"]);
    assert_eq!(refused.header_values("set-cookie"), ["r=1; Path=/"]);
    assert_eq!(refused.header("x-rules-matched"), Some("refused"));
    has_sixteen(|name| refused.header_values(name).iter().map(|v| (*v).to_owned()).collect(), "x-reply");
    assert_eq!(second.received().len(), 1, "the refused request went upstream");
}

#[test]
fn many_edits_keep_pseudo_headers_over_http2() {
    let upstream = H2Upstream::start();
    let envoy = start(options_for(plugin("batched-h2"), upstream.addr).use_client_protocol(true));
    let response = http2::request(
        envoy.listener,
        "POST",
        "/batch/orders?id=7",
        &[("x-multi", "one"), ("x-multi", "two"), ("content-type", "application/json")],
        br#"{"qty":1}"#,
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"hello over h2\n");
    assert_eq!(response.header_values("set-cookie"), ["c=3; Path=/"], "{response:?}");
    assert_eq!(response.header("x-rules-matched"), Some("many-edits, many-response-edits"));
    has_sixteen(|name| response.header_values(name).iter().map(|v| (*v).to_owned()).collect(), "x-resp");
    let request = upstream.received.only();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/second/orders?id=7"));
    assert_eq!(request.authority, envoy.listener.to_string());
    let multi: Vec<&str> = request.headers.iter().filter(|(n, _)| n == "x-multi").map(|(_, v)| v.as_str()).collect();
    assert_eq!(multi, ["one", "two", "from-filter"]);
    has_sixteen(|name| request.header(name).map(str::to_owned).into_iter().collect(), "x-req");
    assert_eq!(request.body, br#"{"qty":1}"#);
}
