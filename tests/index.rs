//! The compile-time indexes (src/index.rs) change what a request costs, never what it does.
//!
//! - A differential test: generated documents of 1 to 1,000 rules mixing every condition kind, run indexed and
//!   plain ([`RuleSet::without_indexes`]) against random exchanges, must give identical outcomes (what the
//!   upstream got, the response, every counter in order, host errors).
//! - The documents of issue 14's common shapes (1,000 rules each, hello's two included) compile and pass a request
//!   that none of their rules matches. What such a request costs is counted by `perf engine-loop SHAPE N` and
//!   `perf module-loop SHAPE N` under callgrind (docs/performance.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use rulefilter::simulate::{run, Request, Response};
use rulefilter::Phase;

// ----- issue 14's shapes: 1,000-rule documents, hello's two rules around 998 of one shape -----

const HELLO_REQUEST: &str = r#"
  - name: hello
    match: {path: /hello, method: GET}
    actions:
      - respond: {status: 200, headers: {x-service-name: my-custom-service}, body: "Hello from Wasm!\n"}
"#;

const HELLO_RESPONSE: &str = r#"
response:
  - name: tag-service
    actions:
      - response_headers: {set: {x-service-name: my-custom-service}}
"#;

/// The shapes of issue 14; `hello` is `rules/hello.yaml` itself.
const SHAPES: &[&str] = &["hello", "exact-paths", "prefix-header", "host-lists", "regex-paths", "cidr-lists"];

/// One rule of `shape`, number `i`.
fn shape_rule(shape: &str, i: usize) -> String {
    match shape {
        "exact-paths" => format!(
            "  - name: legacy-{i}\n    match: {{path: /legacy/page-{i}.html}}\n    actions:\n      - redirect: {{location: /pages/{i}, status: 301}}\n"
        ),
        "prefix-header" => format!(
            "  - name: tenant-{i}\n    match:\n      path: {{prefix: /tenants/t{i}/}}\n      headers: {{x-plan: gold}}\n    actions:\n      - request_headers: {{set: {{x-tenant: t{i}}}}}\n"
        ),
        "host-lists" => format!(
            "  - name: site-{i}\n    match:\n      host: [site{i}.example.org, \"*.site{i}.example.net\"]\n    actions:\n      - request_headers: {{set: {{x-site: s{i}}}}}\n"
        ),
        "regex-paths" => format!(
            "  - name: item-{i}\n    match:\n      path: {{regex: '/shop/item-{i}/[0-9]+(/.*)?'}}\n    actions:\n      - rewrite: {{path: /items/{i}}}\n"
        ),
        "cidr-lists" => format!(
            "  - name: block-{i}\n    match:\n      source: {{cidrs: [10.{}.{}.0/24, \"2001:db8:{i:x}::/48\"]}}\n    actions:\n      - respond: {{status: 403, body: \"blocked\\n\"}}\n",
            i / 256,
            i % 256
        ),
        other => panic!("unknown shape {other}"),
    }
}

/// Rules of a shape in its document: with hello's two, the 1,000 a document may hold.
const SHAPE_RULES: usize = 998;

/// A document of `shape`: hello's rules with [`SHAPE_RULES`] rules of the shape in between.
fn shape_document(shape: &str) -> String {
    if shape == "hello" {
        return std::fs::read_to_string("rules/hello.yaml").unwrap();
    }
    let mut text = format!("request:{HELLO_REQUEST}");
    for i in 0..SHAPE_RULES {
        text.push_str(&shape_rule(shape, i));
    }
    text.push_str(HELLO_RESPONSE);
    text
}

/// A request none of the shapes' rules match (hello's response rule still tags it).
fn passing_request() -> Request {
    Request::get("/catalog/shoes?page=2").authority("www.example.com").from("192.0.2.10:40000")
}

#[test]
fn every_shape_compiles_and_passes_the_request() {
    for shape in SHAPES {
        let rules = common::rules(&shape_document(shape));
        let outcome = common::exchange(&rules, &passing_request());
        assert_eq!(outcome.response.status, 200, "{shape}");
        assert_eq!(outcome.response.header("x-service-name"), Some("my-custom-service"), "{shape}");
    }
    assert!(shape_rule("cidr-lists", 513).contains("10.2.1.0/24"));
}

// ----- the differential test -----

