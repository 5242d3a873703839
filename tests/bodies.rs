//! Body rules on the simulated proxy: what is held, what each body condition and edit does, what past the
//! limit means, how the document is judged, and that a document without body rules holds nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use rulefilter::simulate::{run, run_traced, Outcome, Request, Response};
use rulefilter::trace::Event;
use rulefilter::{parse, Phase, RuleSet};

fn rules(yaml: &str) -> RuleSet {
    parse(yaml).unwrap_or_else(|e| panic!("{e:?}"))
}

fn errors(yaml: &str) -> Vec<String> {
    parse(yaml).expect_err("the document should be refused").0.iter().map(ToString::to_string).collect()
}

fn post(path: &str, content_type: &str, body: &str) -> Request {
    Request::get(path)
        .method("POST")
        .header("content-type", content_type)
        .header("content-length", &body.len().to_string())
        .body(body)
}

fn page(content_type: &str, body: &str) -> Response {
    Response {
        status: 200,
        headers: vec![("content-type".into(), content_type.into()), ("content-length".into(), body.len().to_string())],
        body: body.into(),
    }
}

fn exchange(rules: &RuleSet, request: &Request, upstream: &Response) -> Outcome {
    let outcome = run(rules, request, upstream);
    assert!(outcome.host_errors.is_empty(), "{:?}", outcome.host_errors);
    outcome
}

const GUARD: &str = r#"
request:
  - name: no-admin
    match: {path: {prefix: /api}}
    body:
      content_types: [application/json]
      max_bytes: 64
      over_limit: reject
      json: {/user/role: admin}
    actions:
      - respond: {status: 403, body: "no\n"}
"#;

