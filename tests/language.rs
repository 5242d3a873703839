//! The language additions of issue 16 on the simulated proxy: template encodings, headers whose template
//! renders empty, and sampling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{errors, exchange, rules, upstream_header, upstream_values};
use rulefilter::simulate::{Request, Response};
use rulefilter::trace::Event;

#[test]
fn a_reference_can_be_encoded_for_a_url_json_or_html() {
    let document = rules(
        r#"
request:
  - name: search-moved
    match: {path: /find}
    actions:
      - redirect: {location: "https://search.example.com/?q=${query.q|url}&from=${path|url}"}
  - name: tag
    actions:
      - request_headers:
          set:
            x-q-url: "${query.q|url}"
            x-q-path: "/files/${header.x-dir|path}"
            x-q-plain: "${query.q}"
            x-env: "${env.CLUSTER|url}"
  - name: json-answer
    match: {path: /whoami}
    actions:
      - respond: {status: 200, content_type: application/json, body: '{"user": "${header.x-user|json}", "page": "${header.x-user|html}"}'}
"#,
    );
    let moved = exchange(&document, &Request::get("/find?q=a%20b%26c%3Dd%2F"));
    // Decoded to `a b&c=d/`, then encoded as one component: nothing of it can start another parameter.
    assert_eq!(moved.response.header("location"), Some("https://search.example.com/?q=a%20b%26c%3Dd%2F&from=%2Ffind"));
    let tagged = exchange(&document, &Request::get("/x?q=%C3%A9+%3F").header("x-dir", "a b/c"));
    assert_eq!(upstream_header(&tagged, "x-q-url"), Some("%C3%A9%20%3F"));
    assert_eq!(upstream_header(&tagged, "x-q-plain"), Some("é ?"));
    assert_eq!(upstream_header(&tagged, "x-q-path"), Some("/files/a%20b/c"));
    assert_eq!(upstream_header(&tagged, "x-env"), Some("eu-west-1"));
    let answer = exchange(&document, &Request::get("/whoami").header("x-user", r#"<b>"x"</b>"#));
    assert_eq!(answer.response.body, r#"{"user": "<b>\"x\"</b>", "page": "&lt;b&gt;&quot;x&quot;&lt;/b&gt;"}"#);
}

#[test]
fn unknown_encodings_and_double_encoding_are_refused_with_the_list() {
    let refused = errors(
        r#"
request:
  - name: typo
    actions:
      - request_headers: {set: {x-a: "${query.q|uri}"}}
      - query: {set: {q: "${header.x-q|url}"}}
"#,
    );
    assert_eq!(
        refused,
        [
            r#"request[0] "typo": actions[0].request_headers.set.x-a: `${query.q|…}`: unknown encoding `|uri`; known: url, path, json, html"#,
            r#"request[0] "typo": actions[1].query.set.q: `|url`: query edits percent-encode the values they write, so this would encode twice; remove `|url`"#,
        ]
    );
    assert_eq!(
        errors("request: [{name: a, actions: [request_headers: {set: {x-a: '${path|}'}}]}]"),
        [
            r#"request[0] "a": actions[0].request_headers.set.x-a: `|` without an encoding in "${path|}"; write e.g. `${path|url}`"#
        ]
    );
}

#[test]
fn a_header_whose_template_renders_empty_is_left_out_never_sent_empty() {
    let document = rules(
        r#"
request:
  - name: preflight
    match: {method: OPTIONS}
    actions:
      - respond:
          status: 204
          headers:
            access-control-allow-headers: "${header.access-control-request-headers}"
            access-control-allow-origin: "${header.origin}"
            x-literal-empty: ""
  - name: forward-user
    actions:
      - request_headers:
          set: {x-user: "${header.x-auth-user}"}
          set_if_absent: {x-tenant: "${cookie.tenant}"}
          add: {x-via: "${header.x-hop}"}
      - response_headers: {set: {x-user-seen: "${header.x-auth-user}"}}
"#,
    );
    let preflight = exchange(&document, &Request::get("/").method("OPTIONS").header("origin", "https://a.example"));
    let names: Vec<&str> = preflight.response.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"access-control-allow-headers"), "{names:?}");
    assert_eq!(preflight.response.header("access-control-allow-origin"), Some("https://a.example"));
    assert_eq!(preflight.response.header("x-literal-empty"), Some(""), "a literal empty value is sent as written");

    // A client's own x-user does not survive a `set` meant to replace it.
    let spoofed = exchange(&document, &Request::get("/").header("x-user", "admin").header("x-via", "a"));
    let upstream = spoofed.upstream_request.as_ref().unwrap();
    assert!(!upstream.iter().any(|(n, _)| n == "x-user" || n == "x-tenant"), "{upstream:?}");
    assert_eq!(upstream_values(&spoofed, "x-via"), ["a"]);
    assert_eq!(spoofed.response.header("x-user-seen"), None);

    let signed_in = exchange(&document, &Request::get("/").header("x-auth-user", "ann").header("x-hop", "b"));
    assert_eq!(upstream_header(&signed_in, "x-user"), Some("ann"));
    assert_eq!(upstream_values(&signed_in, "x-via"), ["b"]);
    assert_eq!(signed_in.response.header("x-user-seen"), Some("ann"));
}

#[test]
fn a_trace_says_which_header_was_left_out() {
    let document = rules("request: [{name: cors, actions: [respond: {status: 204, headers: {a: '${header.b}'}}]}]");
    let outcome = rulefilter::simulate::run_traced(&document, &Request::get("/"), &Response::ok());
    assert!(
        outcome.trace.contains(&Event::LeftOut(r#"respond header "a" rendered empty: left out"#.into())),
        "{:?}",
        outcome.trace
    );
}
