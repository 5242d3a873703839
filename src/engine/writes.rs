//! Writing to the exchange: header edits and answers, kept visible to later rules.

use super::carry::Carried;
use super::{Host, Run};
use crate::compile::is_header_value;
use crate::error::Phase;
use crate::limits::{MAX_HEADER_VALUE_BYTES, MAX_RENDERED_BYTES};
use crate::metrics;
use crate::ruleset::{HeaderMap, HeaderName, Slot};
use crate::trace::{Edit, Event, UrlChange};

impl<'r, H: Host> Run<'r, '_, H> {
    /// The slot of header `name` of `map`, if some rule reads it: for names known only per request (removed by
    /// prefix or regex) and the URL's pseudo-headers. Names an action gives are resolved when the document is
    /// compiled ([`HeaderName`]).
    pub(super) fn header_slot(&self, map: HeaderMap, name: &str) -> Option<usize> {
        self.rules.slots.iter().position(|s| matches!(s, Slot::Header(m, n) if *m == map && &**n == name))
    }

    /// Records the engine's own write to the header in `slot` so later rules in this exchange see it.
    fn note_write(&mut self, slot: Option<usize>, write: Write<'_>) {
        let indexes = match self.phase {
            Phase::Request => &self.rules.request_index,
            Phase::Response => &self.rules.response_index,
        };
        if slot.is_some_and(|slot| indexes.reads(slot)) {
            self.state.writes = self.state.writes.wrapping_add(1);
        }
        if slot.is_some() && self.state.path_split.get().map(|(split, _)| split) == slot {
            self.state.path_split.set(None);
        }
        let Some(slot) = slot else { return };
        match write {
            Write::Set(value) => self.state.values.set(slot, value),
            Write::Add(value) => self.state.values.add(slot, value),
            Write::Remove => self.state.values.remove(slot),
        }
    }

    pub(super) fn set_header(&mut self, map: HeaderMap, name: &HeaderName, value: &str) {
        if self.dry_run {
            return self.would(format!("set {} header {:?} to {value:?}", map.key(), &**name));
        }
        self.note_carried(map, name.carry, name);
        self.write_header(map, name, name.slot, value);
        self.record(|| Event::Header { map, name: name.to_string(), edit: Edit::Set(value.to_owned()) });
    }

    /// A `rewrite` or `query` action's new path or host; traced and dry-run as that action, not as a header.
    pub(super) fn set_url(&mut self, change: UrlChange, value: &str) {
        if self.dry_run {
            return self.would(format!("{change} {value:?}"));
        }
        let name = change.pseudo_header();
        self.write_header(HeaderMap::Request, name, self.header_slot(HeaderMap::Request, name), value);
        self.record(|| Event::Url { change, value: value.to_owned() });
    }

    fn write_header(&mut self, map: HeaderMap, name: &str, slot: Option<usize>, value: &str) {
        self.host.set_header(map, name, value);
        self.note_write(slot, Write::Set(value));
    }

    pub(super) fn add_header(&mut self, map: HeaderMap, name: &HeaderName, value: &str) {
        if self.dry_run {
            return self.would(format!("add {} header {:?} with {value:?}", map.key(), &**name));
        }
        self.note_carried(map, name.carry, name);
        self.host.add_header(map, name, value);
        self.note_write(name.slot, Write::Add(value));
        self.record(|| Event::Header { map, name: name.to_string(), edit: Edit::Add(value.to_owned()) });
    }

    /// Removes header `name`, whose slot is `slot` (see [`Self::header_slot`] for a name known only now) and
    /// carry id `carry` (`None` for a name known only now).
    pub(super) fn remove_header(&mut self, map: HeaderMap, name: &str, slot: Option<usize>, carry: Option<u16>) {
        if self.dry_run {
            return self.would(format!("remove {} header {name:?}", map.key()));
        }
        self.note_carried(map, carry, name);
        self.host.remove_header(map, name);
        self.note_write(slot, Write::Remove);
        self.record(|| Event::Header { map, name: name.to_owned(), edit: Edit::Remove });
    }

    /// Answers the client through the proxy; returns whether it accepted. In the response phase the answer
    /// carries the response headers the edits wrote before it (see `carry.rs`).
    pub(super) fn send_response(&mut self, status: u16, own: &[(&str, &str)], body: &str) -> bool {
        let carried = self.carried(own);
        let carried_pairs: Vec<(&str, &str)>;
        let headers = match &carried {
            Some(carried) => {
                carried_pairs = carried.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                &carried_pairs
            }
            None => own,
        };
        if self.dry_run {
            let what = match own.iter().find(|(name, _)| *name == "location") {
                Some((_, location)) => format!("redirect with {status} to {location:?}"),
                None => format!("respond {status}"),
            };
            let carrying = carried.as_ref().map(Carried::describe).unwrap_or_default();
            self.would(format!("{what}{carrying}"));
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
            if let Some(Carried { kept, removed, .. }) = carried {
                self.record(|| Event::Carried { kept, removed });
            }
        }
        sent
    }
}

/// Why a rendered value cannot be sent as a header value, path or location; `None` if it can.
pub(super) fn unsendable(value: &str) -> Option<String> {
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
pub(super) fn push_capped(out: &mut String, text: &str) -> bool {
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
