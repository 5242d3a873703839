//! Runs a [`RuleSet`] against one HTTP exchange.
//!
//! The engine talks to the proxy only through [`Host`], so the same code runs inside Envoy, in native tests
//! and in tools. Per request it keeps a [`RequestState`]: the values fetched so far (each at most once, kept
//! up to date with the engine's own edits, so a later rule sees what an earlier one wrote) and what the
//! request phase leaves for the response phase.

mod actions;
mod answers;
mod body;
mod carry;
mod cells;
mod conditions;
mod credentials;
mod empty_values;
mod paths;
mod ratelimit;
mod templates;
mod values;
mod writes;

use crate::error::Phase;
use crate::index::{PhaseIndex, RuleBits};
use crate::metrics::{self, CounterId};
use crate::ruleset::{Action, HeaderMap, Rule, RuleSet};
use crate::trace::{Edit, Event, SkipReason};

/// What the engine needs from the proxy for one exchange. Header names are lower-case.
pub trait Host {
    /// A header's value, or `None` when absent; a repeated header's values joined with `,`, which is what
    /// Envoy's header matchers compare. Only called for the current phase's map.
    fn header(&mut self, map: HeaderMap, name: &str) -> Option<String>;
    /// [`Self::header`] appended to `out`; whether the header is present (nothing is appended if not). The
    /// engine keeps a request's values in one buffer: a host that holds the headers appends a value there
    /// without a `String` of its own.
    fn header_into(&mut self, map: HeaderMap, name: &str, out: &mut String) -> bool {
        self.header(map, name).map(|value| out.push_str(&value)).is_some()
    }
    /// Every value of a header, in order, a repeated header's values apart (as `set-cookie` needs them); empty
    /// when absent. Only called for an answer made in the response phase. A host that cannot tell the values
    /// apart gives [`Self::header`]'s joined value.
    fn header_values(&mut self, map: HeaderMap, name: &str) -> Vec<String> {
        self.header(map, name).into_iter().collect()
    }
    /// The names of every header in the map (repeats allowed).
    fn header_names(&mut self, map: HeaderMap) -> Vec<String>;
    /// The names in the map that `keep` accepts (repeats allowed). Rules that remove headers by prefix or
    /// regex run this on every request and usually find none: a host that holds the names can test them in
    /// place and allocate only for those kept.
    fn header_names_where(&mut self, map: HeaderMap, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut names = self.header_names(map);
        names.retain(|name| keep(name));
        names
    }
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
    /// Rate limits: a value of the proxy's shared data (one map for every worker) and its compare-and-swap
    /// token, `Ok(None)` when never written; `Err` says why the proxy refused. Hosts without one refuse.
    fn shared_data(&mut self, _key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Err("this host has no shared data".to_owned())
    }
    /// Writes a shared-data value if `cas` is still its token (0: unconditionally); `Ok(false)` if not.
    fn set_shared_data(&mut self, _key: &str, _value: &[u8], _cas: u32) -> Result<bool, String> {
        Err("this host has no shared data".to_owned())
    }
    /// The proxy's wall clock in nanoseconds since the Unix epoch, the same for every worker.
    fn now_nanos(&mut self) -> Option<u64> {
        None
    }
    /// An Envoy attribute's raw bytes by property path, its parts separated by NUL as `get_property` takes it
    /// (`xds\0route_name`, see [`crate::attributes::Property`]), `None` when the proxy has none; only called
    /// for paths a rule reads, in the phase [`crate::attributes`] says the value exists.
    fn property(&mut self, _path: &str) -> Option<Vec<u8>> {
        None
    }
    /// The whole body of `message`, which the proxy held for a body rule. Only called from the body phase
    /// (`RuleSet::on_request_body` / `on_response_body`) with `Fill::Complete`.
    fn body(&mut self, _message: HeaderMap) -> Vec<u8> {
        Vec::new()
    }
    /// Replaces the body of `message` (from the body phase only); returns whether the proxy accepted it.
    fn set_body(&mut self, _message: HeaderMap, _body: &[u8]) -> bool {
        false
    }
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let the exchange go on.
    Continue,
    /// A rule answered the request; the proxy must stop this phase.
    Responded,
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
    values: cells::Cells,
    deferred: Vec<DeferredEdits>,
    responded: bool,
    /// The rules that matched so far, by phase and index; kept only for a document's `debug_header`.
    matched: Vec<(Phase, usize)>,
    /// What happened, when tracing (never in the module).
    trace: Option<Vec<Event>>,
    /// Counts the engine's writes to values the phase's indexes read, so it notices when its candidates may
    /// have changed.
    writes: u32,
    /// Body rules whose `match` held, waiting for their phase's body (empty without body rules).
    waiting: Vec<body::Waiting>,
    /// Where the `:path` in a slot has its `?`, once found: `(slot, offset)` (see `Run::split_path`).
    path_split: std::cell::Cell<Option<(usize, Option<usize>)>>,
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
            values: cells::Cells::new(self.slots.len()),
            deferred: Vec::new(),
            responded: false,
            matched: Vec::new(),
            trace: None,
            writes: 0,
            waiting: Vec::new(),
            path_split: std::cell::Cell::new(None),
        }
    }

    /// A fresh state that records what happens, with the reason each unmatched rule failed (for tools).
    pub fn new_traced_request(&self) -> RequestState {
        RequestState { trace: Some(Vec::new()), ..self.new_request() }
    }

    /// Runs the request rules; call when the request headers arrive.
    pub fn on_request_headers(&self, state: &mut RequestState, host: &mut impl Host) -> Flow {
        let mut run = Run {
            rules: self,
            state,
            host,
            phase: Phase::Request,
            dry_run: false,
            rule_name: "",
            capture_cells: 0,
            touched: None,
        };
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
    /// On a response a request rule made itself, only the deferred edits apply.
    pub fn on_response_headers(&self, state: &mut RequestState, host: &mut impl Host) -> Flow {
        let deferred = std::mem::take(&mut state.deferred);
        if state.responded && deferred.is_empty() {
            return Flow::Continue;
        }
        // What the edits write is noted only where a response rule may answer: the answer carries it.
        let mut touched = (self.carries && !state.responded).then(carry::Touched::default);
        let mut run = Run {
            rules: self,
            state,
            host,
            phase: Phase::Response,
            dry_run: false,
            rule_name: "",
            capture_cells: 0,
            touched: touched.as_mut(),
        };
        run.record(|| Event::Phase(Phase::Response));
        for edits in &deferred {
            let Some(rule) = self.request_rules.get(edits.rule) else { continue };
            if let Some(Action::ResponseHeaders(header_edits)) = rule.actions.get(edits.action) {
                run.record(|| Event::ApplyDeferred { rule: rule.name.to_string() });
                run.dry_run = edits.dry_run;
                run.rule_name = &rule.name;
                run.apply_edits(HeaderMap::Response, header_edits, &mut edits.values.iter().map(Option::as_deref));
            }
        }
        // The filter's own answer (Envoy passes it through this callback): it gets the request rules'
        // response headers, as Gateway API applies a route's to its redirects, and no response rules.
        if run.state.responded {
            return Flow::Continue;
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
    /// The capture cells of the rule acting now: what its captures grow to once one is found.
    capture_cells: usize,
    /// The response headers the phase's edits wrote, noted only when a response rule may answer (see
    /// `carry.rs`); `None` otherwise.
    touched: Option<&'s mut carry::Touched>,
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
            self.candidates(indexes, &mut candidates, 0);
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
                self.candidates(indexes, &mut candidates, next);
            }
        }
        Flow::Continue
    }

    /// The rules from `from` on that the request's current values can match: those no index serves, and those
    /// whose key holds. An index with no rule from `from` on is not looked up (after a write late in the
    /// phase, most are not); the set is then exact only from `from` on, which is all the walk still reads.
    fn candidates(&mut self, indexes: &PhaseIndex, candidates: &mut RuleBits, from: usize) {
        *candidates = indexes.always();
        for strings in indexes.strings().iter().filter(|s| s.serves_from(from)) {
            let place = &strings.place;
            self.ensure_view(place.slot, &place.view);
            if let Some(value) = self.view(place.slot, &place.view) {
                strings.lookup(&value, candidates);
            }
        }
        for cidrs in indexes.cidrs().iter().filter(|c| c.serves_from(from)) {
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
        self.capture_cells = rule.capture_cells;
        // Captures are taken only from a rule that matched: one that does not allocates nothing.
        let matched = rule.when.as_ref().is_none_or(|expr| self.eval(expr, None));
        let mut captures: Vec<Option<String>> = Vec::new();
        if let Some(expr) = rule.when.as_ref().filter(|_| matched && rule.capture_cells > 0) {
            self.eval(expr, Some(&mut captures));
        }
        if let Some(need) = rule.body.as_deref().filter(|_| matched) {
            return self.await_body(index, rule, need, captures);
        }
        if self.state.trace.is_some() {
            let miss = match (&rule.when, matched) {
                (Some(expr), false) => self.explain(expr),
                _ => None,
            };
            self.record(|| Event::Rule { index, name: rule.name.to_string(), miss });
        }
        if !matched {
            return Outcome::NoMatch;
        }
        self.note_match(index, rule);
        for (action_index, action) in rule.actions.iter().enumerate() {
            self.host.count(rule.action_counter(action_index));
            if self.action(rule, index, action_index, action, &captures) == Outcome::Responded {
                return Outcome::Responded;
            }
        }
        Outcome::Matched
    }

    /// A rule matched: logged, counted, and listed for the debug header.
    fn note_match(&mut self, index: usize, rule: &Rule) {
        self.log(log::Level::Debug, format_args!("{} rule {:?} matched", self.phase.key(), &*rule.name));
        self.host.count(rule.matched_counter());
        if self.rules.debug_header.is_some() {
            self.state.matched.push((self.phase, index));
        }
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
}
