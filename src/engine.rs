//! Runs a [`RuleSet`] against one HTTP exchange.
//!
//! The engine talks to the proxy only through [`Host`], so the same code runs inside Envoy, in native tests
//! and in tools. Per request it keeps a [`RequestState`]: the values fetched so far (each at most once, kept
//! up to date with the engine's own edits, so a later rule sees what an earlier one wrote) and what the
//! request phase leaves for the response phase.

use std::borrow::Cow;

use crate::cidr;
use crate::compile::is_header_value;
use crate::error::Phase;
use crate::index::{PhaseIndex, RuleBits};
use crate::limits::{MAX_HEADER_VALUE_BYTES, MAX_RENDERED_BYTES};
use crate::metrics::{self, CounterId};
use crate::ruleset::{
    Action, Condition, Expr, Group, HeaderEdits, HeaderMap, LocalResponse, PathRewrite, Piece, QueryEdits, Redirect,
    RedirectTarget, Rewrite, Rule, RuleSet, Slot, Template, Test, View,
};
use crate::trace::{self, Edit, Event, Miss, SkipReason, UrlChange};
use crate::url::{self, QueryPairs};

/// What the engine needs from the proxy for one exchange. Header names are lower-case.
pub trait Host {
    /// A header's value, or `None` when absent; a repeated header's values joined with `,`, which is what
    /// Envoy's header matchers compare. Only called for the current phase's map.
    fn header(&mut self, map: HeaderMap, name: &str) -> Option<String>;
    /// The names of every header in the map (repeats allowed).
    fn header_names(&mut self, map: HeaderMap) -> Vec<String>;
    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str);
    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str);
    fn remove_header(&mut self, map: HeaderMap, name: &str);
    /// The client's address as the proxy determined it, `ip:port` (Envoy's downstream remote address: the
    /// connection's peer, or an `x-forwarded-for` entry where the connection manager is set to trust it).
    fn source_address(&mut self) -> Option<String>;
    /// Answers the client from the proxy. In the request phase the upstream is never called; in the response
    /// phase the upstream's response is replaced. Returns whether the proxy accepted it; if not, the exchange
    /// goes on as if the rule had not answered, rather than hang.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) -> bool;
    /// Adds one to a counter of the rule set (see [`crate::metrics`]). Hosts that keep no metrics ignore it.
    fn count(&mut self, _counter: CounterId) {}
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let the exchange go on.
    Continue,
    /// A rule answered the request; the proxy must stop this phase.
    Responded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    NotFetched,
    Absent,
    Present(String),
}

/// A request rule's `response_headers` action, rendered when the request arrived, applied with the response.
#[derive(Debug)]
struct DeferredEdits {
    rule: usize,
    action: usize,
    values: Vec<Option<String>>,
    /// From a dry-run rule: only say what would change.
    dry_run: bool,
}

/// The state of one exchange between its phases.
#[derive(Debug)]
pub struct RequestState {
    values: Vec<Lookup>,
    deferred: Vec<DeferredEdits>,
    responded: bool,
    /// The rules that matched so far, by phase and index; kept only for a document's `debug_header`.
    matched: Vec<(Phase, usize)>,
    /// What happened, when tracing (never in the module).
    trace: Option<Vec<Event>>,
    /// Counts the engine's writes to values the phase's indexes read, so it notices when its candidates may
    /// have changed.
    writes: u32,
}

impl RequestState {
    /// Whether a rule already answered this exchange; later phases then leave it alone.
    pub fn responded(&self) -> bool {
        self.responded
    }

    /// What happened so far, for a state made by [`RuleSet::new_traced_request`]; empty otherwise.
    pub fn trace(&self) -> &[Event] {
        self.trace.as_deref().unwrap_or_default()
    }

    /// The trace, taken out of the finished exchange.
    pub fn into_trace(self) -> Vec<Event> {
        self.trace.unwrap_or_default()
    }
}

impl RuleSet {
    /// A fresh state for a new exchange.
    pub fn new_request(&self) -> RequestState {
        RequestState {
            values: vec![Lookup::NotFetched; self.slots.len()],
            deferred: Vec::new(),
            responded: false,
            matched: Vec::new(),
            trace: None,
            writes: 0,
        }
    }

    /// A fresh state that records what happens, with the reason each unmatched rule failed (for tools).
    pub fn new_traced_request(&self) -> RequestState {
        RequestState { trace: Some(Vec::new()), ..self.new_request() }
    }

