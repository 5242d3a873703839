//! The filter's own answers through a real Envoy (1.40, V8), behind an encoder filter that marks every response
//! it sees (`header_mutation` adding `x-outer`, in front of the Wasm filter as Istio puts its own filters).
//!
//! An answer made in the request phase goes through the encoder filters, the Wasm filter's own response
//! callback included. One made in the response phase does not: Envoy sends it straight to the client
//! (`FilterManager::sendLocalReply` once response headers are being encoded), so neither the outer filter nor
//! the upstream's edited response reaches it. What the edits wrote must then come with the answer itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::json;
use support::{echo, options, start, ClientRequest, Plugin};

const DOCUMENT: &str = r#"
request:
  - name: req-tag
    actions: [{response_headers: {set: {x-req: "1"}, add: {set-cookie: "r=1; Path=/"}}}]
  - name: refuse
    match: {path: /refused}
    actions: [{respond: {status: 403, body: "refused\n"}}]
response:
  - name: tag
    actions: [{response_headers: {set: {x-tag: a}, add: {set-cookie: "t=2; Path=/"}, remove: [x-powered-by]}}]
  - name: replace-5xx
    match: {status: 5xx}
    actions: [{respond: {status: 503, headers: {x-tag: own, x-powered-by: own}, body: "sorry\n"}}]
"#;

/// An encoder filter in front of the Wasm filter that adds `x-outer: 1` to every response passing through it.
fn outer_marker() -> serde_json::Value {
    json!({
        "name": "outer-marker",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"response_mutations": [
                {"append": {"header": {"key": "x-outer", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
            ]}
        }
    })
}

#[test]
fn an_answer_in_the_response_phase_bypasses_the_filter_chain_and_carries_the_edits_itself() {
    let document: serde_yaml::Value = serde_yaml::from_str(DOCUMENT).unwrap();
    let plugin = Plugin::new("replies", Some(support::document_json(&document)));
    let upstream = echo();
    let envoy = start(options(plugin, &upstream).filter_before(outer_marker()));
    let values = |response: &support::HttpResponse, name: &str| -> Vec<String> {
        response.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
    };

    // The upstream's answer, edited by both phases, passes the outer filter.
    let passed = ClientRequest::new("GET", "/").send(envoy.listener);
    assert_eq!(passed.status, 200, "{passed:?}");
    assert_eq!((passed.header("x-req"), passed.header("x-tag")), (Some("1"), Some("a")));
    assert_eq!(passed.header("x-outer"), Some("1"), "the outer filter sees the upstream's response");

    // A request-phase answer goes through the encoder filters: the outer one, and the Wasm filter's own
    // response callback, which applies the request rule's edits to it.
    let refused = ClientRequest::new("GET", "/refused").send(envoy.listener);
    assert_eq!((refused.status, refused.body.as_str()), (403, "refused\n"), "{refused:?}");
    assert_eq!(refused.header("x-req"), Some("1"));
    assert_eq!(values(&refused, "set-cookie"), ["r=1; Path=/"]);
    assert_eq!(refused.header("x-outer"), Some("1"), "a request-phase answer passes the encoder filters");

    // A response-phase answer: Envoy skips every encoder filter, so the edits made to the upstream's response
    // reach the client only because the answer carries them.
    let replaced = ClientRequest::new("GET", "/")
        .header("x-echo-status", "500")
        .header("x-echo-header", "x-powered-by: php")
        .header("x-echo-header", "x-upstream-only: yes")
        .send(envoy.listener);
    assert_eq!((replaced.status, replaced.body.as_str()), (503, "sorry\n"), "{replaced:?}");
    assert_eq!(replaced.header("x-outer"), None, "Envoy sent the answer past the encoder filters: {replaced:?}");
    assert_eq!(replaced.header("x-req"), Some("1"), "the request rule's response_headers: {replaced:?}");
    assert_eq!(values(&replaced, "x-tag"), ["a"], "an earlier response rule's set wins over the answer's own");
    assert_eq!(values(&replaced, "x-powered-by"), Vec::<String>::new(), "the removal wins over the answer's own");
    assert_eq!(values(&replaced, "set-cookie"), ["r=1; Path=/", "t=2; Path=/"], "each added value apart");
    assert_eq!(replaced.header("x-upstream-only"), None, "the upstream's untouched headers stay behind");
}
