//! The `rulefilter` command-line tool, run as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn rulefilter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run rulefilter")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_shipped_document_and_manifest_is_valid() {
    let mut args = vec!["validate", "--env", "MAINTENANCE_RETRY_AFTER=60", "--env", "REGION=eu"];
    // rules/api-keys.yaml's keys from vmConfig.env.
    args.extend(["--env", "INITECH_API_KEY=initech-key", "--env", "PAYMENTS_WEBHOOK_KEY=payments-key"]);
    // fuzz/documents/ too: the fuzz targets start from them and stop at once if one no longer compiles.
    let files: Vec<String> = ["rules", "manifests", "tests/cases", "fuzz/documents"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap().flatten())
        .map(|e| e.path().to_string_lossy().into_owned())
        // manifests/ also holds a ConfigMap for Envoy's bootstrap, which is no rules document.
        .filter(|p| (p.ends_with(".yaml") || p.ends_with(".json")) && !p.ends_with("-bootstrap.yaml"))
        .collect();
    args.extend(files.iter().map(String::as_str));
    let output = rulefilter(&args);
    assert!(output.status.success(), "{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout(&output).lines().filter(|l| l.contains(": valid")).count(), files.len(), "{}", stdout(&output));
}

/// Each document under tests/invalid/ is refused with exactly the lines in its `.expected` file: the rule,
/// the field, the place in the file, and a hint where one helps.
#[test]
fn every_invalid_document_is_refused_with_the_expected_messages() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&folder).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "expected") {
            continue;
        }
        let relative = format!("tests/invalid/{}", path.file_name().unwrap().to_string_lossy());
        let output = rulefilter(&["validate", &relative]);
        assert_eq!(output.status.code(), Some(1), "{relative} should be refused:\n{}", stdout(&output));
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        assert_eq!(stdout(&output), expected, "{relative}");
        // The module's own validator refuses it too (the tool adds only places and hints).
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("kind: WasmPlugin") {
            assert!(rulefilter::parse_with_env(&text, &std::collections::HashMap::new()).is_err(), "{relative}");
        }
        checked += 1;
    }
    assert!(checked >= 8, "the invalid corpus has {checked} documents");
}

