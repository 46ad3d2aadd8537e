//! The two PromQL pieces the peers' queries rest on: `histogram_quantile` over classic `_bucket` series and the
//! ratio of two `rate`s over one window.
//!
//! Flagger's built-in `request-duration` check is `histogram_quantile(0.99, sum(rate(…_bucket[1m])) by (le))`
//! (fluxcd/flagger `pkg/metrics/observers/istio.go`, `istioQueries`), so its verdict depends on Prometheus's
//! interpolation rules, not on the true 99th percentile: this module follows prometheus/prometheus
//! `promql/quantile.go`, `BucketQuantile`, `coalesceBuckets` and `ensureMonotonicAndIgnoreSmallDeltas`, line
//! for line in the order of operations.
//!
//! **`rate` and extrapolation.** `rate(x[1m])` is the increase between the first and last sample in the window,
//! extrapolated to the window's length by a factor that depends only on the sample timestamps. Every series in
//! a `sum(rate(…)) / sum(rate(…))` ratio, and every `le` series under one `histogram_quantile`, is scraped at
//! the same instants, so the factor cancels (the one exception, Prometheus's clamp of an extrapolation that
//! would cross zero, never applies to counters that grew during the window). The peers therefore use the
//! plain sums of the simulator's per-second events over the window, as if samples sat at both window ends.

use canary_rollout::sim::LATENCY_BOUNDS_MS;

/// One classic histogram bucket: upper bound (`le`) and cumulative count (prometheus `promql/quantile.go`,
/// `Bucket`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// Prometheus's tolerance for float noise between adjacent buckets (`promql/quantile.go`,
/// `smallDeltaTolerance`).
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// `histogram_quantile(q, …)` for one classic histogram, as prometheus `promql/quantile.go` `BucketQuantile`:
/// NaN for a NaN `q`, −Inf below 0, +Inf above 1; NaN when the highest bucket is not `+Inf`, when fewer than
/// two buckets remain or when there are no observations; a rank in the `+Inf` bucket returns the highest
/// finite bound; a first bucket with a bound ≤ 0 returns that bound; otherwise linear interpolation inside the
/// bucket, whose lower edge is the previous bound (0 for the first bucket).
pub fn bucket_quantile(q: f64, buckets: &[Bucket]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut buckets = buckets.to_vec();
    // Go sorts by upper bound and "does not expect" NaN bounds; total_cmp keeps us panic-free on them.
    buckets.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    let mut buckets = coalesce_buckets(buckets);
    ensure_monotonic(&mut buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // Go: sort.Search(len(buckets)-1, func(i) bool { return buckets[i].Count >= rank }).
    let b = buckets[..buckets.len() - 1].partition_point(|bucket| bucket.count < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].upper_bound;
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return buckets[0].upper_bound;
    }
    let bucket_end = buckets[b].upper_bound;
    let mut count = buckets[b].count;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Merges buckets with equal bounds (`promql/quantile.go`, `coalesceBuckets`); the input is sorted.
fn coalesce_buckets(buckets: Vec<Bucket>) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match out.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => out.push(b),
        }
    }
    out
}

/// Removes decreases between successive cumulative counts and silently equalises numerically insignificant
/// differences (`promql/quantile.go`, `ensureMonotonicAndIgnoreSmallDeltas`): `prev` is not advanced past an
/// ignored difference or a decrease.
fn ensure_monotonic(buckets: &mut [Bucket]) {
    let Some(first) = buckets.first() else { return };
    let mut prev = first.count;
    for bucket in buckets.iter_mut().skip(1) {
        let curr = bucket.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) || curr < prev {
            bucket.count = prev;
            continue;
        }
        prev = curr;
    }
}

/// prometheus `util/almost/almost.go`, `Equal`: relative difference below `epsilon`, with an absolute floor
/// near zero.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE; // Go's 2.2250738585072014e-308
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// `histogram_quantile(q, sum(rate(istio_request_duration_milliseconds_bucket[W])) by (le))` over one window's
/// per-bucket request counts (`latency[i]` ≤ `LATENCY_BOUNDS_MS[i]`, the last `+Inf`, not cumulative).
pub fn istio_latency_quantile(q: f64, latency: &[u64; 20]) -> f64 {
    let mut cumulative = 0u64;
    let buckets: Vec<Bucket> = latency
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            cumulative = cumulative.saturating_add(n);
            let upper_bound = LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(f64::INFINITY);
            Bucket { upper_bound, count: cumulative as f64 }
        })
        .collect();
    bucket_quantile(q, &buckets)
}

