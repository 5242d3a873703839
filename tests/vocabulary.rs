//! The full rule vocabulary on the simulated proxy: every condition, composition, action and template
//! reference, with the meanings Gateway API and Envoy give them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{
    errors, exchange, exchange_with, matched, response_matched, rules, tagging, tagging_response, upstream_header,
    upstream_values,
};
use rulefilter::simulate::{Request, Response};

fn upstream(status: u16, headers: &[(&str, &str)]) -> Response {
    Response {
        status,
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        body: String::new(),
    }
}

// ----- matching -----

#[test]
fn path_operators_follow_gateway_api_and_envoy() {
    let segments = tagging("{path: {segment_prefix: /api}}");
    for path in ["/api", "/api/", "/api/v1?x=1"] {
        assert!(matched(&segments, &Request::get(path)), "{path}");
    }
    assert!(!matched(&segments, &Request::get("/apiv1")));
    let plain = tagging("{path: {prefix: /api}}");
    assert!(matched(&plain, &Request::get("/apiv1")), "plain prefix is a string prefix, as in Istio/Envoy");
    assert!(matched(&tagging("{path: {suffix: .png}}"), &Request::get("/img/a.png?v=2")));
    assert!(matched(&tagging("{path: {contains: /admin/}}"), &Request::get("/x/admin/y")));
    assert!(matched(&tagging("{path: {exact: /A, ignore_case: true}}"), &Request::get("/a")));
}

#[test]
fn query_parameters_are_matched_decoded_by_their_first_value() {
    let exact = tagging("{query: {q: 'rust lang'}}");
    assert!(matched(&exact, &Request::get("/s?q=rust+lang")));
    assert!(matched(&exact, &Request::get("/s?q=rust%20lang&q=other")));
    assert!(!matched(&exact, &Request::get("/s?q=other&q=rust+lang")), "the first value counts");
    assert!(matched(&tagging("{query: {v: {prefix: '2'}}}"), &Request::get("/?v=2.1")));
    assert!(matched(&tagging("{query: {id: {regex: '[0-9]+'}}}"), &Request::get("/?id=42")));
    assert!(!matched(&tagging("{query: {id: {regex: '[0-9]+'}}}"), &Request::get("/?id=42x")));
    let present = tagging("{query: {debug: {present: true}}}");
    assert!(matched(&present, &Request::get("/?debug")));
    assert!(matched(&present, &Request::get("/?a=1&debug=")));
    assert!(!matched(&present, &Request::get("/?debugging=1")));
    assert!(matched(&tagging("{query: {debug: {absent: true}}}"), &Request::get("/")));
    assert!(matched(&tagging("{query: {'a b': c}}"), &Request::get("/?a%20b=c")), "names are decoded too");
}

#[test]
fn method_scheme_and_hosts() {
    assert!(matched(&tagging("{method: [PUT, PATCH]}"), &Request::get("/").method("PATCH")));
    let https = tagging("{scheme: https}");
    assert!(!matched(&https, &Request::get("/")));
    let mut secure = Request::get("/");
    secure.scheme = "https".into();
    assert!(matched(&https, &secure));

    let wildcard = tagging("{host: '*.example.com'}");
    assert!(matched(&wildcard, &Request::get("/").authority("api.example.com")));
    assert!(matched(&wildcard, &Request::get("/").authority("a.b.EXAMPLE.com:8443")));
    assert!(!matched(&wildcard, &Request::get("/").authority("example.com")));
    assert!(!matched(&wildcard, &Request::get("/").authority("badexample.com")));
    let list = tagging("{host: [shop.example.com, {suffix: .shop.test}]}");
    assert!(matched(&list, &Request::get("/").authority("shop.example.com")));
    assert!(matched(&list, &Request::get("/").authority("eu.shop.test:80")));
    assert!(!matched(&list, &Request::get("/").authority("example.com")));
}

#[test]
fn cookies_by_name() {
    let canary = tagging("{cookies: {canary: always}}");
    assert!(matched(&canary, &Request::get("/").header("cookie", "session=x; canary=always")));
    assert!(!matched(&canary, &Request::get("/").header("cookie", "canary=never")));
    assert!(!matched(&canary, &Request::get("/")));
    let has_session = tagging("{cookies: {session: {present: true}}}");
    assert!(matched(&has_session, &Request::get("/").header("cookie", "session=abc")));
    assert!(!matched(&has_session, &Request::get("/").header("cookie", "sessionid=abc")));
    // Two cookie headers (an HTTP/1.1 client may send them) both count.
    assert!(matched(&canary, &Request::get("/").header("cookie", "session=x").header("cookie", "canary=always")));
}

