//! Every limit in `rulefilter::limits`: a document past one is refused with the place and the bound; a value
//! past one at run time is refused (or cut, for bodies and log lines), never sent, and the request goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{errors, exchange, rules, upstream_header};
use rulefilter::limits::*;
use rulefilter::simulate::Request;

fn one_rule(actions: &str) -> String {
    format!("request:\n  - name: r\n    actions: {actions}\n")
}

#[test]
fn a_document_over_the_size_limit_is_refused_before_it_is_parsed() {
    let padding = "#".repeat(MAX_DOCUMENT_BYTES);
    let found = errors(&format!("{padding}\nrequest: []\n"));
    assert_eq!(found, [format!("document: {} bytes; at most 1048576 are accepted", MAX_DOCUMENT_BYTES + 13)]);
}

#[test]
fn rules_and_actions_are_counted() {
    let rule = "  - {name: r%, actions: [{log: {message: x}}]}\n";
    let many: String = (0..=MAX_RULES).map(|i| rule.replace('%', &i.to_string())).collect();
    assert_eq!(
        errors(&format!("request:\n{many}")),
        ["document: 1001 rules; a document holds at most 1000 (request and response together)"]
    );
    let just_enough: String = (0..MAX_RULES).map(|i| rule.replace('%', &i.to_string())).collect();
    assert_eq!(rules(&format!("request:\n{just_enough}")).rule_count(rulefilter::Phase::Request), MAX_RULES);

    let actions = vec!["{log: {message: x}}"; MAX_ACTIONS + 1].join(", ");
    assert_eq!(
        errors(&one_rule(&format!("[{actions}]"))),
        [r#"request[0] "r": actions: 65 actions; a rule has at most 64: split it into two rules"#]
    );
}

#[test]
fn templates_and_bodies_have_a_length_limit() {
    let long = "a".repeat(MAX_TEMPLATE_BYTES + 1);
    assert_eq!(
        errors(&one_rule(&format!("[{{request_headers: {{set: {{x-long: {long}}}}}}}]"))),
        [r#"request[0] "r": actions[0].request_headers.set.x-long: 8193 bytes long; at most 8192 are allowed here"#]
    );
    // A body may be an error page: longer than a header value, still bounded.
    let page = "p".repeat(MAX_BODY_BYTES);
    rules(&one_rule(&format!("[{{respond: {{status: 503, body: {page}}}}}]")));
    assert_eq!(
        errors(&one_rule(&format!("[{{respond: {{status: 503, body: {page}p}}}}]"))),
        [r#"request[0] "r": actions[0].respond.body: 65537 bytes long; at most 65536 are allowed here"#]
    );
}

#[test]
fn a_rendered_header_value_over_the_limit_is_refused_and_the_request_goes_on() {
    let rules =
        rules(&one_rule(r#"[{request_headers: {set: {x-twice: "${header.x-big}${header.x-big}", x-kept: "yes"}}}]"#));
    let fits = "b".repeat(MAX_HEADER_VALUE_BYTES / 2);
    let outcome = exchange(&rules, &Request::get("/").header("x-big", &fits));
    assert_eq!(upstream_header(&outcome, "x-twice").map(str::len), Some(MAX_HEADER_VALUE_BYTES));

    let too_big = "b".repeat(MAX_HEADER_VALUE_BYTES / 2 + 1);
    let outcome = exchange(&rules, &Request::get("/").header("x-big", &too_big));
    assert_eq!(upstream_header(&outcome, "x-twice"), None);
    assert_eq!(upstream_header(&outcome, "x-kept"), Some("yes"));
    assert_eq!(outcome.response.status, 200);
}

#[test]
fn a_rewritten_path_or_redirect_over_the_limit_is_refused() {
    let rules = rules(
        r#"
request:
  - name: grow-path
    match: {path: {prefix: /grow}}
    actions: [{rewrite: {path: "/x/${header.x-big}${header.x-big}"}}]
  - name: bounce
    match: {path: {prefix: /bounce}}
    actions: [{redirect: {path: "/y/${header.x-big}${header.x-big}"}}]
"#,
    );
    let big = "b".repeat(MAX_HEADER_VALUE_BYTES / 2);
    let grown = exchange(&rules, &Request::get("/grow").header("x-big", &big));
    assert_eq!(upstream_header(&grown, ":path"), Some("/grow"));
    let bounced = exchange(&rules, &Request::get("/bounce").header("x-big", &big));
    assert_eq!(bounced.response.status, 200, "the refused redirect lets the request through");
    assert!(bounced.upstream_request.is_some());
}

#[test]
fn rendering_stops_at_the_cap_so_one_request_cannot_grow_a_body_without_bound() {
    // 100 references to a 1 KiB header would render 100 KiB; the body is cut at the cap.
    let references = "${header.x-k}".repeat(100);
    let rules = rules(&one_rule(&format!(r#"[{{respond: {{status: 200, body: "{references}"}}}}]"#)));
    let kib = "é".repeat(512);
    let outcome = exchange(&rules, &Request::get("/").header("x-k", &kib));
    assert_eq!(outcome.response.body.len(), MAX_RENDERED_BYTES);
    assert!(outcome.response.body.chars().all(|c| c == 'é'));
}
