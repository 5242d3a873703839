//! How deeply a YAML or JSON text nests mappings and lists, measured in one linear pass without parsing it.
//!
//! YAML parsers (libyaml, under serde_yaml) take time quadratic in the nesting depth of flow collections: a
//! 200 KB document of 100,000 brackets held Envoy's main thread for 89 s. [`check`] refuses such a text
//! before any parser sees it, in time linear in its length whatever it holds.
//!
//! The pass follows the YAML tokens that open collections: `[` and `{` (flow, and JSON), `- ` and `? `
//! entries, and `key:` (block collections, tracked by indentation). Quoted scalars, block scalars (`|`, `>`)
//! and comments are skipped, and a plain scalar's brackets (`regex: a[b]`) open nothing in block context, as
//! in YAML. It never counts less than the parser would build up to the point where the parser stops; in rare
//! odd texts (a line continuing a plain scalar that looks like a new entry) it may count more.

/// Where a text first nests deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    /// The limit it went past.
    pub limit: usize,
    /// Line and column (from 1, in characters) of the collection that went past it.
    pub line: usize,
    pub column: usize,
}

/// Checks that `text` nests collections at most `limit` deep.
pub fn check(text: &str, limit: usize) -> Result<(), TooDeep> {
    let mut scan = Scan { limit, ..Scan::default() };
    for (index, line) in lines(text).enumerate() {
        scan.line(line, index + 1)?;
    }
    Ok(())
}

