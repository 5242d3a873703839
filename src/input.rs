//! What users hand the tools: rules documents and Istio `WasmPlugin` manifests, YAML or JSON, one or several
//! YAML documents per file (`---`). A manifest's rules are its `spec.pluginConfig`, and its `vmConfig.env`
//! is the environment `${env.*}` reads.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_yaml::Value;

use crate::locate::Position;
use crate::{ConfigErrors, RuleSet};

/// One YAML document of a file, classified.
#[derive(Debug)]
pub enum Item {
    /// Rules to compile.
    Rules(RulesSource),
    /// A Kubernetes object of another kind (a file may hold a whole deployment): nothing to check.
    Other { index: usize, kind: String },
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
    /// The rules document (null when a manifest has no `pluginConfig`).
    pub rules: Value,
    /// The manifest's `vmConfig.env`: INLINE values; HOST ones, known only on the node, as empty text.
    pub env: BTreeMap<String, String>,
}

impl RulesSource {
    /// Compiles the rules with the manifest's environment, `extra` (say, from the command line) on top.
    pub fn compile(&self, extra: &HashMap<String, String>) -> Result<RuleSet, ConfigErrors> {
        let mut environment: HashMap<String, String> = self.env.clone().into_iter().collect();
        environment.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        crate::compile::compile(self.rules.clone(), &environment)
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

/// A file that is not YAML (nor JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Option<Position>,
    pub message: String,
}

/// Reads every YAML document of `text`.
pub fn read(text: &str) -> Result<Vec<Item>, SyntaxError> {
    let mut items = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| SyntaxError {
            position: e.location().map(|l| Position { line: l.line(), column: l.column() }),
            message: e.to_string(),
        })?;
        items.push(classify(index, value));
    }
    if items.is_empty() {
        // An empty file is an empty rules document: a pass-through filter.
        items.push(Item::Rules(RulesSource {
            index: 0,
            manifest: None,
            prefix: "",
            rules: Value::Null,
            env: BTreeMap::new(),
        }));
    }
    Ok(items)
}

fn classify(index: usize, value: Value) -> Item {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    match text(&value, "kind") {
        Some(kind) if kind == "WasmPlugin" => {
            let metadata = value.get("metadata").cloned().unwrap_or(Value::Null);
            let name = text(&metadata, "name").unwrap_or_else(|| "(unnamed)".into());
            let manifest = match text(&metadata, "namespace") {
                Some(namespace) => format!("WasmPlugin {namespace}/{name}"),
                None => format!("WasmPlugin {name}"),
            };
            let spec = value.get("spec");
            let rules = spec.and_then(|s| s.get("pluginConfig")).cloned().unwrap_or(Value::Null);
            let env = spec.and_then(|s| s.get("vmConfig")).and_then(|v| v.get("env")).map(vm_env).unwrap_or_default();
            Item::Rules(RulesSource { index, manifest: Some(manifest), prefix: "spec.pluginConfig", rules, env })
        }
        Some(kind) => Item::Other { index, kind },
        None if value.get("cases").is_some() && value.get("rules").is_some() => Item::Cases { index },
        None => Item::Rules(RulesSource { index, manifest: None, prefix: "", rules: value, env: BTreeMap::new() }),
    }
}

/// `vmConfig.env`: `[{name, value, valueFrom: INLINE | HOST}]`.
fn vm_env(env: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in env.as_sequence().into_iter().flatten() {
        let Some(name) = entry.get("name").and_then(Value::as_str) else { continue };
        let from_host = entry.get("valueFrom").and_then(Value::as_str) == Some("HOST");
        let value = if from_host { "" } else { entry.get("value").and_then(Value::as_str).unwrap_or_default() };
        out.insert(name.to_owned(), value.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_manifests_and_other_objects_are_told_apart() {
        let text = "\
request: []
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: hello, namespace: shop}
spec:
  vmConfig:
    env:
      - {name: REGION, value: eu}
      - {name: NODE, valueFrom: HOST}
  pluginConfig: {response: []}
---
apiVersion: v1
kind: Service
---
rules: x.yaml
cases: []
";
        let items = read(text).unwrap();
        assert!(matches!(&items[0], Item::Rules(RulesSource { index: 0, manifest: None, prefix: "", .. })));
        let Item::Rules(manifest) = &items[1] else { panic!("{:?}", items[1]) };
        assert_eq!(manifest.manifest.as_deref(), Some("WasmPlugin shop/hello"));
        assert_eq!(manifest.path("response[0].name"), "spec.pluginConfig.response[0].name");
        assert_eq!(manifest.env.get("REGION").map(String::as_str), Some("eu"));
        assert_eq!(manifest.env.get("NODE").map(String::as_str), Some(""));
        assert!(matches!(&items[2], Item::Other { index: 2, kind } if kind == "Service"));
        assert!(matches!(&items[3], Item::Cases { index: 3 }));
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = read("request:\n  - name: [x\n").unwrap_err();
        assert!(error.position.is_some(), "{error:?}");
        assert!(read("").is_ok_and(|items| matches!(&items[..], [Item::Rules(r)] if r.rules.is_null())));
    }
}
