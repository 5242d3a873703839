//! Headers whose template renders empty (`access-control-allow-headers: "${header.access-control-request-headers}"`
//! on a request without that header) are left out rather than sent empty: a `set` removes the header, so a
//! client's own value never survives a rule that meant to replace it; `set_if_absent`, `add` and `respond`
//! headers write nothing. A value written literally empty (`""`) is sent as written.

use super::{Host, Run};
use crate::ruleset::Template;
use crate::trace::Event;

/// Whether `value`, rendered from `template`, is to be left out: empty, and not written so.
pub(super) fn rendered_empty(value: &str, template: &Template) -> bool {
    value.is_empty() && !template.is_literal()
}

impl<H: Host> Run<'_, '_, H> {
    /// Says that a header was left out because its value rendered empty (`what` names it and what happens).
    pub(super) fn leave_out(&mut self, what: std::fmt::Arguments<'_>) {
        self.log(log::Level::Debug, format_args!("rule {:?}: {what}", self.rule_name));
        self.record(|| Event::LeftOut(what.to_string()));
    }
}
