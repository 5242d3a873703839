//! Turns a rules document into a [`RuleSet`], collecting every problem instead of stopping at the first.
//!
//! The same function runs inside `on_configure` and in native tests and tools, so a document that passes here
//! is exactly one the module accepts.

use std::collections::HashMap;

use regex::Regex;
use serde_yaml::Value;

use crate::cidr::Cidr;
use crate::config::{
    ActionSpec, Document, FromTo, HeaderEditsSpec, Integer, LogSpec, MatchFields, MatchSpec, Mode, QueryEditsSpec,
    RedirectSpec, RespondSpec, RewriteSpec, RuleSpec, SourceSpec, StatusSpec, StringMatchSpec,
};
use crate::error::{explain_shape, ConfigError, ConfigErrors, Phase, RuleLocation};
use crate::index::PhaseIndex;
use crate::matcher::CompiledMatch;
use crate::reserved::{self, bodiless_status, Edit};
use crate::ruleset::{
    Action, CaptureBinding, Condition, Expr, Group, HeaderEdits, HeaderMap, LocalResponse, PathRewrite, Piece,
    QueryEdits, Redirect, RedirectTarget, Rewrite, Rule, RuleSet, Slot, Template, Test, UrlSlots, View,
};
use crate::template::{self, Segment};

/// The only document version there is.
pub const DOCUMENT_VERSION: u64 = 1;

pub use crate::limits::MAX_NESTING;
use crate::limits::{MAX_ACTIONS, MAX_BODY_BYTES, MAX_RULES, MAX_TEMPLATE_BYTES};

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

/// Parses a rules document, YAML or JSON (JSON is YAML), and compiles it with the process environment.
///
/// An empty or blank text is a document without rules.
pub fn parse(text: &str) -> Result<RuleSet, ConfigErrors> {
    parse_with_env(text, &ProcessEnvironment)
}

/// [`parse`] with the environment `${env.…}` references are resolved in: [`crate::document::load`].
pub fn parse_with_env(text: &str, env: &dyn Environment) -> Result<RuleSet, ConfigErrors> {
    crate::document::load(text, env)
}

