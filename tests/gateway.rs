//! Gateway API HTTPRoute semantics without detours (issue 16): status-only redirects, `ReplacePrefixMatch` as
//! `path_segment_prefix`, Gateway API's redirect ports, a request rule's `response_headers` on its own answers,
//! and `host` patterns whose `:` decides whether the port counts. On the simulated proxy, then the answers
//! through a real Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
mod support;

use common::{errors, exchange, exchange_with, matched, rules, tagging};
use rulefilter::simulate::{run_traced, Request, Response};
use rulefilter::trace::{Event, Miss};
use support::{document_json, echo, options, start, ClientRequest, Plugin};

fn location(document: &str, request: &Request) -> (u16, String) {
    let outcome = exchange(&rules(document), request);
    assert_eq!(outcome.upstream_request, None, "a redirect never calls the upstream");
    (outcome.response.status, outcome.response.header("location").unwrap_or_default().to_owned())
}

fn redirect(parts: &str) -> String {
    format!("request:\n  - name: r\n    actions: [{{redirect: {parts}}}]\n")
}

// ----- redirects -----

#[test]
fn a_redirect_with_only_a_status_sends_the_same_url() {
    let request = Request::get("/cart/items?id=3&x=a%20b").authority("shop.example.com:8080");
    assert_eq!(
        location(&redirect("{status: 307}"), &request),
        (307, "http://shop.example.com:8080/cart/items?id=3&x=a%20b".to_owned())
    );
    assert_eq!(
        location(&redirect("{status: 308, keep_query: false}"), &request),
        (308, "http://shop.example.com:8080/cart/items".to_owned())
    );
    assert_eq!(location(&redirect("{}"), &Request::get("/")), (302, "http://example.com/".to_owned()));
}

/// Gateway API's `httproute-redirect-port-and-scheme` conformance cases, on a plain-HTTP listener at 8080.
#[test]
fn redirect_ports_follow_gateway_api() {
    let cases = [
        ("{host: example.org}", "http://example.org:8080/p"),
        ("{host: example.org, port: 80}", "http://example.org/p"),
        ("{host: example.org, port: 8080}", "http://example.org:8080/p"),
        ("{host: example.org, scheme: http}", "http://example.org/p"),
        ("{host: example.org, scheme: http, port: 8080}", "http://example.org:8080/p"),
        ("{host: example.org, scheme: https}", "https://example.org/p"),
        ("{host: example.org, scheme: https, port: 443}", "https://example.org/p"),
        ("{host: example.org, scheme: https, port: 8443}", "https://example.org:8443/p"),
        ("{port: 8083}", "http://example.com:8083/p"),
    ];
    for (parts, expected) in cases {
        let request = Request::get("/p").authority("example.com:8080");
        assert_eq!(location(&redirect(parts), &request).1, expected, "{parts}");
    }
    // A request on the well-known port keeps none.
    let (_, kept) = location(&redirect("{path: /q}"), &Request::get("/p").authority("example.com"));
    assert_eq!(kept, "http://example.com/q");
}

// ----- ReplacePrefixMatch -----

fn rewritten(from: &str, to: &str, path: &str) -> String {
    let document = format!(
        "request:\n  - name: r\n    match: {{path: {{segment_prefix: '{from}'}}}}\n    actions: [{{rewrite: {{path_segment_prefix: {{from: '{from}', to: '{to}'}}}}}}]\n"
    );
    let outcome = exchange(&rules(&document), &Request::get(path));
    let upstream = outcome.upstream_request.unwrap();
    upstream.iter().find(|(n, _)| n == ":path").map(|(_, v)| v.clone()).unwrap()
}

/// Gateway API's `httproute-rewrite-path` conformance cases, and the table in `HTTPPathModifier`.
#[test]
fn segment_prefix_rewrites_replace_whole_segments() {
    assert_eq!(rewritten("/prefix/one", "/one", "/prefix/one/two"), "/one/two");
    assert_eq!(rewritten("/strip-prefix", "/", "/strip-prefix/three"), "/three");
    assert_eq!(rewritten("/strip-prefix", "/", "/strip-prefix"), "/");
    assert_eq!(rewritten("/strip-prefix", "/", "/strip-prefix/"), "/");
    assert_eq!(rewritten("/strip-prefix", "", "/strip-prefix/three"), "/three");
    assert_eq!(rewritten("/foo/", "/xyz/", "/foo/bar?a=1"), "/xyz/bar?a=1", "the query string is kept");
    assert_eq!(rewritten("/foo", "/xyz", "/foo/"), "/xyz/");
}

