//! API keys and basic auth through a real Envoy: right, wrong, missing and malformed credentials each get the
//! answer the rules say (a 401 with its challenge, never a crash), the names reach the upstream, and neither keys
//! nor passwords reach Envoy's log. Also prints what a password check costs inside V8 (docs/authentication.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
mod support;

use std::time::Duration;

use rulefilter::credentials::password::{PasswordHash, DEFAULT_ITERATIONS};
use rulefilter::credentials::{base64, sha256};
use rulefilter::simulate::{run_traced, Request};
use rulefilter::trace::Event;
use support::{echo, options, request, start, Echoed, KeepAlive, Plugin};

const KEY: &str = "acme-live-7Qm2vX9pL4";
const ENV_KEY: &str = "initech-live-Tn5cR2wY8e";
const PASSWORD: &str = "open sesame";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn basic(credentials: &[u8]) -> String {
    format!("Basic {}", base64::encode_unpadded(credentials))
}

fn document() -> String {
    let alice = PasswordHash::new(PASSWORD.as_bytes(), b"0123456789abcdef", DEFAULT_ITERATIONS);
    format!(
        r#"
debug_header: x-rules
request:
  - name: key-required
    match:
      path: {{segment_prefix: /api}}
      not: {{api_key: {{header: x-api-key, keys: [{{name: acme, sha256: {}}}, {{name: initech, env: ENV_KEY}}]}}}}
    actions: [{{respond: {{status: 401, body: "no valid key\n"}}}}]
  - name: key-known
    match: {{path: {{segment_prefix: /api}}}}
    actions:
      - request_headers: {{set: {{x-key-name: "${{auth.key_name}}"}}, remove: [x-api-key]}}
      - log: {{level: warn, message: "api call by ${{auth.key_name}}"}}
  - name: sign-in
    match:
      path: {{segment_prefix: /ops}}
      not: {{basic_auth: {{users: [{{user: alice, hash: "{alice}"}}]}}}}
    actions:
      - respond: {{status: 401, headers: {{www-authenticate: 'Basic realm="ops"'}}, body: "sign in\n"}}
  - name: signed-in
    match: {{path: {{segment_prefix: /ops}}}}
    actions:
      - request_headers: {{set: {{x-user: "${{auth.user}}"}}, remove: [authorization]}}
      - log: {{level: warn, message: "ops used by ${{auth.user}}"}}
response:
  - name: served-to
    match: {{path: {{segment_prefix: /ops}}}}
    actions: [{{response_headers: {{set: {{x-served-to: "${{auth.user}}"}}}}}}]
"#,
        hex(&sha256(KEY.as_bytes()))
    )
}

