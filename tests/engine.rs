//! The engine on a simulated proxy: what each condition and action does to an exchange.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{exchange, matched, rules, tagging, upstream_header};
use rulefilter::simulate::{run, Request, Response};

#[test]
fn hello_answers_get_hello_and_tags_everything_else() {
    let hello = rules(include_str!("../rules/hello.yaml"));
    let answered = exchange(&hello, &Request::get("/hello"));
    assert!(answered.responded_locally);
    assert_eq!(answered.upstream_request, None);
    assert_eq!(answered.response.status, 200);
    assert_eq!(answered.response.body, "Hello from Wasm!\n");
    assert_eq!(answered.response.header("x-service-name"), Some("my-custom-service"));

    for request in [Request::get("/other"), Request::get("/hello/more"), Request::get("/hello").method("POST")] {
        let proxied = exchange(&hello, &request);
        assert!(!proxied.responded_locally, "{request:?}");
        assert!(proxied.upstream_request.is_some());
        assert_eq!(proxied.response.header("x-service-name"), Some("my-custom-service"), "{request:?}");
    }
}

#[test]
fn path_is_matched_without_its_query_string() {
    let exact = tagging("{path: /search}");
    assert!(matched(&exact, &Request::get("/search?q=rust")));
    assert!(!matched(&exact, &Request::get("/search/x?q=rust")));
    let prefix = tagging("{path: {prefix: /api/}}");
    assert!(matched(&prefix, &Request::get("/api/v1/users")));
    assert!(!matched(&prefix, &Request::get("/apiv1")));
    let regex = tagging("{path: {regex: '/users/[0-9]+'}}");
    assert!(matched(&regex, &Request::get("/users/42?expand=1")));
    assert!(!matched(&regex, &Request::get("/users/42/posts")));
    let folded = tagging("{path: {prefix: /API, ignore_case: true}}");
    assert!(matched(&folded, &Request::get("/api/x")));
}

#[test]
fn method_is_one_or_any_of_a_list() {
    let post = Request::get("/").method("POST");
    assert!(!matched(&tagging("{method: GET}"), &post));
    assert!(matched(&tagging("{method: [GET, POST]}"), &post));
    // Methods are case-sensitive (RFC 9110).
    assert!(!matched(&tagging("{method: post}"), &post));
}

#[test]
fn host_ignores_the_port_and_case_unless_the_pattern_names_a_port() {
    let with_port = |authority: &str| Request::get("/").authority(authority);
    let host = tagging("{host: api.example.com}");
    assert!(matched(&host, &with_port("api.example.com")));
    assert!(matched(&host, &with_port("API.Example.com:8443")));
    assert!(!matched(&host, &with_port("example.com")));
    let host_port = tagging("{host: 'api.example.com:8443'}");
    assert!(matched(&host_port, &with_port("api.example.com:8443")));
    assert!(!matched(&host_port, &with_port("api.example.com")));
    let suffix = tagging("{host: {suffix: .example.com}}");
    assert!(matched(&suffix, &with_port("a.b.example.com:80")));
}

#[test]
fn header_conditions_test_value_or_presence() {
    let exact = tagging("{headers: {X-User: alice}}");
    assert!(matched(&exact, &Request::get("/").header("x-user", "alice")));
    assert!(!matched(&exact, &Request::get("/").header("x-user", "bob")));
    assert!(!matched(&exact, &Request::get("/")));
    let regex = tagging("{headers: {x-user: {regex: 'a.*'}}}");
    assert!(matched(&regex, &Request::get("/").header("X-User", "anna")));
    let present = tagging("{headers: {x-debug: {present: true}}}");
    assert!(matched(&present, &Request::get("/").header("x-debug", "")));
    assert!(!matched(&present, &Request::get("/")));
    let absent = tagging("{headers: {x-debug: {absent: true}}}");
    assert!(matched(&absent, &Request::get("/")));
    assert!(!matched(&absent, &Request::get("/").header("x-debug", "1")));
    let not_present = tagging("{headers: {x-debug: {present: false}}}");
    assert!(matched(&not_present, &Request::get("/")));
}

#[test]
fn every_condition_of_a_rule_must_hold() {
    let rule = tagging("{path: {prefix: /admin}, method: GET, headers: {x-role: admin}}");
    assert!(matched(&rule, &Request::get("/admin/x").header("x-role", "admin")));
    assert!(!matched(&rule, &Request::get("/admin/x").header("x-role", "user")));
    assert!(!matched(&rule, &Request::get("/public").header("x-role", "admin")));
}

#[test]
fn request_header_edits_are_what_the_upstream_sees() {
    let rules = rules(
        r#"
request:
  - name: edit
    actions:
      - request_headers:
          set: {x-env: prod, x-user: replaced}
          add: {x-trace: second}
          remove: [x-secret]
"#,
    );
    let request =
        Request::get("/").header("x-user", "original").header("x-trace", "first").header("x-secret", "s3cr3t");
    let outcome = exchange(&rules, &request);
    let upstream = outcome.upstream_request.unwrap();
    let values = |name: &str| upstream.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(values("x-env"), ["prod"]);
    assert_eq!(values("x-user"), ["replaced"]);
    assert_eq!(values("x-trace"), ["first", "second"]);
    assert!(values("x-secret").is_empty());
}

#[test]
fn response_edits_from_a_request_rule_wait_for_the_response() {
    let rules = rules(
        r#"
request:
  - name: mark-api
    match: {path: {prefix: /api/}}
    actions:
      - response_headers: {set: {x-api: "true"}}
"#,
    );
    let api = exchange(&rules, &Request::get("/api/users"));
    assert_eq!(api.response.header("x-api"), Some("true"));
    let other = exchange(&rules, &Request::get("/web"));
    assert_eq!(other.response.header("x-api"), None);
}

