//! Local rate limits that every worker of one proxy shares: GCRA over proxy-wasm shared data.
//!
//! Envoy runs one Wasm VM per worker thread, so a counter in the module's memory would let each worker allow
//! the whole limit (4 workers: 4× it). The only memory the workers share is the proxy's *shared data*: a map
//! of byte values under one lock, read with a compare-and-swap token and written back only if that token is
//! still current. So each bucket is one value, changed by one CAS.
//!
//! **GCRA** (the generic cell rate algorithm) keeps per bucket a single time, the *theoretical arrival time*
//! (TAT): when the bucket will be full again. A request at `now` is allowed when, after adding its emission
//! interval `T = period / requests` to `max(TAT, now)`, the TAT is at most `burst × T` ahead of `now`; it then
//! stores the new TAT. A refused request writes nothing. This is a token bucket of `burst` requests refilled at
//! `requests / period`, in one number.
//!
//! **Bounded key space.** Shared data has no delete and no expiry, so a key per client would grow without
//! bound under random client keys. Buckets instead live in a fixed table of `max_keys` slots per rule: a
//! client's key is hashed, and the client may use one of two slots chosen by the hash. A slot remembers its
//! owner's hash beside the TAT (one 16-byte value). A slot whose bucket is full again (TAT in the past) holds
//! nothing worth keeping, so another key may take it: stale clients are recycled, and memory stays at
//! `max_keys + 1` values per rule whatever clients send. When both slots are held by other active keys, the
//! request counts against the rule's one shared *overflow* bucket. The table is keyed by a hash of the limit,
//! so a changed limit starts with fresh buckets while an unchanged one keeps its own across reloads.
//!
//! Nothing here calls the proxy: [`SharedData`] is the store (Envoy's shared data in the module, a map in the
//! simulated proxy and in tests), which keeps the algorithm plain Rust and testable natively.

use std::hash::{Hash, Hasher};

/// Compare-and-swap attempts for one request before it is decided by the rule's `fail` setting. Each
/// attempt is a read and a write under the proxy's lock; losing 8 in a row means several workers keep
/// changing this very bucket, which the overflow bucket can do under a key flood.
pub const MAX_ATTEMPTS: u32 = 8;

/// The most slots one rule may ask for (`max_keys`): about 100 bytes of proxy memory each.
pub const MAX_KEYS_LIMIT: u64 = 1_000_000;
/// Slots per rule when `max_keys` is not given.
pub const DEFAULT_MAX_KEYS: u64 = 10_000;
/// The largest `requests` and `burst`.
pub const MAX_REQUESTS: u64 = 1_000_000_000;

/// The period a limit's `requests` are counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Per {
    Second,
    Minute,
    Hour,
}

impl Per {
    pub fn seconds(self) -> u64 {
        match self {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3600,
        }
    }

    /// The word as written in a document.
    pub fn name(self) -> &'static str {
        match self {
            Per::Second => "second",
            Per::Minute => "minute",
            Per::Hour => "hour",
        }
    }

    pub fn parse(text: &str) -> Option<Per> {
        match text {
            "second" => Some(Per::Second),
            "minute" => Some(Per::Minute),
            "hour" => Some(Per::Hour),
            _ => None,
        }
    }
}

/// `requests` per `per`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    pub requests: u64,
    pub per: Per,
    pub burst: u64,
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// How far apart two workers' readings of the clock may be for one bucket: a request reads the clock, then
/// the bucket, and another worker that read the clock later may have written in between. Only a TAT further
/// ahead than the tolerance plus this is taken for a clock that stepped back.
const CLOCK_SKEW_NS: u64 = NANOS_PER_SECOND;

impl Limit {
    /// The time one request uses up: `period / requests`, in nanoseconds (at least 1).
    fn emission_ns(&self) -> u64 {
        (self.per.seconds().saturating_mul(NANOS_PER_SECOND) / self.requests.max(1)).max(1)
    }

    /// How far ahead of now a bucket's TAT may be and still take one more request.
    fn tolerance_ns(&self) -> u64 {
        self.emission_ns().saturating_mul(self.burst.max(1))
    }