#[test]
fn credentials_in_envoy_right_wrong_missing_and_malformed() {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&document()).unwrap();
    let mut plugin = Plugin::new("credentials", Some(support::document_json(&yaml)));
    plugin.env = vec![("ENV_KEY".into(), ENV_KEY.into())];
    let upstream = echo();
    let envoy = start(options(plugin, &upstream));
    let listener = envoy.listener;

    // API keys.
    for (key, name) in [(KEY, "acme"), (ENV_KEY, "initech")] {
        let response = request(listener, "GET", "/api/orders", &[("x-api-key", key)]);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.upstream_header_values("x-key-name"), [name]);
        assert!(response.upstream_header_values("x-api-key").is_empty(), "the key went upstream: {response:?}");
        assert!(!response.header("x-rules").unwrap().contains(key));
    }
    let huge_key = "k".repeat(20_000);
    for headers in [vec![("x-api-key", "acme-live-7Qm2vX9pL5")], vec![], vec![("x-api-key", huge_key.as_str())]] {
        let response = request(listener, "GET", "/api/orders", &headers);
        assert_eq!((response.status, response.body.as_str()), (401, "no valid key\n"), "{headers:?}");
    }

    // Basic auth.
    let right = basic(format!("alice:{PASSWORD}").as_bytes());
    let response = request(listener, "GET", "/ops/deploys", &[("authorization", &right)]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.upstream_header_values("x-user"), ["alice"]);
    assert!(response.upstream_header_values("authorization").is_empty());
    assert_eq!(response.header("x-served-to"), Some("alice"), "carried into the response phase: {response:?}");
    let huge = format!("Basic {}", "QUFB".repeat(10_000));
    let malformed = [
        basic(b"alice:wrong"),
        basic(format!("mallory:{PASSWORD}").as_bytes()),
        "Basic YWxpY2U6b3BlbiBzZXNhbWU*".to_owned(), // not base64
        "Basic !!!!".to_owned(),
        basic(b"alice"), // no colon
        basic(b"\xff\xfe:x"),
        "Basic".to_owned(),
        "Basic ".to_owned(),
        format!("Bearer {}", &right[6..]),
        huge,
    ];
    for value in &malformed {
        let response = request(listener, "GET", "/ops", &[("authorization", value)]);
        let shown = &value[..value.len().min(40)];
        assert_eq!(response.status, 401, "{shown}: {response:?}");
        assert_eq!(response.header("www-authenticate"), Some(r#"Basic realm="ops""#), "{shown}");
    }
    let response = request(listener, "GET", "/ops", &[]);
    assert_eq!((response.status, response.header("www-authenticate")), (401, Some(r#"Basic realm="ops""#)));

    // After all that, the VM still serves (FAIL_CLOSED would answer 503 had it crashed).
    let response = request(listener, "GET", "/ops", &[("authorization", &right)]);
    assert_eq!(response.status, 200, "{response:?}");

    let log = envoy.log();
    assert!(log.contains("api call by acme") && log.contains("ops used by alice"), "{log}");
    for secret in [KEY, ENV_KEY, PASSWORD, &right[6..]] {
        assert!(!log.contains(secret), "Envoy's log holds a secret:\n{log}");
    }

    measure_checks(&envoy, &right);
}

/// Prints what checking credentials costs per request inside V8, as Envoy CPU time: refused requests (a 401
/// after a password check, or after hashing a wrong key) against requests refused without either (no key at
/// all), and accepted credentials (remembered after their first check) against the same request to a path no
/// rule checks. Figures, not assertions: the machine may be loaded.
fn measure_checks(envoy: &support::Envoy, right: &str) {
    const REQUESTS: u32 = 300;
    let mut connection = KeepAlive::connect(envoy.listener).unwrap();
    let mut cpu_per_request = |path: &str, headers: &[(&str, &str)]| {
        let before = envoy_cpu(envoy.pid());
        for _ in 0..REQUESTS {
            let response = connection.get(path, headers).unwrap();
            assert!(response.status == 200 || response.status == 401, "{response:?}");
        }
        (envoy_cpu(envoy.pid()) - before) / REQUESTS
    };
    let wrong_password = basic(format!("alice:{PASSWORD}!").as_bytes());
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let refused = cpu_per_request("/api/orders", &[]);
        let key = cpu_per_request("/api/orders", &[("x-api-key", "acme-live-7Qm2vX9pL5")]);
        let password = cpu_per_request("/ops", &[("authorization", &wrong_password)]);
        let passed = cpu_per_request("/public", &[("authorization", right)]);
        let remembered = cpu_per_request("/ops", &[("authorization", right)]);
        let extra = |d: Duration, base: Duration| d.saturating_sub(base).as_micros();
        rounds.push((refused.as_micros(), extra(key, refused), extra(password, refused), extra(remembered, passed)));
    }
    rounds.sort();
    let (refused, key, password, remembered) = rounds[1];
    eprintln!(
        "Envoy CPU per request: a 401 without credentials {refused} µs; a wrong API key +{key} µs; a wrong password \
         ({DEFAULT_ITERATIONS} PBKDF2 iterations) +{password} µs; accepted credentials seen before +{remembered} µs"
    );
}

/// The CPU time all of Envoy's threads have used (each thread's /proc schedstat).
fn envoy_cpu(pid: u32) -> Duration {
    let mut total = 0_u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    }
    Duration::from_nanos(total)
}

// ----- on the simulated proxy -----

fn with_header(path: &str, name: &str, value: &str) -> Request {
    let mut request = Request::get(path);
    request.headers.push((name.into(), value.into()));
    request
}

/// The document above, compiled with its environment.
fn compiled() -> rulefilter::RuleSet {
    let env: std::collections::HashMap<String, String> = [("ENV_KEY".to_owned(), ENV_KEY.to_owned())].into();
    rulefilter::parse_with_env(&document(), &env).unwrap()
}

#[test]
fn a_request_is_checked_once_however_many_rules_read_its_credentials() {
    let rules = compiled();
    let request = with_header("/ops", "authorization", &basic(format!("alice:{PASSWORD}").as_bytes()));
    let outcome = run_traced(&rules, &request, &rulefilter::simulate::Response::ok());
    let checks: Vec<&Event> = outcome.trace.iter().filter(|e| matches!(e, Event::Credentials(_))).collect();
    // sign-in's condition, signed-in's two templates and the response rule's: one check.
    assert_eq!(checks, [&Event::Credentials(r#"basic_auth: accepted, user "alice""#.into())]);
    assert_eq!(common::upstream_header(&outcome, "x-user"), Some("alice"));
    assert_eq!(outcome.response.header("x-served-to"), Some("alice"));
}

#[test]
fn a_document_without_credential_conditions_has_no_credential_slot() {
    let rules = common::rules("request:\n  - name: a\n    match: {headers: {x-api-key: {present: true}}}\n    actions: [{log: {message: x}}]\n");
    assert!(!rules.slots().iter().any(|s| matches!(s, rulefilter::ruleset::Slot::Credential(_))));
    assert!(rules.secret_places().is_empty());
}

#[test]
fn the_trace_says_why_credentials_were_refused_and_shows_no_secret() {
    let env = format!("ENV_KEY={ENV_KEY}");
    let dir = support::fresh_dir("credentials-trace");
    let path = dir.join("rules.yaml");
    std::fs::write(&path, document()).unwrap();
    let path = path.to_string_lossy().into_owned();
    let trace = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rulefilter"))
            .args(["trace", "--env", &env, &path])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let wrong_key = "acme-live-WRONG-9pL4";
    let (right_header, wrong_header) = (format!("x-api-key: {KEY}"), format!("x-api-key: {wrong_key}"));
    let cases = [
        (vec!["--path", "/api/x", "-H", &right_header], r#"api_key: accepted, key "acme""#, KEY),
        (
            vec!["--path", "/api/x", "-H", &wrong_header],
            "api_key: refused, a key that is none of the 2 keys (not shown)",
            wrong_key,
        ),
        (vec!["--path", "/api/x"], "api_key: refused, no credentials", KEY),
        (
            vec!["--path", "/ops", "-H", "authorization: Basic YWxpY2U6d3Jvbmc="],
            r#"basic_auth: refused, a wrong password for user "alice""#,
            "YWxpY2U6d3Jvbmc=",
        ),
        (
            vec!["--path", "/ops", "-H", "authorization: Basic YWxpY2U="],
            "basic_auth: refused, the Basic credentials have no `:` between user and password",
            "YWxpY2U=",
        ),
    ];
    for (args, explained, secret) in cases {
        let text = trace(&args);
        assert!(text.contains(explained), "{args:?}:\n{text}");
        assert!(!text.contains(secret), "{args:?} shows the secret:\n{text}");
    }
}

#[test]
fn validation_names_the_field_and_never_the_secret() {
    let secret = "super-secret-value";
    let mut env: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    env.insert("SPACED".into(), format!("{secret}\n"));
    env.insert("EMPTY".into(), String::new());
    let good = PasswordHash::new(b"pw", b"0123456789abcdef", 1_000).to_string();
    let doc = format!(
        r#"
request:
  - name: keys
    match:
      api_key:
        header: x-api-key
        keys:
          - {{name: a, sha256: abc}}
          - {{name: b, env: MISSING}}
          - {{name: c, env: SPACED}}
          - {{name: d, env: EMPTY}}
          - {{name: a, sha256: {h}}}
          - {{name: a, sha256: {h}}}
          - {{name: f}}
          - {{name: " g", sha256: {h2}}}
    actions: [{{log: {{message: "${{auth.key_name}}"}}}}]
  - name: nowhere
    match: {{api_key: {{keys: [{{name: a, sha256: {h}}}]}}}}
    actions: [{{log: {{message: x}}}}]
  - name: both
    match: {{api_key: {{header: x-k, query: k, keys: [{{name: a, sha256: {h}}}]}}}}
    actions: [{{log: {{message: x}}}}]
  - name: users
    match:
      basic_auth:
        users:
          - {{user: "al:ice", hash: "{good}"}}
          - {{user: bob, hash: "{secret}"}}
          - {{user: carol, hash: "{short}"}}
          - {{user: dave, hash: "{good}"}}
          - {{user: dave, hash: "{good}"}}
    actions: [{{log: {{message: x}}}}]
  - name: no-users
    match: {{basic_auth: {{users: []}}}}
    actions: [{{log: {{message: "${{auth.user}}"}}}}]
  - name: orphan
    actions: [{{log: {{message: "${{auth.nothing}}"}}}}]
"#,
        h = hex(&sha256(b"k")),
        h2 = hex(&sha256(b"k2")),
        short = good.replace("i=1000", "i=99"),
    );
    let errors = match rulefilter::parse_with_env(&doc, &env) {
        Ok(_) => panic!("should be refused"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    let expected = [
        r#"request[0] "keys": match.api_key.keys[0].sha256: 3 characters; a SHA-256 hash is 64 hex digits: `printf %s "$KEY" | sha256sum`"#,
        r#"request[0] "keys": match.api_key.keys[1].env: the plugin has no environment variable "MISSING" (vmConfig.env)"#,
        r#"request[0] "keys": match.api_key.keys[2].env: the environment variable "SPACED" starts or ends with a space, or holds a line break: no request can present such a key (check how the secret was written)"#,
        r#"request[0] "keys": match.api_key.keys[3].env: the environment variable "EMPTY" is empty; it should hold the key"#,
        r#"request[0] "keys": match.api_key.keys[5]: the same key as match.api_key.keys[4]; a key has one name"#,
        r#"request[0] "keys": match.api_key.keys[6]: give the key as `sha256: <64 hex digits>` or `env: <vmConfig.env variable>`; never in clear"#,
        r#"request[0] "keys": match.api_key.keys[7].name: a key name is one line of text, not empty, without leading or trailing spaces"#,
        r#"request[1] "nowhere": match.api_key: say where the key is: `header: x-api-key` or `query: api_key`"#,
        r#"request[2] "both": match.api_key: give one of `header` and `query`; for a key in either, write two conditions under `any`"#,
        r#"request[3] "users": match.basic_auth.users[0].user: a user name cannot contain `:` (RFC 7617: it ends the name)"#,
        r#"request[3] "users": match.basic_auth.users[1].hash: not a password hash; write `$pbkdf2-sha256$i=<iterations>$<salt>$<hash>`, as `rulefilter hash-password` prints it"#,
        r#"request[3] "users": match.basic_auth.users[2].hash: 99 iterations; use 100 to 10000 (`rulefilter hash-password` uses 200)"#,
        r#"request[3] "users": match.basic_auth.users[4].user: "dave" is already the name of [3]; give each user its own"#,
        r#"request[4] "no-users": match.basic_auth.users: give at least one user"#,
        r#"request[5] "orphan": actions[0].log.message: unknown reference `${auth.nothing}`; known: auth.key_name (api_key), auth.user (basic_auth)"#,
    ];
    assert_eq!(errors, expected, "{errors:#?}");
    assert!(!errors.concat().contains(secret));
}

#[test]
fn auth_references_need_a_condition_before_them_and_take_the_nearest() {
    let key = |name: &str, key: &str| format!("{{name: {name}, sha256: {}}}", hex(&sha256(key.as_bytes())));
    let errors = common::errors(&format!(
        "request:\n  - name: early\n    actions: [{{log: {{message: '${{auth.key_name}}'}}}}]\n  - name: check\n    match: {{api_key: {{header: x-k, keys: [{}]}}}}\n    actions: [{{log: {{message: x}}}}]\n",
        key("a", "ka")
    ));
    assert_eq!(
        errors,
        [
            r#"request[0] "early": actions[0].log.message: `${auth.key_name}` needs a `api_key` condition in this rule or an earlier one"#
        ]
    );
    // Two key sets: each `${auth.key_name}` names the key of the nearest condition above it.
    let rules = common::rules(&format!(
        r#"
request:
  - name: first
    match: {{api_key: {{header: x-one, keys: [{}]}}}}
    actions: [{{request_headers: {{set: {{x-first: "${{auth.key_name}}"}}}}}}]
  - name: after-first
    actions: [{{request_headers: {{set: {{x-after-first: "${{auth.key_name}}"}}}}}}]
  - name: second
    match: {{api_key: {{header: x-two, keys: [{}]}}}}
    actions: [{{request_headers: {{set: {{x-second: "${{auth.key_name}}"}}}}}}]
  - name: after-second
    actions: [{{request_headers: {{set: {{x-after-second: "${{auth.key_name}}"}}}}}}]
"#,
        key("one", "k1"),
        key("two", "k2")
    ));
    let mut request = with_header("/", "x-one", "k1");
    request.headers.push(("x-two".into(), "k2".into()));
    let outcome = common::exchange(&rules, &request);
    for (header, name) in [("x-first", "one"), ("x-after-first", "one"), ("x-second", "two"), ("x-after-second", "two")]
    {
        assert_eq!(common::upstream_header(&outcome, header), Some(name), "{header}");
    }
}

// ----- rulefilter hash-password -----

/// Runs `rulefilter hash-password ARGS` with `stdin`; its status, standard output and standard error.
fn hash_password(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .arg("hash-password")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command refusing its arguments may exit before reading: a broken pipe is its answer, not a failure.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

#[test]
fn hash_password_reads_standard_input_and_prints_what_basic_auth_reads() {
    let (status, out, err) = hash_password(&["--user", "alice"], "open sesame\n");
    assert_eq!(status, Some(0), "{err}");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
    let item = &yaml[0];
    assert_eq!(item["user"].as_str(), Some("alice"));
    let hash = PasswordHash::parse(item["hash"].as_str().unwrap()).unwrap();
    assert_eq!(hash.iterations(), DEFAULT_ITERATIONS);
    assert!(hash.verify(b"open sesame"), "the trailing newline is not part of the password");
    assert!(err.contains("warning: a password of 11 characters"), "{err}");
    assert!(!out.contains("open sesame") && !err.contains("open sesame"));
    // Two runs salt differently.
    let (_, again, _) = hash_password(&["--user", "alice"], "open sesame\n");
    assert_ne!(out, again);
    // A user name YAML 1.1 would read as a boolean stays a string.
    let (_, out, _) = hash_password(&["--user", "on", "--iterations", "100"], "a long enough passphrase\n");
    assert!(out.starts_with("- user: \"on\"\n  hash: \"$pbkdf2-sha256$i=100$"), "{out}");
}

#[test]
fn hash_password_generates_a_password_and_refuses_bad_input() {
    let (status, out, err) = hash_password(&["--generate"], "");
    assert_eq!(status, Some(0), "{err}");
    let password = err.trim().strip_prefix("password: ").unwrap();
    assert_eq!(password.len(), 22, "{err}");
    assert!(PasswordHash::parse(out.trim()).unwrap().verify(password.as_bytes()));
    for (args, stdin, wanted) in [
        (&["--iterations", "99"][..], "pw\n", "--iterations 99; use 100 to 10000"),
        (&[][..], "\n", "the password is empty"),
        (&["open-sesame"][..], "pw\n", "unexpected argument"),
        (&["--user", "a:b"][..], "pw\n", "a user name is not empty and has no `:`"),
    ] {
        let (status, _, err) = hash_password(args, stdin);
        assert_eq!(status, Some(2), "{args:?}");
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
}