    /// Runs the request rules; call when the request headers arrive.
    pub fn on_request_headers(&self, state: &mut RequestState, host: &mut impl Host) -> Flow {
        let mut run = Run { rules: self, state, host, phase: Phase::Request, dry_run: false, rule_name: "" };
        run.record(|| Event::Phase(Phase::Request));
        run.host.count(metrics::REQUESTS);
        if run.rules(&self.request_rules, &self.request_index) == Flow::Responded {
            return Flow::Responded;
        }
        // The proxy does not offer request values in the response phase: keep what response rules read.
        for &slot in &self.carried_slots {
            run.ensure(slot);
        }
        Flow::Continue
    }

    /// Applies deferred response edits, then runs the response rules; call when the response headers arrive.
    /// Does nothing for a response a rule made itself.
    pub fn on_response_headers(&self, state: &mut RequestState, host: &mut impl Host) -> Flow {
        if state.responded {
            return Flow::Continue;
        }
        let deferred = std::mem::take(&mut state.deferred);
        let mut run = Run { rules: self, state, host, phase: Phase::Response, dry_run: false, rule_name: "" };
        run.record(|| Event::Phase(Phase::Response));
        for edits in &deferred {
            let Some(rule) = self.request_rules.get(edits.rule) else { continue };
            if let Some(Action::ResponseHeaders(header_edits)) = rule.actions.get(edits.action) {
                run.record(|| Event::ApplyDeferred { rule: rule.name.to_string() });
                run.dry_run = edits.dry_run;
                run.rule_name = &rule.name;
                run.apply_edits(HeaderMap::Response, header_edits, &edits.values);
            }
        }
        let flow = run.rules(&self.response_rules, &self.response_index);
        if flow == Flow::Continue {
            if let Some(name) = &self.debug_header {
                let value = run.matched_rules();
                run.host.set_header(HeaderMap::Response, name, &value);
                run.record(|| Event::Header {
                    map: HeaderMap::Response,
                    name: name.to_string(),
                    edit: Edit::Set(value),
                });
            }
        }
        flow
    }

