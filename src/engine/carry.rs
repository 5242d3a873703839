//! The filter's own answer in the response phase carries the response header edits made before it.
//!
//! Envoy sends a reply made while the upstream's response headers are being encoded straight to the codec,
//! past every encoder filter (`FilterManager::sendLocalReply`): the upstream's response, and with it every
//! edit the exchange made to it, is dropped. So that a request rule's `response_headers` and an earlier
//! response rule's edits reach the client on that answer too, the response phase notes which headers its edits
//! wrote, and the answer takes those headers as the edits left them in the held response map, in place of its
//! own of the same names: the edits win, as they do on a request-phase answer, where they run after it is made.
//! Only a document with a response rule that can answer notes anything ([`crate::RuleSet`]'s `carries`).

use super::{Host, Run};
use crate::join::join;
use crate::ruleset::HeaderMap;

/// The response headers the phase's edits wrote so far: the ids of names the document gives
/// (`HeaderName::carry`), and names known only per request (removed by prefix or regex).
#[derive(Default)]
pub(super) struct Touched {
    /// One bit per id below 256, so that noting a write allocates nothing.
    bits: [u64; 4],
    /// Names without an id below 256.
    named: Vec<String>,
}

impl Touched {
    /// Inlined where the engine writes: most documents' names have ids, and noting one is setting a bit.
    #[inline]
    pub(super) fn mark(&mut self, carry: Option<u16>, name: &str) {
        match carry.and_then(|id| Some((self.bits.get_mut(usize::from(id / 64))?, id % 64))) {
            Some((word, bit)) => *word |= 1 << bit,
            None => self.mark_named(name),
        }
    }

    #[cold]
    #[inline(never)]
    fn mark_named(&mut self, name: &str) {
        if !self.named.iter().any(|known| known == name) {
            self.named.push(name.to_owned());
        }
    }

    /// The names written, those with an id first (in id order); `names` are the document's by id.
    fn names<'a>(&'a self, names: &'a [Box<str>]) -> Vec<&'a str> {
        let ids = self.bits.iter().map(|word| word.count_ones() as usize).sum::<usize>();
        let mut written = Vec::with_capacity(ids + self.named.len());
        for (word_index, &word) in self.bits.iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                let id = word_index * 64 + rest.trailing_zeros() as usize;
                rest &= rest - 1;
                if let Some(name) = names.get(id) {
                    written.push(&**name);
                }
            }
        }
        written.extend(self.named.iter().map(String::as_str));
        written
    }
}

/// An answer's headers with the phase's writes carried onto them.
pub(super) struct Carried {
    pub headers: Vec<(String, String)>,
    /// The names carried with their values, and those the edits removed (the answer's own are left out too).
    pub kept: Vec<String>,
    pub removed: Vec<String>,
}

impl Carried {
    /// `carrying x-a, x-b; without server`, for dry-run lines.
    pub(super) fn describe(&self) -> String {
        let mut text = String::new();
        if !self.kept.is_empty() {
            text = format!(" carrying {}", join(&self.kept, ", "));
        }
        if !self.removed.is_empty() {
            let without = if text.is_empty() { " without " } else { "; without " };
            text.push_str(without);
            text.push_str(&join(&self.removed, ", "));
        }
        text
    }
}

impl<H: Host> Run<'_, '_, H> {
    /// Notes a write to a response header, when the phase keeps such notes.
    #[inline]
    pub(super) fn note_carried(&mut self, map: HeaderMap, carry: Option<u16>, name: &str) {
        if let Some(touched) = self.touched.as_deref_mut() {
            if map == HeaderMap::Response {
                touched.mark(carry, name);
            }
        }
    }

    /// The answer's headers `own` with what the phase's edits wrote carried onto them: a written header's
    /// values from the held response map replace the answer's own of that name, and a removed one takes
    /// the answer's away. `None` outside the response phase, or when no edit wrote.
    pub(super) fn carried(&mut self, own: &[(&str, &str)]) -> Option<Carried> {
        // Taken out while the host is asked, and put back: a refused answer lets the phase go on writing.
        let touched = self.touched.take()?;
        let carried = self.carry_onto(own, touched);
        self.touched = Some(touched);
        carried
    }

    fn carry_onto(&mut self, own: &[(&str, &str)], touched: &Touched) -> Option<Carried> {
        let rules = self.rules;
        let names = touched.names(&rules.carried_names);
        if names.is_empty() {
            return None;
        }
        let mut headers = Vec::with_capacity(own.len() + names.len());
        for (name, value) in own {
            if !names.iter().any(|written| written.eq_ignore_ascii_case(name)) {
                headers.push(((*name).to_owned(), (*value).to_owned()));
            }
        }
        // What was carried is listed only for a trace or a dry-run line.
        let listed = self.dry_run || self.state.trace.is_some();
        let (mut kept, mut removed) = (Vec::new(), Vec::new());
        for name in names {
            let values = self.host.header_values(HeaderMap::Response, name);
            let list = if values.is_empty() { &mut removed } else { &mut kept };
            if listed {
                list.push(name.to_owned());
            }
            for value in values {
                headers.push((name.to_owned(), value));
            }
        }
        Some(Carried { headers, kept, removed })
    }
}

#[cfg(test)]
mod tests {
    use super::{Carried, Touched};
    use std::collections::HashMap;

    #[test]
    fn only_a_document_whose_response_rules_can_answer_notes_writes() {
        let edit = "response_headers: {set: {x-a: b}, rename: [{from: x-b, to: x-c}]}";
        let plain = format!("response:\n  - name: tag\n    actions: [{{{edit}}}]\n");
        let rules = crate::parse_with_env(&plain, &HashMap::new()).unwrap();
        assert!(!rules.carries && rules.carried_names.is_empty());
        let answering = format!("{plain}  - name: answer\n    actions: [{{respond: {{status: 503}}}}]\n");
        let rules = crate::parse_with_env(&answering, &HashMap::new()).unwrap();
        assert!(rules.carries);
        let names: Vec<&str> = rules.carried_names.iter().map(|n| &**n).collect();
        assert_eq!(names, ["x-b", "x-c", "x-a"]);
    }

    #[test]
    fn names_come_in_id_order_then_by_name_each_once() {
        // Ids from 256 on are noted by name, as names known only per request are.
        let names: Vec<Box<str>> = (0..300).map(|i| format!("h{i}").into()).collect();
        let mut touched = Touched::default();
        for id in [Some(299), Some(70), None, Some(3), Some(70), None, Some(299)] {
            let name = id.map_or("x-late".to_owned(), |id| format!("h{id}"));
            touched.mark(id, &name);
        }
        assert_eq!(touched.names(&names), ["h3", "h70", "h299", "x-late"]);
    }

    #[test]
    fn a_dry_run_line_names_what_is_carried_and_what_is_left_out() {
        let carried = |kept: &[&str], removed: &[&str]| Carried {
            headers: Vec::new(),
            kept: kept.iter().map(|n| (*n).to_owned()).collect(),
            removed: removed.iter().map(|n| (*n).to_owned()).collect(),
        };
        assert_eq!(carried(&["x-a", "x-b"], &[]).describe(), " carrying x-a, x-b");
        assert_eq!(carried(&[], &["server"]).describe(), " without server");
        assert_eq!(carried(&["x-a"], &["server", "x-c"]).describe(), " carrying x-a; without server, x-c");
    }
}