/// A small deterministic generator (xorshift64*), so a failure names a seed that reproduces it.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Keys are drawn from a few numbers, so that requests hit rules often and prefixes overlap.
const KEYS: usize = 6;

/// One condition, as a `match` block's line(s) at `indent`.
fn condition(r: &mut Random, indent: &str, depth: usize) -> String {
    let k = r.below(KEYS);
    let ic = if r.chance(25) { ", ignore_case: true" } else { "" };
    let inv = if r.chance(10) { ", invert: true" } else { "" };
    match r.below(if depth < 2 { 16 } else { 13 }) {
        0 => format!("{indent}path: /p{k}\n"),
        1 => format!("{indent}path: {{prefix: /p{k}{ic}{inv}}}\n"),
        2 => format!("{indent}path: {{segment_prefix: /s{k}{ic}}}\n"),
        3 => format!("{indent}path: {{regex: '/r{k}/[0-9]+(/.*)?'{ic}{inv}}}\n"),
        4 => format!("{indent}path: {{{} /p{k}{ic}{inv}}}\n", r.pick(&["exact:", "suffix:", "contains:", "prefix:"])),
        5 => format!("{indent}method: [{}]\n", r.pick(&["GET", "POST", "GET, HEAD", "PUT, DELETE"])),
        6 => format!("{indent}scheme: {}\n", r.pick(&["http", "HTTPS", "[http, https]"])),
        7 => format!(
            "{indent}host: [{}]\n",
            r.pick(&[
                "h1.example.com",
                "\"*.w1.example.com\"",
                "h2.example.com, \"*.w2.example.com\"",
                "H3.Example.com:8080"
            ])
        ),
        8 => format!(
            "{indent}headers: {{x-a: {{{} v{k}{ic}{inv}}}}}\n",
            r.pick(&["exact:", "prefix:", "suffix:", "regex:"])
        ),
        9 => format!("{indent}headers: {{x-b: {{{}}}}}\n", r.pick(&["present: true", "absent: true", "exact: b"])),
        10 => format!("{indent}query: {{q: {{exact: v{k}{ic}}}}}\n"),
        11 => format!("{indent}cookies: {{c: {{prefix: v{k}}}}}\n"),
        12 => format!(
            "{indent}source: {{cidrs: [10.{k}.0.0/16, \"2001:db8:{k}::/48\", 192.0.2.{}], trusted_hops: {}{inv}}}\n",
            r.below(4),
            r.pick(&["0", "0", "1"])
        ),
        13 => format!("{indent}any:\n{indent}  - {}{indent}  - {}", block(r, indent, depth), block(r, indent, depth)),
        14 => format!("{indent}not:\n{}", condition(r, &format!("{indent}  "), depth + 1)),
        _ => format!("{indent}all:\n{indent}  - {}", block(r, indent, depth)),
    }
}

/// A block under `any`/`all`: one or two conditions, the first on the `- ` line.
fn block(r: &mut Random, indent: &str, depth: usize) -> String {
    let inner = format!("{indent}    ");
    let mut text = condition(r, &inner, depth + 1).trim_start().to_owned();
    if r.chance(40) {
        let more = condition(r, &inner, depth + 1);
        if more.trim_start().split(':').next() != text.split(':').next() {
            text.push_str(&more);
        }
    }
    text
}

/// The actions of a request rule: mostly header writes to values other rules read, sometimes answers.
fn request_actions(r: &mut Random, i: usize) -> String {
    let k = r.below(KEYS);
    match r.below(10) {
        0 => format!("      - respond: {{status: 403, body: \"no {i}\"}}\n"),
        1 => format!("      - redirect: {{location: \"/p{k}\", status: 302}}\n"),
        2 => format!("      - rewrite: {{path: /p{k}/x}}\n"),
        3 => format!("      - query: {{set: {{q: v{k}}}}}\n"),
        4 => format!("      - request_headers: {{set: {{x-a: v{k}}}}}\n"),
        5 => "      - request_headers: {remove: [x-b]}\n".to_owned(),
        6 => format!("      - request_headers: {{add: {{x-a: v{k}}}}}\n"),
        7 => "      - request_headers: {set: {x-forwarded-for: 10.1.2.3}}\n".to_owned(),
        8 => format!("      - response_headers: {{set: {{x-seen-{i}: \"${{path}}\"}}}}\n"),
        _ => format!("      - request_headers: {{set: {{x-rule-{i}: \"${{header.x-a}}\"}}}}\n"),
    }
}

