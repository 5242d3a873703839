//! The filter's own answer in the response phase carries the response header edits made before it.
//!
//! Envoy sends such an answer straight to the client, past the filter chain, so the simulated proxy (which
//! models that) drops the upstream's response with its edits: what the answer carries is the engine's doing.
//! Each kind of edit runs twice with an answer that has its own header of the same name: made in the request
//! phase (the edits then run on the answer) and in the response phase (they ran on the upstream's response).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{exchange_with, rules};
use rulefilter::simulate::{run_traced, Outcome, Request, Response};
use rulefilter::trace::Event;

/// The answer every document here makes: 503 with its own `x-a` and `x-up`.
const ANSWER: &str = "{respond: {status: 503, headers: {x-a: own, x-up: own-up}, body: \"sorry\\n\"}}";

/// `edits` in a request rule, then a request rule that answers: the edits run on the answer.
fn request_phase(edits: &str) -> Outcome {
    let document = format!(
        "request:\n  - name: edit\n    actions: [{{response_headers: {edits}}}]\n  - name: answer\n    actions: [{ANSWER}]\n"
    );
    exchange_with(&rules(&document), &Request::get("/"), &Response::ok())
}

/// `edits` in a response rule, then a response rule that answers the upstream's 500 (with `upstream` headers).
fn response_phase(edits: &str, upstream: &[(&str, &str)]) -> Outcome {
    let document = format!(
        "response:\n  - name: edit\n    actions: [{{response_headers: {edits}}}]\n  - name: answer\n    match: \
         {{status: 5xx}}\n    actions: [{ANSWER}]\n"
    );
    exchange_with(&rules(&document), &Request::get("/"), &failing(upstream))
}

/// The same edits deferred from a request rule, answered by a response rule.
fn deferred(edits: &str, upstream: &[(&str, &str)]) -> Outcome {
    let document = format!(
        "request:\n  - name: edit\n    actions: [{{response_headers: {edits}}}]\nresponse:\n  - name: answer\n    \
         match: {{status: 5xx}}\n    actions: [{ANSWER}]\n"
    );
    exchange_with(&rules(&document), &Request::get("/"), &failing(upstream))
}

/// An upstream answering 500 with its own headers, which the answer must never take unless an edit wrote them.
fn failing(headers: &[(&str, &str)]) -> Response {
    let mut own =
        vec![("server".to_owned(), "upstream".to_owned()), ("content-type".to_owned(), "text/html".to_owned())];
    own.extend(headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
    Response { status: 500, headers: own, body: "<h1>oops</h1>".into() }
}

/// Every value of `name` the client received.
fn values<'o>(outcome: &'o Outcome, name: &str) -> Vec<&'o str> {
    outcome.response.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

/// The filter answered, and none of the upstream's own headers reached the client.
fn answered(outcome: &Outcome) -> &Outcome {
    assert!(outcome.responded_locally, "{outcome:?}");
    assert_eq!((outcome.response.status, outcome.response.body.as_str()), (503, "sorry\n"));
    for untouched in ["server", "content-type"] {
        assert_eq!(values(outcome, untouched), Vec::<&str>::new(), "{untouched} is the upstream's: {outcome:?}");
    }
    outcome
}

/// `x-a` and `x-up` as the client got them.
fn a_and_up(outcome: &Outcome) -> (Vec<&str>, Vec<&str>) {
    let outcome = answered(outcome);
    (values(outcome, "x-a"), values(outcome, "x-up"))
}

#[test]
fn the_issue_case_the_request_rules_and_earlier_response_rules_edits_reach_the_friendly_page() {
    let document = rules(
        "request:\n  - name: req-tag\n    actions: [{response_headers: {set: {x-req: \"1\"}}}]\nresponse:\n  - \
         name: tag\n    actions: [{response_headers: {set: {x-tag: a}}}]\n  - name: replace-5xx\n    match: \
         {status: 5xx}\n    actions: [{respond: {status: 503, body: \"sorry\\n\"}}]\n",
    );
    let outcome = exchange_with(&document, &Request::get("/"), &failing(&[]));
    assert_eq!(outcome.response.status, 503);
    assert_eq!(outcome.response.header("x-req"), Some("1"));
    assert_eq!(outcome.response.header("x-tag"), Some("a"));
    assert_eq!(outcome.response.header("server"), None);
}

