//! Same bytes, same verdict, on arbitrary input: what `rulefilter validate` decides for a file it takes for a
//! rules document ([`rulefilter::input`], then the verdict's two steps as the tool runs them) equals what the
//! module decides in `on_configure` ([`rulefilter::document::load_bytes`]), message for message. And the
//! nesting pre-scan never lets through a text the parser then reads deeper than the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rulefilter::document;
use rulefilter::input::{self, Item};
use rulefilter::limits::MAX_DOCUMENT_DEPTH;
use rulefilter_fuzz::env;
use serde_yaml::Value;

fuzz_target!(|data: &[u8]| {
    let module = document::load_bytes(data, env()).map(drop).map_err(|e| e.to_string());
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(module.is_err(), "the module ran bytes that are not UTF-8");
        return;
    };
    let Ok(items) = input::read(text) else { return };
    let [Item::Rules(source)] = items.as_slice() else { return };
    if source.manifest.is_some() {
        return;
    }
    assert_eq!(source.text, text, "a rules document is judged on the file's own bytes");
    let tool = match source.read() {
        Ok(value) => {
            assert_within_bound(&value, text);
            rulefilter::compile::compile(value, &source.environment(env())).map(drop).map_err(|e| e.to_string())
        }
        Err(error) => Err(error.into_errors().to_string()),
    };
    assert_eq!(tool, module, "the tool and the module disagree on {text:?}");
});

/// A text the pre-scan let through nests no deeper than the bound once parsed.
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
