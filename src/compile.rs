//! Turns a rules document into a [`RuleSet`], collecting every problem instead of stopping at the first.
//!
//! The same function runs inside `on_configure` and in native tests and tools, so a document that passes here
//! is exactly one the module accepts.

use std::collections::HashMap;

use serde_yaml::Value;

use crate::config::{ActionSpec, Document, HeaderEditsSpec, Integer, MatchFields, RespondSpec, RuleSpec};
use crate::error::{ConfigError, ConfigErrors, Phase, RuleLocation};
use crate::matcher::CompiledMatch;
use crate::ruleset::{Action, Condition, HeaderEdits, HeaderMap, LocalResponse, Rule, RuleSet, Slot, Test, View};

/// The only document version there is.
pub const DOCUMENT_VERSION: u64 = 1;

/// Parses a rules document, YAML or JSON (JSON is YAML), and compiles it.
///
/// An empty or blank text is a document without rules.
pub fn parse(text: &str) -> Result<RuleSet, ConfigErrors> {
    let value: Value = serde_yaml::from_str(text)
        .map_err(|e| ConfigErrors(vec![ConfigError::document("", format!("not valid YAML or JSON: {e}"))]))?;
    compile(value)
}

/// Compiles an already parsed document.
pub fn compile(document: Value) -> Result<RuleSet, ConfigErrors> {
    if document.is_null() {
        return Ok(RuleSet::default());
    }
    let document: Document = serde_path_to_error::deserialize(document)
        .map_err(|e| ConfigErrors(vec![ConfigError::document(field_path(e.path()), e.into_inner().to_string())]))?;
    let mut compiler = Compiler::default();
    if let Some(version) = document.version.filter(|v| *v != DOCUMENT_VERSION) {
        compiler.errors.push(ConfigError::document(
            "version",
            format!("unsupported version {version}; this filter reads version {DOCUMENT_VERSION}"),
        ));
    }
    let request_rules = compiler.rules(Phase::Request, document.request);
    let response_rules = compiler.rules(Phase::Response, document.response);
    if !compiler.errors.is_empty() {
        return Err(ConfigErrors(compiler.errors));
    }
    let mut carried_slots: Vec<usize> = Vec::new();
    for condition in response_rules.iter().flat_map(|rule| &rule.conditions) {
        let from_request = compiler.slots.get(condition.slot).is_some_and(|s| s.map == HeaderMap::Request);
        if from_request && !carried_slots.contains(&condition.slot) {
            carried_slots.push(condition.slot);
        }
    }
    Ok(RuleSet { request_rules, response_rules, slots: compiler.slots, carried_slots })
}

/// serde_path_to_error writes the root as "."; we write it as nothing.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." {
        String::new()
    } else {
        text
    }
}

#[derive(Default)]
struct Compiler {
    slots: Vec<Slot>,
    errors: Vec<ConfigError>,
    names: HashMap<String, RuleLocation>,
}

/// The errors found in one rule; each knows its field.
struct RuleErrors<'a> {
    location: &'a RuleLocation,
    found: Vec<ConfigError>,
}

impl RuleErrors<'_> {
    fn count(&self) -> usize {
        self.found.len()
    }

    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.found.push(ConfigError {
            rule: Some(self.location.clone()),
            field: field.into(),
            message: message.into(),
        });
    }
}

impl Compiler {
    fn rules(&mut self, phase: Phase, values: Vec<Value>) -> Vec<Rule> {
        values.into_iter().enumerate().filter_map(|(index, value)| self.rule(phase, index, value)).collect()
    }

    fn slot(&mut self, map: HeaderMap, name: &str) -> usize {
        if let Some(index) = self.slots.iter().position(|s| s.map == map && &*s.name == name) {
            return index;
        }
        self.slots.push(Slot { map, name: name.into() });
        self.slots.len() - 1
    }

    fn rule(&mut self, phase: Phase, index: usize, value: Value) -> Option<Rule> {
        let name = value.get("name").and_then(Value::as_str).map(str::to_owned);
        let location = RuleLocation { phase, index, name };
        let spec = match serde_path_to_error::deserialize::<_, RuleSpec>(value) {
            Ok(spec) => spec,
            Err(e) => {
                let field = field_path(e.path());
                self.errors.push(ConfigError { rule: Some(location), field, message: e.into_inner().to_string() });
                return None;
            }
        };
        let mut errors = RuleErrors { location: &location, found: Vec::new() };
        check_rule_name(&spec.name, &mut errors);
        if let Some(first) = self.names.get(&spec.name) {
            errors.push("name", format!("duplicate name; {}[{}] already uses it", first.phase.key(), first.index));
        } else {
            self.names.insert(spec.name.clone(), location.clone());
        }
        let conditions = self.conditions(phase, &spec, &mut errors);
        let actions = compile_actions(phase, &spec.actions, &mut errors);
        if !errors.found.is_empty() {
            self.errors.append(&mut errors.found);
            return None;
        }
        let defers_response_edits =
            phase == Phase::Request && actions.iter().any(|a| matches!(a, Action::ResponseHeaders(_)));
        Some(Rule { name: spec.name.into(), conditions, actions, stop: spec.stop, defers_response_edits })
    }

