//! Who is in the fleet: the weather mesh's proxies, each with the labels Istio would give its node, and which
//! service its canary filter decides for.
//!
//! ```text
//! edge (app=istio-ingressgateway)        decides frontend        (like the ingress gateway)
//! frontend-vN sidecar (app=frontend,vN)  decides forecast        (S5: `source version=v2 -> v2`)
//! forecast-vN sidecar (app=forecast,vN)  decides recommendation
//! ```
//! A fleet of N proxies takes the kinds round-robin in [`ORDER`], so any N ≥ 4 holds a whole S5 chain
//! (edge → frontend-v1 or -v2 sidecar → forecast-v2 sidecar).

use std::fmt;

/// The services a fleet's policy routes; each has its own ECDS file (the filter's `settings.service`).
pub const SERVICES: [&str; 3] = ["frontend", "forecast", "recommendation"];

/// What one proxy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An edge in front of frontend.
    Edge,
    /// The sidecar of frontend `vN`: its calls go to forecast.
    Frontend(&'static str),
    /// The sidecar of forecast `vN`: its calls go to recommendation.
    Forecast(&'static str),
}

/// The round-robin order of kinds; the first four make a whole S5 chain.
pub const ORDER: [Kind; 5] =
    [Kind::Edge, Kind::Frontend("v1"), Kind::Frontend("v2"), Kind::Forecast("v2"), Kind::Forecast("v1")];

impl Kind {
    /// The service whose subset this proxy decides (the callee of the workload it fronts).
    pub fn service(self) -> &'static str {
        match self {
            Kind::Edge => "frontend",
            Kind::Frontend(_) => "forecast",
            Kind::Forecast(_) => "recommendation",
        }
    }

    /// Node metadata `LABELS`: what `source` conditions read.
    pub fn labels(self) -> Vec<(String, String)> {
        let pairs: &[(&str, &str)] = match self {
            Kind::Edge => &[("app", "istio-ingressgateway"), ("istio", "ingressgateway")],
            Kind::Frontend(v) => &[("app", "frontend"), ("version", v)],
            Kind::Forecast(v) => &[("app", "forecast"), ("version", v)],
        };
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Edge => f.write_str("edge"),
            Kind::Frontend(v) => write!(f, "frontend-{v}-sidecar"),
            Kind::Forecast(v) => write!(f, "forecast-{v}-sidecar"),
        }
    }
}

/// The kinds of an `n`-proxy fleet, round-robin over [`ORDER`].
pub fn layout(n: usize) -> Vec<Kind> {
    (0..n).map(|i| ORDER[i % ORDER.len()]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_proxies_cover_every_kind_and_four_make_a_chain() {
        let kinds = layout(16);
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Edge).count(), 4);
        assert!(ORDER.iter().all(|k| kinds.contains(k)));
        assert_eq!(layout(4), ORDER[..4].to_vec());
        assert_eq!(Kind::Frontend("v2").to_string(), "frontend-v2-sidecar");
        assert_eq!(Kind::Forecast("v1").service(), "recommendation");
    }
}
