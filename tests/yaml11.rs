//! Every manifest `rulefilter manifest` writes means to a YAML 1.1 reader what it means to the module. kubectl
//! reads YAML 1.1: a plain `on` there is `true`, `0777` is 511, `1:30` is 90 (PyYAML). Each manifest is read back
//! by PyYAML (always) and by kubectl (where installed, offline), passed on as istiod passes `pluginConfig`
//! (compact JSON, numbers as doubles) and compiled: the rules must equal those of the document it was made
//! from, compared by their full `Debug` form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value as Json;

const IMAGE: &str = "oci://registry.example.com/platform/rulefilter:0.1.0";

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `program` with `input` on its standard input; its standard output, or a panic naming `what` failed.
fn pipe(mut command: Command, input: &str, what: &str) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what} failed ({}):\n{stderr}\n--- its input:\n{input}", output.status);
    String::from_utf8(output.stdout).unwrap()
}

/// A YAML 1.1 reader: what it makes of a manifest, as JSON (what kubectl sends the API server).
#[derive(Clone, Copy, Debug)]
enum Reader {
    PyYaml,
    Kubectl,
}

impl Reader {
    fn read(self, manifest: &str) -> Json {
        let json = match self {
            Reader::PyYaml => {
                let python = project(".venv/bin/python");
                let has_pyyaml =
                    Command::new(&python).args(["-c", "import yaml"]).output().is_ok_and(|o| o.status.success());
                assert!(
                    has_pyyaml,
                    "PyYAML is missing from {}: run `make envoy` (installs tests/requirements.txt into .venv)",
                    python.display()
                );
                let mut command = Command::new(python);
                // A date or .inf would not survive json.dumps: the reader took text for something else.
                command.args([
                    "-c",
                    "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.buffer.read().decode()), allow_nan=False))",
                ]);
                pipe(command, manifest, "PyYAML")
            }
            Reader::Kubectl => {
                let mut command = Command::new("kubectl");
                // `--local` reads the object from the file and never contacts a server.
                command.args(["patch", "--local", "-f", "-", "--type", "merge", "-p", "{}", "-o", "json"]);
                command.env("KUBECONFIG", "/dev/null");
                pipe(command, manifest, "kubectl patch --local")
            }
        };
        serde_json::from_str(&json).unwrap()
    }

    /// The readers on this machine; kubectl's absence is said loudly, PyYAML's fails the test.
    fn available() -> Vec<Reader> {
        let kubectl = Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
        if kubectl {
            vec![Reader::PyYaml, Reader::Kubectl]
        } else {
            // Written past the test harness's capture (which hides a passing test's eprintln!), once.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let warning = "\n!!! kubectl is NOT installed: tests/yaml11.rs checked the manifests with PyYAML \
                               only, not with kubectl itself !!!\n\n";
                let _ = std::io::stderr().write_all(warning.as_bytes());
            });
            vec![Reader::PyYaml]
        }
    }
}

/// What the module's own reader makes of a manifest.
fn as_the_module_reads(manifest: &str) -> Json {
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(manifest).unwrap()).unwrap()
}

/// `rulefilter manifest ARGS… PATH`, named `rules` unless ARGS name it.
fn manifest(path: &Path, args: &[&str]) -> String {
    let name: &[&str] = if args.contains(&"--name") { &[] } else { &["--name", "rules"] };
    let output = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .args(["manifest", "--image", IMAGE])
        .args(name)
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "rulefilter manifest {} failed:\n{stderr}", path.display());
    String::from_utf8(output.stdout).unwrap()
}

/// The `Debug` form of the rules the file's first rules document compiles to, with `env`.
fn compiled_from_file(path: &Path, env: &HashMap<String, String>) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let items = rulefilter::input::read(&text).unwrap();
    let source = items
        .into_iter()
        .find_map(|item| match item {
            rulefilter::input::Item::Rules(source) => Some(source),
            _ => None,
        })
        .unwrap();
    let rules = source.compile(env).unwrap_or_else(|e| panic!("{} should compile:\n{e}", path.display()));
    format!("{rules:?}")
}

