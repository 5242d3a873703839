//! The small parsers rules lean on, against properties they must keep: query parameters read back what was
//! written, encoding round-trips, address blocks contain their own addresses, templates re-read as written,
//! string tests match what they were built from, and header blocks read as the proxy's map they stand for.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rulefilter::cidr::{self, Cidr};
use rulefilter::header_block::{self, HeaderBlock};
use rulefilter::matcher::CompiledMatch;
use rulefilter::template::{self, Segment};
use rulefilter::trace::quote;
use rulefilter::url::{self, QueryPairs};

#[derive(Arbitrary, Debug)]
enum QueryEdit {
    Set,
    Add,
    Remove,
}

#[derive(Arbitrary, Debug)]
enum HeaderEdit {
    Set(String, String),
    Add(String, String),
    Remove(String),
}

#[derive(Arbitrary, Debug)]
enum Case {
    Query { query: String, name: String, value: String, edit: QueryEdit },
    Encoding(String),
    Block { v6: bool, bits: u128, len: u8, port: u16 },
    AddressText(String),
    Template(String),
    Test { wanted: String, around: String, ignore_case: bool },
    HeaderBytes(Vec<u8>),
    Headers { pairs: Vec<(String, String)>, edits: Vec<HeaderEdit>, read: String },
}

fuzz_target!(|case: Case| match case {
    Case::Query { query, name, value, edit } => query_edit(&query, &name, &value, edit),
    Case::Encoding(text) => {
        let encoded = url::encode(&text);
        assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{encoded:?}");
        assert_eq!(url::decode(&encoded), text);
        if !text.contains(['%', '+']) {
            assert_eq!(url::decode(&text), text);
        }
    }
    Case::Block { v6, bits, len, port } => block(v6, bits, len, port),
    Case::AddressText(text) => {
        let _ = Cidr::parse(&text);
        let _ = cidr::parse_address(&text);
        let quoted = quote(&text);
        assert!(quoted.starts_with('"'), "{quoted}");
    }
    Case::Template(text) => templates(&text),
    Case::Test { wanted, around, ignore_case } => string_tests(&wanted, &around, ignore_case),
    Case::HeaderBytes(bytes) => {
        // Whatever the proxy hands over: refused or read, never a panic or a read out of bounds.
        if let Some(block) = HeaderBlock::decode(bytes) {
            for name in block.names() {
                let name = String::from_utf8_lossy(name);
                let _ = block.get(&name);
            }
        }
    }
    Case::Headers { pairs, edits, read } => header_edits(pairs, edits, &read),
});