    /// A short, stable name for this limit, part of every bucket key: the same limit after a reload finds its
    /// buckets, a changed one starts fresh (FNV-1a over the three numbers; stable across builds, unlike std's
    /// hasher, so a module upgrade keeps buckets too).
    pub fn fingerprint(&self) -> u32 {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in self
            .requests
            .to_le_bytes()
            .into_iter()
            .chain(self.per.seconds().to_le_bytes())
            .chain(self.burst.to_le_bytes())
        {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        hash
    }

    /// GCRA: the decision for a request at `now` on a bucket whose TAT is `tat` (`None`: a fresh bucket).
    pub fn decide(&self, tat: Option<u64>, now: u64) -> Gcra {
        let (emission, tolerance) = (self.emission_ns(), self.tolerance_ns());
        // A TAT further ahead than any request could have put it (a clock that stepped back, a value written
        // by something else) would block the key for that long: treat the bucket as fresh instead. Up to
        // CLOCK_SKEW_NS past the tolerance is normal: another worker read the clock after this request did
        // and wrote before it.
        let plausible = tolerance.saturating_add(CLOCK_SKEW_NS);
        let tat = tat.filter(|&tat| tat.saturating_sub(now) <= plausible).unwrap_or(now).max(now);
        let new_tat = tat.saturating_add(emission);
        let ahead = new_tat - now;
        if ahead > tolerance {
            Gcra::Limited { retry_after_ns: ahead - tolerance, reset_ns: tat - now }
        } else {
            Gcra::Allowed { new_tat, remaining: (tolerance - ahead) / emission, reset_ns: ahead }
        }
    }
}

/// What GCRA says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gcra {
    /// Take it, and store `new_tat`. `remaining` more requests would be allowed right now; the bucket is full
    /// again after `reset_ns`.
    Allowed { new_tat: u64, remaining: u64, reset_ns: u64 },
    /// Refuse it; one more request is allowed after `retry_after_ns`, all of the burst after `reset_ns`.
    Limited { retry_after_ns: u64, reset_ns: u64 },
}

/// The proxy's shared data, as far as rate limits use it.
pub trait SharedData {
    /// The value under `key` and its CAS token; `Ok(None)` when the key was never written.
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String>;
    /// Writes `value` if `cas` is still the key's token (`0`: unconditionally). `Ok(false)`: another writer
    /// came first.
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, String>;
}

/// Where a request's bucket was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// The key's own slot.
    Own,
    /// The rule's overflow bucket: both of the key's slots were held by other active keys.
    Overflow,
}

/// The outcome of one request against a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed {
        remaining: u64,
        reset_ns: u64,
        bucket: Bucket,
    },
    Limited {
        retry_after_ns: u64,
        reset_ns: u64,
        bucket: Bucket,
    },
    /// The shared data could not decide: the host refused a call, or other workers won every CAS attempt.
    Failed(String),
}

/// One rule's table of buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    pub limit: Limit,
    /// Slots in the table (`max_keys`).
    pub slots: u64,
    /// `<rule>/<fingerprint>/`, after the plugin's namespace in the module: what every key of this table starts
    /// with.
    prefix: Box<str>,
}

/// The 64-bit hash of a rendered key. SipHash (std's default hasher, fixed keys) rather than a weaker hash:
/// a client choosing its own key must not be able to aim at another client's slot. Every worker runs the same
/// module, so every worker computes the same hash.
pub fn key_hash(key: &str) -> u64 {
    #[allow(deprecated)] // SipHasher is std's documented, fixed-key SipHash; DefaultHasher is not promised to be one.
    let mut hasher = std::hash::SipHasher::new();
    key.hash(&mut hasher);
    // 0 marks the overflow bucket's owner.
    hasher.finish().max(1)
}

impl Buckets {
    pub fn new(rule: &str, limit: Limit, slots: u64) -> Buckets {
        let prefix = format!("{rule}/{:08x}/", limit.fingerprint()).into_boxed_str();
        Buckets { limit, slots: slots.max(1), prefix }
    }

    /// Puts `namespace` (the plugin's, in the module) in front of every key: every plugin on a proxy shares
    /// one shared-data map.
    pub fn set_namespace(&mut self, namespace: &str) {
        self.prefix = format!("{namespace}{}", self.prefix).into_boxed_str();
    }

    /// The shared-data key of slot `slot` (or of the overflow bucket, `None`).
    pub fn slot_key(&self, slot: Option<u64>) -> String {
        match slot {
            Some(slot) => format!("{}{slot}", self.prefix),
            None => format!("{}overflow", self.prefix),
        }
    }

    /// The key's two slots: two independent parts of its hash.
    fn slots_of(&self, hash: u64) -> [u64; 2] {
        [hash % self.slots, hash.rotate_left(32) % self.slots]
    }

