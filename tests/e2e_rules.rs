//! Every rules document in `rules/` runs in a real Envoy, configured as istiod configures it, and every one of
//! its test cases (`<name>.test.yaml`) is replayed there and judged by the same `cases::check` the offline run
//! uses (tests/rule_cases.rs): the simulated proxy and the module cannot disagree unnoticed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::Path;

use rulefilter::cases::{case_files, check, Case, CaseFile, Observed, Scheme, UpstreamRequest};
use support::{
    document_json, echo, options, start, tls, ClientRequest, EchoUpstream, Envoy, ListenerTls, Plugin, Scripted,
};

#[test]
fn every_rules_document_behaves_in_envoy_as_its_cases_say() {
    let examples = case_files(&support::project_dir().join("rules"));
    assert!(examples.len() >= 7, "rules/ should hold hello and at least six real-world documents: {examples:?}");
    let files = [examples, case_files(&support::project_dir().join("tests/cases"))].concat();
    let mut failures = Vec::new();
    let mut count = 0;
    for file in &files {
        let (cases, report) = replay(file);
        count += cases;
        failures.extend(report);
    }
    assert!(failures.is_empty(), "{} of {count} cases failed in Envoy:\n{}", failures.len(), failures.join("\n"));
    println!("{count} cases from {} documents passed through Envoy", files.len());
}

/// Starts an Envoy with the file's document and runs its cases; returns how many ran and every difference.
fn replay(file: &Path) -> (usize, Vec<String>) {
    let cases = CaseFile::load(file).unwrap_or_else(|e| panic!("{e}"));
    let rules_path = cases.rules_path(file);
    let document: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&rules_path).unwrap()).unwrap();
    let name = rules_path.file_stem().unwrap().to_string_lossy().into_owned();
    let mut plugin = Plugin::new(&name, Some(document_json(&document)));
    plugin.env = cases.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let upstream = echo();
    let mut options = options(plugin, &upstream);
    if let Some((issuer, jwks)) = cases.jwt_authn(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())) {
        options = options.filter_before(rulefilter::local::istio::jwt_authn(&issuer, &jwks));
    }
    // An `https` case goes to a listener that terminates TLS, as a gateway's HTTPS listener does.
    let https = cases
        .cases
        .iter()
        .any(|c| c.request.scheme == Scheme::Https)
        .then(|| tls::self_signed(&support::fresh_dir(&format!("{name}-tls"))));
    if let Some(files) = &https {
        options = options.https_listener(files.clone());
    }
    let envoy = start(options);
    let mut failures = Vec::new();
    // `at` is seconds after the file's first case: wait for real until then (the simulated clock jumps).
    let started = std::time::Instant::now();
    for case in &cases.cases {
        if let Some(at) = case.at {
            let due = started + std::time::Duration::from_secs_f64(at);
            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
        }
        for _ in 1..case.repeat() {
            run(&envoy, &upstream, case, https.as_ref());
        }
        let observed = run(&envoy, &upstream, case, https.as_ref());
        for difference in check(&case.expect, &observed) {
            failures.push(format!("{} / {}: {difference}", file.display(), case.name));
        }
    }
    (cases.cases.len(), failures)
}

/// Sends one case's request through Envoy, the upstream answering as the case says.
fn run(envoy: &Envoy, upstream: &EchoUpstream, case: &Case, https: Option<&ListenerTls>) -> Observed {
    let answer = case.upstream_response();
    upstream.script(Some(Scripted { status: answer.status, headers: answer.headers, body: answer.body }));
    upstream.clear();
    let mut request = ClientRequest::new(&case.request.method, &case.request.path)
        .host(&case.request.host)
        .from(case.request.source.parse().unwrap());
    for (name, value) in case.request.header_list() {
        request = request.header(&name, &value);
    }
    request = request.body(case.request.body.as_bytes());
    let response = match (case.request.scheme, https, envoy.tls_listener) {
        (Scheme::Https, Some(files), Some(listener)) => tls::send(&request, listener, files),
        (Scheme::Https, ..) => panic!("{}: an https case, and Envoy has no HTTPS listener", case.name),
        (Scheme::Http, ..) => request.send(envoy.listener),
    };
    let received = upstream.received();
    assert!(received.len() <= 1, "{}: the upstream got {} requests", case.name, received.len());
    let upstream_request = received.into_iter().next().map(|r| UpstreamRequest {
        method: r.method,
        path: r.path,
        host: r.headers.iter().find(|(n, _)| n == "host").map(|(_, v)| v.clone()).unwrap_or_default(),
        headers: r.headers.into_iter().filter(|(n, _)| n != "host").collect(),
        body: r.body,
    });
    Observed { status: response.status, headers: response.headers, body: response.body, upstream: upstream_request }
}
