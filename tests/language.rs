//! The language additions of issue 16 on the simulated proxy: template encodings, headers whose template
//! renders empty, and sampling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{errors, exchange, rules, upstream_header, upstream_values};
use rulefilter::simulate::{Request, Response};
use rulefilter::trace::Event;

#[test]
fn a_reference_can_be_encoded_for_a_url_json_or_html() {
    let document = rules(
        r#"
request:
  - name: search-moved
    match: {path: /find}
    actions:
      - redirect: {location: "https://search.example.com/?q=${query.q|url}&from=${path|url}"}
  - name: tag
    actions:
      - request_headers:
          set:
            x-q-url: "${query.q|url}"
            x-q-path: "/files/${header.x-dir|path}"
            x-q-plain: "${query.q}"
            x-env: "${env.CLUSTER|url}"
  - name: json-answer
    match: {path: /whoami}
    actions:
      - respond: {status: 200, content_type: application/json, body: '{"user": "${header.x-user|json}", "page": "${header.x-user|html}"}'}
"#,
    );
    let moved = exchange(&document, &Request::get("/find?q=a%20b%26c%3Dd%2F"));
    // Decoded to `a b&c=d/`, then encoded as one component: nothing of it can start another parameter.
    assert_eq!(moved.response.header("location"), Some("https://search.example.com/?q=a%20b%26c%3Dd%2F&from=%2Ffind"));
    let tagged = exchange(&document, &Request::get("/x?q=%C3%A9+%3F").header("x-dir", "a b/c"));
    assert_eq!(upstream_header(&tagged, "x-q-url"), Some("%C3%A9%20%3F"));
    assert_eq!(upstream_header(&tagged, "x-q-plain"), Some("é ?"));
    assert_eq!(upstream_header(&tagged, "x-q-path"), Some("/files/a%20b/c"));
    assert_eq!(upstream_header(&tagged, "x-env"), Some("eu-west-1"));
    let answer = exchange(&document, &Request::get("/whoami").header("x-user", r#"<b>"x"</b>"#));
    assert_eq!(answer.response.body, r#"{"user": "<b>\"x\"</b>", "page": "&lt;b&gt;&quot;x&quot;&lt;/b&gt;"}"#);
}

#[test]
fn unknown_encodings_and_double_encoding_are_refused_with_the_list() {
    let refused = errors(
        r#"
request:
  - name: typo
    actions:
      - request_headers: {set: {x-a: "${query.q|uri}"}}
      - query: {set: {q: "${header.x-q|url}"}}
"#,
    );
    assert_eq!(
        refused,
        [
            r#"request[0] "typo": actions[0].request_headers.set.x-a: `${query.q|…}`: unknown encoding `|uri`; known: url, path, json, html"#,
            r#"request[0] "typo": actions[1].query.set.q: `|url`: query edits percent-encode the values they write, so this would encode twice; remove `|url`"#,
        ]
    );
    assert_eq!(
        errors("request: [{name: a, actions: [request_headers: {set: {x-a: '${path|}'}}]}]"),
        [
            r#"request[0] "a": actions[0].request_headers.set.x-a: `|` without an encoding in "${path|}"; write e.g. `${path|url}`"#
        ]
    );
}

#[test]
fn a_header_whose_template_renders_empty_is_left_out_never_sent_empty() {
    let document = rules(
        r#"
request:
  - name: preflight
    match: {method: OPTIONS}
    actions:
      - respond:
          status: 204
          headers:
            access-control-allow-headers: "${header.access-control-request-headers}"
            access-control-allow-origin: "${header.origin}"
            x-literal-empty: ""
  - name: forward-user
    actions:
      - request_headers:
          set: {x-user: "${header.x-auth-user}"}
          set_if_absent: {x-tenant: "${cookie.tenant}"}
          add: {x-via: "${header.x-hop}"}
      - response_headers: {set: {x-user-seen: "${header.x-auth-user}"}}
"#,
    );
    let preflight = exchange(&document, &Request::get("/").method("OPTIONS").header("origin", "https://a.example"));
    let names: Vec<&str> = preflight.response.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"access-control-allow-headers"), "{names:?}");
    assert_eq!(preflight.response.header("access-control-allow-origin"), Some("https://a.example"));
    assert_eq!(preflight.response.header("x-literal-empty"), Some(""), "a literal empty value is sent as written");

    // A client's own x-user does not survive a `set` meant to replace it.
    let spoofed = exchange(&document, &Request::get("/").header("x-user", "admin").header("x-via", "a"));
    let upstream = spoofed.upstream_request.as_ref().unwrap();
    assert!(!upstream.iter().any(|(n, _)| n == "x-user" || n == "x-tenant"), "{upstream:?}");
    assert_eq!(upstream_values(&spoofed, "x-via"), ["a"]);
    assert_eq!(spoofed.response.header("x-user-seen"), None);

    let signed_in = exchange(&document, &Request::get("/").header("x-auth-user", "ann").header("x-hop", "b"));
    assert_eq!(upstream_header(&signed_in, "x-user"), Some("ann"));
    assert_eq!(upstream_values(&signed_in, "x-via"), ["b"]);
    assert_eq!(signed_in.response.header("x-user-seen"), Some("ann"));
}

#[test]
fn a_trace_says_which_header_was_left_out() {
    let document = rules("request: [{name: cors, actions: [respond: {status: 204, headers: {a: '${header.b}'}}]}]");
    let outcome = rulefilter::simulate::run_traced(&document, &Request::get("/"), &Response::ok());
    assert!(
        outcome.trace.contains(&Event::LeftOut(r#"respond header "a" rendered empty: left out"#.into())),
        "{:?}",
        outcome.trace
    );
}

/// A document whose one rule tags the upstream request when `sample` (a flow map) holds.
fn sampling(sample: &str) -> rulefilter::RuleSet {
    rules(&format!(
        "request:\n  - name: rollout\n    match: {{sample: {sample}}}\n    actions:\n      - request_headers: {{set: {{x-in: 'yes'}}}}\n"
    ))
}

fn in_sample(document: &rulefilter::RuleSet, request: Request) -> bool {
    upstream_header(&exchange(document, &request), "x-in") == Some("yes")
}

fn user(id: u32) -> Request {
    Request::get("/").header("x-user", &format!("user-{id}"))
}

#[test]
fn a_sticky_sample_holds_for_its_share_of_keys_and_the_same_ones_every_time() {
    let ten = sampling("{percent: 10, key: '${header.x-user}'}");
    let twenty = sampling("{percent: 20, key: '${header.x-user}'}");
    let ten_in: Vec<u32> = (0..2000).filter(|id| in_sample(&ten, user(*id))).collect();
    assert!((160..=240).contains(&ten_in.len()), "10% of 2000 keys: {}", ten_in.len());
    // Same key, same answer: on another request, and after the document is loaded again (a reload, another
    // worker or proxy).
    let reloaded = sampling("{percent: 10, key: '${header.x-user}'}");
    assert!(ten_in.iter().all(|id| in_sample(&ten, user(*id)) && in_sample(&reloaded, user(*id))));
    // Raising the percentage only adds keys: a rollout never drops a user it took.
    assert!(ten_in.iter().all(|id| in_sample(&twenty, user(*id))));
    let twenty_in = (0..2000).filter(|id| in_sample(&twenty, user(*id))).count();
    assert!((340..=460).contains(&twenty_in), "20% of 2000 keys: {twenty_in}");
    // A seed picks another slice of the same keys.
    let seeded = sampling("{percent: 10, key: '${header.x-user}', seed: checkout}");
    let seeded_in: Vec<u32> = (0..2000).filter(|id| in_sample(&seeded, user(*id))).collect();
    let both = seeded_in.iter().filter(|id| ten_in.contains(id)).count();
    assert!(both < 60, "independent 10% slices share about 1% of keys, not {both}");
}

#[test]
fn without_a_key_the_request_id_draws_and_no_key_is_in_only_a_full_sample() {
    let half = sampling("{percent: 50}");
    let by_id = |id: u32| Request::get("/").header("x-request-id", &format!("6f1c2a3e-0000-4000-8000-{id:012}"));
    let sampled = (0..1000).filter(|id| in_sample(&half, by_id(*id))).count();
    assert!((420..=580).contains(&sampled), "50% of 1000 request ids: {sampled}");
    assert!(!in_sample(&half, Request::get("/")), "no x-request-id: no place to fall");
    assert!(!in_sample(&half, Request::get("/").header("x-request-id", "")));
    let all = sampling("{percent: 100, key: '${cookie.uid}'}");
    assert!(in_sample(&all, Request::get("/")), "100% holds even without a key");
    let none = sampling("{percent: 0, key: '${cookie.uid}'}");
    assert!(!(0..200).any(|id| in_sample(&none, Request::get("/").header("cookie", &format!("uid={id}")))));
    // Fractions down to a hundredth of a percent.
    let slice = sampling("{percent: 0.5, key: '${header.x-user}'}");
    let count = (0..10_000).filter(|id| in_sample(&slice, user(*id))).count();
    assert!((30..=70).contains(&count), "0.5% of 10000 keys: {count}");
}

#[test]
fn sample_conditions_are_checked_when_the_document_loads() {
    let problems = errors(
        r#"
request:
  - name: too-much
    match: {sample: {percent: 150}}
    actions: [log: {message: x}]
  - name: too-fine
    match: {sample: {percent: 12.345}}
    actions: [log: {message: x}]
  - name: two-keys
    match: {sample: {percent: 5, key: "${header.x-a}-${header.x-b}"}}
    actions: [log: {message: x}]
  - name: encoded-key
    match: {sample: {percent: 5, key: "${header.x-a|url}"}}
    actions: [log: {message: x}]
  - name: unknown-key
    match: {sample: {percent: 5, key: "${header}"}}
    actions: [log: {message: x}]
  - name: typo
    match: {sample: {percentage: 5}}
    actions: [log: {message: x}]
"#,
    );
    let key_rule = "the key is one reference to a request value, such as `${header.x-user}` or `${cookie.uid}` (without an encoding)";
    assert_eq!(
        problems,
        [
            r#"request[0] "too-much": match.sample.percent: 150 is not a percentage from 0 to 100"#.to_owned(),
            r#"request[1] "too-fine": match.sample.percent: 12.345: a percentage has at most two decimals (0.01 is the finest slice)"#.to_owned(),
            format!(r#"request[2] "two-keys": match.sample.key: "${{header.x-a}}-${{header.x-b}}": {key_rule}"#),
            format!(r#"request[3] "encoded-key": match.sample.key: "${{header.x-a|url}}": {key_rule}"#),
            r#"request[4] "unknown-key": match.sample.key: unknown reference `${header}`; known: method, scheme, host, authority, path, query, query.NAME, header.NAME, cookie.NAME, source.ip, status, response_header.NAME, env.NAME, capture.N, capture.NAME, auth.key_name, auth.user, claim.PATH, an attribute (docs/attributes.md)"#.to_owned(),
            r#"request[5] "typo": match.sample.percentage: unknown field `percentage`, expected one of `percent`, `key`, `seed`"#.to_owned(),
        ]
    );
}

#[test]
fn a_trace_shows_where_the_key_fell() {
    let document = sampling("{percent: 1, key: '${header.x-user}'}");
    let outcome = rulefilter::simulate::run_traced(&document, &user(1), &Response::ok());
    let miss = outcome
        .trace
        .iter()
        .find_map(|event| match event {
            Event::Rule { miss: Some(miss), .. } => Some(miss.to_string()),
            _ => None,
        })
        .expect("user-1 is not in a 1% sample");
    assert!(
        miss.starts_with(r#"match.sample: got "user-1" (at "#)
            && miss.ends_with(r#"%), wanted in the 1% sample by ${header.x-user}"#),
        "{miss}"
    );
}
