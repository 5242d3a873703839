//! One `AdmissionReview` in, its answer out: which WasmPlugins are ours, what document their proxies would
//! receive, and whether the module accepts it. No I/O here, so every decision is testable without a server.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use rulefilter::local::istio::plugin_config_json;
use rulefilter::ConfigErrors;
use serde_json::{json, Map, Value};

use crate::report::Problem;
use crate::validate::plural;

/// The label that puts a WasmPlugin under the webhook's check whatever its url.
pub const LABEL: &str = "rulefilter.io/validate";

/// Which WasmPlugins carry a rulefilter rules document.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// Image repositories (`oci://` optional). One ending in `/` covers every repository below it.
    pub images: Vec<String>,
}

impl Scope {
    /// True when the plugin's `spec.url` is one of our images (any tag or digest), or its labels ask for it.
    fn covers(&self, plugin: &Value) -> bool {
        let label = plugin.pointer("/metadata/labels").and_then(|l| l.get(LABEL)).and_then(Value::as_str);
        if label == Some("true") {
            return true;
        }
        let Some(url) = plugin.pointer("/spec/url").and_then(Value::as_str) else { return false };
        self.images.iter().any(|image| image_matches(image, url))
    }
}

/// Does `url` name the repository `image` (or one below it, when `image` ends in `/`)?
/// `oci://` is Istio's default scheme, so it is optional on both sides.
pub fn image_matches(image: &str, url: &str) -> bool {
    let image = image.strip_prefix("oci://").unwrap_or(image);
    let url = url.strip_prefix("oci://").unwrap_or(url);
    if image.ends_with('/') {
        return url.starts_with(image) && url.len() > image.len();
    }
    match url.strip_prefix(image) {
        // The repository itself, with a tag or a digest (a `:` in the registry's host:port comes before the
        // repository path, so it is never the next character here).
        Some(rest) => rest.is_empty() || rest.starts_with(':') || rest.starts_with('@'),
        None => false,
    }
}

/// A request that is not an `AdmissionReview` this webhook can answer (HTTP 400): without a well-formed
/// request there is no uid to answer with.
#[derive(Debug, PartialEq, Eq)]
pub struct BadReview(pub String);

/// What was decided, for the server's log line.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    /// `CREATE shop/hello`.
    pub subject: String,
    /// `allowed`, `allowed (not ours)`, `denied (2 problems)`, …
    pub outcome: String,
}

/// Answers one review, given as the HTTP request body.
pub fn answer(body: &[u8], scope: &Scope) -> Result<(Value, Decision), BadReview> {
    let review: Value = serde_json::from_slice(body).map_err(|e| BadReview(format!("the body is not JSON: {e}")))?;
    let api_version = review.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = review.get("kind").and_then(Value::as_str).unwrap_or_default();
    if (api_version, kind) != ("admission.k8s.io/v1", "AdmissionReview") {
        return Err(BadReview(format!(
            "expected an admission.k8s.io/v1 AdmissionReview, not apiVersion {api_version:?} kind {kind:?} \
             (set admissionReviewVersions: [\"v1\"] in the ValidatingWebhookConfiguration)"
        )));
    }
    let request = review.get("request").filter(|r| r.is_object()).ok_or_else(|| bad("request is missing"))?;
    let uid = request.get("uid").and_then(Value::as_str).filter(|u| !u.is_empty());
    let uid = uid.ok_or_else(|| bad("request.uid is missing or empty"))?;
    let operation = request.get("operation").and_then(Value::as_str).unwrap_or_default();
    let subject = format!("{operation} {}", object_name(request));
    let verdict = match operation {
        "CREATE" | "UPDATE" => {
            let object = request.get("object").filter(|o| o.is_object());
            let object = object.ok_or_else(|| bad(&format!("request.object is missing for a {operation}")))?;
            check_object(object, scope)
        }
        // Deleting or connecting never puts a document on a proxy.
        _ => Verdict::allow("allowed (not a create or update)"),
    };
    let mut response = Map::new();
    response.insert("uid".into(), json!(uid));
    response.insert("allowed".into(), json!(verdict.denial.is_none()));
    if let Some(message) = &verdict.denial {
        // 422 and reason Invalid: what the API server itself answers for an object its schema refuses.
        let status = json!({"status": "Failure", "code": 422, "reason": "Invalid", "message": message});
        response.insert("status".into(), status);
    }
    if !verdict.warnings.is_empty() {
        response.insert("warnings".into(), json!(verdict.warnings));
    }
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    Ok((review, Decision { subject, outcome: verdict.outcome }))
}

fn bad(message: &str) -> BadReview {
    BadReview(message.to_owned())
}

/// `namespace/name` of the reviewed object, from the request (present for every operation).
fn object_name(request: &Value) -> String {
    let text = |key: &str| request.get(key).and_then(Value::as_str).filter(|t| !t.is_empty());
    match (text("namespace"), text("name")) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (None, Some(name)) => name.to_owned(),
        // `generateName` objects have no name yet at CREATE.
        (Some(namespace), None) => format!("{namespace}/(unnamed)"),
        (None, None) => "(unnamed)".to_owned(),
    }
}