fn response_rule(r: &mut Random, i: usize) -> String {
    let k = r.below(KEYS);
    let condition = match r.below(5) {
        0 => format!("      status: [{}]\n", r.pick(&["200", "404", "\"5xx\""])),
        1 => format!("      response_headers: {{x-up: {{exact: u{k}}}}}\n"),
        2 => format!("      path: {{prefix: /p{k}}}\n"),
        3 => format!("      headers: {{x-a: v{k}}}\n"),
        _ => format!("      host: [\"*.w{k}.example.com\"]\n"),
    };
    let action = match r.below(3) {
        0 => format!("      - response_headers: {{set: {{x-up: u{k}}}}}\n"),
        1 => format!("      - respond: {{status: 502, body: \"r{i}\"}}\n"),
        _ => format!("      - response_headers: {{add: {{x-r{i}: \"1\"}}}}\n"),
    };
    let stop = if r.chance(10) { "    stop: true\n" } else { "" };
    format!("  - name: response-{i}\n{stop}    match:\n{condition}    actions:\n{action}")
}

/// A document of `rules` rules (a tenth of them response rules), some dry-run, some stopping.
fn document(r: &mut Random, rules: usize) -> String {
    let responses = rules / 10;
    let mut text = String::new();
    if r.chance(20) {
        text.push_str("debug_header: x-matched\n");
    }
    text.push_str("request:\n");
    for i in 0..rules - responses {
        text.push_str(&format!("  - name: request-{i}\n"));
        if r.chance(10) {
            text.push_str("    stop: true\n");
        }
        if r.chance(10) {
            text.push_str("    mode: dry_run\n");
        }
        if r.chance(95) {
            text.push_str("    match:\n");
            let first = condition(r, "      ", 0);
            text.push_str(&first);
            if r.chance(50) {
                let second = condition(r, "      ", 0);
                // One field once per block.
                if second.trim_start().split(':').next() != first.trim_start().split(':').next() {
                    text.push_str(&second);
                }
            }
        }
        text.push_str("    actions:\n");
        text.push_str(&request_actions(r, i));
    }
    if responses > 0 {
        text.push_str("response:\n");
        for i in 0..responses {
            text.push_str(&response_rule(r, i));
        }
    }
    text
}

fn exchange(r: &mut Random) -> (Request, Response) {
    let k = r.below(KEYS);
    let path = match r.below(9) {
        0 => format!("/p{k}"),
        1 => format!("/p{k}/x?q=v{}", r.below(KEYS)),
        2 => format!("/s{k}/y"),
        3 => format!("/s{k}"),
        4 => format!("/r{k}/{}", r.below(100)),
        5 => format!("/P{k}?Q=V{k}"),
        6 => format!("/R{k}/1/z"),
        7 => "/other".to_owned(),
        _ => format!("/x/p{k}"),
    };
    let mut request = Request::get(&path)
        .method(r.pick(&["GET", "POST", "HEAD", "PUT", "DELETE", "get"]))
        .authority(r.pick(&[
            "h1.example.com",
            "a.w1.example.com",
            "A.W2.EXAMPLE.COM",
            "h2.example.com:443",
            "h3.example.com:8080",
            "w1.example.com",
            "example.com",
        ]))
        .from(r.pick(&["10.1.9.9:1000", "10.2.0.1:5", "192.0.2.1:80", "[2001:db8:3::7]:443", "203.0.113.1:9"]));
    request.scheme = r.pick(&["http", "https"]).to_owned();
    if r.chance(60) {
        request = request.header("x-a", &format!("{}{}", r.pick(&["v", "V", "xv"]), r.below(KEYS)));
    }
    if r.chance(30) {
        request = request.header("x-b", "b");
    }
    if r.chance(30) {
        request = request.header("cookie", &format!("c=v{}x", r.below(KEYS)));
    }
    if r.chance(30) {
        request = request.header("x-forwarded-for", r.pick(&["10.3.3.3", "192.0.2.2, 10.0.0.1", "garbage"]));
    }
    let mut upstream = Response::ok();
    upstream.status = [200, 404, 503][r.below(3)];
    if r.chance(50) {
        upstream.headers.push(("x-up".to_owned(), format!("u{}", r.below(KEYS))));
    }
    (request, upstream)
}

