//! Metrics through a real Envoy: exact counts after a known sequence of requests, in `/stats` under the names
//! the module defines and in `/stats/prometheus` as labelled series (with the README's `stats_tags`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{document_json, echo, get, options, prometheus, request, start, Envoy, Plugin, Reload};

const DOCUMENT: &str = r#"
request:
  - name: deny-admin
    match: {path: {prefix: /admin}}
    actions:
      - log: {message: "denied ${path}"}
      - respond: {status: 403}
  - name: v1.tag
    actions:
      - request_headers: {set: {x-v: "${query.v}"}}
      - response_headers: {set: {x-seen: "yes"}}
  - name: would-block-posts
    mode: dry_run
    match: {method: POST}
    actions: [{respond: {status: 405}}]
response:
  - name: from-echo
    match: {response_headers: {x-upstream: echo}}
    actions: [{response_headers: {set: {x-from: echo}}}]
"#;

fn start_with(document: &str) -> (support::EchoUpstream, Envoy) {
    let upstream = echo();
    let document: serde_yaml::Value = serde_yaml::from_str(document).unwrap();
    let envoy = start(options(Plugin::new("metrics", Some(document_json(&document))), &upstream));
    (upstream, envoy)
}

/// Waits until the module's once-a-second flush has delivered `requests` requests, then one more period so
/// that nothing else is still on its way.
fn settled(envoy: &Envoy, requests: u64) -> BTreeMap<String, u64> {
    let series = r#"rulefilter_requests_total{plugin="default.metrics"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while prometheus(envoy).get(series).copied() != Some(requests) {
        assert!(Instant::now() < deadline, "{series} never reached {requests}: {:#?}", prometheus(envoy));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1200));
    prometheus(envoy)
}

#[test]
fn a_known_sequence_of_requests_gives_exact_labelled_counts() {
    let (_upstream, envoy) = start_with(DOCUMENT);
    for _ in 0..3 {
        assert_eq!(get(envoy.listener, "/admin/users").status, 403);
    }
    for _ in 0..2 {
        assert_eq!(get(envoy.listener, "/?v=ok").header("x-from"), Some("echo"));
    }
    // %0D%0A decodes to CR LF: the value is refused (the rest of the rule still applies).
    assert_eq!(get(envoy.listener, "/?v=a%0D%0Ab").status, 200);
    // Dry run: counted as a would-be 405, answered by the upstream.
    assert_eq!(request(envoy.listener, "POST", "/form", &[("content-length", "0")]).status, 200);

    let expected: BTreeMap<String, u64> = [
        (r#"rulefilter_requests_total{plugin="default.metrics"}"#, 7),
        (r#"rulefilter_direct_responses_total{plugin="default.metrics"}"#, 3),
        (r#"rulefilter_refused_values_total{plugin="default.metrics"}"#, 1),
        (r#"rulefilter_rule_matches_total{plugin="default.metrics",rule="deny-admin",mode="enforce"}"#, 3),
        (r#"rulefilter_rule_actions_total{plugin="default.metrics",rule="deny-admin",action="log",mode="enforce"}"#, 3),
        (
            r#"rulefilter_rule_actions_total{plugin="default.metrics",rule="deny-admin",action="respond",mode="enforce"}"#,
            3,
        ),
        (r#"rulefilter_rule_matches_total{plugin="default.metrics",rule="v1.tag",mode="enforce"}"#, 4),
        (
            r#"rulefilter_rule_actions_total{plugin="default.metrics",rule="v1.tag",action="request_headers",mode="enforce"}"#,
            4,
        ),
        (
            r#"rulefilter_rule_actions_total{plugin="default.metrics",rule="v1.tag",action="response_headers",mode="enforce"}"#,
            4,
        ),
        (r#"rulefilter_rule_matches_total{plugin="default.metrics",rule="would-block-posts",mode="dry_run"}"#, 1),
        (
            r#"rulefilter_rule_actions_total{plugin="default.metrics",rule="would-block-posts",action="respond",mode="dry_run"}"#,
            1,
        ),
        (r#"rulefilter_rule_matches_total{plugin="default.metrics",rule="from-echo",mode="enforce"}"#, 4),
        (
            r#"rulefilter_rule_actions_total{plugin="default.metrics",rule="from-echo",action="response_headers",mode="enforce"}"#,
            4,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(settled(&envoy, 7), expected);

    // Plain `/stats` shows the names the module defined, labels inline.
    let name =
        "wasmcustom.plugin=.=default.metrics;.;rule=.=deny-admin;.;mode=.=enforce;.;rulefilter_rule_matches_total";
    assert_eq!(envoy.stat(name), Some(3));
}

#[test]
fn a_rejected_document_is_counted_and_counters_carry_over_a_reload() {
    let (_upstream, mut envoy) = start_with(DOCUMENT);
    assert_eq!(get(envoy.listener, "/admin").status, 403);
    settled(&envoy, 1);

    let broken = r#"{"request":[{"name":"deny-admin","match":{"path":{"regex":"("}}}]}"#;
    assert_eq!(envoy.push_config(Some(broken.to_owned())).unwrap(), Reload::Refused);
    let errors = r#"rulefilter_config_errors_total{plugin="default.metrics"}"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !prometheus(&envoy).contains_key(errors) {
        assert!(Instant::now() < deadline, "{errors} never appeared: {:#?}", prometheus(&envoy));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(prometheus(&envoy)[errors], 1);

    // A new document: same plugin, same rule name, so the same series keeps counting.
    let document: serde_yaml::Value = serde_yaml::from_str(DOCUMENT).unwrap();
    assert_eq!(envoy.push_config(Some(document_json(&document))).unwrap(), Reload::Applied);
    assert_eq!(get(envoy.listener, "/admin").status, 403);
    let counts = settled(&envoy, 2);
    assert_eq!(
        counts[r#"rulefilter_rule_matches_total{plugin="default.metrics",rule="deny-admin",mode="enforce"}"#],
        2
    );
    assert_eq!(counts[errors], 1);
}
