//! Compile-time indexes: which rules of a phase a request can possibly match, found without evaluating them.
//!
//! For each rule one condition is chosen that must hold for the rule to match (a top-level conjunct: an
//! exact value, a prefix, a wildcard host, a method, a CIDR list, a regex through its literal prefixes, or an
//! `any` whose every branch has one), and the rule is filed under that condition's key. A request looks its
//! values up once per index and gets a superset of the rules that can match, as a bit set over rule numbers;
//! rules no index serves are always in it. The engine then evaluates exactly those, in document order, as it
//! would evaluate every rule: the indexes only skip rules that cannot match, so the outcome is the same.
//!
//! Keys are 64-bit hashes of the (ASCII-lower-cased, where case does not matter) text, so a lookup never
//! allocates: a hash collision only adds a candidate, which its own evaluation then rejects.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::Hir;

use crate::cidr::{self, Cidr};
use crate::fnv::Fnv;
use crate::limits::MAX_RULES;
use crate::matcher::StringMatcher;
use crate::ruleset::{Condition, Expr, Rule, Test, View};

/// Below this many rules a phase is evaluated rule by rule: looking values up would cost more than it saves.
pub const MIN_INDEXED_RULES: usize = 8;

/// Largest character class the literal prefixes of a regex are expanded through (`v[23]/` gives `v2/` and
/// `v3/`; `[0-9]` ends the prefix).
const MAX_CLASS_EXPANSION: usize = 4;

/// Most literal prefixes one regex is filed under; a regex with more stays in the ordered list.
const MAX_REGEX_PREFIXES: usize = 16;

const WORDS: usize = MAX_RULES.div_ceil(64);

/// A set of rule numbers, on the stack: the only scratch a request needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleBits([u64; WORDS]);

impl RuleBits {
    fn insert(&mut self, rule: usize) {
        if let Some(word) = self.0.get_mut(rule / 64) {
            *word |= 1 << (rule % 64);
        }
    }

    /// The lowest rule number in the set that is `from` or more.
    pub fn next_from(&self, from: usize) -> Option<usize> {
        let mut at = from / 64;
        let mut word = self.0.get(at)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(at * 64 + word.trailing_zeros() as usize);
            }
            at += 1;
            word = *self.0.get(at)?;
        }
    }
}

/// Where an index reads its value: a slot, seen through a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub slot: usize,
    pub view: View,
}

/// The indexes of one phase.
#[derive(Debug, Default)]
pub struct PhaseIndex {
    /// `false`: evaluate every rule in order (a small phase, or indexes turned off).
    enabled: bool,
    /// Rules no index serves.
    always: RuleBits,
    strings: Vec<StringIndex>,
    cidrs: Vec<CidrIndex>,
    /// The slots the lookups read: only a write to one of these can change the candidates.
    reads: Vec<usize>,
}

/// Exact values, prefixes and suffixes of one place, compared with or without ASCII case.
#[derive(Debug)]
pub struct StringIndex {
    pub place: Place,
    filed: Filed,
    ignore_case: bool,
    /// The lengths of the exact keys, as bits (`min(length, 63)`): a value of no such length is not hashed.
    exact_lengths: u64,
    exact: Buckets,
    prefixes: LengthBuckets,
    suffixes: LengthBuckets,
}

/// Address blocks of one place, by prefix length.
#[derive(Debug)]
pub struct CidrIndex {
    pub place: Place,
    filed: Filed,
    /// For each mask in use: the networks under it.
    by_mask: Vec<(u128, Networks)>,
}

/// The first and last rule numbers filed in one index.
#[derive(Debug, Clone, Copy)]
struct Filed {
    first: u16,
    last: u16,
}

impl Filed {
    const NONE: Filed = Filed { first: u16::MAX, last: 0 };

    fn note(&mut self, rule: u16) {
        self.first = self.first.min(rule);
        self.last = self.last.max(rule);
    }

    /// Whether rule `from` or a later one is filed: once the phase is past the last, a lookup finds nothing
    /// to run.
    fn serves_from(self, from: usize) -> bool {
        usize::from(self.last) >= from
    }

