//! Envoy attributes, JWT claims and caller identity on the simulated proxy: what rules read, how list claims
//! and SPIFFE ids are taken apart, what is refused, and that a request fetches each attribute at most once and
//! only when a rule reads it. tests/e2e_identity.rs runs the same vocabulary through Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{errors, exchange, matched, rules, tagging, tagging_response, upstream_header};
use rulefilter::engine::Host;
use rulefilter::simulate::{Request, Response};
use rulefilter::HeaderMap;

/// A token `{"iss":"https://issuer.example.com","sub":"alice","aud":["api","web"],"groups":["admin","dev"],
/// "org":{"team":"payments","level":3},"email_verified":true}`; the simulated jwt_authn does not check its
/// signature (Envoy does, in tests/e2e_identity.rs).
const ISSUER: &str = "https://issuer.example.com";

fn token(claims: serde_json::Value) -> String {
    use std::fmt::Write;
    let b64 = |bytes: &[u8]| {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.write_char(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char).unwrap();
            }
        }
        out
    };
    format!("{}.{}.c2ln", b64(br#"{"alg":"RS256"}"#), b64(claims.to_string().as_bytes()))
}

fn alice() -> Request {
    let claims = serde_json::json!({"iss": ISSUER, "sub": "alice", "aud": ["api", "web"], "groups": ["admin", "dev"],
        "org": {"team": "payments", "level": 3}, "email_verified": true});
    Request::get("/api/orders").jwt_issuer(ISSUER).header("authorization", &format!("Bearer {}", token(claims)))
}

fn mtls(principal: &str) -> Request {
    Request::get("/").attribute("connection.mtls", "true").attribute("source.principal", principal)
}

// ----- attributes -----

#[test]
fn route_names_make_one_document_behave_per_route() {
    let api = tagging("{attributes: {xds.route_name: api}}");
    assert!(matched(&api, &Request::get("/api/orders")));
    assert!(!matched(&api, &Request::get("/web")));
    let second = tagging("{attributes: {xds.cluster_name: second, xds.virtual_host_name: second}}");
    assert!(matched(&second, &Request::get("/").authority("second.internal")));
    assert!(!matched(&second, &Request::get("/second/x")), "the route to `second` there is in virtual host `all`");
    let doc = rules(
        "request:\n  - name: tag\n    actions:\n      - request_headers: {set: {x-route: '${xds.route_name}/${xds.cluster_name}', x-ns: '${node.metadata.NAMESPACE}', x-app: '${node.metadata.LABELS.app}'}}\n",
    );
    let outcome = exchange(&doc, &Request::get("/second/x"));
    assert_eq!(upstream_header(&outcome, "x-route"), Some("second-path/second"));
    assert_eq!(upstream_header(&outcome, "x-ns"), Some("default"));
    assert_eq!(upstream_header(&outcome, "x-app"), Some("rulefilter-e2e"));
}

#[test]
fn booleans_and_numbers_compare_as_envoy_encodes_them() {
    assert!(matched(&tagging("{attributes: {connection.mtls: false}}"), &Request::get("/")));
    assert!(matched(&tagging("{attributes: {connection.mtls: true}}"), &mtls("spiffe://td/ns/a/sa/b")));
    assert!(matched(&tagging("{attributes: {source.port: 40000}}"), &Request::get("/").from("127.0.0.1:40000")));
    assert!(matched(&tagging("{attributes: {request.protocol: HTTP/1.1}}"), &Request::get("/")));
    assert!(matched(&tagging("{attributes: {request.id: {present: false}}}"), &Request::get("/")));
}

#[test]
fn response_attributes_are_read_in_the_response_phase() {
    let rules = tagging_response("{attributes: {response.code_details: via_upstream, xds.route_name: api}}");
    let outcome = exchange(&rules, &Request::get("/api"));
    assert_eq!(outcome.response.header("x-matched"), Some("yes"));
}

/// Counts `property` calls, answering every path with `value`.
struct CountingHost {
    calls: Vec<String>,
}

impl Host for CountingHost {
    fn header(&mut self, _map: HeaderMap, name: &str) -> Option<String> {
        (name == ":path").then(|| "/".to_owned())
    }
    fn header_names(&mut self, _map: HeaderMap) -> Vec<String> {
        Vec::new()
    }
    fn set_header(&mut self, _map: HeaderMap, _name: &str, _value: &str) {}
    fn add_header(&mut self, _map: HeaderMap, _name: &str, _value: &str) {}
    fn remove_header(&mut self, _map: HeaderMap, _name: &str) {}
    fn source_address(&mut self) -> Option<String> {
        None
    }
    fn send_response(&mut self, _status: u16, _headers: &[(&str, &str)], _body: &str) -> bool {
        true
    }
    fn property(&mut self, path: &str) -> Option<Vec<u8>> {
        self.calls.push(path.replace('\0', "."));
        Some(b"api".to_vec())
    }
}

#[test]
fn each_attribute_is_fetched_once_per_request_and_only_when_read() {
    let doc = rules(
        r#"
request:
  - name: one
    match: {attributes: {xds.route_name: api}}
    actions: [{request_headers: {set: {x-a: "${xds.route_name}"}}}]
  - name: two
    match: {attributes: {xds.route_name: {prefix: a}}}
    actions: [{request_headers: {set: {x-b: "${xds.route_name}"}}}]
response:
  - name: three
    match: {attributes: {xds.route_name: api}}
    actions: [{response_headers: {set: {x-c: "${xds.route_name}"}}}]
"#,
    );
    let mut host = CountingHost { calls: Vec::new() };
    let mut state = doc.new_request();
    doc.on_request_headers(&mut state, &mut host);
    doc.on_response_headers(&mut state, &mut host);
    assert_eq!(host.calls, ["xds.route_name"]);

    let plain =
        rules("request:\n  - name: p\n    match: {path: /}\n    actions: [{request_headers: {set: {x-a: b}}}]\n");
    let mut host = CountingHost { calls: Vec::new() };
    let mut state = plain.new_request();
    plain.on_request_headers(&mut state, &mut host);
    plain.on_response_headers(&mut state, &mut host);
    assert!(host.calls.is_empty(), "a document without attributes reads none: {:?}", host.calls);
}

#[test]
fn attribute_names_are_checked_with_a_hint() {
    let doc = |conditions: &str| {
        format!(
            "request:\n  - name: r\n    match: {conditions}\n    actions: [{{request_headers: {{set: {{x-a: b}}}}}}]\n"
        )
    };
    assert_eq!(
        errors(&doc("{attributes: {xds.route: api}}")),
        [
            r#"request[0] "r": match.attributes.xds.route: unknown attribute `xds.route`; did you mean `xds.route_name`?"#
        ]
    );
    assert_eq!(
        errors(&doc("{attributes: {response.code_details: via_upstream}}")),
        [
            r#"request[0] "r": match.attributes.response.code_details: `response.code_details` is only known in the response phase; put this rule under `response`"#
        ]
    );
    assert_eq!(
        errors(&doc("{claims: {email_verified: yes}}")),
        [
            r#"request[0] "r": match.claims.email_verified: "yes" is a boolean to kubectl (YAML 1.1) but text here: write true or false for a boolean, or {exact: "yes"} for the text"#
        ]
    );
    assert_eq!(
        errors(&doc("{claims: {'org..team': x}}")),
        [
            r#"request[0] "r": match.claims.org..team: name a claim by its path, e.g. `sub` or `org.team` (nested objects joined with `.`)"#
        ]
    );
    assert_eq!(
        errors("request:\n  - name: r\n    actions: [{request_headers: {set: {x-a: '${connection.sni}'}}}]\n"),
        [
            r#"request[0] "r": actions[0].request_headers.set.x-a: `${connection.sni}`: unknown attribute `connection.sni`; did you mean `connection.requested_server_name`?"#
        ]
    );
}

// ----- JWT claims -----

#[test]
fn claims_of_the_verified_token_are_tested_and_templated() {
    assert!(matched(&tagging("{claims: {sub: alice, iss: 'https://issuer.example.com'}}"), &alice()));
    assert!(matched(&tagging("{claims: {aud: web}}"), &alice()), "a list claim holds when any element does");
    assert!(matched(&tagging("{claims: {groups: {regex: 'adm.*'}}}"), &alice()));
    assert!(!matched(&tagging("{claims: {groups: ops}}"), &alice()));
    assert!(matched(&tagging("{claims: {groups: {exact: ops, invert: true}}}"), &alice()));
    assert!(matched(&tagging("{claims: {org.team: payments, org.level: 3, email_verified: true}}"), &alice()));
    assert!(matched(&tagging("{claims: {sub: {present: false}}}"), &Request::get("/").jwt_issuer(ISSUER)));
    assert!(!matched(&tagging("{claims: {sub: alice}}"), &Request::get("/").jwt_issuer(ISSUER)));
    let doc = rules(
        "request:\n  - name: who\n    actions:\n      - request_headers: {set: {x-user: '${claim.sub}', x-aud: '${claim.aud}', x-team: '${claim.org.team}'}}\n",
    );
    let outcome = exchange(&doc, &alice());
    assert_eq!(upstream_header(&outcome, "x-user"), Some("alice"));
    assert_eq!(upstream_header(&outcome, "x-aud"), Some("api,web"));
    assert_eq!(upstream_header(&outcome, "x-team"), Some("payments"));
    assert_eq!(upstream_header(&outcome, "authorization"), None, "Istio's jwt_authn does not forward the token");
}

#[test]
fn a_token_of_another_issuer_is_refused_before_the_rules() {
    let token = token(serde_json::json!({"iss": "https://elsewhere", "sub": "mallory"}));
    let request = Request::get("/").jwt_issuer(ISSUER).header("authorization", &format!("Bearer {token}"));
    let outcome = exchange(&tagging("{claims: {sub: mallory}}"), &request);
    assert_eq!(outcome.response.status, 401);
    assert!(outcome.upstream_request.is_none());
}

// ----- caller identity -----

#[test]
fn the_callers_spiffe_id_is_taken_apart() {
    let web = mtls("spiffe://cluster.local/ns/prod/sa/web");
    assert!(matched(&tagging("{attributes: {source.namespace: prod, source.service_account: web}}"), &web));
    assert!(matched(&tagging("{attributes: {source.trust_domain: cluster.local}}"), &web));
    assert!(!matched(
        &tagging("{attributes: {source.namespace: prod}}"),
        &mtls("spiffe://cluster.local/ns/dev/sa/web")
    ));
    assert!(!matched(&tagging("{attributes: {source.namespace: {present: true}}}"), &Request::get("/")));
    let doc = rules("request:\n  - name: who\n    actions:\n      - request_headers: {set: {x-caller: '${source.principal}', x-ns: '${source.namespace}'}}\n");
    let outcome = exchange(&doc, &web);
    assert_eq!(upstream_header(&outcome, "x-caller"), Some("spiffe://cluster.local/ns/prod/sa/web"));
    assert_eq!(upstream_header(&outcome, "x-ns"), Some("prod"));
}

// ----- misdirected requests -----

#[test]
fn a_host_other_than_the_tls_server_name_is_misdirected() {
    let rules = tagging("{misdirected: true}");
    let sni =
        |name: &str, host: &str| Request::get("/").authority(host).attribute("connection.requested_server_name", name);
    assert!(matched(&rules, &sni("b.example.com", "a.example.com")));
    assert!(!matched(&rules, &sni("a.example.com", "a.example.com:443")));
    assert!(!matched(&rules, &sni("a.example.com", "A.Example.com")));
    assert!(!matched(&rules, &Request::get("/")), "without TLS there is no server name to differ from");
    assert!(matched(&tagging("{misdirected: false}"), &sni("a.example.com", "a.example.com")));
}

#[test]
fn response_rules_see_request_attributes_kept_from_the_request() {
    let rules = tagging_response("{claims: {sub: alice}, attributes: {xds.route_name: api}}");
    assert_eq!(exchange(&rules, &alice()).response.header("x-matched"), Some("yes"));
    let _ = Response::ok();
}

// ----- documentation -----

#[test]
fn the_documented_table_is_the_table_in_the_code() {
    use rulefilter::attributes::{Available, Encoding, ATTRIBUTES};
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/attributes.md")).unwrap();
    let section = doc.split("## The attributes").nth(1).unwrap().split("\n## ").next().unwrap();
    let documented: Vec<&str> = section.lines().filter(|line| line.starts_with("| `")).collect();
    let expected: Vec<String> = ATTRIBUTES
        .iter()
        .map(|a| {
            let value = match a.encoding {
                Encoding::Text => "string",
                Encoding::Bool => "boolean",
                Encoding::Int => "integer",
                Encoding::JwtClaims => "claims",
            };
            let from = match a.available {
                Available::Request => "request",
                Available::Response => "response",
            };
            format!("| `{}` | `{}` | {value} | {from} | {} |", a.name, a.envoy.join("."), a.meaning)
        })
        .collect();
    assert_eq!(documented, expected, "docs/attributes.md's table and rulefilter::attributes::ATTRIBUTES differ");
}

// ----- traces -----

#[test]
fn traces_say_what_each_new_condition_read() {
    use rulefilter::trace::Event;
    let doc = rules(
        r#"
request:
  - name: by-route
    match: {attributes: {xds.route_name: api}}
    actions: [{log: {message: x}}]
  - name: by-claim
    match: {claims: {groups: ops}}
    actions: [{log: {message: x}}]
  - name: by-namespace
    match: {attributes: {source.namespace: prod}}
    actions: [{log: {message: x}}]
  - name: by-server-name
    match: {misdirected: true}
    actions: [{log: {message: x}}]
"#,
    );
    let mut request = alice().attribute("connection.requested_server_name", "example.com");
    request.path = "/home".into();
    let outcome = rulefilter::simulate::run_traced(&doc, &request, &Response::ok());
    let misses: Vec<String> = outcome
        .trace
        .iter()
        .filter_map(|event| match event {
            Event::Rule { miss: Some(miss), .. } => Some(format!("{}: {}", miss.field, miss.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        misses,
        [
            r#"match.attributes.xds.route_name: got "default", wanted exact "api""#,
            r#"match.claims.groups: got "admin,dev", wanted exact "ops""#,
            r#"match.attributes.source.namespace: got nothing, wanted exact "prod""#,
            r#"match.misdirected: got "false", wanted "true" (the host is not the TLS server name)"#,
        ]
    );
}

#[test]
fn rulefilter_trace_takes_attribute_values_for_the_connection() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rulefilter")).args(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/per-route.yaml");
    let (status, text) = run(&["trace", rules, "--path", "/x", "--attribute", "xds.route_name=api"]);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("  (attribute) xds.route_name = api\n"), "{text}");
    assert!(text.contains("[1] api-is-not-cached: matched"), "the given value replaces the route's: {text}");
    let (status, text) = run(&["trace", rules, "--attribute", "connection.sni=a.example.com"]);
    assert_eq!(status, Some(2), "{text}");
    assert!(text.contains("did you mean `connection.requested_server_name`?"), "{text}");
}
