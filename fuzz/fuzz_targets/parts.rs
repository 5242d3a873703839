//! The small parsers rules lean on, against properties they must keep: query parameters read back what was
//! written, encoding round-trips, address blocks contain their own addresses, templates re-read as written,
//! string tests match what they were built from, header blocks read as the proxy's map they stand for, a
//! segment prefix replaces exactly the paths its condition matches, and base64, basic credentials and
//! password hashes read back what was written (or are refused, never a panic).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rulefilter::attributes::{self, Encoding, SpiffePart};
use rulefilter::cidr::{self, Cidr};
use rulefilter::claims;
use rulefilter::credentials::{self, base64, basic, PasswordHash};
use rulefilter::header_block::{self, HeaderBlock};
use rulefilter::matcher::CompiledMatch;
use rulefilter::ratelimit::{key_hash, Bucket, Buckets, Limit, MemoryData, Per, Verdict};
use rulefilter::segments::SegmentPrefix;
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
    Query {
        query: String,
        name: String,
        value: String,
        edit: QueryEdit,
    },
    Encoding(String),
    Block {
        v6: bool,
        bits: u128,
        len: u8,
        port: u16,
    },
    AddressText(String),
    Template(String),
    Test {
        wanted: String,
        around: String,
        ignore_case: bool,
    },
    HeaderBytes(Vec<u8>),
    Headers {
        pairs: Vec<(String, String)>,
        edits: Vec<HeaderEdit>,
        read: String,
    },
    /// Whatever Envoy hands over as dynamic metadata: read as claims or refused, never a panic.
    Metadata {
        bytes: Vec<u8>,
        path: String,
    },
    /// Claims written as the simulated jwt_authn writes them read back as written.
    Claims {
        pairs: Vec<(String, String)>,
    },
    Spiffe(String),
    /// An attribute's bytes, under each encoding.
    Attribute(Vec<u8>),
    Segments {
        path: String,
        prefix: String,
        replacement: String,
    },
    RateLimit(Arrivals),
    Base64(Vec<u8>),
    Base64Text(String),
    Authorization {
        user: String,
        password: Vec<u8>,
        text: String,
    },
    Hashes(String),
}

/// Requests against one rate limit: (milliseconds since the previous request, client key).
#[derive(Arbitrary, Debug)]
struct Arrivals {
    requests: u32,
    burst: u16,
    per: u8,
    slots: u16,
    arrivals: Vec<(u16, u8)>,
}

fuzz_target!(|case: Case| match case {
    Case::Metadata { bytes, path } => {
        if let Some(flat) = claims::from_metadata(&bytes) {
            let _ = claims::joined(&flat, &path);
        }
    }
    Case::Claims { pairs } => {
        let object: serde_json::Map<String, serde_json::Value> =
            pairs.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        let flat = claims::from_metadata(&claims::metadata_for("issuer", &object)).unwrap_or_default();
        for (key, value) in &object {
            let written = value.as_str().unwrap_or_default();
            if !key.contains('\0') && !written.contains('\0') {
                assert_eq!(claims::values(&flat, key).collect::<Vec<_>>(), [written], "{key:?}");
            }
        }
    }
    Case::Spiffe(id) => {
        let parts = [SpiffePart::TrustDomain, SpiffePart::Namespace, SpiffePart::ServiceAccount].map(|p| p.of(&id));
        if let [Some(domain), Some(namespace), Some(account)] = parts {
            assert_eq!(format!("spiffe://{domain}/ns/{namespace}/sa/{account}"), id);
        }
    }
    Case::Attribute(bytes) => {
        for encoding in [Encoding::Text, Encoding::Bool, Encoding::Int, Encoding::JwtClaims] {
            if let Some(text) = attributes::decode(&bytes, encoding) {
                if encoding != Encoding::JwtClaims && encoding != Encoding::Text {
                    assert_eq!(attributes::encode(&text, encoding).as_deref(), Some(&bytes[..]));
                }
            }
        }
    }
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
    Case::Segments { path, prefix, replacement } => segments(&path, &prefix, &replacement),
    Case::RateLimit(arrivals) => rate_limit(arrivals),
    Case::Base64(bytes) => {
        let encoded = base64::encode_unpadded(&bytes);
        assert_eq!(base64::decode(&encoded).as_deref(), Some(&bytes[..]), "{encoded}");
    }
    Case::Base64Text(text) => {
        // Whatever decodes encodes back to the same characters (padding aside): no two texts for one value.
        if let Some(bytes) = base64::decode(&text) {
            assert_eq!(base64::encode_unpadded(&bytes), text.trim_end_matches('='));
        }
    }
    Case::Authorization { user, password, text } => authorization(&user, &password, &text),
    Case::Hashes(text) => {
        // Refused, or read and written back the same.
        if let Ok(hash) = PasswordHash::parse(&text) {
            assert_eq!(PasswordHash::parse(&hash.to_string()), Ok(hash));
        }
        let _ = credentials::parse_sha256_hex(&text);
    }
});