    /// The rule `index` of `phase`.
    fn rule_at(&self, phase: Phase, index: usize) -> Option<&Rule> {
        match phase {
            Phase::Request => self.request_rules.get(index),
            Phase::Response => self.response_rules.get(index),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    NoMatch,
    Matched,
    Responded,
}

/// One phase of one exchange.
struct Run<'r, 's, H: Host> {
    rules: &'r RuleSet,
    state: &'s mut RequestState,
    host: &'s mut H,
    phase: Phase,
    /// The rule acting now is in dry-run mode: writes are only logged.
    dry_run: bool,
    /// The rule acting now, for log lines.
    rule_name: &'r str,
}

impl<'r, H: Host> Run<'r, '_, H> {
    /// Runs a phase's rules in order until one answers or a matching rule says `stop`. With indexes, only the
    /// rules the request's values can match are evaluated, still in order; a trace, which reports every rule's
    /// verdict, evaluates them all.
    fn rules(&mut self, rules: &'r [Rule], indexes: &PhaseIndex) -> Flow {
        let indexed = indexes.enabled() && self.state.trace.is_none();
        let mut candidates = RuleBits::default();
        let mut writes = self.state.writes;
        if indexed {
            self.candidates(indexes, &mut candidates);
        }
        let mut next = 0;
        loop {
            let index = if indexed { candidates.next_from(next) } else { Some(next) };
            let Some((index, rule)) = index.and_then(|i| Some((i, rules.get(i)?))) else { break };
            next = index + 1;
            match self.rule(index, rule) {
                Outcome::Responded => {
                    self.state.responded = true;
                    self.record_skipped(rules, index, SkipReason::Answered);
                    return Flow::Responded;
                }
                Outcome::Matched if rule.stop && rule.dry_run => self.would("stop the phase".to_owned()),
                Outcome::Matched if rule.stop => {
                    self.record_skipped(rules, index, SkipReason::Stopped);
                    break;
                }
                Outcome::Matched | Outcome::NoMatch => {}
            }
            // A rule changed a value an index reads: look the later rules up again.
            if indexed && self.state.writes != writes {
                writes = self.state.writes;
                self.candidates(indexes, &mut candidates);
            }
        }
        Flow::Continue
    }

    /// The rules the request's current values can match: those no index serves, and those whose key holds.
    fn candidates(&mut self, indexes: &PhaseIndex, candidates: &mut RuleBits) {
        *candidates = indexes.always();
        for strings in indexes.strings() {
            let place = &strings.place;
            self.ensure_view(place.slot, &place.view);
            if let Some(value) = self.view(place.slot, &place.view) {
                strings.lookup(&value, candidates);
            }
        }
        for cidrs in indexes.cidrs() {
            let place = &cidrs.place;
            self.ensure_view(place.slot, &place.view);
            if let Some(value) = self.view(place.slot, &place.view) {
                cidrs.lookup(&value, candidates);
            }
        }
    }

    fn rule(&mut self, index: usize, rule: &'r Rule) -> Outcome {
        self.dry_run = rule.dry_run;
        self.rule_name = &rule.name;
        let mut captures: Vec<Option<String>> = vec![None; rule.capture_cells];
        let matched = rule.when.as_ref().is_none_or(|expr| self.eval(expr, &mut captures));
        if self.state.trace.is_some() {
            let miss = match (&rule.when, matched) {
                (Some(expr), false) => self.explain(expr, &mut captures),
                _ => None,
            };
            self.record(|| Event::Rule { index, name: rule.name.to_string(), miss });
        }
        if !matched {
            return Outcome::NoMatch;
        }
        self.log(log::Level::Debug, format_args!("{} rule {:?} matched", self.phase.key(), &*rule.name));
        self.host.count(rule.matched_counter());
        if self.rules.debug_header.is_some() {
            self.state.matched.push((self.phase, index));
        }
        for (action_index, action) in rule.actions.iter().enumerate() {
            self.host.count(rule.action_counter(action_index));
            if self.action(rule, index, action_index, action, &captures) == Outcome::Responded {
                return Outcome::Responded;
            }
        }
        Outcome::Matched
    }

    // ----- tracing -----

    /// Adds an event to the trace, if this exchange is traced; `event` is only built then.
    fn record(&mut self, event: impl FnOnce() -> Event) {
        if let Some(trace) = &mut self.state.trace {
            trace.push(event());
        }
    }

    /// Records the rules after `index` as not evaluated, because of what rule `index` did.
    fn record_skipped(&mut self, rules: &[Rule], index: usize, reason: SkipReason) {
        let Some(trace) = &mut self.state.trace else { return };
        let by = rules.get(index).map(|r| r.name.to_string()).unwrap_or_default();
        for (later, rule) in rules.iter().enumerate().skip(index + 1) {
            trace.push(Event::Skipped { index: later, name: rule.name.to_string(), by: by.clone(), reason });
        }
    }

    /// Writes a log line, unless the document's `log_level` is more severe; the `log` facade then drops
    /// what the proxy would not print, before formatting.
    fn log(&self, level: log::Level, line: std::fmt::Arguments<'_>) {
        if self.rules.logs(level) {
            log::log!(level, "{line}");
        }
    }

    /// In dry-run mode: says what the rule would have done.
    fn would(&mut self, what: String) {
        self.log(log::Level::Info, format_args!("dry run: rule {:?} would {what}", self.rule_name));
        self.record(|| Event::WouldDo(what));
    }

    /// Logs a refused value and records it.
    fn refuse(&mut self, message: String) {
        self.host.count(metrics::REFUSED_VALUES);
        self.log(log::Level::Warn, format_args!("{message}"));
        self.record(|| Event::Refused(message));
    }

    /// The `debug_header` value: the names of the rules that matched, in order; `-` for none.
    fn matched_rules(&self) -> String {
        let mut list = String::new();
        for (phase, index) in &self.state.matched {
            let Some(rule) = self.rules.rule_at(*phase, *index) else { continue };
            if !list.is_empty() {
                list.push_str(", ");
            }
            list.push_str(&rule.name);
            if rule.dry_run {
                list.push_str(" (dry run)");
            }
        }
        if list.is_empty() {
            list.push('-');
        }
        list
    }

    // ----- values -----

    /// Fetches a slot's value from the proxy unless it is known. Request values are never fetched in the
    /// response phase (the proxy no longer has them): what was not carried over reads as absent.
    fn ensure(&mut self, slot: usize) {
        let Some(spec) = self.rules.slots.get(slot) else { return };
        let Some(cell) = self.state.values.get_mut(slot) else { return };
        if *cell != Lookup::NotFetched || (spec.phase() == Phase::Request && self.phase == Phase::Response) {
            return;
        }
        let value = match spec {
            Slot::Header(map, name) => self.host.header(*map, name),
            Slot::SourceAddress => self.host.source_address(),
        };
        *cell = value.map_or(Lookup::Absent, Lookup::Present);
    }

    fn get(&self, slot: usize) -> Option<&str> {
        match self.state.values.get(slot)? {
            Lookup::Present(value) => Some(value),
            Lookup::Absent | Lookup::NotFetched => None,
        }
    }

    fn ensure_view(&mut self, slot: usize, view: &View) {
        self.ensure(slot);
        if let View::Client { xff_slot, trusted_hops } = view {
            if *trusted_hops > 0 {
                self.ensure(*xff_slot);
            }
        }
    }

    /// The part of a slot's value a view selects (call `ensure_view` first).
    fn view(&self, slot: usize, view: &View) -> Option<Cow<'_, str>> {
        let value = self.get(slot);
        match view {
            View::Whole => value.map(Cow::Borrowed),
            View::PathOnly => value.map(|p| Cow::Borrowed(url::split_path(p).0)),
            View::QueryString => value.map(|p| Cow::Borrowed(url::split_path(p).1.unwrap_or_default())),
            View::QueryParam(name) => value.and_then(|p| url::split_path(p).1).and_then(|q| url::query_param(q, name)),
            View::Cookie(name) => value.and_then(|c| cookie(c, name)).map(Cow::Borrowed),
            View::HostOnly => value.map(|a| Cow::Borrowed(strip_port(a))),
            View::Ip => value.and_then(cidr::parse_address).map(|ip| Cow::Owned(ip.to_string())),
            View::Client { xff_slot, trusted_hops } => {
                let forwarded =
                    (*trusted_hops > 0).then(|| self.get(*xff_slot).and_then(|xff| nth_from_right(xff, *trusted_hops)));
                // Fewer entries than trusted proxies: the header cannot be trusted; use the peer address.
                forwarded.flatten().or(value).map(Cow::Borrowed)
            }
        }
    }

