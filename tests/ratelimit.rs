//! `rate_limit` on the simulated proxy: validation, the 429 and its headers, dry run, failure modes, key
//! templates, the bounded key space, counters and traces. tests/e2e_ratelimit.rs proves the same in Envoy
//! with several workers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{errors, rules};
use rulefilter::metrics::{Counter, CounterId};
use rulefilter::simulate::{run_in, run_traced_in, Outcome, Proxy, Request, Response};
use rulefilter::trace::Event;
use rulefilter::{Flow, HeaderMap, Host, RuleSet};

fn send(proxy: &mut Proxy, rules: &RuleSet, request: &Request) -> Outcome {
    let outcome = run_in(proxy, rules, request, &Response::ok());
    assert!(outcome.host_errors.is_empty(), "{:?}", outcome.host_errors);
    outcome
}

fn statuses(proxy: &mut Proxy, rules: &RuleSet, request: &Request, times: usize) -> Vec<u16> {
    (0..times).map(|_| send(proxy, rules, request).response.status).collect()
}

fn counted(rules: &RuleSet, outcome: &Outcome) -> Vec<String> {
    let counters = rules.counters();
    outcome
        .counted
        .iter()
        .filter_map(|id| match counters[id.0 as usize] {
            Counter::RateLimited { rule, dry_run } => Some(format!("limited {rule} dry_run={dry_run}")),
            Counter::RateLimitFailures { rule, .. } => Some(format!("failed {rule}")),
            Counter::RuleAction { rule, action: "rate_limit", .. } => Some(format!("action {rule}")),
            _ => None,
        })
        .collect()
}

const PER_KEY: &str = r#"
request:
  - name: per-key
    actions:
      - rate_limit: {key: "${header.x-api-key}", requests: 2, per: minute}
      - request_headers: {set: {x-limited-by: per-key}}
"#;

