//! Rules that read or write a body: admitted in the headers phase, decided when the body is whole.
//!
//! In the headers phase a body rule whose `match` holds is *admitted* (its content type is one it reads, the
//! message is no stream, its announced length fits) and then waits; the proxy holds the message only while
//! some rule waits. When the body is whole, or past every waiting rule's limit, the waiting rules are decided
//! in order and their actions run. A document without body rules never reaches this code.

use super::{Flow, Host, Outcome, RequestState, Run};
use crate::body::limit::{self, Fill, OverLimit};
use crate::body::media;
use crate::body::rule::{BodyRule, HeldBody};
use crate::error::Phase;
use crate::limits::MAX_BODY_HOLD_BYTES;
use crate::ruleset::{Action, HeaderMap, Rule, RuleSet};
use crate::trace::{Event, Miss};

/// A rule admitted in the headers phase, waiting for its phase's body.
#[derive(Debug)]
pub(super) struct Waiting {
    phase: Phase,
    rule: usize,
    max_bytes: usize,
    /// The captures of its `match`, for its templates.
    captures: Vec<Option<String>>,
}

/// The message a phase's body belongs to.
fn message(phase: Phase) -> HeaderMap {
    match phase {
        Phase::Request => HeaderMap::Request,
        Phase::Response => HeaderMap::Response,
    }
}

impl RequestState {
    /// How many bytes of `phase`'s body to hold: the largest limit of the rules waiting for it; `None` when no
    /// rule waits, and the body must pass untouched (the body callbacks then return at once).
    pub fn body_hold(&self, phase: Phase) -> Option<usize> {
        self.waiting.iter().filter(|w| w.phase == phase).map(|w| w.max_bytes).max()
    }
}

impl RuleSet {
    /// Whether any rule reads or writes a body: a document without one never holds a message.
    pub fn reads_bodies(&self) -> bool {
        self.request_rules.iter().chain(&self.response_rules).any(|r| r.body.is_some())
    }

    /// Decides the request rules waiting for the body; call when the request body is whole (`Fill::Complete`:
    /// the engine then asks the host for it) or past the limit (`Fill::Over`). `Responded` if a rule answered.
    pub fn on_request_body(&self, state: &mut RequestState, host: &mut impl Host, fill: Fill) -> Flow {
        self.on_body(Phase::Request, state, host, fill)
    }

    /// The same for the response body.
    pub fn on_response_body(&self, state: &mut RequestState, host: &mut impl Host, fill: Fill) -> Flow {
        self.on_body(Phase::Response, state, host, fill)
    }

    fn on_body(&self, phase: Phase, state: &mut RequestState, host: &mut impl Host, fill: Fill) -> Flow {
        if !state.waiting.iter().any(|w| w.phase == phase) {
            return Flow::Continue;
        }
        let (waiting, others): (Vec<Waiting>, Vec<Waiting>) =
            std::mem::take(&mut state.waiting).into_iter().partition(|w| w.phase == phase);
        state.waiting = others;
        if state.responded {
            return Flow::Continue;
        }
        let map = message(phase);
        let mut run =
            Run { rules: self, state, host, phase, dry_run: false, rule_name: "", capture_cells: 0, touched: None };
        let mut body = match fill {
            Fill::Complete => Some(HeldBody::new(run.host.body(map))),
            Fill::Waiting | Fill::Over => None,
        };
        let bytes = body.as_ref().map(|b| b.bytes().len());
        run.record(|| Event::BodyArrived { map, bytes });
        for waiting in &waiting {
            let Some(rule) = self.rule_at(phase, waiting.rule) else { continue };
            if run.decide(waiting, rule, body.as_mut()) == Outcome::Responded {
                run.state.responded = true;
                return Flow::Responded;
            }
        }
        if let Some(body) = body.filter(HeldBody::changed) {
            if run.host.set_body(map, body.bytes()) {
                run.record(|| Event::BodyEdited { map, bytes: body.bytes().len() });
            } else {
                run.refuse(format!("the proxy refused the edited {} body; the original went on", map.key()));
            }
        }
        Flow::Continue
    }
}