/// The answer for one object.
struct Verdict {
    /// The `status.message` when denied.
    denial: Option<String>,
    warnings: Vec<String>,
    outcome: String,
}

impl Verdict {
    fn allow(outcome: &str) -> Verdict {
        Verdict { denial: None, warnings: Vec::new(), outcome: outcome.to_owned() }
    }
}

fn check_object(object: &Value, scope: &Scope) -> Verdict {
    let is_wasm_plugin = object.get("kind").and_then(Value::as_str) == Some("WasmPlugin")
        && object.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("extensions.istio.io/"));
    if !is_wasm_plugin {
        return Verdict::allow("allowed (not a WasmPlugin)");
    }
    if !scope.covers(object) {
        return Verdict::allow("allowed (not ours: neither a --image url nor the label)");
    }
    let manifest = manifest_name(object);
    let (env, from_host) = environment(object);
    let config = object.pointer("/spec/pluginConfig").unwrap_or(&Value::Null);
    let document = match config {
        // istiod sends an empty configuration: the module passes all traffic through.
        Value::Null => return Verdict::allow("allowed (no pluginConfig: pass-through)"),
        Value::Object(_) => plugin_config_json(config),
        other => {
            let message = format!(
                "{manifest}: spec.pluginConfig: must be an object (a rules document), not {}",
                json_type(other)
            );
            return Verdict {
                denial: Some(message),
                warnings: Vec::new(),
                outcome: "denied (pluginConfig not an object)".into(),
            };
        }
    };
    // Kubernetes asks for warnings under 120 characters.
    let warnings = from_host
        .iter()
        .filter(|name| document.contains(&format!("env.{name}")))
        .map(|name| format!("rulefilter: vmConfig.env {name} comes from the node (HOST): checked as empty text"))
        .collect();
    match check(&document, &env) {
        Ok(()) => Verdict { warnings, ..Verdict::allow("allowed (valid)") },
        Err(errors) => {
            let count = errors.0.len();
            let lines: Vec<String> = errors
                .0
                .into_iter()
                .map(|error| {
                    let mut problem = Problem::file(Path::new(&manifest), None, "");
                    problem.message = error.to_string();
                    problem.error = Some(error);
                    problem.text()
                })
                .collect();
            let message = format!(
                "spec.pluginConfig is not a valid rulefilter rules document ({}):\n{}",
                plural(count, "problem"),
                lines.join("\n")
            );
            Verdict { denial: Some(message), warnings, outcome: format!("denied ({})", plural(count, "problem")) }
        }
    }
}

/// The module's own verdict (`on_configure` runs the same function), on exactly the text a proxy would be
/// handed.
fn check(document: &str, env: &HashMap<String, String>) -> Result<(), ConfigErrors> {
    rulefilter::document::load_bytes(document.as_bytes(), env).map(drop)
}