    /// The slot of header `name` of `map`, if some rule reads it.
    fn header_slot(&self, map: HeaderMap, name: &str) -> Option<usize> {
        self.rules.slots.iter().position(|s| matches!(s, Slot::Header(m, n) if *m == map && &**n == name))
    }

    /// Records the engine's own write so later rules in this exchange see it.
    fn note_write(&mut self, map: HeaderMap, name: &str, write: Write<'_>) {
        let slot = self.header_slot(map, name);
        let indexes = match self.phase {
            Phase::Request => &self.rules.request_index,
            Phase::Response => &self.rules.response_index,
        };
        if slot.is_some_and(|slot| indexes.reads(slot)) {
            self.state.writes = self.state.writes.wrapping_add(1);
        }
        let Some(cell) = slot.and_then(|slot| self.state.values.get_mut(slot)) else { return };
        match write {
            Write::Set(value) => *cell = Lookup::Present(value.to_owned()),
            Write::Add(value) => match cell {
                // A repeated header reads as its values joined with `,`.
                Lookup::Present(current) => {
                    current.push(',');
                    current.push_str(value);
                }
                Lookup::Absent => *cell = Lookup::Present(value.to_owned()),
                // Not read yet: the proxy will say, values it had included.
                Lookup::NotFetched => {}
            },
            Write::Remove => *cell = Lookup::Absent,
        }
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        if self.dry_run {
            return self.would(format!("set {} header {name:?} to {value:?}", map.key()));
        }
        self.write_header(map, name, value);
        self.record(|| Event::Header { map, name: name.to_owned(), edit: Edit::Set(value.to_owned()) });
    }

    /// A `rewrite` or `query` action's new path or host; traced and dry-run as that action, not as a header.
    fn set_url(&mut self, change: UrlChange, value: &str) {
        if self.dry_run {
            return self.would(format!("{change} {value:?}"));
        }
        self.write_header(HeaderMap::Request, change.pseudo_header(), value);
        self.record(|| Event::Url { change, value: value.to_owned() });
    }

