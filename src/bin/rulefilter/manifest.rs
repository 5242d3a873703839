//! `rulefilter manifest`: wraps a rules document into an Istio `WasmPlugin`, ready for `kubectl apply`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lexopt::ValueExt;
use serde_yaml::{Mapping, Value};

use crate::args::{env_pair, pair};
use rulefilter::input::RulesSource;

use crate::envoy_filter::EnvoyFilter;
use crate::pin;
use crate::report::compile_first;

const HELP: &str = "\
rulefilter manifest: wrap a rules document into an Istio WasmPlugin, ready for kubectl apply, or into the
HTTP filter a plain Envoy loads it with

Usage: rulefilter manifest [OPTIONS] --name <NAME> --image <URL> <RULES>
       rulefilter manifest --envoy [--module PATH] [--name NAME] [--env NAME=VALUE]... <RULES>

The document is checked first (with the --env values), exactly as `rulefilter validate` checks it; the
WasmPlugin goes to standard output. Give workloads by --selector or by --target-ref, not both.

With --envoy, the output is instead one entry for an HTTP connection manager's `http_filters` (JSON, which
Envoy's YAML configuration takes as it is), its `configuration` the compact JSON istiod would hand the
module: the module reads JSON only, so this is how a YAML document reaches a plain Envoy.

Options:
      --name NAME              metadata.name
      --namespace NS           metadata.namespace (default: none, kubectl's current namespace)
      --image URL              The module's OCI image, e.g. oci://registry.example.com/rulefilter:0.1.0
                               or oci://registry.example.com/rulefilter@sha256:<hex>
      --sha256 DIGEST          Pin spec.sha256: for oci:// the image manifest digest (sha256:<hex> or
                               <hex>); an oci:// tag without it is pinned to build/image.digest
      --selector KEY=VALUE     A workload label to match; repeatable
      --target-ref KIND/NAME   A Gateway, HTTPRoute or Service to attach to; repeatable
      --phase PHASE            AUTHN, AUTHZ, STATS or UNSPECIFIED_PHASE (default)
      --priority N             Order among plugins of one phase (higher runs first)
      --fail-strategy S        FAIL_RELOAD (default: about a second of 503s after a
                               VM failure, then the rules apply again), FAIL_CLOSE or FAIL_OPEN
      --plugin-name NAME       pluginName, the filter's root id (default: rulefilter)
      --env NAME=VALUE         A vmConfig.env entry, for ${env.NAME}; repeatable
      --envoy                  Write the filter for a plain Envoy instead of a WasmPlugin
      --module PATH            With --envoy: the module's file on the proxy
                               (default: /etc/envoy/rulefilter.wasm)
  -h, --help                   Print this help

Examples:
  rulefilter manifest --name hello --namespace shop --selector app=shop \\
      --image oci://registry.example.com/platform/rulefilter:0.1.0 rules/hello.yaml > hello.yaml
  rulefilter manifest --name maintenance --namespace istio-ingress --target-ref Gateway/public \\
      --image oci://registry.example.com/platform/rulefilter:0.1.0 --phase AUTHN \\
      --env MAINTENANCE_RETRY_AFTER=3600 --env REGION=eu-west-1 rules/maintenance.yaml | kubectl apply -f -

Exit status: 0 the manifest was written, 1 the document is not valid, 2 the command itself failed.
";

#[derive(Default)]
struct Options {
    rules: Option<PathBuf>,
    name: Option<String>,
    namespace: Option<String>,
    image: Option<String>,
    sha256: Option<String>,
    selector: Vec<(String, String)>,
    target_refs: Vec<(String, String)>,
    phase: Option<String>,
    priority: Option<i64>,
    fail_strategy: Option<String>,
    plugin_name: Option<String>,
    env: Vec<(String, String)>,
    /// `--envoy`: the filter for a plain Envoy.
    envoy: bool,
    module: Option<String>,
    /// Told on stderr once the manifest is written: where `sha256` came from, or that there is none.
    pin_note: Option<String>,
}

fn one_of(value: String, allowed: &[&str], flag: &str) -> Result<String, lexopt::Error> {
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(format!("{flag} is one of {}, not {value:?}", allowed.join(", ")).into())
    }
}

