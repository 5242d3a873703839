//! What users hand the tools, and what each file is taken for. One rule, stated in `rulefilter validate
//! --help`:
//!
//! - **Kubernetes objects**, when every YAML document in the file has both `apiVersion` and `kind` (a
//!   deployment file may hold many). Each Istio `WasmPlugin` (`apiVersion: extensions.istio.io/*`, `kind:
//!   WasmPlugin`) is judged on what istiod hands the module: the compact JSON of its `spec.pluginConfig`, with
//!   its `vmConfig.env` as the environment. Objects of other kinds are skipped.
//! - **Test cases**, when the file is one YAML document with `rules` and `cases` (and is no object).
//! - Otherwise a **rules document**: the whole text, handed to the module's verdict ([`crate::document`]) as
//!   the module would receive it ([`crate::yaml_document`]: JSON as written, YAML as istiod's JSON), so a text
//!   of several YAML documents, or one the YAML parser refuses, is refused before it could reach a proxy.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use serde_yaml::Value;

use crate::document::{self, TextError};
use crate::json::Json;
use crate::limits::MAX_FILE_DEPTH;
use crate::locate::Position;
use crate::yaml_document;
use crate::{ConfigErrors, RuleSet};

/// One YAML document of a file, classified.
#[derive(Debug)]
pub enum Item {
    /// Rules to judge: a rules document, or a WasmPlugin's `pluginConfig`.
    Rules(RulesSource),
    /// A Kubernetes object of another kind (a file may hold a whole deployment): nothing to check.
    Other { index: usize, kind: String, name: String },
    /// A file of rule test cases, which `rulefilter test` runs.
    Cases { index: usize },
}

/// A rules document and where it came from.
#[derive(Debug)]
pub struct RulesSource {
    /// The document's place among the file's YAML documents, from 0.
    pub index: usize,
    /// `WasmPlugin namespace/name` for a manifest; `None` for a plain rules document.
    pub manifest: Option<String>,
    /// Where the rules document sits in the YAML document: `""` or `spec.pluginConfig`.
    pub prefix: &'static str,
    /// The text of the rules document: the file's text for a rules document (YAML or JSON), the compact JSON of
    /// `pluginConfig` (empty when there is none) for a WasmPlugin. [`Self::module_text`] is what the module
    /// receives.
    pub text: String,
    /// The rules document as read (null when it is empty or cannot be read).
    pub rules: Value,
    /// The manifest's `vmConfig.env`: INLINE values; HOST ones, known only on the node, as empty text.
    pub env: BTreeMap<String, String>,
    /// The names in `env` whose value comes from the node (`valueFrom: HOST`), so a tool that writes the
    /// manifest again keeps them as they were.
    pub host_env: BTreeSet<String>,
}

impl RulesSource {
    fn document(text: &str) -> RulesSource {
        RulesSource {
            index: 0,
            manifest: None,
            prefix: "",
            text: text.to_owned(),
            rules: rules_value(text),
            env: BTreeMap::new(),
            host_env: BTreeSet::new(),
        }
    }

    /// What the file was taken for, as the tools say it.
    pub fn taken_for(&self) -> &str {
        self.manifest.as_deref().unwrap_or("rules document")
    }

    /// The module's environment: the manifest's, with `extra` (say, from the command line) on top.
    pub fn environment(&self, extra: &HashMap<String, String>) -> HashMap<String, String> {
        let mut environment: HashMap<String, String> = self.env.clone().into_iter().collect();
        environment.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        environment
    }

    /// The module's verdict ([`document::load`]) on [`Self::module_text`], with [`Self::environment`].
    pub fn compile(&self, extra: &HashMap<String, String>) -> Result<RuleSet, ConfigErrors> {
        let document = self.read().map_err(TextError::into_errors)?;
        crate::compile::compile(&document, &self.environment(extra))
    }

    /// The text the module receives: a WasmPlugin's JSON or a JSON file as they are, a YAML file rendered as
    /// istiod renders `pluginConfig`.
    pub fn module_text(&self) -> Result<std::borrow::Cow<'_, str>, TextError> {
        if self.manifest.is_some() {
            return Ok(std::borrow::Cow::Borrowed(&self.text));
        }
        yaml_document::module_text(&self.text)
    }

    /// Steps 1–4 of the verdict ([`document::read`]) on [`Self::module_text`]: [`Self::compile`] is this,
    /// then [`crate::compile::compile`]. A position is one in [`Self::text`]: none for a problem of the
    /// rendered JSON.
    pub fn read(&self) -> Result<Json, TextError> {
        let text = self.module_text()?;
        let rendered = matches!(text, std::borrow::Cow::Owned(_));
        document::read(&text).map_err(|error| if rendered { TextError { position: None, ..error } } else { error })
    }

    /// The path of a field of the rules document within the YAML document, for [`crate::locate`].
    pub fn path(&self, field_path: &str) -> String {
        match (self.prefix, field_path) {
            ("", path) => path.to_owned(),
            (prefix, "") => prefix.to_owned(),
            (prefix, path) => format!("{prefix}.{path}"),
        }
    }
}

/// A rules document's text as a YAML value (for the tools that write it elsewhere): a JSON text read as JSON,
/// so its strings stay exactly as written; `Null` when it cannot be read.
fn rules_value(text: &str) -> Value {
    if yaml_document::is_json(text) {
        let json: Option<serde_json::Value> = serde_json::from_str(text).ok();
        return json.and_then(|json| serde_yaml::to_value(json).ok()).unwrap_or(Value::Null);
    }
    yaml_document::read(text).unwrap_or(Value::Null)
}

/// A WasmPlugin whose `pluginConfig` istiod could not hand over as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Option<Position>,
    pub message: String,
}

