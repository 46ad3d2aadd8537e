//! The Envoy release a native form needs. Meshes run older Envoys (each Istio release pins one), so every
//! native feature the lowering uses is gated here on the release that introduced it; an older target gets the
//! filter for that rule, with the reason.

use std::fmt;

/// An Envoy release, `MAJOR.MINOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvoyVersion {
    pub major: u32,
    pub minor: u32,
}

impl EnvoyVersion {
    /// The release the scenarios are proven on (`--envoy-version` default).
    pub const LATEST: EnvoyVersion = EnvoyVersion { major: 1, minor: 40 };

    pub const fn new(major: u32, minor: u32) -> Self {
        EnvoyVersion { major, minor }
    }

    /// Parses `1.40` (a patch, `1.40.2`, is accepted and ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.trim().split('.');
        let number = |p: Option<&str>| p.and_then(|p| p.parse::<u32>().ok());
        match (number(parts.next()), number(parts.next()), parts.next().map(|p| p.parse::<u32>())) {
            (Some(major), Some(minor), None | Some(Ok(_))) if parts.next().is_none() => Ok(Self::new(major, minor)),
            _ => Err(format!("--envoy-version: expected MAJOR.MINOR such as 1.40, got `{text}`")),
        }
    }
}

impl fmt::Display for EnvoyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A native Envoy feature the lowering may use, with the release that introduced it (Envoy's changelogs:
/// `cookies` in 1.37.0, `use_hash_policy` in 1.36.0, `treat_missing_header_as_empty` in 1.23.0,
/// `tcp_proxy.weighted_clusters` in 1.8.0; `VirtualHost.matcher` first in the v1.21 API reference and the
/// `RouteList` action in v1.25's, envoyproxy.io/docs/envoy/v1.25.0/api-v3/http_routes/http_routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `HeaderMatcher.string_match` (1.20) and `treat_missing_header_as_empty` (1.23), which every native HTTP
    /// route uses.
    HeaderStringMatch,
    /// `RouteMatch.cookies`: RFC 6265 parsing of the cookie header, first occurrence wins.
    CookieMatcher,
    /// `WeightedCluster.use_hash_policy`: a sticky pick among weighted clusters from the route's hash policy.
    WeightedHashPolicy,
    /// `tcp_proxy.weighted_clusters`.
    TcpWeightedClusters,
    /// `VirtualHost.matcher` (1.21) with `Route` and `RouteList` actions (`RouteList`: 1.25): tables as
    /// matcher trees (`native::tables`).
    MatcherTree,
}

impl Feature {
    /// The first release with the feature.
    pub fn since(self) -> EnvoyVersion {
        match self {
            Feature::HeaderStringMatch => EnvoyVersion::new(1, 23),
            Feature::CookieMatcher => EnvoyVersion::new(1, 37),
            Feature::WeightedHashPolicy => EnvoyVersion::new(1, 36),
            Feature::TcpWeightedClusters => EnvoyVersion::new(1, 8),
            Feature::MatcherTree => EnvoyVersion::new(1, 25),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Feature::HeaderStringMatch => "native header matching (`treat_missing_header_as_empty`)",
            Feature::CookieMatcher => "the native cookie matcher (`RouteMatch.cookies`)",
            Feature::WeightedHashPolicy => "sticky weighted clusters (`WeightedCluster.use_hash_policy`)",
            Feature::TcpWeightedClusters => "`tcp_proxy.weighted_clusters`",
            Feature::MatcherTree => "matcher trees (`VirtualHost.matcher` with `RouteList` actions)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(EnvoyVersion::parse("1.40").unwrap(), EnvoyVersion::LATEST);
        assert_eq!(EnvoyVersion::parse("1.28.3").unwrap(), EnvoyVersion::new(1, 28));
        assert!(EnvoyVersion::parse("1").is_err());
        assert!(EnvoyVersion::parse("1.x").is_err());
        assert!(EnvoyVersion::parse("1.2.3.4").is_err());
        assert!(EnvoyVersion::new(1, 9) < EnvoyVersion::new(1, 10));
        assert_eq!(EnvoyVersion::LATEST.to_string(), "1.40");
    }
}
