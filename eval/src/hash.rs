//! Sticky bucketing, with Envoy's own formula so that the filter and Envoy's native routes put every key in
//! the same subset: `xxh64(key, seed 0) % 10000`, which is what a route's `hash_policy` computes and
//! `WeightedCluster.use_hash_policy` reduces modulo the sum of the weights (we always write weights that sum
//! to [`BUCKETS`]). A service can then move between the filter and native routes without reshuffling users.
//!
//! A sticky header sent several times is keyed on all its values, as Envoy's header hash policy keys it
//! (`source/common/http/hash_policy.cc`): the values sorted bytewise, then chained —
//! `h = xxh64(v1, 0)`, `h = xxh64(v2, h)`, … — so the order the client sent them in does not matter. One
//! value is the plain `xxh64(value, 0)`.
//!
//! The key is not salted with the service: every split keyed on the same cookie or header shares one cohort
//! (the first 10% of users are the canary of every 10% split on that key), which keeps a tester cohort
//! together across services — and is the only choice Envoy's hash policy allows.

use crate::config::BUCKETS;
use xxhash_rust::xxh64::xxh64;

/// Bucket in `0..BUCKETS` for a sticky key. Stable forever: changing it would move users between versions
/// on upgrade.
pub fn sticky_bucket(key: &[u8]) -> u32 {
    (xxh64(key, 0) % u64::from(BUCKETS)) as u32
}

/// Bucket for a sticky header with these values (at least one), as Envoy hashes them: sorted, chained.
pub fn sticky_bucket_all(values: &[&[u8]]) -> u32 {
    match values {
        [one] => sticky_bucket(one),
        _ => {
            // Sorted as `(Vec<u8>, usize)` pairs: the element type the indexes already sort (`index::permute`),
            // so the wasm filter carries one copy of the sort code.
            let mut sorted: Vec<(Vec<u8>, usize)> = Vec::with_capacity(values.len());
            for v in values {
                sorted.push((v.to_vec(), 0));
            }
            sorted.sort_unstable();
            let mut hash = 0;
            for (v, _) in &sorted {
                hash = xxh64(v, hash);
            }
            (hash % u64::from(BUCKETS)) as u32
        }
    }
}

/// Uniform bucket from 32 random bits (Lemire's multiply-shift: no division, bias < 3e-6).
pub fn random_bucket(bits: u32) -> u32 {
    ((u64::from(bits) * u64::from(BUCKETS)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_pinned() {
        // xxh64 test vectors (seed 0) from the reference implementation, then their buckets. Real Envoy is
        // checked key by key in tests/tests/envoy_native.rs; a change here reshuffles every sticky user.
        assert_eq!(xxh64(b"", 0), 0xef46_db37_51d8_e999);
        assert_eq!(xxh64(b"a", 0), 0xd24e_c4f1_a98c_6e5b);
        assert_eq!(sticky_bucket(b""), (0xef46_db37_51d8_e999u64 % 10_000) as u32);
        assert_eq!(sticky_bucket(b"a"), (0xd24e_c4f1_a98c_6e5bu64 % 10_000) as u32);
    }

    #[test]
    fn repeated_values_are_sorted_and_chained() {
        let chained = xxh64(b"b", xxh64(b"a", 0));
        assert_eq!(sticky_bucket_all(&[b"b", b"a"]), (chained % 10_000) as u32);
        assert_eq!(sticky_bucket_all(&[b"a", b"b"]), sticky_bucket_all(&[b"b", b"a"]));
        assert_eq!(sticky_bucket_all(&[b"a"]), sticky_bucket(b"a"));
        // Bytewise order, as `std::sort` over `absl::string_view` (unsigned bytes): 0xff sorts last.
        let high = xxh64(b"\xff", xxh64(b"z", xxh64(b"", 0)));
        assert_eq!(sticky_bucket_all(&[b"\xff", b"", b"z"]), (high % 10_000) as u32);
    }

    #[test]
    fn random_bucket_covers_range() {
        assert_eq!(random_bucket(0), 0);
        assert_eq!(random_bucket(u32::MAX), BUCKETS - 1);
    }
}
