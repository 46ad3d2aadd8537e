//! Istio host names → the canary service they name.
//!
//! A policy names services by their short name (the filter takes it from `:authority`, port and
//! `.namespace…` stripped), so `forecast`, `forecast.weather` and `forecast.weather.svc.cluster.local` are all
//! `forecast`. The namespace is kept to catch two different services with one short name.

/// A Kubernetes service named by a VirtualService or DestinationRule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHost {
    pub name: String,
    /// From the host, else the resource's own namespace, else unknown.
    pub namespace: Option<String>,
}

impl ServiceHost {
    /// Whether both name the same service (an unknown namespace matches any).
    pub fn same(&self, other: &ServiceHost) -> bool {
        self.name == other.name
            && match (&self.namespace, &other.namespace) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for ServiceHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}.{ns}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The service `host` names: `NAME`, `NAME.NS` or `NAME.NS.svc[.DOMAIN…]`; `namespace` is the resource's
/// own, which a short name lives in (as Istio resolves it).
pub fn service_host(host: &str, namespace: Option<&str>) -> Result<ServiceHost, String> {
    if host.contains('*') {
        return Err(format!("{host:?} is a wildcard: it names no single service"));
    }
    let lower = host.to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    let (name, ns) = match labels.as_slice() {
        [name] => (*name, namespace.map(str::to_string)),
        [name, ns] => (*name, Some(ns.to_string())),
        [name, ns, "svc", ..] => (*name, Some(ns.to_string())),
        _ => {
            return Err(format!(
                "{host:?} is not a Kubernetes service name (NAME, NAME.NAMESPACE or NAME.NAMESPACE.svc.DOMAIN)"
            ))
        }
    };
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if !label(name) || ns.as_deref().is_some_and(|ns| !label(ns)) || labels.iter().any(|l| l.is_empty()) {
        return Err(format!("{host:?} is not a valid service host name"));
    }
    Ok(ServiceHost { name: name.to_string(), namespace: ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, ns: Option<&str>) -> ServiceHost {
        ServiceHost { name: name.into(), namespace: ns.map(Into::into) }
    }

    #[test]
    fn short_names_and_fqdns() {
        assert_eq!(service_host("forecast", Some("weather")), Ok(host("forecast", Some("weather"))));
        assert_eq!(service_host("forecast", None), Ok(host("forecast", None)));
        assert_eq!(service_host("forecast.weather", None), Ok(host("forecast", Some("weather"))));
        assert_eq!(
            service_host("Forecast.weather.svc.cluster.local", Some("other")),
            Ok(host("forecast", Some("weather")))
        );
        assert!(service_host("weather.example.com", None).unwrap_err().contains("not a Kubernetes service"));
        assert!(service_host("*.weather.svc.cluster.local", None).unwrap_err().contains("wildcard"));
        assert!(service_host("fore_cast", None).is_err());
        assert!(service_host("forecast..svc", None).is_err());
        assert!(host("forecast", None).same(&host("forecast", Some("a"))));
        assert!(!host("forecast", Some("b")).same(&host("forecast", Some("a"))));
    }
}
