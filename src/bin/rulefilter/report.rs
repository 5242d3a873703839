//! Problems found in files, told the way editors and CI read them: `file:line:column: what`, or JSON.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::Path;

use rulefilter::input::{self, Item, RulesSource, SyntaxError};
use rulefilter::locate::{Position, SourceMap};
use rulefilter::{ConfigError, RuleSet};
use serde_json::{json, Value};

/// The first rules document of a file's `text` (the file itself, or its first WasmPlugin), judged with `env`
/// on top of its own; `None` when the file holds none. Errors are placed in the file.
pub fn compile_first(
    path: &Path,
    text: &str,
    env: &HashMap<String, String>,
) -> Option<Result<(RulesSource, RuleSet), Vec<Problem>>> {
    let items = match input::read(text) {
        Ok(items) => items,
        Err(error) => return Some(Err(vec![Problem::syntax(path, &error)])),
    };
    let Some(Item::Rules(source)) = items.into_iter().find(|i| matches!(i, Item::Rules(_))) else { return None };
    let map = OnceCell::new();
    Some(judge(path, text, &map, &source, env).map(|rules| (source, rules)))
}

/// The module's verdict on `source` ([`rulefilter::document::load`], as its two steps), each problem placed in
/// the file's `text` through `map` (made only when there is a problem).
pub fn judge(
    path: &Path,
    text: &str,
    map: &OnceCell<SourceMap>,
    source: &RulesSource,
    env: &HashMap<String, String>,
) -> Result<RuleSet, Vec<Problem>> {
    let document = source.read().map_err(|error| {
        // A rules document's text is the file's own; a manifest's is JSON made from it: point at pluginConfig.
        let position = match (&source.manifest, error.position) {
            (None, at) => at.map(|(line, column)| Position { line, column }),
            (Some(_), _) => map.get_or_init(|| SourceMap::new(text)).find(source.index, source.prefix),
        };
        let mut problem = Problem::file(path, position, error.message);
        problem.manifest = source.manifest.clone();
        vec![problem]
    })?;
    rulefilter::compile::compile(&document, &source.environment(env)).map_err(|errors| {
        let map = map.get_or_init(|| SourceMap::new(text));
        let mut problems: Vec<Problem> = errors.0.into_iter().map(|e| Problem::config(path, map, source, e)).collect();
        // In the file's order: the module reads istiod's JSON, whose keys come sorted.
        problems.sort_by_key(|p| p.position.map(|at| (at.line, at.column)));
        problems
    })
}

/// One problem, located.
pub struct Problem {
    pub file: String,
    pub position: Option<Position>,
    /// `WasmPlugin namespace/name` when the rules came from a manifest.
    pub manifest: Option<String>,
    /// The configuration error, or `None` for a problem with the file as a whole.
    pub error: Option<ConfigError>,
    pub message: String,
}

impl Problem {
    /// A file that could not be read or parsed.
    pub fn file(file: &Path, position: Option<Position>, message: impl Into<String>) -> Problem {
        Problem { file: file.display().to_string(), position, manifest: None, error: None, message: message.into() }
    }

    /// A WasmPlugin whose pluginConfig cannot be handed over as JSON.
    pub fn syntax(file: &Path, error: &SyntaxError) -> Problem {
        Problem::file(file, error.position, error.message.clone())
    }

    /// A compile error of `source`, located in the file through `map`.
    pub fn config(file: &Path, map: &SourceMap, source: &RulesSource, error: ConfigError) -> Problem {
        let position = map.find(source.index, &source.path(&error.path()));
        Problem {
            file: file.display().to_string(),
            position,
            manifest: source.manifest.clone(),
            message: error.to_string(),
            error: Some(error),
        }
    }

    /// `file:line:column: [WasmPlugin ns/name: ]message`, then the hint on its own line.
    pub fn text(&self) -> String {
        let mut out = self.file.clone();
        if let Some(at) = self.position {
            out.push_str(&format!(":{}:{}", at.line, at.column));
        }
        out.push_str(": ");
        if let Some(manifest) = &self.manifest {
            out.push_str(&format!("{manifest}: "));
        }
        out.push_str(&self.message);
        if let Some(hint) = self.error.as_ref().and_then(ConfigError::hint) {
            out.push_str(&format!("\n  hint: {hint}"));
        }
        out
    }

    pub fn json(&self) -> Value {
        let rule = self.error.as_ref().and_then(|e| e.rule.as_ref());
        json!({
            "file": self.file,
            "line": self.position.map(|p| p.line),
            "column": self.position.map(|p| p.column),
            "manifest": self.manifest,
            "phase": rule.map(|r| r.phase.key()),
            "rule_index": rule.map(|r| r.index),
            "rule": rule.and_then(|r| r.name.clone()),
            "field": self.error.as_ref().map(|e| e.field.clone()),
            "message": self.error.as_ref().map_or_else(|| self.message.clone(), |e| e.message.clone()),
            "hint": self.error.as_ref().and_then(ConfigError::hint),
        })
    }
}