#[test]
fn a_repeated_header_is_its_values_joined_with_commas_as_envoy_matches_it() {
    let two = Request::get("/").header("x-role", "reader").header("x-role", "admin");
    assert!(matched(&tagging("{headers: {x-role: 'reader,admin'}}"), &two));
    assert!(!matched(&tagging("{headers: {x-role: reader}}"), &two), "exact compares the whole joined value");
    assert!(matched(&tagging("{headers: {x-role: {regex: '(.*,)?admin(,.*)?'}}}"), &two));
    assert!(matched(&tagging("{headers: {x-role: {contains: admin}}}"), &two));
    // Templates read the same value, and a rule sees values an earlier rule appended.
    let doc = rules(
        "request:\n  - name: append\n    actions: [request_headers: {add: {x-role: auditor}}]\n  - name: copy\n    actions: [request_headers: {set: {x-roles: '${header.x-role}'}}]\n",
    );
    let outcome = exchange(&doc, &two);
    assert_eq!(upstream_header(&outcome, "x-roles"), Some("reader,admin,auditor"));
    assert_eq!(upstream_values(&outcome, "x-role"), ["reader", "admin", "auditor"]);
}

#[test]
fn source_addresses_by_cidr_from_the_connection_or_trusted_forwarded_for() {
    let internal = tagging("{source: {cidrs: [10.0.0.0/8, 'fd00::/8']}}");
    assert!(matched(&internal, &Request::get("/").from("10.1.2.3:5555")));
    assert!(matched(&internal, &Request::get("/").from("[fd00::1]:5555")));
    assert!(!matched(&internal, &Request::get("/").from("192.0.2.1:5555")));
    // The address is Envoy's idea of the client: with its default `use_remote_address: false` the connection
    // manager takes the rightmost x-forwarded-for entry (the real Envoy does; see the e2e suite), and an entry
    // that is not an address leaves the peer.
    assert!(matched(&internal, &Request::get("/").from("192.0.2.1:1").header("x-forwarded-for", "10.0.0.1")));
    assert!(!matched(&internal, &Request::get("/").from("10.0.0.1:1").header("x-forwarded-for", "192.0.2.1")));
    assert!(matched(&internal, &Request::get("/").from("10.0.0.1:1").header("x-forwarded-for", "unknown")));

    let behind_lb = tagging("{source: {cidrs: [203.0.113.0/24], trusted_hops: 1}}");
    let via = |xff: &str| Request::get("/").from("10.0.0.9:1").header("x-forwarded-for", xff);
    assert!(matched(&behind_lb, &via("203.0.113.7")));
    assert!(!matched(&behind_lb, &via("203.0.113.7, 198.51.100.1")), "the rightmost entry is the one the LB wrote");
    assert!(!matched(&behind_lb, &Request::get("/").from("10.0.0.9:1")), "no header: the peer address is used");
    let two_hops = tagging("{source: {cidrs: [203.0.113.0/24], trusted_hops: 2}}");
    assert!(matched(&two_hops, &via("203.0.113.7, 198.51.100.1")));

    let outside = tagging("{source: {cidrs: [10.0.0.0/8], invert: true}}");
    assert!(matched(&outside, &Request::get("/").from("192.0.2.1:1")));
}

#[test]
fn status_as_code_list_range_and_class() {
    let req = Request::get("/");
    let class = tagging_response("{status: 5xx}");
    assert!(response_matched(&class, &req, &upstream(503, &[])));
    assert!(!response_matched(&class, &req, &upstream(404, &[])));
    let mixed = tagging_response("{status: [404, '500-502']}");
    for (code, want) in [(404, true), (500, true), (502, true), (503, false), (200, false)] {
        assert_eq!(response_matched(&mixed, &req, &upstream(code, &[])), want, "{code}");
    }
    let one = tagging_response("{status: 201.0}");
    assert!(response_matched(&one, &req, &upstream(201, &[])));
}