#[test]
fn over_the_limit_the_proxy_answers_429_with_when_to_come_back() {
    let rules = rules(PER_KEY);
    let mut proxy = Proxy::default();
    let request = Request::get("/orders").header("x-api-key", "k1");
    assert_eq!(statuses(&mut proxy, &rules, &request, 2), [200, 200]);
    let limited = send(&mut proxy, &rules, &request);
    assert_eq!(limited.response.status, 429);
    assert!(limited.upstream_request.is_none());
    assert_eq!(limited.response.header("retry-after"), Some("30"));
    assert_eq!(limited.response.header("ratelimit-policy"), Some(r#""per-key";q=2;w=60"#));
    assert_eq!(limited.response.header("ratelimit"), Some(r#""per-key";r=0;t=60"#));
    assert_eq!(limited.response.body, "too many requests\n");
    assert_eq!(counted(&rules, &limited), ["action per-key", "limited per-key dry_run=false"]);
    // Actions after the limit run for allowed requests only.
    proxy.set_clock_seconds(30.0);
    let allowed = send(&mut proxy, &rules, &request);
    assert_eq!(allowed.response.status, 200);
    let upstream = allowed.upstream_request.unwrap();
    assert!(upstream.contains(&("x-limited-by".into(), "per-key".into())));
}

#[test]
fn keys_are_templates_and_each_value_has_its_own_bucket() {
    let rules = rules(
        r#"
request:
  - name: per-client-and-path
    actions:
      - rate_limit: {key: "${source.ip} ${path}", requests: 1, per: hour}
"#,
    );
    let mut proxy = Proxy::default();
    let from = |ip: &str, path: &str| Request::get(path).header("x-forwarded-for", ip);
    assert_eq!(send(&mut proxy, &rules, &from("192.0.2.1", "/a")).response.status, 200);
    assert_eq!(send(&mut proxy, &rules, &from("192.0.2.1", "/a?page=2")).response.status, 429);
    assert_eq!(send(&mut proxy, &rules, &from("192.0.2.1", "/b")).response.status, 200);
    assert_eq!(send(&mut proxy, &rules, &from("192.0.2.2", "/a")).response.status, 200);
}

#[test]
fn requests_whose_key_renders_empty_share_one_bucket() {
    let rules = rules(PER_KEY);
    let mut proxy = Proxy::default();
    assert_eq!(statuses(&mut proxy, &rules, &Request::get("/"), 3), [200, 200, 429]);
}

#[test]
fn the_burst_comes_at_once_and_the_rate_refills_it() {
    let rules = rules("request:\n  - name: r\n    actions: [{rate_limit: {requests: 10, per: second, burst: 3}}]\n");
    let mut proxy = Proxy::default();
    let request = Request::get("/");
    assert_eq!(statuses(&mut proxy, &rules, &request, 4), [200, 200, 200, 429]);
    proxy.set_clock_seconds(0.1);
    assert_eq!(statuses(&mut proxy, &rules, &request, 2), [200, 429]);
    proxy.set_clock_seconds(10.0);
    assert_eq!(statuses(&mut proxy, &rules, &request, 4), [200, 200, 200, 429]);
}

#[test]
fn a_dry_run_limit_counts_and_says_what_it_would_do() {
    let rules =
        rules("request:\n  - name: trial\n    mode: dry_run\n    actions: [{rate_limit: {requests: 1, per: hour}}]\n");
    let mut proxy = Proxy::default();
    let request = Request::get("/");
    assert_eq!(send(&mut proxy, &rules, &request).response.status, 200);
    let over = run_traced_in(&mut proxy, &rules, &request, &Response::ok());
    assert_eq!(over.response.status, 200);
    assert!(over.upstream_request.is_some());
    assert!(over.trace.contains(&Event::WouldDo("respond 429".into())), "{:?}", over.trace);
    assert_eq!(counted(&rules, &over), ["action trial", "limited trial dry_run=true"]);
}

#[test]
fn a_trace_explains_each_decision_without_the_key_itself() {
    let rules = rules(PER_KEY);
    let mut proxy = Proxy::default();
    let request = Request::get("/").header("x-api-key", "secret-key-value");
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let outcome = run_traced_in(&mut proxy, &rules, &request, &Response::ok());
        for event in outcome.trace {
            if let Event::RateLimit { key, verdict } = event {
                assert_eq!(key, "${header.x-api-key}");
                verdicts.push(verdict);
            }
        }
    }
    assert_eq!(
        verdicts,
        [
            "allowed: 1 more now, full again in 30 s",
            "allowed: 0 more now, full again in 60 s",
            "limited: 0 left, retry after 30 s",
        ]
    );
    assert!(!verdicts.concat().contains("secret"));
}

/// A host whose shared data refuses every call, as a proxy without shared data would.
struct Refusing {
    answered: Option<u16>,
}

impl Host for Refusing {
    fn header(&mut self, _: HeaderMap, name: &str) -> Option<String> {
        (name == ":path").then(|| "/".to_owned())
    }
    fn header_names(&mut self, _: HeaderMap) -> Vec<String> {
        Vec::new()
    }
    fn set_header(&mut self, _: HeaderMap, _: &str, _: &str) {}
    fn add_header(&mut self, _: HeaderMap, _: &str, _: &str) {}
    fn remove_header(&mut self, _: HeaderMap, _: &str) {}
    fn source_address(&mut self) -> Option<String> {
        Some("10.0.0.1:1234".into())
    }
    fn send_response(&mut self, status: u16, _: &[(&str, &str)], _: &str) -> bool {
        self.answered = Some(status);
        true
    }
    fn now_nanos(&mut self) -> Option<u64> {
        Some(1)
    }
}

#[test]
fn when_the_buckets_cannot_decide_fail_says_what_happens() {
    let open = rules("request:\n  - name: r\n    actions: [{rate_limit: {requests: 1, per: second}}]\n");
    let mut host = Refusing { answered: None };
    assert_eq!(open.on_request_headers(&mut open.new_request(), &mut host), Flow::Continue);
    assert_eq!(host.answered, None);

    let closed =
        rules("request:\n  - name: r\n    actions: [{rate_limit: {requests: 1, per: second, fail: closed}}]\n");
    assert_eq!(closed.on_request_headers(&mut closed.new_request(), &mut host), Flow::Responded);
    assert_eq!(host.answered, Some(503));
}

#[test]
fn random_client_keys_never_grow_the_shared_data_past_the_cap() {
    let rules = rules(
        r#"
request:
  - name: per-client
    actions: [{rate_limit: {key: "${header.x-client}", requests: 5, per: second, max_keys: 100}}]
"#,
    );
    let mut proxy = Proxy::default();
    let mut overflowed = 0;
    for i in 0..5_000u64 {
        proxy.set_clock_seconds(i as f64 / 1000.0);
        let client = format!("client-{}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let outcome =
            run_traced_in(&mut proxy, &rules, &Request::get("/").header("x-client", &client), &Response::ok());
        overflowed += outcome
            .trace
            .iter()
            .filter(|e| matches!(e, Event::RateLimit { verdict, .. } if verdict.contains("overflow")))
            .count();
    }
    // 100 slots and one overflow bucket, whatever the clients sent; all under the rule's name.
    assert!(proxy.shared.len() <= 101, "{} keys", proxy.shared.len());
    assert!(proxy.shared.keys().all(|k| k.starts_with("per-client/")));
    // 5,000 keys in 5 s with buckets that stay busy 1 s: some must have shared the overflow bucket.
    assert!(overflowed > 0);
}

#[test]
fn rate_limit_counters_follow_the_rule_and_its_actions() {
    let rules = rules(
        "request:\n  - name: a\n    actions: [{rate_limit: {requests: 1, per: second}}, {log: {message: x}}]\n  - name: b\n    actions: [{log: {message: y}}]\n",
    );
    let counters = rules.counters();
    let names: Vec<String> = counters.iter().map(|c| c.stat_name("p")).collect();
    assert!(names.contains(&"plugin=.=p;.;rule=.=a;.;mode=.=enforce;.;rulefilter_rate_limited_total".to_owned()));
    assert!(names.contains(&"plugin=.=p;.;rule=.=a;.;mode=.=enforce;.;rulefilter_rate_limit_failures_total".to_owned()));
    // The next rule's counters come after them.
    let b = counters.iter().position(|c| matches!(c, Counter::RuleMatched { rule: "b", .. })).unwrap();
    assert!(matches!(counters[b - 1], Counter::RateLimitFailures { rule: "a", .. }));
    assert_eq!(CounterId(b as u32 + 2).0 as usize, counters.len());
}

#[test]
fn every_mistake_names_the_rule_and_the_field() {
    let refused = |action: &str| errors(&format!("request:\n  - name: lim\n    actions: [{{rate_limit: {action}}}]\n"));
    assert_eq!(
        refused("{requests: 0, per: minute}"),
        [
            r#"request[0] "lim": actions[0].rate_limit.requests: 0 is out of range; write a whole number from 1 to 1000000000"#
        ]
    );
    assert_eq!(
        refused("{requests: 5, per: day}"),
        [r#"request[0] "lim": actions[0].rate_limit.per: "day" is not a period; write second, minute or hour"#]
    );
    assert_eq!(
        refused("{requests: 5, per: second, max_keys: 2000000, fail: shut}"),
        [
            r#"request[0] "lim": actions[0].rate_limit.max_keys: 2000000 is out of range; write a whole number from 1 to 1000000"#,
            r#"request[0] "lim": actions[0].rate_limit.fail: "shut" is not a failure mode; write open (let the request go on) or closed (answer 503)"#,
        ]
    );
    assert_eq!(
        refused(r#"{key: "${header.x-key", requests: 5, per: second}"#),
        [r#"request[0] "lim": actions[0].rate_limit.key: unterminated `${` in "${header.x-key""#]
    );
    assert!(refused("{per: second}")[0].contains("missing field `requests`"));
    assert_eq!(
        errors("request:\n  - name: two\n    actions: [{rate_limit: {requests: 1, per: second}}, {rate_limit: {requests: 9, per: hour}}]\n"),
        [r#"request[0] "two": actions[1].rate_limit: a second rate limit in this rule (the first is actions[0]): a rule's buckets are named after it; write another rule for another limit"#]
    );
    // Istio hands numbers over as doubles.
    rules(r#"{"request":[{"name":"x","actions":[{"rate_limit":{"requests":5.0,"per":"second","burst":2.0}}]}]}"#);
    let response_phase = errors("response:\n  - name: late\n    actions: [{rate_limit: {requests: 1, per: second}}]\n");
    assert_eq!(
        response_phase,
        [
            r#"response[0] "late": actions[0].rate_limit: a rate limit in the response phase: the request has already gone upstream; move it to a request rule"#
        ]
    );
}

#[test]
fn the_module_puts_the_plugin_first_in_every_bucket_key() {
    let mut rules = rules(PER_KEY);
    rules.set_shared_data_namespace("rulefilter/default.edge/");
    let mut proxy = Proxy::default();
    send(&mut proxy, &rules, &Request::get("/").header("x-api-key", "k"));
    let keys: Vec<&str> = proxy.shared.keys().collect();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("rulefilter/default.edge/per-key/"), "{keys:?}");
    // Then the limit's fingerprint and the slot number: the key itself is never stored.
    assert!(keys[0].rsplit('/').next().unwrap().parse::<u64>().is_ok(), "{keys:?}");
}
