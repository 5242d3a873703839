//! A header map handed over by the proxy in one piece, read locally.
//!
//! Inside Envoy every host call crosses from the Wasm VM into C++ and back (and, when it returns bytes, back
//! into the VM to allocate them), and a repeated header's joined value is only available as a property, which
//! Envoy evaluates through its expression layer. Fetching the whole map once per phase with
//! `proxy_get_header_map_pairs` and answering every read from it costs one crossing however many headers the
//! rules read. The block follows the filter's own edits, so it stays what the proxy holds.
//!
//! Plain Rust, so that it is tested natively and fuzzed; the Wasm glue only fetches the bytes.

use std::ops::Range;

/// Entries reserved beyond a decoded map's own, so that the filter's first edits do not grow the list.
const EDIT_ROOM: usize = 16;

/// Every header of one map: names and values in one buffer, in the proxy's order (repeats kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// One bit per class of name (see [`name_class`]) for every name the block has held; removes leave it set.
    /// A clear bit settles, without a scan, that a name is absent: what most reads and removes of headers a
    /// request does not carry (spoofable ones, optional ones) ask.
    classes: u128,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: Range<usize>,
    value: Range<usize>,
}

impl Entry {
    /// Whether the entry's name, in the block's `bytes`, is `name` regardless of ASCII case. Every read and
    /// edit scans the block with this: most names differ in length, which settles it without the bytes.
    fn is_named(&self, bytes: &[u8], name: &str) -> bool {
        self.name.len() == name.len() && slice(bytes, &self.name).eq_ignore_ascii_case(name.as_bytes())
    }
}

fn slice<'b>(bytes: &'b [u8], range: &Range<usize>) -> &'b [u8] {
    bytes.get(range.clone()).unwrap_or_default()
}

impl HeaderBlock {
    /// Reads proxy-wasm's header-map encoding (see [`encode`]), keeping the buffer; `None` if it is malformed.
    /// No bytes at all is an empty map, as the proxy may hand one over.
    pub fn decode(bytes: Vec<u8>) -> Option<HeaderBlock> {
        if bytes.is_empty() {
            return Some(HeaderBlock::default());
        }
        let count = read_u32(&bytes, 0)?;
        // Each header takes 8 bytes of lengths and 2 of NULs: a count the buffer cannot hold is malformed,
        // and checking it first bounds the allocation below by the buffer's size.
        if count.checked_mul(10)? > bytes.len() {
            return None;
        }
        // Room for the phase's edits, which add entries (a rule set writes a dozen or so headers).
        let mut entries = Vec::with_capacity(count + EDIT_ROOM);
        let mut at = 4 + count * 8;
        let mut classes = 0;
        for i in 0..count {
            let name_len = read_u32(&bytes, 4 + i * 8)?;
            let value_len = read_u32(&bytes, 8 + i * 8)?;
            let name = at..at.checked_add(name_len)?;
            let value = name.end + 1..(name.end + 1).checked_add(value_len)?;
            at = value.end + 1;
            if at > bytes.len() {
                return None;
            }
            classes |= name_class(slice(&bytes, &name));
            entries.push(Entry { name, value });
        }
        Some(HeaderBlock { bytes, entries, classes })
    }

    /// The header's value; a repeated header's values joined with `,` in order, as Envoy's header matchers
    /// and its `request.headers` property see them. `None` when absent. Names compare without regard to
    /// ASCII case (Envoy keeps them lower-case).
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        let mut values = self.values(name);
        let mut joined = values.next()?.to_vec();
        for value in values {
            joined.push(b',');
            joined.extend_from_slice(value);
        }
        Some(joined)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }

    /// Every name in order, repeats included.
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(|entry| self.slice(&entry.name))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Follows `proxy_replace_header_map_value`: the header ends with this one value.
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.add(name, value);
    }

    /// Follows `proxy_add_header_map_value`: one more value, after the others.
    pub fn add(&mut self, name: &str, value: &str) {
        self.classes |= name_class(name.as_bytes());
        let name = self.append(name.as_bytes());
        let value = self.append(value.as_bytes());
        self.entries.push(Entry { name, value });
    }

    /// Follows `proxy_remove_header_map_value`: every value goes. Their bytes stay in the buffer, which lives
    /// one phase.
    pub fn remove(&mut self, name: &str) {
        if !self.may_hold(name) {
            return;
        }
        let bytes = &self.bytes;
        self.entries.retain(|entry| !entry.is_named(bytes, name));
    }

    /// Whether `name` may be in the block; `false` is certain.
    fn may_hold(&self, name: &str) -> bool {
        self.classes & name_class(name.as_bytes()) != 0
    }

    /// The header's values in order, each as the proxy holds it (see [`Self::get`] for them joined).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let entries: &[Entry] = if self.may_hold(name) { &self.entries } else { &[] };
        entries.iter().filter(move |entry| entry.is_named(&self.bytes, name)).map(move |entry| self.slice(&entry.value))
    }

    fn slice(&self, range: &Range<usize>) -> &[u8] {
        slice(&self.bytes, range)
    }

    fn append(&mut self, text: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(text);
        start..self.bytes.len()
    }
}