#[test]
fn all_any_not_nest_and_invert_negates_one_condition() {
    let rule = tagging(
        "{any: [{path: {prefix: /admin}}, {headers: {x-admin: 'true'}}], not: {source: {cidrs: [10.0.0.0/8]}}}",
    );
    assert!(matched(&rule, &Request::get("/admin").from("192.0.2.1:1")));
    assert!(matched(&rule, &Request::get("/x").header("x-admin", "true").from("192.0.2.1:1")));
    assert!(!matched(&rule, &Request::get("/admin").from("10.0.0.1:1")));
    assert!(!matched(&rule, &Request::get("/x").from("192.0.2.1:1")));

    let nested = tagging("{all: [{method: GET}, {any: [{path: /a}, {not: {any: [{path: {prefix: /}}]}}]}]}");
    assert!(matched(&nested, &Request::get("/a")));
    assert!(!matched(&nested, &Request::get("/b")));

    let not_json = tagging("{headers: {content-type: {prefix: application/json, invert: true}}}");
    assert!(matched(&not_json, &Request::get("/")), "invert holds when the header is absent");
    assert!(matched(&not_json, &Request::get("/").header("content-type", "text/html")));
    assert!(!matched(&not_json, &Request::get("/").header("content-type", "application/json")));
}

#[test]
fn request_attributes_stay_matchable_in_the_response_phase() {
    let rules = tagging_response(
        "{query: {lang: de}, cookies: {beta: '1'}, source: {cidrs: [192.0.2.0/24]}, method: GET, host: '*.example.com'}",
    );
    let request =
        Request::get("/p?lang=de").authority("www.example.com").header("cookie", "beta=1").from("192.0.2.5:9");
    assert!(response_matched(&rules, &request, &Response::ok()));
    assert!(!response_matched(&rules, &request.clone().from("198.51.100.1:9"), &Response::ok()));
}

// ----- actions -----

#[test]
fn header_actions_set_add_set_if_absent_remove_by_name_prefix_regex_copy_rename() {
    let rules = rules(
        r#"
request:
  - name: headers
    actions:
      - request_headers:
          copy: [{from: x-request-id, to: x-trace-id}]
          rename: [{from: x-old, to: x-new}]
          set: {x-set: one}
          set_if_absent: {x-default: fallback, x-present: fallback}
          add: {x-multi: second}
          remove: [x-drop]
          remove_prefix: [x-internal-]
          remove_regex: ['x-debug-[0-9]+']
"#,
    );
    let request = Request::get("/")
        .header("x-request-id", "r-1")
        .header("x-old", "moved")
        .header("x-present", "kept")
        .header("x-multi", "first")
        .header("x-drop", "1")
        .header("x-internal-a", "1")
        .header("x-internal-b", "1")
        .header("x-debug-7", "1")
        .header("x-debug-x", "kept");
    let outcome = exchange(&rules, &request);
    assert_eq!(upstream_values(&outcome, "x-trace-id"), ["r-1"]);
    assert_eq!(upstream_values(&outcome, "x-request-id"), ["r-1"]);
    assert_eq!(upstream_values(&outcome, "x-new"), ["moved"]);
    assert!(upstream_values(&outcome, "x-old").is_empty());
    assert_eq!(upstream_values(&outcome, "x-set"), ["one"]);
    assert_eq!(upstream_values(&outcome, "x-default"), ["fallback"]);
    assert_eq!(upstream_values(&outcome, "x-present"), ["kept"]);
    assert_eq!(upstream_values(&outcome, "x-multi"), ["first", "second"]);
    for gone in ["x-drop", "x-internal-a", "x-internal-b", "x-debug-7"] {
        assert!(upstream_values(&outcome, gone).is_empty(), "{gone}");
    }
    assert_eq!(upstream_values(&outcome, "x-debug-x"), ["kept"]);
    assert_eq!(upstream_header(&outcome, ":path"), Some("/"), "pseudo-headers are never removed by pattern");
}

