//! Sampling through a real Envoy: without a key, a `sample` condition draws by the `x-request-id` Envoy's
//! connection manager gives every request before the filter runs, so a share of plain requests is sampled
//! (the module has no randomness of its own), and a request that brings its own id gets the answer the
//! simulated proxy gives for that id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use support::{document_json, echo, options, request, start, Echoed, Plugin};

const DOCUMENT: &str = r#"
request:
  - name: half
    match: {sample: {percent: 50}}
    actions:
      - request_headers: {set: {x-sampled: "yes", x-id-seen: "${header.x-request-id}"}}
"#;

#[test]
fn without_a_key_envoys_request_id_draws_per_request() {
    let upstream = echo();
    let document: serde_yaml::Value = serde_yaml::from_str(DOCUMENT).unwrap();
    let envoy = start(options(Plugin::new("sampling", Some(document_json(&document))), &upstream));
    const REQUESTS: usize = 40;
    let mut sampled = 0;
    for _ in 0..REQUESTS {
        let response = request(envoy.listener, "GET", "/", &[]);
        assert_eq!(response.status, 200, "{response:?}");
        let seen = response.upstream_header_values("x-sampled");
        if seen == ["yes"] {
            sampled += 1;
            // The id the rule drew by is the one Envoy made up and sent on.
            assert_eq!(response.upstream_header_values("x-id-seen"), response.upstream_header_values("x-request-id"));
        }
    }
    // 50% of 40: outside 5..=35 with probability below one in a million.
    assert!((5..=35).contains(&sampled), "{sampled} of {REQUESTS} requests sampled at 50%");

    // A client's own id (kept: this listener does not regenerate ids) decides as offline.
    let rules = rulefilter::parse(DOCUMENT).unwrap();
    for id in ["2f0b7c1e-5a4d-4c3b-9e8f-000000000100", "2f0b7c1e-5a4d-4c3b-9e8f-000000000117"] {
        let offline = rulefilter::simulate::run(
            &rules,
            &rulefilter::simulate::Request::get("/").header("x-request-id", id),
            &rulefilter::simulate::Response::ok(),
        );
        let offline_sampled = offline.upstream_request.unwrap().iter().any(|(n, v)| n == "x-sampled" && v == "yes");
        let response = request(envoy.listener, "GET", "/", &[("x-request-id", id)]);
        assert_eq!(response.upstream_header_values("x-sampled") == ["yes"], offline_sampled, "x-request-id {id}");
    }
}
