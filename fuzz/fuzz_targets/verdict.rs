//! Same bytes, same verdict, on arbitrary input. The module reads JSON only: a file `rulefilter validate`
//! takes for a JSON rules document is judged on its own bytes exactly as the module judges them in
//! `on_configure` ([`rulefilter::document::load_bytes`]), message for message; a YAML one on the JSON the tool
//! hands the module, and the module refuses the YAML itself (only blank text is an empty document to it). And
//! neither depth pre-scan (the module's over JSON, the tool's over YAML) lets through a text its parser then
//! reads deeper than the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rulefilter::document;
use rulefilter::input::{self, Item};
use rulefilter::json::{self, Json};
use rulefilter::limits::MAX_DOCUMENT_DEPTH;
use rulefilter::yaml_document;
use rulefilter_fuzz::env;
use serde_yaml::Value;

fuzz_target!(|data: &[u8]| {
    let module = document::load_bytes(data, env()).map(drop).map_err(|e| e.to_string());
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(module.is_err(), "the module ran bytes that are not UTF-8");
        return;
    };
    if json::check_depth(text, MAX_DOCUMENT_DEPTH).is_ok() {
        if let Ok(value) = json::parse(text) {
            assert!(value.depth() <= MAX_DOCUMENT_DEPTH, "the JSON pre-scan under-counted {text:?}");
        }
    }
    let json_text = yaml_document::is_json(text);
    if !json_text && module.is_ok() {
        assert!(text.bytes().all(|b| b" \t\r\n".contains(&b)), "the module accepted text that is not JSON: {text:?}");
    }
    if let Ok(value) = yaml_document::read(text) {
        assert_within_bound(&value, text);
    }
    let Ok(items) = input::read(text) else { return };
    let [Item::Rules(source)] = items.as_slice() else { return };
    if source.manifest.is_some() {
        return;
    }
    assert_eq!(source.text, text, "a rules document is the file's own text");
    let tool = match source.read() {
        Ok(value) => {
            rulefilter::compile::compile(&value, &source.environment(env())).map(drop).map_err(|e| e.to_string())
        }
        Err(error) => Err(error.into_errors().to_string()),
    };
    if json_text {
        assert_eq!(tool, module, "the tool and the module disagree on the JSON {text:?}");
    } else if let Ok(handed) = source.module_text() {
        let judged = document::load(&handed, env()).map(drop).map_err(|e| e.to_string());
        assert_eq!(tool, judged, "the tool's verdict is not the module's on what it hands over, for {text:?}");
        // What the tool hands over is JSON the module reads back as the document was read.
        if !handed.is_empty() {
            let back: Json = json::parse(&handed).unwrap_or(Json::Null);
            assert!(!back.is_null(), "the tool handed over JSON the module cannot read: {handed:?}");
        }
    }
});

/// A text the YAML pre-scan let through nests no deeper than the bound once parsed.
fn assert_within_bound(value: &Value, text: &str) {
    fn depth(value: &Value) -> usize {
        match value {
            Value::Sequence(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Mapping(map) => 1 + map.iter().map(|(k, v)| depth(k).max(depth(v))).max().unwrap_or(0),
            Value::Tagged(tagged) => depth(&tagged.value),
            _ => 0,
        }
    }
    assert!(depth(value) <= MAX_DOCUMENT_DEPTH, "the pre-scan under-counted {text:?}");
}