/// `WasmPlugin namespace/name`, as `rulefilter validate` names a manifest.
fn manifest_name(object: &Value) -> String {
    let text = |key: &str| object.pointer(key).and_then(Value::as_str).filter(|t| !t.is_empty());
    let name = text("/metadata/name").or_else(|| text("/metadata/generateName")).unwrap_or("(unnamed)");
    match text("/metadata/namespace") {
        Some(namespace) => format!("WasmPlugin {namespace}/{name}"),
        None => format!("WasmPlugin {name}"),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `spec.vmConfig.env` as the module's environment, and the names whose values come from the node. INLINE
/// values are known; HOST values only to the node's istio-agent at run time, so they are checked as empty
/// text (as `rulefilter validate` does) and a warning says so when the document uses them.
/// `spec.vmConfig.env` read as `rulefilter validate` reads a manifest's: the values, and the names from the node.
fn environment(object: &Value) -> (HashMap<String, String>, BTreeSet<String>) {
    let entries = object.pointer("/spec/vmConfig/env").and_then(|env| serde_yaml::to_value(env).ok());
    let (values, from_host) = entries.as_ref().map(rulefilter::input::vm_env).unwrap_or_default();
    (values.into_iter().collect(), from_host)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn review(operation: &str, object: Value) -> Vec<u8> {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": operation, "namespace": "shop", "name": "hello", "object": object},
        })
        .to_string()
        .into_bytes()
    }

    fn plugin(url: &str, config: Value) -> Value {
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "hello", "namespace": "shop"},
            "spec": {"url": url, "pluginConfig": config},
        })
    }

    fn scope() -> Scope {
        Scope { images: vec!["oci://registry.example.com/platform/rulefilter".into()] }
    }

    fn response(body: &[u8]) -> Value {
        answer(body, &scope()).unwrap().0["response"].clone()
    }

    #[test]
    fn images_match_by_repository_not_by_text_prefix() {
        let repo = "oci://r.example.com/platform/rulefilter";
        assert!(image_matches(repo, "oci://r.example.com/platform/rulefilter:0.1.0"));
        assert!(image_matches(repo, "r.example.com/platform/rulefilter@sha256:ab"));
        assert!(image_matches(repo, "oci://r.example.com/platform/rulefilter"));
        assert!(!image_matches(repo, "oci://r.example.com/platform/rulefilter-other:1"));
        assert!(!image_matches(repo, "oci://r.example.com/platform/rulefilter/sub:1"));
        assert!(image_matches("r.example.com/platform/", "oci://r.example.com/platform/anything:1"));
        assert!(!image_matches("r.example.com/platform/", "oci://r.example.com/platform/"));
        assert!(!image_matches("r.example.com/platform/", "oci://r.example.com/platformx/a:1"));
    }

    #[test]
    fn whole_numbers_reach_the_module_as_protojson_writes_doubles() {
        let config = json!({"a": 200, "b": 1.5, "c": [1e3, -0.0], "d": 18446744073709551615u64});
        assert_eq!(plugin_config_json(&config), r#"{"a":200,"b":1.5,"c":[1000,0],"d":1.8446744073709552e+19}"#);
    }

    #[test]
    fn a_plugin_is_ours_by_image_or_label() {
        let other = plugin("oci://elsewhere/x:1", json!({"request": "not rules"}));
        assert_eq!(response(&review("CREATE", other.clone()))["allowed"], true);
        let mut labelled = other;
        labelled["metadata"]["labels"] = json!({LABEL: "true"});
        assert_eq!(response(&review("CREATE", labelled))["allowed"], false);
    }

    #[test]
    fn problems_are_listed_each_as_validate_words_it() {
        let config = json!({"request": [{"name": "a", "match": {"pathh": "/"}}, {"name": "b", "bogus": 1}]});
        let body = review("UPDATE", plugin("oci://registry.example.com/platform/rulefilter:1", config));
        let response = response(&body);
        assert_eq!(response["uid"], "u-1");
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 422);
        let message = response["status"]["message"].as_str().unwrap();
        assert!(message.starts_with("spec.pluginConfig is not a valid rulefilter rules document (2 problems):\n"));
        assert!(
            message.contains("\nWasmPlugin shop/hello: request[0] \"a\": match.pathh: unknown field `pathh`"),
            "{message}"
        );
        assert!(message.contains("\n  hint: did you mean `path`?"), "{message}");
        assert!(message.contains("\nWasmPlugin shop/hello: request[1] \"b\""), "{message}");
    }

    #[test]
    fn env_comes_from_inline_values_and_host_ones_warn() {
        let mut object = plugin(
            "oci://registry.example.com/platform/rulefilter:1",
            json!({"request": [{"name": "a", "actions": [{"request_headers": {"set": {"x-region": "${env.REGION}"}}}]}]}),
        );
        object["spec"]["vmConfig"] = json!({"env": [{"name": "REGION", "valueFrom": "HOST"}]});
        let response = response(&review("CREATE", object.clone()));
        assert_eq!(response["allowed"], true, "{response}");
        assert!(response["warnings"][0].as_str().unwrap().contains("REGION comes from the node"));
        assert_eq!(response["warnings"].as_array().unwrap().len(), 1);
        object["spec"]["vmConfig"]["env"].as_array_mut().unwrap().push(json!({"name": "UNUSED", "valueFrom": "HOST"}));
        assert_eq!(self::response(&review("CREATE", object.clone()))["warnings"].as_array().unwrap().len(), 1);
        object["spec"]["vmConfig"] = Value::Null;
        assert_eq!(self::response(&review("CREATE", object))["allowed"], false);
    }

    #[test]
    fn deletes_empty_and_odd_configs() {
        assert_eq!(response(&review("DELETE", Value::Null))["allowed"], true);
        let ours = |config| plugin("registry.example.com/platform/rulefilter:1", config);
        assert_eq!(response(&review("CREATE", ours(Value::Null)))["allowed"], true);
        assert_eq!(response(&review("CREATE", ours(json!({}))))["allowed"], true);
        let odd = response(&review("CREATE", ours(json!("request: []"))));
        assert_eq!(odd["allowed"], false);
        assert!(odd["status"]["message"]
            .as_str()
            .unwrap()
            .contains("must be an object (a rules document), not a string"));
    }

    #[test]
    fn malformed_reviews_are_refused_with_the_reason() {
        let refuse = |body: &str| answer(body.as_bytes(), &scope()).unwrap_err().0;
        assert!(refuse("{").starts_with("the body is not JSON"));
        assert!(refuse(r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#).contains("v1beta1"));
        assert!(refuse(r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).contains("request"));
        let no_uid =
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#;
        assert!(refuse(no_uid).contains("uid"));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(refuse(&deep).starts_with("the body is not JSON"));
    }
}
