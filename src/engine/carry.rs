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
use crate::ruleset::HeaderMap;

/// The response headers the phase's edits wrote so far: the ids of names the document gives
/// (`HeaderName::carry`), and names known only per request (removed by prefix or regex).
#[derive(Debug, Default)]
pub(super) struct Touched {
    /// One bit per id below 256, so that noting a write allocates nothing.
    bits: [u64; 4],
    /// Ids from 256 on.
    more: Vec<u16>,
    /// Names without an id.
    named: Vec<String>,
}

impl Touched {
    pub(super) fn mark(&mut self, carry: Option<u16>, name: &str) {
        match carry {
            Some(id) => match self.bits.get_mut(usize::from(id / 64)) {
                Some(word) => *word |= 1 << (id % 64),
                None if self.more.contains(&id) => {}
                None => self.more.push(id),
            },
            None if self.named.iter().any(|known| known == name) => {}
            None => self.named.push(name.to_owned()),
        }
    }

    /// The names written, those with an id first (in id order); `names` are the document's by id.
    fn names<'a>(&'a self, names: &'a [Box<str>]) -> impl Iterator<Item = &'a str> {
        let low = self.bits.iter().enumerate().flat_map(|(word_index, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                let bit = (rest != 0).then(|| rest.trailing_zeros())?;
                rest &= rest - 1;
                Some(word_index * 64 + bit as usize)
            })
        });
        let ids = low.chain(self.more.iter().map(|&id| usize::from(id)));
        ids.filter_map(|id| names.get(id).map(|name| &**name)).chain(self.named.iter().map(String::as_str))
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
            text.push_str(" carrying ");
            text.push_str(&self.kept.join(", "));
        }
        if !self.removed.is_empty() {
            text.push_str(if self.kept.is_empty() { " without " } else { "; without " });
            text.push_str(&self.removed.join(", "));
        }
        text
    }
}

impl<H: Host> Run<'_, '_, H> {
    /// Notes a write to a response header, when the phase keeps such notes.
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
        let touched = self.touched.as_deref()?;
        let names: Vec<String> = touched.names(&self.rules.carried_names).map(str::to_owned).collect();
        if names.is_empty() {
            return None;
        }
        let written = |name: &str| names.iter().any(|known| known.eq_ignore_ascii_case(name));
        let mut headers: Vec<(String, String)> =
            own.iter().filter(|(name, _)| !written(name)).map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        let (mut kept, mut removed) = (Vec::new(), Vec::new());
        for name in names {
            let values = self.host.header_values(HeaderMap::Response, &name);
            if values.is_empty() {
                removed.push(name);
                continue;
            }
            headers.extend(values.into_iter().map(|value| (name.clone(), value)));
            kept.push(name);
        }
        Some(Carried { headers, kept, removed })
    }
}

#[cfg(test)]
mod tests {
    use super::Touched;
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
        let names: Vec<Box<str>> = (0..300).map(|i| format!("h{i}").into()).collect();
        let mut touched = Touched::default();
        for (id, name) in [(Some(299), ""), (Some(70), ""), (None, "x-late"), (Some(3), ""), (Some(70), "")] {
            touched.mark(id, name);
        }
        touched.mark(None, "x-late");
        touched.mark(Some(299), "");
        let listed: Vec<&str> = touched.names(&names).collect();
        assert_eq!(listed, ["h3", "h70", "h299", "x-late"]);
    }
}