    fn conditions(&mut self, phase: Phase, spec: &RuleSpec, errors: &mut RuleErrors) -> Vec<Condition> {
        let when = &spec.conditions;
        let mut conditions = Vec::new();
        if let Some(path) = &when.path {
            if let Some(test) = string_test(&path.0, false, "match.path", errors) {
                let slot = self.slot(HeaderMap::Request, ":path");
                conditions.push(Condition { slot, view: View::PathOnly, test });
            }
        }
        if let Some(methods) = &when.method {
            let mut allowed = Vec::new();
            for (i, method) in methods.0.iter().enumerate() {
                if is_token(method) {
                    allowed.push(method.as_str().into());
                } else {
                    errors.push(format!("match.method[{i}]"), format!("{method:?} is not an HTTP method"));
                }
            }
            let slot = self.slot(HeaderMap::Request, ":method");
            conditions.push(Condition { slot, view: View::Whole, test: Test::OneOf(allowed) });
        }
        if let Some(host) = &when.host {
            // Host names are case-insensitive; a pattern with a port compares the whole authority.
            let mut fields = host.0.clone();
            fields.ignore_case = true;
            let with_port = [&fields.exact, &fields.prefix, &fields.suffix, &fields.contains, &fields.regex]
                .into_iter()
                .flatten()
                .any(|s| s.contains(':'));
            if let Some(test) = string_test(&fields, false, "match.host", errors) {
                let slot = self.slot(HeaderMap::Request, ":authority");
                let view = if with_port { View::Whole } else { View::HostOnly };
                conditions.push(Condition { slot, view, test });
            }
        }
        for (name, fields) in &when.headers {
            let field = format!("match.headers.{name}");
            if let Some(name) = header_name(name, true, &field, errors) {
                if let Some(test) = string_test(&fields.0, true, &field, errors) {
                    let slot = self.slot(HeaderMap::Request, &name);
                    conditions.push(Condition { slot, view: View::Whole, test });
                }
            }
        }
        let response_only = phase == Phase::Request;
        if let Some(codes) = &when.status {
            if response_only {
                errors.push(
                    "match.status",
                    "the status is only known in the response phase; put this rule under `response`",
                );
            }
            let mut allowed = Vec::new();
            for (i, code) in codes.0.iter().enumerate() {
                match status_code(*code, 100) {
                    Some(code) => allowed.push(code.to_string().into()),
                    None => {
                        errors.push(format!("match.status[{i}]"), format!("{} is not an HTTP status (100-599)", code.0))
                    }
                }
            }
            let slot = self.slot(HeaderMap::Response, ":status");
            conditions.push(Condition { slot, view: View::Whole, test: Test::OneOf(allowed) });
        }
        for (name, fields) in &when.response_headers {
            let field = format!("match.response_headers.{name}");
            if response_only {
                errors.push(
                    field.clone(),
                    "response headers are only known in the response phase; put this rule under `response`",
                );
            }
            if let Some(name) = header_name(name, true, &field, errors) {
                if let Some(test) = string_test(&fields.0, true, &field, errors) {
                    let slot = self.slot(HeaderMap::Response, &name);
                    conditions.push(Condition { slot, view: View::Whole, test });
                }
            }
        }
        conditions
    }
}

fn check_rule_name(name: &str, errors: &mut RuleErrors) {
    let well_formed = name.len() <= 100
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !well_formed {
        errors.push(
            "name",
            "a name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (it labels logs and metrics)",
        );
    }
}