/// A name's class for [`HeaderBlock::classes`]: its length and last byte (ASCII case folded, as names compare),
/// which tell apart most header names a request carries.
fn name_class(name: &[u8]) -> u128 {
    let last = name.last().map_or(0, u8::to_ascii_lowercase);
    1 << (name.len().wrapping_mul(31).wrapping_add(usize::from(last)) % 128)
}

/// proxy-wasm's header-map encoding: the count, then each name's and value's length (all u32 little-endian),
/// then each name and value followed by a NUL.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Vec<u8> {
    let (count, text_len) =
        pairs.clone().into_iter().fold((0, 0), |(count, len), (n, v)| (count + 1, len + n.len() + v.len() + 2));
    let mut out = Vec::with_capacity(4 + count * 8 + text_len);
    out.extend_from_slice(&len_u32(count).to_le_bytes());
    for (name, value) in pairs.clone() {
        out.extend_from_slice(&len_u32(name.len()).to_le_bytes());
        out.extend_from_slice(&len_u32(value.len()).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    usize::try_from(u32::from_le_bytes(b.try_into().ok()?)).ok()
}

/// Lengths here come from validated configuration and header maps, far below 4 GiB; saturate rather than wrap
/// regardless.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(pairs: &[(&str, &str)]) -> HeaderBlock {
        HeaderBlock::decode(encode(pairs.iter().copied())).unwrap()
    }

    fn text(value: Option<Vec<u8>>) -> Option<String> {
        value.map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn reads_back_what_was_encoded() {
        let b = block(&[(":path", "/a?b=c"), ("x-one", "1"), ("empty", ""), ("x-two", "a"), ("x-two", "b")]);
        assert_eq!(b.len(), 5);
        assert_eq!(text(b.get(":path")).as_deref(), Some("/a?b=c"));
        assert_eq!(text(b.get("X-One")).as_deref(), Some("1"));
        assert_eq!(text(b.get("empty")).as_deref(), Some(""));
        assert_eq!(text(b.get("x-two")).as_deref(), Some("a,b"));
        assert_eq!(b.get("missing"), None);
        let names: Vec<&[u8]> = b.names().collect();
        assert_eq!(names, [&b":path"[..], b"x-one", b"empty", b"x-two", b"x-two"]);
    }

    #[test]
    fn values_may_hold_any_bytes() {
        let mut bytes = encode([("x-bin", "ab")]);
        // Replace "ab" by two bytes that are not UTF-8; lengths are unchanged.
        let at = bytes.len() - 3;
        bytes[at] = 0xff;
        bytes[at + 1] = 0xfe;
        let b = HeaderBlock::decode(bytes).unwrap();
        assert_eq!(b.get("x-bin"), Some(vec![0xff, 0xfe]));
    }

    #[test]
    fn follows_edits_as_the_proxy_applies_them() {
        let mut b = block(&[("a", "1"), ("b", "2"), ("a", "3")]);
        b.add("a", "4");
        assert_eq!(text(b.get("a")).as_deref(), Some("1,3,4"));
        b.set("A", "5");
        assert_eq!(text(b.get("a")).as_deref(), Some("5"));
        b.remove("b");
        assert_eq!(b.get("b"), None);
        b.set("c", "6");
        assert_eq!(text(b.get("c")).as_deref(), Some("6"));
        let names: Vec<&[u8]> = b.names().collect();
        assert_eq!(names, [&b"A"[..], b"c"]);
    }

    #[test]
    fn names_of_one_class_are_still_told_apart() {
        // Same length and last byte: one class, so only the comparison of the names decides.
        let mut b = block(&[("x-ab", "1"), ("X-CB", "2")]);
        assert_eq!(name_class(b"x-ab"), name_class(b"X-CB"));
        assert_eq!(text(b.get("x-cb")).as_deref(), Some("2"));
        assert_eq!(b.get("x-zb"), None);
        b.remove("x-ab");
        assert_eq!(b.get("x-ab"), None);
        assert_eq!(text(b.get("x-cb")).as_deref(), Some("2"));
        // A class no name had is absent; an added name's class is noted.
        assert!(!b.contains("content-type"));
        b.add("Content-Type", "text/plain");
        assert_eq!(text(b.get("content-type")).as_deref(), Some("text/plain"));
        b.remove("CONTENT-TYPE");
        assert!(!b.contains("content-type"));
    }

    #[test]
    fn malformed_encodings_are_refused_not_trusted() {
        let good = encode([("name", "value"), ("n2", "v2")]);
        assert!(HeaderBlock::decode(good.clone()).is_some());
        assert!(HeaderBlock::decode(Vec::new()).unwrap().is_empty());
        assert_eq!(HeaderBlock::decode(vec![1, 0, 0]), None);
        for cut in 1..good.len() {
            assert_eq!(HeaderBlock::decode(good[..cut].to_vec()), None, "cut at {cut}");
        }
        // A count far beyond the buffer must not allocate for it.
        assert_eq!(HeaderBlock::decode(vec![0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]), None);
        // A length that would overflow.
        let mut huge = encode([("n", "v")]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(HeaderBlock::decode(huge), None);
        assert!(HeaderBlock::decode(encode([])).unwrap().is_empty());
    }
}
