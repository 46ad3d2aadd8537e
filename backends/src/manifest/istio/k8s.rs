//! The Kubernetes envelope every generated resource shares, and how documents are written out.

use std::collections::BTreeMap;

use serde::Serialize;

/// Marks every generated object, so `kubectl get … -l app.kubernetes.io/managed-by=canaryc` finds (and
/// `kubectl delete` removes) exactly what this tool wrote.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "canaryc");

/// One Kubernetes object. Field order is the order `kubectl get -o yaml` uses, so diffs read naturally.
#[derive(Debug, Serialize)]
pub(crate) struct Resource<S: Serialize> {
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: S,
}

#[derive(Debug, Serialize)]
pub(crate) struct Metadata {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

impl Metadata {
    pub fn new(name: impl Into<String>, namespace: &str) -> Self {
        let labels = BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]);
        Metadata { name: name.into(), namespace: namespace.to_string(), labels }
    }
}

impl<S: Serialize> Resource<S> {
    /// The object as one YAML document.
    pub fn to_yaml(&self) -> Result<String, String> {
        canary_yaml::to_string(self).map_err(|e| format!("cannot write YAML: {e}"))
    }
}

/// A multi-document stream: a comment saying where it came from, then the documents separated by `---`.
pub(crate) fn stream(header: &str, documents: &[String]) -> String {
    let mut out: String = header.lines().map(|line| format!("# {line}\n")).collect();
    for (i, doc) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(doc);
    }
    out
}

/// `{"key": "value"}` from flag pairs, for selectors.
pub(crate) fn labels(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

/// The policy as plain YAML data, keys in the order `canaryc compile` prints them.
///
/// Serialized directly, yaml_serde writes the config's enums as YAML tags (`when: !cookie …`), which Kubernetes
/// does not turn into the JSON the filter reads. Going through the compile JSON (which is valid YAML) keeps the
/// exact JSON shape, and yaml_serde's mapping keeps the key order.
pub(crate) fn plain(config: &canary_eval::Config) -> Result<canary_yaml::Value, String> {
    let json = serde_json::to_string(config).map_err(|e| format!("cannot serialize the policy: {e}"))?;
    canary_yaml::from_str(&json).map_err(|e| format!("cannot convert the policy to YAML: {e}"))
}