#[test]
fn a_json_field_decides_a_request_before_it_goes_upstream() {
    let guard = rules(GUARD);
    let refused =
        exchange(&guard, &post("/api/u", "application/json", r#"{"user":{"role":"admin"}}"#), &Response::ok());
    assert_eq!((refused.response.status, refused.upstream_request.is_some()), (403, false));
    let passed =
        exchange(&guard, &post("/api/u", "application/json", r#"{"user":{"role":"viewer"}}"#), &Response::ok());
    assert_eq!(passed.response.status, 200);
    assert_eq!(passed.upstream_body, r#"{"user":{"role":"viewer"}}"#);
    // Another type, or another path: the rule does not read the body at all.
    let text = exchange(&guard, &post("/api/u", "text/plain", r#"{"user":{"role":"admin"}}"#), &Response::ok());
    assert_eq!(text.response.status, 200);
    let elsewhere =
        exchange(&guard, &post("/other", "application/json", r#"{"user":{"role":"admin"}}"#), &Response::ok());
    assert_eq!(elsewhere.response.status, 200);
}

#[test]
fn past_the_limit_a_request_is_refused_or_passed_as_the_rule_says() {
    let long = format!(r#"{{"user":{{"role":"admin"}},"pad":"{}"}}"#, "x".repeat(100));
    let rejected = exchange(&rules(GUARD), &post("/api/u", "application/json", &long), &Response::ok());
    assert_eq!((rejected.response.status, rejected.upstream_request.is_some()), (413, false));
    // Without a content-length the bytes themselves tell (a chunked upload).
    let chunked = Request::get("/api/u").method("POST").header("content-type", "application/json").body(&long);
    let rejected = exchange(&rules(GUARD), &chunked, &Response::ok());
    assert_eq!(rejected.response.status, 413);
    let passing = rules(&GUARD.replace("over_limit: reject", "over_limit: pass"));
    let passed = exchange(&passing, &post("/api/u", "application/json", &long), &Response::ok());
    assert_eq!(passed.response.status, 200);
    assert_eq!(passed.upstream_body, long, "past the limit the body goes on unmodified");
}

#[test]
fn text_conditions_search_the_body() {
    let doc = rules(
        r#"
request:
  - name: sql
    body: {contains: "DROP TABLE", regex: "[0-9]{4}-[0-9]{4}"}
    actions: [{respond: {status: 400}}]
"#,
    );
    let both = exchange(&doc, &post("/", "text/plain", "x DROP TABLE y 1234-5678"), &Response::ok());
    assert_eq!(both.response.status, 400);
    let one = exchange(&doc, &post("/", "text/plain", "x DROP TABLE y"), &Response::ok());
    assert_eq!(one.response.status, 200);
    // The default content types are text and JSON: an image is not read.
    let image = exchange(&doc, &post("/", "image/png", "DROP TABLE 1234-5678"), &Response::ok());
    assert_eq!(image.response.status, 200);
}

const FIXUP: &str = r#"
response:
  - name: fixup
    body: {content_types: [text/html]}
    actions:
      - response_body:
          replace:
            - {from: "http://internal", to: "https://www.example.com"}
            - {from: "<body>", to: "<body><p>banner</p>"}
"#;

#[test]
fn a_response_body_is_rewritten_and_loses_its_stale_length() {
    let fixup = rules(FIXUP);
    let outcome =
        exchange(&fixup, &Request::get("/"), &page("text/html", "<body><a href=\"http://internal/a\"></body>"));
    assert_eq!(outcome.response.body, "<body><p>banner</p><a href=\"https://www.example.com/a\"></body>");
    assert_eq!(outcome.response.header("content-length"), None, "the proxy frames the edited body");
    let json = exchange(&fixup, &Request::get("/"), &page("application/json", "\"http://internal\""));
    assert_eq!(json.response.body, "\"http://internal\"");
    assert_eq!(json.response.header("content-length"), Some("17"), "an untouched message keeps its length");
}

#[test]
fn streams_are_never_held() {
    let fixup = rules(&FIXUP.replace("[text/html]", "[\"*/*\"]"));
    for (content_type, body) in
        [("text/event-stream", "data: http://internal\n\n"), ("application/grpc", "http://internal")]
    {
        let outcome = exchange(&fixup, &Request::get("/"), &page(content_type, body));
        assert_eq!(outcome.response.body, body, "{content_type}");
    }
    let guard = rules(&GUARD.replace("[application/json]", "[\"*/*\"]"));
    let upgrade = post("/api/ws", "application/json", r#"{"user":{"role":"admin"}}"#).header("upgrade", "websocket");
    let outcome = exchange(&guard, &upgrade, &Response::ok());
    assert_eq!(outcome.response.status, 200);
}

#[test]
fn json_fields_are_set_and_removed() {
    let doc = rules(
        r#"
request:
  - name: scrub
    body: {content_types: [application/json]}
    actions:
      - request_body: {json_remove: [/password], json_set: {/meta/checked: true, /tags/-: gateway}}
"#,
    );
    let outcome =
        exchange(&doc, &post("/", "application/json", r#"{"password":"x","tags":["a"],"n":1}"#), &Response::ok());
    assert_eq!(outcome.upstream_body, r#"{"meta":{"checked":true},"n":1,"tags":["a","gateway"]}"#);
    let headers = outcome.upstream_request.unwrap();
    assert!(!headers.iter().any(|(n, _)| n == "content-length"), "{headers:?}");
}

#[test]
fn a_dry_run_rule_only_says_what_it_would_edit() {
    let fixup = rules(&FIXUP.replace("  - name: fixup\n", "  - name: fixup\n    mode: dry_run\n"));
    let outcome = run_traced(&fixup, &Request::get("/"), &page("text/html", "<body>http://internal</body>"));
    assert_eq!(outcome.response.body, "<body>http://internal</body>");
    assert_eq!(outcome.response.header("content-length"), Some("28"));
    assert!(outcome.trace.contains(&Event::WouldDo("edit the response body".into())), "{:?}", outcome.trace);
}

#[test]
fn the_trace_says_why_a_body_rule_did_not_match() {
    let guard = rules(GUARD);
    let misses = |request: &Request| -> Vec<String> {
        run_traced(&guard, request, &Response::ok())
            .trace
            .iter()
            .filter_map(|event| match event {
                Event::Rule { miss: Some(miss), .. } => Some(miss.to_string()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        misses(&post("/api", "text/plain", "{}")),
        ["body.content_types: got content-type \"text/plain\", wanted one of application/json"]
    );
    assert_eq!(misses(&post("/api", "application/json", "role=admin")), ["body.json./user/role: the body is not JSON"]);
    assert_eq!(
        misses(&post("/api", "application/json", r#"{"user":{"role":"dev"}}"#)),
        [r#"body.json./user/role: got "dev", wanted exact "admin""#]
    );
    let traced = run_traced(&guard, &post("/api", "application/json", "{}"), &Response::ok());
    assert!(traced.trace.contains(&Event::AwaitsBody { map: rulefilter::HeaderMap::Request, max_bytes: 64 }));
    assert!(traced.trace.contains(&Event::BodyArrived { map: rulefilter::HeaderMap::Request, bytes: Some(2) }));
}

#[test]
fn a_document_without_body_rules_holds_nothing() {
    for path in ["rules/canary.yaml", "rules/hello.yaml", "rules/cors.yaml", "rules/header-hygiene.yaml"] {
        let text = std::fs::read_to_string(path).unwrap();
        let doc = rules(&text);
        assert!(!doc.reads_bodies(), "{path}");
        let mut state = doc.new_request();
        let mut host = NoBody;
        let _ = doc.on_request_headers(&mut state, &mut host);
        assert_eq!(state.body_hold(Phase::Request), None, "{path}");
        let _ = doc.on_response_headers(&mut state, &mut host);
        assert_eq!(state.body_hold(Phase::Response), None, "{path}");
    }
    let guard = rules(GUARD);
    assert!(guard.reads_bodies());
    // A body rule whose match does not hold holds nothing either.
    let mut state = guard.new_request();
    let _ = guard.on_request_headers(&mut state, &mut NoBody);
    assert_eq!(state.body_hold(Phase::Request), None);
}

/// A proxy with a JSON request to `/` and no body access: the engine must not ask for one.
struct NoBody;

impl rulefilter::Host for NoBody {
    fn header(&mut self, _map: rulefilter::HeaderMap, name: &str) -> Option<String> {
        match name {
            ":path" => Some("/".into()),
            ":method" => Some("POST".into()),
            "content-type" => Some("application/json".into()),
            _ => None,
        }
    }
    fn header_names(&mut self, _map: rulefilter::HeaderMap) -> Vec<String> {
        Vec::new()
    }
    fn set_header(&mut self, _map: rulefilter::HeaderMap, _name: &str, _value: &str) {}
    fn add_header(&mut self, _map: rulefilter::HeaderMap, _name: &str, _value: &str) {}
    fn remove_header(&mut self, _map: rulefilter::HeaderMap, _name: &str) {}
    fn source_address(&mut self) -> Option<String> {
        Some("127.0.0.1:1".into())
    }
    fn send_response(&mut self, _status: u16, _headers: &[(&str, &str)], _body: &str) -> bool {
        true
    }
    fn body(&mut self, _message: rulefilter::HeaderMap) -> Vec<u8> {
        panic!("a document without body rules read a body")
    }
}

#[test]
fn errors_name_the_rule_the_field_and_what_would_be_right() {
    let cases: [(&str, &str); 9] = [
        (
            "request:\n  - name: a\n    body: {max_bytes: 2000000}\n    actions: [{log: {message: x}}]",
            r#"request[0] "a": body.max_bytes: 2000000 bytes; a rule holds 1 to 1048576 bytes of body (1 MiB, Envoy's default buffer limit)"#,
        ),
        (
            "request:\n  - name: a\n    body: {content_types: [JSON]}\n    actions: [{log: {message: x}}]",
            r#"request[0] "a": body.content_types[0]: "JSON" is not a lower-case media type such as `application/json` or `text/*`"#,
        ),
        (
            "request:\n  - name: a\n    body: {json: {user/role: admin}}\n    actions: [{log: {message: x}}]",
            r#"request[0] "a": body.json.user/role: a JSON Pointer starts with `/` (`/user/role`)"#,
        ),
        (
            "response:\n  - name: a\n    body: {over_limit: reject}\n    actions: [{log: {message: x}}]",
            r#"response[0] "a": body.over_limit: `reject` answers 413 to a request; a response's status is already on its way: use `pass`"#,
        ),
        (
            "request:\n  - name: a\n    body: {contains: x}\n    actions: [{request_headers: {set: {x-a: b}}}]",
            r#"request[0] "a": actions[0].request_headers: `request_headers` cannot run in a rule that reads or edits the body: its actions run once the body has arrived, when the headers are settled; put `request_headers` in a rule of its own without `body`"#,
        ),
        (
            "response:\n  - name: a\n    body: {contains: x}\n    actions: [{respond: {status: 500}}]",
            r#"response[0] "a": actions[0].respond: `respond` cannot answer once a response body has arrived: the response's status and headers have gone to the client by then; answer from a rule without `body`"#,
        ),
        (
            "request:\n  - name: a\n    actions: [{response_body: {set: x}}]",
            r#"request[0] "a": actions[0].response_body: a request rule reads and edits the request body only; move this action to a response rule"#,
        ),
        (
            "request:\n  - name: a\n    actions: [{request_body: {}}]",
            r#"request[0] "a": actions[0].request_body: changes nothing: give set, replace, json_remove or json_set"#,
        ),
        (
            "request:\n  - name: a\n    stop: true\n    body: {contains: x}\n    actions: [{log: {message: x}}]",
            r#"request[0] "a": stop: a rule that reads or edits the body is decided after the other rules of its phase ran, so it cannot stop them; remove `stop`"#,
        ),
    ];
    for (document, expected) in cases {
        assert_eq!(errors(document), [expected], "\n{document}");
    }
}
