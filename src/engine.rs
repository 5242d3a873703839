//! Runs a [`RuleSet`] against one HTTP exchange.
//!
//! The engine talks to the proxy only through [`Host`], so the same code runs inside Envoy, in native tests
//! and in tools. Per request it keeps a [`RequestState`]: the header values fetched so far (each at most once)
//! and what the request phase left for the response phase.

use log::debug;

use crate::ruleset::{Action, Condition, HeaderEdits, HeaderMap, LocalResponse, Rule, RuleSet, Test, View};

/// What the engine needs from the proxy for one exchange. Names are lower-case.
pub trait Host {
    /// The first value of a header, or `None` when absent. Only called for the current phase's map, plus the
    /// response map never before the response phase.
    fn header(&mut self, map: HeaderMap, name: &str) -> Option<String>;
    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str);
    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str);
    fn remove_header(&mut self, map: HeaderMap, name: &str);
    /// Answers the client from the proxy. In the request phase the upstream is never called; in the response
    /// phase the upstream's response is replaced. Returns whether the proxy accepted it; if not, the exchange
    /// goes on as if the rule had not answered, rather than hang.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) -> bool;
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

/// The state of one exchange between its phases.
#[derive(Debug)]
pub struct RequestState {
    values: Vec<Lookup>,
    /// Request rules that matched and left `response_headers` actions for the response phase.
    deferred_rules: Vec<usize>,
    responded: bool,
}

impl RequestState {
    /// Whether a rule already answered this exchange; later phases then leave it alone.
    pub fn responded(&self) -> bool {
        self.responded
    }
}

impl RuleSet {
    /// A fresh state for a new exchange (no allocation when the rules read no header).
    pub fn new_request(&self) -> RequestState {
        RequestState {
            values: vec![Lookup::NotFetched; self.slots.len()],
            deferred_rules: Vec::new(),
            responded: false,
        }
    }

    /// Runs the request rules; call when the request headers arrive.
    pub fn on_request_headers(&self, state: &mut RequestState, host: &mut impl Host) -> Flow {
        for (index, rule) in self.request_rules.iter().enumerate() {
            if !self.matches(rule, HeaderMap::Request, state, host) {
                continue;
            }
            debug!("request rule {:?} matched", &*rule.name);
            if rule.defers_response_edits {
                state.deferred_rules.push(index);
            }
            if let Flow::Responded = run_actions(rule, HeaderMap::Request, host) {
                state.responded = true;
                return Flow::Responded;
            }
            if rule.stop {
                break;
            }
        }
        // Request headers are gone by the response phase: keep what response rules will read.
        for &slot in &self.carried_slots {
            self.fetch(slot, HeaderMap::Request, state, host);
        }
        Flow::Continue
    }

    /// Applies deferred response edits, then runs the response rules; call when the response headers arrive.
    /// Does nothing for a response a rule made itself.
    pub fn on_response_headers(&self, state: &mut RequestState, host: &mut impl Host) -> Flow {
        if state.responded {
            return Flow::Continue;
        }
        for rule in state.deferred_rules.iter().filter_map(|&i| self.request_rules.get(i)) {
            for action in &rule.actions {
                if let Action::ResponseHeaders(edits) = action {
                    apply_edits(edits, HeaderMap::Response, host);
                }
            }
        }
        for rule in &self.response_rules {
            if !self.matches(rule, HeaderMap::Response, state, host) {
                continue;
            }
            debug!("response rule {:?} matched", &*rule.name);
            if let Flow::Responded = run_actions(rule, HeaderMap::Response, host) {
                state.responded = true;
                return Flow::Responded;
            }
            if rule.stop {
                break;
            }
        }
        Flow::Continue
    }

    fn matches(&self, rule: &Rule, phase: HeaderMap, state: &mut RequestState, host: &mut impl Host) -> bool {
        rule.conditions.iter().all(|condition| self.holds(condition, phase, state, host))
    }

    fn holds(&self, condition: &Condition, phase: HeaderMap, state: &mut RequestState, host: &mut impl Host) -> bool {
        let value = self.fetch(condition.slot, phase, state, host).map(|v| view(v, condition.view));
        match (&condition.test, value) {
            (Test::Present(want), value) => value.is_some() == *want,
            (Test::Matches(m), Some(value)) => m.is_match(value),
            (Test::OneOf(allowed), Some(value)) => allowed.iter().any(|a| **a == *value),
            (_, None) => false,
        }
    }

    /// The value in `slot`, fetched from the proxy on first use. A request header is never fetched in the
    /// response phase (the proxy no longer has it): what was not carried over reads as absent.
    fn fetch<'s>(
        &self,
        slot: usize,
        phase: HeaderMap,
        state: &'s mut RequestState,
        host: &mut impl Host,
    ) -> Option<&'s str> {
        let spec = self.slots.get(slot)?;
        let cell = state.values.get_mut(slot)?;
        if *cell == Lookup::NotFetched {
            if spec.map == HeaderMap::Request && phase == HeaderMap::Response {
                return None;
            }
            *cell = match host.header(spec.map, &spec.name) {
                Some(value) => Lookup::Present(value),
                None => Lookup::Absent,
            };
        }
        match cell {
            Lookup::Present(value) => Some(value.as_str()),
            Lookup::Absent | Lookup::NotFetched => None,
        }
    }
}

/// The part of a value a condition looks at.
fn view(value: &str, view: View) -> &str {
    match view {
        View::Whole => value,
        View::PathOnly => value.split_once('?').map_or(value, |(path, _)| path),
        View::HostOnly => strip_port(value),
    }
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

fn run_actions(rule: &Rule, phase: HeaderMap, host: &mut impl Host) -> Flow {
    for action in &rule.actions {
        match action {
            Action::RequestHeaders(edits) => apply_edits(edits, HeaderMap::Request, host),
            // From a request rule these wait for the response (see `defers_response_edits`).
            Action::ResponseHeaders(edits) if phase == HeaderMap::Response => {
                apply_edits(edits, HeaderMap::Response, host);
            }
            Action::ResponseHeaders(_) => {}
            Action::Respond(response) => {
                if respond(response, host) {
                    return Flow::Responded;
                }
            }
        }
    }
    Flow::Continue
}

fn apply_edits(edits: &HeaderEdits, map: HeaderMap, host: &mut impl Host) {
    for (name, value) in &edits.set {
        host.set_header(map, name, value);
    }
    for (name, value) in &edits.add {
        host.add_header(map, name, value);
    }
    for name in &edits.remove {
        host.remove_header(map, name);
    }
}

fn respond(response: &LocalResponse, host: &mut impl Host) -> bool {
    let headers: Vec<(&str, &str)> = response.headers.iter().map(|(n, v)| (&**n, &**v)).collect();
    host.send_response(response.status, &headers, &response.body)
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
    }

    #[test]
    fn path_view_drops_the_query() {
        assert_eq!(view("/a/b?x=1?y", View::PathOnly), "/a/b");
        assert_eq!(view("/a/b", View::PathOnly), "/a/b");
    }
}
