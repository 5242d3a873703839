//! Every WasmPlugin in `manifests/` is one the Kubernetes API server accepts under Istio's own CRD
//! (tests/fixtures/istio/wasmplugin-crd.yaml): its `openAPIV3Schema`, converted honestly to JSON Schema, and
//! its CEL rules (`x-kubernetes-validations`) and list-map keys, which JSON Schema cannot express and are
//! checked here by hand. Each check is shown refusing a bad manifest, so none passes by accident.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_file(path: &Path) -> Value {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(yaml).unwrap()
}

/// The CRD's `openAPIV3Schema` for v1alpha1.
fn openapi_schema() -> Value {
    let crd = yaml_file(&project().join("tests/fixtures/istio/wasmplugin-crd.yaml"));
    let version = crd["spec"]["versions"].as_array().unwrap().iter().find(|v| v["name"] == "v1alpha1").unwrap();
    version["schema"]["openAPIV3Schema"].clone()
}

/// OpenAPI v3 (Kubernetes' structural dialect) → JSON Schema (draft 2020-12), keeping what the API server
/// enforces:
/// - `nullable: true` admits `null` besides the type;
/// - `x-kubernetes-int-or-string` admits an integer or a string;
/// - `format: int32` becomes its range (JSON Schema formats are annotations only);
/// - objects with `properties` refuse unknown fields unless `x-kubernetes-preserve-unknown-fields`, as
///   `kubectl apply` does with its default strict field validation;
/// - `x-kubernetes-validations` and `x-kubernetes-list-*` are dropped here and checked by [`cel_problems`].
fn to_json_schema(node: &Value) -> Value {
    let Value::Object(object) = node else { return node.clone() };
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "properties" => {
                let props = value.as_object().unwrap().iter().map(|(k, v)| (k.clone(), to_json_schema(v))).collect();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), to_json_schema(value));
            }
            "anyOf" | "allOf" | "oneOf" => {
                out.insert(key.clone(), Value::Array(value.as_array().unwrap().iter().map(to_json_schema).collect()));
            }
            "nullable" | "format" | "description" => {}
            k if k.starts_with("x-kubernetes-") => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if object.get("format") == Some(&json!("int32")) {
        out.insert("minimum".into(), json!(i32::MIN));
        out.insert("maximum".into(), json!(i32::MAX));
    }
    if object.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        out.remove("type");
        out.insert("anyOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
    }
    if object.get("nullable") == Some(&json!(true)) {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
    }
    let preserves = object.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if object.contains_key("properties") && !object.contains_key("additionalProperties") && !preserves {
        out.insert("additionalProperties".into(), json!(false));
    }
    Value::Object(out)
}

/// The whole object's schema: the CRD's, plus what every Kubernetes object has (the API server checks those
/// itself) and the pinned apiVersion and kind.
fn wasm_plugin_schema() -> Value {
    let mut schema = to_json_schema(&openapi_schema());
    let properties = schema["properties"].as_object_mut().unwrap();
    properties.insert("apiVersion".into(), json!({"const": "extensions.istio.io/v1alpha1"}));
    properties.insert("kind".into(), json!({"const": "WasmPlugin"}));
    properties.insert(
        "metadata".into(),
        json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
            "namespace": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
        }}),
    );
    schema["required"] = json!(["apiVersion", "kind", "metadata", "spec"]);
    schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    schema
}