    /// Takes one request of the client whose rendered key hashed to `hash`, at `now` (nanoseconds).
    pub fn take(&self, store: &mut impl SharedData, hash: u64, now: u64) -> Verdict {
        let mut attempts = 0;
        loop {
            if attempts == MAX_ATTEMPTS {
                return Verdict::Failed(format!("{MAX_ATTEMPTS} compare-and-swap attempts lost to other workers"));
            }
            attempts += 1;
            match self.attempt(store, hash, now) {
                Ok(Some(verdict)) => return verdict,
                Ok(None) => {}
                Err(message) => return Verdict::Failed(message),
            }
        }
    }

    /// One read-decide-write round; `Ok(None)` when a CAS lost and the round must be run again.
    fn attempt(&self, store: &mut impl SharedData, hash: u64, now: u64) -> Result<Option<Verdict>, String> {
        let mut free: Option<(String, u32)> = None;
        for slot in self.slots_of(hash) {
            let key = self.slot_key(Some(slot));
            let entry = store.get(&key)?;
            let (owner, tat, cas) = match &entry {
                Some((value, cas)) => match decode(value) {
                    Some((owner, tat)) => (owner, Some(tat), *cas),
                    None => (0, None, *cas),
                },
                None => (0, None, 0),
            };
            if owner == hash {
                return self.write(store, &key, cas, hash, tat, now, Bucket::Own);
            }
            // Never written, unreadable, or its owner's bucket is full again: nothing there to keep.
            let idle = tat.is_none_or(|tat| tat <= now);
            if idle && free.is_none() {
                free = Some((key, cas));
            }
        }
        if let Some((key, cas)) = free {
            return self.write(store, &key, cas, hash, None, now, Bucket::Own);
        }
        let key = self.slot_key(None);
        let (tat, cas) = match store.get(&key)? {
            Some((value, cas)) => (decode(&value).map(|(_, tat)| tat), cas),
            None => (None, 0),
        };
        self.write(store, &key, cas, 0, tat, now, Bucket::Overflow)
    }

    /// Decides on a bucket and, if the request is allowed, stores its new TAT under `cas`.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        store: &mut impl SharedData,
        key: &str,
        cas: u32,
        owner: u64,
        tat: Option<u64>,
        now: u64,
        bucket: Bucket,
    ) -> Result<Option<Verdict>, String> {
        match self.limit.decide(tat, now) {
            Gcra::Limited { retry_after_ns, reset_ns } => {
                Ok(Some(Verdict::Limited { retry_after_ns, reset_ns, bucket }))
            }
            Gcra::Allowed { new_tat, remaining, reset_ns } => {
                let stored = store.set(key, &encode(owner, new_tat), cas)?;
                Ok(stored.then_some(Verdict::Allowed { remaining, reset_ns, bucket }))
            }
        }
    }
}

/// A slot's value: the owner's key hash, then the TAT, both little-endian.
fn encode(owner: u64, tat: u64) -> [u8; 16] {
    let mut value = [0; 16];
    let (a, b) = value.split_at_mut(8);
    a.copy_from_slice(&owner.to_le_bytes());
    b.copy_from_slice(&tat.to_le_bytes());
    value
}

fn decode(value: &[u8]) -> Option<(u64, u64)> {
    let owner = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let tat = u64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    Some((owner, tat))
}

/// Whole seconds for a header, rounded up: a client that waits that long is let in.
pub fn ceil_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SECOND)
}

/// Shared data in memory, with Envoy's semantics: every write gives the key a new token; a write with token 0
/// always succeeds. The simulated proxy and the tests use it.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Default, Clone)]
pub struct MemoryData {
    values: std::collections::HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

#[cfg(not(target_arch = "wasm32"))]
impl MemoryData {
    /// How many keys were ever written.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl SharedData for MemoryData {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Ok(self.values.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, String> {
        if let Some((_, current)) = self.values.get(key) {
            if cas != 0 && cas != *current {
                return Ok(false);
            }
        }
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.values.insert(key.to_owned(), (value.to_vec(), self.next_cas));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = NANOS_PER_SECOND;
    /// A start far from 0, as Envoy's wall clock is.
    const START: u64 = 1_700_000_000 * SECOND;

    fn per_second(requests: u64, burst: u64) -> Limit {
        Limit { requests, per: Per::Second, burst }
    }

    fn allowed(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Allowed { .. })
    }

