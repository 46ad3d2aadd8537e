//! The latency bound as a histogram bucket. "Slower than B ms" is `count - bucket(le = B)`, exact only when B
//! is a bucket bound: anything between two bounds would need interpolation, which turns counts into guesses.

/// Envoy's default histogram bounds (ms), which `upstream_rq_time` and Istio's
/// `istio_request_duration_milliseconds` use unless a bootstrap sets `histogram_bucket_settings` (in Istio, the
/// pod annotation `sidecar.istio.io/statsHistogramBuckets`) (envoyproxy/envoy
/// `source/common/stats/histogram_impl.cc`, `HistogramSettingsImpl::defaultBuckets`). The proxies' bootstraps
/// `canaryc manifest` writes keep them, so a configured bound is checked against these before any read.
pub const ENVOY_DEFAULT_BOUNDS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0,
    600000.0, 1800000.0, 3600000.0,
];

/// Checks a configured bound against Envoy's default bounds.
pub fn check_bound(bound: f64) -> Result<f64, String> {
    if ENVOY_DEFAULT_BOUNDS.contains(&bound) {
        Ok(bound)
    } else {
        Err(not_a_bound(bound, &ENVOY_DEFAULT_BOUNDS))
    }
}

/// "the latency bound 300 ms is not a bucket bound …; the bounds are 0.5, 1, …".
pub fn not_a_bound(bound: f64, bounds: &[f64]) -> String {
    let list: Vec<String> = bounds.iter().map(|b| b.to_string()).collect();
    format!(
        "latency bound {bound} ms is not a bucket bound of Envoy's latency histogram, so requests slower than it \
         cannot be counted exactly; pick one of: {}",
        list.join(", ")
    )
}

/// Whether an `le` label value names `bound` (compared as numbers: `250`, `250.0` and `2.5e+02` are one bound).
pub fn le_is(le: &str, bound: f64) -> bool {
    super::stats_text::parse_value(le) == Some(bound)
}

/// A PromQL regex (backtick raw string, anchored by PromQL) matching every spelling of `bound` an `le` label may
/// have: Envoy writes `250`, `0.5` and `3600000`; Prometheus 3 normalises classic-histogram `le` values to
/// floats on ingestion (prometheus.io, "Prometheus 3.0 migration guide": `le="1"` is stored as `le="1.0"`; large
/// bounds may take an exponent, `3.6e+06`), and 2.x stores what the target wrote, so every spelling is asked for.
pub fn le_regex(bound: f64) -> String {
    let plain = bound.to_string();
    let mut spellings = vec![plain.clone()];
    if !plain.contains('.') {
        spellings.push(format!("{plain}.0"));
    }
    let exponent = bound.abs().log10().floor();
    if !(-4.0..6.0).contains(&exponent) {
        // Rust writes 3.6e6; Go writes 3.6e+06.
        let rust = format!("{bound:e}");
        if let Some((mantissa, exp)) = rust.split_once('e') {
            let exp: i32 = exp.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            spellings.push(format!("{mantissa}e{sign}{:02}", exp.abs()));
        }
    }
    let escaped: Vec<String> = spellings.iter().map(|s| s.replace('.', r"\.").replace('+', r"\+")).collect();
    format!("`{}`", escaped.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_their_spellings() {
        assert_eq!(check_bound(250.0), Ok(250.0));
        let err = check_bound(300.0).unwrap_err();
        assert!(err.contains("300 ms") && err.contains("0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000,"), "{err}");
        assert!(le_is("250", 250.0) && le_is("250.0", 250.0) && le_is("2.5e+02", 250.0) && !le_is("+Inf", 250.0));
        assert_eq!(le_regex(250.0), r"`250|250\.0`");
        assert_eq!(le_regex(0.5), r"`0\.5`");
        assert_eq!(le_regex(3600000.0), r"`3600000|3600000\.0|3\.6e\+06`");
    }
}