fn schema_problems(manifest: &Value) -> Vec<String> {
    let validator = jsonschema::draft202012::new(&wasm_plugin_schema()).expect("the converted CRD is a schema");
    validator.iter_errors(manifest).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

/// The CRD's CEL rules and list-map keys, one by one, with the CRD's own messages.
fn cel_problems(manifest: &Value) -> Vec<String> {
    let spec = &manifest["spec"];
    let mut problems = Vec::new();
    // spec: '(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1'
    let targets = ["selector", "targetRef", "targetRefs"].iter().filter(|k| spec.get(**k).is_some()).count();
    if targets > 1 {
        problems.push("spec: only one of targetRefs or selector can be set".to_owned());
    }
    // url: its scheme (or, without one, that of "http://" + url) is one of "", http, https, oci, file.
    if let Some(url) = spec["url"].as_str() {
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        if !["", "http", "https", "oci", "file"].contains(&scheme) {
            problems.push("spec.url: url must have schema one of [http, https, file, oci]".to_owned());
        }
    }
    // targetRef(s)[*].namespace: 'self.size() == 0'
    let refs: Vec<&Value> = spec["targetRefs"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    for target in refs.into_iter().chain(spec.get("targetRef")) {
        if target["namespace"].as_str().is_some_and(|ns| !ns.is_empty()) {
            problems.push("spec.targetRefs: cross namespace referencing is not currently supported".to_owned());
        }
    }
    // selector.matchLabels: no '*' in keys or values, no empty key.
    if let Some(labels) = spec["selector"]["matchLabels"].as_object() {
        if labels.keys().any(|k| k.contains('*')) {
            problems.push("spec.selector.matchLabels: wildcard not allowed in label key match".to_owned());
        }
        if labels.keys().any(String::is_empty) {
            problems.push("spec.selector.matchLabels: key must not be empty".to_owned());
        }
        if labels.values().any(|v| v.as_str().is_some_and(|v| v.contains('*'))) {
            problems.push("spec.selector.matchLabels: wildcard not allowed in label value match".to_owned());
        }
    }
    // vmConfig.env[*]: '(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)'
    let env = spec["vmConfig"]["env"].as_array().cloned().unwrap_or_default();
    if env.iter().any(|e| e["valueFrom"] == "HOST" && e.get("value").is_some()) {
        problems.push("spec.vmConfig.env: value may only be set when valueFrom is INLINE".to_owned());
    }
    // x-kubernetes-list-type: map — the keys (env[*].name, match[*].ports[*].number) are unique.
    let unique = |items: &[Value], key: &str| {
        let keys: Vec<String> = items.iter().map(|i| i[key].to_string()).collect();
        keys.iter().collect::<BTreeSet<_>>().len() == keys.len()
    };
    if !unique(&env, "name") {
        problems.push("spec.vmConfig.env: duplicate name (a list-map keyed by name)".to_owned());
    }
    for rule in spec["match"].as_array().cloned().unwrap_or_default() {
        if !unique(rule["ports"].as_array().map(Vec::as_slice).unwrap_or_default(), "number") {
            problems.push("spec.match.ports: duplicate number (a list-map keyed by number)".to_owned());
        }
    }
    problems
}

fn wasm_plugins() -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(project().join("manifests"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), yaml_file(&p)))
        .filter(|(_, manifest)| manifest["kind"] == "WasmPlugin")
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn every_shipped_wasm_plugin_passes_the_crd_schema_and_its_cel_rules() {
    let plugins = wasm_plugins();
    assert!(plugins.len() >= 3, "manifests/ should hold at least three WasmPlugins: {plugins:?}");
    for (name, manifest) in &plugins {
        let problems: Vec<String> = schema_problems(manifest).into_iter().chain(cel_problems(manifest)).collect();
        assert!(problems.is_empty(), "{name} would be refused by the API server:\n{}", problems.join("\n"));
    }
}

#[test]
fn the_shipped_set_covers_sidecar_gateway_and_mesh_wide_from_one_image() {
    let plugins = wasm_plugins();
    let spec = |name: &str| &plugins.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}")).1["spec"];
    assert!(spec("hello-wasmplugin.yaml")["selector"]["matchLabels"].is_object(), "a sidecar plugin by selector");
    let gateway = &spec("maintenance-wasmplugin.yaml")["targetRefs"][0];
    assert_eq!(
        (gateway["kind"].as_str(), gateway["group"].as_str()),
        (Some("Gateway"), Some("gateway.networking.k8s.io"))
    );
    let mesh = plugins.iter().find(|(n, _)| n == "security-headers-wasmplugin.yaml").unwrap();
    assert_eq!(mesh.1["metadata"]["namespace"], "istio-system", "mesh-wide means the root namespace");
    assert!(["selector", "targetRef", "targetRefs"].iter().all(|k| mesh.1["spec"].get(*k).is_none()));
    let urls: BTreeSet<&str> = plugins.iter().map(|(_, m)| m["spec"]["url"].as_str().unwrap()).collect();
    assert_eq!(urls.len(), 1, "every shipped plugin uses the same image: {urls:?}");
    let configs: BTreeSet<String> = plugins.iter().map(|(_, m)| m["spec"]["pluginConfig"].to_string()).collect();
    assert_eq!(configs.len(), plugins.len(), "each plugin carries its own rules");
}