/// The `Debug` form of the rules the module compiles from a manifest as a reader read it: `pluginConfig` as
/// istiod passes it (compact JSON, numbers as doubles), `vmConfig.env` as the plugin's environment.
fn compiled_from_read(manifest: &Json) -> Result<String, String> {
    let spec = &manifest["spec"];
    let env: HashMap<String, String> = spec["vmConfig"]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| (entry["name"].as_str().unwrap().to_owned(), entry["value"].as_str().unwrap().to_owned()))
        .collect();
    let config = match spec.get("pluginConfig") {
        Some(config) => {
            let document = serde_yaml::to_value(config).unwrap();
            rulefilter::local::istio::document_json(&document).unwrap()
        }
        None => String::new(),
    };
    match rulefilter::parse_with_env(&config, &env) {
        Ok(rules) => Ok(format!("{rules:?}")),
        Err(errors) => Err(format!("the module refuses what the reader made of the manifest:\n{errors}\n{config}")),
    }
}

/// Checks `manifest` (made from `path` with `env`) with every reader: it reads as the module reads it, and
/// compiles to the rules `path` compiles to. Returns how many readers checked it.
fn check(path: &Path, manifest: &str, env: &HashMap<String, String>) -> usize {
    let expected = compiled_from_file(path, env);
    let intended = as_the_module_reads(manifest);
    let readers = Reader::available();
    for reader in &readers {
        let read = reader.read(manifest);
        assert_eq!(read, intended, "{reader:?} reads the manifest of {} differently:\n{manifest}", path.display());
        let compiled = compiled_from_read(&read).unwrap_or_else(|e| panic!("{reader:?}, {}: {e}", path.display()));
        assert_eq!(compiled, expected, "{reader:?}: the manifest of {} compiles to other rules", path.display());
    }
    readers.len()
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `--env NAME=VALUE` for each pair.
fn env_args(env: &HashMap<String, String>) -> Vec<String> {
    let sorted: BTreeMap<_, _> = env.iter().collect();
    sorted.into_iter().flat_map(|(k, v)| ["--env".to_owned(), format!("{k}={v}")]).collect()
}

/// Every rules document the project ships or tests with, and every manifest that holds one.
fn shipped_documents() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for folder in ["rules", "tests/cases", "manifests"] {
        for entry in std::fs::read_dir(project(folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && !name.ends_with(".test.yaml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
}

fn holds_rules(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap();
    rulefilter::input::read(&text).unwrap().iter().any(|item| matches!(item, rulefilter::input::Item::Rules(_)))
}

#[test]
fn canary_manifest_keeps_on_and_off_as_text() {
    let path = project("rules/canary.yaml");
    let manifest = manifest(&path, &[]);
    assert!(manifest.contains("canary: \"on\"") && manifest.contains("canary: \"off\""), "{manifest}");
    check(&path, &manifest, &HashMap::new());
}

#[test]
fn every_shipped_document_survives_a_yaml_1_1_reader() {
    // What the documents read from vmConfig.env (manifests/maintenance-wasmplugin.yaml sets the same values).
    let env = env(&[
        ("MAINTENANCE_RETRY_AFTER", "3600"),
        ("REGION", "eu-west-1"),
        // rules/api-keys.yaml's keys (test keys, as in its cases).
        ("INITECH_API_KEY", "initech-live-Tn5cR2wY8e"),
        ("PAYMENTS_WEBHOOK_KEY", "whsec-9fK3mQ7zLx2B"),
    ]);
    let args = env_args(&env);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut checked = Vec::new();
    for path in shipped_documents().into_iter().filter(|p| holds_rules(p)) {
        let manifest = manifest(&path, &args);
        check(&path, &manifest, &env);
        checked.push(path.strip_prefix(project("")).unwrap().display().to_string());
    }
    eprintln!("checked the manifests of {} documents: {}", checked.len(), checked.join(", "));
    for expected in ["rules/canary.yaml", "rules/edge.yaml", "tests/cases/vocabulary.yaml"] {
        assert!(checked.iter().any(|c| c == expected), "{expected} was not checked");
    }
    assert!(checked.iter().any(|c| c.starts_with("manifests/")), "no manifest in manifests/ was checked");
}

#[test]
fn every_yaml_1_1_form_survives_in_every_place() {
    let path = project("tests/fixtures/yaml11-forms.yaml");
    let env = env(&[("FLAG", "on"), ("RETRY", "0777"), ("REGION", "1:30"), ("EMPTY", ""), ("TILDE", "~")]);
    let mut args = env_args(&env);
    args.extend(
        ["--name", "on", "--namespace", "no", "--selector", "app=yes", "--selector", "y=1:30", "--selector", "0777=~"]
            .map(String::from),
    );
    args.extend(["--plugin-name", "off", "--priority", "10"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifest = manifest(&path, &args);
    let readers = check(&path, &manifest, &env);

    let read = Reader::PyYaml.read(&manifest);
    assert_eq!(read["metadata"], serde_json::json!({"name": "on", "namespace": "no"}));
    assert_eq!(read["spec"]["selector"]["matchLabels"], serde_json::json!({"app": "yes", "y": "1:30", "0777": "~"}));
    assert_eq!(read["spec"]["pluginName"], "off");
    let read_env = &read["spec"]["vmConfig"]["env"];
    assert_eq!(read_env.as_array().unwrap().len(), env.len());
    for entry in read_env.as_array().unwrap() {
        assert_eq!(env[entry["name"].as_str().unwrap()], entry["value"], "{entry}");
    }
    // The comparison sees the forms: they are in the compiled rules' Debug form.
    let compiled = compiled_from_file(&path, &env);
    for form in ["1:30", "0777", "1_000", "2001-12-14t21:59:43.10-05:00", "<<", "0777\\u{2028}line"] {
        assert!(compiled.contains(form), "{form} is not in the compiled rules' Debug form");
    }
    eprintln!("checked with {readers} reader(s)");
}

#[test]
fn target_refs_keep_their_names() {
    let path = project("rules/hello.yaml");
    let manifest = manifest(&path, &["--target-ref", "Gateway/on", "--target-ref", "Service/0777"]);
    check(&path, &manifest, &HashMap::new());
    let names: Vec<Json> = Reader::PyYaml.read(&manifest)["spec"]["targetRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, ["on", "0777"]);
}

/// The check is not vacuous: the manifest serde_yaml used to write for rules/canary.yaml fails it.
#[test]
fn the_check_catches_what_serde_yaml_wrote() {
    let path = project("rules/canary.yaml");
    let manifest = manifest(&path, &[]);
    let old = serde_yaml::to_string(&serde_yaml::from_str::<serde_yaml::Value>(&manifest).unwrap()).unwrap();
    assert!(old.contains("canary: on"), "serde_yaml quotes `on` now: this test no longer shows the problem");
    for reader in Reader::available() {
        let read = reader.read(&old);
        assert_ne!(read, as_the_module_reads(&old), "{reader:?} read `canary: on` as text");
        let error = compiled_from_read(&read).unwrap_err();
        assert!(error.contains("boolean"), "{reader:?}: {error}");
    }
}

/// Every YAML file under `dir`, subfolders included, in a stable order.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The manifests in manifests/ and its folders (written by hand) mean the same to PyYAML as to the module,
/// document by document.
#[test]
fn shipped_manifests_are_yaml_1_1_safe() {
    let mut count = 0;
    for path in yaml_files(&project("manifests")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut command = Command::new(project(".venv/bin/python"));
        command.args([
            "-c",
            "import json, sys, yaml\nprint(json.dumps(list(yaml.safe_load_all(sys.stdin.buffer.read().decode())), allow_nan=False))",
        ]);
        let read: Json = serde_json::from_str(&pipe(command, &text, "PyYAML")).unwrap();
        let intended: Vec<Json> = serde_yaml::Deserializer::from_str(&text)
            .map(|document| serde_json::to_value(serde_yaml::Value::deserialize(document).unwrap()).unwrap())
            .collect();
        assert_eq!(read, Json::Array(intended), "PyYAML reads {} differently", path.display());
        count += 1;
    }
    assert!(count >= 8, "only {count} manifest files found");
}

/// Strings made of the characters YAML 1.1 and 1.2 resolve on (digits, signs, `:`, `.`, `_`, `e`, `x`, the
/// letters of the boolean words…): every one of up to 3 characters, and longer ones drawn by a fixed
/// generator, written by the tool's writer as keys and values, read alike by every reader.
#[test]
fn every_short_string_reads_alike() {
    const ALPHABET: &[char] = &[
        '0', '1', '7', '9', ':', '.', '_', '-', '+', ' ', '#', '~', '<', '=', 'e', 'E', 'x', 'b', 'o', 'n', 'N', 'y',
        'Y', 'f', 'a', 'l', 's', 't', 'r', 'u', 'T', 'O',
    ];
    let mut strings = vec![String::new()];
    for length in 1..=3u32 {
        for mut index in 0..ALPHABET.len().pow(length) {
            let mut text = String::new();
            for _ in 0..length {
                text.push(ALPHABET[index % ALPHABET.len()]);
                index /= ALPHABET.len();
            }
            strings.push(text);
        }
    }
    // Longer ones: a linear congruential generator, so every run checks the same strings.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..5_000 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let length = 4 + (state >> 60) as usize;
        let text = (0..length).map(|i| ALPHABET[((state >> (i * 5 % 55)) as usize) % ALPHABET.len()]).collect();
        strings.push(text);
    }
    strings.extend(
        ["2001-12-14t21:59:43.10-05:00", "6.8523015e+5", "190:20:30.15", "0b1010_0111", "0x_1F", "-.INF", ".NaN"]
            .map(String::from),
    );
    let config: serde_yaml::Mapping = strings.iter().map(|s| (s.clone().into(), s.clone().into())).collect();
    let manifest = serde_yaml::to_value(serde_json::json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": "strings"},
        "spec": {"pluginConfig": config},
    }))
    .unwrap();
    let text = rulefilter::yaml11::to_string(&manifest).unwrap();
    let intended = as_the_module_reads(&text);
    assert_eq!(intended["spec"]["pluginConfig"].as_object().unwrap().len(), config.len(), "{text}");
    let intended = intended["spec"]["pluginConfig"].as_object().unwrap();
    for reader in Reader::available() {
        let read = reader.read(&text);
        let read = read["spec"]["pluginConfig"].as_object().unwrap();
        let wrong: Vec<String> = strings
            .iter()
            .filter(|s| read.get(s.as_str()) != intended.get(s.as_str()))
            .take(10)
            .map(|s| format!("{s:?} written {} read {:?}", rulefilter::yaml11::string(s), read.get(s.as_str())))
            .collect();
        assert!(
            wrong.is_empty() && read.len() == intended.len(),
            "{reader:?} reads differently:\n{}",
            wrong.join("\n")
        );
    }
}

/// The comment naming the source file stays one comment line, whatever the file is called.
#[test]
fn a_line_break_in_the_file_name_does_not_end_the_comment() {
    let dir = std::env::temp_dir().join(format!("rulefilter-yaml11-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x\nkind: Service\n.yaml");
    std::fs::copy(project("rules/hello.yaml"), &path).unwrap();
    let manifest = manifest(&path, &[]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(manifest.starts_with("# Made by `rulefilter manifest` from "), "{manifest}");
    assert_eq!(Reader::PyYaml.read(&manifest)["kind"], "WasmPlugin", "{manifest}");
}