impl<'r, H: Host> Run<'r, '_, H> {
    /// In the headers phase, for a body rule whose `match` held: whether it waits for the body (`Matched`),
    /// cannot read this message (`NoMatch`, traced with why), or answered already (`Responded`: a request
    /// announced past the limit of a rule that rejects those).
    pub(super) fn await_body(
        &mut self,
        index: usize,
        rule: &'r Rule,
        need: &BodyRule,
        captures: Vec<Option<String>>,
    ) -> Outcome {
        let map = message(self.phase);
        match self.admit(need) {
            Ok(()) => {
                self.record(|| Event::Rule { index, name: rule.name.to_string(), miss: None });
                let max_bytes = need.max_bytes;
                self.state.waiting.push(Waiting { phase: self.phase, rule: index, max_bytes, captures });
                self.record(|| Event::AwaitsBody { map, max_bytes });
                if !rule.dry_run && rule.actions.iter().any(|a| matches!(a, Action::Body { .. })) {
                    // The new length is known only once the body is whole: drop the announced one now, and the
                    // proxy frames the body itself (chunked on HTTP/1.1; HTTP/2 frames carry no length).
                    self.host.remove_header(map, "content-length");
                }
                Outcome::Matched
            }
            Err((miss, reject)) => {
                self.record(|| Event::Rule { index, name: rule.name.to_string(), miss: Some(miss) });
                if reject {
                    self.reject_too_large(rule)
                } else {
                    Outcome::NoMatch
                }
            }
        }
    }

    /// Whether the message can be held for `need`; otherwise why not, and whether it is a request announced past
    /// the limit of a rule that rejects those.
    fn admit(&mut self, need: &BodyRule) -> Result<(), (Miss, bool)> {
        let map = message(self.phase);
        let miss = |field: &str, reason: String| Miss { field: field.to_owned(), reason, alternatives: Vec::new() };
        let content_type = self.current_header_by_name(map, "content-type").unwrap_or_default();
        let media = media::media_type(&content_type);
        let upgrade = match self.phase {
            Phase::Request => self.current_header_by_name(map, "upgrade"),
            Phase::Response => None,
        };
        if let Some(stream) = media::stream_kind(&media, upgrade.as_deref()) {
            return Err((miss("body", format!("the {} is {stream}, which is never held", map.key())), false));
        }
        if !need.reads_type(&media) {
            let got = if media.is_empty() { "no content-type".to_owned() } else { format!("content-type {media:?}") };
            let reason = format!("got {got}, wanted one of {}", crate::join::join(&need.content_types, ", "));
            return Err((miss("body.content_types", reason), false));
        }
        let length = self.current_header_by_name(map, "content-length");
        if limit::announced_over(length.as_deref(), need.max_bytes) {
            let announced = length.unwrap_or_default();
            let reason = format!(
                "the {} announces {} bytes, over body.max_bytes {}",
                map.key(),
                announced.trim(),
                need.max_bytes
            );
            return Err((miss("body.max_bytes", reason), need.over_limit == OverLimit::Reject));
        }
        Ok(())
    }

    /// Answers 413 to a request past the limit of `rule`, which rejects those.
    fn reject_too_large(&mut self, rule: &'r Rule) -> Outcome {
        self.dry_run = rule.dry_run;
        self.rule_name = &rule.name;
        let body = format!("request body too large for rule {}\n", rule.name);
        if self.send_response(413, &[("content-type", "text/plain")], &body) {
            Outcome::Responded
        } else {
            Outcome::NoMatch
        }
    }

    /// Decides one waiting rule on the whole body (`None`: the body went past the limit and was not read), and
    /// runs its actions if it holds.
    fn decide(&mut self, waiting: &Waiting, rule: &'r Rule, body: Option<&mut HeldBody>) -> Outcome {
        let Some(need) = rule.body.as_deref() else { return Outcome::NoMatch };
        let index = waiting.rule;
        let map = message(self.phase);
        let verdict = match body {
            None => {
                Err(("body.max_bytes".to_owned(), format!("the {} body is over {} bytes", map.key(), need.max_bytes)))
            }
            Some(held) if held.bytes().len() > need.max_bytes => {
                let reason = format!("the {} body is {} bytes, over {}", map.key(), held.bytes().len(), need.max_bytes);
                Err(("body.max_bytes".to_owned(), reason))
            }
            Some(held) => need.check(held).map(|()| held),
        };
        let held = match verdict {
            Ok(held) => held,
            Err((field, reason)) => {
                let miss = Miss { field, reason, alternatives: Vec::new() };
                let over = miss.field == "body.max_bytes";
                self.record(|| Event::Rule { index, name: rule.name.to_string(), miss: Some(miss) });
                if over && need.over_limit == OverLimit::Reject && self.phase == Phase::Request {
                    return self.reject_too_large(rule);
                }
                return Outcome::NoMatch;
            }
        };
        self.record(|| Event::Rule { index, name: rule.name.to_string(), miss: None });
        self.dry_run = rule.dry_run;
        self.rule_name = &rule.name;
        self.note_match(index, rule);
        for (action_index, action) in rule.actions.iter().enumerate() {
            self.host.count(rule.action_counter(action_index));
            let outcome = match action {
                Action::Body { map, edits } if self.dry_run => {
                    self.would(format!("edit the {} body", map.key()));
                    Outcome::Matched
                }
                Action::Body { map, edits } => {
                    let applied = held.edit(edits, MAX_BODY_HOLD_BYTES);
                    for skipped in applied.skipped {
                        self.refuse(format!("rule {:?}: {} body: {skipped}", &*rule.name, map.key()));
                    }
                    Outcome::Matched
                }
                other => self.action(rule, index, action_index, other, &waiting.captures),
            };
            if outcome == Outcome::Responded {
                return Outcome::Responded;
            }
        }
        Outcome::Matched
    }
}