/// Compiles an already parsed document.
pub fn compile(document: Value, env: &dyn Environment) -> Result<RuleSet, ConfigErrors> {
    if document.is_null() {
        return Ok(RuleSet::default());
    }
    let document: Document = serde_path_to_error::deserialize(document).map_err(|e| {
        ConfigErrors(vec![ConfigError::document(field_path(e.path()), explain_shape(e.into_inner().to_string()))])
    })?;
    let mut compiler = Compiler {
        slots: Vec::new(),
        carried: Vec::new(),
        errors: Vec::new(),
        names: HashMap::new(),
        env,
        dry_run: document.mode == Mode::DryRun,
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
        return Err(ConfigErrors(vec![ConfigError::document("", message)]));
    }
    let mut request_rules = compiler.rules(Phase::Request, document.request);
    let mut response_rules = compiler.rules(Phase::Response, document.response);
    if !compiler.errors.is_empty() {
        return Err(ConfigErrors(compiler.errors));
    }
    crate::metrics::assign_counters(&mut request_rules, &mut response_rules);
    Ok(RuleSet {
        request_index: PhaseIndex::build(&request_rules),
        response_index: PhaseIndex::build(&response_rules),
        request_rules,
        response_rules,
        slots: compiler.slots,
        carried_slots: compiler.carried,
        log_level,
        debug_header,
    })
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

struct Compiler<'e> {
    slots: Vec<Slot>,
    /// Request-phase slots that response rules read.
    carried: Vec<usize>,
    errors: Vec<ConfigError>,
    names: HashMap<String, RuleLocation>,
    env: &'e dyn Environment,
    /// The document is in dry-run mode: so is every rule.
    dry_run: bool,
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
    fn rules(&mut self, phase: Phase, values: Vec<Value>) -> Vec<Rule> {
        values.into_iter().enumerate().filter_map(|(index, value)| self.rule(phase, index, value)).collect()
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

    fn rule(&mut self, phase: Phase, index: usize, value: Value) -> Option<Rule> {
        let name = value.get("name").and_then(Value::as_str).map(str::to_owned);
        let location = RuleLocation { phase, index, name };
        let spec = match serde_path_to_error::deserialize::<_, RuleSpec>(value) {
            Ok(spec) => spec,
            Err(e) => {
                let field = field_path(e.path());
                let message = explain_shape(e.into_inner().to_string());
                self.errors.push(ConfigError { rule: Some(location), field, message });
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

    // ----- conditions -----

    /// Compiles one match block: its fields are ANDed. `None` for an empty block (matches everything).
    fn block(&mut self, spec: &MatchSpec, field: &str, depth: usize, ctx: &mut RuleContext) -> Option<Expr> {
        if depth > MAX_NESTING {
            ctx.error(field, format!("blocks nest more than {MAX_NESTING} deep; flatten the nested all/any/not"));
            return None;
        }
        let mut all = Vec::new();
        if let Some(path) = &spec.path {
            let slot = self.request_header(":path", ctx);
            all.extend(self.string_condition(
                &path.0,
                slot,
                View::PathOnly,
                Operand::Path,
                &format!("{field}.path"),
                ctx,
            ));
        }
        if let Some(methods) = &spec.method {
            let slot = self.request_header(":method", ctx);
            let at = format!("{field}.method");
            let values = tokens(&methods.0, &at, "an HTTP method (a token such as GET)", ctx);
            let wanted = one_of(&values);
            all.push(leaf(at, wanted, slot, View::Whole, Test::OneOf { values, ignore_case: false }));
        }
        if let Some(schemes) = &spec.scheme {
            let slot = self.request_header(":scheme", ctx);
            let at = format!("{field}.scheme");
            let values = tokens(&schemes.0, &at, "a URL scheme (http or https)", ctx);
            let wanted = one_of(&values);
            all.push(leaf(at, wanted, slot, View::Whole, Test::OneOf { values, ignore_case: true }));
        }
        if let Some(hosts) = &spec.host {
            let slot = self.request_header(":authority", ctx);
            let mut any = Vec::new();
            for (i, host) in hosts.0.iter().enumerate() {
                let at = if hosts.0.len() == 1 { format!("{field}.host") } else { format!("{field}.host[{i}]") };
                any.extend(self.host_condition(host, slot, &at, ctx));
            }
            all.push(one_or_any(format!("{field}.host"), any));
        }
        for (name, test) in &spec.headers {
            let at = format!("{field}.headers.{name}");
            if let Some(name) = request_header_name(name, &at, ctx) {
                let slot = self.request_header(&name, ctx);
                all.extend(self.string_condition(&test.0, slot, View::Whole, Operand::Optional, &at, ctx));
            }
        }
        for (name, test) in &spec.query {
            let at = format!("{field}.query.{name}");
            if name.is_empty() {
                ctx.error(at.clone(), "a query parameter needs a name");
            }
            let slot = self.request_header(":path", ctx);
            let view = View::QueryParam(name.as_str().into());
            all.extend(self.string_condition(&test.0, slot, view, Operand::Optional, &at, ctx));
        }
        for (name, test) in &spec.cookies {
            let at = format!("{field}.cookies.{name}");
            if !is_token(name) {
                ctx.error(
                    at.clone(),
                    format!("{name:?} is not a valid cookie name (a token: letters, digits and {TOKEN_SYMBOLS})"),
                );
            }
            let slot = self.request_header("cookie", ctx);
            let view = View::Cookie(name.as_str().into());
            all.extend(self.string_condition(&test.0, slot, view, Operand::Optional, &at, ctx));
        }
        if let Some(source) = &spec.source {
            all.extend(self.source_condition(source, &format!("{field}.source"), ctx));
        }
        if let Some(statuses) = &spec.status {
            let at = format!("{field}.status");
            if ctx.phase == Phase::Request {
                ctx.error(at.clone(), "the status is only known in the response phase; put this rule under `response`");
            }
            let slot = self.slot(Slot::Header(HeaderMap::Response, ":status".into()), ctx);
            let mut ranges = Vec::new();
            for (i, status) in statuses.0.iter().enumerate() {
                let item = if statuses.0.len() == 1 { at.clone() } else { format!("{at}[{i}]") };
                match status_range(status) {
                    Ok(range) => ranges.push(range),
                    Err(message) => ctx.error(item, message),
                }
            }
            let written: Vec<String> = statuses.0.iter().map(StatusSpec::to_string).collect();
            all.push(leaf(at, one_of(&written), slot, View::Whole, Test::Status(ranges)));
        }
        for (name, test) in &spec.response_headers {
            let at = format!("{field}.response_headers.{name}");
            if ctx.phase == Phase::Request {
                let message = "response headers are only known in the response phase; put this rule under `response`";
                ctx.error(at.clone(), message);
            }
            if let Some(name) = header_name(name, &at, ctx) {
                let slot = self.slot(Slot::Header(HeaderMap::Response, name.into()), ctx);
                all.extend(self.string_condition(&test.0, slot, View::Whole, Operand::Optional, &at, ctx));
            }
        }
        if let Some(blocks) = &spec.all {
            let exprs = self.blocks(blocks, &format!("{field}.all"), depth, ctx);
            all.push(Expr::All(exprs));
        }
        if let Some(blocks) = &spec.any {
            if blocks.is_empty() {
                ctx.error(format!("{field}.any"), "`any` needs at least one block");
            }
            let at = format!("{field}.any");
            let exprs = self.blocks(blocks, &at, depth, ctx);
            all.push(Expr::Any { field: at.into(), exprs });
        }
        if let Some(block) = &spec.not {
            let at = format!("{field}.not");
            let before = ctx.error_count();
            ctx.under_not = !ctx.under_not;
            let inner = self.block(block, &at, depth + 1, ctx);
            ctx.under_not = !ctx.under_not;
            match inner {
                Some(expr) => all.push(Expr::Not { field: at.into(), inner: Box::new(expr) }),
                None if ctx.error_count() == before => {
                    ctx.error(at, "`not` of an empty block never matches; give it conditions");
                }
                None => {}
            }
        }
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Expr::All(all)),
        }
    }

    fn blocks(&mut self, blocks: &[MatchSpec], field: &str, depth: usize, ctx: &mut RuleContext) -> Vec<Expr> {
        let mut exprs = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let before = ctx.error_count();
            match self.block(block, &at, depth + 1, ctx) {
                Some(expr) => exprs.push(expr),
                None if ctx.error_count() == before => ctx.error(at, "an empty block; give it conditions"),
                None => {}
            }
        }
        exprs
    }

    fn string_condition(
        &mut self,
        fields: &MatchFields,
        slot: usize,
        view: View,
        operand: Operand,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<Expr> {
        let (test, regex_id) = string_test(fields, operand, field, ctx)?;
        Some(Expr::Leaf(Condition {
            field: field.into(),
            wanted: describe_test(fields).into(),
            slot,
            view,
            test,
            invert: fields.invert,
            regex_id,
            captures: Vec::new(),
        }))
    }

    fn host_condition(
        &mut self,
        host: &StringMatchSpec,
        slot: usize,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<Expr> {
        // Host names are case-insensitive; `*.example.com` is a wildcard; a pattern with a port compares the
        // whole authority.
        let mut fields = host.0.clone();
        fields.ignore_case = true;
        if let Some(wildcard) = fields.exact.as_deref().and_then(|e| e.strip_prefix('*')) {
            if !wildcard.starts_with('.') || wildcard.contains('*') {
                ctx.error(field, "a wildcard host is `*.` followed by a domain, e.g. `*.example.com`");
                return None;
            }
            fields.suffix = Some(wildcard.to_owned());
            fields.exact = None;
        }
        let with_port = [&fields.exact, &fields.prefix, &fields.suffix, &fields.contains, &fields.regex]
            .into_iter()
            .flatten()
            .any(|s| s.contains(':'));
        let view = if with_port { View::Whole } else { View::HostOnly };
        let mut expr = self.string_condition(&fields, slot, view, Operand::Host, field, ctx);
        if let Some(Expr::Leaf(condition)) = &mut expr {
            // Describe the test as written, before the wildcard became a suffix.
            condition.wanted = describe_test(&host.0).into();
        }
        expr
    }

    fn source_condition(&mut self, spec: &SourceSpec, field: &str, ctx: &mut RuleContext) -> Option<Expr> {
        let mut cidrs = Vec::new();
        for (i, text) in spec.cidrs.iter().enumerate() {
            match Cidr::parse(text) {
                Ok(cidr) => cidrs.push(cidr),
                Err(message) => ctx.error(format!("{field}.cidrs[{i}]"), message),
            }
        }
        if spec.cidrs.is_empty() {
            ctx.error(format!("{field}.cidrs"), "give at least one address or CIDR block");
        }
        let trusted_hops = spec.trusted_hops.map_or(0, |h| h.0);
        if trusted_hops > 16 {
            let message =
                format!("{trusted_hops} trusted proxies; trusted_hops is 0-16 (the proxies in front of this one)");
            ctx.error(format!("{field}.trusted_hops"), message);
        }
        let trusted_hops = usize::try_from(trusted_hops).unwrap_or(usize::MAX);
        let slot = self.slot(Slot::SourceAddress, ctx);
        let xff_slot = if trusted_hops > 0 { self.request_header("x-forwarded-for", ctx) } else { slot };
        let mut wanted = if spec.invert { "not in ".to_owned() } else { "in ".to_owned() };
        wanted.push_str(&spec.cidrs.join(", "));
        if trusted_hops > 0 {
            wanted.push_str(&format!(" (client taken {trusted_hops} from the right of x-forwarded-for)"));
        }
        let condition = Condition {
            field: field.into(),
            wanted: wanted.into(),
            slot,
            view: View::Client { xff_slot, trusted_hops },
            test: Test::Cidrs(cidrs),
            invert: spec.invert,
            regex_id: None,
            captures: Vec::new(),
        };
        Some(Expr::Leaf(condition))
    }

    // ----- actions -----

    fn actions(&mut self, specs: &[ActionSpec], ctx: &mut RuleContext) -> Vec<Action> {
        if specs.is_empty() {
            ctx.error("actions", "a rule needs at least one action");
        }
        let mut actions = Vec::with_capacity(specs.len());
        let mut ended_at: Option<(usize, &str)> = None;
        for (i, spec) in specs.iter().enumerate() {
            if let Some((at, name)) = ended_at {
                ctx.error(format!("actions[{i}]"), format!("never runs: `{name}` at actions[{at}] ends the phase"));
            }
            let request_only = |ctx: &mut RuleContext, field: &str, what: &str| {
                if ctx.phase == Phase::Response {
                    ctx.error(field, format!("{what} in the response phase: the request has already gone upstream; move this action to a request rule"));
                }
            };
            let action = match spec {
                ActionSpec::RequestHeaders(edits) => {
                    let field = format!("actions[{i}].request_headers");
                    request_only(ctx, &field, "cannot edit request headers");
                    self.header_edits(edits, HeaderMap::Request, &field, ctx).map(Action::RequestHeaders)
                }
                ActionSpec::ResponseHeaders(edits) => {
                    let field = format!("actions[{i}].response_headers");
                    self.header_edits(edits, HeaderMap::Response, &field, ctx).map(Action::ResponseHeaders)
                }
                ActionSpec::Respond(respond) => {
                    ended_at = Some((i, "respond"));
                    self.local_response(respond, &format!("actions[{i}].respond"), ctx).map(Action::Respond)
                }
                ActionSpec::Redirect(redirect) => {
                    ended_at = Some((i, "redirect"));
                    self.redirect(redirect, &format!("actions[{i}].redirect"), ctx).map(Action::Redirect)
                }
                ActionSpec::Rewrite(rewrite) => {
                    let field = format!("actions[{i}].rewrite");
                    request_only(ctx, &field, "cannot rewrite");
                    self.rewrite(rewrite, &field, ctx).map(Action::Rewrite)
                }
                ActionSpec::Query(edits) => {
                    let field = format!("actions[{i}].query");
                    request_only(ctx, &field, "cannot edit the query");
                    self.query_edits(edits, &field, ctx).map(Action::Query)
                }
                ActionSpec::Log(log) => self.log(log, &format!("actions[{i}].log"), ctx),
            };
            actions.extend(action);
        }
        actions
    }

    fn header_edits(
        &mut self,
        spec: &HeaderEditsSpec,
        map: HeaderMap,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<HeaderEdits> {
        let before = ctx.error_count();
        let copy = name_pairs(&spec.copy, Move::Copy, map, &format!("{field}.copy"), ctx);
        let rename = name_pairs(&spec.rename, Move::Rename, map, &format!("{field}.rename"), ctx);
        let set = self.templated_headers(&spec.set, map, &format!("{field}.set"), ctx);
        let set_if_absent = self.templated_headers(&spec.set_if_absent, map, &format!("{field}.set_if_absent"), ctx);
        let add = self.templated_headers(&spec.add, map, &format!("{field}.add"), ctx);
        let mut remove: Vec<Box<str>> = Vec::new();
        for (i, name) in spec.remove.iter().enumerate() {
            let at = format!("{field}.remove[{i}]");
            if let Some(name) = edited_header(name, map, Edit::Remove, &at, ctx) {
                let written = set.iter().chain(&set_if_absent).chain(&add).any(|(n, _)| **n == *name);
                if written {
                    ctx.error(
                        at,
                        format!(
                            "{name:?} is also written by this action; removing it undoes that: keep one of the two"
                        ),
                    );
                }
                remove.push(name.into());
            }
        }
        let mut remove_prefix: Vec<Box<str>> = Vec::new();
        for (i, prefix) in spec.remove_prefix.iter().enumerate() {
            let at = format!("{field}.remove_prefix[{i}]");
            if prefix.is_empty() || prefix.starts_with(':') || !is_token(prefix) {
                ctx.error(
                    at,
                    format!(
                        "{prefix:?} is not the start of a header name (letters, digits and {TOKEN_SYMBOLS}; no `:`)"
                    ),
                );
            } else {
                remove_prefix.push(prefix.to_ascii_lowercase().into());
            }
        }
        let mut remove_regex = Vec::new();
        for (i, pattern) in spec.remove_regex.iter().enumerate() {
            match anchored_regex(pattern, true) {
                Ok(regex) => remove_regex.push(regex),
                Err(reason) => ctx.error(format!("{field}.remove_regex[{i}]"), format!("invalid regex: {reason}")),
            }
        }
        let edits = HeaderEdits { copy, rename, set, set_if_absent, add, remove, remove_prefix, remove_regex };
        let empty = edits.copy.is_empty()
            && edits.rename.is_empty()
            && edits.set.is_empty()
            && edits.set_if_absent.is_empty()
            && edits.add.is_empty()
            && edits.remove.is_empty()
            && edits.remove_prefix.is_empty()
            && edits.remove_regex.is_empty();
        if empty && ctx.error_count() == before {
            ctx.error(
                field,
                "give at least one of copy, rename, set, set_if_absent, add, remove, remove_prefix, remove_regex",
            );
        }
        (ctx.error_count() == before).then_some(edits)
    }

    fn templated_headers(
        &mut self,
        pairs: &std::collections::BTreeMap<String, String>,
        map: HeaderMap,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Vec<(Box<str>, Template)> {
        let mut out: Vec<(Box<str>, Template)> = Vec::new();
        for (name, value) in pairs {
            let at = format!("{field}.{name}");
            let Some(lower) = edited_header(name, map, Edit::Write, &at, ctx) else { continue };
            if out.iter().any(|(n, _)| **n == *lower) {
                ctx.error(at, "given twice (header names are case-insensitive); keep one");
                continue;
            }
            if !is_header_value(value) {
                ctx.error(at, HEADER_VALUE_RULE);
                continue;
            }
            if let Some(template) = self.template(value, &at, ctx) {
                out.push((lower.into(), template));
            }
        }
        out
    }

    fn local_response(&mut self, spec: &RespondSpec, field: &str, ctx: &mut RuleContext) -> Option<LocalResponse> {
        let before = ctx.error_count();
        let status = status_code(spec.status, 200);
        if status.is_none() {
            ctx.error(format!("{field}.status"), format!("{} is not a final HTTP status (200-599)", spec.status.0));
        }
        let mut headers = self.templated_headers(&spec.headers, HeaderMap::Response, &format!("{field}.headers"), ctx);
        if let Some(content_type) = &spec.content_type {
            let at = format!("{field}.content_type");
            if headers.iter().any(|(n, _)| &**n == "content-type") {
                ctx.error(at, "also given in headers; keep one");
            } else if !is_header_value(content_type) {
                ctx.error(at, HEADER_VALUE_RULE);
            } else if let Some(template) = self.template(content_type, &at, ctx) {
                headers.push(("content-type".into(), template));
            }
        }
        if let Some(code) = status.filter(|code| bodiless_status(*code) && !spec.body.is_empty()) {
            let message = format!(
                "a {code} response has no body, yet Envoy would send this one and HTTP/1.1 clients would read it \
                 as the next response; remove `body` or answer 200"
            );
            ctx.error(format!("{field}.body"), message);
        }
        let body = self.sized_template(&spec.body, MAX_BODY_BYTES, &format!("{field}.body"), ctx);
        let (status, body) = (status?, body?);
        (ctx.error_count() == before).then_some(LocalResponse { status, headers, body })
    }

    fn url_slots(&mut self, ctx: &mut RuleContext) -> UrlSlots {
        UrlSlots {
            scheme: self.request_header(":scheme", ctx),
            authority: self.request_header(":authority", ctx),
            path: self.request_header(":path", ctx),
        }
    }

    fn redirect(&mut self, spec: &RedirectSpec, field: &str, ctx: &mut RuleContext) -> Option<Redirect> {
        let before = ctx.error_count();
        let status = spec.status.map_or(302, |s| s.0);
        if ![301, 302, 303, 307, 308].contains(&status) {
            ctx.error(
                format!("{field}.status"),
                format!("{status} is not a redirect status (301, 302, 303, 307, 308)"),
            );
        }
        let parts_given = spec.scheme.is_some()
            || spec.host.is_some()
            || spec.port.is_some()
            || spec.path.is_some()
            || spec.query.is_some();
        let target = match &spec.location {
            Some(_) if parts_given => {
                ctx.error(field, "give either `location` or the parts (scheme, host, port, path, query), not both");
                None
            }
            Some(location) => {
                self.header_template(location, &format!("{field}.location"), ctx).map(RedirectTarget::Location)
            }
            None if !parts_given => {
                ctx.error(field, "give `location`, or at least one of scheme, host, port, path, query");
                None
            }
            None => {
                let scheme = spec.scheme.as_deref().map(str::to_ascii_lowercase);
                if let Some(scheme) = scheme.as_deref().filter(|s| *s != "http" && *s != "https") {
                    ctx.error(format!("{field}.scheme"), format!("{scheme:?} is not http or https"));
                }
                let port = spec.port.map(|p| p.0);
                let port = match port.map(u16::try_from) {
                    Some(Ok(port)) if port > 0 => Some(port),
                    Some(_) => {
                        ctx.error(format!("{field}.port"), format!("{} is not a port (1-65535)", port.unwrap_or(0)));
                        None
                    }
                    None => None,
                };
                let host = spec.host.as_deref().and_then(|h| self.header_template(h, &format!("{field}.host"), ctx));
                let path = spec.path.as_deref().and_then(|p| self.path_template(p, &format!("{field}.path"), ctx));
                let query = spec.query.as_deref().and_then(|q| self.header_template(q, &format!("{field}.query"), ctx));
                Some(RedirectTarget::Parts { scheme: scheme.map(Into::into), host, port, path, query })
            }
        };
        let url = self.url_slots(ctx);
        let status = u16::try_from(status).ok()?;
        let target = target?;
        (ctx.error_count() == before).then_some(Redirect {
            status,
            target,
            keep_query: spec.keep_query.unwrap_or(true),
            url,
        })
    }

    fn rewrite(&mut self, spec: &RewriteSpec, field: &str, ctx: &mut RuleContext) -> Option<Rewrite> {
        let before = ctx.error_count();
        let given = [spec.path.is_some(), spec.path_prefix.is_some(), spec.path_regex.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            ctx.error(field, "give only one of path, path_prefix, path_regex");
        }
        if !given.contains(&true) && spec.host.is_none() {
            ctx.error(field, "give one of path, path_prefix, path_regex, and/or host");
        }
        let path = if let Some(path) = &spec.path {
            self.path_template(path, &format!("{field}.path"), ctx).map(PathRewrite::Full)
        } else if let Some(prefix) = &spec.path_prefix {
            if !prefix.from.starts_with('/') {
                ctx.error(format!("{field}.path_prefix.from"), "a path prefix starts with `/`");
            }
            self.header_template(&prefix.to, &format!("{field}.path_prefix.to"), ctx)
                .map(|to| PathRewrite::Prefix { from: prefix.from.as_str().into(), to })
        } else if let Some(regex) = &spec.path_regex {
            // Envoy's `regex_rewrite`: every match anywhere in the path is substituted.
            match CompiledMatch::search_regex(&regex.pattern) {
                Ok(compiled) => {
                    match envoy_substitution(&regex.substitution, compiled.captures_len().saturating_sub(1)) {
                        Ok(substitution) => {
                            Some(PathRewrite::Regex { regex: compiled, substitution: substitution.into() })
                        }
                        Err(message) => {
                            ctx.error(format!("{field}.path_regex.substitution"), message);
                            None
                        }
                    }
                }
                Err(reason) => {
                    ctx.error(format!("{field}.path_regex.pattern"), format!("invalid regex: {reason}"));
                    None
                }
            }
        } else {
            None
        };
        let host = spec.host.as_deref().and_then(|h| self.header_template(h, &format!("{field}.host"), ctx));
        let url = self.url_slots(ctx);
        (ctx.error_count() == before).then_some(Rewrite { path, host, url })
    }

    fn query_edits(&mut self, spec: &QueryEditsSpec, field: &str, ctx: &mut RuleContext) -> Option<QueryEdits> {
        let before = ctx.error_count();
        let mut params = |pairs: &std::collections::BTreeMap<String, String>, at: &str, ctx: &mut RuleContext| {
            let mut out = Vec::new();
            for (name, value) in pairs {
                let item = format!("{at}.{name}");
                if name.is_empty() {
                    ctx.error(item.clone(), "a query parameter needs a name");
                }
                if let Some(template) = self.template(value, &item, ctx) {
                    out.push((Box::<str>::from(name.as_str()), template));
                }
            }
            out
        };
        let set = params(&spec.set, &format!("{field}.set"), ctx);
        let add = params(&spec.add, &format!("{field}.add"), ctx);
        let remove: Vec<Box<str>> = spec.remove.iter().map(|n| n.as_str().into()).collect();
        if set.is_empty() && add.is_empty() && remove.is_empty() && ctx.error_count() == before {
            ctx.error(field, "give at least one of set, add or remove");
        }
        let path_slot = self.request_header(":path", ctx);
        (ctx.error_count() == before).then_some(QueryEdits { set, add, remove, path_slot })
    }

    fn log(&mut self, spec: &LogSpec, field: &str, ctx: &mut RuleContext) -> Option<Action> {
        let level = match log_level(spec.level.as_deref().unwrap_or("info")) {
            Ok(level) => Some(level),
            Err(message) => {
                ctx.error(format!("{field}.level"), message);
                None
            }
        };
        let message = self.template(&spec.message, &format!("{field}.message"), ctx);
        Some(Action::Log { level: level?, message: message? })
    }

    // ----- templates -----

    /// A template whose result is a header value (checked again at run time).
    fn header_template(&mut self, text: &str, field: &str, ctx: &mut RuleContext) -> Option<Template> {
        if !is_header_value(text) {
            ctx.error(field, HEADER_VALUE_RULE);
            return None;
        }
        self.template(text, field, ctx)
    }

    /// A template for a path: must start with `/` unless it starts with a reference.
    fn path_template(&mut self, text: &str, field: &str, ctx: &mut RuleContext) -> Option<Template> {
        if !(text.starts_with('/') || text.starts_with("${")) {
            ctx.error(field, "a path starts with `/`");
            return None;
        }
        self.header_template(text, field, ctx)
    }

    fn template(&mut self, text: &str, field: &str, ctx: &mut RuleContext) -> Option<Template> {
        self.sized_template(text, MAX_TEMPLATE_BYTES, field, ctx)
    }

    fn sized_template(&mut self, text: &str, limit: usize, field: &str, ctx: &mut RuleContext) -> Option<Template> {
        if text.len() > limit {
            ctx.error(field, format!("{} bytes long; at most {limit} are allowed here", text.len()));
            return None;
        }
        let segments = match template::parse(text) {
            Ok(segments) => segments,
            Err(message) => {
                ctx.error(field, message);
                return None;
            }
        };
        let before = ctx.error_count();
        let mut pieces = Vec::with_capacity(segments.len());
        for segment in segments {
            match segment {
                Segment::Text(text) => pieces.push(Piece::Text(text.into())),
                Segment::Reference(reference) => {
                    if let Some(piece) = self.reference(reference, field, ctx) {
                        pieces.push(piece);
                    }
                }
            }
        }
        (ctx.error_count() == before).then_some(Template { pieces })
    }

    /// Resolves one `${…}` reference.
    fn reference(&mut self, reference: &str, field: &str, ctx: &mut RuleContext) -> Option<Piece> {
        let (head, arg) = match reference.split_once('.') {
            Some((head, arg)) => (head, Some(arg)),
            None => (reference, None),
        };
        let value = |slot: usize, view: View| Some(Piece::Value { slot, view });
        let response_only = |ctx: &mut RuleContext| {
            if ctx.phase == Phase::Request {
                let message = format!("`${{{reference}}}` is only known in the response phase; request rules render templates when the request arrives");
                ctx.error(field, message);
            }
        };
        match (head, arg) {
            ("method", None) => value(self.request_header(":method", ctx), View::Whole),
            ("scheme", None) => value(self.request_header(":scheme", ctx), View::Whole),
            ("host", None) => value(self.request_header(":authority", ctx), View::HostOnly),
            ("authority", None) => value(self.request_header(":authority", ctx), View::Whole),
            ("path", None) => value(self.request_header(":path", ctx), View::PathOnly),
            ("query", None) => value(self.request_header(":path", ctx), View::QueryString),
            ("query", Some(name)) if !name.is_empty() => {
                value(self.request_header(":path", ctx), View::QueryParam(name.into()))
            }
            ("header", Some(name)) => {
                let name = request_header_name(name, field, ctx)?;
                value(self.request_header(&name, ctx), View::Whole)
            }
            ("cookie", Some(name)) if is_token(name) => {
                value(self.request_header("cookie", ctx), View::Cookie(name.into()))
            }
            ("source", Some("ip")) => value(self.slot(Slot::SourceAddress, ctx), View::Ip),
            ("status", None) => {
                response_only(ctx);
                value(self.slot(Slot::Header(HeaderMap::Response, ":status".into()), ctx), View::Whole)
            }
            ("response_header", Some(name)) => {
                response_only(ctx);
                let name = header_name(name, field, ctx)?;
                value(self.slot(Slot::Header(HeaderMap::Response, name.into()), ctx), View::Whole)
            }
            ("env", Some(name)) => match self.env.var(name) {
                Some(text) => Some(Piece::Text(text.into())),
                None => {
                    ctx.error(
                        field,
                        format!("`${{{reference}}}`: the plugin has no environment variable {name:?} (vmConfig.env)"),
                    );
                    None
                }
            },
            ("capture", Some(group)) => capture(group, reference, field, ctx),
            _ => {
                ctx.error(field, format!("unknown reference `${{{reference}}}`; known: {KNOWN_REFERENCES}"));
                None
            }
        }
    }
}

/// The references templates understand, for error messages and the README.
pub const KNOWN_REFERENCES: &str = "method, scheme, host, authority, path, query, query.NAME, header.NAME, \
cookie.NAME, source.ip, status, response_header.NAME, env.NAME, capture.N, capture.NAME";

/// Resolves `${capture.…}` to a capture cell, binding it to the regex condition that provides the group.
fn capture(group: &str, reference: &str, field: &str, ctx: &mut RuleContext) -> Option<Piece> {
    let wanted = match group.parse::<usize>() {
        Ok(index) => Group::Index(index),
        Err(_) => Group::Name(group.into()),
    };
    let candidates: Vec<usize> = ctx
        .regexes
        .iter()
        .enumerate()
        .filter(|(_, regex)| match &wanted {
            Group::Index(index) => *index >= 1 && *index < regex.group_names.len(),
            Group::Name(name) => regex.group_names.iter().flatten().any(|n| **n == **name),
        })
        .map(|(id, _)| id)
        .collect();
    let id = match candidates.as_slice() {
        [id] => *id,
        [] => {
            ctx.error(field, format!("`${{{reference}}}`: no regex condition of this rule has that group; capture it with `(…)` in a `regex` test"));
            return None;
        }
        _ => {
            ctx.error(field, format!("`${{{reference}}}` is ambiguous: several regex conditions have that group; name it `(?P<name>…)` in one"));
            return None;
        }
    };
    let (under_not, regex_field) = ctx.regexes.get(id).map(|r| (r.under_not, r.field.clone()))?;
    if under_not {
        ctx.error(field, format!("`${{{reference}}}` comes from {regex_field}, under `not`: it never holds a value when the rule matches"));
        return None;
    }
    let bindings = ctx.bindings.get_mut(id)?;
    if let Some(existing) = bindings.iter().find(|b| b.group == wanted) {
        return Some(Piece::Capture(existing.cell));
    }
    let cell = ctx.capture_cells;
    ctx.capture_cells += 1;
    bindings.push(CaptureBinding { group: wanted, cell });
    Some(Piece::Capture(cell))
}

/// Gives each regex condition the capture bindings templates asked for.
fn attach_captures(expr: &mut Expr, bindings: &mut [Vec<CaptureBinding>]) {
    match expr {
        Expr::All(exprs) | Expr::Any { exprs, .. } => exprs.iter_mut().for_each(|e| attach_captures(e, bindings)),
        Expr::Not { inner, .. } => attach_captures(inner, bindings),
        Expr::Leaf(condition) => {
            if let Some(found) = condition.regex_id.and_then(|id| bindings.get_mut(id)) {
                condition.captures = std::mem::take(found);
            }
        }
    }
}

fn leaf(field: String, wanted: String, slot: usize, view: View, test: Test) -> Expr {
    let (field, wanted) = (field.into(), wanted.into());
    Expr::Leaf(Condition { field, wanted, slot, view, test, invert: false, regex_id: None, captures: Vec::new() })
}

/// The one expression, or `any` of several (written at `field`).
fn one_or_any(field: String, mut exprs: Vec<Expr>) -> Expr {
    if exprs.len() == 1 {
        if let Some(expr) = exprs.pop() {
            return expr;
        }
    }
    Expr::Any { field: field.into(), exprs }
}

/// `GET`, or `one of GET, HEAD`: how a list of alternatives reads in a trace.
fn one_of(values: &[impl AsRef<str>]) -> String {
    match values {
        [one] => one.as_ref().to_owned(),
        many => format!("one of {}", many.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ")),
    }
}

/// A value test as written, for traces: `prefix "/api"`, `absent`, `not regex "v[0-9]+" (ignore case)`.
fn describe_test(fields: &MatchFields) -> String {
    let operators = [
        ("exact", &fields.exact),
        ("prefix", &fields.prefix),
        ("segment_prefix", &fields.segment_prefix),
        ("suffix", &fields.suffix),
        ("contains", &fields.contains),
        ("regex", &fields.regex),
    ];
    let mut text = if fields.invert { "not ".to_owned() } else { String::new() };
    match operators.iter().find_map(|(name, value)| value.as_ref().map(|v| (name, v))) {
        Some((name, value)) => text.push_str(&format!("{name} {}", crate::trace::quote(value))),
        None => {
            let present = fields.present.or(fields.absent.map(|absent| !absent)).unwrap_or(true);
            text.push_str(if present { "present" } else { "absent" });
        }
    }
    if fields.ignore_case {
        text.push_str(" (ignore case)");
    }
    text
}

/// What a string test is applied to, which decides the operators it may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operand {
    Path,
    Host,
    /// Headers, query parameters, cookies: may be absent, so presence tests apply.
    Optional,
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

/// Compiles a value test; `None` after recording the reason. The second value is the regex id when the test is a
/// regex whose groups templates may use.
fn string_test(
    fields: &MatchFields,
    operand: Operand,
    field: &str,
    ctx: &mut RuleContext,
) -> Option<(Test, Option<usize>)> {
    let operators: Vec<&str> = [
        ("exact", fields.exact.is_some()),
        ("prefix", fields.prefix.is_some()),
        ("segment_prefix", fields.segment_prefix.is_some()),
        ("suffix", fields.suffix.is_some()),
        ("contains", fields.contains.is_some()),
        ("regex", fields.regex.is_some()),
        ("present", fields.present.is_some()),
        ("absent", fields.absent.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    let choices = match operand {
        Operand::Path => "exact, prefix, segment_prefix, suffix, contains or regex",
        Operand::Host => "exact, prefix, suffix, contains or regex",
        Operand::Optional => "exact, prefix, suffix, contains, regex, present or absent",
    };
    match operators.as_slice() {
        [] => {
            ctx.error(field, format!("give one of {choices}"));
            return None;
        }
        [_] => {}
        [first, second, ..] => {
            ctx.error(field, format!("give only one of {choices}; found both {first} and {second}"));
            return None;
        }
    }
    if operand != Operand::Optional && (fields.present.is_some() || fields.absent.is_some()) {
        let key = if fields.present.is_some() { "present" } else { "absent" };
        ctx.error(format!("{field}.{key}"), "only headers, query parameters and cookies can be tested for presence");
        return None;
    }
    if operand != Operand::Path && fields.segment_prefix.is_some() {
        ctx.error(format!("{field}.segment_prefix"), "only the path has segments; use prefix");
        return None;
    }
    let ic = fields.ignore_case;
    let test = match fields {
        MatchFields { exact: Some(v), .. } => Test::Matches(CompiledMatch::exact(v, ic)),
        MatchFields { prefix: Some(v), .. } => Test::Matches(CompiledMatch::prefix(v, ic)),
        MatchFields { segment_prefix: Some(v), .. } => {
            if !v.starts_with('/') {
                ctx.error(format!("{field}.segment_prefix"), "a path prefix starts with `/`");
                return None;
            }
            Test::Matches(CompiledMatch::segment_prefix(v, ic))
        }
        MatchFields { suffix: Some(v), .. } => Test::Matches(CompiledMatch::suffix(v, ic)),
        MatchFields { contains: Some(v), .. } => Test::Matches(CompiledMatch::contains(v, ic)),
        MatchFields { regex: Some(pattern), .. } => match CompiledMatch::regex(pattern, ic) {
            Ok(m) => {
                let group_names = m.group_names();
                let id = ctx.regexes.len();
                ctx.regexes.push(CapturableRegex {
                    group_names,
                    under_not: ctx.under_not || fields.invert,
                    field: field.to_owned(),
                });
                ctx.bindings.push(Vec::new());
                return Some((Test::Matches(m), Some(id)));
            }
            Err(reason) => {
                ctx.error(format!("{field}.regex"), format!("invalid regex: {reason}"));
                return None;
            }
        },
        MatchFields { present: Some(want), .. } => Test::Present(*want),
        MatchFields { absent: Some(not_wanted), .. } => Test::Present(!*not_wanted),
        _ => return None,
    };
    Some((test, None))
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

/// `^(?:pattern)$` with the size limit every rule regex has.
fn anchored_regex(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
    CompiledMatch::regex(pattern, ignore_case).and_then(|m| m.into_regex().ok_or_else(|| "not a regex".to_owned()))
}

/// Translates Envoy's `\1` substitution syntax to the regex crate's `${1}`, refusing groups the pattern lacks.
fn envoy_substitution(text: &str, groups: usize) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let index = d.to_digit(10).map_or(0, |d| d as usize);
                    if index > groups {
                        return Err(format!("\\{index} refers to a group the pattern does not have ({groups} groups)"));
                    }
                    out.push_str(&format!("${{{index}}}"));
                }
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn tokens(values: &[String], field: &str, what: &str, ctx: &mut RuleContext) -> Vec<Box<str>> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if is_token(value) {
            out.push(value.as_str().into());
        } else {
            let at = if values.len() == 1 { field.to_owned() } else { format!("{field}[{i}]") };
            ctx.error(at, format!("{value:?} is not {what}"));
        }
    }
    out
}

/// Whether a name pair keeps the header it reads from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Move {
    Copy,
    Rename,
}

fn name_pairs(
    pairs: &[FromTo],
    kind: Move,
    map: HeaderMap,
    field: &str,
    ctx: &mut RuleContext,
) -> Vec<(Box<str>, Box<str>)> {
    let mut out = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        let at = format!("{field}[{i}].from");
        let from = match kind {
            Move::Rename => edited_header(&pair.from, map, Edit::Remove, &at, ctx),
            Move::Copy if pair.from.starts_with(':') => {
                let message = format!(
                    "{:?} is a pseudo-header; copy reads plain headers only: give its value with a template, \
                     e.g. `set: {{x-original-path: \"${{path}}\"}}`",
                    pair.from
                );
                ctx.error(at, message);
                None
            }
            Move::Copy if map == HeaderMap::Request => request_header_name(&pair.from, &at, ctx),
            Move::Copy => header_name(&pair.from, &at, ctx),
        };
        let to = edited_header(&pair.to, map, Edit::Write, &format!("{field}[{i}].to"), ctx);
        if let (Some(from), Some(to)) = (from, to) {
            if from == to {
                ctx.error(format!("{field}[{i}]"), "from and to are the same header; give `to` another name");
            } else {
                out.push((from.into(), to.into()));
            }
        }
    }
    out
}

fn status_range(status: &StatusSpec) -> Result<(u16, u16), String> {
    let in_range = |code: u64| (100..=599).contains(&code).then(|| u16::try_from(code).ok()).flatten();
    let not_status =
        |text: &str| format!("{text:?} is not a status (100-599), a class like \"5xx\" or a range like \"500-504\"");
    match status {
        StatusSpec::Code(code) => {
            in_range(code.0).map(|c| (c, c)).ok_or_else(|| format!("{} is not an HTTP status (100-599)", code.0))
        }
        StatusSpec::Text(text) => {
            let trimmed = text.trim();
            if let Some(class) = trimmed.strip_suffix("xx").or_else(|| trimmed.strip_suffix("XX")) {
                let digit: u64 = class.parse().ok().filter(|d| (1..=5).contains(d)).ok_or_else(|| not_status(text))?;
                let low = u16::try_from(digit * 100).map_err(|_| not_status(text))?;
                return Ok((low, low + 99));
            }
            if let Some((low, high)) = trimmed.split_once('-') {
                let low = low.trim().parse().ok().and_then(in_range).ok_or_else(|| not_status(text))?;
                let high = high.trim().parse().ok().and_then(in_range).ok_or_else(|| not_status(text))?;
                if low > high {
                    return Err(format!("{text:?} is an empty range; write the lower code first, e.g. \"500-504\""));
                }
                return Ok((low, high));
            }
            trimmed.parse().ok().and_then(in_range).map(|c| (c, c)).ok_or_else(|| not_status(text))
        }
    }
}

fn status_code(code: Integer, lowest: u64) -> Option<u16> {
    if (lowest..=599).contains(&code.0) {
        u16::try_from(code.0).ok()
    } else {
        None
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
