//! The Envoy filter istiod makes of a `WasmPlugin`: an `envoy.extensions.filters.http.wasm.v3.Wasm` whose
//! `configuration` is the compact JSON of `pluginConfig` (every number a double), `root_id` the `pluginName`,
//! the V8 runtime, and `vmConfig.env` as the VM's environment. See ../shared/notes/envoy-istio-facts.md.

use serde_json::{json, Map, Value};

/// What istiod knows about a `WasmPlugin`, as far as the generated filter depends on it.
#[derive(Clone, Debug)]
pub struct Plugin {
    pub namespace: String,
    pub name: String,
    /// `pluginName`: becomes `root_id`.
    pub plugin_name: String,
    /// The compact JSON of `pluginConfig`; `None` for an empty `pluginConfig`.
    pub config_json: Option<String>,
    /// `FAIL_CLOSED` unless `failStrategy` says otherwise.
    pub failure_policy: &'static str,
    /// `vmConfig.env` entries of type INLINE: the module's environment variables.
    pub env: Vec<(String, String)>,
}

impl Plugin {
    pub fn new(name: &str, config_json: Option<String>) -> Self {
        Plugin {
            namespace: "default".into(),
            name: name.into(),
            plugin_name: "rulefilter".into(),
            config_json,
            failure_policy: "FAIL_CLOSED",
            env: Vec::new(),
        }
    }

    /// The plugin istiod makes of a `WasmPlugin` manifest (parsed YAML): its name, namespace, `pluginName`,
    /// `pluginConfig` and `failStrategy`.
    pub fn from_manifest(manifest: &serde_yaml::Value) -> Result<Plugin, String> {
        let at = |path: &[&str]| path.iter().try_fold(manifest, |value, key| value.get(key));
        let text = |path: &[&str]| at(path).and_then(serde_yaml::Value::as_str).map(str::to_owned);
        let name = text(&["metadata", "name"]).ok_or("the manifest has no metadata.name")?;
        let config_json = match at(&["spec", "pluginConfig"]) {
            Some(config) if !config.is_null() => Some(document_json(config)?),
            _ => None,
        };
        let mut plugin = Plugin::new(&name, config_json);
        if let Some(namespace) = text(&["metadata", "namespace"]) {
            plugin.namespace = namespace;
        }
        if let Some(plugin_name) = text(&["spec", "pluginName"]) {
            plugin.plugin_name = plugin_name;
        }
        plugin.failure_policy = failure_policy(text(&["spec", "failStrategy"]).as_deref())?;
        Ok(plugin)
    }

    /// The filter's name, which is also its ECDS resource name (Istio ≥ 1.30).
    pub fn resource_name(&self) -> String {
        format!("extensions.istio.io/trafficextension/{}.{}~istio-translated-wasmplugin", self.namespace, self.name)
    }

    /// The `envoy.extensions.filters.http.wasm.v3.Wasm` config istiod generates, loading `module`.
    pub fn wasm_filter(&self, module: &str) -> Value {
        // istiod adds the resource version so that a new WasmPlugin revision gets a fresh VM.
        let mut env = Map::new();
        env.insert("ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION".into(), json!("1"));
        for (name, value) in &self.env {
            env.insert(name.clone(), json!(value));
        }
        let configuration = match &self.config_json {
            Some(text) => json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text}),
            // An empty pluginConfig gives an empty Any (no type, no value).
            None => json!({}),
        };
        let config = json!({
            "name": format!("{}.{}~istio-translated-wasmplugin", self.namespace, self.name),
            "root_id": self.plugin_name,
            "vm_config": {
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": module}},
                "environment_variables": {"key_values": env},
            },
            "configuration": configuration,
            "failure_policy": self.failure_policy,
        });
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config})
    }
}

/// The Envoy `failure_policy` istiod sets for a `failStrategy` (one to one; Istio's default is FAIL_CLOSE).
pub fn failure_policy(fail_strategy: Option<&str>) -> Result<&'static str, String> {
    match fail_strategy {
        None | Some("FAIL_CLOSE") => Ok("FAIL_CLOSED"),
        Some("FAIL_OPEN") => Ok("FAIL_OPEN"),
        Some("FAIL_RELOAD") => Ok("FAIL_RELOAD"),
        Some(other) => Err(format!("unknown failStrategy {other:?}")),
    }
}

/// A rules document (parsed YAML) as istiod passes it on: compact JSON, numbers as doubles.
pub fn document_json(document: &serde_yaml::Value) -> Result<String, String> {
    let value = serde_json::to_value(document).map_err(|e| format!("cannot be written as JSON: {e}"))?;
    Ok(plugin_config_json(&value))
}

/// The text a proxy receives for a `pluginConfig`: istiod turns it into a protobuf `Struct` (every number a
/// double) and hands the module its compact JSON. Whole doubles print without a fraction, as Go's protojson
/// writes them (`5`, not `5.0`); integers beyond 2^53 lose their low digits exactly as they do there.
pub fn plugin_config_json(config: &Value) -> String {
    as_protobuf_struct(config).to_string()
}

fn as_protobuf_struct(value: &Value) -> Value {
    match value {
        Value::Number(number) => {
            let double = number.as_f64().unwrap_or_default();
            // Below 2^63 a whole double is an exact i64; beyond, protojson writes an exponent, which parses as
            // a double again.
            if double.fract() == 0.0 && double.abs() < 9.2e18 {
                #[allow(clippy::cast_possible_truncation)]
                Value::from(double as i64)
            } else {
                serde_json::Number::from_f64(double).map_or(Value::Null, Value::Number)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(as_protobuf_struct).collect()),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), as_protobuf_struct(v))).collect())
        }
        other => other.clone(),
    }
}

/// The `jwt_authn` HTTP filter istiod puts in front of Wasm filters for a `RequestAuthentication` with one
/// JWT rule: tokens of `issuer` verified against `jwks` (inline), the payload left in dynamic metadata under
/// the issuer (`payload_in_metadata`, what rules read as claims), the token not forwarded upstream; a request
/// without a token passes (an AuthorizationPolicy, or a rule, requires one), one with a bad token gets 401.
pub fn jwt_authn(issuer: &str, jwks: &str) -> Value {
    json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"origins-0": {
                "issuer": issuer,
                "local_jwks": {"inline_string": jwks},
                "forward": false,
                "payload_in_metadata": issuer,
            }},
            "rules": [{
                "match": {"prefix": "/"},
                "requires": {"requires_any": {"requirements": [{"provider_name": "origins-0"}, {"allow_missing": {}}]}},
            }],
            "bypass_cors_preflight": true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_doubles_printed_as_protojson_prints_them() {
        let document: serde_yaml::Value =
            serde_yaml::from_str("{status: 503, ratio: 0.5, big: 1e22, name: x}").unwrap();
        assert_eq!(document_json(&document).unwrap(), r#"{"big":1e+22,"name":"x","ratio":0.5,"status":503}"#);
    }
}
