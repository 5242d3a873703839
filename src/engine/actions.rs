//! Running a rule's actions: dispatch and header edits.

use super::empty_values::rendered_empty;
use super::templates::fixed_text;
use super::{DeferredEdits, Host, Outcome, Run};
use crate::error::Phase;
use crate::ruleset::{Action, HeaderEdits, HeaderMap, HeaderName, Rule, Template};
use crate::trace::Event;
use std::borrow::Cow;

impl<'r, H: Host> Run<'r, '_, H> {
    pub(super) fn action(
        &mut self,
        rule: &'r Rule,
        index: usize,
        action_index: usize,
        action: &'r Action,
        captures: &[Option<String>],
    ) -> Outcome {
        match action {
            Action::RequestHeaders(edits) => self.edit_headers(HeaderMap::Request, rule, edits, captures),
            Action::ResponseHeaders(edits) => match self.phase {
                Phase::Response => self.edit_headers(HeaderMap::Response, rule, edits, captures),
                Phase::Request => {
                    let values = self.render_edit_values(rule, edits, captures);
                    let dry_run = self.dry_run;
                    let values = values.into_iter().map(|value| value.map(Cow::into_owned)).collect();
                    self.state.deferred.push(DeferredEdits { rule: index, action: action_index, values, dry_run });
                    self.record(|| Event::Deferred);
                }
            },
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
            Action::RateLimit(limit) => return self.rate_limit(rule, limit, captures),
            Action::Rewrite(rewrite) => self.rewrite(rule, rewrite, captures),
            // Made on the held body when it is whole (engine/body.rs), never from here.
            Action::Body { .. } => {}
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

    /// Renders the values of an action's edits, then applies them (a value reads the headers as they were
    /// before the action). Most actions write fixed values: those are applied as compiled, without a list of
    /// rendered values made for them.
    fn edit_headers(&mut self, map: HeaderMap, rule: &Rule, edits: &HeaderEdits, captures: &[Option<String>]) {
        if templates(edits).all(|(_, template)| fixed_text(template).is_some()) {
            return self.apply_edits(map, edits, &mut templates(edits).map(|(_, template)| fixed_text(template)));
        }
        let values = self.render_edit_values(rule, edits, captures);
        self.apply_edits(map, edits, &mut values.iter().map(Option::as_deref));
    }

    /// The values of `set`, `set_if_absent` and `add`, in that order; `None` for a refused value. Fixed values
    /// are borrowed from the rule, not copied.
    fn render_edit_values<'t>(
        &mut self,
        rule: &Rule,
        edits: &'t HeaderEdits,
        captures: &[Option<String>],
    ) -> Vec<Option<Cow<'t, str>>> {
        templates(edits).map(|(name, template)| self.render_header(rule, name, template, captures)).collect()
    }

    /// Applies `edits`, with `values` those of `set`, `set_if_absent` and `add` in that order (`None` for a
    /// refused one). Not generic over the iterator: one copy of this long function serves every caller.
    pub(super) fn apply_edits(
        &mut self,
        map: HeaderMap,
        edits: &HeaderEdits,
        values: &mut dyn Iterator<Item = Option<&str>>,
    ) {
        for (from, to) in &edits.copy {
            if let Some(value) = self.current_header(map, from) {
                self.set_header(map, to, &value);
            }
        }
        for (from, to) in &edits.rename {
            if let Some(value) = self.current_header(map, from) {
                self.set_header(map, to, &value);
                self.remove_header(map, from, from.slot, from.carry);
            }
        }
        let which = map.key();
        for (name, template) in &edits.set {
            if let Some(Some(value)) = values.next() {
                if rendered_empty(value, template) {
                    self.leave_out(format_args!("set {which} header {name:?} rendered empty: removed instead"));
                    self.remove_header(map, name, name.slot, name.carry);
                } else {
                    self.set_header(map, name, value);
                }
            }
        }
        for (name, template) in &edits.set_if_absent {
            if let Some(Some(value)) = values.next() {
                if rendered_empty(value, template) {
                    self.leave_out(format_args!("set_if_absent {which} header {name:?} rendered empty: left out"));
                } else if self.current_header(map, name).is_none() {
                    self.set_header(map, name, value);
                }
            }
        }
        for (name, template) in &edits.add {
            if let Some(Some(value)) = values.next() {
                if rendered_empty(value, template) {
                    self.leave_out(format_args!("add {which} header {name:?} rendered empty: left out"));
                } else {
                    self.add_header(map, name, value);
                }
            }
        }
        for name in &edits.remove {
            self.remove_header(map, name, name.slot, name.carry);
        }
        if edits.needs_names() {
            let removed = |name: &str| {
                !name.starts_with(':')
                    && (edits.remove_prefix.iter().any(|p| name.starts_with(&**p))
                        || edits.remove_regex.iter().any(|r| r.is_match(name)))
            };
            let mut names = self.host.header_names_where(map, &removed);
            names.sort_unstable();
            names.dedup();
            for name in &names {
                self.remove_header(map, name, self.header_slot(map, name), None);
            }
        }
    }
}

/// The names and templates of `set`, `set_if_absent` and `add`, in that order.
fn templates(edits: &HeaderEdits) -> impl Iterator<Item = &(HeaderName, Template)> {
    edits.set.iter().chain(&edits.set_if_absent).chain(&edits.add)
}