/// `path_segment_prefix` replaces the paths `segment_prefix` matches, and only those; what follows the prefix is
/// kept, the seam gets no doubled `/`, and the result is never empty.
fn segments(path: &str, prefix: &str, replacement: &str) {
    let matches = CompiledMatch::segment_prefix(prefix, false).is_match(path);
    let segments = SegmentPrefix::new(prefix);
    let rest = segments.rest(path);
    assert_eq!(rest.is_some(), matches, "{path:?} and prefix {prefix:?}");
    let replaced = segments.replace(path, replacement);
    let (Some(rest), Some(replaced)) = (rest, replaced.as_deref()) else {
        assert!(replaced.is_none(), "{path:?} replaced without a match");
        return;
    };
    let head = replacement.trim_end_matches('/');
    assert!(!replaced.is_empty());
    assert!(replaced.ends_with(rest) && replaced.starts_with(head), "{replaced:?} from {path:?}");
    if !rest.contains("//") && !head.contains("//") {
        assert!(!replaced.contains("//"), "{replaced:?} from {path:?} with {prefix:?} -> {replacement:?}");
    }
}

/// Whatever the arrivals: a key never gets more than `burst + rate × elapsed` (one extra for rounding), the
/// shared data never holds more than the slots and the overflow bucket, and a limited request says when to
/// come back.
fn rate_limit(Arrivals { requests, burst, per, slots, arrivals }: Arrivals) {
    let per = [Per::Second, Per::Minute, Per::Hour][usize::from(per % 3)];
    let limit = Limit { requests: u64::from(requests.max(1)), per, burst: u64::from(burst.max(1)) };
    let buckets = Buckets::new("fuzz", limit, u64::from(slots.max(1)));
    let mut store = MemoryData::default();
    let start = 1_700_000_000_000_000_000u64;
    let mut now = start;
    let mut allowed: std::collections::HashMap<u8, u64> = std::collections::HashMap::new();
    let mut overflowed = false;
    for (gap_ms, client) in arrivals {
        now += u64::from(gap_ms) * 1_000_000;
        match buckets.take(&mut store, key_hash(&client.to_string()), now) {
            Verdict::Allowed { bucket, .. } => {
                overflowed |= bucket == Bucket::Overflow;
                *allowed.entry(client).or_default() += 1;
            }
            Verdict::Limited { retry_after_ns, bucket, .. } => {
                overflowed |= bucket == Bucket::Overflow;
                assert!(retry_after_ns > 0);
            }
            Verdict::Failed(reason) => panic!("an in-memory store cannot fail: {reason}"),
        }
    }
    assert!(store.len() as u64 <= u64::from(slots.max(1)) + 1, "{} keys for {slots} slots", store.len());
    // A key that never shared the overflow bucket may lose its slot only when its bucket was full again, so it
    // is held to its own limit.
    if !overflowed {
        let elapsed = (now - start) as f64 / 1e9;
        let rate = limit.requests as f64 / per.seconds() as f64;
        for (client, count) in allowed {
            let most = limit.burst as f64 + rate * elapsed + 1.0;
            assert!(count as f64 <= most, "client {client}: {count} allowed, at most {most}");
        }
    }
}

/// Basic credentials encoded read back as written; any other header value is read or refused, never a panic.
fn authorization(user: &str, password: &[u8], text: &str) {
    let mut plain = user.as_bytes().to_vec();
    plain.push(b':');
    plain.extend_from_slice(password);
    let header = format!("Basic {}", base64::encode_unpadded(&plain));
    match basic::parse(&header) {
        Ok(credentials) if !user.contains(':') => {
            assert_eq!((credentials.user.as_str(), credentials.password.as_slice()), (user, password));
        }
        Ok(_) => {}
        Err(basic::Malformed::TooLong(_)) => assert!(header.len() > basic::MAX_AUTHORIZATION_BYTES),
        Err(other) => panic!("{header:?}: {other}"),
    }
    let _ = basic::parse(text);
}

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