fn options(mut args: lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::Arg::{Long, Short, Value};
    let mut o = Options::default();
    while let Some(arg) = args.next()? {
        match arg {
            Long("name") => o.name = Some(args.value()?.string()?),
            Long("namespace") => o.namespace = Some(args.value()?.string()?),
            Long("image") => o.image = Some(args.value()?.string()?),
            Long("sha256") => o.sha256 = Some(pin::parse_digest(&args.value()?.string()?, "--sha256")?),
            Long("selector") => o.selector.push(pair(&args.value()?.string()?, '=', "--selector takes KEY=VALUE")?),
            Long("target-ref") => {
                o.target_refs.push(pair(&args.value()?.string()?, '/', "--target-ref takes KIND/NAME")?);
            }
            Long("phase") => {
                let allowed = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"];
                o.phase = Some(one_of(args.value()?.string()?, &allowed, "--phase")?);
            }
            Long("priority") => o.priority = Some(args.value()?.parse()?),
            Long("fail-strategy") => {
                let allowed = ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"];
                o.fail_strategy = Some(one_of(args.value()?.string()?, &allowed, "--fail-strategy")?);
            }
            Long("plugin-name") => o.plugin_name = Some(args.value()?.string()?),
            Long("env") => o.env.push(env_pair(&args.value()?.string()?)?),
            Long("envoy") => o.envoy = true,
            Long("module") => o.module = Some(args.value()?.string()?),
            Long("help") | Short('h') => {
                out!("{HELP}");
                return Ok(None);
            }
            Value(path) if o.rules.is_none() => o.rules = Some(path.into()),
            other => return Err(other.unexpected()),
        }
    }
    if o.envoy {
        return envoy_options(o).map(Some);
    }
    if o.module.is_some() {
        return Err("--module is for --envoy; a WasmPlugin names its module with --image".into());
    }
    for (given, flag) in
        [(o.rules.is_some(), "a rules document"), (o.name.is_some(), "--name"), (o.image.is_some(), "--image")]
    {
        if !given {
            return Err(format!("{flag} is needed; see `rulefilter manifest --help`").into());
        }
    }
    if !o.selector.is_empty() && !o.target_refs.is_empty() {
        return Err("give --selector or --target-ref, not both (a WasmPlugin takes one)".into());
    }
    let pin = pin::resolve(o.image.as_deref().unwrap_or_default(), o.sha256.take(), Path::new(pin::BUILT_DIGEST))?;
    o.sha256 = pin.sha256;
    o.pin_note = pin.note;
    Ok(Some(o))
}

/// `--envoy` takes the rules, and of the WasmPlugin's options only those a plain Envoy's filter has.
fn envoy_options(o: Options) -> Result<Options, lexopt::Error> {
    if o.rules.is_none() {
        return Err("a rules document is needed; see `rulefilter manifest --help`".into());
    }
    let istio_only = [
        (o.namespace.is_some(), "--namespace"),
        (o.image.is_some() || o.sha256.is_some(), "--image and --sha256 (give the module's file with --module)"),
        (!o.selector.is_empty() || !o.target_refs.is_empty(), "--selector and --target-ref"),
        (o.phase.is_some() || o.priority.is_some(), "--phase and --priority (place the filter in http_filters)"),
    ];
    match istio_only.iter().find(|(given, _)| *given) {
        Some((_, flags)) => Err(format!("{flags}: not for --envoy, which writes no WasmPlugin").into()),
        None => Ok(o),
    }
}

