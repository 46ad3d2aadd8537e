//! Reading call chains out of the weather answers, counting them, and the statistics the tests assert.

use std::collections::BTreeMap;
use std::fmt;

/// The versions one request passed through, from a body like `frontend=v2 button=blue forecast=v2 …`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Chain {
    pub frontend: Option<String>,
    pub forecast: Option<String>,
    pub recommendation: Option<String>,
}

impl Chain {
    pub fn parse(body: &str) -> Chain {
        let mut chain = Chain::default();
        for (key, value) in body.split_whitespace().filter_map(|w| w.split_once('=')) {
            let slot = match key {
                "frontend" => &mut chain.frontend,
                "forecast" => &mut chain.forecast,
                "recommendation" => &mut chain.recommendation,
                _ => continue,
            };
            *slot = Some(value.to_string());
        }
        chain
    }

    /// Frontend and forecast on different versions: what S5 promises never happens.
    pub fn is_mixed(&self) -> bool {
        self.frontend.is_some() && self.forecast.is_some() && self.frontend != self.forecast
    }

    /// Whether the page shows recommendations (forecast v2 called recommendation successfully).
    pub fn has_recommendations(&self) -> bool {
        self.recommendation.as_deref().is_some_and(|v| v.starts_with('v'))
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hops =
            [("frontend", &self.frontend), ("forecast", &self.forecast), ("recommendation", &self.recommendation)];
        let parts: Vec<String> = hops.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
        f.write_str(&parts.join(" → "))
    }
}

/// Counts equal items, sorted (deterministic output for tables and messages).
pub fn tally<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

/// The inclusive range a Binomial(n, p) count falls in with `sigmas` standard deviations of slack: a correct
/// split essentially never fails it (5σ: about one run in 1.7 million), a wrong weight fails it reliably.
pub fn binomial_bounds(n: usize, p: f64, sigmas: f64) -> (usize, usize) {
    let mean = n as f64 * p;
    let slack = sigmas * (n as f64 * p * (1.0 - p)).sqrt();
    ((mean - slack).max(0.0).floor() as usize, (mean + slack).min(n as f64).ceil() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_classifies() {
        let c = Chain::parse("frontend=v2 button=blue forecast=v2 recommendation=v1");
        assert_eq!(c.to_string(), "frontend=v2 → forecast=v2 → recommendation=v1");
        assert!(!c.is_mixed() && c.has_recommendations());
        let c = Chain::parse("frontend=v1 button=green forecast=v2 recommendation=error(503: x)");
        assert!(c.is_mixed() && !c.has_recommendations());
        assert_eq!(binomial_bounds(2000, 0.5, 5.0), (888, 1112));
    }
}
