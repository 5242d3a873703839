//! Turns a rules document into a [`RuleSet`], collecting every problem instead of stopping at the first.
//!
//! The same function runs inside `on_configure` and in native tests and tools, so a document that passes here
//! is exactly one the module accepts.

mod actions;
mod answers;
mod attributes;
mod body;
mod conditions;
mod credentials;
mod paths;
mod ratelimit;
mod sampling;
mod templates;

pub use templates::KNOWN_REFERENCES;

use templates::attach_captures;

use std::collections::HashMap;

use crate::config::{Document, Mode, RuleSpec};
use crate::error::{explain_shape, ConfigError, ConfigErrors, Phase, RuleLocation};
use crate::fields;
use crate::index::PhaseIndex;
use crate::json::Json;
use crate::reserved::{self, Edit};
use crate::ruleset::{CaptureBinding, HeaderMap, Rule, RuleSet, Slot};

/// The only document version there is.
pub const DOCUMENT_VERSION: u64 = 1;

pub use crate::limits::MAX_NESTING;
use crate::limits::{MAX_ACTIONS, MAX_RULES};

/// The plugin's environment variables (`vmConfig.env`), read by `${env.NAME}` at compile time.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment: inside Envoy, the plugin's `vmConfig.env` (WASI environment variables).
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Reads a rules document, YAML or JSON, as the tools do ([`crate::yaml_document::load`]: YAML reaches the
/// module as istiod's JSON), and compiles it with the process environment.
///
/// An empty or blank text is a document without rules.
#[cfg(not(target_arch = "wasm32"))]
pub fn parse(text: &str) -> Result<RuleSet, ConfigErrors> {
    parse_with_env(text, &ProcessEnvironment)
}

/// [`parse`] with the environment `${env.…}` references are resolved in.
#[cfg(not(target_arch = "wasm32"))]
pub fn parse_with_env(text: &str, env: &dyn Environment) -> Result<RuleSet, ConfigErrors> {
    crate::yaml_document::load(text, env)
}

/// Compiles a document read by [`crate::document::read`]. Every problem is reported: the document's own
/// fields and each rule are read on their own ([`crate::fields::decode`]), so one wrong field hides no other.
pub fn compile(json: &Json, env: &dyn Environment) -> Result<RuleSet, ConfigErrors> {
    if json.is_null() {
        return Ok(RuleSet::default());
    }
    let (document, problems) = fields::decode::<Document>(json);
    let errors: Vec<ConfigError> = problems
        .into_iter()
        .map(|problem| ConfigError::document(problem.field, explain_shape(problem.message)))
        .collect();
    let Some(document) = document else { return Err(ConfigErrors(errors)) };
    let mut compiler = Compiler {
        slots: Vec::new(),
        carried: Vec::new(),
        errors,
        names: HashMap::new(),
        env,
        dry_run: document.mode == Mode::DryRun,
        credential_conditions: Vec::new(),
    };
    if let Some(version) = document.version.filter(|v| *v != DOCUMENT_VERSION) {
        compiler.errors.push(ConfigError::document(
            "version",
            format!("unsupported version {version}; this filter reads version {DOCUMENT_VERSION}"),
        ));
    }
    let log_level = document.log_level.as_deref().and_then(|text| match log_level(text) {
        Ok(level) => Some(level),
        Err(message) => {
            compiler.errors.push(ConfigError::document("log_level", message));
            None
        }
    });
    let debug_header = document.debug_header.and_then(|name| match debug_header(&name) {
        Ok(name) => Some(name.into()),
        Err(message) => {
            compiler.errors.push(ConfigError::document("debug_header", message));
            None
        }
    });
    let rule_count = document.request.len() + document.response.len();
    if rule_count > MAX_RULES {
        let message =
            format!("{rule_count} rules; a document holds at most {MAX_RULES} (request and response together)");
        compiler.errors.push(ConfigError::document("", message));
        return Err(ConfigErrors(compiler.errors));
    }
    let mut request_rules = compiler.rules(Phase::Request, document.request.rules(json, "request"));
    let mut response_rules = compiler.rules(Phase::Response, document.response.rules(json, "response"));
    if !compiler.errors.is_empty() {
        return Err(ConfigErrors(compiler.errors));
    }
    crate::metrics::assign_counters(&mut request_rules, &mut response_rules);
    let mut rules = RuleSet {
        request_index: PhaseIndex::build(&request_rules),
        response_index: PhaseIndex::build(&response_rules),
        request_rules,
        response_rules,
        slots: compiler.slots,
        carried_slots: compiler.carried,
        log_level,
        debug_header,
        carries: false,
        carried_names: Vec::new(),
    };
    rules.resolve_write_slots();
    Ok(rules)
}

struct Compiler<'e> {
    slots: Vec<Slot>,
    /// Request-phase slots that response rules read.
    carried: Vec<usize>,
    errors: Vec<ConfigError>,
    names: HashMap<String, RuleLocation>,
    env: &'e dyn Environment,
    /// The document is in dry-run mode: so is every rule.
    dry_run: bool,
    /// The `api_key` and `basic_auth` conditions, in the order written (see `credentials.rs`).
    credential_conditions: Vec<credentials::Written>,
}