#[test]
fn json_output_carries_every_part_of_a_problem() {
    let output = rulefilter(&["validate", "--format", "json", "tests/invalid/misspelt-field.yaml", "rules/hello.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let problem = &report["problems"][0];
    assert_eq!(problem["file"], "tests/invalid/misspelt-field.yaml");
    assert_eq!((problem["line"].as_u64(), problem["column"].as_u64()), (Some(4), Some(7)));
    assert_eq!(problem["phase"], "request");
    assert_eq!(problem["rule_index"], 0);
    assert_eq!(problem["rule"], "hello");
    assert_eq!(problem["field"], "match.pathh");
    assert!(problem["message"].as_str().unwrap().starts_with("unknown field `pathh`"), "{problem}");
    assert_eq!(problem["hint"], "did you mean `path`?");
    assert_eq!(report["checked"][1]["file"], "rules/hello.yaml");
    assert_eq!(report["checked"][1]["valid"], true);
}

#[test]
fn test_runs_the_cases_and_says_what_differed() {
    let passing = rulefilter(&["test", "rules/"]);
    assert!(passing.status.success(), "{}", stdout(&passing));
    let summary = stdout(&passing);
    let last = summary.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{summary}");
    assert!(summary.contains("  ok    a preflight from the app is answered at the proxy"), "{summary}");

    let failing = rulefilter(&["test", "tests/cli/failing.yaml"]);
    assert_eq!(failing.status.code(), Some(1));
    assert_eq!(
        stdout(&failing),
        "tests/cli/failing.test.yaml (tests/cli/failing.yaml)\n  ok    the API is tagged\n  FAIL  a wrong expectation\n        \
         status: expected 201, got 200\n        upstream header x-api: expected \"yes\", got nothing\n1 passed, 1 failed\n"
    );
    let quiet = rulefilter(&["test", "-q", "tests/cli/failing.test.yaml"]);
    assert!(!stdout(&quiet).contains("ok    the API is tagged"), "{}", stdout(&quiet));
}

#[test]
fn mistakes_in_the_command_itself_exit_2_with_a_reason() {
    for (args, reason) in [
        (&["frobnicate"][..], "unknown command \"frobnicate\""),
        (&["validate"][..], "give at least one file"),
        (&["validate", "--format", "xml", "x.yaml"][..], "--format is text or json"),
        (&["test", "rules/no-such.yaml"][..], "no test cases beside it"),
        (&["trace"][..], "give a rules document"),
        (&["trace", "rules/cors.yaml", "--path", "api"][..], "--path starts with /"),
        (&["trace", "rules/cors.yaml", "-H", "no-colon"][..], "--header takes \"NAME: VALUE\""),
        (&["trace", "rules/maintenance.test.yaml", "--case", "x", "--path", "/"][..], "give only one of them"),
        (&["trace", "rules/maintenance.test.yaml", "--case", "nope"][..], "no case named \"nope\""),
    ] {
        let output = rulefilter(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
    let missing = rulefilter(&["validate", "no-such-file.yaml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stdout(&missing).starts_with("no-such-file.yaml: cannot read it:"), "{}", stdout(&missing));
}

#[test]
fn every_command_explains_itself_with_examples() {
    for command in ["validate", "test", "trace", "dev", "manifest"] {
        let help = rulefilter(&[command, "--help"]);
        assert!(help.status.success());
        let text = stdout(&help);
        assert!(text.contains("Usage: rulefilter") && text.contains("Examples:"), "{command}: {text}");
    }
    let top = stdout(&rulefilter(&["--help"]));
    assert!(top.contains("validate") && top.contains("test"), "{top}");
}

#[test]
fn manifest_wraps_a_checked_document_into_a_wasm_plugin() {
    let output = rulefilter(&[
        "manifest",
        "--name",
        "maintenance",
        "--namespace",
        "istio-ingress",
        "--target-ref",
        "Gateway/public",
        "--image",
        "oci://registry.example.com/platform/rulefilter:0.1.0",
        "--sha256",
        &"AB".repeat(32),
        "--phase",
        "AUTHN",
        "--priority",
        "10",
        "--fail-strategy",
        "FAIL_OPEN",
        "--env",
        "MAINTENANCE_RETRY_AFTER=3600",
        "--env",
        "REGION=eu-west-1",
        "rules/maintenance.yaml",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let manifest: serde_yaml::Value = serde_yaml::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest["apiVersion"], "extensions.istio.io/v1alpha1");
    assert_eq!(manifest["kind"], "WasmPlugin");
    assert_eq!(manifest["metadata"]["name"], "maintenance");
    assert_eq!(manifest["metadata"]["namespace"], "istio-ingress");
    let spec = &manifest["spec"];
    assert_eq!(spec["targetRefs"][0]["kind"], "Gateway");
    assert_eq!(spec["targetRefs"][0]["group"], "gateway.networking.k8s.io");
    assert_eq!(spec["targetRefs"][0]["name"], "public");
    assert_eq!(spec["sha256"], "ab".repeat(32));
    assert_eq!((spec["phase"].as_str(), spec["priority"].as_i64()), (Some("AUTHN"), Some(10)));
    assert_eq!(spec["failStrategy"], "FAIL_OPEN");
    assert_eq!(spec["pluginName"], "rulefilter");
    assert_eq!(spec["vmConfig"]["env"][1]["name"], "REGION");
    // The rules travel unchanged.
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/maintenance.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(spec["pluginConfig"], rules);
    // And the result is what `validate` accepts, environment included.
    let file = std::env::temp_dir().join(format!("rulefilter-manifest-{}.yaml", std::process::id()));
    std::fs::write(&file, &output.stdout).unwrap();
    let validated = rulefilter(&["validate", file.to_str().unwrap()]);
    std::fs::remove_file(&file).ok();
    assert!(validated.status.success(), "{}", stdout(&validated));
    assert!(
        stdout(&validated).contains("WasmPlugin istio-ingress/maintenance: valid (4 request rules"),
        "{}",
        stdout(&validated)
    );
}

#[test]
fn manifest_refuses_an_invalid_document_and_conflicting_targets() {
    let invalid =
        rulefilter(&["manifest", "--name", "x", "--image", "oci://r/x:1", "tests/invalid/misspelt-field.yaml"]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(invalid.stdout.is_empty(), "nothing to apply");
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(stderr.starts_with("tests/invalid/misspelt-field.yaml:4:7: request[0] \"hello\": match.pathh"), "{stderr}");

    let both = rulefilter(&[
        "manifest",
        "--name",
        "x",
        "--image",
        "oci://r/x:1",
        "--selector",
        "app=a",
        "--target-ref",
        "Gateway/g",
        "rules/hello.yaml",
    ]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
    let missing = rulefilter(&["manifest", "--image", "oci://r/x:1", "rules/hello.yaml"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--name is needed"));
}

#[test]
fn trace_runs_a_test_case_or_a_request_file_with_its_environment() {
    let case = rulefilter(&["trace", "rules/maintenance.test.yaml", "--case", "API clients get JSON"]);
    assert!(case.status.success(), "{}", String::from_utf8_lossy(&case.stderr));
    let text = stdout(&case);
    assert!(text.contains("request: POST http://example.com/api/orders from 127.0.0.1\n"), "{text}");
    assert!(text.contains("  [2] api-maintenance: matched\n        respond 503\n"), "{text}");
    assert!(text.contains("  [3] maintenance-page: not evaluated (api-maintenance answered)\n"), "{text}");
    // The case file's env reached the templates.
    assert!(
        text.contains(r#"body: "{\"error\":\"maintenance\",\"region\":\"eu-west-1\",\"retry_after\":3600}""#),
        "{text}"
    );

    let dir = std::env::temp_dir().join(format!("rulefilter-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("request.yaml");
    std::fs::write(&file, "request: {path: /shop, headers: {x-forwarded-for: 10.1.2.3}}\nupstream: {status: 503}\n")
        .unwrap();
    let from_file = rulefilter(&["trace", "rules/errors.yaml", "--request", file.to_str().unwrap()]);
    assert!(from_file.status.success(), "{}", String::from_utf8_lossy(&from_file.stderr));
    let text = stdout(&from_file);
    assert!(text.contains("(the upstream answered 503)"), "{text}");
    assert!(text.contains("  x-forwarded-for: 10.1.2.3\n"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trace_refuses_an_invalid_document_with_its_problems() {
    let output = rulefilter(&["trace", "rules/maintenance.yaml", "--path", "/"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(r#"the plugin has no environment variable "REGION""#), "{stderr}");
    assert!(stderr.contains("rules/maintenance.yaml is not valid"), "{stderr}");
    assert!(stdout(&output).is_empty());
}

/// The examples in `--help` are real commands that work.
#[test]
fn trace_help_examples_run() {
    let help = stdout(&rulefilter(&["trace", "--help"]));
    let examples: Vec<Vec<String>> = help
        .lines()
        .skip_while(|l| !l.starts_with("Examples:"))
        .filter_map(|l| l.trim().strip_prefix("rulefilter "))
        .map(common::shell_words)
        .collect();
    assert!(examples.len() >= 3, "{help}");
    for args in examples {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = rulefilter(&args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout(&output).contains("client receives:"), "{args:?}");
    }
}

/// Wrapping a manifest again keeps its `vmConfig.env` (HOST entries stay HOST, `--env` replaces by name), so
/// the manifest written is one the module accepts.
#[test]
fn manifest_of_a_manifest_keeps_its_environment() {
    let dir = std::env::temp_dir().join(format!("rulefilter-cli-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("source.yaml");
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/maintenance-wasmplugin.yaml"))
            .unwrap()
            .replace(
                "      - name: REGION\n        value: eu-west-1\n",
                "      - name: REGION\n        valueFrom: HOST\n",
            );
    assert!(shipped.contains("valueFrom: HOST"), "the shipped manifest changed: adapt this test");
    std::fs::write(&source, shipped).unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let args = ["manifest", "--name", "again", "--namespace", "shop", "--selector", "app=shop", "--image"];
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["oci://registry.example.com/rulefilter:1", "--sha256", &digest]);
    args.extend(["--env", "MAINTENANCE_RETRY_AFTER=60", source.to_str().unwrap()]);
    let output = rulefilter(&args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let written: serde_yaml::Value = serde_yaml::from_str(&stdout(&output)).unwrap();
    let env = serde_json::to_string(&written["spec"]["vmConfig"]["env"]).unwrap();
    assert_eq!(env, r#"[{"name":"MAINTENANCE_RETRY_AFTER","value":"60"},{"name":"REGION","valueFrom":"HOST"}]"#);
    let again = dir.join("again.yaml");
    std::fs::write(&again, stdout(&output)).unwrap();
    let output = rulefilter(&["validate", again.to_str().unwrap()]);
    assert!(output.status.success(), "{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}