#[test]
fn response_header_actions_work_the_same_on_the_response() {
    let rules = rules(
        r#"
response:
  - name: scrub
    actions:
      - response_headers:
          remove_prefix: [x-envoy-]
          remove: [server]
          set_if_absent: {cache-control: no-store}
          rename: [{from: x-powered-by, to: x-was-powered-by}]
"#,
    );
    let up = upstream(
        200,
        &[
            ("server", "nginx"),
            ("x-envoy-upstream-service-time", "3"),
            ("x-powered-by", "php"),
            ("cache-control", "max-age=60"),
        ],
    );
    let outcome = exchange_with(&rules, &Request::get("/"), &up);
    assert_eq!(outcome.response.header("server"), None);
    assert_eq!(outcome.response.header("x-envoy-upstream-service-time"), None);
    assert_eq!(outcome.response.header("cache-control"), Some("max-age=60"));
    assert_eq!(outcome.response.header("x-was-powered-by"), Some("php"));
}

#[test]
fn direct_response_with_content_type_and_templates() {
    let rules = rules(
        r#"
request:
  - name: whoami
    match: {path: {regex: '/users/(?P<user>[a-z]+)'}}
    actions:
      - respond:
          status: 200
          content_type: application/json
          headers: {x-user: "${capture.user}"}
          body: '{"user":"${capture.user}","method":"${method}","env":"${env.CLUSTER}"}'
"#,
    );
    let outcome = exchange(&rules, &Request::get("/users/ada"));
    assert_eq!(outcome.response.status, 200);
    assert_eq!(outcome.response.header("content-type"), Some("application/json"));
    assert_eq!(outcome.response.header("x-user"), Some("ada"));
    assert_eq!(outcome.response.body, r#"{"user":"ada","method":"GET","env":"eu-west-1"}"#);
}

#[test]
fn redirects_by_parts_keep_the_query_and_fix_ports() {
    let to_https = rules("request:\n  - name: r\n    actions: [{redirect: {scheme: https, status: 301}}]");
    let outcome = exchange(&to_https, &Request::get("/a/b?x=1").authority("example.com:8080"));
    assert_eq!(outcome.response.status, 301);
    assert_eq!(
        outcome.response.header("location"),
        Some("https://example.com/a/b?x=1"),
        "scheme change drops the old port"
    );
    assert_eq!(outcome.upstream_request, None);

    let moved = rules("request:\n  - name: r\n    actions: [{redirect: {host: new.example.com, path: '/v2${path}'}}]");
    let outcome = exchange(&moved, &Request::get("/p?q=1").authority("old.example.com:8080"));
    assert_eq!(outcome.response.status, 302);
    assert_eq!(outcome.response.header("location"), Some("http://new.example.com:8080/v2/p?q=1"));

    let stripped = rules(
        "request:\n  - name: r\n    actions: [{redirect: {path: /login, keep_query: false, port: 443, scheme: https}}]",
    );
    let outcome = exchange(&stripped, &Request::get("/app?secret=1"));
    assert_eq!(outcome.response.header("location"), Some("https://example.com/login"));

    let with_query = rules(
        "request:\n  - name: r\n    actions: [{redirect: {path: /search, query: 'q=${query.term}', status: 308}}]",
    );
    let outcome = exchange(&with_query, &Request::get("/find?term=a+b"));
    assert_eq!(outcome.response.status, 308);
    assert_eq!(outcome.response.header("location"), Some("http://example.com/search?q=a b"));
}

#[test]
fn redirects_to_a_location_append_the_query_unless_it_has_one() {
    let legacy = rules(
        r#"
request:
  - name: legacy
    match: {path: {regex: '/blog/(\d{4})/(?P<slug>[^/]+)'}}
    actions: [{redirect: {location: 'https://blog.example.com/${capture.slug}', status: 301}}]
  - name: fixed
    match: {path: /old}
    actions: [{redirect: {location: 'https://example.com/new?from=old'}}]
"#,
    );
    let outcome = exchange(&legacy, &Request::get("/blog/2019/hello-world?utm=x"));
    assert_eq!(outcome.response.header("location"), Some("https://blog.example.com/hello-world?utm=x"));
    let outcome = exchange(&legacy, &Request::get("/old?utm=x"));
    assert_eq!(outcome.response.header("location"), Some("https://example.com/new?from=old"));
}

#[test]
fn rewrites_replace_the_path_prefix_or_regex_and_the_host_keeping_the_query() {
    let rules = rules(
        r#"
request:
  - name: prefix
    match: {path: {segment_prefix: /api/v1}}
    actions: [{rewrite: {path_prefix: {from: /api/v1, to: /v1}, host: backend.internal}}]
  - name: regex
    match: {path: {prefix: /users/}}
    actions: [{rewrite: {path_regex: {pattern: '/users/([0-9]+)/posts/([0-9]+)', substitution: '/posts/\2?author=\1'}}}]
  - name: full
    match: {path: {regex: '/shop/(?P<item>[a-z]+)'}}
    actions: [{rewrite: {path: '/catalog/${capture.item}/${header.x-region}'}}]
"#,
    );
    let outcome = exchange(&rules, &Request::get("/api/v1/users?page=2"));
    assert_eq!(upstream_header(&outcome, ":path"), Some("/v1/users?page=2"));
    assert_eq!(upstream_header(&outcome, ":authority"), Some("backend.internal"));
    let outcome = exchange(&rules, &Request::get("/users/7/posts/9?x=1"));
    assert_eq!(upstream_header(&outcome, ":path"), Some("/posts/9?author=7"), "a rewritten query replaces the old one");
    let outcome = exchange(&rules, &Request::get("/users/7/other"));
    assert_eq!(upstream_header(&outcome, ":path"), Some("/users/7/other"), "no regex match: unchanged");
    let outcome = exchange(&rules, &Request::get("/shop/shoes?size=9").header("x-region", "eu"));
    assert_eq!(upstream_header(&outcome, ":path"), Some("/catalog/shoes/eu?size=9"));
}

#[test]
fn a_regex_rewrite_substitutes_every_match_anywhere_as_envoys_regex_rewrite_does() {
    let rules = rules(
        r#"
request:
  - name: every
    match: {path: {prefix: /xxx/}}
    actions: [{rewrite: {path_regex: {pattern: one, substitution: two}}}]
  - name: partial
    match: {path: {prefix: /api/}}
    actions: [{rewrite: {path_regex: {pattern: '^/api/v[2-3]/', substitution: /}}}]
"#,
    );
    // The example of Envoy's `regex_rewrite` documentation.
    let outcome = exchange(&rules, &Request::get("/xxx/one/yyy/one/zzz"));
    assert_eq!(upstream_header(&outcome, ":path"), Some("/xxx/two/yyy/two/zzz"));
    let outcome = exchange(&rules, &Request::get("/api/v2/users?page=2"));
    assert_eq!(upstream_header(&outcome, ":path"), Some("/users?page=2"));
}

#[test]
fn query_parameters_set_add_remove_encoded() {
    let rules = rules(
        r#"
request:
  - name: query
    actions: [{query: {set: {lang: en, page: "${header.x-page}"}, add: {tag: a b}, remove: [token]}}]
"#,
    );
    let outcome = exchange(&rules, &Request::get("/s?lang=de&token=secret&lang=fr&q=x").header("x-page", "3&4"));
    assert_eq!(upstream_header(&outcome, ":path"), Some("/s?lang=en&q=x&page=3%264&tag=a%20b"));
}

#[test]
fn later_rules_see_what_earlier_rules_wrote() {
    let rules = rules(
        r#"
request:
  - name: normalise
    match: {path: {prefix: /old/}}
    actions: [{rewrite: {path_prefix: {from: /old/, to: /new/}}}, {request_headers: {set: {x-tier: gold}}}]
  - name: after
    match: {path: {prefix: /new/}, headers: {x-tier: gold}}
    actions: [{request_headers: {set: {x-after: "${path}"}}}]
"#,
    );
    let outcome = exchange(&rules, &Request::get("/old/x"));
    assert_eq!(upstream_header(&outcome, "x-after"), Some("/new/x"));
}

#[test]
fn templates_read_every_request_and_response_value() {
    let rules = rules(
        r#"
request:
  - name: echo
    match: {path: {regex: '/(?P<section>[a-z]+)/([0-9]+)'}}
    actions:
      - request_headers:
          set:
            x-all: "${method} ${scheme} ${host} ${authority} ${path} ${query} ${query.a} ${header.x-in} ${cookie.c} ${source.ip} ${capture.section} ${capture.2} $$ ${env.CLUSTER}"
response:
  - name: reflect
    actions:
      - response_headers:
          set: {x-status: "${status} ${response_header.content-type} ${path}"}
"#,
    );
    let request = Request::get("/docs/42?a=x%2Fy&b=2")
        .authority("example.com:8080")
        .header("x-in", "in")
        .header("cookie", "c=cookie")
        .from("[2001:db8::5]:1234");
    let outcome = exchange_with(&rules, &request, &upstream(404, &[("content-type", "text/plain")]));
    assert_eq!(
        upstream_header(&outcome, "x-all"),
        Some(
            "GET http example.com example.com:8080 /docs/42 a=x%2Fy&b=2 x/y in cookie 2001:db8::5 docs 42 $ eu-west-1"
        )
    );
    assert_eq!(outcome.response.header("x-status"), Some("404 text/plain /docs/42"));
}

#[test]
fn a_rendered_value_that_would_split_a_header_never_reaches_the_wire() {
    let rules = rules(
        r#"
request:
  - name: reflect
    actions:
      - request_headers: {set: {x-q: "${query.q}", x-ok: fine}}
      - response_headers: {set: {x-q: "${query.q}"}}
"#,
    );
    let outcome = exchange(&rules, &Request::get("/?q=a%0d%0aInjected:%20yes"));
    assert!(upstream_values(&outcome, "x-q").is_empty());
    assert_eq!(upstream_values(&outcome, "x-ok"), ["fine"], "the rest of the action still applies");
    assert_eq!(outcome.response.header("x-q"), None);
    assert_eq!(outcome.response.header("injected"), None);
}

#[test]
fn stop_is_per_rule_and_defaults_to_going_on() {
    let rules = rules(
        r#"
request:
  - name: tag-api
    match: {path: {prefix: /api}}
    stop: true
    actions: [{request_headers: {add: {x-seen: api}}}]
  - name: tag-all
    actions: [{request_headers: {add: {x-seen: all}}}]
"#,
    );
    assert_eq!(upstream_values(&exchange(&rules, &Request::get("/api")), "x-seen"), ["api"]);
    assert_eq!(upstream_values(&exchange(&rules, &Request::get("/web")), "x-seen"), ["all"]);
}

// ----- validation of the vocabulary -----

#[test]
fn references_are_checked_when_the_document_is_compiled() {
    let doc = |rule: &str| format!("request:\n  - name: r\n{rule}");
    assert_eq!(
        errors(&doc("    actions: [{request_headers: {set: {x-a: '${nope}'}}}]")),
        [format!(
            r#"request[0] "r": actions[0].request_headers.set.x-a: unknown reference `${{nope}}`; known: {}"#,
            rulefilter::compile::KNOWN_REFERENCES
        )]
    );
    assert_eq!(
        errors(&doc("    actions: [{request_headers: {set: {x-a: '${status}'}}}]")),
        [
            r#"request[0] "r": actions[0].request_headers.set.x-a: `${status}` is only known in the response phase; request rules render templates when the request arrives"#
        ]
    );
    assert_eq!(
        errors(&doc("    actions: [{respond: {status: 200, body: '${env.MISSING}'}}]")),
        [
            r#"request[0] "r": actions[0].respond.body: `${env.MISSING}`: the plugin has no environment variable "MISSING" (vmConfig.env)"#
        ]
    );
    assert_eq!(
        errors(&doc("    actions: [{respond: {status: 200, body: 'a ${path'}}]")),
        [r#"request[0] "r": actions[0].respond.body: unterminated `${` in "a ${path""#]
    );
}

#[test]
fn captures_must_name_one_group_that_can_hold_a_value() {
    let doc = |conditions: &str, body: &str| {
        format!("request:\n  - name: r\n    match: {conditions}\n    actions: [{{respond: {{status: 200, body: '{body}'}}}}]")
    };
    assert_eq!(
        errors(&doc("{path: {regex: '/(a)'}, headers: {x: {regex: '(b)'}}}", "${capture.1}")),
        [
            r#"request[0] "r": actions[0].respond.body: `${capture.1}` is ambiguous: several regex conditions have that group; name it `(?P<name>…)` in one"#
        ]
    );
    assert_eq!(
        errors(&doc("{path: {regex: '/(a)'}}", "${capture.2}")),
        [
            r#"request[0] "r": actions[0].respond.body: `${capture.2}`: no regex condition of this rule has that group; capture it with `(…)` in a `regex` test"#
        ]
    );
    assert_eq!(
        errors(&doc("{not: {path: {regex: '/(?P<x>a)'}}}", "${capture.x}")),
        [
            r#"request[0] "r": actions[0].respond.body: `${capture.x}` comes from match.not.path, under `not`: it never holds a value when the rule matches"#
        ]
    );
    // Named groups disambiguate.
    rules(&doc("{path: {regex: '/(a)'}, headers: {x: {regex: '(?P<h>b)'}}}", "${capture.h}"));
}

#[test]
fn new_conditions_and_actions_refuse_mistakes_with_their_field() {
    let doc = |rule: &str| format!("request:\n  - name: r\n{rule}");
    assert_eq!(
        errors(&doc("    match: {source: {cidrs: [10.0.0.1/8, nope]}}\n    actions: [{respond: {status: 200}}]")),
        [
            r#"request[0] "r": match.source.cidrs[0]: "10.0.0.1/8" has host bits set beyond /8"#,
            r#"request[0] "r": match.source.cidrs[1]: "nope" is not an IP address"#,
        ]
    );
    assert_eq!(
        errors("response:\n  - name: r\n    match: {status: [6xx, '500-400', 99]}\n    actions: [{response_headers: {set: {a: b}}}]"),
        [
            r#"response[0] "r": match.status[0]: "6xx" is not a status (100-599), a class like "5xx" or a range like "500-504""#,
            r#"response[0] "r": match.status[1]: "500-400" is an empty range; write the lower code first, e.g. "500-504""#,
            r#"response[0] "r": match.status[2]: 99 is not an HTTP status (100-599)"#,
        ]
    );
    assert_eq!(
        errors(&doc("    match: {host: '*example.com', headers: {x: {segment_prefix: /a}}}\n    actions: [{respond: {status: 200}}]")),
        [
            r#"request[0] "r": match.host: a wildcard host is `*.` followed by a domain, e.g. `*.example.com`"#,
            r#"request[0] "r": match.headers.x.segment_prefix: only the path has segments; use prefix"#,
        ]
    );
    assert_eq!(
        errors(&doc("    actions: [{redirect: {status: 200, location: /x, host: y}}]")),
        [
            r#"request[0] "r": actions[0].redirect.status: 200 is not a redirect status (301, 302, 303, 307, 308)"#,
            r#"request[0] "r": actions[0].redirect: give either `location` or the parts (scheme, host, port, path, path_segment_prefix, query), not both"#,
        ]
    );
    assert_eq!(
        errors(&doc("    actions: [{rewrite: {path: x, path_regex: {pattern: '(a', substitution: '\\2'}}}]")),
        [
            r#"request[0] "r": actions[0].rewrite: give only one of path, path_prefix, path_segment_prefix, path_regex"#,
            r#"request[0] "r": actions[0].rewrite.path: a path starts with `/`"#,
        ]
    );
    assert_eq!(
        errors(&doc("    actions: [{rewrite: {path_regex: {pattern: '/(a)', substitution: '/\\2'}}}]")),
        [
            r#"request[0] "r": actions[0].rewrite.path_regex.substitution: \2 refers to a group the pattern does not have (1 groups)"#
        ]
    );
    assert_eq!(
        errors("response:\n  - name: r\n    actions: [{rewrite: {host: x}}, {query: {remove: [a]}}, {log: {level: loud, message: m}}]"),
        [
            r#"response[0] "r": actions[0].rewrite: cannot rewrite in the response phase: the request has already gone upstream; move this action to a request rule"#,
            r#"response[0] "r": actions[1].query: cannot edit the query in the response phase: the request has already gone upstream; move this action to a request rule"#,
            r#"response[0] "r": actions[2].log.level: "loud" is not one of trace, debug, info, warn, error"#,
        ]
    );
    assert_eq!(
        errors(&doc("    match: {any: [], all: [{}]}\n    actions: [{redirect: {path: /x}}, {log: {message: after}}]")),
        [
            r#"request[0] "r": match.all[0]: an empty block; give it conditions"#,
            r#"request[0] "r": match.any: `any` needs at least one block"#,
            r#"request[0] "r": actions[1]: never runs: `redirect` at actions[0] ends the phase"#,
        ]
    );
}

#[test]
fn nesting_is_bounded() {
    let mut block = "{path: /x}".to_owned();
    for _ in 0..20 {
        block = format!("{{not: {block}}}");
    }
    let found =
        errors(&format!("request:\n  - name: deep\n    match: {block}\n    actions: [{{respond: {{status: 200}}}}]"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("blocks nest more than 16 deep"), "{found:?}");
}
