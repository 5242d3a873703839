//! `rulefilter manifest --envoy`: the HTTP filter a plain Envoy (no Istio) loads rulefilter with, its
//! `configuration` the very JSON istiod would hand the module. The module reads JSON only, so this is how a
//! YAML rules document reaches a plain Envoy.

use serde_json::{json, Map, Value};

/// What the filter entry is made of.
pub struct EnvoyFilter<'a> {
    /// The filter config's `name` (Envoy's `plugin_name` property, the metrics' `plugin` label).
    pub name: &'a str,
    /// `root_id`: the plugin name.
    pub root_id: &'a str,
    /// The module file on the proxy's disk.
    pub module: &'a str,
    /// `FAIL_CLOSED`, `FAIL_OPEN` or `FAIL_RELOAD`.
    pub failure_policy: &'a str,
    /// The compact JSON of the rules document; empty for none.
    pub config_json: &'a str,
    /// `${env.NAME}` values, set inline in the VM's environment.
    pub env: &'a [(String, String)],
    /// `${env.NAME}` values Envoy takes from its own process environment.
    pub host_env: &'a [String],
}

impl EnvoyFilter<'_> {
    /// An entry of an HTTP connection manager's `http_filters`, as JSON with only ASCII in it: Envoy reads its
    /// configuration as YAML, where some characters JSON leaves as they are mean otherwise (U+0085 is a line
    /// break to YAML 1.1); escaped, every reader takes each string exactly.
    pub fn to_json(&self) -> String {
        let env: Map<String, Value> = self.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let mut vm_config = Map::new();
        vm_config.insert("runtime".into(), json!("envoy.wasm.runtime.v8"));
        vm_config.insert("code".into(), json!({"local": {"filename": self.module}}));
        if !env.is_empty() || !self.host_env.is_empty() {
            let variables = json!({"key_values": env, "host_env_keys": self.host_env});
            vm_config.insert("environment_variables".into(), variables);
        }
        let mut config = Map::new();
        config.insert("name".into(), json!(self.name));
        config.insert("root_id".into(), json!(self.root_id));
        config.insert("vm_config".into(), Value::Object(vm_config));
        // An empty document is no configuration at all, as istiod writes it.
        if !self.config_json.is_empty() {
            let configuration =
                json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": self.config_json});
            config.insert("configuration".into(), configuration);
        }
        config.insert("failure_policy".into(), json!(self.failure_policy));
        let filter = json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config},
        });
        ascii_only(&serde_json::to_string_pretty(&filter).unwrap_or_default())
    }
}

/// JSON text with every character past ASCII written as a `\u` escape (two for those past U+FFFF). Outside
/// strings JSON has only ASCII, so only string contents change, and they mean the same.
fn ascii_only(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn characters_past_ascii_are_escaped_and_mean_the_same() {
        let text = "{\"m\":\"a\u{85}b\u{e9}\u{1f600}\"}";
        let escaped = ascii_only(text);
        assert!(escaped.is_ascii(), "{escaped}");
        assert_eq!(escaped, r#"{"m":"a\u0085b\u00e9\ud83d\ude00"}"#);
        let back: Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back["m"], "a\u{85}b\u{e9}\u{1f600}");
    }
}