/// Compiles a value condition; `None` after recording the reason.
fn string_test(fields: &MatchFields, allow_presence: bool, field: &str, errors: &mut RuleErrors) -> Option<Test> {
    let operators: Vec<&str> = [
        ("exact", fields.exact.is_some()),
        ("prefix", fields.prefix.is_some()),
        ("suffix", fields.suffix.is_some()),
        ("contains", fields.contains.is_some()),
        ("regex", fields.regex.is_some()),
        ("present", fields.present.is_some()),
        ("absent", fields.absent.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    let choices = if allow_presence {
        "exact, prefix, suffix, contains, regex, present or absent"
    } else {
        "exact, prefix, suffix, contains or regex"
    };
    match operators.as_slice() {
        [] => {
            errors.push(field, format!("give one of {choices}"));
            return None;
        }
        [_] => {}
        [first, second, ..] => {
            errors.push(field, format!("give only one of {choices}; found both {first} and {second}"));
            return None;
        }
    }
    if !allow_presence && (fields.present.is_some() || fields.absent.is_some()) {
        let key = if fields.present.is_some() { "present" } else { "absent" };
        errors.push(format!("{field}.{key}"), "only header conditions can test presence");
        return None;
    }
    let ic = fields.ignore_case;
    let test = match fields {
        MatchFields { exact: Some(v), .. } => Test::Matches(CompiledMatch::exact(v, ic)),
        MatchFields { prefix: Some(v), .. } => Test::Matches(CompiledMatch::prefix(v, ic)),
        MatchFields { suffix: Some(v), .. } => Test::Matches(CompiledMatch::suffix(v, ic)),
        MatchFields { contains: Some(v), .. } => Test::Matches(CompiledMatch::contains(v, ic)),
        MatchFields { regex: Some(pattern), .. } => match CompiledMatch::regex(pattern, ic) {
            Ok(m) => Test::Matches(m),
            Err(reason) => {
                errors.push(format!("{field}.regex"), format!("invalid regex: {reason}"));
                return None;
            }
        },
        MatchFields { present: Some(want), .. } => Test::Present(*want),
        MatchFields { absent: Some(not_wanted), .. } => Test::Present(!*not_wanted),
        _ => return None,
    };
    Some(test)
}

fn compile_actions(phase: Phase, specs: &[ActionSpec], errors: &mut RuleErrors) -> Vec<Action> {
    if specs.is_empty() {
        errors.push("actions", "a rule needs at least one action");
    }
    let mut actions = Vec::with_capacity(specs.len());
    let mut responded_at = None;
    for (i, spec) in specs.iter().enumerate() {
        if let Some(at) = responded_at {
            errors.push(format!("actions[{i}]"), format!("never runs: `respond` at actions[{at}] ends the phase"));
        }
        let action = match spec {
            ActionSpec::RequestHeaders(edits) => {
                let field = format!("actions[{i}].request_headers");
                if phase == Phase::Response {
                    errors.push(field.clone(), "the request has already gone upstream in the response phase");
                }
                header_edits(edits, &field, errors).map(Action::RequestHeaders)
            }
            ActionSpec::ResponseHeaders(edits) => {
                header_edits(edits, &format!("actions[{i}].response_headers"), errors).map(Action::ResponseHeaders)
            }
            ActionSpec::Respond(respond) => {
                responded_at = Some(i);
                local_response(respond, &format!("actions[{i}].respond"), errors).map(Action::Respond)
            }
        };
        actions.extend(action);
    }
    actions
}

fn header_edits(spec: &HeaderEditsSpec, field: &str, errors: &mut RuleErrors) -> Option<HeaderEdits> {
    let before = errors.count();
    let set = header_pairs(spec.set.iter(), &format!("{field}.set"), errors);
    let add = header_pairs(spec.add.iter(), &format!("{field}.add"), errors);
    let mut remove: Vec<Box<str>> = Vec::new();
    for (i, name) in spec.remove.iter().enumerate() {
        let at = format!("{field}.remove[{i}]");
        if let Some(name) = header_name(name, false, &at, errors) {
            if set.iter().chain(&add).any(|(n, _)| **n == *name) {
                errors.push(at, format!("{name:?} is also set or added by this action; removing it undoes that"));
            }
            remove.push(name.into());
        }
    }
    if set.is_empty() && add.is_empty() && remove.is_empty() && errors.count() == before {
        errors.push(field, "give at least one of set, add or remove");
    }
    (errors.count() == before).then_some(HeaderEdits { set, add, remove })
}

fn header_pairs<'a>(
    pairs: impl Iterator<Item = (&'a String, &'a String)>,
    field: &str,
    errors: &mut RuleErrors,
) -> Vec<(Box<str>, Box<str>)> {
    let mut out: Vec<(Box<str>, Box<str>)> = Vec::new();
    for (name, value) in pairs {
        let at = format!("{field}.{name}");
        let Some(lower) = header_name(name, false, &at, errors) else { continue };
        if out.iter().any(|(n, _)| **n == *lower) {
            errors.push(at, "given twice (header names are case-insensitive)");
            continue;
        }
        if !is_header_value(value) {
            errors.push(at, "header values cannot contain CR, LF or NUL");
            continue;
        }
        out.push((lower.into(), value.as_str().into()));
    }
    out
}

fn local_response(spec: &RespondSpec, field: &str, errors: &mut RuleErrors) -> Option<LocalResponse> {
    let before = errors.count();
    let status = status_code(spec.status, 200);
    if status.is_none() {
        errors.push(format!("{field}.status"), format!("{} is not a final HTTP status (200-599)", spec.status.0));
    }
    let headers = header_pairs(spec.headers.iter(), &format!("{field}.headers"), errors);
    let status = status?;
    (errors.count() == before).then(|| LocalResponse { status, headers, body: spec.body.as_str().into() })
}

fn status_code(code: Integer, lowest: u64) -> Option<u16> {
    if (lowest..=599).contains(&code.0) {
        u16::try_from(code.0).ok()
    } else {
        None
    }
}

/// Lower-cases a header name after checking it is an RFC 9110 token; pseudo-headers (`:path`) only where
/// `allow_pseudo` (conditions may read them, edits may not write them).
fn header_name(name: &str, allow_pseudo: bool, field: &str, errors: &mut RuleErrors) -> Option<String> {
    let (pseudo, token) = match name.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if pseudo && !allow_pseudo {
        errors.push(field, format!("{name:?} is a pseudo-header; it cannot be edited here"));
        return None;
    }
    if !is_token(token) {
        errors.push(field, format!("{name:?} is not a valid header name"));
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// RFC 9110 `token`: what header names and methods are made of.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A value that cannot split or end a header line.
pub(crate) fn is_header_value(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}
