//! DestinationRules: which subsets a service has (and their pod labels), so that a route to a subset that
//! does not exist is caught here rather than as 503s in the mesh. Their traffic policies only shape how a
//! chosen subset is reached, never which one, so they are accepted and left alone.

use super::hosts::{service_host, ServiceHost};
use super::report::Report;
use super::yaml::{Field, Node};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsets {
    pub service: ServiceHost,
    /// Subset name → its labels (`version=v1`), in the order written.
    pub subsets: Vec<(String, Vec<(String, String)>)>,
}

pub fn destination_rule(spec: Node<'_>, namespace: Option<&str>, report: &mut Report) -> Option<Subsets> {
    let schema = [
        Field::Read("host"),
        Field::Read("subsets"),
        Field::Inert("trafficPolicy"),
        Field::Inert("exportTo"),
        Field::Inert("workloadSelector"),
    ];
    let fields = spec.fields(report, &schema, "a DestinationRule spec")?;
    let Some((host_value, host_path)) = fields.get("host") else {
        report.error(fields.path(), "a DestinationRule needs a `host`");
        return None;
    };
    let host = Node::new(host_value, host_path).str(report, "host")?;
    let service = match service_host(host, namespace) {
        Ok(s) => s,
        Err(why) => {
            report.error(host_path, why);
            return None;
        }
    };
    let mut subsets = Vec::new();
    if let Some((value, path)) = fields.get("subsets") {
        let node = Node::new(value, path);
        for (i, item) in node.seq(report, "subsets")?.iter().enumerate() {
            let at = path.index(i);
            let schema = [Field::Read("name"), Field::Read("labels"), Field::Inert("trafficPolicy")];
            let subset = Node::new(item, &at).fields(report, &schema, "a subset")?;
            let Some((name, name_path)) = subset.get("name") else {
                report.error(&at, "a subset needs a `name`");
                return None;
            };
            let name = Node::new(name, name_path).str(report, "name")?.to_string();
            let mut labels = Vec::new();
            if let Some((value, labels_path)) = subset.get("labels") {
                for (k, v) in Node::new(value, labels_path).entries(report, "labels")? {
                    let label_path = labels_path.key(k);
                    labels.push((k.to_string(), Node::new(v, &label_path).str(report, "a label value")?.to_string()));
                }
            }
            subsets.push((name, labels));
        }
    }
    Some(Subsets { service, subsets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::Path;

    #[test]
    fn subsets_with_labels() {
        let value: canary_yaml::Value = canary_yaml::from_str(
            "host: forecast\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\nsubsets:\n- {name: v1, labels: {version: v1}}\n- name: v2",
        )
        .expect("yaml");
        let path = Path::root().key("spec");
        let mut report = Report::new("t.yaml", "doc 1");
        let rule = destination_rule(Node::new(&value, &path), Some("weather"), &mut report).expect("read");
        assert_eq!(rule.service.name, "forecast");
        assert_eq!(rule.subsets, vec![("v1".into(), vec![("version".into(), "v1".into())]), ("v2".into(), vec![])]);
        let bad: canary_yaml::Value = canary_yaml::from_str("host: f\nsubset: []").expect("yaml");
        assert!(destination_rule(Node::new(&bad, &path), None, &mut report).is_some());
        assert!(report.messages.iter().any(|m| m.path == "spec.subset" && m.text.contains("unknown field")));
    }
}
