//! The published JSON Schemas (`schema/`) match the Rust types field for field, accept every document we ship,
//! and refuse the invalid corpus wherever a schema can tell.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rulefilter::body::spec::{BodyEditsSpec, BodySpec};
use rulefilter::cases::{Case, CaseFile, CaseRequest, CaseUpstream, Expect};
use rulefilter::config::{
    ActionSpec, Document, FromTo, HeaderEditsSpec, LogSpec, MatchFields, MatchSpec, PrefixRewriteSpec, QueryEditsSpec,
    RateLimitSpec, RedirectSpec, RegexRewriteSpec, RespondSpec, RewriteSpec, RuleSpec, SampleSpec, SourceSpec,
};
use rulefilter::credentials::spec::{ApiKeyEntry, ApiKeySpec, BasicAuthSpec, BasicUserEntry};
use rulefilter::fields::Decode;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(project().join("schema").join(name)).unwrap()).unwrap()
}

/// The field names serde accepts for `T` (a case file's type), read from the error it gives for a field that
/// does not exist.
fn serde_fields<T: DeserializeOwned>() -> BTreeSet<String> {
    let probe: serde_yaml::Value = serde_yaml::from_str("{no_such_field_anywhere: 1}").unwrap();
    names_in(&serde_yaml::from_value::<T>(probe).err().expect("deny_unknown_fields").to_string())
}

/// The field names the module's decoder accepts for `T` (a document's type), read the same way.
fn fields<T: Decode>() -> BTreeSet<String> {
    let probe = rulefilter::json::parse(r#"{"no_such_field_anywhere": 1}"#).unwrap();
    let problems = rulefilter::fields::decode::<T>(&probe).1;
    names_in(&problems.first().expect("an unknown field").message)
}

fn names_in(message: &str) -> BTreeSet<String> {
    let expected = message.split_once("expected").unwrap_or_else(|| panic!("{message}")).1;
    expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The property names a schema object (or, for `oneOf`, its object branch) allows.
fn schema_fields(object: &Value) -> BTreeSet<String> {
    let object = match object.get("oneOf") {
        Some(branches) => branches.as_array().unwrap().iter().find(|b| b["type"] == "object").unwrap(),
        None => object,
    };
    assert_eq!(object["additionalProperties"], false, "a closed object: {object}");
    object["properties"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_schemas_have_exactly_the_fields_of_the_rust_types() {
    let rules = schema("rulefilter.schema.json");
    let def = |name: &str| rules["$defs"][name].clone();
    let pairs: Vec<(&str, BTreeSet<String>, Value)> = vec![
        ("document", fields::<Document>(), rules.clone()),
        ("rule", fields::<RuleSpec>(), def("rule")),
        ("match", fields::<MatchSpec>(), def("match")),
        ("stringTest", fields::<MatchFields>(), def("stringTest")),
        ("source", fields::<SourceSpec>(), def("source")),
        ("sample", fields::<SampleSpec>(), def("sample")),
        ("action", fields::<ActionSpec>(), def("action")),
        ("headerEdits", fields::<HeaderEditsSpec>(), def("headerEdits")),
        ("fromTo", fields::<FromTo>(), def("fromTo")),
        ("respond", fields::<RespondSpec>(), def("respond")),
        ("redirect", fields::<RedirectSpec>(), def("redirect")),
        ("rewrite", fields::<RewriteSpec>(), def("rewrite")),
        ("prefixRewrite", fields::<PrefixRewriteSpec>(), def("prefixRewrite")),
        ("segmentPrefixRewrite", fields::<PrefixRewriteSpec>(), def("segmentPrefixRewrite")),
        ("regexRewrite", fields::<RegexRewriteSpec>(), def("regexRewrite")),
        ("queryEdits", fields::<QueryEditsSpec>(), def("queryEdits")),
        ("rateLimit", fields::<RateLimitSpec>(), def("rateLimit")),
        ("log", fields::<LogSpec>(), def("log")),
        ("apiKey", fields::<ApiKeySpec>(), def("apiKey")),
        ("apiKeyEntry", fields::<ApiKeyEntry>(), def("apiKeyEntry")),
        ("basicAuth", fields::<BasicAuthSpec>(), def("basicAuth")),
        ("basicUser", fields::<BasicUserEntry>(), def("basicUser")),
        ("body", fields::<BodySpec>(), def("body")),
        ("bodyEdits", fields::<BodyEditsSpec>(), def("bodyEdits")),
    ];
    let cases = schema("rulefilter-cases.schema.json");
    let case_def = |name: &str| cases["$defs"][name].clone();
    let case_pairs: Vec<(&str, BTreeSet<String>, Value)> = vec![
        ("case file", serde_fields::<CaseFile>(), cases.clone()),
        ("case", serde_fields::<Case>(), case_def("case")),
        ("request", serde_fields::<CaseRequest>(), case_def("request")),
        ("upstream", serde_fields::<CaseUpstream>(), case_def("upstream")),
        ("expect", serde_fields::<Expect>(), case_def("expect")),
    ];
    for (name, rust, schema) in pairs.into_iter().chain(case_pairs) {
        assert!(!rust.is_empty(), "{name}: no fields read from serde");
        assert_eq!(schema_fields(&schema), rust, "{name}: the schema and the Rust type disagree");
    }
}

/// Every property of every object in the schema is described and has an example.
#[test]
fn every_field_is_described_with_an_example() {
    fn walk(value: &Value, at: &str, missing: &mut Vec<String>) {
        if let Some(properties) = value.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                let described = property.get("description").is_some() || property.get("$ref").is_some();
                let exemplified = property.get("examples").is_some() || property.get("$ref").is_some();
                if !described || !exemplified {
                    missing.push(format!("{at}.{name}"));
                }
            }
        }
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, &format!("{at}.{k}"), missing)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, at, missing)),
            _ => {}
        }
    }
    for name in ["rulefilter.schema.json", "rulefilter-cases.schema.json"] {
        let mut missing = Vec::new();
        walk(&schema(name), "", &mut missing);
        assert!(missing.is_empty(), "{name}: fields without a description or example: {missing:?}");
        // And every $def has a description.
        for (def, body) in schema(name)["$defs"].as_object().unwrap() {
            assert!(body.get("description").is_some(), "{name}: $defs.{def} has no description");
        }
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema(name)).unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

