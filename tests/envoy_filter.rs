//! A plain Envoy (no Istio) runs rulefilter from what `rulefilter manifest --envoy` writes: the module reads
//! JSON only, and that filter hands it the JSON istiod would. YAML pasted into the configuration instead is
//! refused by the module, in one line that names the command.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::process::Command;

use serde_json::Value;
use support::{echo, options, wasm_module, Envoy, Plugin};

/// `rulefilter manifest --envoy ARGS…`: its standard output, which must succeed.
fn manifest_envoy(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["manifest", "--envoy"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_filter_it_writes_hands_the_module_istiods_json_and_only_ascii() {
    let dir = std::env::temp_dir().join(format!("rulefilter-envoy-filter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("odd.yaml");
    std::fs::write(
        &rules,
        "request:\n  - name: cafe\n    actions: [{respond: {status: 200, body: \"x\\x85y \u{e9}\u{1f600} ${env.REGION}\"}}]\n",
    )
    .unwrap();
    let written = manifest_envoy(&["--env", "REGION=eu", "--name", "odd", rules.to_str().unwrap()]);
    assert!(written.is_ascii(), "{written}");
    let filter: Value = serde_json::from_str(&written).unwrap();
    let config = &filter["typed_config"]["config"];
    assert_eq!(filter["name"], "envoy.filters.http.wasm");
    assert_eq!(config["name"], "odd");
    assert_eq!(config["vm_config"]["environment_variables"]["key_values"]["REGION"], "eu");
    assert_eq!(config["failure_policy"], "FAIL_RELOAD");
    let json = config["configuration"]["value"].as_str().unwrap();
    assert_eq!(json, "{\"request\":[{\"actions\":[{\"respond\":{\"body\":\"x\u{85}y \u{e9}\u{1f600} ${env.REGION}\",\"status\":200}}],\"name\":\"cafe\"}]}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn options_only_a_wasmplugin_has_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["manifest", "--envoy", "--selector", "app=x", "rules/hello.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("--selector and --target-ref: not for --envoy"), "{said}");
}

#[test]
fn a_plain_envoy_serves_the_rules_from_the_filter_it_writes_and_refuses_yaml() {
    let module = wasm_module();
    let written = manifest_envoy(&["--module", module.to_str().unwrap(), "rules/hello.yaml"]);
    let filter: Value = serde_json::from_str(&written).unwrap();
    let upstream = echo();
    let envoy = support::start(options(Plugin::new("plain", None), &upstream).http_filter(filter.clone()));
    let hello = support::get(envoy.listener, "/hello");
    assert_eq!((hello.status, hello.body.as_str()), (200, "Hello from Wasm!\n"));
    let passed = support::get(envoy.listener, "/other");
    assert_eq!(passed.header("x-service-name"), Some("my-custom-service"));
    drop(envoy);

    // The same filter with the YAML file pasted in: Envoy does not start, and the module says why.
    let mut pasted = filter;
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/hello.yaml")).unwrap();
    pasted["typed_config"]["config"]["configuration"]["value"] = Value::from(yaml);
    let failure = Envoy::start(options(Plugin::new("pasted", None), &upstream).http_filter(pasted))
        .err()
        .expect("Envoy started with YAML in the module's configuration");
    let refusal = failure
        .log
        .lines()
        .find(|l| l.contains("invalid configuration: document: not JSON"))
        .unwrap_or_else(|| panic!("no refusal in Envoy's log:\n{}", failure.log));
    assert!(refusal.contains("rulefilter manifest --envoy RULES.yaml"), "{refusal}");
}