    #[test]
    fn a_fresh_bucket_allows_the_burst_then_refills_at_the_rate() {
        let buckets = Buckets::new("r", per_second(10, 3), 100);
        let mut store = MemoryData::default();
        let hash = key_hash("client");
        let results: Vec<Verdict> = (0..4).map(|_| buckets.take(&mut store, hash, START)).collect();
        assert_eq!(results[0], Verdict::Allowed { remaining: 2, reset_ns: SECOND / 10, bucket: Bucket::Own });
        assert!(matches!(results[2], Verdict::Allowed { remaining: 0, .. }));
        assert_eq!(
            results[3],
            Verdict::Limited { retry_after_ns: SECOND / 10, reset_ns: 3 * SECOND / 10, bucket: Bucket::Own }
        );
        // One emission interval later exactly one more is allowed.
        assert!(allowed(&buckets.take(&mut store, hash, START + SECOND / 10)));
        assert!(!allowed(&buckets.take(&mut store, hash, START + SECOND / 10)));
        // After a quiet second the whole burst is back.
        let later = START + 2 * SECOND;
        assert_eq!((0..5).filter(|_| allowed(&buckets.take(&mut store, hash, later))).count(), 3);
    }

    #[test]
    fn over_a_window_the_allowed_count_is_the_burst_plus_the_rate() {
        // 50/s with a burst of 10, a request every millisecond for 2 s: 10 + 2 × 50 allowed.
        let buckets = Buckets::new("r", per_second(50, 10), 10);
        let mut store = MemoryData::default();
        let hash = key_hash("k");
        let allowed_count =
            (0..2000u64).filter(|ms| allowed(&buckets.take(&mut store, hash, START + ms * SECOND / 1000))).count();
        assert!((109..=111).contains(&allowed_count), "{allowed_count}");
    }

    #[test]
    fn limits_per_minute_and_hour_use_their_period() {
        let limit = Limit { requests: 2, per: Per::Hour, burst: 2 };
        assert_eq!(
            limit.decide(None, START),
            Gcra::Allowed { new_tat: START + 1800 * SECOND, remaining: 1, reset_ns: 1800 * SECOND }
        );
        let full = START + 3600 * SECOND;
        assert_eq!(
            limit.decide(Some(full), START),
            Gcra::Limited { retry_after_ns: 1800 * SECOND, reset_ns: 3600 * SECOND }
        );
        let minute = Limit { requests: 6, per: Per::Minute, burst: 1 };
        assert_eq!(
            minute.decide(Some(START + 10 * SECOND), START),
            Gcra::Limited { retry_after_ns: 10 * SECOND, reset_ns: 10 * SECOND }
        );
    }

    #[test]
    fn a_tat_written_by_a_worker_whose_clock_read_later_still_counts() {
        // Worker B read the clock 3 ms after worker A, took the last request of the burst and wrote first.
        let limit = per_second(200, 50);
        let emission = SECOND / 200;
        let written_by_b = START + 3_000_000 + 50 * emission;
        assert!(matches!(limit.decide(Some(written_by_b), START), Gcra::Limited { .. }));
    }

    #[test]
    fn a_tat_no_request_could_have_written_is_treated_as_fresh() {
        // The clock stepped back an hour: the key is not blocked for that hour.
        let limit = per_second(1, 1);
        assert!(matches!(limit.decide(Some(START + 3600 * SECOND), START), Gcra::Allowed { .. }));
    }

    #[test]
    fn keys_are_independent_and_each_has_its_own_bucket() {
        let buckets = Buckets::new("r", per_second(1, 1), 1000);
        let mut store = MemoryData::default();
        for client in ["a", "b", "c"] {
            assert!(allowed(&buckets.take(&mut store, key_hash(client), START)));
            assert!(!allowed(&buckets.take(&mut store, key_hash(client), START)));
        }
    }

    #[test]
    fn memory_stays_at_the_slot_count_whatever_the_keys() {
        let buckets = Buckets::new("r", per_second(5, 5), 64);
        let mut store = MemoryData::default();
        for i in 0..100_000u64 {
            buckets.take(&mut store, key_hash(&format!("random-{i}")), START + i * SECOND / 1000);
        }
        // 64 slots and the overflow bucket, never more.
        assert!(store.len() <= 65, "{}", store.len());
        assert!(store.keys().all(|k| k.starts_with("r/")));
    }

