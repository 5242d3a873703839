//! What the engine counts, on the simulated proxy. The e2e suite checks the same counters in Envoy's `/stats`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;

use common::{exchange, exchange_with, rules};
use rulefilter::metrics::Counter;
use rulefilter::simulate::{Outcome, Request, Response};
use rulefilter::RuleSet;

/// Adds an exchange's counts to `tally`, keyed `metric{labels}` as Prometheus would show them (no plugin).
fn tally(rules: &RuleSet, outcome: &Outcome, tally: &mut BTreeMap<String, u64>) {
    let counters = rules.counters();
    for id in &outcome.counted {
        let key = match counters[id.0 as usize] {
            Counter::Requests => "requests".to_owned(),
            Counter::DirectResponses => "direct_responses".to_owned(),
            Counter::RefusedValues => "refused_values".to_owned(),
            Counter::RuleMatched { rule, dry_run } => format!("matches{{{rule},{}}}", mode(dry_run)),
            Counter::RuleAction { rule, action, dry_run } => format!("actions{{{rule},{action},{}}}", mode(dry_run)),
            Counter::RateLimited { rule, dry_run } => format!("rate_limited{{{rule},{}}}", mode(dry_run)),
            Counter::RateLimitFailures { rule, dry_run } => format!("rate_limit_failures{{{rule},{}}}", mode(dry_run)),
        };
        *tally.entry(key).or_default() += 1;
    }
}

fn mode(dry_run: bool) -> &'static str {
    if dry_run {
        "dry_run"
    } else {
        "enforce"
    }
}

const DOCUMENT: &str = r#"
request:
  - name: deny-admin
    match: {path: {prefix: /admin}}
    actions:
      - log: {message: denied}
      - respond: {status: 403}
  - name: tag
    actions:
      - request_headers: {set: {x-tag: "${header.x-value}"}}
      - response_headers: {set: {x-seen: "yes"}}
  - name: would-block
    mode: dry_run
    match: {method: POST}
    actions: [{respond: {status: 405}}]
response:
  - name: server-errors
    match: {status: 5xx}
    actions: [{response_headers: {set: {x-error: "yes"}}}]
"#;

#[test]
fn a_known_sequence_gives_exact_counts() {
    let rules = rules(DOCUMENT);
    let mut counts = BTreeMap::new();
    for request in [
        Request::get("/admin/users"),
        Request::get("/"),
        Request::get("/").header("x-value", "bad\r\nvalue"),
        Request::get("/form").method("POST"),
    ] {
        tally(&rules, &exchange(&rules, &request), &mut counts);
    }
    let failing = Response { status: 503, headers: Vec::new(), body: String::new() };
    tally(&rules, &exchange_with(&rules, &Request::get("/"), &failing), &mut counts);

    let expected: BTreeMap<String, u64> = [
        ("requests", 5),
        ("direct_responses", 1),
        ("refused_values", 1),
        ("matches{deny-admin,enforce}", 1),
        ("actions{deny-admin,log,enforce}", 1),
        ("actions{deny-admin,respond,enforce}", 1),
        ("matches{tag,enforce}", 4),
        ("actions{tag,request_headers,enforce}", 4),
        ("actions{tag,response_headers,enforce}", 4),
        // A dry-run rule counts what it would have done; the response it would have sent is not a direct response.
        ("matches{would-block,dry_run}", 1),
        ("actions{would-block,respond,dry_run}", 1),
        ("matches{server-errors,enforce}", 1),
        ("actions{server-errors,response_headers,enforce}", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(counts, expected);
}

#[test]
fn a_document_in_dry_run_counts_every_rule_as_dry_run() {
    let rules = rules(&format!("mode: dry_run\n{DOCUMENT}"));
    let mut counts = BTreeMap::new();
    tally(&rules, &exchange(&rules, &Request::get("/admin")), &mut counts);
    assert_eq!(counts.get("direct_responses"), None);
    assert_eq!(counts.get("matches{deny-admin,dry_run}"), Some(&1));
    assert_eq!(counts.get("actions{deny-admin,respond,dry_run}"), Some(&1));
    // Nothing was sent, so the phase went on to the next rules.
    assert_eq!(counts.get("matches{tag,dry_run}"), Some(&1));
}

#[test]
fn every_stat_name_is_unique_and_parses_back_into_its_labels() {
    let rules = rules(DOCUMENT);
    let names: Vec<String> = rules.counters().iter().map(|c| c.stat_name("default.edge")).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    // Two actions of one kind in one rule would share a name; this document has none.
    assert_eq!(unique.len(), names.len());
    for (name, counter) in names.iter().zip(rules.counters()) {
        let labels: BTreeMap<&str, &str> = name.split(";.;").filter_map(|part| part.split_once("=.=")).collect();
        assert_eq!(labels["plugin"], "default.edge", "{name}");
        match counter {
            Counter::RuleMatched { rule, .. } | Counter::RuleAction { rule, .. } => assert_eq!(labels["rule"], rule),
            _ => assert!(!labels.contains_key("rule")),
        }
        assert!(name.rsplit(";.;").next().unwrap().starts_with("rulefilter_"), "{name}");
    }
}

#[test]
fn the_shipped_bootstrap_override_has_the_modules_stats_tags() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/stats-tags-bootstrap.yaml");
    let manifest: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let bootstrap: serde_json::Value =
        serde_json::from_str(manifest["data"]["custom_bootstrap.json"].as_str().unwrap()).unwrap();
    let tags: Vec<(&str, &str)> = bootstrap["stats_config"]["stats_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| (tag["tag_name"].as_str().unwrap(), tag["regex"].as_str().unwrap()))
        .collect();
    assert_eq!(tags, rulefilter::metrics::STATS_TAGS);
}