/// What is known while one rule compiles.
struct RuleContext<'a> {
    phase: Phase,
    location: &'a RuleLocation,
    found: Vec<ConfigError>,
    /// Regex conditions whose groups templates may use, by regex id.
    regexes: Vec<CapturableRegex>,
    /// Capture bindings per regex id, filled as templates reference them.
    bindings: Vec<Vec<CaptureBinding>>,
    capture_cells: usize,
    /// Whether the conditions being compiled sit under a `not` (their captures never hold a value).
    under_not: bool,
    /// Slots this rule's conditions and templates read, for carrying request values into the response phase.
    slots_read: Vec<usize>,
}

struct CapturableRegex {
    group_names: Vec<Option<String>>,
    under_not: bool,
    field: String,
}

impl RuleContext<'_> {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.found.push(ConfigError {
            rule: Some(self.location.clone()),
            field: field.into(),
            message: message.into(),
        });
    }

    fn error_count(&self) -> usize {
        self.found.len()
    }
}

impl Compiler<'_> {
    fn rules(&mut self, phase: Phase, values: &[Json]) -> Vec<Rule> {
        values.iter().enumerate().filter_map(|(index, value)| self.rule(phase, index, value)).collect()
    }

    fn slot(&mut self, slot: Slot, ctx: &mut RuleContext) -> usize {
        let index = match self.slots.iter().position(|s| *s == slot) {
            Some(index) => index,
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        if !ctx.slots_read.contains(&index) {
            ctx.slots_read.push(index);
        }
        index
    }

    fn request_header(&mut self, name: &str, ctx: &mut RuleContext) -> usize {
        self.slot(Slot::Header(HeaderMap::Request, name.into()), ctx)
    }

    fn rule(&mut self, phase: Phase, index: usize, value: &Json) -> Option<Rule> {
        let name = value.get("name").and_then(Json::as_str).map(str::to_owned);
        let location = RuleLocation { phase, index, name };
        // A rule with fields of the wrong shape is not compiled further: what its checks would say about the
        // fields left (a `location` missing because `locaton` was skipped) could mislead.
        let spec = match fields::decode::<RuleSpec>(value) {
            (Some(spec), problems) if problems.is_empty() => spec,
            (_, problems) => {
                self.errors.extend(problems.into_iter().map(|problem| ConfigError {
                    rule: Some(location.clone()),
                    field: problem.field,
                    message: explain_shape(problem.message),
                }));
                return None;
            }
        };
        let mut ctx = RuleContext {
            phase,
            location: &location,
            found: Vec::new(),
            regexes: Vec::new(),
            bindings: Vec::new(),
            capture_cells: 0,
            under_not: false,
            slots_read: Vec::new(),
        };
        check_rule_name(&spec.name, &mut ctx);
        if let Some(first) = self.names.get(&spec.name) {
            let message = format!(
                "duplicate name; {}[{}] already uses it: give each rule a name of its own",
                first.phase.key(),
                first.index
            );
            ctx.error("name", message);
        } else {
            self.names.insert(spec.name.clone(), location.clone());
        }
        let mut when = self.block(&spec.conditions, "match", 0, &mut ctx);
        if spec.actions.len() > MAX_ACTIONS {
            ctx.error(
                "actions",
                format!("{} actions; a rule has at most {MAX_ACTIONS}: split it into two rules", spec.actions.len()),
            );
        }
        let actions = self.actions(&spec.actions, &mut ctx);
        let body = self.rule_body(&spec, &mut ctx);
        if let Some(expr) = &mut when {
            attach_captures(expr, &mut ctx.bindings);
        }
        if !ctx.found.is_empty() {
            self.errors.append(&mut ctx.found);
            return None;
        }
        if phase == Phase::Response {
            self.carry(&ctx.slots_read);
        }
        let dry_run = self.dry_run || spec.mode == Mode::DryRun;
        Some(Rule {
            name: spec.name.into(),
            when,
            actions,
            stop: spec.stop,
            dry_run,
            capture_cells: ctx.capture_cells,
            counter_base: 0,
            body,
        })
    }

    /// Marks request-phase slots a response rule reads, so the request phase keeps them.
    fn carry(&mut self, slots: &[usize]) {
        for &slot in slots {
            let from_request = self.slots.get(slot).is_some_and(|s| s.phase() == Phase::Request);
            if from_request && !self.carried.contains(&slot) {
                self.carried.push(slot);
            }
        }
    }
}