    fn write_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        self.host.set_header(map, name, value);
        self.note_write(map, name, Write::Set(value));
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        if self.dry_run {
            return self.would(format!("add {} header {name:?} with {value:?}", map.key()));
        }
        self.host.add_header(map, name, value);
        self.note_write(map, name, Write::Add(value));
        self.record(|| Event::Header { map, name: name.to_owned(), edit: Edit::Add(value.to_owned()) });
    }

    fn remove_header(&mut self, map: HeaderMap, name: &str) {
        if self.dry_run {
            return self.would(format!("remove {} header {name:?}", map.key()));
        }
        self.host.remove_header(map, name);
        self.note_write(map, name, Write::Remove);
        self.record(|| Event::Header { map, name: name.to_owned(), edit: Edit::Remove });
    }

    /// Answers the client through the proxy; returns whether it accepted.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) -> bool {
        if self.dry_run {
            let what = match headers.iter().find(|(name, _)| *name == "location") {
                Some((_, location)) => format!("redirect with {status} to {location:?}"),
                None => format!("respond {status}"),
            };
            self.would(what);
            return false;
        }
        let debug = self.rules.debug_header.as_deref().map(|name| (name, self.matched_rules()));
        let with_debug: Vec<(&str, &str)>;
        let headers = match &debug {
            Some((name, value)) => {
                with_debug = headers.iter().copied().chain([(*name, value.as_str())]).collect();
                &with_debug
            }
            None => headers,
        };
        let sent = self.host.send_response(status, headers, body);
        if sent {
            self.host.count(metrics::DIRECT_RESPONSES);
            self.record(|| Event::Responded {
                status,
                headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
                body: body.to_owned(),
            });
        }
        sent
    }

    /// A header's current value: from the cache when a rule reads it, otherwise from the proxy.
    fn current_header(&mut self, map: HeaderMap, name: &str) -> Option<String> {
        let slot = self.header_slot(map, name);
        if let Some(slot) = slot {
            self.ensure(slot);
            return self.get(slot).map(str::to_owned);
        }
        self.host.header(map, name)
    }

    // ----- conditions -----

    fn eval(&mut self, expr: &Expr, captures: &mut [Option<String>]) -> bool {
        match expr {
            Expr::All(exprs) => exprs.iter().all(|e| self.eval(e, captures)),
            Expr::Any { exprs, .. } => exprs.iter().any(|e| self.eval(e, captures)),
            Expr::Not { inner, .. } => !self.eval(inner, captures),
            Expr::Leaf(condition) => self.holds(condition, captures),
        }
    }

    /// Why `expr` does not hold, naming the first condition that fails; `None` when it holds. Evaluates in
    /// the same order as [`Self::eval`], so it reads only values the evaluation already fetched.
    fn explain(&mut self, expr: &Expr, captures: &mut [Option<String>]) -> Option<Miss> {
        match expr {
            Expr::All(exprs) => exprs.iter().find_map(|e| self.explain(e, captures)),
            Expr::Any { field, exprs } => {
                let mut alternatives = Vec::with_capacity(exprs.len());
                for e in exprs {
                    alternatives.push(self.explain(e, captures)?);
                }
                let reason = format!("none of its {} alternatives matched", exprs.len());
                Some(Miss { field: field.to_string(), reason, alternatives })
            }
            Expr::Not { field, inner } => self.eval(inner, captures).then(|| Miss {
                field: field.to_string(),
                reason: "the block under `not` matched".to_owned(),
                alternatives: Vec::new(),
            }),
            Expr::Leaf(condition) => {
                if self.holds(condition, captures) {
                    return None;
                }
                let got = self
                    .view(condition.slot, &condition.view)
                    .map_or_else(|| "nothing".to_owned(), |v| trace::quote(&v));
                let reason = format!("got {got}, wanted {}", condition.wanted);
                Some(Miss { field: condition.field.to_string(), reason, alternatives: Vec::new() })
            }
        }
    }

    fn holds(&mut self, condition: &Condition, captures: &mut [Option<String>]) -> bool {
        self.ensure_view(condition.slot, &condition.view);
        let value = self.view(condition.slot, &condition.view);
        let result = match (&condition.test, value.as_deref()) {
            (Test::Present(want), value) => value.is_some() == *want,
            (_, None) => false,
            (Test::Matches(m), Some(value)) => match m.as_regex().filter(|_| !condition.captures.is_empty()) {
                Some(regex) => match regex.captures(value) {
                    Some(groups) => {
                        for binding in &condition.captures {
                            let text = match &binding.group {
                                Group::Index(index) => groups.get(*index),
                                Group::Name(name) => groups.name(name),
                            };
                            if let Some(cell) = captures.get_mut(binding.cell) {
                                *cell = text.map(|t| t.as_str().to_owned());
                            }
                        }
                        true
                    }
                    None => false,
                },
                None => m.is_match(value),
            },
            (Test::OneOf { values, ignore_case }, Some(value)) => {
                values.iter().any(|v| if *ignore_case { v.eq_ignore_ascii_case(value) } else { **v == *value })
            }
            (Test::Status(ranges), Some(value)) => {
                value.parse::<u16>().is_ok_and(|code| ranges.iter().any(|(low, high)| (*low..=*high).contains(&code)))
            }
            (Test::Cidrs(cidrs), Some(value)) => {
                cidr::parse_address(value).is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip)))
            }
        };
        result != condition.invert
    }

    // ----- templates -----

    fn render<'t>(&mut self, template: &'t Template, captures: &[Option<String>]) -> Cow<'t, str> {
        if let [Piece::Text(text)] = template.pieces.as_slice() {
            return Cow::Borrowed(text);
        }
        for piece in &template.pieces {
            if let Piece::Value { slot, view } = piece {
                self.ensure_view(*slot, view);
            }
        }
        let mut out = String::new();
        for piece in &template.pieces {
            let room = match piece {
                Piece::Text(text) => push_capped(&mut out, text),
                Piece::Value { slot, view } => match self.view(*slot, view) {
                    Some(value) => push_capped(&mut out, &value),
                    None => true,
                },
                Piece::Capture(cell) => match captures.get(*cell) {
                    Some(Some(text)) => push_capped(&mut out, text),
                    _ => true,
                },
            };
            if !room {
                break;
            }
        }
        Cow::Owned(out)
    }

    /// Renders a header value; `None` (logged) when the result could split a header line.
    fn render_header<'t>(
        &mut self,
        rule: &Rule,
        name: &str,
        template: &'t Template,
        captures: &[Option<String>],
    ) -> Option<Cow<'t, str>> {
        let value = self.render(template, captures);
        match unsendable(&value) {
            None => Some(value),
            Some(reason) => {
                self.refuse(format!("rule {:?}: refused a value for {name:?}: it {reason}", &*rule.name));
                None
            }
        }
    }

    // ----- actions -----

    fn action(
        &mut self,
        rule: &'r Rule,
        index: usize,
        action_index: usize,
        action: &'r Action,
        captures: &[Option<String>],
    ) -> Outcome {
        match action {
            Action::RequestHeaders(edits) => {
                let values = self.render_edit_values(rule, edits, captures);
                self.apply_edits(HeaderMap::Request, edits, &values);
            }
            Action::ResponseHeaders(edits) => {
                let values = self.render_edit_values(rule, edits, captures);
                match self.phase {
                    Phase::Response => self.apply_edits(HeaderMap::Response, edits, &values),
                    Phase::Request => {
                        let dry_run = self.dry_run;
                        let values = values.into_iter().map(|value| value.map(Cow::into_owned)).collect();
                        self.state.deferred.push(DeferredEdits { rule: index, action: action_index, values, dry_run });
                        self.record(|| Event::Deferred);
                    }
                }
            }
            Action::Respond(response) => {
                if self.respond(rule, response, captures) {
                    return Outcome::Responded;
                }
            }
            Action::Redirect(redirect) => {
                if self.redirect(rule, redirect, captures) {
                    return Outcome::Responded;
                }
            }
            Action::Rewrite(rewrite) => self.rewrite(rule, rewrite, captures),
            Action::Query(edits) => self.edit_query(rule, edits, captures),
            Action::Log { level, message } => {
                // Rendered only when the line can be written (or a trace wants it).
                let written = self.rules.logs(*level) && log::log_enabled!(*level);
                if written || self.state.trace.is_some() {
                    let message = self.render(message, captures).into_owned();
                    self.log(*level, format_args!("{}: {message}", &*rule.name));
                    self.record(|| Event::Logged { level: *level, message });
                }
            }
        }
        Outcome::Matched
    }

    /// The values of `set`, `set_if_absent` and `add`, in that order; `None` for a refused value. Fixed values
    /// are borrowed from the rule, not copied.
    fn render_edit_values<'t>(
        &mut self,
        rule: &Rule,
        edits: &'t HeaderEdits,
        captures: &[Option<String>],
    ) -> Vec<Option<Cow<'t, str>>> {
        edits
            .set
            .iter()
            .chain(&edits.set_if_absent)
            .chain(&edits.add)
            .map(|(name, template)| self.render_header(rule, name, template, captures))
            .collect()
    }

    fn apply_edits(&mut self, map: HeaderMap, edits: &HeaderEdits, values: &[Option<impl AsRef<str>>]) {
        for (from, to) in &edits.copy {
            if let Some(value) = self.current_header(map, from) {
                self.set_header(map, to, &value);
            }
        }
        for (from, to) in &edits.rename {
            if let Some(value) = self.current_header(map, from) {
                self.set_header(map, to, &value);
                self.remove_header(map, from);
            }
        }
        let mut values = values.iter().map(|value| value.as_ref().map(AsRef::as_ref));
        for (name, _) in &edits.set {
            if let Some(Some(value)) = values.next() {
                self.set_header(map, name, value);
            }
        }
        for (name, _) in &edits.set_if_absent {
            if let Some(Some(value)) = values.next() {
                if self.current_header(map, name).is_none() {
                    self.set_header(map, name, value);
                }
            }
        }
        for (name, _) in &edits.add {
            if let Some(Some(value)) = values.next() {
                self.add_header(map, name, value);
            }
        }
        for name in &edits.remove {
            self.remove_header(map, name);
        }
        if edits.needs_names() {
            let mut names = self.host.header_names(map);
            names.sort_unstable();
            names.dedup();
            for name in names.iter().filter(|n| !n.starts_with(':')) {
                let by_prefix = edits.remove_prefix.iter().any(|p| name.starts_with(&**p));
                if by_prefix || edits.remove_regex.iter().any(|r| r.is_match(name)) {
                    self.remove_header(map, name);
                }
            }
        }
    }

    fn respond(&mut self, rule: &Rule, response: &LocalResponse, captures: &[Option<String>]) -> bool {
        let mut headers: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(response.headers.len());
        for (name, template) in &response.headers {
            if let Some(value) = self.render_header(rule, name, template, captures) {
                headers.push((name, value));
            }
        }
        let body = self.render(&response.body, captures);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_ref())).collect();
        self.send_response(response.status, &pairs, &body)
    }

    fn redirect(&mut self, rule: &Rule, redirect: &Redirect, captures: &[Option<String>]) -> bool {
        for slot in [redirect.url.scheme, redirect.url.authority, redirect.url.path] {
            self.ensure(slot);
        }
        let (request_path, request_query) = url::split_path(self.get(redirect.url.path).unwrap_or("/"));
        let (request_path, request_query) = (request_path.to_owned(), request_query.map(str::to_owned));
        let kept_query = request_query.filter(|q| redirect.keep_query && !q.is_empty());
        let location = match &redirect.target {
            RedirectTarget::Location(template) => {
                let location = self.render(template, captures).into_owned();
                match kept_query {
                    Some(query) if !location.contains('?') => format!("{location}?{query}"),
                    _ => location,
                }
            }
            RedirectTarget::Parts { scheme, host, port, path, query } => {
                let request_scheme = self.get(redirect.url.scheme).unwrap_or("http").to_ascii_lowercase();
                let authority = self.get(redirect.url.authority).unwrap_or_default().to_owned();
                let new_scheme = scheme.as_deref().unwrap_or(&request_scheme).to_owned();
                let new_host = match host {
                    Some(template) => self.render(template, captures).into_owned(),
                    None => strip_port(&authority).to_owned(),
                };
                // A changed scheme gets its default port unless one is given.
                let scheme_changed = new_scheme != request_scheme;
                let request_port = authority_port(&authority).filter(|_| !scheme_changed);
                let new_port = port.or(request_port).filter(|p| Some(*p) != default_port(&new_scheme));
                let new_path = match path {
                    Some(template) => self.render(template, captures).into_owned(),
                    None => request_path,
                };
                let new_query = match query {
                    Some(template) => Some(self.render(template, captures).into_owned()).filter(|q| !q.is_empty()),
                    None if new_path.contains('?') => None,
                    None => kept_query,
                };
                let mut location = format!("{new_scheme}://{new_host}");
                if let Some(port) = new_port {
                    location.push_str(&format!(":{port}"));
                }
                location.push_str(&new_path);
                if let Some(query) = new_query {
                    location.push('?');
                    location.push_str(&query);
                }
                location
            }
        };
        if let Some(reason) = unsendable(&location) {
            self.refuse(format!("rule {:?}: refused a redirect: the location {reason}", &*rule.name));
            return false;
        }
        self.send_response(redirect.status, &[("location", &location)], "")
    }

    fn rewrite(&mut self, rule: &Rule, rewrite: &Rewrite, captures: &[Option<String>]) {
        if let Some(path_rewrite) = &rewrite.path {
            self.ensure(rewrite.url.path);
            let current = self.get(rewrite.url.path).unwrap_or("/").to_owned();
            let (path, query) = url::split_path(&current);
            let new_path: Cow<'_, str> = match path_rewrite {
                PathRewrite::Full(template) => Cow::Owned(self.render(template, captures).into_owned()),
                PathRewrite::Prefix { from, to } => match path.strip_prefix(&**from) {
                    Some(rest) => Cow::Owned(format!("{}{rest}", self.render(to, captures))),
                    None => Cow::Borrowed(path),
                },
                PathRewrite::Regex { regex, substitution } => regex.replace_all(path, &**substitution),
            };
            // A new path that brings its own query replaces the request's.
            let new = match query {
                Some(query) if !new_path.contains('?') => format!("{new_path}?{query}"),
                _ => new_path.into_owned(),
            };
            match unsendable(&new) {
                None if new.starts_with('/') => self.set_url(UrlChange::RewritePath, &new),
                None => self.refuse(format!(
                    "rule {:?}: refused a rewritten path {new:?}: it does not start with /",
                    &*rule.name
                )),
                Some(reason) => {
                    self.refuse(format!("rule {:?}: refused a rewritten path: it {reason}", &*rule.name));
                }
            }
        }
        if let Some(template) = &rewrite.host {
            match self.render_header(rule, ":authority", template, captures) {
                Some(host) if !host.is_empty() => self.set_url(UrlChange::RewriteHost, &host),
                Some(_) => self.refuse(format!("rule {:?}: refused an empty rewritten host", &*rule.name)),
                // Already refused by render_header.
                None => {}
            }
        }
    }

    fn edit_query(&mut self, rule: &Rule, edits: &QueryEdits, captures: &[Option<String>]) {
        let rendered = |run: &mut Self, pairs: &[(Box<str>, Template)]| -> Vec<String> {
            pairs.iter().map(|(_, template)| run.render(template, captures).into_owned()).collect()
        };
        let set_values = rendered(self, &edits.set);
        let add_values = rendered(self, &edits.add);
        self.ensure(edits.path_slot);
        let current = self.get(edits.path_slot).unwrap_or("/").to_owned();
        let (path, query) = url::split_path(&current);
        let mut pairs = QueryPairs::parse(query.unwrap_or_default());
        for ((name, _), value) in edits.set.iter().zip(&set_values) {
            pairs.set(name, value);
        }
        for ((name, _), value) in edits.add.iter().zip(&add_values) {
            pairs.add(name, value);
        }
        for name in &edits.remove {
            pairs.remove(name);
        }
        let new = pairs.to_path(path);
        if let Some(reason) = unsendable(&new) {
            self.refuse(format!("rule {:?}: refused the edited query: the path {reason}", &*rule.name));
        } else if new != current {
            self.log(log::Level::Debug, format_args!("rule {:?}: query now {new:?}", &*rule.name));
            self.set_url(UrlChange::Query, &new);
        }
    }
}

