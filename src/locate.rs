//! Where a field stands in the source text, so tools can print `file:line:column` for an error.
//!
//! serde and serde_yaml keep no positions, so the text is read a second time, as a stream of YAML events, and
//! the position of every node is recorded under its path, written the way errors write field paths:
//! `request[0].match.headers.x-user.regex`. JSON is YAML, so the same works for Istio's compact JSON.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span, SpannedEventReceiver};

/// A position in the text: line and column, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The positions of the nodes of each YAML document in a text.
#[derive(Debug, Default)]
pub struct SourceMap {
    documents: Vec<HashMap<String, Position>>,
}

impl SourceMap {
    /// Maps every document of `text`; a text the parser refuses maps to nothing (its syntax error is reported
    /// elsewhere).
    pub fn new(text: &str) -> SourceMap {
        let mut recorder = Recorder::default();
        if Parser::new_from_str(text).load(&mut recorder, true).is_err() {
            return SourceMap::default();
        }
        SourceMap { documents: recorder.documents }
    }

    /// The position of `path` in document `document` (0 for the first); when that exact node is missing (a
    /// field that should be there and is not), the position of its nearest ancestor.
    pub fn find(&self, document: usize, path: &str) -> Option<Position> {
        let nodes = self.documents.get(document)?;
        let mut path = path;
        loop {
            if let Some(position) = nodes.get(path) {
                return Some(*position);
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(at) => path.get(..at).unwrap_or_default(),
        None => "",
    }
}

/// Where the event stream is inside one collection.
enum Frame {
    /// In a mapping: the next scalar is a key (`key: None`) or the value of `key`.
    Mapping {
        path: String,
        key: Option<String>,
    },
    Sequence {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Recorder {
    documents: Vec<HashMap<String, Position>>,
    stack: Vec<Frame>,
}

impl Recorder {
    /// The path of the node that starts now, after recording its position; `None` when the node is a
    /// mapping key, whose text becomes the pending key (and whose position is recorded for the entry).
    fn node_path(&mut self, key_text: Option<&str>, at: Position) -> Option<String> {
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Sequence { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                item
            }
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some(key) => join(path, &key),
                None => {
                    // The entry's position is its key's: where an editor should go. A block mapping's start
                    // marker lies past its first key, so the mapping starts no later than that key.
                    let text = key_text.unwrap_or_default().to_owned();
                    let entry = join(path, &text);
                    let mapping = path.clone();
                    *key = Some(text);
                    self.record(entry, at);
                    self.record(mapping, at);
                    return None;
                }
            },
        };
        self.record(path.clone(), at);
        Some(path)
    }

    /// Keeps the earliest position seen for a path.
    fn record(&mut self, path: String, at: Position) {
        if let Some(nodes) = self.documents.last_mut() {
            let position = nodes.entry(path).or_insert(at);
            *position = (*position).min(at);
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'input> SpannedEventReceiver<'input> for Recorder {
    fn on_event(&mut self, event: Event<'input>, span: Span) {
        let at = Position { line: span.start.line(), column: span.start.col() + 1 };
        match event {
            Event::DocumentStart(_) => {
                self.documents.push(HashMap::new());
                self.stack.clear();
            }
            Event::Scalar(text, ..) => {
                self.node_path(Some(&text), at);
            }
            Event::Alias(_) => {
                self.node_path(Some(""), at);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.node_path(None, at) {
                    self.stack.push(Frame::Mapping { path, key: None });
                } else {
                    // A complex (mapping) key: not something rules use; keep the stream balanced.
                    self.stack.push(Frame::Mapping { path: String::from("?"), key: None });
                }
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(None, at).unwrap_or_else(|| String::from("?"));
                self.stack.push(Frame::Sequence { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
request:
  - name: hello
    match:
      path: {regex: '(x'}
      headers:
        x-user: {prefix: a}
    actions:
      - respond: {status: 200}
---
{\"request\":[{\"name\":\"j\",\"match\":{\"pathh\":\"/x\"}}]}
";

    #[test]
    fn paths_are_found_where_their_node_starts() {
        let map = SourceMap::new(TEXT);
        let at = |doc, path| map.find(doc, path).map(|p| (p.line, p.column));
        assert_eq!(at(0, "request"), Some((1, 1)));
        assert_eq!(at(0, "request[0]"), Some((2, 5)));
        assert_eq!(at(0, "request[0].name"), Some((2, 5)));
        assert_eq!(at(0, "request[0].match.path.regex"), Some((4, 14)));
        assert_eq!(at(0, "request[0].match.headers.x-user.prefix"), Some((6, 18)));
        assert_eq!(at(0, "request[0].actions[0].respond.status"), Some((8, 19)));
        // JSON, in the second document.
        assert_eq!(at(1, "request[0].match.pathh"), Some((10, 34)));
    }

    #[test]
    fn a_missing_field_points_at_its_nearest_ancestor() {
        let map = SourceMap::new(TEXT);
        assert_eq!(map.find(0, "request[0].match.method"), map.find(0, "request[0].match"));
        assert_eq!(map.find(0, "request[3].name"), map.find(0, "request"));
        assert_eq!(map.find(5, "request"), None);
    }

    #[test]
    fn single_pair_mappings_in_flow_sequences_are_read() {
        // The short action form the README uses; yaml-rust2 refused it.
        let map = SourceMap::new("request:\n  - name: a\n    actions: [request_headers: {set: {x-a: \"1\"}}]\n");
        let at = map.find(0, "request[0].actions[0].request_headers.set.x-a").map(|p| (p.line, p.column));
        assert_eq!(at, Some((3, 39)));
    }

    #[test]
    fn a_text_the_parser_refuses_maps_to_nothing() {
        assert_eq!(SourceMap::new("a: [b").find(0, "a"), None);
    }
}