    /// The one rule filed, if only one is.
    fn single(self) -> Option<u16> {
        (self.first == self.last).then_some(self.first)
    }
}

/// Networks by address, hashed with [`AddressHash`]: the same layout on every compile, so two compilations of
/// one document are alike to the last byte.
type Networks = HashMap<u128, Vec<u16>, BuildHasherDefault<AddressHash>>;

/// A fixed multiply-and-fold hash of a 128-bit address. Flooding a table needs keys an attacker picks *and*
/// inserts; these keys are the document's networks, fixed at compile time, and a request only looks up, so a
/// fixed hash gives a client nothing to aim at, and costs a few instructions where SipHash cost hundreds.
#[derive(Debug, Default)]
struct AddressHash(u64);

impl AddressHash {
    /// Odd, with bits spread over the whole word (2^64 / φ).
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
}

impl Hasher for AddressHash {
    fn finish(&self) -> u64 {
        // The product's high bits depend on every bit of the key; fold them down, where the table picks its
        // bucket (an IPv4 block's low bits and an IPv6 block's low 64 are zero).
        let product = self.0.wrapping_mul(Self::MULTIPLIER);
        product ^ (product >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = Fnv(self.0).bytes(bytes.iter().copied()).0;
    }
    fn write_u128(&mut self, n: u128) {
        // Both halves count: IPv4 sits in the low one, an IPv6 network mostly in the high one.
        let (high, low) = ((n >> 64) as u64, n as u64);
        self.0 ^= low ^ high.rotate_left(32).wrapping_mul(Self::MULTIPLIER);
    }
}

type Buckets = HashMap<u64, Vec<u16>, BuildHasherDefault<Prehashed>>;

/// Keys of several lengths: a value is looked up at each length it is long enough for.
#[derive(Debug, Default)]
struct LengthBuckets {
    /// Ascending.
    lengths: Vec<usize>,
    buckets: Buckets,
}

impl LengthBuckets {
    fn insert(&mut self, key: &[u8], hash: u64, rule: u16) {
        if let Err(at) = self.lengths.binary_search(&key.len()) {
            self.lengths.insert(at, key.len());
        }
        self.buckets.entry(hash).or_default().push(rule);
    }
}

/// The keys are already hashes.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn fold(b: u8, ignore_case: bool) -> u8 {
    if ignore_case {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

fn hash(text: &[u8], ignore_case: bool) -> u64 {
    Fnv::START.bytes(text.iter().map(|&b| fold(b, ignore_case))).0
}

fn reverse_hash(text: &[u8], ignore_case: bool) -> u64 {
    Fnv::START.bytes(text.iter().rev().map(|&b| fold(b, ignore_case))).0
}

/// One key a rule can be filed under.
#[derive(Debug, Clone)]
enum Key {
    Exact { place: Place, ignore_case: bool, text: Box<str> },
    Prefix { place: Place, ignore_case: bool, text: Box<[u8]> },
    Suffix { place: Place, ignore_case: bool, text: Box<str> },
    Cidr { place: Place, cidr: Cidr },
}

impl Key {
    /// How few requests the key lets through, roughly: lower is more selective.
    fn cost(&self) -> u32 {
        match self {
            Key::Exact { .. } => 0,
            Key::Suffix { text, .. } if text.len() >= 4 => 1,
            Key::Prefix { text, .. } if text.len() >= 4 => 2,
            Key::Cidr { cidr, .. } if cidr.prefix_len() >= 8 => 2,
            Key::Suffix { .. } | Key::Prefix { .. } | Key::Cidr { .. } => 3,
        }
    }
}

/// The keys a rule is filed under when `keys` is chosen: the rule is a candidate when any of them hits.
type Choice = Vec<Key>;

/// The cost of a choice: its least selective key, then its number of keys.
fn choice_cost(keys: &Choice) -> (u32, usize) {
    (keys.iter().map(Key::cost).max().unwrap_or(u32::MAX), keys.len())
}

/// The keys of a condition tree that must hold for it to hold, or `None` when no key can tell.
fn keys(expr: &Expr) -> Option<Choice> {
    match expr {
        // One conjunct suffices; take the most selective.
        Expr::All(exprs) => exprs.iter().filter_map(keys).min_by_key(choice_cost),
        // Every branch must say when it can hold.
        Expr::Any { exprs, .. } => {
            let mut all = Vec::new();
            for e in exprs {
                all.extend(keys(e)?);
            }
            (!all.is_empty()).then_some(all)
        }
        Expr::Not { .. } => None,
        Expr::Leaf(condition) => leaf_keys(condition),
    }
}

fn leaf_keys(condition: &Condition) -> Option<Choice> {
    // A list claim holds when any element matches: no single key can file it.
    if condition.invert || matches!(condition.view, View::Claim(_) | View::Misdirected { .. }) {
        return None;
    }
    let place = Place { slot: condition.slot, view: condition.view.clone() };
    match &condition.test {
        Test::Matches(m) => {
            let ignore_case = m.ignore_case();
            match m.matcher() {
                StringMatcher::Exact(text) => Some(vec![Key::Exact { place, ignore_case, text: text.clone() }]),
                StringMatcher::Prefix(text) | StringMatcher::SegmentPrefix(text) if !text.is_empty() => {
                    Some(vec![Key::Prefix { place, ignore_case, text: text.as_bytes().into() }])
                }
                StringMatcher::Suffix(text) if !text.is_empty() => {
                    Some(vec![Key::Suffix { place, ignore_case, text: text.clone() }])
                }
                StringMatcher::Regex(regex) if !ignore_case => regex.literal_prefixes().map(|prefixes| {
                    prefixes
                        .iter()
                        .map(|text| Key::Prefix { place: place.clone(), ignore_case: false, text: text.clone() })
                        .collect()
                }),
                _ => None,
            }
        }
        Test::OneOf { values, ignore_case } => (!values.is_empty()).then(|| {
            values
                .iter()
                .map(|text| Key::Exact { place: place.clone(), ignore_case: *ignore_case, text: text.clone() })
                .collect()
        }),
        Test::Cidrs(cidrs) => (!cidrs.is_empty())
            .then(|| cidrs.iter().map(|cidr| Key::Cidr { place: place.clone(), cidr: *cidr }).collect()),
        Test::Present(_) | Test::Status(_) | Test::Sample { .. } => None,
    }
}

/// The literal prefixes a value must start with for a regex (case-sensitive, as compiled) to match it: `None`
/// when there is no bounded set of non-empty ones. Computed once when the regex is checked (see
/// [`crate::lazy_regex`]), from the parse it makes anyway.
pub(crate) fn literal_prefixes(hir: &Hir) -> Option<Vec<Box<[u8]>>> {
    // Classes of more than a few characters end a literal rather than multiply it (`[0-9]` would make ten of
    // each, then a hundred…): the longest common prefix below wants the text before them, and expanding them
    // was most of the time a 1,000-regex document took to compile.
    let seq = Extractor::new().kind(ExtractKind::Prefix).limit_class(MAX_CLASS_EXPANSION).extract(hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    // `/item-[0-9]+` gives `/item-0` … `/item-9`, and `/archive/7/[0-9]{4}` a hundred literals: one shared prefix
    // is as good a key, and one lookup, however many literals share it.
    match seq.longest_common_prefix() {
        Some(common) if common.len() >= 4 => Some(vec![common.into()]),
        _ if literals.len() > MAX_REGEX_PREFIXES => None,
        _ => Some(literals.iter().map(|l| l.as_bytes().into()).collect()),
    }
}

impl PhaseIndex {
    /// Files each rule under its most selective must-hold condition.
    pub fn build(rules: &[Rule]) -> PhaseIndex {
        let mut index = PhaseIndex::default();
        if rules.len() < MIN_INDEXED_RULES || rules.len() > MAX_RULES {
            return index;
        }
        index.enabled = true;
        for (number, rule) in rules.iter().enumerate() {
            let choice = rule.when.as_ref().and_then(keys);
            match (choice, u16::try_from(number)) {
                (Some(keys), Ok(number)) => {
                    for key in keys {
                        index.file(key, number);
                    }
                }
                _ => index.always.insert(number),
            }
        }
        index.evaluate_single_rule_indexes();
        let places = index.strings.iter().map(|s| &s.place).chain(index.cidrs.iter().map(|c| &c.place));
        let mut reads: Vec<usize> = places
            .flat_map(|place| match place.view {
                View::Client { xff_slot, trusted_hops } if trusted_hops > 0 => vec![place.slot, xff_slot],
                _ => vec![place.slot],
            })
            .collect();
        reads.sort_unstable();
        reads.dedup();
        index.reads = reads;
        index
    }

    /// An index of one rule costs a value read, a hash and a probe to skip one evaluation, which reads the
    /// same value and mostly costs a comparison: its rule is evaluated for every request instead.
    fn evaluate_single_rule_indexes(&mut self) {
        let mut single = Vec::new();
        self.strings.retain(|s| s.filed.single().map(|rule| single.push(rule)).is_none());
        self.cidrs.retain(|c| c.filed.single().map(|rule| single.push(rule)).is_none());
        for rule in single {
            self.always.insert(usize::from(rule));
        }
    }

    /// Whether a lookup reads `slot`: a rule that writes it makes the later rules be looked up again.
    pub fn reads(&self, slot: usize) -> bool {
        self.enabled && self.reads.contains(&slot)
    }

    /// Whether requests look candidates up here, or evaluate every rule.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn strings_at(&mut self, place: Place, ignore_case: bool) -> Option<&mut StringIndex> {
        let at = self.strings.iter().position(|s| s.place == place && s.ignore_case == ignore_case);
        let at = at.unwrap_or_else(|| {
            self.strings.push(StringIndex {
                place,
                filed: Filed::NONE,
                ignore_case,
                exact_lengths: 0,
                exact: Buckets::default(),
                prefixes: LengthBuckets::default(),
                suffixes: LengthBuckets::default(),
            });
            self.strings.len() - 1
        });
        self.strings.get_mut(at)
    }

    fn file(&mut self, key: Key, rule: u16) {
        match key {
            Key::Exact { place, ignore_case, text } => {
                let hash = hash(text.as_bytes(), ignore_case);
                if let Some(index) = self.strings_at(place, ignore_case) {
                    index.filed.note(rule);
                    index.exact_lengths |= length_bit(text.len());
                    index.exact.entry(hash).or_default().push(rule);
                }
            }
            Key::Prefix { place, ignore_case, text } => {
                let hash = hash(&text, ignore_case);
                if let Some(index) = self.strings_at(place, ignore_case) {
                    index.filed.note(rule);
                    index.prefixes.insert(&text, hash, rule);
                }
            }
            Key::Suffix { place, ignore_case, text } => {
                let hash = reverse_hash(text.as_bytes(), ignore_case);
                if let Some(index) = self.strings_at(place, ignore_case) {
                    index.filed.note(rule);
                    index.suffixes.insert(text.as_bytes(), hash, rule);
                }
            }
            Key::Cidr { place, cidr } => {
                let at = match self.cidrs.iter().position(|c| c.place == place) {
                    Some(at) => at,
                    None => {
                        self.cidrs.push(CidrIndex { place, filed: Filed::NONE, by_mask: Vec::new() });
                        self.cidrs.len() - 1
                    }
                };
                let Some(index) = self.cidrs.get_mut(at) else { return };
                index.filed.note(rule);
                let networks = match index.by_mask.iter().position(|(mask, _)| *mask == cidr.mask()) {
                    Some(m) => index.by_mask.get_mut(m).map(|(_, n)| n),
                    None => {
                        index.by_mask.push((cidr.mask(), Networks::default()));
                        index.by_mask.last_mut().map(|(_, n)| n)
                    }
                };
                if let Some(networks) = networks {
                    networks.entry(cidr.network()).or_default().push(rule);
                }
            }
        }
    }

    /// The rules no index serves: every lookup starts from these.
    pub fn always(&self) -> RuleBits {
        self.always
    }

    pub fn strings(&self) -> &[StringIndex] {
        &self.strings
    }

    pub fn cidrs(&self) -> &[CidrIndex] {
        &self.cidrs
    }

    /// How many rules are filed under some key (the rest are always evaluated).
    pub fn indexed_rules(&self, rules: usize) -> usize {
        let always = self.always.0.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        if self.enabled {
            rules.saturating_sub(always)
        } else {
            0
        }
    }
}

/// A length as one bit of [`StringIndex::exact_lengths`]: 63 stands for every length from 63 on.
fn length_bit(length: usize) -> u64 {
    1 << length.min(63)
}

fn add(bits: &mut RuleBits, rules: Option<&Vec<u16>>) {
    for &rule in rules.into_iter().flatten() {
        bits.insert(usize::from(rule));
    }
}

impl StringIndex {
    /// Whether rule `from` or a later one is filed here.
    pub fn serves_from(&self, from: usize) -> bool {
        self.filed.serves_from(from)
    }

    /// Adds the rules whose key `value` satisfies.
    pub fn lookup(&self, value: &str, bits: &mut RuleBits) {
        let bytes = value.as_bytes();
        let ic = self.ignore_case;
        if self.exact_lengths & length_bit(bytes.len()) != 0 {
            add(bits, self.exact.get(&hash(bytes, ic)));
        }
        if !self.prefixes.lengths.is_empty() {
            self.prefixes.lookup(bytes.iter().copied(), ic, bits);
        }
        if !self.suffixes.lengths.is_empty() {
            self.suffixes.lookup(bytes.iter().rev().copied(), ic, bits);
        }
    }
}

impl LengthBuckets {
    /// Hashes `bytes` as it walks them, looking the hash up at each key length.
    fn lookup(&self, bytes: impl Iterator<Item = u8>, ignore_case: bool, bits: &mut RuleBits) {
        let mut lengths = self.lengths.iter().peekable();
        let mut running = Fnv::START;
        let mut walked = 0;
        for b in bytes {
            let Some(&&want) = lengths.peek() else { return };
            if want == walked {
                add(bits, self.buckets.get(&running.0));
                lengths.next();
            }
            running = running.byte(fold(b, ignore_case));
            walked += 1;
        }
        if lengths.peek().is_some_and(|&&want| want == walked) {
            add(bits, self.buckets.get(&running.0));
        }
    }
}

impl CidrIndex {
    /// Whether rule `from` or a later one is filed here.
    pub fn serves_from(&self, from: usize) -> bool {
        self.filed.serves_from(from)
    }

    /// Adds the rules with a block that holds the address in `value`.
    pub fn lookup(&self, value: &str, bits: &mut RuleBits) {
        let Some(ip) = cidr::parse_address(value) else { return };
        let address = cidr::bits(ip);
        for (mask, networks) in &self.by_mask {
            add(bits, networks.get(&(address & mask)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(rules: &[usize]) -> RuleBits {
        let mut bits = RuleBits::default();
        for &r in rules {
            bits.insert(r);
        }
        bits
    }

    fn members(bits: &RuleBits) -> Vec<usize> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(r) = bits.next_from(from) {
            out.push(r);
            from = r + 1;
        }
        out
    }

    #[test]
    fn rule_bits_iterate_in_order_across_words() {
        let set = bits(&[0, 3, 63, 64, 500, 999]);
        assert_eq!(members(&set), [0, 3, 63, 64, 500, 999]);
        assert_eq!(set.next_from(4), Some(63));
        assert_eq!(set.next_from(1000), None);
        assert_eq!(RuleBits::default().next_from(0), None);
    }

    fn place() -> Place {
        Place { slot: 0, view: View::Whole }
    }

    fn index(keys: Vec<(Key, u16)>) -> PhaseIndex {
        let mut index = PhaseIndex { enabled: true, ..PhaseIndex::default() };
        for (key, rule) in keys {
            index.file(key, rule);
        }
        index
    }

    fn hits(index: &PhaseIndex, value: &str) -> Vec<usize> {
        let mut found = RuleBits::default();
        for s in index.strings() {
            s.lookup(value, &mut found);
        }
        for c in index.cidrs() {
            c.lookup(value, &mut found);
        }
        members(&found)
    }

    #[test]
    fn strings_are_found_by_exact_value_prefix_and_suffix() {
        let p = place();
        let index = index(vec![
            (Key::Exact { place: p.clone(), ignore_case: false, text: "/a".into() }, 1),
            (Key::Prefix { place: p.clone(), ignore_case: false, text: b"/a"[..].into() }, 2),
            (Key::Prefix { place: p.clone(), ignore_case: false, text: b"/a/b"[..].into() }, 3),
            (Key::Suffix { place: p.clone(), ignore_case: true, text: ".example.com".into() }, 4),
            (Key::Exact { place: p.clone(), ignore_case: true, text: "GET".into() }, 5),
        ]);
        assert_eq!(hits(&index, "/a"), [1, 2]);
        assert_eq!(hits(&index, "/a/b"), [2, 3]);
        assert_eq!(hits(&index, "/a/bc"), [2, 3]);
        assert_eq!(hits(&index, "/b"), Vec::<usize>::new());
        assert_eq!(hits(&index, "www.EXAMPLE.com"), [4]);
        assert_eq!(hits(&index, "example.com"), Vec::<usize>::new());
        assert_eq!(hits(&index, "get"), [5]);
        assert_eq!(hits(&index, ""), Vec::<usize>::new());
    }

    #[test]
    fn exact_keys_of_63_bytes_or_more_share_a_length_bit_and_are_still_told_apart() {
        let long = "/".repeat(70);
        let index = index(vec![
            (Key::Exact { place: place(), ignore_case: false, text: long.as_str().into() }, 1),
            (Key::Exact { place: place(), ignore_case: false, text: "/".repeat(63).into() }, 2),
        ]);
        assert_eq!(hits(&index, &long), [1]);
        assert_eq!(hits(&index, &"/".repeat(63)), [2]);
        assert_eq!(hits(&index, &"/".repeat(80)), Vec::<usize>::new());
        assert_eq!(hits(&index, &"/".repeat(62)), Vec::<usize>::new());
    }

    #[test]
    fn addresses_are_found_by_block() {
        let p = place();
        let index = index(vec![
            (Key::Cidr { place: p.clone(), cidr: Cidr::parse("10.0.0.0/8").unwrap() }, 1),
            (Key::Cidr { place: p.clone(), cidr: Cidr::parse("10.1.0.0/16").unwrap() }, 2),
            (Key::Cidr { place: p.clone(), cidr: Cidr::parse("2001:db8::/32").unwrap() }, 3),
        ]);
        assert_eq!(hits(&index, "10.1.2.3:80"), [1, 2]);
        assert_eq!(hits(&index, "10.2.0.1"), [1]);
        assert_eq!(hits(&index, "[2001:db8::1]:443"), [3]);
        assert_eq!(hits(&index, "not an address"), Vec::<usize>::new());
        assert_eq!(hits(&index, "::ffff:10.1.2.3"), [1, 2]);
        assert_eq!(hits(&index, "[::ffff:10.2.0.1]:443"), [1]);
    }

    #[test]
    fn regexes_are_filed_under_their_literal_prefixes() {
        let prefixes = |p: &str| {
            let hir = regex_syntax::ParserBuilder::new().build().parse(&format!("^(?:{p})$")).unwrap();
            literal_prefixes(&hir).map(|v| v.iter().map(|b| b.to_vec()).collect::<Vec<_>>())
        };
        assert_eq!(prefixes("/shop/item-[0-9]+"), Some(vec![b"/shop/item-".to_vec()]));
        assert_eq!(prefixes("/(healthz|readyz)"), Some(vec![b"/healthz".to_vec(), b"/readyz".to_vec()]));
        assert_eq!(prefixes(".*/admin"), None);
        assert_eq!(prefixes("(?i)/a"), Some(vec![b"/A".to_vec(), b"/a".to_vec()]));
        // More literals than are worth filing one by one, but all under one prefix.
        assert_eq!(prefixes("/archive/7/(?P<year>[0-9]{4})/(?P<slug>[a-z0-9-]+)"), Some(vec![b"/archive/7/".to_vec()]));
    }
}