#[test]
fn a_path_the_prefix_does_not_match_is_left_alone() {
    let doc = rules("request:\n  - name: r\n    actions: [{rewrite: {path_segment_prefix: {from: /api, to: /v2}}}]\n");
    for path in ["/apis/x", "/other", "/"] {
        let outcome = exchange(&doc, &Request::get(path));
        assert_eq!(outcome.upstream_request.unwrap().iter().find(|(n, _)| n == ":path").unwrap().1, path);
    }
}

#[test]
fn segment_prefix_redirects_replace_whole_segments() {
    let moved = redirect("{path_segment_prefix: {from: /old, to: '/new/${header.x-site}'}, status: 301}");
    let request = Request::get("/old/a/b?x=1").header("x-site", "eu");
    assert_eq!(location(&moved, &request), (301, "http://example.com/new/eu/a/b?x=1".to_owned()));
    let (_, root) = location(&redirect("{path_segment_prefix: {from: /old, to: /}}"), &Request::get("/old"));
    assert_eq!(root, "http://example.com/");
    // Gateway API's `httproute-request-redirect` conformance case.
    let conformance = redirect("{path_segment_prefix: {from: /original-prefix, to: /replacement-prefix}}");
    let (_, lemon) = location(&conformance, &Request::get("/original-prefix/lemon"));
    assert_eq!(lemon, "http://example.com/replacement-prefix/lemon");
}

#[test]
fn segment_prefix_rewrites_are_checked_where_they_are_written() {
    let refused = errors(
        r#"
request:
  - name: both
    actions: [{rewrite: {path: /x, path_segment_prefix: {from: /a, to: /b}}}]
  - name: relative
    actions: [{rewrite: {path_segment_prefix: {from: a, to: b}}}]
  - name: location-too
    actions: [{redirect: {location: /x, path_segment_prefix: {from: /a, to: /b}}}]
  - name: two-paths
    actions: [{redirect: {path: /x, path_segment_prefix: {from: /a, to: /b}}}]
"#,
    );
    assert_eq!(
        refused,
        [
            r#"request[0] "both": actions[0].rewrite: give only one of path, path_prefix, path_segment_prefix, path_regex"#,
            r#"request[1] "relative": actions[0].rewrite.path_segment_prefix.from: a path prefix starts with `/`"#,
            r#"request[1] "relative": actions[0].rewrite.path_segment_prefix.to: a path starts with `/`; write `/` or nothing to remove the prefix"#,
            r#"request[2] "location-too": actions[0].redirect: give either `location` or the parts (scheme, host, port, path, path_segment_prefix, query), not both"#,
            r#"request[3] "two-paths": actions[0].redirect: give only one of path, path_segment_prefix"#,
        ]
    );
}

// ----- a request rule's response headers on its own answers -----

const ANSWERS: &str = r#"
request:
  - name: everywhere
    actions: [{response_headers: {set: {strict-transport-security: max-age=31536000}}}]
  - name: drained
    match: {cookies: {node: old}}
    actions:
      - response_headers: {add: {set-cookie: "node=; Max-Age=0"}, remove: [x-debug]}
      - redirect: {status: 307}
  - name: health
    match: {path: /health}
    actions:
      - response_headers: {set: {cache-control: no-store}, rename: [{from: x-answer, to: x-answered-by}]}
      - respond: {status: 200, headers: {x-answer: proxy, x-debug: "1"}, body: "ok"}
  - name: passing
    actions: [{response_headers: {set: {x-upstream-route: "yes"}}}]
response:
  - name: never-on-own-answers
    actions: [{response_headers: {set: {x-response-rule: ran}}}]
"#;

#[test]
fn request_rules_response_headers_apply_to_their_own_answers() {
    let doc = rules(ANSWERS);
    let redirected = exchange(&doc, &Request::get("/a").header("cookie", "node=old"));
    assert_eq!(redirected.response.status, 307);
    assert_eq!(redirected.response.header("set-cookie"), Some("node=; Max-Age=0"));
    assert_eq!(redirected.response.header("strict-transport-security"), Some("max-age=31536000"));
    assert_eq!(redirected.response.header("x-response-rule"), None, "response rules do not run on own answers");

    let answered = exchange(&doc, &Request::get("/health"));
    assert_eq!((answered.response.status, answered.response.body.as_str()), (200, "ok"));
    assert_eq!(answered.response.header("cache-control"), Some("no-store"));
    assert_eq!(answered.response.header("x-answered-by"), Some("proxy"));
    assert_eq!(answered.response.header("x-answer"), None);
    assert_eq!(answered.response.header("x-debug"), Some("1"), "only the redirecting rule removes it");
    assert_eq!(answered.response.header("strict-transport-security"), Some("max-age=31536000"));
    assert_eq!(answered.response.header("x-upstream-route"), None, "a later rule never ran");

    let passed = exchange_with(&doc, &Request::get("/x"), &Response::ok());
    assert_eq!(passed.response.header("x-upstream-route"), Some("yes"));
    assert_eq!(passed.response.header("x-response-rule"), Some("ran"));
}