    #[test]
    fn past_the_cap_new_keys_share_the_overflow_bucket() {
        // One slot: the first key takes it; while it is active, others share one overflow bucket.
        let buckets = Buckets::new("r", per_second(1, 2), 1);
        let mut store = MemoryData::default();
        let first = buckets.take(&mut store, key_hash("first"), START);
        assert!(matches!(first, Verdict::Allowed { bucket: Bucket::Own, .. }));
        let second = buckets.take(&mut store, key_hash("second"), START);
        assert!(matches!(second, Verdict::Allowed { bucket: Bucket::Overflow, .. }), "{second:?}");
        let third = buckets.take(&mut store, key_hash("third"), START);
        assert!(matches!(third, Verdict::Allowed { bucket: Bucket::Overflow, remaining: 0, .. }), "{third:?}");
        let fourth = buckets.take(&mut store, key_hash("fourth"), START);
        assert!(matches!(fourth, Verdict::Limited { bucket: Bucket::Overflow, .. }), "{fourth:?}");
        // Once the first key's bucket is full again, its slot goes to whoever comes next.
        let later = START + 2 * SECOND;
        let fifth = buckets.take(&mut store, key_hash("fifth"), later);
        assert!(matches!(fifth, Verdict::Allowed { bucket: Bucket::Own, .. }), "{fifth:?}");
    }

    #[test]
    fn a_key_keeps_its_slot_while_its_bucket_is_active() {
        let buckets = Buckets::new("r", per_second(1, 1), 1);
        let mut store = MemoryData::default();
        assert!(allowed(&buckets.take(&mut store, key_hash("a"), START)));
        // Still limited: another key cannot push it out to get it a fresh bucket.
        buckets.take(&mut store, key_hash("b"), START);
        assert!(matches!(
            buckets.take(&mut store, key_hash("a"), START + SECOND / 2),
            Verdict::Limited { bucket: Bucket::Own, .. }
        ));
    }

    #[test]
    fn a_changed_limit_starts_fresh_and_the_same_limit_finds_its_buckets() {
        let limit = per_second(1, 1);
        let mut store = MemoryData::default();
        assert!(allowed(&Buckets::new("r", limit, 10).take(&mut store, 7, START)));
        // Reloaded with the same rule and limit: the bucket is still spent.
        assert!(!allowed(&Buckets::new("r", limit, 10).take(&mut store, 7, START)));
        // A different limit (or another rule) has buckets of its own.
        assert!(allowed(&Buckets::new("r", per_second(2, 1), 10).take(&mut store, 7, START)));
        assert!(allowed(&Buckets::new("other", limit, 10).take(&mut store, 7, START)));
        assert_ne!(limit.fingerprint(), per_second(1, 2).fingerprint());
    }

    /// A store where another worker writes between our read and our write, `races` times.
    struct Contended {
        inner: MemoryData,
        races: u32,
    }

    impl SharedData for Contended {
        fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            let got = self.inner.get(key);
            if self.races > 0 {
                self.races -= 1;
                let (value, _) = self.inner.get(key)?.unwrap_or((encode(1, 0).to_vec(), 0));
                self.inner.set(key, &value, 0)?;
            }
            got
        }

        fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, String> {
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn lost_compare_and_swaps_are_retried_a_bounded_number_of_times() {
        let buckets = Buckets::new("r", per_second(100, 100), 1);
        let hash = key_hash("k");
        // Prime the slot so every attempt reads it with a token.
        let mut store = Contended { inner: MemoryData::default(), races: 0 };
        buckets.take(&mut store, hash, START);
        store.races = 3;
        assert!(allowed(&buckets.take(&mut store, hash, START)));
        store.races = 1000;
        assert_eq!(
            buckets.take(&mut store, hash, START),
            Verdict::Failed("8 compare-and-swap attempts lost to other workers".into())
        );
    }

    struct Refusing;

    impl SharedData for Refusing {
        fn get(&mut self, _: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            Err("status 2".into())
        }
        fn set(&mut self, _: &str, _: &[u8], _: u32) -> Result<bool, String> {
            Err("status 2".into())
        }
    }

    #[test]
    fn a_refusing_host_fails_the_request_with_its_reason() {
        let buckets = Buckets::new("r", per_second(1, 1), 1);
        assert_eq!(buckets.take(&mut Refusing, 1, START), Verdict::Failed("status 2".into()));
    }

    #[test]
    fn key_hashes_are_stable_and_never_the_overflow_owner() {
        assert_eq!(key_hash("10.0.0.1"), key_hash("10.0.0.1"));
        assert_ne!(key_hash("10.0.0.1"), key_hash("10.0.0.2"));
        assert_eq!(
            Buckets::new("api", per_second(1, 1), 1).slot_key(None),
            format!("api/{:08x}/overflow", per_second(1, 1).fingerprint())
        );
        assert_eq!(ceil_seconds(1), 1);
        assert_eq!(ceil_seconds(SECOND), 1);
        assert_eq!(ceil_seconds(SECOND + 1), 2);
    }
}