/// Reads a file's text and says what it holds (see the module's documentation for the rule).
pub fn read(text: &str) -> Result<Vec<Item>, SyntaxError> {
    let whole = || Ok(vec![Item::Rules(RulesSource::document(text))]);
    // Too deep to read as YAML safely: whatever it is, the module would refuse it unread.
    if crate::nesting::check(text, MAX_FILE_DEPTH).is_err() {
        return whole();
    }
    let mut values = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(value) => values.push(value),
            // Not YAML: the module's verdict says where.
            Err(_) => return whole(),
        }
    }
    if !values.is_empty() && values.iter().all(is_kubernetes_object) {
        return values.into_iter().enumerate().map(|(index, value)| object(index, value)).collect();
    }
    if let [single] = values.as_slice() {
        if single.get("cases").is_some() && single.get("rules").is_some() {
            return Ok(vec![Item::Cases { index: 0 }]);
        }
    }
    whole()
}

fn text_at(value: &Value, path: &[&str]) -> Option<String> {
    path.iter().try_fold(value, |value, key| value.get(key)).and_then(Value::as_str).map(str::to_owned)
}

/// A Kubernetes object says what it is with both `apiVersion` and `kind`; one key alone could be a rules
/// document's mistake.
fn is_kubernetes_object(value: &Value) -> bool {
    let given = |key| text_at(value, &[key]).is_some_and(|text| !text.is_empty());
    given("apiVersion") && given("kind")
}

fn object(index: usize, value: Value) -> Result<Item, SyntaxError> {
    let kind = text_at(&value, &["kind"]).unwrap_or_default();
    let name = text_at(&value, &["metadata", "name"]).unwrap_or_else(|| "(unnamed)".into());
    let name = match text_at(&value, &["metadata", "namespace"]) {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name,
    };
    let istio = text_at(&value, &["apiVersion"]).is_some_and(|v| v.starts_with("extensions.istio.io/"));
    if !(istio && kind == "WasmPlugin") {
        return Ok(Item::Other { index, kind, name });
    }
    let manifest = format!("WasmPlugin {name}");
    let spec = value.get("spec");
    let rules = spec.and_then(|s| s.get("pluginConfig")).cloned().unwrap_or(Value::Null);
    // What istiod hands the module: nothing for an empty pluginConfig, else its compact JSON.
    let text = if rules.is_null() {
        String::new()
    } else {
        crate::local::istio::document_json(&rules)
            .map_err(|e| SyntaxError { position: None, message: format!("{manifest}: spec.pluginConfig {e}") })?
    };
    let (env, host_env) =
        spec.and_then(|s| s.get("vmConfig")).and_then(|v| v.get("env")).map(vm_env).unwrap_or_default();
    let prefix = "spec.pluginConfig";
    Ok(Item::Rules(RulesSource { index, manifest: Some(manifest), prefix, text, rules, env, host_env }))
}

/// `vmConfig.env`: `[{name, value, valueFrom: INLINE | HOST}]`, as values (those from the node as empty text:
/// they are known only there) and the names that come from the node.
pub fn vm_env(env: &Value) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut values = BTreeMap::new();
    let mut from_host = BTreeSet::new();
    for entry in env.as_sequence().into_iter().flatten() {
        let Some(name) = entry.get("name").and_then(Value::as_str) else { continue };
        if entry.get("valueFrom").and_then(Value::as_str) == Some("HOST") {
            from_host.insert(name.to_owned());
            values.insert(name.to_owned(), String::new());
        } else {
            values.insert(name.to_owned(), entry.get("value").and_then(Value::as_str).unwrap_or_default().to_owned());
        }
    }
    (values, from_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "\
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: hello, namespace: shop}
spec:
  vmConfig:
    env:
      - {name: REGION, value: eu}
      - {name: NODE, valueFrom: HOST}
  pluginConfig: {response: [], version: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
";

    fn rules(items: &[Item]) -> &RulesSource {
        match items {
            [Item::Rules(source), ..] => source,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_of_kubernetes_objects_hands_each_wasmplugin_its_plugin_config_as_istiod_does() {
        let items = read(DEPLOYMENT).unwrap();
        let manifest = rules(&items);
        assert_eq!(manifest.taken_for(), "WasmPlugin shop/hello");
        assert_eq!(manifest.text, r#"{"response":[],"version":1}"#);
        assert_eq!(manifest.path("response[0].name"), "spec.pluginConfig.response[0].name");
        assert_eq!(manifest.env.get("REGION").map(String::as_str), Some("eu"));
        assert_eq!(manifest.env.get("NODE").map(String::as_str), Some(""));
        assert!(matches!(&items[1], Item::Other { index: 1, kind, name } if kind == "Service" && name == "web"));
    }

    #[test]
    fn one_key_does_not_make_an_object_and_anything_else_is_a_rules_document_whole() {
        for text in [
            "kind: WasmPlugin\nrequest: []\n",
            "apiVersion: v1\n",
            "request: []\n---\napiVersion: v1\nkind: Service\n",
            "request: [\n",
            "",
        ] {
            let items = read(text).unwrap();
            assert_eq!(items.len(), 1, "{text:?}");
            assert_eq!(rules(&items).taken_for(), "rules document", "{text:?}");
            assert_eq!(rules(&items).text, text);
        }
        // A WasmPlugin of another group is no Istio WasmPlugin.
        let other = read("apiVersion: example.com/v1\nkind: WasmPlugin\n").unwrap();
        assert!(matches!(&other[..], [Item::Other { .. }]), "{other:?}");
        assert!(matches!(&read("rules: x.yaml\ncases: []\n").unwrap()[..], [Item::Cases { index: 0 }]));
    }
}