#[test]
fn set_wins_over_the_answers_own_header_in_either_phase() {
    let edits = "{set: {x-a: edit}}";
    let expected = (vec!["edit"], vec!["own-up"]);
    assert_eq!(a_and_up(&request_phase(edits)), expected);
    assert_eq!(a_and_up(&response_phase(edits, &[])), expected);
    assert_eq!(a_and_up(&response_phase(edits, &[("x-a", "up")])), expected);
    assert_eq!(a_and_up(&deferred(edits, &[("x-a", "up")])), expected);
}

#[test]
fn remove_takes_the_answers_own_header_away_in_either_phase() {
    let edits = "{remove: [x-a]}";
    let expected = (vec![], vec!["own-up"]);
    assert_eq!(a_and_up(&request_phase(edits)), expected);
    assert_eq!(a_and_up(&response_phase(edits, &[("x-a", "up")])), expected);
    // Removing a header the upstream did not send is still the edit's word on that name.
    assert_eq!(a_and_up(&response_phase(edits, &[])), expected);
    assert_eq!(a_and_up(&deferred(edits, &[])), expected);
}

#[test]
fn set_if_absent_carries_what_it_wrote_in_the_upstreams_response() {
    let edits = "{set_if_absent: {x-a: edit}}";
    // On a request-phase answer it tests the answer, which has x-a.
    assert_eq!(a_and_up(&request_phase(edits)), (vec!["own"], vec!["own-up"]));
    // In the response phase it tested the upstream's response: absent there, so it wrote, and that is carried.
    assert_eq!(a_and_up(&response_phase(edits, &[])), (vec!["edit"], vec!["own-up"]));
    assert_eq!(a_and_up(&deferred(edits, &[])), (vec!["edit"], vec!["own-up"]));
    // Present there: it wrote nothing, so nothing is carried and the answer keeps its own.
    assert_eq!(a_and_up(&response_phase(edits, &[("x-a", "up")])), (vec!["own"], vec!["own-up"]));
}

#[test]
fn add_carries_the_header_as_it_left_it_each_value_apart() {
    let edits = "{add: {x-a: edit}}";
    assert_eq!(a_and_up(&request_phase(edits)), (vec!["own", "edit"], vec!["own-up"]));
    assert_eq!(a_and_up(&response_phase(edits, &[])), (vec!["edit"], vec!["own-up"]));
    // The name was written: its values as the edit left them, the upstream's included, replace the answer's.
    assert_eq!(a_and_up(&response_phase(edits, &[("x-a", "up")])), (vec!["up", "edit"], vec!["own-up"]));
    let cookies = "{add: {set-cookie: \"a=1; Path=/\"}}";
    let twice = format!(
        "response:\n  - name: one\n    actions: [{{response_headers: {cookies}}}]\n  - name: two\n    actions: \
         [{{response_headers: {{add: {{set-cookie: \"b=2; Path=/\"}}}}}}]\n  - name: answer\n    match: {{status: \
         5xx}}\n    actions: [{ANSWER}]\n"
    );
    let outcome = exchange_with(&rules(&twice), &Request::get("/"), &failing(&[]));
    assert_eq!(values(answered(&outcome), "set-cookie"), ["a=1; Path=/", "b=2; Path=/"]);
}

#[test]
fn copy_carries_the_copy_and_not_its_source() {
    let edits = "{copy: [{from: x-up, to: x-a}]}";
    // The answer's own x-up is copied onto its x-a.
    assert_eq!(a_and_up(&request_phase(edits)), (vec!["own-up"], vec!["own-up"]));
    // The upstream's x-up was copied: the copy is carried, the source (untouched) is not.
    assert_eq!(a_and_up(&response_phase(edits, &[("x-up", "up")])), (vec!["up"], vec!["own-up"]));
    assert_eq!(a_and_up(&deferred(edits, &[("x-up", "up")])), (vec!["up"], vec!["own-up"]));
}

#[test]
fn rename_carries_the_new_name_and_takes_the_old_one_away() {
    let edits = "{rename: [{from: x-up, to: x-a}]}";
    assert_eq!(a_and_up(&request_phase(edits)), (vec!["own-up"], vec![]));
    assert_eq!(a_and_up(&response_phase(edits, &[("x-up", "up")])), (vec!["up"], vec![]));
    assert_eq!(a_and_up(&deferred(edits, &[("x-up", "up")])), (vec!["up"], vec![]));
}

