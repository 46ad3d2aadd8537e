//! The settings file as `canaryc import --settings-out` writes it: the same field names it reads.

use serde_json::{Map, Value};

use crate::model::SettingsFile;

/// YAML (JSON is YAML; a flow style keeps this crate free of a YAML emitter) that [`crate::read`] reads back
/// into an equal [`SettingsFile`].
pub fn to_yaml(file: &SettingsFile) -> String {
    let mut top = Map::new();
    for (name, service) in &file.services {
        let mut section = service.all.istio();
        if !service.profiles.is_empty() {
            let profiles: Map<String, Value> =
                service.profiles.iter().map(|(n, s)| (n.clone(), Value::Object(s.file_fields()))).collect();
            section.insert("profiles".into(), Value::Object(profiles));
        }
        top.insert(name.clone(), Value::Object(section));
    }
    let mut out = String::new();
    for (name, section) in top {
        out.push_str(&format!(
            "{}: {}\n",
            Value::String(name),
            Value::Object(section.as_object().cloned().unwrap_or_default())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads() {
        let text = "reviews:\n  timeout: 2s\n  retries: {attempts: 3, perTryTimeout: 1s, retryOn: \"5xx,503\"}\n  rewrite: {uri: /v2/, authority: b.example}\n  headers:\n    request: {set: {x-a: b}, add: {x-b: c}, remove: [x-c]}\n    response: {remove: [server]}\n  corsPolicy: {allowOrigins: [{exact: \"https://a\"}, {regex: \".*\"}], allowMethods: [GET], maxAge: 24h0s, allowCredentials: true}\n  profiles:\n    slow: {timeout: 10s}\n    own: {mirror: {subset: v3}, mirrorPercentage: {value: 0.25}, unset: [rewrite, corsPolicy]}\n";
        let text = text.replace("24h0s", "86400s");
        let file = crate::read(&text).unwrap();
        assert_eq!(crate::read(&to_yaml(&file)).unwrap(), file);
    }
}
