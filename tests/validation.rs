//! Every kind of mistake is refused with one line per problem naming the rule (index and name) and the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

fn errors(document: &str) -> Vec<String> {
    match rulefilter::parse(document) {
        Ok(_) => panic!("document should be refused:\n{document}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

#[track_caller]
fn refused(document: &str, expected: &[&str]) {
    assert_eq!(errors(document), expected, "\ndocument:\n{document}");
}

#[test]
fn unknown_fields_are_named_with_the_fields_that_exist() {
    refused(
        "request:\n  - name: a\n    match: {pathh: /x}\n    actions: [{respond: {status: 200}}]",
        &[
            r#"request[0] "a": match.pathh: unknown field `pathh`, expected one of `path`, `method`, `scheme`, `host`, `headers`, `query`, `cookies`, `source`, `api_key`, `basic_auth`, `status`, `response_headers`, `attributes`, `claims`, `misdirected`, `all`, `any`, `not`, `sample`"#,
        ],
    );
    refused(
        "request:\n  - name: a\n    actions: [{respnd: {status: 200}}]",
        &[
            r#"request[0] "a": actions[0].respnd: unknown field `respnd`, expected one of `request_headers`, `response_headers`, `respond`, `redirect`, `rewrite`, `query`, `log`, `rate_limit`, `request_body`, `response_body`"#,
        ],
    );
    refused(
        "requests: []",
        &["requests: unknown field `requests`, expected one of `version`, `mode`, `log_level`, `debug_header`, `request`, `response`"],
    );
}

#[test]
fn a_mode_is_enforce_or_dry_run() {
    refused(
        "request:
  - name: a
    mode: dryrun
    actions: [{respond: {status: 200}}]",
        &[r#"request[0] "a": mode: unknown variant `dryrun`, expected `enforce` or `dry_run`"#],
    );
    refused("mode: dry-run", &["mode: unknown variant `dry-run`, expected `enforce` or `dry_run`"]);
}

#[test]
fn a_log_level_is_one_of_five() {
    refused("log_level: verbose", &[r#"log_level: "verbose" is not one of trace, debug, info, warn, error"#]);
}

#[test]
fn a_debug_header_is_a_header_name_of_its_own() {
    refused(
        "debug_header: x rules",
        &[r#"debug_header: "x rules" is not a valid header name (a token: letters, digits and !#$%&'*+-.^_`|~)"#],
    );
    refused(
        "debug_header: Content-Type",
        &[
            r#"debug_header: "content-type" means something to clients; pick a name of your own, such as x-rulefilter-matched"#,
        ],
    );
}

#[test]
fn wrong_types_name_the_field() {
    refused(
        "request:\n  - name: a\n    actions: [{request_headers: {set: {x: 3}}}]",
        &[
            r#"request[0] "a": actions[0].request_headers.set.x: invalid type: integer `3`, expected a string (kubectl reads YAML 1.1, where unquoted 1_000, 0777, 1:30 and 1e3 are numbers: quote the value)"#,
        ],
    );
    refused(
        "request:\n  - name: a\n    actions: [{respond: {status: 200.5}}]",
        &[
            r#"request[0] "a": actions[0].respond.status: invalid value: floating point `200.5`, expected an HTTP status code, 200-599"#,
        ],
    );
    refused(
        "request: {a: 1}",
        &["request: a map where a list is expected; this is a list of rules: start each with `- name: …`"],
    );
}

#[test]
fn bad_regexes_give_the_reason_on_one_line() {
    refused(
        "request:\n  - name: a\n    match: {headers: {x-id: {regex: '(x'}}}\n    actions: [{respond: {status: 200}}]",
        &[r#"request[0] "a": match.headers.x-id.regex: invalid regex: unclosed group"#],
    );
}

/// The module is built without regex's Unicode property tables; the CLI and the module refuse such classes alike,
/// by name, whatever regex features a build has (this test's build has them all).
#[test]
fn unicode_property_classes_are_refused_with_the_reason() {
    refused(
        "request:\n  - name: a\n    match: {path: {regex: '/(\\p{Greek}+)'}}\n    actions: [{respond: {status: 200}}]\n  - name: b\n    actions: [{rewrite: {path_regex: {pattern: '[\\pL-]+', substitution: x}}}]",
        &[
            r#"request[0] "a": match.path.regex: invalid regex: \p{Greek}: Unicode property classes (\p{…}, \P{…}) are not supported; list the characters or ranges in a class such as [a-zà-ÿ], or use \w, \d or \s (which are Unicode-aware)"#,
            r#"request[1] "b": actions[0].rewrite.path_regex.pattern: invalid regex: \pL: Unicode property classes (\p{…}, \P{…}) are not supported; list the characters or ranges in a class such as [a-zà-ÿ], or use \w, \d or \s (which are Unicode-aware)"#,
        ],
    );
}

#[test]
fn every_problem_of_every_rule_is_reported() {
    refused(
        "request:\n  - name: a\n    actions: []\n  - name: a\n    actions: [{respond: {status: 99}}]\n  - name: ok\n    actions: [{respond: {status: 204}}]\n  - name: 'bad name'\n    actions: [{respond: {status: 200}}]",
        &[
            r#"request[0] "a": actions: a rule needs at least one action"#,
            r#"request[1] "a": name: duplicate name; request[0] already uses it: give each rule a name of its own"#,
            r#"request[1] "a": actions[0].respond.status: 99 is not a final HTTP status (200-599)"#,
            r#"request[3] "bad name": name: a name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (it labels logs and metrics)"#,
        ],
    );
}

#[test]
fn names_are_unique_across_phases_and_required() {
    refused(
        "request:\n  - name: tag\n    actions: [{response_headers: {set: {a: b}}}]\nresponse:\n  - name: tag\n    actions: [{response_headers: {set: {a: b}}}]",
        &[r#"response[0] "tag": name: duplicate name; request[0] already uses it: give each rule a name of its own"#],
    );
    refused("request:\n  - actions: [{respond: {status: 200}}]", &["request[0]: missing field `name`"]);
}

#[test]
fn response_only_conditions_are_refused_in_the_request_phase() {
    refused(
        "request:\n  - name: errors\n    match: {status: 500, response_headers: {content-type: text/html}}\n    actions: [{response_headers: {set: {a: b}}}]",
        &[
            r#"request[0] "errors": match.status: the status is only known in the response phase; put this rule under `response`"#,
            r#"request[0] "errors": match.response_headers.content-type: response headers are only known in the response phase; put this rule under `response`"#,
        ],
    );
}

#[test]
fn request_edits_are_refused_in_the_response_phase() {
    refused(
        "response:\n  - name: late\n    actions: [{request_headers: {set: {a: b}}}]",
        &[
            r#"response[0] "late": actions[0].request_headers: cannot edit request headers in the response phase: the request has already gone upstream; move this action to a request rule"#,
        ],
    );
}

#[test]
fn operators_are_exactly_one_and_presence_is_for_headers() {
    refused(
        "request:\n - name: a\n   match: {headers: {x-a: {prefix: a, regex: b}}, path: {present: true}, host: {ignore_case: true}}\n   actions: [{respond: {status: 200}}]",
        &[
            r#"request[0] "a": match.path.present: only headers, query parameters and cookies can be tested for presence"#,
            r#"request[0] "a": match.host: give one of exact, prefix, suffix, contains or regex"#,
            r#"request[0] "a": match.headers.x-a: give only one of exact, prefix, suffix, contains, regex, present or absent; found both prefix and regex"#,
        ],
    );
}

#[test]
fn header_names_and_values_cannot_smuggle_lines() {
    refused(
        "request:\n - name: a\n   actions: [{request_headers: {set: {x-a: \"a\\r\\nx-b: c\", 'x b': c}, remove: [':path']}}]",
        &[
            r#"request[0] "a": actions[0].request_headers.set.x b: "x b" is not a valid header name (a token: letters, digits and !#$%&'*+-.^_`|~)"#,
            r#"request[0] "a": actions[0].request_headers.set.x-a: header values cannot contain CR, LF or NUL; write the value on one line"#,
            r#"request[0] "a": actions[0].request_headers.remove[0]: ":path" is a pseudo-header Envoy needs unchanged; change the path with `rewrite` and the query with `query`"#,
        ],
    );
    refused(
        "request:\n - name: a\n   actions: [{request_headers: {set: {X-A: '1', x-a: '2'}}}]",
        &[
            r#"request[0] "a": actions[0].request_headers.set.x-a: given twice (header names are case-insensitive); keep one"#,
        ],
    );
}

#[test]
fn actions_after_a_direct_response_are_refused_as_dead() {
    refused(
        "request:\n - name: a\n   actions: [{respond: {status: 200}}, {request_headers: {set: {a: b}}}]",
        &[r#"request[0] "a": actions[1]: never runs: `respond` at actions[0] ends the phase"#],
    );
    refused(
        "request:\n - name: a\n   actions: [{respond: {status: 200}, request_headers: {set: {a: b}}}]",
        &[
            r#"request[0] "a": actions[0]: an action item holds one action; found both `request_headers` and `respond` (make them two items)"#,
        ],
    );
}

#[test]
fn syntax_errors_and_versions_are_document_errors() {
    let syntax = errors("{\"request\": [");
    assert_eq!(syntax.len(), 1);
    assert!(syntax[0].starts_with("document: not valid YAML or JSON: "), "{syntax:?}");
    assert!(syntax[0].contains("line 2 column 1"), "{syntax:?}");
    refused("version: 2", &["version: unsupported version 2; this filter reads version 1"]);
    assert!(rulefilter::parse("version: 1.0").is_ok());
}

#[test]
fn every_error_is_one_line() {
    // serde and regex messages can be multi-line; a log line must not be.
    let all =
        errors("request:\n - name: a\n   match: {path: {regex: \"[z-a]\"}}\n   actions: [{respond: {status: 200}}]");
    assert_eq!(all.len(), 1);
    assert!(!all[0].contains('\n'), "{all:?}");
    assert!(all[0].starts_with(r#"request[0] "a": match.path.regex: invalid regex: "#), "{all:?}");
}

/// A document with one rule in `phase` doing `action` (flow YAML).
fn one_rule(phase: &str, action: &str) -> String {
    format!("{phase}:\n - name: a\n   actions: [{action}]")
}

#[test]
fn pseudo_headers_cannot_be_moved_copied_or_removed_in_either_phase() {
    refused(
        &one_rule("request", "{request_headers: {rename: [{from: ':method', to: x-m}]}}"),
        &[
            r#"request[0] "a": actions[0].request_headers.rename[0].from: ":method" is a pseudo-header Envoy needs unchanged; rules cannot change it; read it with a condition or a template"#,
        ],
    );
    refused(
        &one_rule("request", "{request_headers: {rename: [{from: ':authority', to: x-a}]}}"),
        &[
            r#"request[0] "a": actions[0].request_headers.rename[0].from: ":authority" is a pseudo-header Envoy needs unchanged; change the host with `rewrite: {host: …}`"#,
        ],
    );
    refused(
        &one_rule("response", "{response_headers: {rename: [{from: ':status', to: x-s}]}}"),
        &[
            r#"response[0] "a": actions[0].response_headers.rename[0].from: ":status" is a pseudo-header Envoy needs unchanged; answer with another status through `respond`"#,
        ],
    );
    refused(
        &one_rule("request", "{request_headers: {copy: [{from: ':path', to: x-p}]}}"),
        &[
            r#"request[0] "a": actions[0].request_headers.copy[0].from: ":path" is a pseudo-header; copy reads plain headers only: give its value with a template, e.g. `set: {x-original-path: "${path}"}`"#,
        ],
    );
    // Any name starting with `:`, in every place an action names a header.
    for action in [
        "{request_headers: {set: {':protocol': x}}}",
        "{request_headers: {remove: [':x']}}",
        "{request_headers: {copy: [{from: x-a, to: ':scheme'}]}}",
        "{response_headers: {set_if_absent: {':status': '200'}}}",
        "{response_headers: {add: {':path': /}}}",
        "{respond: {status: 200, headers: {':status': '201'}}}",
    ] {
        let all = errors(&one_rule("request", action));
        assert_eq!(all.len(), 1, "{action}: {all:?}");
        assert!(all[0].contains("is a pseudo-header"), "{action}: {all:?}");
    }
}

#[test]
fn headers_envoy_frames_messages_with_can_be_removed_but_not_written() {
    refused(
        &one_rule("request", "{request_headers: {set: {Content-Length: '5'}}}"),
        &[
            r#"request[0] "a": actions[0].request_headers.set.Content-Length: "content-length" frames the body: Envoy sends the value as written, and one the body does not have hangs or cuts the message; it can only be removed (Envoy then frames the body itself)"#,
        ],
    );
    refused(
        &one_rule("request", "{request_headers: {add: {connection: close}}}"),
        &[
            r#"request[0] "a": actions[0].request_headers.add.connection: "connection" is connection-specific: Envoy sets it for each connection, and HTTP/2 forbids it (an HTTP/2 upstream answers 502); it can only be removed"#,
        ],
    );
    refused(
        &one_rule("request", "{request_headers: {remove: [host]}}"),
        &[
            r#"request[0] "a": actions[0].request_headers.remove[0]: "host" is the request's :authority inside Envoy: removing it sends the request without a host and `add` gives it two; use `rewrite: {host: …}`"#,
        ],
    );
    for name in ["content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "upgrade", "te"]
    {
        for action in [
            format!("{{request_headers: {{set: {{{name}: x}}}}}}"),
            format!("{{request_headers: {{set_if_absent: {{{name}: x}}}}}}"),
            format!("{{request_headers: {{copy: [{{from: x-a, to: {name}}}]}}}}"),
            format!("{{request_headers: {{rename: [{{from: x-a, to: {name}}}]}}}}"),
            format!("{{response_headers: {{add: {{{name}: x}}}}}}"),
            format!("{{respond: {{status: 200, headers: {{{name}: x}}}}}}"),
        ] {
            let all = errors(&one_rule("request", &action));
            assert_eq!(all.len(), 1, "{action}: {all:?}");
            assert!(all[0].contains(&format!("{name:?}")) && all[0].contains("only be removed"), "{all:?}");
        }
        // Removing them is fine: Envoy frames the message and manages the connection itself.
        for action in [
            format!("{{request_headers: {{remove: [{name}]}}}}"),
            format!("{{request_headers: {{rename: [{{from: {name}, to: x-was}}]}}}}"),
            format!("{{response_headers: {{remove: [{name}]}}}}"),
        ] {
            rulefilter::parse(&one_rule("request", &action)).unwrap();
        }
    }
    refused(
        "debug_header: keep-alive",
        &[
            r#"debug_header: "keep-alive" is connection-specific: Envoy sets it for each connection, and HTTP/2 forbids it (an HTTP/2 upstream answers 502); it can only be removed"#,
        ],
    );
    // `host` is only special in requests; `expect` reaches the upstream as written.
    rulefilter::parse(&one_rule("request", "{response_headers: {set: {host: x}}}")).unwrap();
    rulefilter::parse(&one_rule("request", "{request_headers: {set: {expect: 100-continue}}}")).unwrap();
    refused(
        "request:\n - name: a\n   match: {headers: {Host: example.com}}\n   actions: [{request_headers: {copy: [{from: host, to: x-host}]}}]",
        &[
            r#"request[0] "a": match.headers.Host: a request has no "host" header inside Envoy (it becomes :authority); read the host with `match.host` or `${host}`"#,
            r#"request[0] "a": actions[0].request_headers.copy[0].from: a request has no "host" header inside Envoy (it becomes :authority); read the host with `match.host` or `${host}`"#,
        ],
    );
}

#[test]
fn a_response_without_a_body_cannot_be_given_one() {
    for status in [204, 205, 304] {
        refused(
            &one_rule("request", &format!("{{respond: {{status: {status}, body: gone}}}}")),
            &[&format!(
                r#"request[0] "a": actions[0].respond.body: a {status} response has no body, yet Envoy would send this one and HTTP/1.1 clients would read it as the next response; remove `body` or answer 200"#
            )],
        );
    }
    rulefilter::parse(&one_rule("request", "{respond: {status: 204}}")).unwrap();
}

#[test]
fn numbers_out_of_place_say_what_is_allowed() {
    refused(
        "request:\n - name: a\n   actions: [{respond: {status: abc}}]",
        &[
            r#"request[0] "a": actions[0].respond.status: invalid type: string "abc", expected an HTTP status code, 200-599"#,
        ],
    );
    refused(
        "request:\n - name: a\n   actions: [{redirect: {status: permanent, location: /x}}]",
        &[
            r#"request[0] "a": actions[0].redirect.status: invalid type: string "permanent", expected a redirect status: 301, 302, 303, 307 or 308"#,
        ],
    );
    refused(
        "request:\n - name: a\n   actions: [{redirect: {port: -1, path: /x}}]",
        &[r#"request[0] "a": actions[0].redirect.port: invalid value: integer `-1`, expected a port, 1-65535"#],
    );
    refused(
        "request:\n - name: a\n   match: {source: {cidrs: [10.0.0.0/8], trusted_hops: many}}\n   actions: [{log: {message: x}}]",
        &[
            r#"request[0] "a": match.source.trusted_hops: invalid type: string "many", expected a number of proxies, 0-16"#,
        ],
    );
}

#[test]
fn a_list_written_as_a_map_is_told_how_to_write_the_list() {
    refused(
        "request:\n - name: a\n   actions:\n     respond: {status: 200}",
        &[
            r#"request[0] "a": actions: a map where a list is expected; this is a list of actions: write each as an item, `- respond: …` (`[{respond: …}]` in JSON)"#,
        ],
    );
    refused(
        "request:\n - name: a\n   actions: respond",
        &[
            r#"request[0] "a": actions: invalid type: string "respond", expected a list of actions: write each as an item, `- respond: …` (`[{respond: …}]` in JSON)"#,
        ],
    );
}

#[test]
fn scalars_a_yaml_1_1_reader_changes_get_a_quoting_hint() {
    // Compact JSON, as Istio hands the module what kubectl stored for `exact: on`.
    refused(
        r#"{"request":[{"name":"x","match":{"headers":{"x-canary":{"exact":true}}}}]}"#,
        &[
            r#"request[0] "x": match.headers.x-canary.exact: invalid type: boolean `true`, expected a string (kubectl reads YAML 1.1, where unquoted on/off, yes/no, y/n and true/false are booleans: quote the value)"#,
        ],
    );
    // `x-canary: off` as a shorthand exact test, a header value `yes`, a rule name `no`.
    for (document, field) in [
        (
            r#"{"request":[{"name":"x","match":{"headers":{"x-canary":false}},"actions":[{"log":{"message":"m"}}]}]}"#,
            "match.headers.x-canary",
        ),
        (
            r#"{"request":[{"name":"x","actions":[{"request_headers":{"set":{"x-a":true}}}]}]}"#,
            "actions[0].request_headers.set.x-a",
        ),
        (r#"{"request":[{"name":false,"actions":[{"log":{"message":"m"}}]}]}"#, "name"),
        (r#"{"log_level":true}"#, "log_level"),
    ] {
        let all = errors(document);
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(all[0].contains(&format!("{field}: invalid type: boolean")), "{all:?}");
        assert!(all[0].ends_with("(kubectl reads YAML 1.1, where unquoted on/off, yes/no, y/n and true/false are booleans: quote the value)"), "{all:?}");
    }
    // 1_000, 0777 and 1:30 reach the module as 1000, 511 and 5400 (doubles, through the protobuf Struct).
    for (value, shown) in
        [("1000.0", "floating point `1000.0`"), ("511", "integer `511`"), ("5400.0", "floating point `5400.0`")]
    {
        let document =
            format!(r#"{{"request":[{{"name":"x","actions":[{{"respond":{{"status":200,"body":{value}}}}}]}}]}}"#);
        let all = errors(&document);
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].contains(&format!("actions[0].respond.body: invalid type: {shown}, expected a string")),
            "{all:?}"
        );
        assert!(
            all[0].ends_with(
                "(kubectl reads YAML 1.1, where unquoted 1_000, 0777, 1:30 and 1e3 are numbers: quote the value)"
            ),
            "{all:?}"
        );
    }
    // Where a number is expected, a number is no YAML 1.1 accident: no hint.
    let all = errors(r#"{"request":[{"name":"x","actions":[{"respond":{"status":99}}]}]}"#);
    assert!(!all[0].contains("kubectl"), "{all:?}");
}

/// Every problem of a document is reported, one line each with its rule and field: the document's own fields,
/// every wrong field of a rule (not only its first), and the other rules' problems.
#[test]
fn every_problem_of_the_document_is_reported() {
    let document = r#"
log_level: 5
request:
  - name: many
    match: {pathh: /x, method: 5, headers: {x-a: {regex: 5}}}
    actions:
      - respond: {status: "ok", bdy: x}
      - log: {message: [x]}
  - name: bad-regex
    match: {path: {regex: "("}}
    actions: [log: {message: x}]
response:
  - name: typo
    actions: [{respnd: {status: 503}}]
"#;
    // (The tools hand the module the JSON istiod would make, whose keys are sorted: problems come in that
    // order; `rulefilter validate` puts them in the file's order.)
    let mut found = errors(document);
    found.sort();
    let places: Vec<&str> = found.iter().map(|line| line.split(": ").next().unwrap()).collect();
    assert_eq!(
        places,
        [
            "log_level",
            r#"request[0] "many""#,
            r#"request[0] "many""#,
            r#"request[0] "many""#,
            r#"request[0] "many""#,
            r#"request[0] "many""#,
            r#"request[0] "many""#,
            r#"request[1] "bad-regex""#,
            r#"response[0] "typo""#,
        ],
        "{found:#?}"
    );
    let fields: Vec<&str> = found.iter().map(|line| line.split(": ").nth(1).unwrap()).collect();
    assert_eq!(
        fields[1..7],
        [
            "actions[0].respond.bdy",
            "actions[0].respond.status",
            "actions[1].log.message",
            "match.headers.x-a.regex",
            "match.method",
            "match.pathh",
        ],
        "{found:#?}"
    );
    assert!(found[2].ends_with(r#"invalid type: string "ok", expected an HTTP status code, 200-599"#), "{found:#?}");
    assert!(found[3].ends_with("invalid type: sequence, expected a string"), "{found:#?}");
    assert!(found[8].contains("actions[0].respnd: unknown field `respnd`"), "{found:#?}");
}

/// What only follows from a problem already reported is not reported again: a misspelt required field is
/// one problem, not also a missing one.
#[test]
fn a_misspelt_required_field_is_one_problem() {
    refused(
        "request:\n - name: a\n   actions: [{respond: {statsu: 200}}]",
        &[
            r#"request[0] "a": actions[0].respond.statsu: unknown field `statsu`, expected one of `status`, `headers`, `content_type`, `body`"#,
        ],
    );
}