fn yaml_file(path: &Path) -> Value {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(yaml).unwrap()
}

/// Istio's form: every number a double.
fn as_doubles(value: Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(as_doubles).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, as_doubles(v))).collect()),
        other => other,
    }
}

fn files(folder: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(project().join(folder))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_document_manifest_and_case_file_validates() {
    let rules = validator("rulefilter.schema.json");
    let cases = validator("rulefilter-cases.schema.json");
    let mut documents: Vec<(String, Value)> = Vec::new();
    for path in [files("rules", ".yaml"), files("tests/cases", ".yaml")].concat() {
        let name = path.display().to_string();
        if name.ends_with(".test.yaml") {
            let errors: Vec<String> = cases.iter_errors(&yaml_file(&path)).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
        } else {
            documents.push((name, yaml_file(&path)));
        }
    }
    for path in files("manifests", "-wasmplugin.yaml") {
        documents.push((path.display().to_string(), yaml_file(&path)["spec"]["pluginConfig"].clone()));
    }
    assert!(documents.len() >= 11, "{}", documents.len());
    for (name, document) in documents {
        for form in [document.clone(), as_doubles(document)] {
            let errors: Vec<String> = rules.iter_errors(&form).map(|e| format!("{}: {e}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
    }
}

#[test]
fn the_invalid_corpus_is_refused_by_the_schema_where_a_schema_can_tell() {
    let rules = validator("rulefilter.schema.json");
    // What a schema cannot see: regex syntax, names used twice, which phase knows what, template references.
    // Those documents are refused by `rulefilter validate` and the module (tests/cli.rs).
    let beyond_a_schema = ["bad-regex.yaml", "duplicate-names.yaml", "wrong-phase.yaml"];
    let mut refused = 0;
    for path in [files("tests/invalid", ".yaml"), files("tests/invalid", ".json")].concat() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Read as the tool reads it: a manifest's rules are its spec.pluginConfig.
        let items = rulefilter::input::read(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(rulefilter::input::Item::Rules(source)) =
            items.into_iter().find(|i| matches!(i, rulefilter::input::Item::Rules(_)))
        else {
            panic!("{name} holds no rules")
        };
        if source.read().is_err() {
            continue; // not YAML at all: nothing to give a schema
        }
        let document = serde_json::to_value(source.rules).unwrap();
        let valid = rules.is_valid(&document);
        if beyond_a_schema.contains(&name.as_str()) {
            assert!(valid, "{name}: expected the schema to accept it (only the validator can refuse it)");
        } else {
            assert!(!valid, "{name}: the schema should refuse it");
            refused += 1;
        }
    }
    assert!(refused >= 6, "{refused}");
}

#[test]
fn every_document_names_its_schema_for_editors() {
    for path in [files("rules", ".yaml"), files("tests/cases", ".yaml")].concat() {
        let text = std::fs::read_to_string(&path).unwrap();
        let schema = if path.to_string_lossy().ends_with(".test.yaml") {
            "rulefilter-cases.schema.json"
        } else {
            "rulefilter.schema.json"
        };
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# yaml-language-server: $schema=") && first.ends_with(&format!("schema/{schema}")),
            "{}: first line should be the yaml-language-server modeline for {schema}, is {first:?}",
            path.display()
        );
    }
}