pub fn run(args: lexopt::Parser) -> Result<ExitCode, String> {
    let Some(options) = options(args).map_err(|e| e.to_string())? else { return Ok(ExitCode::SUCCESS) };
    let path = options.rules.clone().unwrap_or_default();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let env: HashMap<String, String> = options.env.iter().cloned().collect();
    let source = match compile_first(&path, &text, &env) {
        Some(Ok((source, _))) => source,
        Some(Err(problems)) => {
            for problem in problems {
                eprintln!("{}", problem.text());
            }
            return Ok(ExitCode::from(1));
        }
        None => return Err(format!("{} holds no rules document", path.display())),
    };
    if options.envoy {
        return envoy_filter(&options, &source, &path);
    }
    let env = vm_env(&source, &options.env);
    let manifest = wasm_plugin(&options, env, source.rules);
    // kubectl reads YAML 1.1: every scalar is written so that it means the same there as to the module.
    let yaml = rulefilter::yaml11::to_string(&manifest).map_err(|e| format!("{}: {e}", path.display()))?;
    // (A line break in the file name would end the comment.)
    let source: String = path.display().to_string().chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    out!("# Made by `rulefilter manifest` from {source}.\n{yaml}");
    if let Some(note) = &options.pin_note {
        eprintln!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--envoy`: the HTTP filter entry for a plain Envoy, with the JSON the module would receive from istiod.
fn envoy_filter(options: &Options, source: &RulesSource, path: &Path) -> Result<ExitCode, String> {
    let config_json = source.module_text().map_err(|e| format!("{}: {}", path.display(), e.message))?;
    let mut env: Vec<(String, String)> = source
        .env
        .iter()
        .filter(|(name, _)| !source.host_env.contains(*name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, value) in &options.env {
        env.retain(|(existing, _)| existing != name);
        env.push((name.clone(), value.clone()));
    }
    let host_env: Vec<String> =
        source.host_env.iter().filter(|name| !options.env.iter().any(|(given, _)| given == *name)).cloned().collect();
    let strategy = options.fail_strategy.as_deref().unwrap_or("FAIL_RELOAD");
    let filter = EnvoyFilter {
        name: options.name.as_deref().unwrap_or("rulefilter"),
        root_id: options.plugin_name.as_deref().unwrap_or("rulefilter"),
        module: options.module.as_deref().unwrap_or("/etc/envoy/rulefilter.wasm"),
        failure_policy: rulefilter::local::istio::failure_policy(Some(strategy))?,
        config_json: &config_json,
        env: &env,
        host_env: &host_env,
    };
    outln!("{}", filter.to_json());
    Ok(ExitCode::SUCCESS)
}

/// `vmConfig.env` of the written manifest: a manifest's own entries as they were (those from the node stay
/// `valueFrom: HOST`), each `--env` replacing the entry of its name or added after them. Without this, wrapping a
/// manifest again would drop the values its rules read, and the module would refuse the document.
fn vm_env(source: &RulesSource, given: &[(String, String)]) -> Vec<Value> {
    let inline = |name: &str, value: &str| map(vec![("name", Value::from(name)), ("value", Value::from(value))]);
    let mut entries: Vec<(String, Value)> = source
        .env
        .iter()
        .map(|(name, value)| {
            let entry = if source.host_env.contains(name) {
                map(vec![("name", Value::from(name.as_str())), ("valueFrom", Value::from("HOST"))])
            } else {
                inline(name, value)
            };
            (name.clone(), entry)
        })
        .collect();
    for (name, value) in given {
        match entries.iter_mut().find(|(existing, _)| existing == name) {
            Some((_, entry)) => *entry = inline(name, value),
            None => entries.push((name.clone(), inline(name, value))),
        }
    }
    entries.into_iter().map(|(_, entry)| entry).collect()
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Mapping(entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect::<Mapping>())
}

/// Group of a Gateway API or core kind, for targetRefs.
fn group_of(kind: &str) -> &'static str {
    match kind {
        "Gateway" | "HTTPRoute" | "GRPCRoute" => "gateway.networking.k8s.io",
        _ => "",
    }
}

fn wasm_plugin(o: &Options, env: Vec<Value>, rules: Value) -> Value {
    let mut metadata = vec![("name", Value::from(o.name.clone().unwrap_or_default()))];
    if let Some(namespace) = &o.namespace {
        metadata.push(("namespace", Value::from(namespace.clone())));
    }
    let mut spec = Vec::new();
    if !o.selector.is_empty() {
        let labels = o.selector.iter().map(|(k, v)| (k.as_str(), Value::from(v.clone()))).collect();
        spec.push(("selector", map(vec![("matchLabels", map(labels))])));
    }
    if !o.target_refs.is_empty() {
        let refs = o
            .target_refs
            .iter()
            .map(|(kind, name)| {
                map(vec![
                    ("kind", Value::from(kind.clone())),
                    ("group", Value::from(group_of(kind))),
                    ("name", Value::from(name.clone())),
                ])
            })
            .collect();
        spec.push(("targetRefs", Value::Sequence(refs)));
    }
    spec.push(("url", Value::from(o.image.clone().unwrap_or_default())));
    if let Some(sha256) = &o.sha256 {
        spec.push(("sha256", Value::from(sha256.clone())));
    }
    spec.push(("pluginName", Value::from(o.plugin_name.clone().unwrap_or_else(|| "rulefilter".into()))));
    spec.push(("phase", Value::from(o.phase.clone().unwrap_or_else(|| "UNSPECIFIED_PHASE".into()))));
    if let Some(priority) = o.priority {
        spec.push(("priority", Value::from(priority)));
    }
    spec.push(("failStrategy", Value::from(o.fail_strategy.clone().unwrap_or_else(|| "FAIL_RELOAD".into()))));
    if !env.is_empty() {
        spec.push(("vmConfig", map(vec![("env", Value::Sequence(env))])));
    }
    if !rules.is_null() {
        spec.push(("pluginConfig", rules));
    }
    map(vec![
        ("apiVersion", Value::from("extensions.istio.io/v1alpha1")),
        ("kind", Value::from("WasmPlugin")),
        ("metadata", map(metadata)),
        ("spec", map(spec)),
    ])
}