/// Indexed and plain evaluation agree on every exchange: what went upstream, what the client got, every
/// counter in order, and host errors.
#[test]
fn indexed_evaluation_matches_plain_evaluation() {
    let sizes = [1, 2, 7, 8, 9, 15, 30, 60, 120, 250, 500, 998];
    let mut indexed_somewhere = 0;
    for seed in 1..=48u64 {
        let mut r = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let rules = sizes[seed as usize % sizes.len()];
        let text = document(&mut r, rules);
        let indexed = common::rules(&text);
        indexed_somewhere += indexed.indexed_rules(Phase::Request) + indexed.indexed_rules(Phase::Response);
        let plain = common::rules(&text).without_indexes();
        assert_eq!(plain.indexed_rules(Phase::Request), 0);
        for n in 0..40 {
            let (request, upstream) = exchange(&mut r);
            let want = run(&plain, &request, &upstream);
            let got = run(&indexed, &request, &upstream);
            assert!(got.host_errors.is_empty(), "seed {seed}: {:?}", got.host_errors);
            assert_eq!(got, want, "seed {seed}, exchange {n}: {request:?}\n{text}");
        }
    }
    assert!(indexed_somewhere > 1000, "the generated documents should mostly be indexed: {indexed_somewhere}");
}

/// The shapes of issue 14 are indexed whole: every one of their 998 rules is filed under a key. Hello's own
/// request rule is filed with them where it shares their index (its path), else evaluated for every request:
/// an index of one rule would cost more than the rule.
#[test]
fn common_shapes_are_indexed() {
    for (shape, hello_shares_an_index) in [
        ("exact-paths", true),
        ("prefix-header", false),
        ("host-lists", false),
        ("regex-paths", true),
        ("cidr-lists", false),
    ] {
        let rules = common::rules(&shape_document(shape));
        let expected = SHAPE_RULES + usize::from(hello_shares_an_index);
        assert_eq!(rules.indexed_rules(Phase::Request), expected, "{shape}");
    }
}

/// A rule that changes a value an index reads makes the later rules be looked up again with the new value.
#[test]
fn a_rewrite_is_seen_by_later_indexed_rules() {
    let mut text = String::from(
        "request:\n  - name: move\n    match: {path: /old}\n    actions:\n      - rewrite: {path: /new}\n",
    );
    for i in 0..20 {
        text.push_str(&format!("  - name: r{i}\n    match: {{path: /n{i}}}\n    actions:\n      - request_headers: {{set: {{x-r: \"{i}\"}}}}\n"));
    }
    text.push_str(
        "  - name: new\n    match: {path: /new}\n    actions:\n      - request_headers: {set: {x-new: yes-it-is}}\n",
    );
    let rules = common::rules(&text);
    assert!(rules.indexed_rules(Phase::Request) > 20);
    let outcome = common::exchange(&rules, &Request::get("/old"));
    let upstream = outcome.upstream_request.unwrap();
    assert!(upstream.iter().any(|(n, v)| n == "x-new" && v == "yes-it-is"), "{upstream:?}");
}

/// An index that would serve one rule is not built: that rule is evaluated for every request, and the same
/// requests pass and are answered.
#[test]
fn a_rule_alone_in_its_index_is_evaluated_for_every_request() {
    let mut text = String::from("request:\n");
    for i in 0..8 {
        text.push_str(&format!(
            "  - name: page-{i}\n    match: {{path: /page-{i}}}\n    actions:\n      - respond: {{status: 200, body: \"page {i}\\n\"}}\n"
        ));
    }
    text.push_str("  - name: beta\n    match:\n      headers: {x-beta: \"on\"}\n    actions:\n      - respond: {status: 202, body: \"beta\\n\"}\n");
    let rules = common::rules(&text);
    assert_eq!(rules.indexed_rules(Phase::Request), 8);
    let outcome = run(&rules, &Request::get("/other").header("x-beta", "on"), &Response::ok());
    assert_eq!((outcome.response.status, outcome.responded_locally), (202, true));
    let outcome = run(&rules, &Request::get("/page-3"), &Response::ok());
    assert_eq!((outcome.response.status, outcome.responded_locally), (200, true));
}
