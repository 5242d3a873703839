//! Helpers for the native tests that run documents on the simulated proxy.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;

use rulefilter::simulate::{run, Outcome, Request, Response};
use rulefilter::RuleSet;

/// Compiles a document that must be valid, with the environment `${env.*}` tests use.
pub fn rules(yaml: &str) -> RuleSet {
    let env: HashMap<String, String> = [("CLUSTER".to_owned(), "eu-west-1".to_owned())].into();
    rulefilter::parse_with_env(yaml, &env).unwrap_or_else(|e| panic!("document should compile:\n{e}\n---\n{yaml}"))
}

/// The errors of a document that must be refused, one line each.
pub fn errors(yaml: &str) -> Vec<String> {
    let env: HashMap<String, String> = HashMap::new();
    match rulefilter::parse_with_env(yaml, &env) {
        Ok(_) => panic!("document should be refused:\n{yaml}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// Runs a request against an upstream answering 200, checking the engine never touched a map out of phase.
pub fn exchange(rules: &RuleSet, request: &Request) -> Outcome {
    exchange_with(rules, request, &Response::ok())
}

pub fn exchange_with(rules: &RuleSet, request: &Request, upstream: &Response) -> Outcome {
    let outcome = run(rules, request, upstream);
    assert!(outcome.host_errors.is_empty(), "host calls outside their phase: {:?}", outcome.host_errors);
    outcome
}

/// Every value of a header as the upstream received it.
pub fn upstream_values<'o>(outcome: &'o Outcome, name: &str) -> Vec<&'o str> {
    let headers = outcome.upstream_request.as_ref().expect("the upstream should have been called");
    headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

pub fn upstream_header<'o>(outcome: &'o Outcome, name: &str) -> Option<&'o str> {
    upstream_values(outcome, name).first().copied()
}

/// A document with one request rule that tags the upstream request when `conditions` hold.
pub fn tagging(conditions: &str) -> RuleSet {
    rules(&format!(
        "request:\n  - name: probe\n    match: {conditions}\n    actions:\n      - request_headers: {{set: {{x-matched: 'yes'}}}}\n"
    ))
}

pub fn matched(rules: &RuleSet, request: &Request) -> bool {
    upstream_header(&exchange(rules, request), "x-matched") == Some("yes")
}

/// A document with one response rule that tags the response when `conditions` hold.
pub fn tagging_response(conditions: &str) -> RuleSet {
    rules(&format!(
        "response:\n  - name: probe\n    match: {conditions}\n    actions:\n      - response_headers: {{set: {{x-matched: 'yes'}}}}\n"
    ))
}

pub fn response_matched(rules: &RuleSet, request: &Request, upstream: &Response) -> bool {
    exchange_with(rules, request, upstream).response.header("x-matched") == Some("yes")
}

/// Splits a command line at spaces outside single quotes, as a shell would for the README's examples.
pub fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}
