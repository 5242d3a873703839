//! Traces: each rule's verdict, the first failing condition of an unmatched rule, and the changes made; and
//! proof that tracing changes nothing else about an exchange.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::rules;
use rulefilter::cases::{case_files, CaseFile};
use rulefilter::simulate::{run, run_traced, Request, Response};
use rulefilter::trace::{Edit, Event, Miss, SkipReason, UrlChange};
use rulefilter::{HeaderMap, Host, Phase, RuleSet};

/// The trace of one exchange against an upstream answering `status`.
fn trace(rules: &RuleSet, request: &Request, status: u16) -> Vec<Event> {
    let upstream = Response { status, ..Response::ok() };
    let outcome = run_traced(rules, request, &upstream);
    assert!(outcome.host_errors.is_empty(), "{:?}", outcome.host_errors);
    outcome.trace
}

/// Why rule `name` did not match, as one text.
fn miss_of(events: &[Event], name: &str) -> String {
    events
        .iter()
        .find_map(|e| match e {
            Event::Rule { name: n, miss, .. } if n == name => Some(miss.as_ref().map(Miss::to_string)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("rule {name} was not evaluated: {events:#?}"))
        .unwrap_or_else(|| panic!("rule {name} matched: {events:#?}"))
}

#[test]
fn an_unmatched_rule_names_its_first_failing_condition_with_the_value_seen() {
    let doc = rules(
        r#"
request:
  - name: admin
    match:
      path: {prefix: /admin}
      method: [GET, HEAD]
      headers: {x-env: prod}
    actions: [{request_headers: {set: {x-a: "1"}}}]
"#,
    );
    let path_fails = trace(&doc, &Request::get("/api/users?page=2"), 200);
    assert_eq!(miss_of(&path_fails, "admin"), r#"match.path: got "/api/users", wanted prefix "/admin""#);
    let method_fails = trace(&doc, &Request::get("/admin").method("POST"), 200);
    assert_eq!(miss_of(&method_fails, "admin"), r#"match.method: got "POST", wanted one of GET, HEAD"#);
    let header_absent = trace(&doc, &Request::get("/admin"), 200);
    assert_eq!(miss_of(&header_absent, "admin"), r#"match.headers.x-env: got nothing, wanted exact "prod""#);
}

#[test]
fn any_lists_each_alternative_and_not_says_its_block_matched() {
    let doc = rules(
        r#"
request:
  - name: either
    match:
      any:
        - cookies: {canary: always}
        - host: [a.example.com, "*.b.example.com"]
    actions: [{request_headers: {set: {x-a: "1"}}}]
  - name: not-internal
    match:
      not: {path: {segment_prefix: /internal}, headers: {x-debug: {present: true, invert: true}}}
    actions: [{request_headers: {set: {x-b: "1"}}}]
"#,
    );
    let events = trace(&doc, &Request::get("/internal/x").header("cookie", "canary=never"), 200);
    assert_eq!(
        miss_of(&events, "either"),
        "match.any: none of its 2 alternatives matched\n  \
         - match.any[0].cookies.canary: got \"never\", wanted exact \"always\"\n  \
         - match.any[1].host: none of its 2 alternatives matched\n    \
         - match.any[1].host[0]: got \"example.com\", wanted exact \"a.example.com\"\n    \
         - match.any[1].host[1]: got \"example.com\", wanted exact \"*.b.example.com\""
    );
    assert_eq!(miss_of(&events, "not-internal"), "match.not: the block under `not` matched");
    // An inverted test says so.
    let debug = trace(&doc, &Request::get("/").header("x-debug", "1"), 200);
    assert!(debug.contains(&Event::Rule { index: 1, name: "not-internal".into(), miss: None }), "{debug:#?}");
}

#[test]
fn source_and_status_conditions_explain_themselves() {
    let doc = rules(
        r#"
request:
  - name: office
    match: {source: {cidrs: [10.0.0.0/8], trusted_hops: 1}}
    actions: [{request_headers: {set: {x-a: "1"}}}]
response:
  - name: errors
    match: {status: [5xx, 429]}
    actions: [{response_headers: {set: {x-b: "1"}}}]
  - name: json
    match: {response_headers: {content-type: {prefix: application/json, invert: true}}}
    actions: [{response_headers: {set: {x-c: "1"}}}]
"#,
    );
    let request = Request::get("/").header("x-forwarded-for", "198.51.100.7");
    let events = trace(&doc, &request, 200);
    assert_eq!(
        miss_of(&events, "office"),
        r#"match.source: got "198.51.100.7", wanted in 10.0.0.0/8 (client taken 1 from the right of x-forwarded-for)"#
    );
    assert_eq!(miss_of(&events, "errors"), r#"match.status: got "200", wanted one of 5xx, 429"#);
    let json = Response { headers: vec![("content-type".into(), "application/json".into())], ..Response::ok() };
    let outcome = run_traced(&doc, &request, &json);
    assert_eq!(
        miss_of(&outcome.trace, "json"),
        r#"match.response_headers.content-type: got "application/json", wanted not prefix "application/json""#
    );
}

#[test]
fn changes_follow_the_rule_that_made_them_and_later_rules_are_listed_as_not_evaluated() {
    let doc = rules(
        r#"
request:
  - name: tag
    actions:
      - request_headers: {set: {x-a: "1"}, remove: [x-drop]}
      - response_headers: {add: {x-b: "2"}}
      - log: {level: info, message: "saw ${path}"}
  - name: hello
    match: {path: /hello}
    actions: [{respond: {status: 200, body: hi}}]
  - name: after-hello
    actions: [{request_headers: {set: {x-c: "1"}}}]
  - name: stopper
    stop: true
    actions: [{rewrite: {path: /v2}}]
  - name: after-stop
    actions: [{request_headers: {set: {x-d: "1"}}}]
"#,
    );
    let answered = trace(&doc, &Request::get("/hello").header("x-drop", "x"), 200);
    let request_header = |name: &str, edit: Edit| Event::Header { map: HeaderMap::Request, name: name.into(), edit };
    let rule = |index: usize, name: &str| Event::Rule { index, name: name.into(), miss: None };
    let skipped =
        |index: usize, name: &str, by: &str, reason| Event::Skipped { index, name: name.into(), by: by.into(), reason };
    assert_eq!(
        answered,
        vec![
            Event::Phase(Phase::Request),
            rule(0, "tag"),
            request_header("x-a", Edit::Set("1".into())),
            request_header("x-drop", Edit::Remove),
            Event::Deferred,
            Event::Logged { level: log::Level::Info, message: "saw /hello".into() },
            rule(1, "hello"),
            Event::Responded { status: 200, headers: vec![], body: "hi".into() },
            skipped(2, "after-hello", "hello", SkipReason::Answered),
            skipped(3, "stopper", "hello", SkipReason::Answered),
            skipped(4, "after-stop", "hello", SkipReason::Answered),
            // The proxy's own answer gets the deferred response headers too.
            Event::Phase(Phase::Response),
            Event::ApplyDeferred { rule: "tag".into() },
            Event::Header { map: HeaderMap::Response, name: "x-b".into(), edit: Edit::Add("2".into()) },
        ]
    );
    let forwarded = trace(&doc, &Request::get("/x"), 200);
    let tail: Vec<&Event> = forwarded.iter().skip_while(|e| **e != rule(3, "stopper")).collect();
    assert_eq!(
        tail,
        [
            &rule(3, "stopper"),
            &Event::Url { change: UrlChange::RewritePath, value: "/v2".into() },
            &skipped(4, "after-stop", "stopper", SkipReason::Stopped),
            &Event::Phase(Phase::Response),
            &Event::ApplyDeferred { rule: "tag".into() },
            &Event::Header { map: HeaderMap::Response, name: "x-b".into(), edit: Edit::Add("2".into()) },
        ]
    );
}

#[test]
fn a_refused_value_is_in_the_trace() {
    let doc = rules(
        r#"
request:
  - name: echo
    actions: [{request_headers: {set: {x-echo: "${query.q}"}}}]
"#,
    );
    let events = trace(&doc, &Request::get("/?q=a%0D%0Ab"), 200);
    assert!(
        events.contains(&Event::Refused(
            r#"rule "echo": refused a value for "x-echo": it contains CR, LF or NUL"#.into()
        )),
        "{events:#?}"
    );
}

/// A host that answers from a fixed request and records every call, to compare two runs.
struct RecordingHost {
    request: HashMap<String, String>,
    calls: Vec<String>,
}

impl Host for RecordingHost {
    fn header(&mut self, map: HeaderMap, name: &str) -> Option<String> {
        self.calls.push(format!("header {map:?} {name}"));
        match map {
            HeaderMap::Request => self.request.get(name).cloned(),
            HeaderMap::Response => (name == ":status").then(|| "200".to_owned()),
        }
    }
    fn header_names(&mut self, map: HeaderMap) -> Vec<String> {
        self.calls.push(format!("header_names {map:?}"));
        self.request.keys().cloned().collect()
    }
    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        self.calls.push(format!("set {map:?} {name} {value}"));
    }
    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        self.calls.push(format!("add {map:?} {name} {value}"));
    }
    fn remove_header(&mut self, map: HeaderMap, name: &str) {
        self.calls.push(format!("remove {map:?} {name}"));
    }
    fn source_address(&mut self) -> Option<String> {
        self.calls.push("source_address".into());
        Some("192.0.2.1:1000".into())
    }
    fn send_response(&mut self, status: u16, _: &[(&str, &str)], _: &str) -> bool {
        self.calls.push(format!("send_response {status}"));
        true
    }
}

fn host_calls(rules: &RuleSet, traced: bool, request: &[(&str, &str)]) -> Vec<String> {
    let mut host = RecordingHost {
        request: request.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        calls: Vec::new(),
    };
    let mut state = if traced { rules.new_traced_request() } else { rules.new_request() };
    rules.on_request_headers(&mut state, &mut host);
    if !state.responded() {
        rules.on_response_headers(&mut state, &mut host);
    }
    assert_eq!(state.trace().is_empty(), !traced);
    host.calls
}

#[test]
fn tracing_asks_the_proxy_nothing_more_and_only_for_what_rules_read() {
    let doc = rules(
        r#"
request:
  - name: a
    match: {path: {prefix: /api}, headers: {x-env: prod}, any: [{method: POST}, {source: {cidrs: [10.0.0.0/8]}}]}
    actions: [{request_headers: {set: {x-a: "1"}}}]
  - name: b
    match: {not: {headers: {x-skip: {present: true}}}}
    actions: [{response_headers: {set: {x-b: "${header.x-env}"}}}]
response:
  - name: c
    match: {status: 5xx}
    actions: [{response_headers: {set: {x-c: "1"}}}]
"#,
    );
    let requests: [&[(&str, &str)]; 3] = [
        &[(":path", "/web"), (":method", "GET"), ("x-env", "prod"), ("x-other", "1")],
        &[(":path", "/api/x"), (":method", "GET"), ("x-env", "prod")],
        &[(":path", "/api/x"), (":method", "POST"), ("x-env", "prod"), ("x-skip", "1")],
    ];
    for request in requests {
        let plain = host_calls(&doc, false, request);
        assert_eq!(host_calls(&doc, true, request), plain, "{request:?}");
        assert!(!plain.iter().any(|c| c.contains("x-other") || c.contains(":authority")), "{plain:?}");
    }
    // The first request fails on the path: nothing after it in rule a is fetched.
    let first = host_calls(&doc, false, requests[0]);
    assert!(!first.iter().any(|c| c == "source_address" || c.ends_with(":method")), "{first:?}");
}

/// Tracing every shipped case changes neither what the upstream nor what the client receives.
#[test]
fn a_traced_exchange_has_the_same_outcome_as_a_plain_one() {
    let mut compared = 0;
    for folder in ["rules", "tests/cases"] {
        for file in case_files(Path::new(folder)) {
            let cases = CaseFile::load(&file).unwrap();
            let text = std::fs::read_to_string(cases.rules_path(&file)).unwrap();
            let env: HashMap<String, String> = cases.env.clone().into_iter().collect();
            let doc = rulefilter::parse_with_env(&text, &env).unwrap();
            for case in &cases.cases {
                let (request, upstream) = (case.request.to_request(), case.upstream_response());
                let plain = run(&doc, &request, &upstream);
                let mut traced = run_traced(&doc, &request, &upstream);
                assert!(plain.trace.is_empty());
                let evaluated = traced.trace.iter().filter(|e| matches!(e, Event::Rule { .. })).count();
                assert!(evaluated > 0, "{}: {}", file.display(), case.name);
                traced.trace.clear();
                assert_eq!(traced, plain, "{}: {}", file.display(), case.name);
                compared += 1;
            }
        }
    }
    assert!(compared >= 85, "only {compared} cases");
}

#[test]
fn a_dry_run_rule_is_traced_with_what_it_would_do_and_writes_nothing() {
    let doc = rules(
        r#"
request:
  - name: block
    mode: dry_run
    stop: true
    actions: [{request_headers: {set: {x-a: "1"}}}, {redirect: {location: /elsewhere, status: 302}}]
  - name: after
    match: {headers: {x-a: {absent: true}}}
    actions: [{request_headers: {set: {x-b: "1"}}}]
"#,
    );
    let events = trace(&doc, &Request::get("/"), 200);
    let would: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::WouldDo(_))).collect();
    assert_eq!(
        would,
        [
            &Event::WouldDo(r#"set request header "x-a" to "1""#.into()),
            &Event::WouldDo(r#"redirect with 302 to "/elsewhere""#.into()),
            &Event::WouldDo("stop the phase".into()),
        ]
    );
    // The next rule ran and saw the request as it was; the only write is its own.
    let writes: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Header { .. })).collect();
    assert_eq!(writes, [&Event::Header { map: HeaderMap::Request, name: "x-b".into(), edit: Edit::Set("1".into()) }]);
}

/// Rules cannot edit pseudo-headers, so a trace must not show `rewrite` and `query` as writes to `:path` or
/// `:authority`: it names the action, in the events, in a dry run's words and in what the tool prints.
#[test]
fn rewrites_and_query_edits_are_traced_as_their_action_not_as_pseudo_header_writes() {
    let doc = rules(
        r#"
request:
  - name: move
    actions: [{rewrite: {path_prefix: {from: /old/, to: /new/}, host: backend.internal}}]
  - name: tidy
    actions: [{query: {remove: [utm_source]}}]
  - name: try
    mode: dry_run
    actions: [{rewrite: {path: /tried}}, {query: {set: {page: "1"}}}]
"#,
    );
    let events = trace(&doc, &Request::get("/old/a?utm_source=x&b=2"), 200);
    let url = |change, value: &str| Event::Url { change, value: value.into() };
    let changes: Vec<&Event> =
        events.iter().filter(|e| matches!(e, Event::Url { .. } | Event::Header { .. } | Event::WouldDo(_))).collect();
    assert_eq!(
        changes,
        [
            &url(UrlChange::RewritePath, "/new/a?utm_source=x&b=2"),
            &url(UrlChange::RewriteHost, "backend.internal"),
            &url(UrlChange::Query, "/new/a?b=2"),
            &Event::WouldDo(r#"rewrite the path to "/tried?b=2""#.into()),
            &Event::WouldDo(r#"edit the query, the path becomes "/new/a?b=2&page=1""#.into()),
        ]
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .args(["trace", "rules/canary.yaml", "--path", "/shop?canary=off"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("        edit the query, the path becomes \"/shop\"\n"), "{printed}");
    assert!(!printed.contains(":path"), "a trace shows no pseudo-header edit:\n{printed}");
}