/// Why a rendered value cannot be sent as a header value, path or location; `None` if it can.
fn unsendable(value: &str) -> Option<String> {
    if !is_header_value(value) {
        Some("contains CR, LF or NUL".to_owned())
    } else if value.len() > MAX_HEADER_VALUE_BYTES {
        Some(format!("is over the {MAX_HEADER_VALUE_BYTES}-byte limit"))
    } else {
        None
    }
}

/// Appends as much of `text` as fits under [`MAX_RENDERED_BYTES`], cutting at a character boundary; returns
/// whether there is room left, so that one request's values cannot make a template render without bound.
fn push_capped(out: &mut String, text: &str) -> bool {
    let room = MAX_RENDERED_BYTES.saturating_sub(out.len());
    if text.len() <= room {
        out.push_str(text);
        return true;
    }
    let mut cut = room;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(text.get(..cut).unwrap_or_default());
    false
}

/// A write the engine made, to keep its view of the headers current.
enum Write<'v> {
    Set(&'v str),
    Add(&'v str),
    Remove,
}

/// The value of cookie `name` in a `cookie` header (`a=1; b=2`). Several `cookie` headers reach us joined with
/// `,`, which RFC 6265 does not allow inside a cookie, so it separates pairs too.
fn cookie<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    header.split([';', ',']).find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// The `n`-th address from the right of an `x-forwarded-for` list (1 = rightmost).
fn nth_from_right(xff: &str, n: usize) -> Option<&str> {
    xff.rsplit(',').nth(n.checked_sub(1)?).map(str::trim).filter(|a| !a.is_empty())
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`; a bare IPv6 address is left whole.
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').and_then(|end| authority.get(..=end)).unwrap_or(authority);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn authority_port(authority: &str) -> Option<u16> {
    let host = strip_port(authority);
    authority.get(host.len()..)?.strip_prefix(':')?.parse().ok()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_only_from_host_port_forms() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:10000"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("example.com:x"), "example.com:x");
        assert_eq!(authority_port("example.com:8080"), Some(8080));
        assert_eq!(authority_port("[::1]:443"), Some(443));
        assert_eq!(authority_port("example.com"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "theme=dark; session=abc=def;  canary = yes";
        assert_eq!(cookie(header, "session"), Some("abc=def"));
        assert_eq!(cookie(header, "canary"), Some("yes"));
        assert_eq!(cookie(header, "Theme"), None);
        assert_eq!(cookie(header, "missing"), None);
        // Two cookie headers, as the proxy joins them.
        assert_eq!(cookie("a=1,b=2", "b"), Some("2"));
    }

    #[test]
    fn forwarded_for_is_read_from_the_right() {
        let xff = "203.0.113.7, 10.0.0.1 ,10.0.0.2";
        assert_eq!(nth_from_right(xff, 1), Some("10.0.0.2"));
        assert_eq!(nth_from_right(xff, 2), Some("10.0.0.1"));
        assert_eq!(nth_from_right(xff, 3), Some("203.0.113.7"));
        assert_eq!(nth_from_right(xff, 4), None);
        assert_eq!(nth_from_right(xff, 0), None);
    }
}