/// `sum(rate(good[W])) / sum(rate(all[W]))`: NaN when the window saw no request (Prometheus returns NaN for
/// 0/0, which every peer then treats as "no data").
pub fn ratio(good: u64, all: u64) -> f64 {
    if all == 0 {
        f64::NAN
    } else {
        good as f64 / all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs.iter().map(|&(upper_bound, count)| Bucket { upper_bound, count }).collect()
    }

    /// prometheus `promql/promqltest/testdata/histograms.test`: `testhistogram{start="positive"}` at 50m
    /// (le 0.1, 0.2, 1, +Inf = 50, 70, 110, 120) and `{start="negative"}` (le −0.2, −0.1, 0.3, +Inf =
    /// 10, 20, 20, 30), with the expected values listed there.
    #[test]
    fn matches_prometheus_testdata() {
        let pos = hist(&[(0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (f64::INFINITY, 120.0)]);
        let neg = hist(&[(-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (f64::INFINITY, 30.0)]);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(bucket_quantile(0.2, &pos), 0.048));
        assert!(close(bucket_quantile(0.5, &pos), 0.15));
        assert!(close(bucket_quantile(0.8, &pos), 0.72));
        assert!(close(bucket_quantile(1.0, &pos), 1.0));
        assert!(close(bucket_quantile(0.0, &pos), 0.0));
        assert!(close(bucket_quantile(0.0, &neg), -0.2));
        assert!(close(bucket_quantile(0.2, &neg), -0.2));
        assert!(close(bucket_quantile(0.5, &neg), -0.15));
        assert!(close(bucket_quantile(0.8, &neg), 0.3));
        assert!(close(bucket_quantile(1.0, &neg), 0.3));
        assert_eq!(bucket_quantile(-0.1, &pos), f64::NEG_INFINITY);
        assert_eq!(bucket_quantile(1.01, &pos), f64::INFINITY);
        assert!(bucket_quantile(f64::NAN, &pos).is_nan());
        // testhistogram2 at 7m (one 5m step): le 0, 2, 4, 6, +Inf = 0, 1, 2, 3, 3; q(1/6) is mid-bucket = 1.
        let two = hist(&[(0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (f64::INFINITY, 3.0)]);
        assert!(close(bucket_quantile(1.0 / 6.0, &two), 1.0));
        assert!(close(bucket_quantile(0.5, &two), 3.0));
        assert!(close(bucket_quantile(5.0 / 6.0, &two), 5.0));
    }

    #[test]
    fn degenerate_histograms_are_nan() {
        assert!(bucket_quantile(0.99, &[]).is_nan());
        assert!(bucket_quantile(0.99, &hist(&[(1.0, 3.0), (2.0, 4.0)])).is_nan(), "no +Inf bucket");
        assert!(bucket_quantile(0.99, &hist(&[(f64::INFINITY, 4.0)])).is_nan(), "one bucket");
        assert!(bucket_quantile(0.99, &hist(&[(1.0, 0.0), (f64::INFINITY, 0.0)])).is_nan(), "no observations");
        // Unsorted, duplicated and decreasing input is sorted, merged and made monotonic, as in Go.
        let messy = hist(&[(f64::INFINITY, 10.0), (2.0, 4.0), (1.0, 6.0)]);
        // Monotonic envelope: le 1 = 6, le 2 = 6, +Inf = 10; rank 5 lies in the first bucket: 0 + 1 × 5/6.
        assert!((bucket_quantile(0.5, &messy) - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn istio_buckets() {
        // 100 requests: 98 in (25, 50], 2 in (250, 500]. p99: rank 99, in (250, 500]: 250 + 250 × 1/2 = 375.
        let mut latency = [0u64; 20];
        latency[5] = 98;
        latency[8] = 2;
        assert_eq!(istio_latency_quantile(0.99, &latency), 375.0);
        // Everything in +Inf: the highest finite bound, 3 600 000 ms.
        let mut inf = [0u64; 20];
        inf[19] = 7;
        assert_eq!(istio_latency_quantile(0.99, &inf), 3_600_000.0);
        assert!(istio_latency_quantile(0.99, &[0; 20]).is_nan());
        assert!(ratio(0, 0).is_nan());
        assert_eq!(ratio(59, 60), 59.0 / 60.0);
    }
}