#[test]
fn response_rules_see_status_response_headers_and_carried_request_headers() {
    let rules = rules(
        r#"
response:
  - name: no-cache-errors
    match:
      status: [500, 503]
      response_headers: {content-type: {prefix: text/}}
      headers: {x-client: mobile}
      path: {prefix: /app}
    actions:
      - response_headers: {set: {cache-control: no-store}, remove: [server]}
"#,
    );
    let upstream = Response {
        status: 503,
        headers: vec![("content-type".into(), "text/html".into()), ("server".into(), "upstream".into())],
        body: "down".into(),
    };
    let request = Request::get("/app/home").header("x-client", "mobile");
    let hit = run(&rules, &request, &upstream);
    assert!(hit.host_errors.is_empty(), "{:?}", hit.host_errors);
    assert_eq!(hit.response.header("cache-control"), Some("no-store"));
    assert_eq!(hit.response.header("server"), None);
    assert_eq!(hit.response.body, "down");

    let desktop = run(&rules, &Request::get("/app/home").header("x-client", "desktop"), &upstream);
    assert_eq!(desktop.response.header("cache-control"), None);
    let ok = run(&rules, &request, &Response { status: 200, ..upstream.clone() });
    assert_eq!(ok.response.header("cache-control"), None);
}

#[test]
fn a_response_rule_can_replace_the_upstream_response() {
    let rules = rules(
        r#"
response:
  - name: friendly-502
    match: {status: 502}
    actions:
      - respond: {status: 503, headers: {retry-after: "5"}, body: "try again soon\n"}
"#,
    );
    let outcome =
        run(&rules, &Request::get("/"), &Response { status: 502, headers: vec![], body: "bad gateway".into() });
    assert!(outcome.host_errors.is_empty());
    assert!(outcome.responded_locally);
    assert_eq!(outcome.response.status, 503);
    assert_eq!(outcome.response.body, "try again soon\n");
    assert_eq!(outcome.response.header("retry-after"), Some("5"));
}

#[test]
fn rules_run_in_document_order_and_stop_ends_the_phase() {
    let rules = rules(
        r#"
request:
  - name: first
    actions: [{request_headers: {add: {x-order: first}}}]
  - name: second
    stop: true
    actions: [{request_headers: {add: {x-order: second}}}]
  - name: third
    actions: [{request_headers: {add: {x-order: third}}}]
"#,
    );
    let outcome = exchange(&rules, &Request::get("/"));
    let order: Vec<&str> = outcome
        .upstream_request
        .as_ref()
        .unwrap()
        .iter()
        .filter(|(n, _)| n == "x-order")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(order, ["first", "second"]);
}

#[test]
fn a_direct_response_ends_the_phase_and_skips_response_rules() {
    let rules = rules(
        r#"
request:
  - name: deny
    match: {path: /blocked}
    actions: [{respond: {status: 403, body: denied}}]
  - name: never-for-blocked
    actions: [{request_headers: {set: {x-after: "yes"}}}]
response:
  - name: tag
    actions: [{response_headers: {set: {x-tag: "yes"}}}]
"#,
    );
    let blocked = exchange(&rules, &Request::get("/blocked"));
    assert_eq!(blocked.response.status, 403);
    assert_eq!(blocked.response.header("x-tag"), None);
    let open = exchange(&rules, &Request::get("/open"));
    assert_eq!(upstream_header(&open, "x-after"), Some("yes"));
    assert_eq!(open.response.header("x-tag"), Some("yes"));
}

#[test]
fn istio_json_with_doubles_means_the_same_as_yaml() {
    // What istiod hands over: compact JSON of the pluginConfig Struct, every number a double.
    let json = r#"{"request":[{"actions":[{"respond":{"body":"Hello from Wasm!\n","headers":{"x-service-name":"my-custom-service"},"status":200.0}}],"match":{"method":"GET","path":"/hello"},"name":"hello"}],"version":1.0}"#;
    let outcome = exchange(&rules(json), &Request::get("/hello"));
    assert_eq!(outcome.response.status, 200);
    assert_eq!(outcome.response.body, "Hello from Wasm!\n");
}

#[test]
fn an_empty_document_passes_everything_through() {
    for text in ["", "  \n", "{}", "request: []\nresponse: []"] {
        let rules = rules(text);
        assert!(rules.is_empty());
        let outcome = exchange(&rules, &Request::get("/hello").header("x-a", "1"));
        assert_eq!(upstream_header(&outcome, "x-a"), Some("1"));
        assert_eq!(outcome.response, Response::ok());
    }
}

#[test]
fn each_header_is_fetched_once_per_request_however_many_rules_read_it() {
    let rules = rules(
        r#"
request:
  - name: a
    match: {headers: {x-user: {prefix: a}}}
    actions: [{request_headers: {set: {x-a: "1"}}}]
  - name: b
    match: {headers: {x-user: {suffix: z}}, path: {prefix: /}}
    actions: [{request_headers: {set: {x-b: "1"}}}]
"#,
    );
    let names: Vec<&str> = rules
        .slots()
        .iter()
        .map(|s| match s {
            rulefilter::ruleset::Slot::Header(_, name) => &**name,
            rulefilter::ruleset::Slot::SourceAddress => "source",
            rulefilter::ruleset::Slot::Property(_) => "property",
            _ => "other",
        })
        .collect();
    assert_eq!(names, ["x-user", ":path"]);
}