fn check_rule_name(name: &str, ctx: &mut RuleContext) {
    let well_formed = name.len() <= 100
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !well_formed {
        ctx.error(
            "name",
            "a name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (it labels logs and metrics)",
        );
    }
}

/// A level as documents write it.
fn log_level(text: &str) -> Result<log::Level, String> {
    match text {
        "trace" => Ok(log::Level::Trace),
        "debug" => Ok(log::Level::Debug),
        "info" => Ok(log::Level::Info),
        "warn" => Ok(log::Level::Warn),
        "error" => Ok(log::Level::Error),
        other => Err(format!("{other:?} is not one of trace, debug, info, warn, error")),
    }
}

/// Lower-cases a header name after checking it is an RFC 9110 token, or a pseudo-header (`:path`) made of one.
/// Reading any is fine; what edits may touch is [`edited_header`]'s judgement.
fn header_name(name: &str, field: &str, ctx: &mut RuleContext) -> Option<String> {
    let token = name.strip_prefix(':').unwrap_or(name);
    if !is_token(token) {
        ctx.error(field, format!("{name:?} is not a valid header name (a token: letters, digits and {TOKEN_SYMBOLS})"));
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// [`header_name`] for a header read from the request, refusing one Envoy never has there.
fn request_header_name(name: &str, field: &str, ctx: &mut RuleContext) -> Option<String> {
    let lower = header_name(name, field, ctx)?;
    match reserved::unreadable(&lower, HeaderMap::Request) {
        Some(message) => {
            ctx.error(field, message);
            None
        }
        None => Some(lower),
    }
}

/// Lower-cases the name of a header an action writes or removes in `map`, after checking it is a header name
/// and one rules may edit that way ([`reserved`]).
fn edited_header(name: &str, map: HeaderMap, edit: Edit, field: &str, ctx: &mut RuleContext) -> Option<String> {
    let lower = header_name(name, field, ctx)?;
    match reserved::refusal(&lower, map, edit) {
        Some(message) => {
            ctx.error(field, message);
            None
        }
        None => Some(lower),
    }
}

/// The `debug_header` name, lower-cased: a plain header a response may carry.
fn debug_header(name: &str) -> Result<String, String> {
    if !is_token(name) {
        return Err(format!("{name:?} is not a valid header name (a token: letters, digits and {TOKEN_SYMBOLS})"));
    }
    let name = name.to_ascii_lowercase();
    if let Some(message) = reserved::refusal(&name, HeaderMap::Response, Edit::Write) {
        return Err(message);
    }
    if matches!(name.as_str(), "content-type" | "location") {
        return Err(format!(
            "{name:?} means something to clients; pick a name of your own, such as x-rulefilter-matched"
        ));
    }
    Ok(name)
}

/// The symbols an RFC 9110 token may hold besides letters and digits, as messages list them.
const TOKEN_SYMBOLS: &str = "!#$%&'*+-.^_`|~";

/// What a header value must be, as messages say it.
const HEADER_VALUE_RULE: &str = "header values cannot contain CR, LF or NUL; write the value on one line";

/// RFC 9110 `token`: what header names and methods are made of.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A value that cannot split or end a header line.
pub(crate) fn is_header_value(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}