/// The lines of `text`, split at every line break YAML 1.1 (libyaml) knows: LF, CR, CR LF, NEL, LS and PS.
/// Splitting where the parser does matters: a block scalar's end is found by the indentation of the next line.
fn lines(text: &str) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text.as_bytes());
    std::iter::from_fn(move || {
        let bytes = rest?;
        let mut from = 0;
        loop {
            // Every break starts with one of these bytes; NEL is C2 85, LS and PS are E2 80 A8/A9.
            let Some(found) =
                bytes.get(from..).and_then(|b| b.iter().position(|&c| matches!(c, b'\n' | b'\r' | 0xC2 | 0xE2)))
            else {
                rest = None;
                return Some(bytes);
            };
            let at = from + found;
            let tail = bytes.get(at..).unwrap_or_default();
            let length = match tail {
                [b'\r', b'\n', ..] => 2,
                [b'\n' | b'\r', ..] => 1,
                [0xC2, 0x85, ..] => 2,
                [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
                _ => 0,
            };
            if length == 0 {
                from = at + 1;
                continue;
            }
            rest = bytes.get(at + length..);
            return Some(bytes.get(..at).unwrap_or_default());
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mapping,
    Sequence,
}

/// One open flow collection.
#[derive(Debug, Clone, Copy)]
struct FlowLevel {
    sequence: bool,
    /// A `key: value` entry of this sequence is open: YAML makes it a mapping of its own.
    pair: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Single,
    Double,
}

/// A block scalar (`|` or `>`) being skipped: its lines are indented more than `parent`, as deep as its first
/// non-blank line.
#[derive(Debug, Clone, Copy)]
struct BlockScalar {
    parent: usize,
    content: Option<usize>,
}

#[derive(Debug, Default)]
struct Scan {
    limit: usize,
    /// Open block collections, innermost last: the column each starts at, and its kind.
    block: Vec<(usize, Kind)>,
    /// Open flow collections (`[`, `{`), innermost last.
    flow: Vec<FlowLevel>,
    /// Single-pair mappings open inside flow sequences (`[key: value]`), each one level more.
    pairs: usize,
    quote: Option<Quote>,
    block_scalar: Option<BlockScalar>,
    /// The next token starts a node (after `- `, `: `, `[`, `,` …): only there do quotes and brackets count.
    node_start: bool,
    /// Inside a plain scalar, which may go on over the next lines.
    plain: bool,
    /// Where the last scalar began: a mapping starts there if `: ` follows it.
    token_column: usize,
    /// An anchor or tag opened the node being read: the node starts where they do.
    properties: Option<usize>,
    line_number: usize,
}

/// U+FEFF in UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r')
}

fn is_flow_indicator(byte: u8) -> bool {
    matches!(byte, b',' | b'[' | b']' | b'{' | b'}')
}

impl Scan {
    fn line(&mut self, line: &[u8], number: usize) -> Result<(), TooDeep> {
        self.line_number = number;
        // A byte order mark may start any line; libyaml skips it as one column of indentation.
        let replaced;
        let line = match line.strip_prefix(BOM) {
            Some(rest) => {
                replaced = [b" ", rest].concat();
                replaced.as_slice()
            }
            None => line,
        };
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let rest = line.get(indent..).unwrap_or_default();
        let blank = rest.iter().all(|&b| is_blank(b));
        if let Some(scalar) = &mut self.block_scalar {
            if blank {
                return Ok(());
            }
            let content = *scalar.content.get_or_insert(indent);
            if indent > scalar.parent && indent >= content {
                return Ok(());
            }
            self.block_scalar = None;
        }
        let mut at = 0;
        if self.quote.is_none() && self.flow.is_empty() {
            if blank {
                return Ok(());
            }
            if rest.first() == Some(&b'#') {
                self.plain = false;
                return Ok(());
            }
            let marker = indent == 0
                && (line.starts_with(b"---") || line.starts_with(b"..."))
                && line.get(3).is_none_or(|&b| is_blank(b));
            if marker {
                self.block.clear();
                self.plain = false;
                self.node_start = true;
                at = 3;
            } else if self.plain && self.block.last().is_none_or(|&(column, _)| indent > column) {
                // The line goes on with the plain scalar of the line before.
                at = indent;
            } else {
                self.plain = false;
                self.node_start = true;
                self.properties = None;
                while self.block.last().is_some_and(|&(column, _)| column > indent) {
                    self.block.pop();
                }
                at = indent;
            }
        }
        self.scan(line, at)
    }

    fn scan(&mut self, line: &[u8], mut at: usize) -> Result<(), TooDeep> {
        while let Some(&byte) = line.get(at) {
            let next = line.get(at + 1).copied();
            let blank_next = next.is_none_or(is_blank);
            if let Some(quote) = self.quote {
                match (quote, byte) {
                    (Quote::Double, b'\\') => at += 1,
                    (Quote::Single, b'\'') if next == Some(b'\'') => at += 1,
                    (Quote::Double, b'"') | (Quote::Single, b'\'') => self.quote = None,
                    _ => {}
                }
                at += 1;
                continue;
            }
            if is_blank(byte) {
                if next == Some(b'#') {
                    self.plain = false;
                    return Ok(());
                }
                at += 1;
                continue;
            }
            if byte == b'#' && self.node_start {
                self.plain = false;
                return Ok(());
            }
            // A byte order mark is no content: a bracket after it still opens a collection.
            if line.get(at..at + 3) == Some(BOM) {
                at += 3;
                continue;
            }
            let step = if !self.flow.is_empty() {
                self.flow_token(line, at, byte, next)?
            } else {
                match self.block_token(line, at, byte, blank_next)? {
                    Some(step) => step,
                    None => return Ok(()),
                }
            };
            at += step;
        }
        Ok(())
    }

    /// One byte inside `[…]` or `{…}`; returns how many bytes it took.
    fn flow_token(&mut self, line: &[u8], at: usize, byte: u8, next: Option<u8>) -> Result<usize, TooDeep> {
        let blank_or_indicator = next.is_none_or(|b| is_blank(b) || is_flow_indicator(b));
        match byte {
            b'[' | b'{' => self.open_flow(byte, line, at)?,
            b']' | b'}' => {
                self.end_pair();
                self.flow.pop();
                self.node_start = false;
                self.plain = false;
            }
            b',' => {
                self.end_pair();
                self.node_start = true;
                self.plain = false;
            }
            // A value indicator: after a key, or inside a plain scalar only when a blank or an indicator follows.
            b':' if !self.plain || blank_or_indicator => {
                self.start_pair(line, at)?;
                self.node_start = true;
                self.plain = false;
            }
            b'"' | b'\'' if self.node_start => self.open_quote(byte, at),
            b'&' | b'!' if self.node_start => return Ok(token_length(line, at, true)),
            b'*' if self.node_start => {
                self.node_start = false;
                return Ok(token_length(line, at, true));
            }
            b'?' if self.node_start && next.is_none_or(is_blank) => self.start_pair(line, at)?,
            _ => self.start_plain(at),
        }
        Ok(1)
    }

    fn open_flow(&mut self, byte: u8, line: &[u8], at: usize) -> Result<(), TooDeep> {
        self.flow.push(FlowLevel { sequence: byte == b'[', pair: false });
        self.node_start = true;
        self.plain = false;
        self.check_depth(line, at)
    }

    /// A `key: value` (or `? key`) entry in a flow sequence is a mapping one level deeper.
    fn start_pair(&mut self, line: &[u8], at: usize) -> Result<(), TooDeep> {
        if let Some(level) = self.flow.last_mut() {
            if level.sequence && !level.pair {
                level.pair = true;
                self.pairs += 1;
                return self.check_depth(line, at);
            }
        }
        Ok(())
    }

    fn end_pair(&mut self) {
        if let Some(level) = self.flow.last_mut() {
            if level.pair {
                level.pair = false;
                self.pairs = self.pairs.saturating_sub(1);
            }
        }
    }

    /// One byte in block context; returns how many bytes it took, or `None` when the rest of the line is
    /// skipped (a block scalar's header).
    fn block_token(&mut self, line: &[u8], at: usize, byte: u8, blank_next: bool) -> Result<Option<usize>, TooDeep> {
        match byte {
            b'-' | b'?' if self.node_start && blank_next => {
                self.properties = None;
                let kind = if byte == b'-' { Kind::Sequence } else { Kind::Mapping };
                self.open_block(kind, at, line)?;
            }
            b':' if blank_next => {
                if !self.node_start {
                    self.open_block(Kind::Mapping, self.token_column, line)?;
                }
                self.node_start = true;
                self.plain = false;
            }
            b'[' | b'{' if self.node_start => {
                self.token_column = self.properties.take().unwrap_or(at);
                self.open_flow(byte, line, at)?;
            }
            b'"' | b'\'' if self.node_start => self.open_quote(byte, at),
            b'|' | b'>' if self.node_start => {
                let parent = self.block.last().map_or(0, |&(column, _)| column);
                self.block_scalar = Some(BlockScalar { parent, content: None });
                self.node_start = false;
                return Ok(None);
            }
            b'&' | b'!' if self.node_start => {
                self.properties.get_or_insert(at);
                return Ok(Some(token_length(line, at, false)));
            }
            b'*' if self.node_start => {
                self.token_column = self.properties.take().unwrap_or(at);
                self.node_start = false;
                return Ok(Some(token_length(line, at, false)));
            }
            _ => self.start_plain(at),
        }
        Ok(Some(1))
    }

    fn open_quote(&mut self, byte: u8, at: usize) {
        self.quote = Some(if byte == b'"' { Quote::Double } else { Quote::Single });
        self.token_column = self.properties.take().unwrap_or(at);
        self.node_start = false;
        self.plain = false;
    }

    fn start_plain(&mut self, at: usize) {
        if self.node_start {
            self.node_start = false;
            self.plain = true;
            self.token_column = self.properties.take().unwrap_or(at);
        }
    }

    /// A block collection of `kind` has an entry at `column`: the same collection goes on, or a new one opens.
    fn open_block(&mut self, kind: Kind, column: usize, line: &[u8]) -> Result<(), TooDeep> {
        while let Some(&(open, open_kind)) = self.block.last() {
            // Deeper collections end here; so does a sequence written at its key's indentation once the next
            // key comes.
            if open > column || (open == column && open_kind == Kind::Sequence && kind == Kind::Mapping) {
                self.block.pop();
            } else {
                break;
            }
        }
        if self.block.last() != Some(&(column, kind)) {
            self.block.push((column, kind));
            self.check_depth(line, column)?;
        }
        Ok(())
    }

    fn check_depth(&self, line: &[u8], at: usize) -> Result<(), TooDeep> {
        if self.block.len() + self.flow.len() + self.pairs <= self.limit {
            return Ok(());
        }
        let before = line.get(..at).unwrap_or_default();
        let column = String::from_utf8_lossy(before).chars().count() + 1;
        Err(TooDeep { limit: self.limit, line: self.line_number, column })
    }
}

/// The length of an anchor, tag or alias token: up to a blank (or, in flow context, an indicator).
fn token_length(line: &[u8], at: usize, flow: bool) -> usize {
    let rest = line.get(at..).unwrap_or_default();
    rest.iter().take_while(|&&b| !(is_blank(b) || (flow && is_flow_indicator(b)))).count().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deepest nesting `check` finds: the smallest limit it accepts.
    fn depth(text: &str) -> usize {
        (0..200).find(|&limit| check(text, limit).is_ok()).unwrap()
    }

    #[test]
    fn flow_and_json_nesting_is_counted() {
        assert_eq!(depth("[]"), 1);
        assert_eq!(depth("{\"a\":[{\"b\":[1,2]},[]]}"), 4);
        assert_eq!(depth("a: [[[x]]]\n"), 4);
        // A pair in a flow sequence is a mapping of its own.
        assert_eq!(depth("a: [b: {c: d}, e]\n"), 4);
        assert_eq!(depth("[? a : b]"), 2);
        assert_eq!(depth(""), 0);
        assert_eq!(depth("plain text"), 0);
    }

    #[test]
    fn block_nesting_is_counted_by_indentation() {
        let text = "\
request:
  - name: a
    match:
      all:
        - any:
          - path: /x
";
        // root, request list, rule, match, all list, block, any list, block
        assert_eq!(depth(text), 8);
        assert_eq!(depth("a:\n- b\n- c:\n  - d\n"), 4);
        assert_eq!(depth("- - - x\n"), 3);
        assert_eq!(depth("a: 1\nb: 2\nc:\n  d: 3\n"), 2);
    }

    #[test]
    fn quotes_comments_and_block_scalars_open_nothing() {
        assert_eq!(depth("regex: '[[[[[['\n"), 1);
        assert_eq!(depth("regex: \"\\\"[[[[[[\"\n"), 1);
        assert_eq!(depth("a: 'it''s [[[['\n"), 1);
        assert_eq!(depth("a: b # [[[[[[\n"), 1);
        assert_eq!(depth("# [[[[\na: 1\n"), 1);
        assert_eq!(depth("body: |\n  [[[[[[\n  {{{{\n\n  ]]]\nnext: 1\n"), 1);
        assert_eq!(depth("regex: a[[[[b\n"), 1);
        assert_eq!(depth("a: \"multi\n  [[[[ line\"\n"), 1);
    }

    #[test]
    fn what_the_parser_sees_is_never_missed() {
        // An apostrophe inside a plain scalar opens no quote, so the brackets after it count.
        assert_eq!(depth("a: don't\nb: [[[[x]]]]\n"), 5);
        assert_eq!(depth("{a:'[[[[x]]]]}"), 5);
        // A block scalar ends at a line indented no more than its parent.
        assert_eq!(depth("a: |\n  text\nb: [[[x]]]\n"), 4);
        // Carriage returns alone break lines, as they do for libyaml.
        assert_eq!(depth("a: |\r  text\rb: [[[x]]]\r"), 4);
        // A byte order mark hides nothing, and indents a line by one column.
        assert_eq!(depth("\u{feff}[[[x]]]"), 3);
        assert_eq!(depth("a:\n b:\n\u{feff} c: [x]\n"), 4);
        // An anchor starts the node it names: here the root mapping, at column 0.
        assert_eq!(depth("&a k:\n  - [x]\n"), 3);
        // A plain scalar going on over lines, then a new key.
        assert_eq!(depth("a: one\n  two\nb: [[x]]\n"), 3);
    }

    #[test]
    fn the_first_place_past_the_limit_is_reported() {
        let error = check("a:\n  b: [[[x]]]\n", 3).unwrap_err();
        assert_eq!(error, TooDeep { limit: 3, line: 2, column: 7 });
        let deep = "[".repeat(100_000);
        assert_eq!(check(&deep, 40).unwrap_err(), TooDeep { limit: 40, line: 1, column: 41 });
    }
}