/// One edit to a manifest.
type Change = Box<dyn Fn(&mut Value)>;

/// A shipped manifest with one change, and the problem it must cause.
fn refused(change: impl Fn(&mut Value)) -> Vec<String> {
    let mut manifest = yaml_file(&project().join("manifests/hello-wasmplugin.yaml"));
    change(&mut manifest);
    schema_problems(&manifest).into_iter().chain(cel_problems(&manifest)).collect()
}

#[test]
fn each_schema_and_cel_check_refuses_a_bad_manifest() {
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "selector and targetRefs",
            Box::new(|m| m["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "g"}])),
            "only one of targetRefs or selector",
        ),
        (
            "selector and targetRef",
            Box::new(|m| m["spec"]["targetRef"] = json!({"kind": "Gateway", "name": "g"})),
            "only one of targetRefs or selector",
        ),
        (
            "an ftp url",
            Box::new(|m| m["spec"]["url"] = json!("ftp://r.example.com/x.wasm")),
            "url must have schema one of",
        ),
        (
            "a cross-namespace targetRef",
            Box::new(|m| {
                m["spec"].as_object_mut().unwrap().remove("selector");
                m["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "g", "namespace": "other"}]);
            }),
            "cross namespace referencing",
        ),
        (
            "a wildcard label value",
            Box::new(|m| m["spec"]["selector"]["matchLabels"]["app"] = json!("shop-*")),
            "wildcard not allowed in label value",
        ),
        (
            "a wildcard label key",
            Box::new(|m| m["spec"]["selector"]["matchLabels"]["app*"] = json!("x")),
            "wildcard not allowed in label key",
        ),
        (
            "an empty label key",
            Box::new(|m| m["spec"]["selector"]["matchLabels"][""] = json!("x")),
            "key must not be empty",
        ),
        (
            "a HOST env with a value",
            Box::new(|m| m["spec"]["vmConfig"] = json!({"env": [{"name": "A", "valueFrom": "HOST", "value": "x"}]})),
            "value may only be set when valueFrom is INLINE",
        ),
        (
            "a repeated env name",
            Box::new(|m| {
                m["spec"]["vmConfig"] = json!({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]})
            }),
            "duplicate name",
        ),
        (
            "a repeated port",
            Box::new(|m| m["spec"]["match"] = json!([{"ports": [{"number": 80}, {"number": 80}]}])),
            "duplicate number",
        ),
        (
            "sha256 with its algorithm",
            Box::new(|m| m["spec"]["sha256"] = json!(format!("sha256:{}", "a".repeat(64)))),
            "/spec/sha256",
        ),
        ("an unknown phase", Box::new(|m| m["spec"]["phase"] = json!("LATE")), "/spec/phase"),
        ("a misspelt field", Box::new(|m| m["spec"]["selecter"] = json!({})), "selecter"),
        (
            "no url",
            Box::new(|m| {
                m["spec"].as_object_mut().unwrap().remove("url");
            }),
            "\"url\" is a required property",
        ),
        ("a priority beyond int32", Box::new(|m| m["spec"]["priority"] = json!(1_i64 << 31)), "/spec/priority"),
        (
            "a string port",
            Box::new(|m| m["spec"]["match"] = json!([{"ports": [{"number": "80"}]}])),
            "/spec/match/0/ports/0/number",
        ),
        ("another kind", Box::new(|m| m["kind"] = json!("EnvoyFilter")), "/kind"),
    ];
    for (what, change, expected) in &cases {
        let problems = refused(change);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{what}: expected a problem with {expected:?}, got {problems:?}"
        );
    }
    // And the null a nullable field may hold, or an int-or-string status, pass.
    assert_eq!(refused(|m| m["spec"]["priority"] = Value::Null), Vec::<String>::new());
    assert_eq!(refused(|m| m["status"] = json!({"observedGeneration": "3"})), Vec::<String>::new());
}