#[test]
fn removal_by_prefix_or_regex_takes_away_the_names_it_removed() {
    for edits in ["{remove_prefix: [x-a]}", "{remove_regex: ['^x-a$']}"] {
        assert_eq!(a_and_up(&request_phase(edits)), (vec![], vec!["own-up"]), "{edits}");
        assert_eq!(a_and_up(&response_phase(edits, &[("x-a", "up")])), (vec![], vec!["own-up"]), "{edits}");
        assert_eq!(a_and_up(&deferred(edits, &[("x-a", "up")])), (vec![], vec!["own-up"]), "{edits}");
        // It found no such name in the upstream's response: it removed nothing, and the answer keeps its own.
        assert_eq!(a_and_up(&response_phase(edits, &[])), (vec!["own"], vec!["own-up"]), "{edits}");
    }
}

#[test]
fn a_redirect_made_in_the_response_phase_carries_them_too() {
    let document = rules(
        "request:\n  - name: tag\n    actions: [{response_headers: {set: {x-req: \"1\"}}}]\nresponse:\n  - name: \
         moved\n    match: {status: 404}\n    actions: [{redirect: {location: /elsewhere}}]\n",
    );
    let outcome = exchange_with(&document, &Request::get("/"), &Response { status: 404, ..Response::ok() });
    assert_eq!(outcome.response.status, 302);
    assert_eq!(outcome.response.header("location"), Some("/elsewhere"));
    assert_eq!(outcome.response.header("x-req"), Some("1"));
}

#[test]
fn edits_of_a_dry_run_rule_are_not_carried_and_a_dry_run_answer_says_what_it_would_carry() {
    let document = rules(
        "request:\n  - name: tag\n    actions: [{response_headers: {set: {x-req: \"1\"}, remove: [server]}}]\n\
         response:\n  - name: tried\n    mode: dry_run\n    actions: [{response_headers: {set: {x-tried: \"1\"}}}]\n  \
         - name: replace\n    mode: dry_run\n    match: {status: 5xx}\n    actions: [{respond: {status: 503}}]\n",
    );
    let outcome = run_traced(&document, &Request::get("/"), &failing(&[]));
    assert!(!outcome.responded_locally);
    let would: Vec<&str> = outcome
        .trace
        .iter()
        .filter_map(|e| if let Event::WouldDo(what) = e { Some(what.as_str()) } else { None })
        .collect();
    assert!(would.contains(&"respond 503 carrying x-req; without server"), "{would:?}");
}

#[test]
fn a_trace_names_what_the_answer_carries() {
    let document = rules(
        "request:\n  - name: tag\n    actions: [{response_headers: {set: {x-req: \"1\"}, remove: [server]}}]\n\
         response:\n  - name: replace\n    match: {status: 5xx}\n    actions: [{respond: {status: 503}}]\n",
    );
    let outcome = run_traced(&document, &Request::get("/"), &failing(&[]));
    let carried = outcome.trace.iter().find_map(|e| match e {
        Event::Carried { kept, removed } => Some((kept.clone(), removed.clone())),
        _ => None,
    });
    assert_eq!(carried, Some((vec!["x-req".to_owned()], vec!["server".to_owned()])));
    let responded = outcome.trace.iter().find_map(|e| match e {
        Event::Responded { headers, .. } => Some(headers.clone()),
        _ => None,
    });
    assert_eq!(responded, Some(vec![("x-req".to_owned(), "1".to_owned())]));
}

#[test]
fn an_answer_in_the_request_phase_is_unchanged_by_the_response_phase_notes() {
    // A request-phase answer goes through the filter's response callback: only the deferred edits apply,
    // once, and no response rule runs.
    let document = rules(
        "request:\n  - name: tag\n    actions: [{response_headers: {add: {x-req: \"1\"}}}]\n  - name: answer\n    \
         actions: [{respond: {status: 403}}]\nresponse:\n  - name: replace\n    actions: [{respond: {status: 503}}]\n",
    );
    let outcome = exchange_with(&document, &Request::get("/"), &Response::ok());
    assert_eq!(outcome.response.status, 403);
    assert_eq!(values(&outcome, "x-req"), ["1"]);
}
