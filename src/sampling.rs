//! Sampling: a condition that holds for a percentage of requests, decided by a hash of a key the request
//! carries. The same key always lands in the same place of 10 000 buckets, whichever worker, proxy or
//! reload evaluates it, so a user keyed by id stays in (or out of) a rollout, and raising the percentage only
//! adds keys. There is no randomness in the module: the default key, `x-request-id`, is the random UUID
//! Envoy's connection manager gives each request (and Istio propagates for tracing), so every rule and
//! filter keyed on it agrees on one draw per request, and a test can choose the draw by sending one.

use crate::fnv::Fnv;

/// The resolution of a percentage: buckets per 100 %.
pub const BUCKETS: u32 = 10_000;

/// The key when a `sample` condition names none.
pub const DEFAULT_KEY: &str = "${header.x-request-id}";

/// The number of buckets (of [`BUCKETS`]) a percentage selects: `10` → 1000. Refuses what is not a number
/// from 0 to 100 with at most two decimals.
pub fn buckets_for(percent: f64) -> Result<u32, String> {
    let hundredths = percent * 100.0;
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("{percent} is not a percentage from 0 to 100"));
    }
    if (hundredths - hundredths.round()).abs() > 1e-6 {
        return Err(format!("{percent}: a percentage has at most two decimals (0.01 is the finest slice)"));
    }
    // In range and whole: the cast cannot truncate.
    Ok(hundredths.round() as u32)
}

/// Where `key` falls, `0..BUCKETS`, for the condition seeded with `seed`: FNV-1a over the seed, a zero byte
/// and the key, then MurmurHash3's 64-bit finalizer so that keys differing in their last byte spread over
/// every bucket. Fixed forever: changing it would move every user of a running rollout.
pub fn bucket(seed: &str, key: &str) -> u32 {
    let mut hash = Fnv::START.bytes(seed.bytes().chain([0]).chain(key.bytes())).0;
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    u32::try_from(hash % u64::from(BUCKETS)).unwrap_or(0)
}

/// Whether a request whose key is `key` is in the sample of `buckets` buckets. A request without a key (or
/// with an empty one) has no place to fall: it is in only a 100 % sample.
pub fn sampled(buckets: u32, seed: &str, key: Option<&str>) -> bool {
    match key.filter(|k| !k.is_empty()) {
        Some(key) => bucket(seed, key) < buckets,
        None => buckets >= BUCKETS,
    }
}

/// A bucket as the percentage it sits at, for traces: `4312` → `43.12`.
pub fn as_percent(bucket: u32) -> String {
    format!("{}.{:02}", bucket / 100, bucket % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_become_buckets_to_the_hundredth() {
        assert_eq!(buckets_for(10.0), Ok(1000));
        assert_eq!(buckets_for(0.01), Ok(1));
        assert_eq!(buckets_for(33.33), Ok(3333));
        assert_eq!(buckets_for(0.0), Ok(0));
        assert_eq!(buckets_for(100.0), Ok(BUCKETS));
        assert_eq!(buckets_for(100.5).unwrap_err(), "100.5 is not a percentage from 0 to 100");
        assert_eq!(buckets_for(-1.0).unwrap_err(), "-1 is not a percentage from 0 to 100");
        assert!(buckets_for(f64::NAN).is_err());
        assert_eq!(
            buckets_for(12.345).unwrap_err(),
            "12.345: a percentage has at most two decimals (0.01 is the finest slice)"
        );
    }

    #[test]
    fn buckets_are_fixed_spread_and_depend_on_the_seed() {
        // Pinned: a rollout must not move its users when the module is rebuilt.
        assert_eq!(bucket("", "user-1"), bucket("", "user-1"));
        let pinned: Vec<u32> = ["user-1", "user-2", "user-3"].iter().map(|k| bucket("", k)).collect();
        assert_eq!(pinned, PINNED);
        assert_ne!(bucket("a", "user-1"), bucket("b", "user-1"));
        // Sequential ids fill the buckets evenly: each tenth holds about a tenth of them.
        let mut tenths = [0u32; 10];
        for id in 0..20_000 {
            tenths[usize::try_from(bucket("", &format!("user-{id}")) / 1000).unwrap()] += 1;
        }
        assert!(tenths.iter().all(|n| (1800..=2200).contains(n)), "{tenths:?}");
        assert_eq!(as_percent(4312), "43.12");
        assert_eq!(as_percent(7), "0.07");
    }

    const PINNED: [u32; 3] = [9229, 7699, 4193];
}