/// A block, encoded and decoded, then edited, reads as a plain list of pairs edited the same way.
fn header_edits(mut model: Vec<(String, String)>, edits: Vec<HeaderEdit>, read: &str) {
    let encoded = header_block::encode(model.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let mut block = HeaderBlock::decode(encoded).expect("an encoding of pairs decodes");
    for edit in edits {
        match edit {
            HeaderEdit::Set(name, value) => {
                model.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                block.set(&name, &value);
                model.push((name, value));
            }
            HeaderEdit::Add(name, value) => {
                block.add(&name, &value);
                model.push((name, value));
            }
            HeaderEdit::Remove(name) => {
                model.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                block.remove(&name);
            }
        }
    }
    let names: Vec<&[u8]> = block.names().collect();
    assert_eq!(names, model.iter().map(|(n, _)| n.as_bytes()).collect::<Vec<_>>());
    let values: Vec<&str> =
        model.iter().filter(|(n, _)| n.eq_ignore_ascii_case(read)).map(|(_, v)| v.as_str()).collect();
    let wanted = (!values.is_empty()).then(|| values.join(",").into_bytes());
    assert_eq!(block.get(read), wanted);
    assert_eq!(block.contains(read), !values.is_empty());
}

/// After an edit, reading the parameter back gives what the edit wrote (or nothing, for a removal).
fn query_edit(query: &str, name: &str, value: &str, edit: QueryEdit) {
    let before = url::query_param(query, name).map(|v| v.into_owned());
    let mut pairs = QueryPairs::parse(query);
    match edit {
        QueryEdit::Set => pairs.set(name, value),
        QueryEdit::Add => pairs.add(name, value),
        QueryEdit::Remove => pairs.remove(name),
    }
    let path = pairs.to_path("/p");
    let (rest, after) = url::split_path(&path);
    assert_eq!(rest, "/p");
    let read = after.and_then(|q| url::query_param(q, name));
    let expected = match edit {
        QueryEdit::Set => Some(value.to_owned()),
        // The first occurrence counts: an added one is read only when there was none.
        QueryEdit::Add => Some(before.unwrap_or_else(|| value.to_owned())),
        QueryEdit::Remove => None,
    };
    assert_eq!(read.as_deref(), expected.as_deref(), "{query:?} then {path:?}");
}

/// A block made from any address and prefix length contains that address, however it is written; the
/// address itself with host bits past the prefix is refused.
fn block(v6: bool, bits: u128, len: u8, port: u16) {
    let (ip, max): (IpAddr, u32) =
        if v6 { (Ipv6Addr::from(bits).into(), 128) } else { (Ipv4Addr::from(bits as u32).into(), 32) };
    let len = u32::from(len) % (max + 1);
    let mask = if len == 0 { 0 } else { u128::MAX << (max - len) } & (u128::MAX >> (128 - max));
    let network: IpAddr = match ip {
        IpAddr::V4(v4) => Ipv4Addr::from(u32::from(v4) & mask as u32).into(),
        IpAddr::V6(v6) => Ipv6Addr::from(u128::from(v6) & mask).into(),
    };
    let block = Cidr::parse(&format!("{network}/{len}")).unwrap_or_else(|e| panic!("{network}/{len}: {e}"));
    let written = match ip {
        IpAddr::V4(_) => vec![ip.to_string(), format!("{ip}:{port}")],
        IpAddr::V6(_) => vec![ip.to_string(), format!("[{ip}]:{port}"), format!("[{ip}]")],
    };
    for text in written {
        let parsed = cidr::parse_address(&text).unwrap_or_else(|| panic!("{text:?} is an address"));
        assert!(block.contains(parsed), "{network}/{len} should contain {text}");
    }
    if network != ip {
        assert!(Cidr::parse(&format!("{ip}/{len}")).is_err(), "{ip}/{len} has host bits set");
    }
    // An IPv4 block holds no IPv6 address but the IPv4-mapped ones.
    if ip.is_ipv4() {
        let other = Ipv6Addr::from(bits);
        if other.to_ipv4_mapped().is_none() {
            assert!(!block.contains(other.into()), "{network}/{len} should not contain {other}");
        }
    }
}

/// A template that parses, written back out, parses to the same pieces.
fn templates(text: &str) {
    let Ok(segments) = template::parse(text) else { return };
    if !text.contains('$') {
        let expected: Vec<Segment<'_>> =
            if text.is_empty() { Vec::new() } else { vec![Segment::Text(text.to_owned())] };
        assert_eq!(segments, expected);
    }
    let mut written = String::new();
    for segment in &segments {
        match segment {
            Segment::Text(literal) => written.push_str(&literal.replace('$', "$$")),
            Segment::Reference(reference) => {
                let name = !reference.name.is_empty() && !reference.name.contains(['}', '|']);
                let encoding = reference.encoding.is_none_or(|e| !e.is_empty() && !e.contains('}'));
                assert!(name && encoding, "{reference:?}");
                written.push_str(&format!("${{{reference}}}"));
            }
        }
    }
    assert_eq!(template::parse(&written).as_ref(), Ok(&segments), "{text:?} written back as {written:?}");
}

/// Every string test matches the values it was built to match.
fn string_tests(wanted: &str, around: &str, ignore_case: bool) {
    // With ignore_case, the value may differ from the pattern in ASCII case.
    let as_sent = if ignore_case { wanted.to_ascii_uppercase() } else { wanted.to_owned() };
    let holds = |test: CompiledMatch, value: String| {
        assert!(test.is_match(&value), "{test:?} should match {value:?}");
    };
    holds(CompiledMatch::exact(wanted, ignore_case), as_sent.clone());
    holds(CompiledMatch::prefix(wanted, ignore_case), format!("{as_sent}{around}"));
    holds(CompiledMatch::suffix(wanted, ignore_case), format!("{around}{as_sent}"));
    holds(CompiledMatch::contains(wanted, ignore_case), format!("{around}{as_sent}{around}"));
    if wanted.starts_with('/') {
        let segment = CompiledMatch::segment_prefix(wanted, ignore_case);
        holds(segment.clone(), as_sent.clone());
        holds(segment, format!("{}/{around}", as_sent.trim_end_matches('/')));
    }
    if let Ok(regex) = CompiledMatch::regex(&regex::escape(wanted), ignore_case) {
        holds(regex.clone(), as_sent.clone());
        // Anchored: a longer value never matches.
        if !around.is_empty() {
            assert!(!regex.is_match(&format!("{as_sent}{around}")), "{regex:?} matched more than {as_sent:?}");
        }
    }
}