#[test]
fn a_trace_shows_the_edits_applied_to_an_own_answer() {
    let outcome = run_traced(&rules(ANSWERS), &Request::get("/health"), &Response::ok());
    let answered = outcome.trace.iter().position(|e| matches!(e, Event::Responded { .. })).unwrap();
    let applied: Vec<&str> = outcome.trace[answered..]
        .iter()
        .filter_map(|e| match e {
            Event::ApplyDeferred { rule } => Some(rule.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(applied, ["everywhere", "health"], "{:#?}", outcome.trace);
}

/// Envoy passes the filter's own answer through its response callback, where the edits are made.
#[test]
fn own_answers_carry_the_response_headers_in_envoy() {
    let document: serde_yaml::Value = serde_yaml::from_str(ANSWERS).unwrap();
    let upstream = echo();
    let envoy = start(options(Plugin::new("gateway", Some(document_json(&document))), &upstream));
    let redirected =
        ClientRequest::new("GET", "/a?b=1").host("example.com:8080").header("cookie", "node=old").send(envoy.listener);
    assert_eq!(redirected.status, 307, "{redirected:?}");
    assert_eq!(redirected.header("location"), Some("http://example.com:8080/a?b=1"));
    assert_eq!(redirected.header("set-cookie"), Some("node=; Max-Age=0"), "{redirected:?}");
    assert_eq!(redirected.header("strict-transport-security"), Some("max-age=31536000"));
    assert_eq!(redirected.header("x-response-rule"), None);

    let answered = ClientRequest::new("GET", "/health").send(envoy.listener);
    assert_eq!((answered.status, answered.body.as_str()), (200, "ok"), "{answered:?}");
    assert_eq!(answered.header("cache-control"), Some("no-store"), "{answered:?}");
    assert_eq!(answered.header("x-answered-by"), Some("proxy"));
    assert_eq!(answered.header("x-answer"), None);
    assert!(upstream.seen_paths().is_empty(), "the upstream was called: {:?}", upstream.seen_paths());
}

// ----- host patterns and ports -----

#[test]
fn a_colon_inside_a_class_leaves_the_port_out() {
    let hosts = tagging(r"{host: {regex: '[^:]+\.example\.com'}}");
    assert!(matched(&hosts, &Request::get("/").authority("api.example.com:8080")));
    assert!(matched(&hosts, &Request::get("/").authority("api.example.com")));
    assert!(!matched(&hosts, &Request::get("/").authority("example.org:8080")));
}

#[test]
fn a_colon_of_its_own_makes_the_port_count() {
    let with_port = tagging(r"{host: {regex: 'api\.example\.com:8443'}}");
    assert!(matched(&with_port, &Request::get("/").authority("api.example.com:8443")));
    assert!(!matched(&with_port, &Request::get("/").authority("api.example.com")));
    let optional = tagging(r"{host: {regex: 'api\.example\.com(:8443)?'}}");
    assert!(matched(&optional, &Request::get("/").authority("api.example.com")));
    assert!(matched(&optional, &Request::get("/").authority("api.example.com:8443")));
    assert!(!matched(&optional, &Request::get("/").authority("api.example.com:9000")));
    let ipv6 = tagging(r#"{host: "[::1]"}"#);
    assert!(matched(&ipv6, &Request::get("/").authority("[::1]:10000")));
}

#[test]
fn a_trace_says_when_the_port_counts() {
    let doc = rules(
        r#"
request:
  - name: with-port
    match: {host: {regex: 'api\.example\.com:8443'}}
    actions: [{request_headers: {set: {x-a: "1"}}}]
  - name: without
    match: {host: {regex: '[^:]+\.example\.org'}}
    actions: [{request_headers: {set: {x-a: "1"}}}]
"#,
    );
    let outcome = run_traced(&doc, &Request::get("/").authority("api.example.com:9000"), &Response::ok());
    let misses: Vec<String> = outcome
        .trace
        .iter()
        .filter_map(|e| match e {
            Event::Rule { miss: Some(miss), .. } => Some(Miss::to_string(miss)),
            _ => None,
        })
        .collect();
    assert_eq!(
        misses,
        [
            r#"match.host: got "api.example.com:9000", wanted regex "api\.example\.com:8443" (with the port)"#,
            r#"match.host: got "api.example.com", wanted regex "[^:]+\.example\.org""#,
        ]
    );
}
